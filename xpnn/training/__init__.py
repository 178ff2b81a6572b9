"""Training: the Trainer's loop and the parts told of its progress.

* :mod:`xpnn.training.trainer`: :class:`Trainer` (``fit``: sample -> step ->
  record) and the book's ``clip_grads``;
* :mod:`xpnn.training.book_trainer`: the book's ch. 6 form
  (``Trainer(network, x_train, ...).train()``);
* :mod:`xpnn.training.callbacks`: the loop's events and its parts
  (reporter, evaluator, guard), and :class:`Callback` for your own;
* :mod:`xpnn.training.checkpointer`: checkpoints and resuming;
* :mod:`xpnn.training.precision`: mixed-precision steps and the loss scaler;
* :mod:`xpnn.training.graph_step`: a step replayed as one CUDA graph.
"""

from xpnn.training.callbacks import Callback
from xpnn.training.precision import LossScaler, MixedPrecision
from xpnn.training.trainer import Trainer, clip_grads

__all__ = ["Callback", "LossScaler", "MixedPrecision", "Trainer", "clip_grads"]

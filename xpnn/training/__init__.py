"""Training: the Trainer's loop and the parts told of its progress.

* :mod:`xpnn.training.trainer`: :class:`Trainer` (``fit``: sample -> step ->
  record) and the book's ``clip_grads``;
* :mod:`xpnn.training.book_trainer`: the book's ch. 6 form
  (``Trainer(network, x_train, ...).train()``);
* :mod:`xpnn.training.checks`: what ``fit`` refuses before anything changes;
* :mod:`xpnn.training.step`: one iteration (eager, mixed precision or CUDA
  graph); :mod:`xpnn.training.clipping`: ``clip_grads``;
* :mod:`xpnn.training.events`: the loop's events, :class:`FitState` and
  :class:`Callback` for your own parts;
* :mod:`xpnn.training.callbacks`: the parts that look at the device (guard,
  evaluator, per-iteration losses); :mod:`xpnn.training.reporter`: the
  printed lines and the progress bar;
* :mod:`xpnn.training.checkpointer`: writing checkpoints, the data
  fingerprint; :mod:`xpnn.training.resume`: resuming from one;
  :mod:`xpnn.training.model_state`: the model's arrays a checkpoint keeps
  beside its parameters;
* :mod:`xpnn.training.precision`: mixed-precision steps and the loss scaler;
* :mod:`xpnn.training.graph_step`: a step replayed as one CUDA graph;
* :mod:`xpnn.training.plotting`: ``Trainer.plot``;
* :mod:`xpnn.training.rnnlm_trainer`: the book's ``RnnlmTrainer`` (vol. 2,
  ch. 5-6: truncated BPTT, perplexity), the Trainer's loop with contiguous
  batches; :mod:`xpnn.training.schedule`: the learning-rate schedule of the
  book's ``train_better_rnnlm.py`` (``PerplexitySchedule``).
"""

from xpnn.training.callbacks import Callback
from xpnn.training.precision import LossScaler, MixedPrecision
from xpnn.training.rnnlm_trainer import RnnlmTrainer
from xpnn.training.schedule import PerplexitySchedule
from xpnn.training.trainer import Trainer, clip_grads

__all__ = [
    "Callback",
    "LossScaler",
    "MixedPrecision",
    "PerplexitySchedule",
    "RnnlmTrainer",
    "Trainer",
    "clip_grads",
]

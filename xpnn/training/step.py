"""One iteration of ``Trainer.fit``: take a mini-batch, forward, backward, clip, update.

:func:`make_stepper` picks how the loop's iterations run: eagerly
(:func:`train_step`, on the model's dtype), as a mixed-precision step
(:meth:`xpnn.training.precision.MixedPrecision.step`) or replayed as one
CUDA graph (:class:`xpnn.training.graph_step.GraphStep`, which records
:func:`train_step`). Every one of them stays on the device: the batch is
taken with ``xp.take`` from the epoch's order, and the loss comes back as a
0-d device array, read only when the loop records it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xpnn.backend import _library
from xpnn.models import LayeredNet
from xpnn.training.clipping import clip_grads
from xpnn.training.events import FitState
from xpnn.training.graph_step import GraphStep

__all__ = ["forward_backward", "make_stepper", "train_step"]


def make_stepper(
    trainer: Any, state: FitState, cuda_graph: bool, watch: bool
) -> Callable[[Any, int], Any]:
    """``step(order, i)``: train on the ``i``-th batch of ``order``; returns its loss.

    Args:
        trainer: The :class:`xpnn.Trainer` whose model and optimizer step
            (its ``_iteration``, :func:`train_step`, runs each eager step).
        state: The run: its data, batch size, ``max_grad`` and precision.
        cuda_graph: Replay each iteration as one CUDA graph.
        watch: Callbacks may change the optimizer's hyper-parameters, which
            a graph holds as numbers: it compares them at each call.
    """
    x, t, size, max_grad = state.x, state.t, state.batch_size, state.max_grad
    if cuda_graph:
        graph = GraphStep(trainer, x, t, size, max_grad)
        graph.watch = watch

        def graph_step(order: Any, i: int) -> Any:
            return graph(order[i * size : (i + 1) * size])

        return graph_step
    take = state.xp.take
    iteration = trainer._iteration if state.precision is None else state.precision.step

    def eager_step(order: Any, i: int) -> Any:
        idx = order[i * size : (i + 1) * size]
        return iteration(take(x, idx, axis=0), take(t, idx, axis=0), max_grad)

    return eager_step


def train_step(trainer: Any, x: Any, t: Any, max_grad: float | None) -> Any:
    """Step, clip and update the trainer's model on one batch; returns the loss (0-d array)."""
    loss, grads = forward_backward(trainer.model, trainer._layered, x, t)
    if max_grad is not None:
        clip_grads(grads, max_grad)
    trainer.optimizer.update(trainer.model.params, grads)
    return loss


def forward_backward(model: Any, layered: bool, x: Any, t: Any) -> tuple[Any, Any]:
    """One forward/backward pass; returns (loss as a 0-d array, grads).

    Args:
        model: A layered model (``forward``/``backward``/``grads``) when
            ``layered``, else a chapter-4 model (``gradient``/``loss``).
    """
    if layered:
        loss = model.forward(x, t)
        if isinstance(model, LayeredNet):
            model.backward(input_grad=False)  # training needs no dL/dx
        else:
            model.backward()
        return loss, model.grads
    grads = model.gradient(x, t)
    # Chapter-4 models that keep the batch loss spare a second forward pass.
    loss = getattr(getattr(model, "loss_layer", None), "loss", None)
    if loss is None:
        loss = model.loss(x, t)
        if _library(loss) != _library(x):  # the book's loss(): a host number (read already)
            loss = float(loss)
    return loss, grads

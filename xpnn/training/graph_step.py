"""``Trainer.fit``'s iteration replayed as a CUDA graph (``fit(cuda_graph=True)``)."""

from __future__ import annotations

from typing import Any

from xpnn.backend import CudaGraph, backend_of, device_of, get_namespace, ops

__all__ = ["GraphStep", "check_graphable"]


def check_graphable(model: Any) -> None:
    """Refuse a model whose training step a replayed CUDA graph would get wrong.

    A graph replays the recorded kernels with the numbers they were recorded
    with: a :class:`xpnn.layers.Dropout` layer would apply the same mask at
    every iteration (its draw count is a host number, not a device array).
    BatchNormalization is fine (its statistics are computed and updated in
    place on the device).

    Raises:
        ValueError: ``model`` has Dropout layers (the message names them).
    """
    from xpnn.layers import Dropout

    layers = getattr(model, "layers", ()) or ()
    dropouts = [i for i, layer in enumerate(layers) if isinstance(layer, Dropout)]
    if dropouts:
        raise ValueError(
            f"cuda_graph=True cannot train {type(model).__name__}: its Dropout layer"
            f"{'s' if len(dropouts) > 1 else ''} (layers {', '.join(map(str, dropouts))}) would "
            "replay the recorded mask at every iteration instead of drawing a new one; train "
            "it without cuda_graph"
        )


class GraphStep:
    """Take a mini-batch, step, clip and update: one CUDA graph launch (CuPy).

    The batch is taken into buffers of fixed address from an index buffer
    that each call fills with its indices, so one recorded graph serves
    every batch. The first call runs eagerly (compiling kernels, making the
    layers' buffers anew in the graph's memory pool, see CudaGraph); the
    second records the graph, and it and every later call launch it. The
    graph holds the optimizer's hyper-parameters as numbers: with
    ``watch=True`` (fit sets it when callbacks could change them) each call
    compares them with those recorded and records again when they changed.

    Args:
        trainer: The :class:`xpnn.Trainer` whose model and optimizer step.
        x: Inputs ``(N, ...)`` on CuPy.
        t: Labels ``(N,)`` or ``(N, classes)`` on CuPy.
        batch_size: Rows per call.
        max_grad: Clip the global gradient norm to this, if not None.

    Raises:
        ValueError: The model has Dropout layers (see :func:`check_graphable`),
            the data are not on CuPy, or the optimizer's update depends on
            the update count (``graph_safe`` is not set: Adam).
    """

    def __init__(self, trainer: Any, x: Any, t: Any, batch_size: int, max_grad: Any):
        check_graphable(trainer.model)
        if backend_of(x).name != "cupy":
            raise ValueError(
                f"cuda_graph=True needs the data on CuPy, got {backend_of(x).spec}; "
                'use xpnn.use_backend("cupy") or drop cuda_graph'
            )
        optimizer = trainer.optimizer
        if not getattr(optimizer, "graph_safe", False):
            raise ValueError(
                f"cuda_graph=True cannot replay {type(optimizer).__name__} updates: a recorded "
                "graph repeats the same numbers, so the update must not depend on the update "
                "count (SGD, Momentum, Nesterov, AdaGrad and RMSprop qualify; Adam does not)"
            )
        xp = get_namespace(x)
        device = device_of(x)
        self.trainer, self.x, self.t, self.max_grad = trainer, x, t, max_grad
        self.k = ops(x)
        self.idx = xp.empty((batch_size,), dtype=xp.int64, device=device)
        self.xb = xp.empty((batch_size, *x.shape[1:]), dtype=x.dtype, device=device)
        self.tb = xp.empty((batch_size, *t.shape[1:]), dtype=t.dtype, device=device)
        self.graph: Any = None
        self.loss: Any = None
        self.watch = False
        self.hyper: tuple = ()

    def _body(self) -> Any:
        k = self.k
        k.take_rows(self.x, self.idx, out=self.xb)
        k.take_rows(self.t, self.idx, out=self.tb)
        return self.trainer._iteration(self.xb, self.tb, self.max_grad)

    def _hyperparameters(self) -> tuple:
        optimizer = self.trainer.optimizer
        return tuple(getattr(optimizer, n, None) for n in getattr(optimizer, "_hyper_names", ()))

    def __call__(self, idx: Any) -> Any:
        """One iteration on the rows ``idx`` (an int64 device array); returns the loss."""
        optimizer = self.trainer.optimizer
        self.idx[...] = idx  # a copy on the device, ordered before the launch
        if self.graph is None:
            # The layers make new buffers in the graph's memory pool, so that
            # nothing else can get their memory while the graph lives.
            model = self.trainer.model
            for layer in [*getattr(model, "layers", ()), getattr(model, "loss_layer", None)]:
                getattr(layer, "_buffers", {}).clear()
            self.graph = CudaGraph(self.x)
            return self.graph.run_eagerly(self._body)
        if self.loss is None or (self.watch and self._hyperparameters() != self.hyper):
            # The graph lives for one fit call; it holds the hyper-parameters
            # as numbers, so it is recorded again when one has changed.
            self.hyper = self._hyperparameters()
            count = optimizer.iter  # recording runs update() once in Python, not on the GPU
            self.loss = self.graph.record(self._body)
            optimizer.iter = count
        self.graph.launch()
        optimizer.iter += 1
        return self.loss

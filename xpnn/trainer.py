"""The Trainer of vol. 2, ch. 1: mini-batch training with an optimizer.

``Trainer(model, optimizer).fit(x, t, ...)`` shuffles the data each epoch with
the seeded xpnn generator, runs forward/backward and ``optimizer.update`` for
each mini-batch, and records the average loss every ``eval_interval``
iterations, as the book does. It accepts both kinds of model:

* layered models (vol. 2): ``forward(x, t)`` returns the loss, ``backward()``
  fills ``grads``; ``params``/``grads`` lists or dicts;
* chapter-4 models: ``gradient(x, t)`` returns a dict of gradients and
  ``loss(x, t)`` the loss.

Nothing is read back from the device inside an iteration: losses are summed
on the device and read once per ``eval_interval``; mini-batches are taken on
the device with ``xp.take`` from one permutation per epoch; gradient clipping
scales on the device without testing the norm on the host.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from xpnn.backend import (
    CudaGraph,
    _dtype_name,
    backend_of,
    device_of,
    get_namespace,
    ops,
    to_numpy,
)
from xpnn.models import LayeredNet
from xpnn.random import default_rng

__all__ = ["Trainer", "clip_grads"]


def _values(arrays: Any) -> list[Any]:
    """The arrays of a params/grads list or dict, in order."""
    return list(arrays.values()) if isinstance(arrays, dict) else list(arrays)


def clip_grads(grads: Any, max_norm: float) -> None:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    Like the book's ``clip_grads``, but the "is the norm too large?" test is
    a ``minimum`` on the device, so it costs no host synchronisation.

    Args:
        grads: List or dict of gradient arrays (one backend).
        max_norm: The largest allowed global norm.
    """
    arrays = _values(grads)
    if not arrays:
        return
    xp = get_namespace(*arrays)
    total = sum(xp.sum(g * g) for g in arrays)
    rate = xp.minimum(max_norm / (xp.sqrt(total) + 1e-6), xp.ones_like(total))
    for g in arrays:
        g *= xp.astype(rate, g.dtype)


class Trainer:
    """Train a model with an optimizer on mini-batches, recording the loss.

    Args:
        model: A layered model (``forward``/``backward``/``params``/``grads``)
            or a chapter-4 model (``gradient``/``loss``/``params``).
        optimizer: Anything with ``update(params, grads)`` (xpnn.optimizers).

    Attributes:
        loss_list: Average training loss of each ``eval_interval`` (floats).
        train_acc_list, test_acc_list: Accuracy after each epoch, when
            ``fit`` was given validation data (floats).
        current_epoch: Epochs run so far.
    """

    def __init__(self, model: Any, optimizer: Any):
        if not hasattr(optimizer, "update"):
            raise TypeError(f"optimizer must have update(params, grads), got {optimizer!r}")
        layered = hasattr(model, "forward") and hasattr(model, "backward")
        if not layered and not (hasattr(model, "gradient") and hasattr(model, "loss")):
            raise TypeError(
                f"{type(model).__name__} is not a model: it needs forward(x, t) and backward() "
                "(vol. 2 style) or loss(x, t) and gradient(x, t) (chapter-4 style)"
            )
        self.model = model
        self.optimizer = optimizer
        self._layered = layered
        self.loss_list: list[float] = []
        self.train_acc_list: list[float] = []
        self.test_acc_list: list[float] = []
        self.eval_interval: int | None = None
        self.current_epoch = 0

    def _step(self, x: Any, t: Any) -> tuple[Any, Any]:
        """One forward/backward pass; returns (loss as a 0-d array, grads)."""
        model = self.model
        if self._layered:
            loss = model.forward(x, t)
            if isinstance(model, LayeredNet):
                model.backward(input_grad=False)  # training needs no dL/dx
            else:
                model.backward()
            return loss, model.grads
        grads = model.gradient(x, t)
        # Chapter-4 models that keep the batch loss spare a second forward pass.
        loss = getattr(getattr(model, "loss_layer", None), "loss", None)
        return (model.loss(x, t) if loss is None else loss), grads

    def _iteration(self, x: Any, t: Any, max_grad: float | None) -> Any:
        """Step, clip and update on one batch; returns the loss (a 0-d array)."""
        loss, grads = self._step(x, t)
        if max_grad is not None:
            clip_grads(grads, max_grad)
        self.optimizer.update(self.model.params, grads)
        return loss

    def _accuracy(self, x: Any, t: Any) -> float:
        model = self.model
        if hasattr(model, "accuracy"):
            return float(to_numpy(model.accuracy(x, t)))
        xp = get_namespace(x, t)
        y = xp.argmax(model.predict(x), axis=1)
        labels = t if t.ndim == 1 else xp.argmax(t, axis=1)
        return float(to_numpy(xp.mean(xp.astype(y == labels, x.dtype))))

    def fit(
        self,
        x: Any,
        t: Any,
        max_epoch: int = 10,
        batch_size: int = 32,
        max_grad: float | None = None,
        eval_interval: int = 20,
        *,
        validation_data: tuple[Any, Any] | None = None,
        seed: int | None = 0,
        progress: bool = True,
        verbose: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        resume: str | os.PathLike[str] | None = None,
        on_nan: str = "raise",
        cuda_graph: bool = False,
    ) -> Trainer:
        """Train for ``max_epoch`` epochs of ``len(x) // batch_size`` iterations.

        Args:
            x: Inputs ``(N, features)``, floating point, on the model's backend.
            t: Labels: one-hot ``(N, classes)`` or integers ``(N,)``.
            max_epoch: Epochs (with ``resume``: the epochs of the whole run,
                so the resumed call takes the interrupted call's arguments).
            batch_size: Samples per iteration (the last partial batch of an
                epoch is dropped, as in the book).
            max_grad: Clip the global gradient norm to this, if given.
            eval_interval: Record (and print) the average loss every this
                many iterations of an epoch (at most once an epoch); the only
                point where the loss is read from the device.
            validation_data: ``(x_test, t_test)``; when given, train and test
                accuracy are recorded after each epoch (the chapter-4 curves).
            seed: Seed of the shuffling (the same on every backend).
            progress: Show a progress bar (tqdm) over the iterations, in a
                terminal or a notebook.
            verbose: Print the book's ``| epoch 1 | iter 1 / 10 | time 0[s] |
                loss 1.10`` lines.
            checkpoint: Write a checkpoint here (atomically: a crash or Ctrl-C
                never leaves a broken file) after every epoch, and every
                ``checkpoint_every`` iterations of an epoch if given.
            checkpoint_every: See ``checkpoint``.
            resume: Continue the run saved in this checkpoint: parameters,
                optimizer state, shuffling state, position and curves. The
                resumed run ends exactly as an uninterrupted one would.
            on_nan: What a NaN or infinite loss does, checked at each eval
                interval: ``"raise"`` (FloatingPointError), ``"warn"``
                (RuntimeWarning, training goes on) or ``"ignore"``.
            cuda_graph: On CuPy, record an iteration (taking the batch,
                forward, backward, clipping, update) once as a CUDA graph and
                replay it: one launch per iteration instead of dozens, which
                is what bounds a GPU at these sizes. The first iteration runs
                eagerly; the graph is recorded again when a hyper-parameter
                (``optimizer.lr``...) changes. The results are those of eager
                training. Needs data on CuPy and an optimizer whose update
                does not depend on the update count (not Adam).

        Returns:
            The trainer itself (its lists hold the curves).

        Raises:
            ValueError: Bad sizes, labels or arguments (the message names
                the shapes and dtypes).
            FloatingPointError: The loss became NaN or infinite.
            xpnn.io.ModelFileError: ``resume`` does not fit this run.
        """
        xp = get_namespace(x, t, *_values(self.model.params)[:1])
        data_size = self._check_data(xp, x, t, "x", "t")
        for name, value in (
            ("max_epoch", max_epoch),
            ("batch_size", batch_size),
            ("eval_interval", eval_interval),
            ("checkpoint_every", checkpoint_every or 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if batch_size > data_size:
            raise ValueError(f"batch_size {batch_size} is larger than the data ({data_size})")
        if max_grad is not None and not max_grad > 0:
            raise ValueError(f"max_grad must be positive, got {max_grad!r}")
        if on_nan not in ("raise", "warn", "ignore"):
            raise ValueError(f"on_nan must be 'raise', 'warn' or 'ignore', got {on_nan!r}")
        graph_step = _GraphStep(self, x, t, batch_size, max_grad) if cuda_graph else None
        if validation_data is not None:
            x_val, t_val = validation_data
            get_namespace(x, x_val, t_val)  # same backend and device as the training data
            self._check_data(xp, x_val, t_val, "x_test", "t_test")

        max_iters = data_size // batch_size
        # At least one record an epoch (the book records none when the
        # interval is longer than an epoch).
        eval_interval = min(eval_interval, max_iters)
        self.eval_interval = eval_interval
        # The shuffling follows the data: permutations go to x's backend and device.
        rng = default_rng(seed, backend=backend_of(x))
        run = {"data_size": data_size, "batch_size": batch_size, "max_epoch": max_epoch}
        start_epoch, start_iter = 0, 0
        total_loss: Any = 0
        loss_count = 0
        if resume is not None:
            start_epoch, start_iter, total_loss, loss_count = self._resume(resume, rng, run, x)
        self._last_checkpoint: str | None = None
        bar = _progress_bar(max_epoch * max_iters, progress, start_epoch * max_iters + start_iter)
        say = bar.write if bar is not None else print
        start = time.perf_counter()
        epoch, iters = start_epoch, start_iter
        try:
            for epoch in range(start_epoch, max_epoch):
                epoch_rng = rng.get_state()  # replays this epoch's order on resume
                order = rng.permutation(data_size)  # one host-to-device copy per epoch
                first = start_iter if epoch == start_epoch else 0
                for iters in range(first, max_iters):
                    idx = order[iters * batch_size : (iters + 1) * batch_size]
                    if graph_step is not None:
                        loss = graph_step(idx)
                    else:
                        loss = self._iteration(
                            xp.take(x, idx, axis=0), xp.take(t, idx, axis=0), max_grad
                        )
                    total_loss = total_loss + loss  # stays on the device
                    loss_count += 1
                    if bar is not None:
                        bar.update(1)
                    if (iters + 1) % eval_interval == 0:
                        avg = float(to_numpy(total_loss)) / loss_count
                        self._check_finite(avg, iters, on_nan)
                        self.loss_list.append(avg)
                        if verbose:
                            say(
                                f"| epoch {self.current_epoch + 1} |  iter {iters + 1} / "
                                f"{max_iters} | time {time.perf_counter() - start:.0f}[s] "
                                f"| loss {avg:.2f}"
                            )
                        total_loss, loss_count = 0, 0
                    if (
                        checkpoint is not None
                        and checkpoint_every is not None
                        and (iters + 1) % checkpoint_every == 0
                        and iters + 1 < max_iters  # the epoch-end checkpoint follows
                    ):
                        position = (epoch, iters + 1, epoch_rng)
                        self._save(checkpoint, run, position, total_loss, loss_count)
                iters = max_iters
                self.current_epoch += 1
                if validation_data is not None:
                    self.train_acc_list.append(self._accuracy(x, t))
                    self.test_acc_list.append(self._accuracy(*validation_data))
                    if verbose:
                        train_acc, test_acc = self.train_acc_list[-1], self.test_acc_list[-1]
                        say(
                            f"| epoch {self.current_epoch} | train acc, test acc | "
                            f"{train_acc:.4f}, {test_acc:.4f}"
                        )
                if checkpoint is not None:
                    position = (epoch + 1, 0, rng.get_state())
                    self._save(checkpoint, run, position, total_loss, loss_count)
        except KeyboardInterrupt:
            where = (
                f"the last complete checkpoint is {self._last_checkpoint}; continue with "
                "fit(..., resume=<that file>)"
                if self._last_checkpoint
                else "no checkpoint was written yet (pass checkpoint=PATH to fit to keep one)"
            )
            print(
                f"xpnn: training interrupted in epoch {epoch + 1}, iteration {iters}; {where}",
                file=sys.stderr,
            )
            raise
        finally:
            if bar is not None:
                bar.close()
        return self

    def _check_data(self, xp: Any, x: Any, t: Any, xname: str, tname: str) -> int:
        """Check shapes, dtypes and label range of a data set; returns its size.

        Reading the label range is one small host read, once per fit.
        """
        if x.ndim != 2:
            raise ValueError(f"{xname} must be 2-D (samples, features), got shape {tuple(x.shape)}")
        if not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(
                f"{xname} must be floating point, got {_dtype_name(x.dtype)}; convert it with "
                "xpnn.asarray(x) (floats become the backend's float dtype)"
            )
        features = getattr(self.model, "input_size", None)
        if features is not None and x.shape[1] != features:
            raise ValueError(
                f"{xname} has {x.shape[1]} features (shape {tuple(x.shape)}) but "
                f"{type(self.model).__name__} expects {features}"
            )
        n = x.shape[0]
        if t.ndim not in (1, 2) or t.shape[0] != n:
            raise ValueError(
                f"{xname} has {n} samples (shape {tuple(x.shape)}) but {tname} has shape "
                f"{tuple(t.shape)}; labels must be ({n},) integers or ({n}, classes) one-hot"
            )
        classes = getattr(self.model, "output_size", None)
        if t.ndim == 2 and classes is not None and t.shape[1] != classes:
            raise ValueError(
                f"{tname} is one-hot with {t.shape[1]} classes (shape {tuple(t.shape)}) but "
                f"{type(self.model).__name__} has {classes} outputs"
            )
        if t.ndim == 1:
            if not xp.isdtype(t.dtype, "integral"):
                raise TypeError(
                    f"{tname} of shape ({n},) must hold integer labels, got {_dtype_name(t.dtype)}"
                )
            low, high = (int(v) for v in to_numpy(xp.stack([xp.min(t), xp.max(t)])))
            if low < 0 or (classes is not None and high >= classes):
                raise ValueError(
                    f"{tname} holds labels from {low} to {high}, outside 0..{(classes or 0) - 1} "
                    f"for {type(self.model).__name__} with {classes} outputs"
                )
        return n

    def _save(
        self, path: Any, run: dict[str, Any], position: tuple, total_loss: Any, loss_count: int
    ) -> None:
        from xpnn.io import write_checkpoint

        epoch, next_iter, rng_state = position
        progress = {
            **run,
            "epoch": epoch,
            "next_iter": next_iter,
            "rng": rng_state,
            "loss_count": loss_count,
            "current_epoch": self.current_epoch,
            "loss_list": self.loss_list,
            "train_acc_list": self.train_acc_list,
            "test_acc_list": self.test_acc_list,
        }
        extra = {"total_loss": total_loss if loss_count else 0.0}
        self._last_checkpoint = str(
            write_checkpoint(path, self.model, self.optimizer, progress, extra)
        )

    def _resume(self, path: Any, rng: Any, run: dict[str, Any], x: Any) -> tuple:
        from xpnn.backend import asarray
        from xpnn.io import ModelFileError, read_checkpoint

        progress, extra = read_checkpoint(path, self.model, self.optimizer)
        for key, value in run.items():
            if progress.get(key) != value:
                raise ModelFileError(
                    f"{path}: the checkpoint was written with {key}={progress.get(key)}, "
                    f"this fit has {key}={value}; resume with the arguments of the original run"
                )
        rng.set_state(progress["rng"])
        self.current_epoch = progress["current_epoch"]
        self.loss_list = list(progress["loss_list"])
        self.train_acc_list = list(progress["train_acc_list"])
        self.test_acc_list = list(progress["test_acc_list"])
        loss_count = progress["loss_count"]
        total = extra["total_loss"]
        total_loss = (
            asarray(total, dtype=str(total.dtype), backend=backend_of(x)) if loss_count else 0
        )
        return progress["epoch"], progress["next_iter"], total_loss, loss_count

    def _check_finite(self, avg: float, iters: int, on_nan: str) -> None:
        if math.isfinite(avg) or on_nan == "ignore":
            return
        message = (
            f"the training loss became {avg} in epoch {self.current_epoch + 1}, by iteration "
            f"{iters + 1}: try a smaller learning rate or gradient clipping (max_grad)"
        )
        if on_nan == "warn":
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            return
        raise FloatingPointError(message)

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Write the loss curve (and the accuracy curves, if recorded) to ``path``."""
        from xpnn.plot import plot_loss, plot_training

        if not self.loss_list:
            raise ValueError("nothing to plot: call fit() first (with enough iterations)")
        xlabel = f"iterations (x{self.eval_interval})"
        if self.train_acc_list:
            return plot_training(
                self.loss_list, self.train_acc_list, self.test_acc_list, path, xlabel=xlabel
            )
        return plot_loss(self.loss_list, path, xlabel=xlabel)


def _progress_bar(total: int, enabled: bool, initial: int = 0) -> Any:
    """A tqdm bar (notebook-aware), or None when disabled or tqdm is missing."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are a nicety, not a requirement
        return None
    # In a terminal or a notebook a live bar; in a log file or a pipe it would
    # only add noise (tqdm's disable=None turns it off off a TTY).
    interactive = "ipykernel" in sys.modules
    return tqdm(
        total=total,
        initial=initial,
        unit="iter",
        leave=False,
        dynamic_ncols=True,
        disable=False if interactive else None,
    )


class _GraphStep:
    """``Trainer.fit``'s iteration replayed as a CUDA graph (``cuda_graph=True``).

    The batch is taken into buffers of fixed address from an index buffer
    that each iteration fills with its indices, so one recorded graph serves
    every batch. The first call runs eagerly (compiling kernels, making the
    layers' buffers anew in the graph's memory pool, see CudaGraph); the
    second records the graph, and it and every later call launch it.
    """

    def __init__(self, trainer: Trainer, x: Any, t: Any, batch_size: int, max_grad: Any):
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

    def _body(self) -> Any:
        k = self.k
        k.take_rows(self.x, self.idx, out=self.xb)
        k.take_rows(self.t, self.idx, out=self.tb)
        return self.trainer._iteration(self.xb, self.tb, self.max_grad)

    def __call__(self, idx: Any) -> Any:
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
        if self.loss is None:
            # fit() has no hooks, so the hyper-parameters the graph holds as
            # numbers cannot change while it lives (it lives for one fit call).
            count = optimizer.iter  # recording runs update() once in Python, not on the GPU
            self.loss = self.graph.record(self._body)
            optimizer.iter = count
        self.graph.launch()
        optimizer.iter += 1
        return self.loss

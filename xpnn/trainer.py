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
scales on the device without testing the norm on the host. Checkpoints add
one read each (are the parameters finite?) and, once per fit, 64 rows of the
data for their fingerprint.

The divergence and NaN guard (``fit(on_nan=...)``) stops a run whose loss is
NaN or far above the untrained loss, and never lets a checkpoint that is not
finite replace the last good one; ``fit(resume=...)`` checks the whole
checkpoint against the model, the optimizer, the settings and the data before
it changes anything.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.backend import (
    CudaGraph,
    _dtype_name,
    asarray,
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
    return list(arrays.values()) if isinstance(arrays, Mapping) else list(arrays)


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


#: The divergence guard (see ``Trainer.fit``'s ``on_nan``): a recorded average
#: loss above DIVERGENCE_FACTOR times the untrained loss, DIVERGENCE_PATIENCE
#: records in a row, means the training diverged. The untrained loss is
#: max(ln C, the run's first batch loss, 1): a model that guesses uniformly
#: among C classes has loss ln C, and a fresh model starts near it, so a run
#: that learns stays far below 10 times that, while a run whose learning rate
#: is far too large passes it within a few records (lr=1e6 on the spiral
#: records losses of about 1e6). One high record (a spike) is not enough.
DIVERGENCE_FACTOR = 10.0
DIVERGENCE_PATIENCE = 3

#: Rows of ``x`` and ``t`` hashed into a checkpoint's data fingerprint.
FINGERPRINT_ROWS = 64

#: What ``Trainer.fit`` stores in a checkpoint's progress. The run settings
#: must be those of the resuming fit; the rest is the position in the run.
_RUN_FIELDS = ("data_size", "batch_size", "max_epoch", "max_grad", "eval_interval")
_PROGRESS_FIELDS = (
    *_RUN_FIELDS,
    "data",
    "epoch",
    "next_iter",
    "rng",
    "loss_count",
    "high_loss_records",
    "current_epoch",
    "loss_list",
    "train_acc_list",
    "test_acc_list",
)
_EXTRA_ARRAYS = ("initial_loss", "total_loss")


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
        divergence_factor, divergence_patience: The divergence guard of
            ``fit`` (defaults DIVERGENCE_FACTOR = 10.0 and
            DIVERGENCE_PATIENCE = 3); set them on a trainer whose model's
            loss is not a mean cross-entropy and lives on another scale.
    """

    divergence_factor: float = DIVERGENCE_FACTOR
    divergence_patience: int = DIVERGENCE_PATIENCE

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
        self._last_checkpoint: str | None = None  # of the current fit, for messages
        self._last_position = ""
        self._skip_warned = self._divergence_warned = False  # on_nan="warn" warns once

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
                ``checkpoint_every`` iterations of an epoch if given. It
                holds the parameters, the optimizer state, the position,
                the curves, the run settings (``max_epoch``, ``batch_size``,
                ``max_grad``, ``eval_interval``) and a fingerprint of ``x``
                and ``t`` (shapes, dtypes and a SHA-256 of 64 evenly spaced
                rows, read once per fit). A checkpoint whose parameters,
                optimizer state or running loss are NaN or infinite is never
                written (one on-device check per checkpoint): see ``on_nan``.
            checkpoint_every: See ``checkpoint``.
            resume: Continue the run saved in this checkpoint: parameters,
                optimizer state, shuffling state, position and curves. The
                resumed run ends exactly as an uninterrupted one would. The
                whole file is checked first; it is refused (ModelFileError,
                nothing changed) when it does not fit this model (class,
                sizes, dtype), optimizer (class, hyper-parameters), these
                settings or these data.
            on_nan: The divergence and NaN guard. It acts when a recorded
                loss is NaN or infinite, when ``divergence_patience`` (3)
                records in a row exceed ``divergence_factor`` (10) times the
                untrained loss max(ln C, first batch loss, 1) for C classes,
                and when a checkpoint would hold NaN or infinite values:
                ``"raise"`` (FloatingPointError, the default), ``"warn"``
                (RuntimeWarning once, training goes on) or ``"ignore"``.
                A non-finite checkpoint is never written in any mode: the
                last good file stays.
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
            FloatingPointError: The loss became NaN or infinite, training
                diverged, or a checkpoint would not be finite (the message
                names the last good checkpoint).
            xpnn.io.ModelFileError: ``resume`` does not fit this run.
        """
        xp = get_namespace(x, t, *_values(self.model.params)[:1])
        data_size, classes = self._check_data(xp, x, t, "x", "t")
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
        if max_grad is not None and (
            isinstance(max_grad, bool)
            or not isinstance(max_grad, numbers.Real)
            or not (math.isfinite(max_grad) and max_grad > 0)
        ):
            raise ValueError(f"max_grad must be a positive number, got {max_grad!r}")
        if on_nan not in ("raise", "warn", "ignore"):
            raise ValueError(f"on_nan must be 'raise', 'warn' or 'ignore', got {on_nan!r}")
        if checkpoint is not None:
            from xpnn.io import check_output_path

            # A checkpoint that cannot be written must fail now, not after an epoch.
            check_output_path(os.fspath(checkpoint), "checkpoint", example="run.npz", links=False)
        graph_step = _GraphStep(self, x, t, batch_size, max_grad) if cuda_graph else None
        if validation_data is not None:
            x_val, t_val = validation_data
            get_namespace(x, x_val, t_val)  # same backend and device as the training data
            self._check_data(xp, x_val, t_val, "x_test", "t_test")

        max_iters = data_size // batch_size
        # At least one record an epoch (the book records none when the
        # interval is longer than an epoch).
        eval_interval = min(eval_interval, max_iters)
        # The shuffling follows the data: permutations go to x's backend and device.
        rng = default_rng(seed, backend=backend_of(x))
        run = {
            "data_size": data_size,
            "batch_size": batch_size,
            "max_epoch": max_epoch,
            "max_grad": None if max_grad is None else float(max_grad),
            "eval_interval": eval_interval,
        }
        # Only checkpoints need it: a fit without them reads nothing more.
        fingerprint = None if checkpoint is None and resume is None else _fingerprint(xp, x, t)
        start_epoch, start_iter = 0, 0
        total_loss: Any = 0
        loss_count = 0
        # The run's first batch loss (the untrained loss): a 0-d device array
        # until the first record reads it with the running loss, then a float.
        initial_loss: Any = None
        high_records = 0  # records in a row above the divergence limit
        if resume is not None:
            # Changes nothing (model, optimizer, trainer) unless all of it fits.
            (start_epoch, start_iter, total_loss, loss_count, initial_loss, high_records) = (
                self._resume(resume, rng, run, fingerprint, x)
            )
        self.eval_interval = eval_interval
        self._last_checkpoint, self._last_position = None, ""
        self._skip_warned = self._divergence_warned = False
        bar = _progress_bar(max_epoch * max_iters, progress, start_epoch * max_iters + start_iter)
        say = bar.write if bar is not None else print
        start = time.perf_counter()
        epoch, iters = start_epoch, start_iter

        def save(position: tuple) -> None:
            self._save(
                checkpoint,
                {**run, "data": fingerprint},
                position,
                (total_loss, loss_count, initial_loss, high_records),
                on_nan,
            )

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
                    if initial_loss is None:
                        initial_loss = total_loss  # a new array: 0 + the first loss
                    if bar is not None:
                        bar.update(1)
                    if (iters + 1) % eval_interval == 0:
                        if isinstance(initial_loss, float):
                            avg = float(to_numpy(total_loss)) / loss_count
                        else:  # the first record reads the untrained loss too, in one read
                            both = to_numpy(xp.stack([total_loss, initial_loss]))
                            avg, initial_loss = float(both[0]) / loss_count, float(both[1])
                        self._check_finite(avg, iters, on_nan)
                        limit = self._divergence_limit(initial_loss, classes)
                        high_records = high_records + 1 if avg > limit else 0
                        if high_records == self.divergence_patience:
                            self._diverged(avg, limit, iters, on_nan)
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
                        save((epoch, iters + 1, epoch_rng))
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
                    save((epoch + 1, 0, rng.get_state()))
        except KeyboardInterrupt:
            where = (
                f"{self._where_saved()}; continue with fit(..., resume=<that file>)"
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

    def _check_data(self, xp: Any, x: Any, t: Any, xname: str, tname: str) -> tuple[int, int]:
        """Check shapes, dtypes and label range of a data set.

        Reading the label range is one small host read, once per fit.

        Returns:
            ``(samples, classes)``: the classes are the model's
            ``output_size``, else the one-hot width or the largest label + 1.
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
        seen = t.shape[1] if t.ndim == 2 else 1
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
            seen = high + 1
        return n, classes if classes is not None else seen

    # ------------------------------------------------------- the guards

    def _divergence_limit(self, initial_loss: float, classes: int) -> float:
        """The recorded loss above which a record counts towards divergence."""
        untrained = max(math.log(classes), 1.0)
        if math.isfinite(initial_loss):  # a NaN first loss is the NaN guard's business
            untrained = max(untrained, initial_loss)
        return self.divergence_factor * untrained

    def _diverged(self, avg: float, limit: float, iters: int, on_nan: str) -> None:
        if on_nan == "ignore" or (on_nan == "warn" and self._divergence_warned):
            return
        lr = getattr(self.optimizer, "lr", None)
        message = (
            f"the training diverged: the recorded loss was above {limit:.4g} "
            f"({self.divergence_factor:g} times the untrained loss) {self.divergence_patience} "
            f"times in a row, {avg:.4g} in epoch {self.current_epoch + 1} by iteration "
            f"{iters + 1}: try a smaller learning rate"
            + (f" (it is {lr:g})" if isinstance(lr, float) else "")
            + " or gradient clipping (max_grad)"
            + self._last_good()
        )
        if on_nan == "warn":
            self._divergence_warned = True
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            return
        raise FloatingPointError(message)

    def _check_finite(self, avg: float, iters: int, on_nan: str) -> None:
        if math.isfinite(avg) or on_nan == "ignore":
            return
        message = (
            f"the training loss became {avg} in epoch {self.current_epoch + 1}, by iteration "
            f"{iters + 1}: try a smaller learning rate or gradient clipping (max_grad)"
            + self._last_good()
        )
        if on_nan == "warn":
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            return
        raise FloatingPointError(message)

    def _where_saved(self) -> str:
        return f"the last complete checkpoint is {self._last_checkpoint} ({self._last_position})"

    def _last_good(self) -> str:
        return f"; {self._where_saved()}" if self._last_checkpoint else ""

    def _all_finite(self, running_loss: Any) -> bool:
        """Whether the parameters, the optimizer state and the running loss are finite.

        One reduction on the device and one read, per checkpoint.
        """
        arrays = _values(self.model.params)
        optimizer = self.optimizer
        for name in getattr(optimizer, "_state_names", ()):
            entry = getattr(optimizer, name, None)
            if entry is not None:
                arrays += _values(entry)
        if running_loss is not None:
            arrays.append(running_loss)
        xp = get_namespace(*arrays)
        flags = xp.stack([xp.all(xp.isfinite(a)) for a in arrays])
        return bool(to_numpy(xp.all(flags)))

    # -------------------------------------------------------- checkpoints

    def _save(
        self, path: Any, run: dict[str, Any], position: tuple, running: tuple, on_nan: str
    ) -> None:
        from xpnn.io import write_checkpoint

        epoch, next_iter, rng_state = position
        total_loss, loss_count, initial_loss, high_records = running
        where = (
            f"epoch {epoch + 1}, iteration {next_iter}"
            if next_iter
            else f"the end of epoch {epoch}"
        )
        if not self._all_finite(total_loss if loss_count else None):
            # Never replace a good checkpoint with one that cannot be resumed.
            if on_nan == "ignore" or (on_nan == "warn" and self._skip_warned):
                return
            kept = (
                self._where_saved()
                if self._last_checkpoint
                else "this fit wrote no checkpoint yet"
                + (f" ({path} is left as it was)" if Path(path).exists() else "")
            )
            message = (
                f"the parameters, the optimizer state or the running loss are NaN or infinite "
                f"at {where}: the checkpoint {path} was not written; {kept}; try a smaller "
                "learning rate or gradient clipping (max_grad)"
            )
            if on_nan == "warn":
                self._skip_warned = True
                warnings.warn(
                    message + " (later checkpoints that are not finite are skipped silently)",
                    RuntimeWarning,
                    stacklevel=4,
                )
                return
            raise FloatingPointError(message)
        progress = {
            **run,
            "epoch": epoch,
            "next_iter": next_iter,
            "rng": rng_state,
            "loss_count": loss_count,
            "high_loss_records": high_records,
            "current_epoch": self.current_epoch,
            "loss_list": self.loss_list,
            "train_acc_list": self.train_acc_list,
            "test_acc_list": self.test_acc_list,
        }
        extra = {"total_loss": total_loss if loss_count else 0.0, "initial_loss": initial_loss}
        written = write_checkpoint(path, self.model, self.optimizer, progress, extra)
        self._last_checkpoint, self._last_position = str(written), where

    def _resume(
        self, path: Any, rng: Any, run: dict[str, Any], fingerprint: dict[str, Any], x: Any
    ) -> tuple:
        """Check the whole checkpoint against this fit, then restore it.

        Returns:
            ``(epoch, next_iter, total_loss, loss_count, initial_loss,
            high_loss_records)``: where and how the run goes on.

        Raises:
            ModelFileError: Anything does not fit; the model, the optimizer
                and this trainer are then as they were.
        """
        from xpnn.io import _parse_checkpoint, _restore_checkpoint

        checkpoint = _parse_checkpoint(path, self.model, self.optimizer)
        progress = checkpoint.progress
        _check_progress(path, progress, run, fingerprint)
        total, initial_loss = _check_extra(path, checkpoint.extra, progress["loss_count"])
        loss_count = progress["loss_count"]
        total_loss = (
            asarray(total, dtype=total.dtype.name, backend=backend_of(x)) if loss_count else 0
        )
        # Everything is checked and on the device: from here on nothing fails.
        _restore_checkpoint(checkpoint, self.model, self.optimizer)
        rng.set_state(progress["rng"])
        self.current_epoch = progress["current_epoch"]
        self.loss_list = list(progress["loss_list"])
        self.train_acc_list = list(progress["train_acc_list"])
        self.test_acc_list = list(progress["test_acc_list"])
        return (
            progress["epoch"],
            progress["next_iter"],
            total_loss,
            loss_count,
            initial_loss,
            progress["high_loss_records"],
        )

    # ---------------------------------------------------------------- plot

    def plot(
        self,
        path: str | os.PathLike[str] | None = None,
        ylim: tuple[float, float] | None = None,
    ) -> Path | None:
        """Draw the loss curve (and the accuracy curves, if recorded).

        Args:
            path: Write the figure here (``.png``, ``.svg`` or ``.pdf``).
                Without it, as the book's ``plot()``, the figure is shown
                when matplotlib can show it (an interactive backend, or a
                notebook's inline one); otherwise it is written to
                ``xpnn_training.png`` in the current directory
                (``xpnn_training-2.png``... if that exists: no file is
                overwritten) and a line says where.
            ylim: ``(low, high)`` range of the loss axis (the book's ``ylim``).

        Returns:
            The file written, or None when the figure was shown.

        Raises:
            ValueError: Nothing recorded yet, a bad extension or ``ylim``.
        """
        from xpnn.plot import can_show, show_or_save, training_figure

        if not self.loss_list:
            raise ValueError("nothing to plot: call fit() first (with enough iterations)")
        if path is not None:
            from xpnn.plot import _output_path

            _output_path(path)  # a bad extension fails before any drawing
        accuracies = (self.train_acc_list, self.test_acc_list) if self.train_acc_list else ()
        fig = training_figure(
            self.loss_list,
            *accuracies,
            xlabel=f"iterations (x{self.eval_interval})",
            ylim=ylim,
            pyplot=path is None and can_show(),
        )
        return show_or_save(fig, path, default="xpnn_training.png")


def _fingerprint(xp: Any, x: Any, t: Any) -> dict[str, Any]:
    """Shapes, dtypes and a SHA-256 of up to 64 evenly spaced rows of ``x`` and ``t``.

    Cheap (the rows are gathered on the device and read once per fit) and
    the same on every backend, so a checkpoint refuses other data of the
    same size: another seed, shuffled rows or labels. It does not see a
    change confined to rows it does not sample.
    """
    n = x.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, FINGERPRINT_ROWS)).round().astype(np.int64))
    idx = asarray(rows, dtype="int64", backend=backend_of(x))
    result: dict[str, Any] = {"rows": len(rows)}
    for name, a in (("x", x), ("t", t)):
        sample = np.ascontiguousarray(to_numpy(xp.take(a, idx, axis=0)))
        result[name] = {
            "shape": list(a.shape),
            "dtype": _dtype_name(a.dtype),
            "sha256": hashlib.sha256(sample.tobytes()).hexdigest(),
        }
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_float_list(value: Any, low: float = -math.inf, high: float = math.inf) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, float) and (math.isnan(v) or low <= v <= high) for v in value
    )


def _rng_state_ok(state: Any) -> bool:
    """Whether ``state`` is a PCG64 state as ``Generator.get_state`` returns it."""
    if not isinstance(state, dict) or set(state) != {
        "bit_generator",
        "state",
        "has_uint32",
        "uinteger",
    }:
        return False
    inner = state["state"]
    if (
        state["bit_generator"] != "PCG64"
        or not isinstance(inner, dict)
        or set(inner) != {"state", "inc"}
        or not all(_is_int(v) and 0 <= v < 2**128 for v in inner.values())
        or inner["inc"] % 2 != 1  # PCG64's increment is odd
        or state["has_uint32"] not in (0, 1)
        or not _is_int(state["has_uint32"])
        or not (_is_int(state["uinteger"]) and 0 <= state["uinteger"] < 2**32)
    ):
        return False
    try:
        default_rng(0).set_state(state)  # numpy's own checks, on a scratch generator
    except (TypeError, ValueError, KeyError, OverflowError):
        return False
    return True


def _fingerprint_ok(data: Any) -> bool:
    if not isinstance(data, dict) or set(data) != {"rows", "x", "t"} or not _is_int(data["rows"]):
        return False
    for name in ("x", "t"):
        entry = data[name]
        if not (
            isinstance(entry, dict)
            and set(entry) == {"shape", "dtype", "sha256"}
            and isinstance(entry["shape"], list)
            and all(_is_int(d) and d >= 0 for d in entry["shape"])
            and isinstance(entry["dtype"], str)
            and isinstance(entry["sha256"], str)
            and len(entry["sha256"]) == 64
        ):
            return False
    return True


def _check_progress(
    path: Any, progress: dict[str, Any], run: dict[str, Any], fingerprint: dict[str, Any]
) -> None:
    """Check a checkpoint's progress fields, then that they fit this fit.

    Raises:
        ModelFileError: A missing, unknown or malformed field (named), other
            run settings or data than this fit's, or a position that no run
            could have reached.
    """
    from xpnn.io import ModelFileError

    damaged = "the checkpoint was damaged or edited: resume from another one or start again"

    def bad(field: str, want: str) -> ModelFileError:
        return ModelFileError(
            f"{path}: progress field {field!r} must be {want}, got {progress[field]!r}; {damaged}"
        )

    missing = [k for k in _PROGRESS_FIELDS if k not in progress]
    unknown = sorted(k for k in progress if k not in _PROGRESS_FIELDS)
    if missing or unknown:
        raise ModelFileError(
            f"{path}: progress fields missing {missing or 'none'}, unknown {unknown or 'none'}; "
            "written by another xpnn version? resume with that version or start again"
        )
    for key in ("data_size", "batch_size", "max_epoch", "eval_interval"):
        if not (_is_int(progress[key]) and progress[key] > 0):
            raise bad(key, "a positive int")
    grad = progress["max_grad"]
    if grad is not None and not (
        isinstance(grad, (int, float))
        and not isinstance(grad, bool)
        and math.isfinite(grad)
        and grad > 0
    ):
        raise bad("max_grad", "null or a positive number")
    for key in ("epoch", "next_iter", "loss_count", "high_loss_records", "current_epoch"):
        if not (_is_int(progress[key]) and progress[key] >= 0):
            raise bad(key, "an int >= 0")
    if not _is_float_list(progress["loss_list"]):
        raise bad("loss_list", "a list of floats")
    for key in ("train_acc_list", "test_acc_list"):
        if not _is_float_list(progress[key], 0.0, 1.0):
            raise bad(key, "a list of floats in [0, 1]")
    if len(progress["train_acc_list"]) != len(progress["test_acc_list"]):
        raise bad("test_acc_list", f"as long as train_acc_list ({len(progress['train_acc_list'])})")
    if not _rng_state_ok(progress["rng"]):
        raise bad("rng", "a PCG64 state as xpnn.random.Generator.get_state() returns it")
    if not _fingerprint_ok(progress["data"]):
        raise bad("data", "the fingerprint of x and t that fit() writes")

    for key in _RUN_FIELDS:
        if progress[key] != run[key]:
            raise ModelFileError(
                f"{path}: the checkpoint was written with {key}={progress[key]}, this fit has "
                f"{key}={run[key]}; resume with the arguments of the original run"
            )
    _compare_fingerprint(path, progress["data"], fingerprint)

    max_epoch, epoch, next_iter = run["max_epoch"], progress["epoch"], progress["next_iter"]
    max_iters = run["data_size"] // run["batch_size"]
    interval = run["eval_interval"]
    if epoch > max_epoch:
        raise bad("epoch", f"at most max_epoch ({max_epoch})")
    if next_iter >= max_iters or (epoch == max_epoch and next_iter):
        last = 0 if epoch == max_epoch else max_iters - 1
        raise bad("next_iter", f"from 0 to {last} in epoch {epoch} of {max_epoch}")
    # The loss sum is reset at each record, not at epoch ends: an epoch of
    # max_iters iterations carries max_iters % interval losses to the next.
    carried = max_iters % interval if epoch else 0
    count = next_iter % interval if next_iter >= interval else carried + next_iter
    if progress["loss_count"] != count:
        raise bad("loss_count", f"{count} at epoch {epoch}, iteration {next_iter}")
    if progress["current_epoch"] < epoch:
        raise bad("current_epoch", f"at least epoch ({epoch})")
    records = epoch * (max_iters // interval) + next_iter // interval
    if len(progress["loss_list"]) < records:
        raise ModelFileError(
            f"{path}: progress field 'loss_list' has {len(progress['loss_list'])} records, "
            f"this run made {records} by epoch {epoch}, iteration {next_iter}; {damaged}"
        )
    if progress["high_loss_records"] > len(progress["loss_list"]):
        raise bad("high_loss_records", f"at most the {len(progress['loss_list'])} records")


def _compare_fingerprint(path: Any, stored: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse other data than the checkpoint's, saying how they differ."""
    from xpnn.io import ModelFileError

    differences = []
    for name in ("x", "t"):
        old, new = stored[name], now[name]
        if old["shape"] != new["shape"]:
            differences.append(
                f"{name} has shape {tuple(new['shape'])}, the checkpoint's {tuple(old['shape'])}"
            )
        elif old["dtype"] != new["dtype"]:
            differences.append(f"{name} is {new['dtype']}, the checkpoint's was {old['dtype']}")
        elif stored["rows"] != now["rows"] or old["sha256"] != new["sha256"]:
            differences.append(
                f"{name} has the checkpoint's shape and dtype but other values (its "
                f"{now['rows']} sampled rows differ: other data, another seed, or shuffled "
                "rows or labels)"
            )
    if differences:
        raise ModelFileError(
            f"{path}: the checkpoint was trained on other data: {'; '.join(differences)}; "
            "resume with the x and t of the original run"
        )


def _check_extra(path: Any, extra: dict[str, np.ndarray], loss_count: int) -> tuple:
    """The running loss sum (host 0-d array) and the untrained loss (float)."""
    from xpnn.io import ModelFileError

    if sorted(extra) != sorted(_EXTRA_ARRAYS):
        raise ModelFileError(
            f"{path}: extra arrays {sorted(extra)}, expected {sorted(_EXTRA_ARRAYS)}; "
            "written by another xpnn version? resume with that version or start again"
        )
    for name in _EXTRA_ARRAYS:
        a = extra[name]
        if a.shape != () or not np.issubdtype(a.dtype, np.floating):
            raise ModelFileError(
                f"{path}: extra/{name} must be a 0-d float array, got shape {a.shape} "
                f"and dtype {a.dtype}; the checkpoint was damaged or edited"
            )
    total = extra["total_loss"]
    if not np.isfinite(total) or (loss_count == 0 and total != 0):
        raise ModelFileError(
            f"{path}: extra/total_loss is {float(total)} with loss_count {loss_count} "
            "(it must be finite, and 0 when nothing is summed); the checkpoint was damaged "
            "or edited"
        )
    return total, float(extra["initial_loss"])


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

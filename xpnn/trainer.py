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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xpnn.backend import backend_of, get_namespace, to_numpy
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
            model.backward()
            return loss, model.grads
        grads = model.gradient(x, t)
        # Chapter-4 models that keep the batch loss spare a second forward pass.
        loss = getattr(getattr(model, "loss_layer", None), "loss", None)
        return (model.loss(x, t) if loss is None else loss), grads

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
    ) -> Trainer:
        """Train for ``max_epoch`` epochs of ``len(x) // batch_size`` iterations.

        Args:
            x: Inputs ``(N, features)`` on the model's backend.
            t: Labels: one-hot ``(N, classes)`` or integers ``(N,)``.
            max_epoch: Epochs.
            batch_size: Samples per iteration (the last partial batch of an
                epoch is dropped, as in the book).
            max_grad: Clip the global gradient norm to this, if given.
            eval_interval: Record (and print) the average loss every this
                many iterations of an epoch (at most once an epoch); the only
                point where the loss is read from the device.
            validation_data: ``(x_test, t_test)``; when given, train and test
                accuracy are recorded after each epoch (the chapter-4 curves).
            seed: Seed of the shuffling (the same on every backend).
            progress: Show a progress bar (tqdm) over the iterations.
            verbose: Print the book's ``| epoch 1 | iter 1 / 10 | time 0[s] |
                loss 1.10`` lines.

        Returns:
            The trainer itself (its lists hold the curves).

        Raises:
            ValueError: Bad sizes or arguments.
            FloatingPointError: The loss became NaN or infinite.
        """
        xp = get_namespace(x, t)
        data_size = x.shape[0]
        if t.shape[0] != data_size:
            raise ValueError(f"x has {data_size} samples but t has {t.shape[0]}")
        for name, value in (
            ("max_epoch", max_epoch),
            ("batch_size", batch_size),
            ("eval_interval", eval_interval),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if batch_size > data_size:
            raise ValueError(f"batch_size {batch_size} is larger than the data ({data_size})")
        if max_grad is not None and not max_grad > 0:
            raise ValueError(f"max_grad must be positive, got {max_grad!r}")
        if validation_data is not None:
            x_val, t_val = validation_data
            get_namespace(x, x_val, t_val)  # same backend and device as the training data

        max_iters = data_size // batch_size
        # At least one record an epoch (the book records none when the
        # interval is longer than an epoch).
        eval_interval = min(eval_interval, max_iters)
        self.eval_interval = eval_interval
        # The shuffling follows the data: permutations go to x's backend and device.
        rng = default_rng(seed, backend=backend_of(x))
        bar = _progress_bar(max_epoch * max_iters, progress)
        say = bar.write if bar is not None else print
        total_loss, loss_count = 0, 0
        start = time.perf_counter()
        try:
            for _ in range(max_epoch):
                order = rng.permutation(data_size)  # one host-to-device copy per epoch
                for iters in range(max_iters):
                    idx = order[iters * batch_size : (iters + 1) * batch_size]
                    batch_x = xp.take(x, idx, axis=0)
                    batch_t = xp.take(t, idx, axis=0)
                    loss, grads = self._step(batch_x, batch_t)
                    if max_grad is not None:
                        clip_grads(grads, max_grad)
                    self.optimizer.update(self.model.params, grads)
                    total_loss = total_loss + loss  # stays on the device
                    loss_count += 1
                    if bar is not None:
                        bar.update(1)
                    if (iters + 1) % eval_interval == 0:
                        avg = float(to_numpy(total_loss)) / loss_count
                        self._check_finite(avg, iters)
                        self.loss_list.append(avg)
                        if verbose:
                            say(
                                f"| epoch {self.current_epoch + 1} |  iter {iters + 1} / "
                                f"{max_iters} | time {time.perf_counter() - start:.0f}[s] "
                                f"| loss {avg:.2f}"
                            )
                        total_loss, loss_count = 0, 0
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
        finally:
            if bar is not None:
                bar.close()
        return self

    def _check_finite(self, avg: float, iters: int) -> None:
        if not math.isfinite(avg):
            raise FloatingPointError(
                f"the training loss became {avg} in epoch {self.current_epoch + 1}, by iteration "
                f"{iters + 1}: try a smaller learning rate or gradient clipping (max_grad)"
            )

    def plot(self, path: str | os.PathLike[str], ylim: Iterable[float] | None = None) -> Path:
        """Write the loss curve (and the accuracy curves, if recorded) to ``path``."""
        from xpnn.plot import plot_loss, plot_training

        if not self.loss_list:
            raise ValueError("nothing to plot: call fit() first (with enough iterations)")
        xlabel = f"iterations (x{self.eval_interval})"
        if self.train_acc_list:
            return plot_training(self.loss_list, self.train_acc_list, self.test_acc_list, path)
        return plot_loss(self.loss_list, path, xlabel=xlabel)


def _progress_bar(total: int, enabled: bool) -> Any:
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
        unit="iter",
        leave=False,
        dynamic_ncols=True,
        disable=False if interactive else None,
    )

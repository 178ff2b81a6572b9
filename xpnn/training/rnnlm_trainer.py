"""The book's ``RnnlmTrainer`` (vol. 2, ch. 5-6): truncated BPTT on one corpus.

``RnnlmTrainer(model, optimizer).fit(xs, ts, max_epoch, batch_size,
time_size, max_grad, eval_interval)`` cuts the corpus ``xs`` (word ids) and
its next words ``ts`` into ``batch_size`` rows read in parallel from the
book's offsets ``i * (data_size // batch_size)``, ``time_size`` steps at a
time, and prints the book's ``| epoch 1 |  iter 1 / 13 | time 0[s] |
perplexity 999.00`` lines.

The batches are taken on the data's device (one index array and one
``xp.take`` per batch); the losses are summed on the device and read to the
host only when a perplexity is recorded. Unlike the book's, the trainer
calls no ``remove_duplicate``: xpnn's models list a shared (tied) weight
once in ``params``, with its summed gradient in ``grads``. It keeps no
checkpoints and cannot resume a run (yet).
"""

from __future__ import annotations

import math
import numbers
import os
import time
from pathlib import Path
from typing import Any

from xpnn.backend import BackendMismatchError, device_of, get_namespace, to_numpy
from xpnn.training.clipping import clip_grads
from xpnn.training.model_state import _values

__all__ = ["RnnlmTrainer"]

_LINE = "| epoch %d |  iter %d / %d | time %d[s] | perplexity %.2f"


def _positive_int(name: str, value: Any, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


class RnnlmTrainer:
    """Train a language model (:mod:`xpnn.models.rnnlm`) with truncated BPTT.

    Args:
        model: ``forward(xs, ts)`` returning the loss (a 0-d array),
            ``backward()``, ``params`` and ``grads`` (a shared weight listed
            once: no ``remove_duplicate`` is needed).
        optimizer: Anything with ``update(params, grads)``.

    Attributes:
        ppl_list: The perplexity of each ``eval_interval`` (floats).
        current_epoch: Epochs run so far.
        time_idx: Where the next batch starts reading (the book's).
        eval_interval: The last ``fit``'s interval.

    Raises:
        TypeError: The model or the optimizer lacks what training calls.
    """

    def __init__(self, model: Any, optimizer: Any):
        missing = [a for a in ("forward", "backward", "params", "grads") if not hasattr(model, a)]
        if missing:
            raise TypeError(f"model has no {', '.join(missing)}: not a layered model")
        if not callable(getattr(optimizer, "update", None)):
            raise TypeError("optimizer has no update(params, grads) method")
        self.model = model
        self.optimizer = optimizer
        self.time_idx = 0
        self.ppl_list: list[float] = []
        self.eval_interval: int | None = None
        self.current_epoch = 0

    def get_batch(self, x: Any, t: Any, batch_size: int, time_size: int) -> tuple[Any, Any]:
        """The next ``(batch_size, time_size)`` inputs and targets, on the data's device.

        Row ``i`` reads from ``i * (len(x) // batch_size) + time_idx``,
        wrapping around the end of the corpus; ``time_idx`` moves on by
        ``time_size``. The book's double loop, as one index array.
        """
        xp = get_namespace(x, t)
        data_size = int(x.shape[0])
        jump = data_size // batch_size
        dev = device_of(x)
        offsets = xp.arange(batch_size, dtype=xp.int64, device=dev) * jump
        steps = xp.arange(time_size, dtype=xp.int64, device=dev) + (self.time_idx % data_size)
        index = xp.reshape((offsets[:, None] + steps[None, :]) % data_size, (-1,))
        shape = (batch_size, time_size)
        batch_x = xp.reshape(xp.take(xp.reshape(x, (-1,)), index, axis=0), shape)
        batch_t = xp.reshape(xp.take(xp.reshape(t, (-1,)), index, axis=0), shape)
        self.time_idx += time_size
        return batch_x, batch_t

    def fit(
        self,
        xs: Any,
        ts: Any,
        max_epoch: int = 10,
        batch_size: int = 20,
        time_size: int = 35,
        max_grad: float | None = None,
        eval_interval: int | None = 20,
    ) -> RnnlmTrainer:
        """Train for ``max_epoch`` epochs of ``len(xs) // (batch_size * time_size)`` iterations.

        Args:
            xs: The corpus's word ids, 1-D integers.
            ts: The next word of each, 1-D integers of the same length.
            max_epoch, batch_size, time_size: Positive ints;
                ``batch_size * time_size`` must not exceed ``len(xs)``.
            max_grad: Clip the global gradient norm to this (a positive
                number), if given.
            eval_interval: Print and record the perplexity (exp of the mean
                loss since the last record) at iterations ``0, k, 2k...`` of
                each epoch, as the book's ``iters % eval_interval == 0``;
                None: never. The only reads of the loss from the device.

        Returns:
            The trainer (``ppl_list`` holds the curve).

        Raises:
            ValueError: A bad argument (named); everything is checked
                before anything changes.
            TypeError, xpnn.BackendMismatchError: ``xs``/``ts`` are not
                arrays, or not on the model's backend and device.
        """
        data_size = self._check(xs, ts, max_epoch, batch_size, time_size, max_grad, eval_interval)
        model, optimizer = self.model, self.optimizer
        max_iters = data_size // (batch_size * time_size)
        self.time_idx = 0
        self.ppl_list = []
        self.eval_interval = eval_interval
        total_loss: Any = 0
        loss_count = 0
        start_time = time.time()
        for _epoch in range(max_epoch):
            for iters in range(max_iters):
                batch_x, batch_t = self.get_batch(xs, ts, batch_size, time_size)
                loss = model.forward(batch_x, batch_t)
                model.backward()
                if max_grad is not None:
                    clip_grads(model.grads, max_grad)
                optimizer.update(model.params, model.grads)
                total_loss = total_loss + loss  # on the device
                loss_count += 1
                if eval_interval is not None and iters % eval_interval == 0:
                    avg = float(to_numpy(total_loss)) / loss_count  # the one read
                    try:
                        ppl = math.exp(avg)
                    except OverflowError:
                        ppl = math.inf
                    elapsed = time.time() - start_time
                    print(_LINE % (self.current_epoch + 1, iters + 1, max_iters, elapsed, ppl))
                    self.ppl_list.append(ppl)
                    total_loss, loss_count = 0, 0
            self.current_epoch += 1
        return self

    def _check(
        self,
        xs: Any,
        ts: Any,
        max_epoch: Any,
        batch_size: Any,
        time_size: Any,
        max_grad: Any,
        eval_interval: Any,
    ) -> int:
        """Refuse bad data or settings (nothing changes); returns ``len(xs)``."""
        for name, a in (("xs", xs), ("ts", ts)):
            if not hasattr(a, "shape") or not hasattr(a, "dtype"):
                raise TypeError(f"{name} must be an array, got {type(a).__name__}")
        try:
            xp = get_namespace(xs, ts)
        except BackendMismatchError as exc:
            raise BackendMismatchError(f"xs and ts: {exc}") from None
        params = _values(self.model.params)
        if params:
            try:
                get_namespace(xs, params[0])
            except BackendMismatchError as exc:
                raise BackendMismatchError(f"xs and the model's parameters: {exc}") from None
        for name, a in (("xs", xs), ("ts", ts)):
            if a.ndim != 1:
                raise ValueError(f"{name} must be 1-D word ids, got shape {tuple(a.shape)}")
            if not xp.isdtype(a.dtype, "integral"):
                raise ValueError(f"{name} must hold integer word ids, got dtype {a.dtype}")
        if xs.shape[0] != ts.shape[0]:
            raise ValueError(f"xs and ts differ in length: {xs.shape[0]} and {ts.shape[0]}")
        _positive_int("max_epoch", max_epoch)
        _positive_int("batch_size", batch_size)
        _positive_int("time_size", time_size)
        _positive_int("eval_interval", eval_interval, none_ok=True)
        if max_grad is not None and (
            isinstance(max_grad, bool)
            or not isinstance(max_grad, numbers.Real)
            or not math.isfinite(max_grad)
            or max_grad <= 0
        ):
            raise ValueError(f"max_grad must be a positive number or None, got {max_grad!r}")
        data_size = int(xs.shape[0])
        if batch_size * time_size > data_size:
            raise ValueError(
                f"batch_size * time_size = {batch_size} * {time_size} = "
                f"{batch_size * time_size} exceeds the {data_size} words of xs: "
                "no full iteration fits"
            )
        return data_size

    def plot(
        self,
        ylim: tuple[float, float] | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> Path | None:
        """Draw the perplexity curve (the book's ``plot(ylim=None)``).

        Shown when matplotlib can show it, else written (see
        :func:`xpnn.plot.show_or_save`; default ``xpnn_perplexity.png``).

        Returns:
            The file written, or None when the figure was shown.

        Raises:
            ValueError: Nothing recorded yet, a bad extension or ``ylim``.
        """
        from xpnn.plot import can_show, show_or_save, training_figure

        if not self.ppl_list:
            raise ValueError("nothing to plot: call fit() first (with eval_interval set)")
        if path is not None:
            from xpnn.plot import _output_path

            _output_path(path)  # a bad extension fails before any drawing
        fig = training_figure(
            self.ppl_list,
            xlabel=f"iterations (x{self.eval_interval})",
            ylim=ylim,
            pyplot=path is None and can_show(),
        )
        fig.axes[0].set_ylabel("perplexity")
        return show_or_save(fig, path, default="xpnn_perplexity.png")

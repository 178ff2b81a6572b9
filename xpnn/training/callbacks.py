"""The parts of ``Trainer.fit`` that look at the device, and your own callbacks.

``Trainer.fit`` runs the book's loop and tells its parts of its progress
through five events (:mod:`xpnn.training.events`: ``on_fit_start``,
``on_batch_end``, ``on_record``, ``on_epoch_end``, ``on_fit_end``), each with
the run's :class:`FitState`. ``fit`` makes its own parts from its arguments
and calls them in this order, then the ``callbacks=[...]`` you pass:

* :class:`Guard` (``on_nan``): stops a run whose loss is NaN or diverges, and
  never lets a checkpoint that is not finite be written;
* :class:`Evaluator` (``validation_data``, ``eval_samples``): train and test
  accuracy per epoch;
* :class:`Reporter` (``verbose``, ``progress``; :mod:`xpnn.training.reporter`):
  the book's printed lines, the progress bar, and where to resume after Ctrl-C;
* :class:`xpnn.training.checkpointer.Checkpointer` (``checkpoint``, ``resume``).

:class:`IterationLosses` keeps every iteration's loss (read once an epoch):
``Trainer.train``, the book's ch. 6 form, uses it for ``train_loss_list``.

This module holds the parts that read the device (a few small reads, each
where the docstring says): the guard, the accuracies and the iteration
losses. The events, :class:`FitState`, :class:`Callback`,
:class:`CallbackList` and :class:`Reporter` are importable from here too.

A callback of your own subclasses :class:`Callback` and overrides the events
it needs; an event it does not override costs nothing::

    class HalveLearningRate(Callback):
        def on_epoch_end(self, state):
            state.trainer.optimizer.lr /= 2

    trainer.fit(x, t, callbacks=[HalveLearningRate()])

An exception raised in an event ends ``fit`` (``on_fit_end`` still runs).
"""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any

from xpnn.backend import device_of, get_namespace, to_numpy
from xpnn.training.events import EVENTS, Callback, CallbackList, FitState
from xpnn.training.model_state import _values, hidden_states, model_state_arrays
from xpnn.training.reporter import Reporter

__all__ = [
    "DIVERGENCE_FACTOR",
    "DIVERGENCE_PATIENCE",
    "EVENTS",
    "Callback",
    "CallbackList",
    "Evaluator",
    "FitState",
    "Guard",
    "IterationLosses",
    "Reporter",
    "accuracy",
]

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


# ------------------------------------------------------------------ guard


class Guard(Callback):
    """The divergence and NaN guard of ``Trainer.fit(on_nan=...)``.

    At each record it acts when the average loss is NaN or infinite, or when
    ``trainer.divergence_patience`` records in a row exceed
    ``trainer.divergence_factor`` times the untrained loss max(ln C, first
    batch loss, 1); :meth:`checkpoint_ok` tells a checkpoint writer whether
    the parameters, the optimizer state and the running loss are finite.

    Args:
        on_nan: ``"raise"`` (FloatingPointError), ``"warn"`` (a
            RuntimeWarning, once a run for divergence and once for skipped
            checkpoints; training goes on) or ``"ignore"``.

    Raises:
        ValueError: Another ``on_nan``.
    """

    def __init__(self, on_nan: str = "raise"):
        if on_nan not in ("raise", "warn", "ignore"):
            raise ValueError(f"on_nan must be 'raise', 'warn' or 'ignore', got {on_nan!r}")
        self.on_nan = on_nan
        self._divergence_warned = self._skip_warned = False

    def on_fit_start(self, state: FitState) -> None:
        self._divergence_warned = self._skip_warned = False  # warn once per fit

    def on_record(self, state: FitState, avg_loss: float) -> None:
        self._check_finite(state, avg_loss)
        limit = self.divergence_limit(state)
        state.high_loss_records = state.high_loss_records + 1 if avg_loss > limit else 0
        if state.high_loss_records == state.trainer.divergence_patience:
            self._diverged(state, avg_loss, limit)

    def divergence_limit(self, state: FitState) -> float:
        """The recorded loss above which a record counts towards divergence."""
        untrained = max(math.log(state.classes), 1.0)
        initial = state.initial_loss
        if isinstance(initial, float) and math.isfinite(initial):  # NaN: the NaN guard's
            untrained = max(untrained, initial)
        return state.trainer.divergence_factor * untrained

    def _check_finite(self, state: FitState, avg: float) -> None:
        if math.isfinite(avg) or self.on_nan == "ignore":
            return
        self._act(
            f"the training loss became {avg} in epoch {state.trainer.current_epoch + 1}, by "
            f"iteration {state.iteration + 1}: try a smaller learning rate or gradient clipping "
            f"(max_grad){_note(state.where_saved())}"
        )

    def _diverged(self, state: FitState, avg: float, limit: float) -> None:
        if self.on_nan == "ignore" or (self.on_nan == "warn" and self._divergence_warned):
            return
        trainer = state.trainer
        lr = getattr(trainer.optimizer, "lr", None)
        self._divergence_warned = True
        self._act(
            f"the training diverged: the recorded loss was above {limit:.4g} "
            f"({trainer.divergence_factor:g} times the untrained loss) "
            f"{trainer.divergence_patience} times in a row, {avg:.4g} in epoch "
            f"{trainer.current_epoch + 1} by iteration {state.iteration + 1}: try a smaller "
            "learning rate"
            + (f" (it is {lr:g})" if isinstance(lr, float) else "")
            + f" or gradient clipping (max_grad){_note(state.where_saved())}"
        )

    def checkpoint_ok(self, state: FitState, path: Any, where: str, exists: bool) -> bool:
        """Whether a checkpoint at ``where`` may be written to ``path`` (one device read).

        It may when the parameters, the model's state arrays (running
        statistics), the optimizer state and the running loss are finite;
        otherwise, by ``on_nan``, this raises FloatingPointError, warns
        (once a run) or says nothing, and returns False: a checkpoint
        that cannot be resumed never replaces the last good one.
        """
        if _all_finite(state):
            return True
        if self.on_nan == "ignore" or (self.on_nan == "warn" and self._skip_warned):
            return False
        kept = state.where_saved() or "this fit wrote no checkpoint yet" + (
            f" ({path} is left as it was)" if exists else ""
        )
        self._skip_warned = True
        self._act(
            f"the parameters, the model's running statistics, the optimizer state or the running "
            "loss are NaN or infinite at "
            f"{where}: the checkpoint {path} was not written; {kept}; try a smaller learning "
            "rate or gradient clipping (max_grad)",
            " (later checkpoints that are not finite are skipped silently)",
        )
        return False

    def _act(self, message: str, warn_note: str = "") -> None:
        if self.on_nan == "warn":
            warnings.warn(message + warn_note, RuntimeWarning, stacklevel=_caller_level())
            return
        raise FloatingPointError(message)


def _note(text: str) -> str:
    return f"; {text}" if text else ""


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside xpnn: the user's fit() call."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("xpnn."):
        frame, level = frame.f_back, level + 1
    return level


def _all_finite(state: FitState) -> bool:
    """Whether the parameters, the model's state arrays (BatchNormalization's
    running statistics), the hidden states it carries (a language model's), the
    optimizer state and the running loss are finite.

    One reduction on the device and one read.
    """
    trainer = state.trainer
    model = trainer.model
    arrays = _values(model.params) + list(model_state_arrays(model).values())
    arrays += list(hidden_states(model).values())
    optimizer = trainer.optimizer
    for name in getattr(optimizer, "_state_names", ()):
        entry = getattr(optimizer, name, None)
        if entry is not None:
            arrays += _values(entry)
    if state.loss_count:
        arrays.append(state.total_loss)
    xp = get_namespace(*arrays)
    flags = xp.stack([xp.all(xp.isfinite(a)) for a in arrays])
    return bool(to_numpy(xp.all(flags)))


# -------------------------------------------------------------- evaluator


def accuracy(model: Any, x: Any, t: Any) -> float:
    """Fraction of ``x`` ``(N, ...)`` that ``model`` classifies as ``t`` (one read).

    Uses ``model.accuracy`` if it has one, else the argmax of
    ``model.predict``; ``t`` is ``(N,)`` labels or ``(N, classes)`` one-hot.
    """
    if hasattr(model, "accuracy"):
        return float(to_numpy(model.accuracy(x, t)))
    xp = get_namespace(x, t)
    y = xp.argmax(model.predict(x), axis=1)
    labels = t if t.ndim == 1 else xp.argmax(t, axis=1)
    return float(to_numpy(xp.mean(xp.astype(y == labels, x.dtype))))


#: When ``fit`` measures the accuracies (``accuracy_at``): after each epoch,
#: or after the first iteration of each epoch as the book's ch. 6 Trainer.
ACCURACY_AT = ("epoch_end", "first_iteration")


class Evaluator(Callback):
    """Train and test accuracy once an epoch (the chapter-4 curves).

    Appends to ``trainer.train_acc_list`` (on the training data of the fit)
    and ``trainer.test_acc_list`` (on ``x_test``, ``t_test``): two reads an
    epoch, after each epoch or, with ``at="first_iteration"``, after the
    first iteration of each epoch (as the book's ch. 6 ``Trainer`` measures,
    at ``current_iter % iter_per_epoch == 0``). ``fit(validation_data=...)``
    checks the data before making one.

    Args:
        x_test: Inputs ``(N, ...)`` shaped as the training inputs.
        t_test: Labels ``(N,)`` or one-hot ``(N, classes)``.
        samples: Measure both accuracies on the first ``samples`` rows of
            the training and the test data only (the book's
            ``evaluate_sample_num_per_epoch``: faster, noisier); None: on
            all of them. A count above a data set's size takes all of it.
        at: When: ``"epoch_end"`` (the trained model of each epoch) or
            ``"first_iteration"`` (the book's ch. 6 ``Trainer``).

    Raises:
        ValueError: ``samples`` is not None or a positive int, or ``at`` is
            neither name.
    """

    def __init__(self, x_test: Any, t_test: Any, samples: int | None = None, at: str = "epoch_end"):
        if at not in ACCURACY_AT:
            raise ValueError(
                f"accuracy_at must be one of {', '.join(map(repr, ACCURACY_AT))}, got {at!r}"
            )
        if samples is not None and (
            isinstance(samples, bool) or not isinstance(samples, int) or samples <= 0
        ):
            raise ValueError(
                f"evaluate_sample_num_per_epoch (samples) must be None or a positive int, "
                f"got {samples!r}"
            )
        self.x_test, self.t_test, self.samples, self.at = x_test, t_test, samples, at

    def _first(self, x: Any, t: Any) -> tuple[Any, Any]:
        n = self.samples
        if n is None or n >= x.shape[0]:
            return x, t
        return x[:n, ...], t[:n, ...]

    def on_batch_end(self, state: FitState, loss: Any) -> None:
        if self.at == "first_iteration" and state.iteration == 0:
            self._measure(state)

    def on_epoch_end(self, state: FitState) -> None:
        if self.at == "epoch_end":
            self._measure(state)

    def _measure(self, state: FitState) -> None:
        trainer = state.trainer
        trainer.train_acc_list.append(accuracy(trainer.model, *self._first(state.x, state.t)))
        trainer.test_acc_list.append(
            accuracy(trainer.model, *self._first(self.x_test, self.t_test))
        )


class IterationLosses(Callback):
    """The loss of every iteration, read from the device once an epoch.

    Each batch loss is written into a device buffer (one small device op an
    iteration, no read); after each epoch, and when fit ends early, the
    buffer is read at once and its values appended to ``losses``. The book's
    ch. 6 ``Trainer.train`` fills its ``train_loss_list`` so.

    Args:
        losses: The list to append to (floats); a new one if omitted.

    Attributes:
        losses: The losses so far, one float per iteration, in order.
    """

    def __init__(self, losses: list[float] | None = None):
        self.losses: list[float] = [] if losses is None else losses
        self._buffer: Any = None
        self._start = self._stop = 0  # the iterations of the buffer not read yet

    def on_fit_start(self, state: FitState) -> None:
        self._buffer, self._start = None, state.start_iter
        self._stop = self._start

    def on_batch_end(self, state: FitState, loss: Any) -> None:
        i = state.iteration
        if not hasattr(loss, "shape"):  # a model whose loss is a Python number
            self.losses.append(float(loss))
            self._start = self._stop = i + 1
            return
        if self._buffer is None or self._buffer.dtype != loss.dtype:
            self._flush()
            # The data's namespace and device: NumPy gives float64 losses as
            # np.float64 scalars, which get_namespace refuses.
            self._buffer = state.xp.zeros(
                (state.max_iters,), dtype=loss.dtype, device=device_of(state.x)
            )
            self._start = i
        self._buffer[i] = loss  # a copy on the device: the loss array may be reused
        self._stop = i + 1

    def on_epoch_end(self, state: FitState) -> None:
        self._flush()
        self._start = self._stop = 0

    def on_fit_end(self, state: FitState) -> None:
        self._flush()  # the iterations of an epoch that an exception cut short

    def _flush(self) -> None:
        if self._buffer is not None and self._stop > self._start:
            values = to_numpy(self._buffer[self._start : self._stop])
            self.losses.extend(float(v) for v in values)
        self._start = self._stop

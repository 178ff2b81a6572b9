"""The events of ``Trainer.fit`` and the parts that hook into them.

``Trainer.fit`` runs the book's loop: take a mini-batch, step, and every
``eval_interval`` iterations record the average loss. Everything else a run
does is a part with one job, told of the loop's progress through five events
(as Keras callbacks, PyTorch Lightning's callbacks or fastai's events):

* ``on_fit_start(state)``: before the first iteration (after a resume);
* ``on_batch_end(state, loss)``: after each iteration; ``loss`` is the batch
  loss, a 0-d array on the device, valid until the next iteration (copy it to
  keep it); reading it (``float(...)``) waits for the device, so do it only
  now and then;
* ``on_record(state, avg_loss)``: every ``eval_interval`` iterations, the
  average loss (a float, read once), before it joins ``trainer.loss_list``;
* ``on_epoch_end(state)``: after each epoch (``trainer.current_epoch`` counts
  it, the accuracies are recorded);
* ``on_fit_end(state)``: when fit ends, also by an exception (``state.error``),
  as a ``finally`` block.

Each event gets the :class:`FitState` of the run: the trainer, the data, the
settings and the position. ``fit`` makes its own parts from its arguments and
calls them in this order, then the ``callbacks=[...]`` you pass:

* :class:`Guard` (``on_nan``): stops a run whose loss is NaN or diverges, and
  never lets a checkpoint that is not finite be written;
* :class:`Evaluator` (``validation_data``, ``eval_samples``): train and test
  accuracy per epoch;
* :class:`Reporter` (``verbose``, ``progress``): the book's printed lines, the
  progress bar, and where to resume after Ctrl-C;
* :class:`xpnn.training.checkpointer.Checkpointer` (``checkpoint``, ``resume``).

:class:`IterationLosses` keeps every iteration's loss (read once an epoch):
``Trainer.train``, the book's ch. 6 form, uses it for ``train_loss_list``.

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
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from xpnn.backend import device_of, get_namespace, to_numpy

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

#: The events, in the order a run meets them.
EVENTS = ("on_fit_start", "on_batch_end", "on_record", "on_epoch_end", "on_fit_end")

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


def _values(arrays: Any) -> list[Any]:
    """The arrays of a params/grads list or dict, in order."""
    return list(arrays.values()) if isinstance(arrays, Mapping) else list(arrays)


@dataclass(eq=False, slots=True)
class FitState:
    """One ``fit`` call: what the loop and its parts share.

    Settings (fixed for the run): ``trainer``, ``x`` ``(N, ...)`` and ``t``
    (``(N,)`` labels or ``(N, classes)`` one-hot), ``xp`` (their namespace),
    ``classes``, ``validation_data`` (or None), ``data_size`` (N),
    ``batch_size``, ``max_epoch``, ``max_grad``, ``eval_interval`` (at most
    ``max_iters``), ``max_iters`` (iterations an epoch, ``N // batch_size``),
    ``rng`` (the shuffling generator), ``precision`` (the run's
    :class:`xpnn.training.precision.MixedPrecision`, or None).

    Position: ``epoch`` (0-based, the epoch running), ``iteration`` (0-based
    index in the epoch of the iteration just run; ``max_iters`` after the
    epoch), ``start_iter`` (where a resumed run goes on in its first epoch),
    ``epoch_rng`` (the generator's state when this epoch was shuffled: it
    replays the epoch's order on resume).

    Running loss (on the device until a record reads it): ``total_loss`` (the
    sum of the ``loss_count`` losses since the last record, 0 when none),
    ``initial_loss`` (the run's first batch loss: a 0-d array until the first
    record reads it, then a float), ``high_loss_records`` (records in a row
    above the divergence limit).

    Also ``last_checkpoint`` and ``last_position`` (the last file written and
    where in the run, for messages) and ``error`` (the exception that ends
    the run, during ``on_fit_end``).
    """

    trainer: Any
    x: Any
    t: Any
    xp: Any
    classes: int
    data_size: int
    batch_size: int
    max_epoch: int
    max_grad: float | None
    eval_interval: int
    max_iters: int
    rng: Any
    validation_data: tuple[Any, Any] | None = None
    precision: Any = None  # the run's xpnn.MixedPrecision, or None
    epoch: int = 0
    iteration: int = 0
    start_iter: int = 0
    epoch_rng: Any = None
    total_loss: Any = 0
    loss_count: int = 0
    initial_loss: Any = None
    high_loss_records: int = 0
    last_checkpoint: str | None = None
    last_position: str = ""
    error: BaseException | None = None

    def add_loss(self, loss: Any) -> None:
        """Add a batch loss (a 0-d device array) to the running sum, on the device."""
        self.total_loss = self.total_loss + loss
        self.loss_count += 1
        if self.initial_loss is None:
            self.initial_loss = self.total_loss  # a new array: 0 + the first loss

    def settings(self) -> dict[str, Any]:
        """The run settings a checkpoint records (a resume must use the same)."""
        return {
            "data_size": self.data_size,
            "batch_size": self.batch_size,
            "max_epoch": self.max_epoch,
            "max_grad": None if self.max_grad is None else float(self.max_grad),
            "eval_interval": self.eval_interval,
            "precision": None if self.precision is None else self.precision.config(),
        }

    def where_saved(self) -> str:
        """Where the last good checkpoint is, for messages ("" if none was written)."""
        if not self.last_checkpoint:
            return ""
        return f"the last complete checkpoint is {self.last_checkpoint} ({self.last_position})"


class Callback:
    """Base class of the parts of ``Trainer.fit``: override the events you need.

    See the module docstring for the events and when they come. Every event
    gets the run's :class:`FitState`; none returns anything. An exception
    raised in an event ends ``fit`` (after ``on_fit_end``).
    """

    def on_fit_start(self, state: FitState) -> None:
        """Before the first iteration, after a resume restored the run."""

    def on_batch_end(self, state: FitState, loss: Any) -> None:
        """After each iteration; ``loss`` is a 0-d device array, valid until the next one.

        Reading it waits for the device: do it only now and then.
        """

    def on_record(self, state: FitState, avg_loss: float) -> None:
        """Every ``eval_interval`` iterations, before ``avg_loss`` joins ``loss_list``."""

    def on_epoch_end(self, state: FitState) -> None:
        """After each epoch (``trainer.current_epoch`` counts it)."""

    def on_fit_end(self, state: FitState) -> None:
        """When fit ends, by completion or by ``state.error``."""


class CallbackList:
    """Calls an event on each callback in order, skipping those that do not override it.

    Args:
        parts: ``fit``'s own parts (None entries are left out).
        callbacks: The user's :class:`Callback` instances, called after them.

    Raises:
        TypeError: ``callbacks`` is not a list (or other iterable) of
            :class:`Callback` instances.
    """

    def __init__(self, parts: Iterable[Any], callbacks: Iterable[Any] = ()):
        if isinstance(callbacks, (Callback, str)) or not isinstance(callbacks, Iterable):
            raise TypeError(f"callbacks must be a list of xpnn.Callback, got {callbacks!r:.80}")
        self.user = list(callbacks)
        for c in self.user:
            if not isinstance(c, Callback):
                raise TypeError(
                    f"callbacks must be xpnn.Callback instances (subclass it and "
                    f"override the events you need), got {c!r:.80}"
                )
        self.callbacks = [c for c in parts if c is not None] + self.user
        # Bound methods of the callbacks that override an event: an event
        # nobody handles costs a loop over an empty tuple.
        self._hooks = {
            event: tuple(
                getattr(c, event)
                for c in self.callbacks
                if getattr(type(c), event) is not getattr(Callback, event)
            )
            for event in EVENTS
        }
        self._batch_end = self._hooks["on_batch_end"]

    def on_fit_start(self, state: FitState) -> None:
        for hook in self._hooks["on_fit_start"]:
            hook(state)

    def on_batch_end(self, state: FitState, loss: Any) -> None:
        for hook in self._batch_end:
            hook(state, loss)

    def on_record(self, state: FitState, avg_loss: float) -> None:
        for hook in self._hooks["on_record"]:
            hook(state, avg_loss)

    def on_epoch_end(self, state: FitState) -> None:
        for hook in self._hooks["on_epoch_end"]:
            hook(state)

    def on_fit_end(self, state: FitState) -> None:
        for hook in self._hooks["on_fit_end"]:
            hook(state)


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
    running statistics), the optimizer state and the running loss are finite.

    One reduction on the device and one read.
    """
    from xpnn.training.checkpointer import model_state_arrays

    trainer = state.trainer
    arrays = _values(trainer.model.params) + list(model_state_arrays(trainer.model).values())
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


class Evaluator(Callback):
    """Train and test accuracy after each epoch (the chapter-4 curves).

    Appends to ``trainer.train_acc_list`` (on the training data of the fit)
    and ``trainer.test_acc_list`` (on ``x_test``, ``t_test``): two reads an
    epoch. ``fit(validation_data=...)`` checks the data before making one.

    Args:
        x_test: Inputs ``(N, ...)`` shaped as the training inputs.
        t_test: Labels ``(N,)`` or one-hot ``(N, classes)``.
        samples: Measure both accuracies on the first ``samples`` rows of
            the training and the test data only (the book's
            ``evaluate_sample_num_per_epoch``: faster, noisier); None: on
            all of them. A count above a data set's size takes all of it.

    Raises:
        ValueError: ``samples`` is not None or a positive int.
    """

    def __init__(self, x_test: Any, t_test: Any, samples: int | None = None):
        if samples is not None and (
            isinstance(samples, bool) or not isinstance(samples, int) or samples <= 0
        ):
            raise ValueError(
                f"evaluate_sample_num_per_epoch (samples) must be None or a positive int, "
                f"got {samples!r}"
            )
        self.x_test, self.t_test, self.samples = x_test, t_test, samples

    def _first(self, x: Any, t: Any) -> tuple[Any, Any]:
        n = self.samples
        if n is None or n >= x.shape[0]:
            return x, t
        return x[:n, ...], t[:n, ...]

    def on_epoch_end(self, state: FitState) -> None:
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


# --------------------------------------------------------------- reporter


class Reporter(Callback):
    """The book's printed lines, the progress bar, and the Ctrl-C message.

    Prints ``| epoch 1 |  iter 10 / 10 | time 0[s] | loss 1.10`` at each
    record and, with validation data, ``| epoch 1 | train acc, test acc |
    0.3400, 0.3300`` after each epoch; shows a tqdm bar over the iterations
    in a terminal or a notebook; on Ctrl-C says on stderr where the run
    stopped and which checkpoint resumes it.

    Args:
        verbose: Print the book's lines (stdout, or above the bar).
        progress: Show the bar (when tqdm is installed and someone watches).
    """

    def __init__(self, verbose: bool = True, progress: bool = True):
        self.verbose, self.progress = verbose, progress
        self.bar: Any = None
        self.start = 0.0

    def on_fit_start(self, state: FitState) -> None:
        done = state.epoch * state.max_iters + state.start_iter
        self.bar = _progress_bar(state.max_epoch * state.max_iters, self.progress, done)
        self.start = time.perf_counter()

    def say(self, line: str) -> None:
        """Print a line (above the progress bar, when there is one)."""
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line)

    def on_batch_end(self, state: FitState, loss: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_record(self, state: FitState, avg_loss: float) -> None:
        if self.verbose:
            self.say(
                f"| epoch {state.trainer.current_epoch + 1} |  iter {state.iteration + 1} / "
                f"{state.max_iters} | time {time.perf_counter() - self.start:.0f}[s] "
                f"| loss {avg_loss:.2f}"
            )

    def on_epoch_end(self, state: FitState) -> None:
        trainer = state.trainer
        if self.verbose and state.validation_data is not None and trainer.train_acc_list:
            self.say(
                f"| epoch {trainer.current_epoch} | train acc, test acc | "
                f"{trainer.train_acc_list[-1]:.4f}, {trainer.test_acc_list[-1]:.4f}"
            )

    def on_fit_end(self, state: FitState) -> None:
        if isinstance(state.error, KeyboardInterrupt):
            where = (
                f"{state.where_saved()}; continue with fit(..., resume=<that file>)"
                if state.last_checkpoint
                else "no checkpoint was written yet (pass checkpoint=PATH to fit to keep one)"
            )
            print(
                f"xpnn: training interrupted in epoch {state.epoch + 1}, iteration "
                f"{state.iteration}; {where}",
                file=sys.stderr,
            )
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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

"""The events of ``Trainer.fit``, the state they carry, and :class:`Callback`.

``Trainer.fit`` runs the book's loop: take a mini-batch, step, and at
iterations ``0, eval_interval, 2 * eval_interval...`` of each epoch record the
average loss of the iterations since the last record (the book's ``iters %
eval_interval == 0``). Everything else a run
does is a part with one job, told of the loop's progress through five events
(as Keras callbacks, PyTorch Lightning's callbacks or fastai's events):

* ``on_fit_start(state)``: before the first iteration (after a resume);
* ``on_batch_end(state, loss)``: after each iteration; ``loss`` is the batch
  loss, a 0-d array on the device, valid until the next iteration (copy it to
  keep it); reading it (``float(...)``) waits for the device, so do it only
  now and then;
* ``on_record(state, avg_loss)``: at each record (the first iteration of an
  epoch and every ``eval_interval`` iterations after it), the average loss
  (a float, read once), before it joins ``trainer.loss_list``;
* ``on_epoch_end(state)``: after each epoch (``trainer.current_epoch`` counts
  it, the accuracies are recorded);
* ``on_fit_end(state)``: when fit ends, also by an exception (``state.error``),
  as a ``finally`` block.

Each event gets the :class:`FitState` of the run: the trainer, the data, the
settings and the position. :class:`CallbackList` calls an event on each part
that handles it. The parts themselves are in :mod:`xpnn.training.callbacks`,
:mod:`xpnn.training.reporter` and :mod:`xpnn.training.checkpointer`; every
name here is also importable from :mod:`xpnn.training.callbacks`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["EVENTS", "Callback", "CallbackList", "FitState"]

#: The events, in the order a run meets them.
EVENTS = ("on_fit_start", "on_batch_end", "on_record", "on_epoch_end", "on_fit_end")


@dataclass(eq=False, slots=True)
class FitState:
    """One ``fit`` call: what the loop and its parts share.

    Settings (fixed for the run): ``trainer``, ``x`` ``(N, ...)`` and ``t``
    (``(N,)`` labels or ``(N, classes)`` one-hot), ``xp`` (their namespace),
    ``classes``, ``validation_data`` (or None), ``data_size`` (N),
    ``batch_size``, ``max_epoch``, ``max_grad``, ``eval_interval`` (at most
    ``max_iters``), ``max_iters`` (iterations an epoch, ``N // batch_size``),
    ``rng`` (the shuffling generator), ``precision`` (the run's
    :class:`xpnn.training.precision.MixedPrecision`, or None), ``time_size``
    (the steps of truncated BPTT, for :class:`xpnn.training.RnnlmTrainer`;
    None for ``Trainer``: ``max_iters`` is then ``N // (batch_size *
    time_size)``) and ``schedule`` (the learning-rate schedule part of an
    ``RnnlmTrainer`` run, whose state a checkpoint keeps, or None).

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
    time_size: int | None = None  # RnnlmTrainer's truncated BPTT steps
    schedule: Any = None  # RnnlmTrainer's learning-rate schedule, or None
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
            "time_size": self.time_size,
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
        """At each record (iterations ``0, k, 2k...``), before ``avg_loss`` joins ``loss_list``."""

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

"""The book's ``RnnlmTrainer`` (vol. 2, ch. 5-6): truncated BPTT on one corpus.

``RnnlmTrainer(model, optimizer).fit(xs, ts, max_epoch, batch_size,
time_size, max_grad, eval_interval)`` cuts the corpus ``xs`` (word ids) and
its next words ``ts`` into ``batch_size`` rows read in parallel from the
book's offsets ``i * (data_size // batch_size)``, ``time_size`` steps at a
time, and prints the book's ``| epoch 1 |  iter 1 / 13 | time 0[s] |
perplexity 999.00`` lines.

It is :class:`xpnn.training.Trainer`'s loop with another way to sample:
the batches follow each other through the corpus (no shuffling), and the
model's recurrent layers carry their hidden state from one batch to the
next. Everything else is the Trainer's, through the same parts: the NaN and
divergence guard (``on_nan``), the progress bar, checkpoints with a
bit-exact resume (the hidden states, the position in the corpus and the
Dropout layers' draws included), mixed precision, ``callbacks=[...]``. The
learning-rate schedule of the book's ``train_better_rnnlm.py`` (validation
perplexity after each epoch, the learning rate divided by 4 when it does not
improve) is ``fit(validation_data=corpus_val, lr_decay=4.0)``
(:class:`xpnn.training.schedule.PerplexitySchedule`).

The batches are taken on the data's device (one index array and one
``xp.take`` per batch); the losses are summed on the device and read to the
host only when a perplexity is recorded. Unlike the book's, the trainer
calls no ``remove_duplicate``: xpnn's models list a shared (tied) weight
once in ``params``, with its summed gradient in ``grads``.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xpnn.backend import BackendMismatchError, backend_of, device_of, get_namespace, to_numpy
from xpnn.random import default_rng
from xpnn.training.callbacks import Callback, CallbackList, FitState, Guard
from xpnn.training.checkpointer import Checkpointer
from xpnn.training.clipping import clip_grads
from xpnn.training.model_state import _values
from xpnn.training.reporter import PerplexityReporter, perplexity
from xpnn.training.schedule import PerplexitySchedule
from xpnn.training.trainer import Trainer

__all__ = ["RnnlmTrainer", "clip_grads"]


def _positive_int(name: str, value: Any, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


class RnnlmTrainer(Trainer):
    """Train a language model (:mod:`xpnn.models.rnnlm`) with truncated BPTT.

    Args:
        model: ``forward(xs, ts)`` returning the loss (a 0-d array),
            ``backward()``, ``params`` and ``grads`` (a shared weight listed
            once: no ``remove_duplicate`` is needed).
        optimizer: Anything with ``update(params, grads)``.

    Attributes:
        ppl_list: The perplexity of each ``eval_interval`` (floats).
        loss_list: The average loss of the same records (floats;
            ``ppl_list`` is their exp). With ``eval_interval=None`` the run
            still records once an epoch for the guard, here only.
        val_ppl_list: The validation perplexity after each epoch, with
            ``fit(validation_data=...)`` (floats).
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
        super().__init__(model, optimizer)
        self.time_idx = 0
        self.ppl_list: list[float] = []
        self.val_ppl_list: list[float] = []
        self._listed = True  # eval_interval is not None: records go to ppl_list

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

    def fit(  # type: ignore[override]
        self,
        xs: Any,
        ts: Any,
        max_epoch: int = 10,
        batch_size: int = 20,
        time_size: int = 35,
        max_grad: float | None = None,
        eval_interval: int | None = 20,
        *,
        validation_data: Any = None,
        lr_decay: float | None = 4.0,
        save_best: str | os.PathLike[str] | None = None,
        progress: bool = True,
        verbose: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        resume: str | os.PathLike[str] | None = None,
        on_nan: str = "raise",
        callbacks: Iterable[Callback] = (),
        precision: Any = None,
    ) -> RnnlmTrainer:
        """Train for ``max_epoch`` epochs of ``len(xs) // (batch_size * time_size)`` iterations.

        The book's arguments come first, in its order; the rest are
        keywords, as ``Trainer.fit``'s (see there for ``progress``,
        ``checkpoint``, ``checkpoint_every``, ``on_nan``, ``callbacks`` and
        ``precision``).

        Args:
            xs: The corpus's word ids, 1-D integers on the model's backend.
            ts: The next word of each, 1-D integers of the same length.
            max_epoch: Epochs (with ``resume``: the epochs of the whole run).
            batch_size: Rows read in parallel (positive int).
            time_size: Steps of truncated BPTT (positive int);
                ``batch_size * time_size`` must not exceed ``len(xs)``.
            max_grad: Clip the global gradient norm to this (a positive
                number), if given.
            eval_interval: Print and record the perplexity (exp of the mean
                loss since the last record) at iterations ``0, k, 2k...`` of
                each epoch, as the book's ``iters % eval_interval == 0``;
                None: never print, and ``ppl_list`` stays empty (the guard
                still reads the loss once an epoch). The only reads of the
                loss from the device.
            validation_data: A validation corpus (1-D ids): after each epoch
                reset the model's state, measure its perplexity
                (:func:`xpnn.models.rnnlm.eval_perplexity`, batch 10, time
                35, as the book's), append it to ``val_ppl_list``, divide
                ``optimizer.lr`` by ``lr_decay`` when it did not improve,
                and reset the state again: the loop of the book's
                ``train_better_rnnlm.py``. Each epoch then reads the corpus
                from its start, as that script's ``fit(max_epoch=1)`` calls
                do (without it, epochs go on where the last one stopped, as
                one book ``fit`` call does).
            lr_decay: See ``validation_data`` (> 1; None: never change the
                learning rate).
            save_best: With ``validation_data``: ``model.save_params`` to
                this file whenever the validation perplexity improves (the
                book's script saves ``BetterRnnlm.pkl``).
            progress: Show a progress bar.
            verbose: Print the book's lines.
            checkpoint: Write a checkpoint here after every epoch (and every
                ``checkpoint_every`` iterations): parameters, optimizer
                state, the hidden states of the model's recurrent layers,
                the position in the corpus, Dropout draws, the curves and the
                schedule's state. Resumed with ``resume``, the run ends
                bit for bit as an uninterrupted one.
            checkpoint_every: See ``checkpoint``.
            resume: Continue the run saved in this checkpoint (checked as a
                whole first: refused with nothing changed when it does not
                fit this model, optimizer, settings or data). A run whose
                schedule lowered the learning rate resumes with an optimizer
                created with the checkpoint's rate (the error says which).
            on_nan: ``"raise"``, ``"warn"`` or ``"ignore"``: the guard.
            callbacks: Your own :class:`xpnn.training.callbacks.Callback`
                instances.
            precision: None, ``"mixed16"``, ``"mixed_bf16"`` or a
                :class:`xpnn.MixedPrecision`.

        Returns:
            The trainer (``ppl_list`` holds the curve).

        Raises:
            ValueError: A bad argument (named), a word id outside the
                model's vocabulary; everything is checked before anything
                changes.
            TypeError, xpnn.BackendMismatchError: ``xs``/``ts`` are not
                arrays, or not on the model's backend and device.
            FloatingPointError: The loss became NaN or infinite or diverged.
            xpnn.io.ModelFileError: ``resume`` does not fit this run.
        """
        state = self._rnn_state(xs, ts, max_epoch, batch_size, time_size, max_grad, eval_interval)
        state.precision = self._check_precision(precision, False)  # builds the twin
        if validation_data is not None:
            state.schedule = PerplexitySchedule(
                validation_data, lr_decay=lr_decay, save_best=save_best, verbose=verbose
            )
            state.schedule.check(self.model)
        elif save_best is not None:
            raise ValueError("save_best needs validation_data: it saves the best validation model")
        guard = Guard(on_nan)
        keeper = Checkpointer(checkpoint, checkpoint_every, resume=resume, guard=guard)
        saving = checkpoint is not None or resume is not None
        # The schedule acts before the checkpoint of an epoch, so that holds its effect.
        parts = [
            guard,
            PerplexityReporter(verbose and eval_interval is not None, progress),
            state.schedule,
            keeper if saving else None,
        ]
        events = CallbackList(parts, callbacks)
        step = self._stepper(state)
        if saving:
            keeper.start(state)  # fingerprints the data; a refused resume changes nothing
        if state.schedule is not None:
            state.schedule.trainer = self
        self._listed = eval_interval is not None
        if resume is None:
            self.loss_list, self.ppl_list, self.val_ppl_list = [], [], []
        else:
            self.ppl_list = [perplexity(v) for v in self.loss_list] if self._listed else []
        return self._run(state, events, step)

    # ------------------------------------------------- the loop's named parts

    def _shuffle(self, state: FitState) -> Any:
        """No order: the batches follow each other through the corpus."""
        state.epoch_rng = state.rng.get_state()  # unused, but a checkpoint records it
        return None

    def _stepper(self, state: FitState) -> Any:
        """``step(order, i)``: train on the ``i``-th batch of this epoch; returns its loss."""
        xs, ts, size, steps = state.x, state.t, state.batch_size, state.time_size
        iteration = self._iteration if state.precision is None else state.precision.step

        # With the schedule, each epoch reads the corpus from its start, as the
        # book's train_better_rnnlm.py does with one fit(max_epoch=1) an epoch.
        restart = state.schedule is not None

        def step(order: Any, i: int) -> Any:
            done = i if restart else state.epoch * state.max_iters + i
            self.time_idx = done * steps  # the book's position
            batch_x, batch_t = self.get_batch(xs, ts, size, steps)
            return iteration(batch_x, batch_t, state.max_grad)

        return step

    def _record(self, state: FitState, events: CallbackList) -> None:
        super()._record(state, events)
        if self._listed:
            self.ppl_list.append(perplexity(self.loss_list[-1]))

    # ------------------------------------------------------------ the checks

    def _rnn_state(
        self,
        xs: Any,
        ts: Any,
        max_epoch: Any,
        batch_size: Any,
        time_size: Any,
        max_grad: Any,
        eval_interval: Any,
    ) -> FitState:
        """Refuse bad data or settings (nothing changes); the state of a run at its start."""
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
            or not (0 < float(max_grad) < float("inf"))
        ):
            raise ValueError(f"max_grad must be a positive number or None, got {max_grad!r}")
        data_size = int(xs.shape[0])
        if batch_size * time_size > data_size:
            raise ValueError(
                f"batch_size * time_size = {batch_size} * {time_size} = "
                f"{batch_size * time_size} exceeds the {data_size} words of xs: "
                "no full iteration fits"
            )
        classes = self._check_ids(xp, xs, ts)
        max_iters = data_size // (batch_size * time_size)
        return FitState(
            trainer=self,
            x=xs,
            t=ts,
            xp=xp,
            classes=classes,
            data_size=data_size,
            batch_size=batch_size,
            max_epoch=max_epoch,
            max_grad=max_grad,
            eval_interval=max_iters if eval_interval is None else min(eval_interval, max_iters),
            max_iters=max_iters,
            rng=default_rng(0, backend=backend_of(xs)),
            time_size=time_size,
        )

    def _check_ids(self, xp: Any, xs: Any, ts: Any) -> int:
        """The vocabulary size; refuses ids outside it (one small read per fit).

        An id past the embedding's rows would be an index error deep in a
        layer on one backend and a silent wrong row on another.
        """
        both = xp.stack([xp.min(xs), xp.max(xs), xp.min(ts), xp.max(ts)])
        low_x, high_x, low_t, high_t = (int(v) for v in to_numpy(both))
        vocab = getattr(self.model, "vocab_size", None)
        limit = vocab if isinstance(vocab, int) else max(high_x, high_t) + 1
        for name, low, high in (("xs", low_x, high_x), ("ts", low_t, high_t)):
            if low < 0 or high >= limit:
                raise ValueError(
                    f"{name} holds word ids from {low} to {high}, outside this "
                    f"{type(self.model).__name__}'s vocabulary 0..{limit - 1}: build the "
                    "model with vocab_size=len(word_to_id) of the corpus"
                )
        return limit

    def plot(  # type: ignore[override]
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
        if not self.ppl_list:
            raise ValueError("nothing to plot: call fit() first (with eval_interval set)")
        return self._draw(
            (self.ppl_list,), path, ylim, default="xpnn_perplexity.png", ylabel="perplexity"
        )

"""Checkpoints of ``Trainer.fit``: write them, fingerprint the data.

:class:`Checkpointer` is the part of ``fit`` (``checkpoint=``,
``checkpoint_every=``, ``resume=``) that writes a checkpoint after every
epoch, and every ``checkpoint_every`` iterations if asked, and resumes a run
from one. A checkpoint holds the parameters, the model's state arrays
(BatchNormalization's running statistics, :func:`model_state_arrays`), the
hidden states a language model carries between batches, each Dropout layer's
seed and count of masks drawn, the optimizer state, the position in the run,
the curves, the learning-rate schedule's state, the run settings and a
fingerprint of the data (:func:`fingerprint`);
:func:`xpnn.io.write_checkpoint` writes it atomically.
Before writing, the :class:`xpnn.training.callbacks.Guard` checks that everything is
finite (one device read); the fingerprint reads 64 rows of the data once per
fit. A resume (:func:`xpnn.training.resume.resume_run`) checks the whole file
against the model, the optimizer, the settings and the data before it
changes anything.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.backend import _dtype_name, asarray, backend_of, get_namespace, to_numpy
from xpnn.training.callbacks import Callback, FitState, Guard
from xpnn.training.model_state import (
    dropout_layers,
    hidden_states,
    model_state_arrays,
    seeded_draws,
)
from xpnn.training.resume import _STATE_PREFIX, resume_run
from xpnn.training.resume_parts import HIDDEN_PREFIX

__all__ = [
    "FINGERPRINT_ROWS",
    "Checkpointer",
    "dropout_layers",
    "fingerprint",
    "model_state_arrays",
]

#: Rows of ``x`` and ``t`` hashed into a checkpoint's data fingerprint.
FINGERPRINT_ROWS = 64


class Checkpointer(Callback):
    """Write checkpoints of a run and resume one (``Trainer.fit``'s checkpoints).

    Args:
        path: Write a checkpoint here after every epoch (None: write none).
        every: Also every this many iterations of an epoch.
        resume: Before the run starts, restore the run saved in this file.
        guard: Decides whether a checkpoint that is not finite is an error
            (:meth:`xpnn.training.callbacks.Guard.checkpoint_ok`); ``Guard("raise")``
            if omitted.

    Raises:
        ValueError: ``every`` is not a positive int, or ``path`` cannot be
            written (a link, a folder, a FIFO, under a file): it fails now,
            not after an epoch.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        every: int | None = None,
        *,
        resume: str | os.PathLike[str] | None = None,
        guard: Guard | None = None,
    ):
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every <= 0
        ):
            raise ValueError(f"checkpoint_every must be a positive int, got {every!r}")
        if path is not None:
            from xpnn.io import check_output_path

            check_output_path(os.fspath(path), "checkpoint", example="run.npz", links=False)
        self.path, self.every, self.resume_path = path, every, resume
        self.guard = guard if guard is not None else Guard("raise")
        self.data: dict[str, Any] | None = None  # the fingerprint of this fit's data
        self._state: FitState | None = None  # the fit it was computed for

    def start(self, state: FitState) -> None:
        """Fingerprint the data (one read) and, with ``resume``, restore the run.

        ``fit`` calls it before ``on_fit_start``; the whole checkpoint is
        checked first, so a refused one changes nothing.

        Raises:
            ModelFileError: The checkpoint does not fit this model (class,
                sizes, dtype), optimizer (class, hyper-parameters), settings
                or data; the model, the optimizer and the trainer are then as
                they were.
        """
        self.data, self._state = fingerprint(state.x, state.t), state
        if self.resume_path is not None:
            resume_run(self.resume_path, state, self.data)

    def on_fit_start(self, state: FitState) -> None:
        if self._state is not state:  # a Checkpointer passed in callbacks=[...]
            self.start(state)
        state.last_checkpoint, state.last_position = None, ""

    def on_batch_end(self, state: FitState, loss: Any) -> None:
        done = state.iteration + 1
        if (
            self.every is not None
            and done % self.every == 0
            and done < state.max_iters  # the epoch-end checkpoint follows
        ):
            self.save(state, state.epoch, done, state.epoch_rng)

    def on_epoch_end(self, state: FitState) -> None:
        self.save(state, state.epoch + 1, 0, state.rng.get_state())

    def save(self, state: FitState, epoch: int, next_iter: int, rng_state: Any) -> None:
        """Write the run as it stands, to go on at iteration ``next_iter`` of ``epoch``.

        ``rng_state`` is the shuffling generator's state that makes that
        epoch's order. Nothing is written when the guard refuses it.
        """
        if self.path is None:
            return
        trainer = state.trainer
        where = (
            f"epoch {epoch + 1}, iteration {next_iter}"
            if next_iter
            else f"the end of epoch {epoch}"
        )
        if not self.guard.checkpoint_ok(state, self.path, where, Path(self.path).exists()):
            return
        from xpnn.io import write_checkpoint

        progress = {
            **state.settings(),
            "data": self.data,
            "epoch": epoch,
            "next_iter": next_iter,
            "rng": rng_state,
            "loss_count": state.loss_count,
            "high_loss_records": state.high_loss_records,
            "current_epoch": trainer.current_epoch,
            "loss_list": trainer.loss_list,
            "train_acc_list": trainer.train_acc_list,
            "test_acc_list": trainer.test_acc_list,
            "scaler": _scaler(state),
            "schedule": None if state.schedule is None else state.schedule.state_dict(),
            # Each Dropout layer's and negative sampler's seed and draws: the
            # resumed run draws the masks and samples the uninterrupted one would.
            **{
                field: [{"seed": item.seed, "draws": item.draws} for item in items]
                for field, items in seeded_draws(trainer.model).items()
            },
        }
        extra = {
            "total_loss": state.total_loss if state.loss_count else 0.0,
            "initial_loss": state.initial_loss,
            **{_STATE_PREFIX + name: a for name, a in model_state_arrays(trainer.model).items()},
            # The hidden states truncated BPTT carries to the next batch (RnnlmTrainer).
            **{HIDDEN_PREFIX + name: a for name, a in hidden_states(trainer.model).items()},
        }
        written = write_checkpoint(self.path, trainer.model, trainer.optimizer, progress, extra)
        state.last_checkpoint, state.last_position = str(written), where


def _scaler(state: FitState) -> dict[str, Any] | None:
    """The loss scaler's state (one device read), or None without one."""
    scaler = None if state.precision is None else state.precision.scaler
    return None if scaler is None else scaler.state_dict()


def fingerprint(x: Any, t: Any) -> dict[str, Any]:
    """Shapes, dtypes and a SHA-256 of up to 64 evenly spaced rows of ``x`` and ``t``.

    ``x`` is ``(N, ...)`` (rows of any shape: features, images), ``t``
    ``(N,)`` or ``(N, classes)``, on one backend. Returns ``{"rows": count,
    "x": {"shape", "dtype", "sha256"}, "t": {...}}`` (JSON data).

    Cheap (the rows are gathered on the device and read once per fit) and
    the same on every backend, so a checkpoint refuses other data of the
    same size: another seed, shuffled rows or labels. It does not see a
    change confined to rows it does not sample.
    """
    xp = get_namespace(x, t)
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

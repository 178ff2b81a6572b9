"""Checkpoints of ``Trainer.fit``: write them, fingerprint the data, resume.

:class:`Checkpointer` is the part of ``fit`` (``checkpoint=``,
``checkpoint_every=``, ``resume=``) that writes a checkpoint after every
epoch, and every ``checkpoint_every`` iterations if asked, and resumes a run
from one. A checkpoint holds the parameters, the model's state arrays
(BatchNormalization's running statistics, :func:`model_state_arrays`), each
Dropout layer's seed and count of masks drawn, the optimizer state, the
position in the run, the curves, the run settings and a fingerprint of the
data (:func:`fingerprint`); :func:`xpnn.io.write_checkpoint` writes it atomically.
Before writing, the :class:`xpnn.training.callbacks.Guard` checks that everything is
finite (one device read); the fingerprint reads 64 rows of the data once per
fit. A resume checks the whole file against the model, the optimizer, the
settings and the data before it changes anything.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.backend import _dtype_name, asarray, backend_of, get_namespace, to_numpy
from xpnn.random import default_rng
from xpnn.training.callbacks import Callback, FitState, Guard

__all__ = [
    "FINGERPRINT_ROWS",
    "Checkpointer",
    "dropout_layers",
    "fingerprint",
    "model_state_arrays",
]

#: Rows of ``x`` and ``t`` hashed into a checkpoint's data fingerprint.
FINGERPRINT_ROWS = 64

#: What ``Trainer.fit`` stores in a checkpoint's progress. The run settings
#: must be those of the resuming fit; the rest is the position in the run.
_RUN_FIELDS = ("data_size", "batch_size", "max_epoch", "max_grad", "eval_interval", "precision")
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
    "scaler",
    "dropout",
)
#: Fields that checkpoints written before mixed precision (precision, scaler)
#: or before Dropout (dropout) lack, and their value then.
_OPTIONAL_FIELDS = {"precision": None, "scaler": None, "dropout": None}
_EXTRA_ARRAYS = ("initial_loss", "total_loss")
#: The model's state arrays (BatchNormalization's running statistics) are
#: extra arrays named by this prefix and ``layers.<i>.<name>``.
_STATE_PREFIX = "state/"


def model_state_arrays(model: Any) -> dict[str, Any]:
    """The model's arrays that are not parameters, by name (the very arrays).

    ``layers.<i>.<name>`` for each name in layer ``i``'s ``state_names``
    (BatchNormalization's ``running_mean`` and ``running_var``), as
    :meth:`xpnn.models.LayeredNet.named_arrays` names them; empty for a
    model without ``layers``. A checkpoint holds them: a resumed run goes
    on with the running statistics of the interrupted one.
    """
    arrays: dict[str, Any] = {}
    for i, layer in enumerate(getattr(model, "layers", ()) or ()):
        for name in getattr(type(layer), "state_names", ()):
            arrays[f"layers.{i}.{name}"] = getattr(layer, name)
    return arrays


def dropout_layers(model: Any) -> list[Any]:
    """The model's :class:`xpnn.layers.Dropout` layers, in ``model.layers`` order."""
    from xpnn.layers import Dropout

    return [layer for layer in getattr(model, "layers", ()) or () if isinstance(layer, Dropout)]


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
            self._resume(state)

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
            # Each Dropout layer's seed and masks drawn: the resumed run draws
            # the masks the uninterrupted one would.
            "dropout": [
                {"seed": layer.seed, "draws": layer.draws}
                for layer in dropout_layers(trainer.model)
            ],
        }
        extra = {
            "total_loss": state.total_loss if state.loss_count else 0.0,
            "initial_loss": state.initial_loss,
            **{_STATE_PREFIX + name: a for name, a in model_state_arrays(trainer.model).items()},
        }
        written = write_checkpoint(self.path, trainer.model, trainer.optimizer, progress, extra)
        state.last_checkpoint, state.last_position = str(written), where

    def _resume(self, state: FitState) -> None:
        """Check the whole checkpoint against this fit, then restore it into ``state``."""
        from xpnn.io import _parse_checkpoint, _restore_checkpoint

        path, trainer = self.resume_path, state.trainer
        checkpoint = _parse_checkpoint(path, trainer.model, trainer.optimizer)
        progress = {**_OPTIONAL_FIELDS, **checkpoint.progress}
        _check_progress(path, progress, state.settings(), self.data)
        scaler = _check_scaler(path, progress["scaler"], state)
        dropout = _check_dropout(path, progress["dropout"], trainer.model)
        model_state = model_state_arrays(trainer.model)
        total, initial_loss, stored_state = _check_extra(
            path, checkpoint.extra, progress["loss_count"], model_state
        )
        loss_count = progress["loss_count"]
        total_loss = (
            asarray(total, dtype=total.dtype.name, backend=backend_of(state.x)) if loss_count else 0
        )
        new_state = {
            name: asarray(stored_state[name], dtype=a.dtype, backend=backend_of(a))
            for name, a in model_state.items()
        }
        # Everything is checked and on the device: from here on nothing fails.
        _restore_checkpoint(checkpoint, trainer.model, trainer.optimizer)
        for name, a in model_state.items():
            a[...] = new_state[name]  # in place: the layers hold these arrays
        for layer, entry in zip(dropout_layers(trainer.model), dropout, strict=True):
            layer.seed, layer.draws = entry["seed"], entry["draws"]
        state.rng.set_state(progress["rng"])
        trainer.current_epoch = progress["current_epoch"]
        trainer.loss_list = list(progress["loss_list"])
        trainer.train_acc_list = list(progress["train_acc_list"])
        trainer.test_acc_list = list(progress["test_acc_list"])
        state.epoch, state.start_iter = progress["epoch"], progress["next_iter"]
        state.iteration = state.start_iter
        state.total_loss, state.loss_count = total_loss, loss_count
        state.initial_loss = initial_loss
        state.high_loss_records = progress["high_loss_records"]
        if scaler is not None:
            state.precision.scaler.load_state_dict(scaler)


def _scaler(state: FitState) -> dict[str, Any] | None:
    """The loss scaler's state (one device read), or None without one."""
    scaler = None if state.precision is None else state.precision.scaler
    return None if scaler is None else scaler.state_dict()


def _check_scaler(path: Any, stored: Any, state: FitState) -> dict[str, Any] | None:
    """The checkpoint's loss scaler state, checked against this run's scaler."""
    from xpnn.io import ModelFileError

    scaler = None if state.precision is None else state.precision.scaler
    if scaler is None or stored is None:
        if (scaler is None) != (stored is None):  # the precision settings matched: damaged
            raise ModelFileError(
                f"{path}: progress field 'scaler' is {stored!r:.80} but this run "
                f"{'has no' if scaler is None else 'has a'} loss scaler; the checkpoint was "
                "damaged or edited"
            )
        return None
    try:
        scaler.check_state_dict(stored)
    except ValueError as exc:
        raise ModelFileError(
            f"{path}: progress field 'scaler': {exc}; the checkpoint was damaged or edited"
        ) from None
    return stored


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
    path: Any, progress: dict[str, Any], run: dict[str, Any], data: dict[str, Any]
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
    _compare_fingerprint(path, progress["data"], data)

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


def _check_extra(
    path: Any, extra: dict[str, np.ndarray], loss_count: int, model_state: dict[str, Any]
) -> tuple:
    """The running loss sum (host 0-d array), the untrained loss (float) and the state arrays.

    ``model_state`` are the model's state arrays by name
    (:func:`model_state_arrays`): the checkpoint must hold each, of its
    shape and dtype, finite (host arrays returned by name).
    """
    from xpnn.io import ModelFileError
    from xpnn.io.checkpoints import _check_host_array

    expected = sorted([*_EXTRA_ARRAYS, *(_STATE_PREFIX + name for name in model_state)])
    if sorted(extra) != expected:
        raise ModelFileError(
            f"{path}: extra arrays {sorted(extra)}, expected {expected}; written for another "
            "model (other layers) or by another xpnn version? resume with that model and "
            "version or start again"
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
    stored = {}
    for name, like in model_state.items():
        key = _STATE_PREFIX + name
        _check_host_array(str(path), f"extra/{key}", extra[key], like, "create the model with")
        stored[name] = extra[key]
    return total, float(extra["initial_loss"]), stored


def _check_dropout(path: Any, stored: Any, model: Any) -> list[dict[str, int]]:
    """The checkpoint's Dropout seeds and draws, one per Dropout layer of ``model``.

    A checkpoint written before Dropout (None) fits a model without it.
    """
    from xpnn.io import ModelFileError

    layers = dropout_layers(model)
    if stored is None:
        stored = []
    if not (
        isinstance(stored, list)
        and all(
            isinstance(e, dict)
            and set(e) == {"seed", "draws"}
            and _is_int(e["seed"])
            and 0 <= e["seed"] < 2**63
            and _is_int(e["draws"])
            and e["draws"] >= 0
            for e in stored
        )
    ):
        raise ModelFileError(
            f"{path}: progress field 'dropout' must be a list of {{'seed': int, 'draws': int}} "
            f"(ints >= 0), got {stored!r:.200}; the checkpoint was damaged or edited"
        )
    if len(stored) != len(layers):
        raise ModelFileError(
            f"{path}: the checkpoint records {len(stored)} Dropout layers, this "
            f"{type(model).__name__} has {len(layers)}; resume with the model of the run"
        )
    return stored

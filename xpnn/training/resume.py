"""Resuming ``Trainer.fit`` from a checkpoint: check the whole file, then restore it.

``fit(resume=path)`` hands the file to :func:`resume_run` before the first
iteration (through :class:`xpnn.training.checkpointer.Checkpointer`). It
checks everything first: the parameters and the optimizer state
(:mod:`xpnn.io.checkpoints`), then the progress fields written by
:meth:`~xpnn.training.checkpointer.Checkpointer.save` (their types and ranges,
the run settings and the data fingerprint against this fit's, a position a
run could have reached), the loss scaler's state, the learning-rate
schedule's state, the Dropout layers' seeds and the extra arrays (the running
loss, the model's state arrays, the hidden states of a language model). Only when
all of it fits does it restore the model, the optimizer, the trainer's curves
and the run's position: a refused checkpoint changes nothing. None of it
reads the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from xpnn.backend import asarray, backend_of
from xpnn.io.checks import check_state_values, model_states
from xpnn.random import default_rng
from xpnn.training.events import FitState
from xpnn.training.model_state import model_state_arrays, recurrent_layers, seeded_draws
from xpnn.training.resume_parts import (
    HIDDEN_PREFIX,
    _is_int,
    check_draws,
    check_hidden,
    check_scaler,
    check_schedule,
)

__all__ = ["resume_run"]

#: What ``Trainer.fit`` stores in a checkpoint's progress. The run settings
#: must be those of the resuming fit; the rest is the position in the run.
_RUN_FIELDS = (
    "data_size",
    "batch_size",
    "max_epoch",
    "max_grad",
    "eval_interval",
    "precision",
    "time_size",
)
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
    "samplers",
    "schedule",
)
#: Fields that checkpoints written before mixed precision (precision, scaler),
#: before Dropout (dropout), before negative sampling (samplers) or before
#: RnnlmTrainer (time_size, schedule) lack, and their value then.
_OPTIONAL_FIELDS = {
    "precision": None,
    "scaler": None,
    "dropout": None,
    "samplers": None,
    "time_size": None,
    "schedule": None,
}
_EXTRA_ARRAYS = ("initial_loss", "total_loss")
#: The model's state arrays (BatchNormalization's running statistics) are
#: extra arrays named by this prefix and ``layers.<i>.<name>``.
_STATE_PREFIX = "state/"


@dataclass(slots=True)
class _Checked:
    """A checkpoint checked against a fit, its arrays already on the fit's device."""

    checkpoint: Any  # xpnn.io.checkpoints' parsed file: parameters and optimizer state
    progress: dict[str, Any]
    scaler: dict[str, Any] | None
    schedule: dict[str, Any] | None
    draws: dict[str, list[dict[str, int]]]  # checkpoint field -> seeds and draws
    total_loss: Any  # 0 or a 0-d device array
    initial_loss: float
    model_state: dict[str, tuple[Any, Any]]  # name -> (the model's array, its new values)
    hidden: dict[str, Any]  # recurrent layer name + "." + attribute -> its state (or None)


def resume_run(path: Any, state: FitState, data: dict[str, Any]) -> None:
    """Check the whole checkpoint at ``path`` against this fit, then restore it into ``state``.

    Args:
        path: The checkpoint file (``fit(resume=...)``).
        state: The fit's state at its start; its trainer's model, optimizer
            and curves are restored too.
        data: The fingerprint of this fit's ``x`` and ``t``
            (:func:`xpnn.training.checkpointer.fingerprint`).

    Raises:
        ModelFileError: The checkpoint does not fit this model (class,
            sizes, dtype), optimizer (class, hyper-parameters), settings or
            data, or is damaged; nothing has changed then.
    """
    _restore(_check(path, state, data), state)


def _check(path: Any, state: FitState, data: dict[str, Any]) -> _Checked:
    """Every check of a resume, and the arrays moved to the device; changes nothing."""
    from xpnn.io import _parse_checkpoint

    trainer = state.trainer
    checkpoint = _parse_checkpoint(path, trainer.model, trainer.optimizer)
    progress = {**_OPTIONAL_FIELDS, **checkpoint.progress}
    _check_progress(path, progress, state.settings(), data)
    scaler = check_scaler(path, progress["scaler"], state)
    schedule = check_schedule(path, progress["schedule"], state)
    draws = {
        field: check_draws(path, field, progress[field], items, trainer.model)
        for field, items in seeded_draws(trainer.model).items()
    }
    model_state = model_state_arrays(trainer.model)
    extra = dict(checkpoint.extra)
    hidden = check_hidden(
        path,
        {k: extra.pop(k) for k in list(extra) if k.startswith(HIDDEN_PREFIX)},
        trainer.model,
        state.batch_size,
    )
    total, initial_loss, stored_state = _check_extra(
        path, extra, progress["loss_count"], model_state
    )
    # Statistics that no training gives (a negative running_var) are refused,
    # as xpnn.io.load refuses them: the layer would predict NaN.
    located = model_states(trainer.model, model_state)
    check_state_values(str(path), located, stored_state, prefix="extra/state/")
    total_loss = (
        asarray(total, dtype=total.dtype.name, backend=backend_of(state.x))
        if progress["loss_count"]
        else 0
    )
    new_state = {
        name: (a, asarray(stored_state[name], dtype=a.dtype, backend=backend_of(a)))
        for name, a in model_state.items()
    }
    device = backend_of(state.x)
    hidden = {
        name: None if host is None else asarray(host, dtype=host.dtype.name, backend=device)
        for name, host in hidden.items()
    }
    return _Checked(
        checkpoint, progress, scaler, schedule, draws, total_loss, initial_loss, new_state, hidden
    )


def _restore(checked: _Checked, state: FitState) -> None:
    """Apply a checked checkpoint: everything is on the device, nothing here fails."""
    from xpnn.io import _restore_checkpoint

    trainer, progress = state.trainer, checked.progress
    _restore_checkpoint(checked.checkpoint, trainer.model, trainer.optimizer)
    for a, values in checked.model_state.values():
        a[...] = values  # in place: the layers hold these arrays
    layers = recurrent_layers(trainer.model)
    for name, value in checked.hidden.items():
        layer, attr = name.rsplit(".", 1)
        setattr(layers[layer], attr, value)
    for field, items in seeded_draws(trainer.model).items():
        for item, entry in zip(items, checked.draws[field], strict=True):
            item.seed, item.draws = entry["seed"], entry["draws"]
    state.rng.set_state(progress["rng"])
    trainer.current_epoch = progress["current_epoch"]
    trainer.loss_list = list(progress["loss_list"])
    trainer.train_acc_list = list(progress["train_acc_list"])
    trainer.test_acc_list = list(progress["test_acc_list"])
    state.epoch, state.start_iter = progress["epoch"], progress["next_iter"]
    state.iteration = state.start_iter
    state.total_loss, state.loss_count = checked.total_loss, progress["loss_count"]
    state.initial_loss = checked.initial_loss
    state.high_loss_records = progress["high_loss_records"]
    if checked.scaler is not None:
        state.precision.scaler.load_state_dict(checked.scaler)
    if checked.schedule is not None:
        state.schedule.load_state_dict(checked.schedule)


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
    if progress["time_size"] is not None and not (
        _is_int(progress["time_size"]) and progress["time_size"] > 0
    ):
        raise bad("time_size", "null or a positive int")
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
    max_iters = run["data_size"] // (run["batch_size"] * (run["time_size"] or 1))
    interval = run["eval_interval"]
    if epoch > max_epoch:
        raise bad("epoch", f"at most max_epoch ({max_epoch})")
    if next_iter >= max_iters or (epoch == max_epoch and next_iter):
        last = 0 if epoch == max_epoch else max_iters - 1
        raise bad("next_iter", f"from 0 to {last} in epoch {epoch} of {max_epoch}")
    count, records = _loss_records(epoch, next_iter, max_iters, interval)
    if progress["loss_count"] != count:
        raise bad("loss_count", f"{count} at epoch {epoch}, iteration {next_iter}")
    if progress["current_epoch"] < epoch:
        raise bad("current_epoch", f"at least epoch ({epoch})")
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


def _loss_records(epoch: int, next_iter: int, max_iters: int, interval: int) -> tuple[int, int]:
    """``(loss_count, records)`` of a run stopped before iteration ``next_iter`` of ``epoch``.

    ``fit`` records at iterations ``0, k, 2k...`` of every epoch (``k`` =
    ``interval``) and resets the loss sum only there, not at epoch ends: an
    epoch's losses after its last record are carried into the next epoch's
    first record.
    """
    per_epoch = (max_iters - 1) // interval + 1  # records in a whole epoch
    if next_iter:
        last = (next_iter - 1) // interval * interval  # this epoch's last record
        return next_iter - 1 - last, epoch * per_epoch + last // interval + 1
    carried = (max_iters - 1) % interval if epoch else 0
    return carried, epoch * per_epoch

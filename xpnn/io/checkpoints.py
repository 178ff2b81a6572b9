"""Training checkpoints, written and read by ``Trainer.fit``.

A checkpoint holds the model's parameters, the optimizer's state, the
training position and curves (JSON). :func:`read_checkpoint` checks all of
it against the model and the optimizer before it changes either: a refused
resume leaves both as they were.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.backend import _dtype_name, asarray, backend_of, to_numpy
from xpnn.io.npz import (
    CHECKPOINT_META_CHARS,
    FORMAT,
    ModelFileError,
    _is_int,
    _kind,
    _NpzFile,
    _write_npz,
)
from xpnn.io.saving import (
    _named_params,
)

# --------------------------------------------------------------------------
# Training checkpoints (written by Trainer.fit)
# --------------------------------------------------------------------------


def _flatten_state(state: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Optimizer state {name: list/dict of arrays or None} -> host arrays + layout."""
    arrays: dict[str, np.ndarray] = {}
    layout: dict[str, Any] = {}
    for name, entry in state.items():
        if entry is None:
            layout[name] = None
        elif isinstance(entry, dict):
            layout[name] = ["dict", list(entry)]
            arrays.update({f"opt/{name}/{k}": to_numpy(v) for k, v in entry.items()})
        else:
            layout[name] = ["list", len(entry)]
            arrays.update({f"opt/{name}/{i}": to_numpy(v) for i, v in enumerate(entry)})
    return arrays, layout


def _check_host_array(source: str, name: str, host: np.ndarray, like: Any, fix: str) -> None:
    """A stored array must have parameter ``like``'s shape and dtype and be finite.

    ``fix`` says how to get a model of the stored dtype (the error's advice).
    ``host`` may be a member's header only (no values yet): its values are
    then checked when it is read.
    """
    if tuple(host.shape) != tuple(like.shape):
        raise ModelFileError(
            f"{source}: wrong shapes: {name} {tuple(host.shape)} (expected {tuple(like.shape)})"
        )
    if not np.issubdtype(host.dtype, np.floating):
        raise ModelFileError(f"{source}: {name} has dtype {host.dtype}, not float")
    want = _dtype_name(like.dtype)
    if host.dtype.name != want:
        # Resuming in another precision would not continue the same run (and
        # the optimizer refuses state of another dtype at its first update).
        raise ModelFileError(
            f"{source}: {name} is {host.dtype.name} in the checkpoint, {want} in this model; "
            f"{fix} dtype='{host.dtype.name}' to resume this run"
        )
    if isinstance(host, np.ndarray) and not np.isfinite(host).all():
        raise ModelFileError(
            f"{source}: {name} holds NaN or infinite values; xpnn never writes such a "
            "checkpoint, so the file was damaged or edited: resume from another one"
        )


def _unflatten_state(
    layout: dict[str, Any],
    arrays: dict[str, np.ndarray],
    params: Any,
    source: str,
    fix: str,
) -> dict[str, Any]:
    """Check the stored optimizer state against ``params`` and rebuild it on the host.

    Args:
        layout: ``{name: None | ["dict", keys] | ["list", n]}`` as written by
            :func:`_flatten_state` (names already checked).
        arrays: The ``opt/...`` arrays by ``name/key`` (prefix removed).
        params: The model's ``params`` (a mapping or a sequence of arrays).
        source: The file, for messages.
        fix: Advice for a dtype mismatch (see :func:`_check_host_array`).

    Returns:
        ``{name: None | {key: host array} | [host arrays]}``, keyed like ``params``.

    Raises:
        ModelFileError: A layout not keyed like ``params``, a missing or
            unexpected array, or one of the wrong shape, dtype or not finite.
    """
    if isinstance(params, Mapping):
        keys: list[Any] = list(params)
        expected: list[Any] = ["dict", [str(k) for k in keys]]
    else:
        keys = list(range(len(params)))
        expected = ["list", len(keys)]
    state: dict[str, Any] = {}
    used: set[str] = set()
    for name, spec in layout.items():
        if spec is None:
            state[name] = None
            continue
        keyed_alike = (
            isinstance(spec, list)
            and len(spec) == 2
            and spec[0] == expected[0]
            and (
                sorted(map(str, spec[1])) == sorted(expected[1])
                if expected[0] == "dict" and isinstance(spec[1], list)
                else _is_int(spec[1]) and spec[1] == expected[1]
            )
        )
        if not keyed_alike:
            raise ModelFileError(
                f"{source}: optimizer state {name!r} is stored as {spec!r}, but this model's "
                f"parameters are {expected!r}: the checkpoint is of another model"
            )
        entry: dict[Any, np.ndarray] = {}
        for key in keys:
            flat = f"{name}/{key}"
            host = arrays.get(flat)
            if host is None:
                raise ModelFileError(f"{source}: optimizer state opt/{flat} is missing")
            _check_host_array(source, f"opt/{flat}", host, params[key], fix)
            entry[key] = host
            used.add(flat)
        state[name] = entry if isinstance(params, Mapping) else [entry[k] for k in keys]
    stray = sorted(set(arrays) - used)
    if stray:
        raise ModelFileError(
            f"{source}: unexpected optimizer arrays {['opt/' + k for k in stray]}; "
            "the file was not written by xpnn's write_checkpoint"
        )
    return state


@dataclass(frozen=True)
class _Checkpoint:
    """A checkpoint read and checked against a model and an optimizer, not yet applied.

    Attributes:
        path: The file.
        progress: The JSON ``progress`` dict as written (its fields are the
            writer's business: ``Trainer.fit`` checks them).
        extra: The extra arrays by name, host NumPy arrays (unchecked).
        params: The parameters by name (see ``_named_params``), host arrays
            of the model's shapes and dtypes, finite.
        optimizer: ``{"optimizer", "hyperparams", "iter", "state"}`` for
            ``load_state_dict``, the state still on the host.
    """

    path: Path
    progress: dict[str, Any]
    extra: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    optimizer: dict[str, Any]


def _parse_checkpoint(path: str | os.PathLike[str], model: Any, optimizer: Any) -> _Checkpoint:
    """Read a checkpoint and check all of it against ``model`` and ``optimizer``.

    Changes nothing: the first phase of :func:`read_checkpoint`, so that a
    file that does not fit is refused before the model or the optimizer is
    touched. :func:`_restore_checkpoint` is the second.

    Raises:
        ModelFileError: Anything that does not fit (the message names it).
        TypeError: ``optimizer`` has no ``state_dict()``.
    """
    path = Path(path)
    with _NpzFile(path, CHECKPOINT_META_CHARS) as npz:
        meta = npz.meta
        current = _check_checkpoint_meta(path, meta, model, optimizer)
        # Names, shapes and dtypes from the headers, before any data is read;
        # then once more with the values.
        _check_checkpoint_arrays(path, meta, npz.headers, model, optimizer, current)
        arrays = {name: npz.read(name) for name in npz.headers}
    return _check_checkpoint_arrays(path, meta, arrays, model, optimizer, current)


def _check_checkpoint_meta(
    path: Path, meta: dict[str, Any], model: Any, optimizer: Any
) -> dict[str, Any]:
    """Check a checkpoint's metadata; return the optimizer's current ``state_dict()``."""
    if meta.get("kind") != "checkpoint":
        raise ModelFileError(f"{path}: not a training checkpoint (a saved model? use xpnn.io.load)")
    if not (_is_int(meta.get("format")) and meta["format"] == FORMAT):
        raise ModelFileError(
            f"{path}: checkpoint format {meta.get('format')!r}, but this xpnn reads format "
            f"{FORMAT}; resume it with the xpnn version that wrote it ({meta.get('xpnn')!r})"
        )
    for key, kind in (
        ("model", str),
        ("optimizer", dict),
        ("optimizer_layout", dict),
        ("progress", dict),
    ):
        if not isinstance(meta.get(key), kind):
            raise ModelFileError(
                f"{path}: corrupt checkpoint metadata: {key!r} must be a JSON "
                f"{'string' if kind is str else 'object'}, got {_kind(meta.get(key))}"
            )
    model_name = type(model).__name__
    if meta["model"] != model_name:
        raise ModelFileError(
            f"{path}: checkpoint of a {meta['model']}, cannot resume a {model_name}"
        )
    if not callable(getattr(optimizer, "state_dict", None)):
        raise TypeError(
            f"{type(optimizer).__name__} has no state_dict(): checkpoints need an optimizer "
            "from xpnn.optimizers"
        )
    current = optimizer.state_dict()
    opt_name = current["optimizer"]
    opt_meta = meta["optimizer"]
    if set(opt_meta) != {"optimizer", "hyperparams", "iter"}:
        raise ModelFileError(
            f"{path}: corrupt checkpoint metadata: 'optimizer' must have the keys "
            f"['hyperparams', 'iter', 'optimizer'], got {sorted(opt_meta)}"
        )
    if opt_meta["optimizer"] != opt_name:
        raise ModelFileError(
            f"{path}: checkpoint of optimizer {opt_meta['optimizer']}, not {opt_name}"
        )
    hyper, now = opt_meta["hyperparams"], current["hyperparams"]
    if (
        not isinstance(hyper, dict)
        or set(hyper) != set(now)
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in hyper.values())
    ):
        raise ModelFileError(
            f"{path}: corrupt checkpoint metadata: {opt_name} hyper-parameters must be "
            f"numbers named {sorted(now)}, got {hyper!r}"
        )
    changed = [name for name in now if float(hyper[name]) != float(now[name])]
    if changed:
        # Loading would silently replace the caller's choice (another run).
        stored = ", ".join(f"{name}={hyper[name]!r}" for name in changed)
        given = ", ".join(f"{name}={now[name]!r}" for name in changed)
        every = ", ".join(f"{name}={hyper[name]!r}" for name in now)
        raise ModelFileError(
            f"{path}: the checkpoint was written with {opt_name} {stored}, this optimizer "
            f"has {given}; create it as {opt_name}({every}) to resume the run (set other "
            "hyper-parameters after resuming, if that is what you mean)"
        )
    if not (_is_int(opt_meta["iter"]) and opt_meta["iter"] >= 0):
        raise ModelFileError(
            f"{path}: corrupt checkpoint metadata: the optimizer's 'iter' must be an int "
            f">= 0, got {opt_meta['iter']!r}"
        )
    return current


def _check_checkpoint_arrays(
    path: Path,
    meta: dict[str, Any],
    arrays: dict[str, Any],
    model: Any,
    optimizer: Any,
    current: dict[str, Any],
) -> _Checkpoint:
    """Check a checkpoint's arrays (headers or values) against the model and optimizer."""
    model_name = type(model).__name__
    opt_name = current["optimizer"]
    opt_meta = meta["optimizer"]
    groups: dict[str, dict[str, np.ndarray]] = {"model/": {}, "opt/": {}, "extra/": {}}
    stray = []
    for key, host in arrays.items():
        prefix = next((p for p in groups if key.startswith(p)), None)
        if prefix is None:
            stray.append(key)
        else:
            groups[prefix][key[len(prefix) :]] = host
    if stray:
        raise ModelFileError(
            f"{path}: unexpected arrays {sorted(stray)}; the file was not written by "
            "xpnn's write_checkpoint"
        )
    fix = f"create the {model_name} with"
    named = _named_params(model)
    stored = groups["model/"]
    missing, extra = sorted(set(named) - set(stored)), sorted(set(stored) - set(named))
    if missing or extra:
        raise ModelFileError(
            f"{path}: parameters do not fit {model_name}: "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    for key, p in named.items():
        _check_host_array(str(path), f"model/{key}", stored[key], p, fix)

    layout = meta["optimizer_layout"]
    if set(layout) != set(current["state"]):
        raise ModelFileError(
            f"{path}: corrupt checkpoint metadata: {opt_name} state entries "
            f"{sorted(layout)}, expected {sorted(current['state'])}"
        )
    state = _unflatten_state(layout, groups["opt/"], model.params, str(path), fix)
    loadable = {**opt_meta, "state": state}
    check = getattr(optimizer, "check_state_dict", None)
    if check is not None:
        try:
            check(loadable)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: {exc}") from None
    return _Checkpoint(path, meta["progress"], groups["extra/"], stored, loadable)


def _restore_checkpoint(checkpoint: _Checkpoint, model: Any, optimizer: Any) -> None:
    """Put a checked checkpoint's parameters and optimizer state in place.

    Every array is first copied to its parameter's backend and device; only
    then are the optimizer and the parameters changed (a failed copy, e.g.
    out of device memory, leaves both as they were).
    """
    named = _named_params(model)
    new = {
        k: asarray(checkpoint.params[k], dtype=p.dtype, backend=backend_of(p))
        for k, p in named.items()
    }
    params = model.params

    def on_device(host: np.ndarray, key: Any) -> Any:
        p = params[key]
        return asarray(host, dtype=p.dtype, backend=backend_of(p))

    state: dict[str, Any] = {}
    for name, entry in checkpoint.optimizer["state"].items():
        if entry is None:
            state[name] = None
        elif isinstance(entry, dict):
            state[name] = {k: on_device(host, k) for k, host in entry.items()}
        else:
            state[name] = [on_device(host, i) for i, host in enumerate(entry)]
    optimizer.load_state_dict({**checkpoint.optimizer, "state": state})  # checked: cannot refuse
    for key, p in named.items():
        # In place, so the layers that hold these arrays see the new values.
        p[...] = new[key]


def write_checkpoint(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any,
    progress: dict[str, Any],
    extra_arrays: dict[str, Any] | None = None,
) -> Path:
    """Write everything needed to resume training, atomically.

    Args:
        path: The checkpoint file (``.npz``).
        model: The model; its parameters are saved by name.
        optimizer: An optimizer with ``state_dict()``.
        progress: JSON-serialisable training position (epoch, iteration,
            RNG state, recorded curves, ...), stored as given.
        extra_arrays: Further arrays to store (e.g. a running loss sum).
    """
    from xpnn._version import __version__

    arrays = {f"model/{k}": to_numpy(p) for k, p in _named_params(model).items()}
    opt_state = optimizer.state_dict()
    opt_arrays, layout = _flatten_state(opt_state["state"])
    arrays.update(opt_arrays)
    arrays.update({f"extra/{k}": to_numpy(v) for k, v in (extra_arrays or {}).items()})
    meta = {
        "format": FORMAT,
        "kind": "checkpoint",
        "xpnn": __version__,
        "model": type(model).__name__,
        "optimizer": {k: opt_state[k] for k in ("optimizer", "hyperparams", "iter")},
        "optimizer_layout": layout,
        "progress": progress,
    }
    return _write_npz(path, arrays, meta, CHECKPOINT_META_CHARS)


def read_checkpoint(
    path: str | os.PathLike[str], model: Any, optimizer: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Restore a model's parameters and an optimizer's state from a checkpoint.

    The model and optimizer must be of the classes, sizes, dtype and
    hyper-parameters that wrote it. The whole file is checked first: a
    refused checkpoint leaves the model and the optimizer as they were.

    Returns:
        ``(progress, extra_arrays)`` as given to :func:`write_checkpoint`
        (the extra arrays as host NumPy arrays; the progress unchecked).

    Raises:
        ModelFileError: Not a checkpoint, of another model or optimizer, of
            other optimizer hyper-parameters (``lr``...) or another dtype,
            or arrays that do not fit (the message says which and how).
        TypeError: ``optimizer`` has no ``state_dict()``.
    """
    checkpoint = _parse_checkpoint(path, model, optimizer)
    _restore_checkpoint(checkpoint, model, optimizer)
    return checkpoint.progress, checkpoint.extra

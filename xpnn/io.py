"""Saving and loading trained models as ``.npz`` files, without pickle.

A saved file holds each parameter as a plain array and one JSON string of
metadata (model class and sizes, dtype, xpnn version). It is read with
``allow_pickle=False``, so loading a file from someone else cannot run code,
and it loads onto any backend: a model trained on the GPU opens on a laptop.

    xpnn.io.save(net, "net.npz")
    net = xpnn.io.load("net.npz")            # on the active backend
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.backend import _dtype_name, asarray, backend_of, to_numpy

__all__ = [
    "ModelFileError",
    "load",
    "load_params",
    "read_checkpoint",
    "save",
    "write_checkpoint",
]

_META = "__xpnn__"
FORMAT = 1


class ModelFileError(ValueError):
    """A model file is not one xpnn wrote, or does not fit the model it names."""


def _models() -> dict[str, type]:
    from xpnn.models import LayeredTwoLayerNet, SimpleNet, TwoLayerNet

    return {cls.__name__: cls for cls in (SimpleNet, TwoLayerNet, LayeredTwoLayerNet)}


def _named_params(model: Any) -> dict[str, Any]:
    """The model's parameters by name: dict keys, or ``params.0`` ... for lists."""
    if isinstance(model, _models()["SimpleNet"]):
        return {"W": model.W}
    params = model.params
    if isinstance(params, dict):
        return dict(params)
    return {f"params.{i}": p for i, p in enumerate(params)}


def save(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write a model's parameters and description to an ``.npz`` file.

    The file is written to a temporary name beside ``path`` and renamed into
    place, so an interrupted save never leaves a half-written file.

    Args:
        model: A SimpleNet, TwoLayerNet or LayeredTwoLayerNet (any backend).
        path: Where to write (``.npz`` is the usual suffix).

    Returns:
        The path written.
    """
    from xpnn import __version__

    name = type(model).__name__
    if name not in _models() or not hasattr(model, "config"):
        raise TypeError(f"cannot save a {name}; supported: {', '.join(_models())}")
    arrays = {key: to_numpy(p) for key, p in _named_params(model).items()}
    meta = {
        "format": FORMAT,
        "xpnn": __version__,
        "model": name,
        "config": model.config,
        "dtype": _dtype_name(next(iter(arrays.values())).dtype),
        "params": {key: list(a.shape) for key, a in arrays.items()},
    }
    return _write_npz(path, arrays, meta)


def _write_npz(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write arrays and JSON metadata atomically: a temp file, then a rename.

    Whatever interrupts the write (an error, Ctrl-C, a full disk), ``path``
    keeps its previous content and no partial file is left beside it.
    """
    arrays = {**arrays, _META: np.array(json.dumps(meta))}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ModelFileError(f"{path}: not an .npz file ({exc})") from None
    except ValueError:  # pickled objects (a pickle file, object arrays): refused
        raise ModelFileError(
            f"{path}: refused to load: it holds pickled Python objects, and unpickling can "
            "run code; xpnn reads only plain arrays (.npz files written by xpnn.io.save)"
        ) from None
    if _META not in arrays:
        raise ModelFileError(
            f"{path}: no xpnn metadata; it was not written by xpnn.io.save "
            "(the book's pickle files are not loaded, on purpose: pickle can run code)"
        )
    try:
        meta = json.loads(str(arrays.pop(_META)))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: corrupt metadata ({exc})") from None
    return meta, arrays


def load(path: str | os.PathLike[str], *, dtype: Any = None) -> Any:
    """Rebuild a saved model on the active backend.

    Args:
        path: A file written by :func:`save`.
        dtype: Float dtype of the parameters (the saved one if omitted).

    Returns:
        A model of the saved class and sizes, holding the saved parameters.

    Raises:
        ModelFileError: Not an xpnn model file, an unknown model, or
            parameters whose names or shapes do not fit the model (the
            message names them).
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    meta, arrays = _read(path)
    models = _models()
    cls = models.get(meta.get("model"))
    if cls is None:
        raise ModelFileError(
            f"{path}: unknown model {meta.get('model')!r}; known: {', '.join(models)}"
        )
    dtype = dtype or meta.get("dtype", "float32")
    try:
        model = cls(**meta.get("config", {}), dtype=dtype)
    except (TypeError, ValueError) as exc:
        config = meta.get("config")
        raise ModelFileError(f"{path}: bad model configuration {config}: {exc}") from None
    load_params(model, arrays, source=str(path))
    return model


def load_params(model: Any, arrays: dict[str, Any], *, source: str = "arrays") -> None:
    """Copy named host arrays into a model's parameters, in place.

    Raises:
        ModelFileError: Missing, unexpected or wrongly shaped parameters.
    """
    params = _named_params(model)
    missing = sorted(set(params) - set(arrays))
    extra = sorted(set(arrays) - set(params))
    if missing or extra:
        raise ModelFileError(
            f"{source}: parameters do not fit {type(model).__name__}: "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    wrong = [
        f"{k} {tuple(arrays[k].shape)} (expected {tuple(p.shape)})"
        for k, p in params.items()
        if tuple(arrays[k].shape) != tuple(p.shape)
    ]
    if wrong:
        raise ModelFileError(f"{source}: wrong shapes: {', '.join(wrong)}")
    for key, p in params.items():
        if not np.issubdtype(np.asarray(arrays[key]).dtype, np.floating):
            raise ModelFileError(f"{source}: {key} has dtype {arrays[key].dtype}, not float")
        # In place, so the layers that hold these arrays see the new values.
        p[...] = asarray(arrays[key], dtype=p.dtype, backend=backend_of(p))


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


def _unflatten_state(
    layout: dict[str, Any], arrays: dict[str, np.ndarray], like: Any, source: str
) -> dict[str, Any]:
    """Rebuild optimizer state arrays next to parameter ``like`` (its backend)."""
    backend = backend_of(like)

    def get(name: str, key: Any) -> Any:
        try:
            host = arrays[f"opt/{name}/{key}"]
        except KeyError:
            raise ModelFileError(f"{source}: optimizer state opt/{name}/{key} is missing") from None
        return asarray(host, dtype=_dtype_name(host.dtype), backend=backend)

    state: dict[str, Any] = {}
    for name, spec in layout.items():
        if spec is None:
            state[name] = None
        elif spec[0] == "dict":
            state[name] = {k: get(name, k) for k in spec[1]}
        else:
            state[name] = [get(name, i) for i in range(spec[1])]
    return state


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
    from xpnn import __version__

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
    return _write_npz(path, arrays, meta)


def read_checkpoint(
    path: str | os.PathLike[str], model: Any, optimizer: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Restore a model's parameters and an optimizer's state from a checkpoint.

    The model and optimizer must be of the classes and sizes that wrote it.

    Returns:
        ``(progress, extra_arrays)`` as given to :func:`write_checkpoint`
        (the extra arrays as host NumPy arrays).

    Raises:
        ModelFileError: Not a checkpoint, or of another model or optimizer
            (the message says which), or parameters that do not fit.
    """
    path = Path(path)
    meta, arrays = _read(path)
    if meta.get("kind") != "checkpoint":
        raise ModelFileError(f"{path}: not a training checkpoint (a saved model? use xpnn.io.load)")
    if meta.get("model") != type(model).__name__:
        raise ModelFileError(
            f"{path}: checkpoint of a {meta.get('model')}, cannot resume a {type(model).__name__}"
        )
    opt_meta = meta["optimizer"]
    if opt_meta.get("optimizer") != type(optimizer).__name__:
        raise ModelFileError(
            f"{path}: checkpoint of optimizer {opt_meta.get('optimizer')}, "
            f"not {type(optimizer).__name__}"
        )
    params = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    load_params(model, params, source=str(path))
    like = next(iter(_named_params(model).values()))
    state = _unflatten_state(meta["optimizer_layout"], arrays, like, str(path))
    optimizer.load_state_dict({**opt_meta, "state": state})
    extra = {k[len("extra/") :]: v for k, v in arrays.items() if k.startswith("extra/")}
    return meta["progress"], extra

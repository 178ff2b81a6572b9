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

__all__ = ["ModelFileError", "load", "load_params", "save"]

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
    arrays[_META] = np.array(json.dumps(meta))
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

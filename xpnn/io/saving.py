"""Saving and loading trained models (``xpnn.io.save`` / ``xpnn.io.load``).

A model file holds each array of the model as a plain ``.npy`` member and one
JSON string of metadata: the model class and its ``config`` (for a
:class:`~xpnn.models.LayeredNet`, each layer's kind and sizes), the dtype and
the xpnn version. :func:`load` computes from the metadata the names, shapes
and dtype of every array without building the model, has the reader check
the file against them (:mod:`xpnn.io.npz`), and only then reads the data and
builds the model on the active backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.backend import _dtype_name, asarray, backend_of, get_backend, resolve_dtype, to_numpy
from xpnn.io.npz import (
    _FLOATS,
    _MODEL_FORMATS,
    MAX_ELEMENTS,
    MODEL_FORMAT,
    MODEL_META_CHARS,
    ModelFileError,
    _check_target,
    _is_int,
    _NpzFile,
    _write_npz,
)

# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def _models() -> dict[str, type]:
    from xpnn.models import MODELS

    return MODELS


def _named_params(model: Any) -> dict[str, Any]:
    """The model's parameters by name: dict keys, or ``params.0`` ... for lists.

    The names of a checkpoint's ``model/`` arrays (a saved model file names
    its arrays by the model's ``named_arrays()``, the same for the book's
    models).
    """
    if isinstance(model, _models()["SimpleNet"]):
        return {"W": model.W}
    params = model.params
    if isinstance(params, dict):
        return dict(params)
    return {f"params.{i}": p for i, p in enumerate(params)}


def _file_arrays(model: Any) -> dict[str, Any]:
    """The arrays a model file holds for ``model``, by name."""
    named = getattr(model, "named_arrays", None)
    return named() if callable(named) else _named_params(model)


def _check_names(
    source: str, model: str, expected: Mapping[str, Any], got: Mapping[str, Any]
) -> None:
    """The arrays ``got`` must be named exactly as ``expected`` (a model's arrays)."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise ModelFileError(
            f"{source}: parameters do not fit {model}: "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        )


def save(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write a model's arrays and description to an ``.npz`` file.

    The description is data (JSON), never pickle: the model's class and
    ``config``; for a :class:`~xpnn.models.LayeredNet`, each layer's kind and
    config, so any model made of registered layers (built from Affine,
    Relu, ... or by a new layer that declares its config) saves.

    The file is written to a temporary name beside ``path`` and renamed into
    place, so an interrupted save never leaves a half-written file.

    Args:
        model: A SimpleNet, TwoLayerNet, LayeredTwoLayerNet or LayeredNet
            (any backend, float16/32/64).
        path: Where to write (``.npz`` is the usual suffix); not a link or
            a device.

    Returns:
        The path written.

    Raises:
        TypeError: Another class (a LayeredNet subclass too: it may compute
            otherwise than the LayeredNet it would load as), or a layer not
            in :data:`xpnn.layers.LAYERS`.
        ValueError: A layer's arrays do not fit its declared config, mixed
            dtypes, or more than :data:`MAX_ELEMENTS` parameters.
        ModelFileError: ``path`` is a link, a directory or a device.
    """
    from xpnn import __version__
    from xpnn.models import LayeredNet

    name = type(model).__name__
    cls = _models().get(name)
    if cls is not type(model):
        if isinstance(model, LayeredNet):
            raise TypeError(
                f"cannot save a {name}: a LayeredNet subclass may compute otherwise than the "
                "plain LayeredNet it would load as; save xpnn.LayeredNet(net.layers, "
                "net.loss_layer, net.input_size), which shares its arrays"
            )
        raise TypeError(
            f"cannot save a {name}; supported: {', '.join(_models())} (any LayeredNet of "
            "registered layers)"
        )
    path = Path(path)
    _check_target(path)  # before the device-to-host copies
    config = model.config
    live = _file_arrays(model)
    shapes = {k: tuple(int(d) for d in a.shape) for k, a in live.items()}
    if shapes != cls.array_shapes(config):
        raise ValueError(
            f"cannot save this {name}: its arrays {shapes} do not fit its config {config} "
            f"(which implies {cls.array_shapes(config)}); a layer's params do not match its "
            "declared config"
        )
    first: dict[int, str] = {}
    for key, a in live.items():
        if first.setdefault(id(a), key) != key:
            # Two names, one array (tied weights): loaded back, they would be two.
            raise ValueError(
                f"cannot save this {name}: {first[id(a)]} and {key} are the same array "
                "(shared between layers), which a file cannot record yet"
            )
    dtypes = sorted({_dtype_name(a.dtype) for a in live.values()})
    if len(dtypes) != 1 or dtypes[0] not in _FLOATS:
        raise ValueError(f"cannot save this {name}: its arrays are {dtypes}, not one float dtype")
    total = sum(math.prod(s) for s in shapes.values())
    if total > MAX_ELEMENTS:
        raise ValueError(f"cannot save this {name}: {total} parameters, over {MAX_ELEMENTS}")
    arrays = {key: to_numpy(a) for key, a in live.items()}
    meta = {
        "format": MODEL_FORMAT,
        "kind": "model",
        "xpnn": __version__,
        "model": name,
        "config": config,
        "dtype": dtypes[0],
        "params": {key: list(s) for key, s in shapes.items()},
    }
    return _write_npz(path, arrays, meta, MODEL_META_CHARS)


def _check_model_file(npz: _NpzFile) -> tuple[type, Any, str]:
    """The class, config and dtype of a model file whose members all fit them.

    Everything is checked from the metadata and the ``.npy`` headers; no
    array is read and no model built.
    """
    path, meta = npz.path, npz.meta
    if meta.get("kind") == "checkpoint":
        raise ModelFileError(
            f"{path}: a training checkpoint, not a saved model; resume it with "
            "Trainer.fit(resume=...) or read it with xpnn.io.read_checkpoint"
        )
    version = meta.get("format")
    if version is None:
        raise ModelFileError(f"{path}: corrupt metadata: no format number (not from xpnn.io.save)")
    if not (_is_int(version) and version in _MODEL_FORMATS):
        raise ModelFileError(
            f"{path}: model file format {version!r:.40}, but this xpnn reads formats "
            f"{', '.join(map(str, _MODEL_FORMATS))}; it was written by xpnn "
            f"{meta.get('xpnn')!r:.40}: load it with that version or a newer one"
        )
    models = _models()
    model = meta.get("model")
    cls = models.get(model) if isinstance(model, str) else None
    if cls is None:
        raise ModelFileError(f"{path}: unknown model {model!r:.80}; known: {', '.join(models)}")
    stored = meta.get("dtype")
    if stored not in _FLOATS:
        raise ModelFileError(f"{path}: corrupt metadata: dtype {stored!r:.40}, not {_FLOATS}")
    config = meta.get("config")
    try:
        expected = cls.array_shapes(config)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad model configuration: {exc}") from None
    total = sum(math.prod(s) for s in expected.values())
    if total > MAX_ELEMENTS:
        raise ModelFileError(
            f"{path}: declares a {model} of {total} parameters, more than xpnn loads "
            f"({MAX_ELEMENTS})"
        )
    headers = npz.headers
    _check_names(str(path), model, expected, headers)
    wrong = [
        f"{k} {headers[k].shape} (expected {shape})"
        for k, shape in expected.items()
        if headers[k].shape != shape
    ]
    if wrong:
        raise ModelFileError(f"{path}: wrong shapes: {', '.join(wrong)}")
    for key, header in headers.items():
        if header.dtype.kind != "f":
            raise ModelFileError(f"{path}: {key} has dtype {header.dtype}, not float")
        if header.dtype.name != stored:
            raise ModelFileError(
                f"{path}: {key} is {header.dtype.name}, but the metadata says {stored}: "
                "damaged or edited"
            )
    return cls, config, stored


def _converted(
    source: str, arrays: Mapping[str, np.ndarray], dtypes: Mapping[str, str], allow_nonfinite: bool
) -> dict[str, np.ndarray]:
    """Host arrays in their target dtypes, refusing NaN, inf and values that overflow."""
    out = {}
    for key, a in arrays.items():
        with np.errstate(over="ignore", invalid="ignore"):
            b = a.astype(dtypes[key], copy=False)
        if not allow_nonfinite and not np.isfinite(b).all():
            if np.isfinite(a).all():
                raise ModelFileError(
                    f"{source}: {key} holds values up to {np.abs(a).max():.3g}, beyond the "
                    f"{dtypes[key]} range: they would load as infinite; load with "
                    f"dtype='{a.dtype.name}', or pass allow_nonfinite=True"
                )
            raise ModelFileError(
                f"{source}: {key} holds NaN or infinite values; a trained model has none, so "
                "the file is damaged (pass allow_nonfinite=True to load them anyway)"
            )
        out[key] = b
    return out


def load(path: str | os.PathLike[str], *, dtype: Any = None, allow_nonfinite: bool = False) -> Any:
    """Rebuild a saved model on the active backend.

    The whole file is checked before anything is allocated for it (see the
    module docs), and the model is built only once its arrays are read and
    checked.

    Args:
        path: A file written by :func:`save` (any xpnn version).
        dtype: Float dtype of the parameters (the saved one if omitted).
        allow_nonfinite: Load NaN or infinite values (and values that
            overflow ``dtype``) instead of refusing the file.

    Returns:
        A model of the saved class and sizes, holding the saved parameters.

    Raises:
        ModelFileError: Not an xpnn model file, a damaged or crafted one, an
            unknown model or layer, parameters whose names, shapes or values
            do not fit (the message names them).
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``XPNN_BACKEND`` names no backend, or ``dtype`` (or the
            file's) is not a float dtype of the active backend.
    """
    backend = get_backend()  # a bad XPNN_BACKEND is the variable's fault, not the file's
    want = None if dtype is None else _float_name(backend, dtype, "dtype")
    path = Path(path)
    with _NpzFile(path, MODEL_META_CHARS) as npz:
        cls, config, stored = _check_model_file(npz)
        name = want or _float_name(backend, stored, f"{path} holds {stored} parameters;")
        host = {key: npz.read(key) for key in npz.headers}
    host = _converted(str(path), host, dict.fromkeys(host, name), allow_nonfinite)
    model = cls.from_config(config, dtype=name)
    _assign(_file_arrays(model), host)
    return model


def _float_name(backend: Any, dtype: Any, what: str) -> str:
    """The name of a float dtype the backend has (ValueError naming ``what`` otherwise)."""
    try:
        name = _dtype_name(resolve_dtype(backend.xp, dtype))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} {exc}; pass dtype='float32'") from None
    if name not in _FLOATS:
        raise ValueError(f"{what} {name} is not a float dtype; pass dtype='float32'")
    return name


def _assign(params: Mapping[str, Any], host: Mapping[str, np.ndarray]) -> None:
    """Copy checked host arrays into parameters in place: all copied over first."""
    new = {k: asarray(host[k], dtype=p.dtype, backend=backend_of(p)) for k, p in params.items()}
    for key, p in params.items():
        # In place, so the layers that hold these arrays see the new values.
        p[...] = new[key]


def load_params(
    model: Any,
    arrays: Mapping[str, Any],
    *,
    source: str = "arrays",
    allow_nonfinite: bool = False,
) -> None:
    """Copy named host arrays into a model's parameters, in place.

    All are checked before any is written. The names are those of a file
    :func:`save` writes (``W1``, ``params.0``, ``layers.0.W``...).

    Raises:
        ModelFileError: Missing, unexpected or wrongly shaped parameters,
            not floating point, or NaN, infinite or overflowing values
            (unless ``allow_nonfinite``).
    """
    params = _file_arrays(model)
    _check_names(source, type(model).__name__, params, arrays)
    host = {k: to_numpy(arrays[k]) for k in params}
    wrong = [
        f"{k} {tuple(host[k].shape)} (expected {tuple(p.shape)})"
        for k, p in params.items()
        if tuple(host[k].shape) != tuple(p.shape)
    ]
    if wrong:
        raise ModelFileError(f"{source}: wrong shapes: {', '.join(wrong)}")
    for key, a in host.items():
        if not np.issubdtype(a.dtype, np.floating):
            raise ModelFileError(f"{source}: {key} has dtype {a.dtype}, not float")
    dtypes = {k: _dtype_name(p.dtype) for k, p in params.items()}
    _assign(params, _converted(source, host, dtypes, allow_nonfinite))

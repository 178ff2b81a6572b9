"""Saving and loading trained models (``xpnn.io.save`` / ``xpnn.io.load``).

A model file holds each array of the model as a plain ``.npy`` member and one
JSON string of metadata: the model class and its ``config`` (for a
:class:`~xpnn.models.LayeredNet`, each layer's kind and sizes), two dtypes
and the xpnn version. :func:`load` computes from the metadata the names,
shapes and dtype of every array without building the model, has the reader
check the file against them (:mod:`xpnn.io.npz`), and only then reads the
data and builds the model on the active backend.

Storage dtype and compute dtype. ``"dtype"`` is the dtype the arrays are
stored in (every ``.npy`` header says it too); ``"compute_dtype"`` is the
dtype the model computed in, which :func:`load` rebuilds it in. They differ
when a file is stored narrower than the model, the book's way to halve a
file (vol. 2, section 1.5, ``np.float16``)::

    xpnn.io.save(net, "net.npz", dtype="float16")   # a float32 net, half the bytes
    net = xpnn.io.load("net.npz")                   # float32 again (rounded to float16)

and for a bfloat16 model (PyTorch), which is stored in float32 (it holds
every bfloat16 value exactly) or float16, since NumPy has no bfloat16. The
conversion is done on the host, after the device-to-host copy, so any
backend saves in any storage dtype. Files without ``"compute_dtype"``
(xpnn before it) load in their stored dtype; an older xpnn reading a new
file ignores the key and loads the stored dtype.

The values are checked on the host copies by :mod:`xpnn.io.checks`: what a
narrower storage dtype stores as 0 or subnormal (a warning, or refused with
``strict=True``) and the layers' state constraints (a negative
``running_var``) before a model is built.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.backend import _dtype_name, asarray, backend_of, get_backend, resolve_dtype, to_numpy
from xpnn.io.checks import (
    PrecisionLossError,
    check_state_values,
    file_states,
    lost_values,
    model_states,
    precision_loss_message,
    warn_precision_loss,
)
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

#: The dtypes a model may compute in (``"compute_dtype"``); files store one of
#: ``_FLOATS`` (NumPy, hence ``.npy``, has no bfloat16).
_COMPUTE_FLOATS = ("float16", "bfloat16", "float32", "float64")
#: The smallest magnitude that rounds to infinity in bfloat16 (its largest
#: value, 0x1.fep127, plus half a unit in the last place: a tie, which rounds
#: to the even neighbour, infinity).
_BFLOAT16_OVERFLOW = float.fromhex("0x1.ffp127")
#: What a storage dtype too narrow for the values widens to, in messages.
_WIDER = {"float16": "float32", "float32": "float64"}

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


def save(
    model: Any, path: str | os.PathLike[str], *, dtype: Any = None, strict: bool = False
) -> Path:
    """Write a model's arrays and description to an ``.npz`` file.

    The description is data (JSON), never pickle: the model's class and
    ``config``; for a :class:`~xpnn.models.LayeredNet`, each layer's kind and
    config, so any model made of registered layers (built from Affine,
    Relu, ... or by a new layer that declares its config) saves.

    ``dtype="float16"`` stores a float32 (or float64) model in half the
    bytes, as the book does with ``np.float16`` (vol. 2, section 1.5): the
    arrays are rounded on the host, and :func:`load` rebuilds the model in
    its own dtype, recorded as ``"compute_dtype"``. Small values it cannot
    hold are stored as 0 (in float16: ``|x| <= 2**-25``, about 2.98e-08) or
    as subnormal numbers, with fewer significant bits (``|x| < 2**-14``,
    about 6.10e-05): one :class:`~xpnn.io.PrecisionLossWarning` names each
    array and its counts (:mod:`xpnn.io.checks`), or with ``strict=True``
    the save is refused. A finite value too large for the storage dtype
    (over 65504 in float16: it would be stored as infinite) is always
    refused. NaN and infinite values are stored as they are (:func:`load`
    refuses them unless ``allow_nonfinite``).

    The file is written to a temporary name beside ``path`` and renamed into
    place, so an interrupted save, or a refused one, never leaves a
    half-written file.

    Args:
        model: A SimpleNet, TwoLayerNet, LayeredTwoLayerNet or LayeredNet
            (any backend; float16, bfloat16, float32 or float64 arrays).
        path: Where to write (``.npz`` is the usual suffix); not a link or
            a device.
        dtype: Storage dtype, ``"float16"``, ``"float32"`` or ``"float64"``
            (a name or a NumPy dtype). Omitted: the model's dtype, and
            float32 for a bfloat16 model (exact; NumPy has no bfloat16).
        strict: Refuse to store any nonzero value as 0 or as a subnormal
            number instead of warning.

    Returns:
        The path written.

    Raises:
        TypeError: Another class (a LayeredNet subclass too: it may compute
            otherwise than the LayeredNet it would load as), or a layer not
            in :data:`xpnn.layers.LAYERS`.
        ValueError: A layer's arrays do not fit its declared config, mixed
            dtypes, more than :data:`MAX_ELEMENTS` parameters, ``dtype`` is
            bfloat16 or not a float dtype, or a parameter holds a value too
            large for ``dtype`` (the message names it and its largest
            magnitude). Nothing is written then.
        PrecisionLossError: ``strict=True`` and values would be stored as 0
            or subnormal (a ValueError; the message names each array and
            its counts). Nothing is written.
        ModelFileError: ``path`` is a link, a directory or a device.
    """
    from xpnn._version import __version__
    from xpnn.models import LayeredNet

    store = None if dtype is None else _storage_dtype(dtype)
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
    if len(dtypes) != 1 or dtypes[0] not in _COMPUTE_FLOATS:
        raise ValueError(f"cannot save this {name}: its arrays are {dtypes}, not one float dtype")
    compute = dtypes[0]
    if store is None:
        store = "float32" if compute == "bfloat16" else compute
    total = sum(math.prod(s) for s in shapes.values())
    if total > MAX_ELEMENTS:
        raise ValueError(f"cannot save this {name}: {total} parameters, over {MAX_ELEMENTS}")
    arrays, losses = {}, {}
    for key, a in live.items():
        host = to_numpy(a)
        arrays[key] = _stored(name, key, host, store)
        flushed, subnormal = lost_values(host, arrays[key])
        if flushed or subnormal:
            losses[key] = (flushed, subnormal, host.size)
    lost = precision_loss_message(store, losses) if losses else None
    if lost and strict:
        raise PrecisionLossError(
            f"cannot save this {name} with strict=True: {lost}; nothing was written (store in "
            f"{_WIDER[store]}, dtype='{_WIDER[store]}', to keep them)"
        )
    meta = {
        "format": MODEL_FORMAT,
        "kind": "model",
        "xpnn": __version__,
        "model": name,
        "config": config,
        "dtype": store,
        "compute_dtype": compute,
        "params": {key: list(s) for key, s in shapes.items()},
    }
    written = _write_npz(path, arrays, meta, MODEL_META_CHARS)
    if lost:
        warn_precision_loss(
            f"{lost} (store in {_WIDER[store]}, dtype='{_WIDER[store]}', to keep them; "
            "strict=True refuses)"
        )
    return written


def _storage_dtype(dtype: Any) -> str:
    """The name of a storage dtype :func:`save` accepts (ValueError otherwise).

    Args:
        dtype: A name (``"float16"``), a NumPy dtype or type, or a dtype of
            a backend (``torch.float16``).

    Returns:
        ``"float16"``, ``"float32"`` or ``"float64"``.

    Raises:
        ValueError: bfloat16 (no ``.npy`` dtype), or not a float dtype.
    """
    try:
        name = _dtype_name(dtype)
    except TypeError:
        name = None
    if name == "bfloat16":
        raise ValueError(
            "cannot store parameters in bfloat16: NumPy, whose .npy arrays a model file "
            "holds, has no bfloat16; store in float16 or float32 (dtype='float16' halves "
            "the file; float32 holds every bfloat16 value exactly), and load with "
            "dtype='bfloat16' if the file does not record it"
        )
    if name not in _FLOATS:
        raise ValueError(
            f"cannot store parameters in {dtype!r:.40}: the storage dtype must be one of "
            f"{', '.join(_FLOATS)}"
        )
    return name


def _stored(model: str, key: str, host: np.ndarray, store: str) -> np.ndarray:
    """A parameter's host array in the storage dtype, refusing values that overflow it.

    Args:
        model: The model's class name, for the message.
        key: The parameter's name in the file (``W1``, ``layers.0.W``).
        host: Its values, any shape, float16/32/64 (bfloat16 arrives as
            float32 from :func:`~xpnn.to_numpy`).
        store: The storage dtype's name.

    Returns:
        ``host`` itself when already ``store``, else a converted copy, same
        shape, dtype ``store``. Values that round to zero, NaN and infinity
        are kept as rounding gives them.

    Raises:
        ValueError: A finite value would be stored as infinite.
    """
    if host.dtype.name == store:
        return host
    with np.errstate(over="ignore", invalid="ignore"):
        out = host.astype(store)
    if np.finfo(out.dtype).max < np.finfo(host.dtype).max:
        finite = np.isfinite(host)
        if (finite & ~np.isfinite(out)).any():
            largest = float(np.abs(host[finite]).max())
            raise ValueError(
                f"cannot save this {model} in {store}: {key} holds values up to "
                f"{largest:.6g} in magnitude, beyond the {store} range (largest "
                f"{float(np.finfo(store).max):.6g}): they would be stored as infinite; "
                f"store in {_WIDER[store]} (dtype='{_WIDER[store]}')"
            )
    return out


def _check_model_file(npz: _NpzFile) -> tuple[type, Any, str, str | None]:
    """The class, config and dtypes of a model file whose members all fit them.

    Everything is checked from the metadata and the ``.npy`` headers; no
    array is read and no model built.

    Returns:
        The model class, its config, the storage dtype (that of every
        member) and the compute dtype (None in files without one).

    Raises:
        ModelFileError: The file does not fit (the message says how).
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
    compute = meta.get("compute_dtype")
    if "compute_dtype" in meta and not (isinstance(compute, str) and compute in _COMPUTE_FLOATS):
        raise ModelFileError(
            f"{path}: corrupt metadata: compute_dtype {compute!r:.40}, not one of "
            f"{', '.join(_COMPUTE_FLOATS)}"
        )
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
    return cls, config, stored, compute


def _converted(
    source: str, arrays: Mapping[str, np.ndarray], dtypes: Mapping[str, str], allow_nonfinite: bool
) -> dict[str, np.ndarray]:
    """Host arrays in their target dtypes, refusing NaN, inf and values that overflow.

    NumPy has no bfloat16: for that target the host array is float32, and
    values that would round to infinity in bfloat16 count as overflowing.
    """
    out = {}
    for key, a in arrays.items():
        target = dtypes[key]
        with np.errstate(over="ignore", invalid="ignore"):
            b = a.astype("float32" if target == "bfloat16" else target, copy=False)
        finite = bool(np.isfinite(b).all())
        if finite and target == "bfloat16" and b.size:
            finite = float(np.abs(b).max()) < _BFLOAT16_OVERFLOW
        if not allow_nonfinite and not finite:
            if np.isfinite(a).all():
                raise ModelFileError(
                    f"{source}: {key} holds values up to {np.abs(a).max():.3g}, beyond the "
                    f"{target} range: they would load as infinite; load with "
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

    The model is built in the dtype it computed in (the file's
    ``"compute_dtype"``): a float32 model saved with ``dtype="float16"``
    loads as float32, holding the float16-rounded values. A file without
    one (xpnn before it) loads in its stored dtype.

    Args:
        path: A file written by :func:`save` (any xpnn version).
        dtype: Float dtype of the parameters (float16, bfloat16, float32 or
            float64, as the active backend has them); omitted: the file's
            compute dtype, else its storage dtype.
        allow_nonfinite: Load NaN or infinite values (and values that
            overflow ``dtype``) instead of refusing the file.

    Returns:
        A model of the saved class and sizes, holding the saved parameters.

    Raises:
        ModelFileError: Not an xpnn model file, a damaged or crafted one, an
            unknown model or layer, parameters whose names, shapes or values
            do not fit (the message names them), or a layer's state array
            that breaks its :data:`~xpnn.io.checks.STATE_CONSTRAINTS` (a
            BatchNormalization ``running_var`` below 0: the message names
            the layer and the count).
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``XPNN_BACKEND`` names no backend, or ``dtype`` (or the
            file's: bfloat16 on NumPy, float16 on array-api-strict) is not a
            float dtype of the active backend; the message says to pass
            ``dtype=``.
    """
    backend = get_backend()  # a bad XPNN_BACKEND is the variable's fault, not the file's
    want = None if dtype is None else _float_name(backend, dtype, "dtype")
    path = Path(path)
    with _NpzFile(path, MODEL_META_CHARS) as npz:
        cls, config, stored, compute = _check_model_file(npz)
        if want is not None:
            name = want
        elif compute is None or compute == stored:
            name = _float_name(backend, stored, f"{path} holds {stored} parameters;")
        else:
            what = f"{path} holds a {compute} model (stored in {stored});"
            name = _float_name(backend, compute, what)
        host = {key: npz.read(key) for key in npz.headers}
    host = _converted(str(path), host, dict.fromkeys(host, name), allow_nonfinite)
    check_state_values(str(path), file_states(cls.__name__, config), host)
    model = cls.from_config(config, dtype=name)
    _assign(_file_arrays(model), host)
    return model


def _float_name(backend: Any, dtype: Any, what: str) -> str:
    """The name of a float dtype the backend has (ValueError naming ``what`` otherwise)."""
    try:
        name = _dtype_name(resolve_dtype(backend.xp, dtype))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} {exc}; pass dtype='float32'") from None
    if name not in _COMPUTE_FLOATS:
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
            not floating point, NaN, infinite or overflowing values (unless
            ``allow_nonfinite``), or a state array that breaks its layer's
            :data:`~xpnn.io.checks.STATE_CONSTRAINTS` (a negative
            ``running_var``).
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
    host = _converted(source, host, dtypes, allow_nonfinite)
    check_state_values(source, model_states(model, params), host)
    _assign(params, host)

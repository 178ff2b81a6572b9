"""Dtype names and dtype objects across libraries.

Owns the canonical name of a dtype of any backend (:func:`_dtype_name`) and
the dtype object of a namespace for a dtype given any way
(:func:`resolve_dtype`). Both are on hot paths and remember their answers.

The half-precision floats (vol. 2, section 1.5) are outside the Array API
standard, which defines float32 and float64 only: NumPy, CuPy and PyTorch have
float16, PyTorch also bfloat16, and array-api-strict (the standard itself) has
neither. :func:`resolve_dtype` finds them where the library has them and
says why not where it has not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["HALF_FLOATS", "resolve_dtype"]

#: The half-precision floats, which the Array API standard does not define.
HALF_FLOATS = ("float16", "bfloat16")

_DTYPE_NAMES: dict[tuple[type, Any], str] = {}  # dtype -> name (str() of a dtype is slow)
_RESOLVED: dict[tuple[int, type, Any], Any] = {}  # (id(xp), dtype) -> dtype object of xp


def _dtype_name(dtype: Any) -> str:
    """The canonical name ('float32', 'int64', ...) of a dtype of any backend."""
    if isinstance(dtype, str):
        return dtype
    # Keyed with the type first: dtypes of two libraries may hash alike, and
    # array_api_strict warns when its dtypes are compared with NumPy's.
    key = (type(dtype), dtype)
    try:
        return _DTYPE_NAMES[key]
    except (KeyError, TypeError):  # not seen yet, or unhashable
        pass
    name = _dtype_name_uncached(dtype)
    try:
        _DTYPE_NAMES[key] = name
    except TypeError:
        pass
    return name


def _dtype_name_uncached(dtype: Any) -> str:
    text = str(dtype)  # torch.float32, array_api_strict.float32, float32
    if text.startswith(("torch.", "array_api_strict.")):
        return text.rsplit(".", 1)[1]
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}") from None


def resolve_dtype(xp: Any, dtype: Any) -> Any:
    """Return the dtype object of namespace ``xp`` for a dtype given any way.

    Args:
        xp: An array namespace.
        dtype: A name (``"float32"``), a NumPy dtype or type (``np.float64``),
            or a dtype of ``xp`` itself.

    Raises:
        ValueError: ``xp`` has no such dtype (the message lists those it has).
    """
    key = (id(xp), type(dtype), dtype)  # the type first: see _dtype_name
    try:
        return _RESOLVED[key]
    except (KeyError, TypeError):  # not seen yet, or unhashable
        pass
    dtypes = xp.__array_namespace_info__().dtypes()
    name = _dtype_name(dtype)
    if name == "bool_":
        name = "bool"
    if name in HALF_FLOATS and name not in dtypes:
        found = _half_float(xp, name)
    elif name not in dtypes:
        raise ValueError(f"unknown dtype {dtype!r}; valid dtypes: {', '.join(dtypes)}")
    else:
        found = dtypes[name]
    try:
        _RESOLVED[key] = found
    except TypeError:
        pass
    return found


def _half_float(xp: Any, name: str) -> Any:
    """float16 or bfloat16 of ``xp``, which its namespace info does not list
    (the standard has no half floats), or ValueError saying where to find it."""
    import array_api_compat

    if array_api_compat.is_torch_namespace(xp):
        return getattr(xp, name)
    numpy_like = array_api_compat.is_numpy_namespace(xp) or array_api_compat.is_cupy_namespace(xp)
    if numpy_like and name == "float16":
        return xp.float16
    library = getattr(xp, "__name__", str(xp)).rsplit(".", 1)[-1]
    if numpy_like:
        raise ValueError(
            f"{library} has no bfloat16; use the torch backend for bfloat16, or float16"
        )
    where = "the torch backend" if name == "bfloat16" else "the numpy, cupy or torch backend"
    raise ValueError(
        f"{library} has no {name}: the Array API standard defines float32 and float64 "
        f"only; use {where} for {name}"
    )

"""Dtype names and dtype objects across libraries.

Owns the canonical name of a dtype of any backend (:func:`_dtype_name`) and
the dtype object of a namespace for a dtype given any way
(:func:`resolve_dtype`). Both are on hot paths and remember their answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["resolve_dtype"]

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
    if name not in dtypes:
        raise ValueError(f"unknown dtype {dtype!r}; valid dtypes: {', '.join(dtypes)}")
    try:
        _RESOLVED[key] = dtypes[name]
    except TypeError:
        pass
    return dtypes[name]

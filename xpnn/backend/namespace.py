"""Following the data: the namespace, library, backend and device of arrays.

Owns :func:`get_namespace` (the hot path of every math call, with fast paths
for NumPy and CuPy arrays before array-api-compat's general lookup),
:func:`backend_of`, :func:`device_of` and :func:`_library`. Nothing here
reads the active backend: math follows its inputs.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from xpnn.backend.errors import BackendMismatchError
from xpnn.backend.selection import Backend, _open

__all__ = ["backend_of", "device_of", "get_namespace"]

_SCALARS = (bool, int, float, complex)
_COMPAT: dict[str, Any] = {}  # "numpy"/"cupy" -> array_api_compat's wrapper namespace


def _compat(name: str) -> Any:
    xp = _COMPAT.get(name)
    if xp is None:
        xp = _COMPAT[name] = importlib.import_module(f"array_api_compat.{name}")
    return xp


def get_namespace(*arrays: Any) -> Any:
    """Return the Array API namespace of the given arrays.

    Math code calls this on its inputs (Python scalars and ``None`` are
    ignored), so it runs on whatever backend and device the data lives on.

    Raises:
        BackendMismatchError: The arrays come from different libraries or
            live on different devices.
        TypeError: No argument is an array.
    """
    if len(arrays) == 1 and type(arrays[0]) is np.ndarray:  # the hottest path
        return _compat("numpy")
    found = [a for a in arrays if a is not None and not isinstance(a, _SCALARS)]
    if not found:
        raise TypeError("get_namespace() needs at least one array argument")
    # The hot paths of every math call: arrays of one library, checked cheaply.
    kind = type(found[0])
    if all(type(a) is kind for a in found):
        if kind is np.ndarray:  # NumPy has one device
            return _compat("numpy")
        if kind.__module__ == "cupy" and kind.__name__ == "ndarray":
            device = found[0].device
            if all(a.device == device for a in found):
                return _compat("cupy")
        if kind.__module__ == "torch" and kind.__name__ == "Tensor":
            # What array_namespace(...) answers for tensors, less its per-call
            # walk over every helper (a quarter of a CBOW forward pass on the CPU).
            device = found[0].device
            if all(a.device == device for a in found):
                return _compat("torch")
    import array_api_compat

    try:
        xp = array_api_compat.array_namespace(*found)
    except TypeError as exc:
        kinds = sorted({f"{type(a).__module__}.{type(a).__qualname__}" for a in found})
        if "Multiple namespaces" in str(exc):
            raise BackendMismatchError(
                f"arrays from different backends were combined: {', '.join(kinds)}; "
                "move them to one backend first with xpnn.asarray()"
            ) from None
        raise TypeError(f"not an array of a supported backend: {', '.join(kinds)}") from None
    if len(found) > 1:
        devices = [array_api_compat.device(a) for a in found]
        if any(d != devices[0] for d in devices[1:]):
            raise BackendMismatchError(
                "arrays on different devices were combined: "
                f"{', '.join(sorted({str(d) for d in devices}))}; "
                "move them to one device first with xpnn.asarray()"
            )
    return xp


def backend_of(x: Any) -> Backend:
    """The backend (library and device) an array lives on, default float dtype.

    Raises:
        TypeError: ``x`` is not an array of a backend xpnn knows.
    """
    lib = _library(x)
    if lib is None:
        raise TypeError(f"not an array of a supported backend: {type(x).__name__}")
    return _open(lib, device_of(x))


def device_of(x: Any) -> Any:
    """The device an array lives on (for creating new arrays beside it)."""
    import array_api_compat

    return array_api_compat.device(x)


def _library(a: Any) -> str | None:
    """Which backend library an array belongs to, or None for host data."""
    if type(a) is np.ndarray:  # the hot path
        return "numpy"
    import array_api_compat as c

    if c.is_numpy_array(a):
        return "numpy"
    if c.is_cupy_array(a):
        return "cupy"
    if c.is_torch_array(a):
        return "torch"
    if type(a).__module__.startswith("array_api_strict"):
        return "array_api_strict"
    return None

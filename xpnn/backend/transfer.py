"""The explicit transfers between host and backends, and new arrays.

Owns :func:`to_numpy` (any backend to the host), :func:`asarray` (data to the
active backend or a given one) and :func:`zeros`: the only ways xpnn moves
data between libraries or devices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.backend.dtypes import _dtype_name, resolve_dtype
from xpnn.backend.namespace import _library
from xpnn.backend.selection import Backend, get_backend

__all__ = ["asarray", "to_numpy", "zeros"]


def to_numpy(a: Any) -> np.ndarray:
    """Copy an array of any backend to host memory as a NumPy array.

    This is the explicit device-to-host transfer (it waits for the device).
    The result of a device array (CuPy, PyTorch, array-api-strict) never
    shares memory with it. NumPy arrays, the numpy backend's included, come
    back as they are, like ``numpy.asarray``: copy one before changing it.
    Python scalars and lists become NumPy arrays. NumPy has no bfloat16: a
    PyTorch bfloat16 tensor comes back as float32, which holds every
    bfloat16 value exactly.
    """
    lib = _library(a)
    if lib == "cupy":
        return a.get()
    if lib == "torch":
        import torch

        a = a.detach()
        if a.dtype == torch.bfloat16:
            a = a.float()
        # .numpy() of a CPU tensor is a view of the tensor: copy it.
        return np.array(a.cpu().numpy(), copy=True)
    if lib == "array_api_strict":
        import array_api_strict

        host = a.to_device(array_api_strict.Device("CPU_DEVICE"))
        return np.from_dlpack(host).copy()
    return np.asarray(a)


def asarray(a: Any, dtype: Any = None, *, backend: Backend | None = None) -> Any:
    """Put data on the active backend and device (or on ``backend``).

    This is the explicit host-to-device transfer. Arrays of another backend
    are brought over through host memory; arrays already there are not copied
    unless the dtype changes.

    Args:
        a: NumPy array, array of any backend, nested lists or a scalar.
        dtype: Target dtype (name, NumPy dtype or a dtype of the backend).
            By default data that has a dtype keeps it, as ``numpy.asarray``,
            ``cupy.asarray`` and ``torch.asarray`` do: a float64 NumPy array
            stays float64 (the book's ``np.array([3.0, 4.0])`` keeps its
            digits). Only untyped data (Python lists and scalars) takes the
            backend's default float dtype (float32 unless chosen otherwise)
            when it holds floats; integers and bools keep theirs.
        backend: Where to put the data; the active backend if omitted.

    Returns:
        An array of ``backend.xp`` on ``backend.device``.
    """
    backend = backend or get_backend()
    xp = backend.xp
    lib = _library(a)
    untyped = lib is None and not isinstance(a, np.generic)  # lists, Python scalars
    if lib is not None and lib != backend.name:
        a = to_numpy(a)
        lib = "numpy"
    if lib is None:
        a = np.asarray(a)
        lib = "numpy"
        if a.dtype.kind not in "biuf":
            raise TypeError(
                f"xpnn.asarray needs numeric data, got NumPy dtype {a.dtype} "
                "(strings, objects, or integers too large for int64?)"
            )
    if dtype is None:
        kind = _dtype_name(a.dtype)
        # Typed data keeps its dtype; untyped floats take the backend's default.
        dtype = backend.float_dtype if untyped and kind.startswith("float") else kind
    target = resolve_dtype(xp, dtype)
    if lib == "numpy" and backend.name != "numpy":
        # Host data going to another library: torch and array_api_strict would
        # wrap the NumPy buffer (so writes would reach the caller's array, or
        # crash on a read-only memory map), and torch refuses negative strides
        # and non-native byte order. Hand them their own contiguous copy.
        native = a.dtype.newbyteorder("=")
        if backend.name in ("torch", "array_api_strict"):
            a = np.array(a, dtype=native, order="C", copy=True)
        else:
            a = np.asarray(a, dtype=native, order="C")
    # Within one library this may share memory with `a`, like numpy.asarray.
    return xp.asarray(a, dtype=target, device=backend.device)


def zeros(shape: int | tuple[int, ...], dtype: Any = None, *, backend: Backend | None = None):
    """A new array of zeros on the active backend (or ``backend``).

    Args:
        shape: The shape.
        dtype: Its dtype; the backend's default float dtype if omitted.
    """
    backend = backend or get_backend()
    dtype = backend.float_dtype if dtype is None else resolve_dtype(backend.xp, dtype)
    return backend.xp.zeros(shape, dtype=dtype, device=backend.device)


def adopt_host_input(x: Any, like: Any) -> Any:
    """``x`` as an array of ``like``'s library when that needs no transfer, else ``x`` itself.

    A NumPy array given to a model whose parameters are PyTorch CPU tensors
    lives in the same host memory: ``torch.asarray`` wraps its buffer without
    copying (the book's vol. 2 ``train_custom_loop.py`` predicts on its own
    ``np.c_[...]`` grid). Anything else comes back unchanged, so data on
    another device (a GPU, array-api-strict's ``device1``) or of another
    library is still refused where it meets ``like``: moving it is the
    caller's explicit ``xpnn.asarray``.
    """
    if type(x) is not np.ndarray or _library(like) != "torch" or like.device.type != "cpu":
        return x
    import torch

    return torch.asarray(x)  # shares x's buffer (its dtype kept): no copy, no transfer

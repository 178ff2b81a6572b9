"""Scatter-adds on the device: ``bincount`` (counts) and ``index_add_rows`` (rows).

Owns :func:`bincount`, the one operation :func:`xpnn.text.create_co_matrix`
needs that the Array API standard lacks: how often each value ``0..length-1``
occurs in an integer array, counted where the array lives. Each library runs
its own scatter-add:

    numpy             np.bincount (few bins per value) or np.add.at into the
                      result's dtype (many bins: no int64 array of ``length``)
    torch             Tensor.index_add_ of ones into the result's dtype (CPU, CUDA)
    cupy              cupy.add.at (CuPy 12 and later) or cupyx.scatter_add
    array_api_strict  sorting, then a binary search of every bin's edge
    (and any other)   (xp.sort + xp.searchsorted): portable, on the device

No value is read back to the host by any of them.

It also owns :func:`index_add_rows`, ``target[idx[i]] += rows[i]`` with
repeated indices accumulated: the backward pass of an embedding lookup
(vol. 2's ``Embedding``, whose book code calls ``np.add.at`` or CuPy's
``scatter_add``). See its docstring for each library's way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xpnn.backend.dtypes import _dtype_name
from xpnn.backend.namespace import _library, device_of, get_namespace

__all__ = ["bincount", "index_add_rows"]

#: NumPy's np.bincount makes an int64 array of ``length`` bins: where the bins
#: outnumber the values this many times, np.add.at into the result is cheaper
#: (10,000 words: 10^8 bins for 3.7 million pairs, 2.6 s against 0.9 s).
_NUMPY_BINS_PER_VALUE = 16

#: NumPy 1.25 gave np.add.at a fast path; before it, index_add_rows sorts instead.
_NUMPY_FAST_ADD_AT = tuple(int(v) for v in np.__version__.split(".")[:2]) >= (1, 25)


def bincount(x: Any, length: int, *, dtype: Any = None) -> Any:
    """How often each of ``0..length-1`` occurs in ``x``, on ``x``'s device.

    As ``numpy.bincount(x, minlength=length)`` where every value is in
    range, but values outside ``0..length-1`` (negative ones included) are
    not counted, on every backend: nothing is read back to check them, and
    no index out of bounds reaches a kernel (PyTorch CUDA would assert).

    Args:
        x: A 1-D integer array of any backend (any length, 0 included).
        length: The number of bins, an int >= 0.
        dtype: The counts' dtype, a dtype of ``x``'s namespace (default
            int64). Counts must fit in it: int32 holds 2**31 - 1.

    Returns:
        A 1-D array of ``length`` counts, in ``dtype``, on ``x``'s backend
        and device.

    Raises:
        TypeError: ``x`` is not of an integer dtype.
        ValueError: ``x`` is not 1-D, or ``length`` is negative.
    """
    xp = get_namespace(x)
    if not xp.isdtype(x.dtype, "integral"):
        raise TypeError(f"bincount() counts integers, got x of dtype {_dtype_name(x.dtype)}")
    if x.ndim != 1:
        raise ValueError(f"bincount() takes a 1-D x, got shape {tuple(x.shape)}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be an int >= 0, got {length!r}")
    dtype = xp.int64 if dtype is None else dtype
    lib = _library(x)
    if lib == "numpy":
        return _numpy_bincount(x, length, dtype)
    if x.dtype != xp.int64:
        x = xp.astype(x, xp.int64)
    # Values out of range go to one bin past the end, counted and dropped.
    x = xp.where((x >= 0) & (x < length), x, length)
    if lib == "torch":
        import torch

        out = torch.zeros(length + 1, dtype=dtype, device=x.device)
        out.index_add_(0, x, torch.ones(1, dtype=dtype, device=x.device).expand(x.shape[0]))
        return out[:length]
    if lib == "cupy":
        import cupy

        with x.device:  # x's GPU, which need not be the current one
            out = cupy.zeros(length + 1, dtype=dtype)
            ones = cupy.ones(x.shape[0], dtype=dtype)
            if hasattr(cupy.add, "at"):
                cupy.add.at(out, x, ones)
            else:  # CuPy before 12
                import cupyx

                cupyx.scatter_add(out, x, ones)
        return out[:length]
    return _sorted_bincount(xp, x, length, dtype)


def _numpy_bincount(x: np.ndarray, length: int, dtype: Any) -> np.ndarray:
    """NumPy's counts: np.bincount, or np.add.at where the bins are many."""
    inside = (x >= 0) & (x < length)
    if not inside.all():
        x = x[inside]
    if length <= _NUMPY_BINS_PER_VALUE * max(x.shape[0], 1):
        return np.bincount(x, minlength=length).astype(dtype, copy=False)
    out = np.zeros(length, dtype=dtype)
    np.add.at(out, x, 1)
    return out


def _sorted_bincount(xp: Any, x: Any, length: int, dtype: Any) -> Any:
    """Counts by sorting: bin k holds the values between the first k and the first k + 1.

    ``x`` is int64 with values in ``0..length`` (``length``: not counted).
    """
    edges = xp.searchsorted(
        xp.sort(x), xp.arange(length + 1, dtype=xp.int64, device=device_of(x)), side="left"
    )
    return xp.astype(edges[1:] - edges[:-1], dtype)


def index_add_rows(target: Any, idx: Any, rows: Any) -> Any:
    """``target[idx[i]] += rows[i]`` for every i, in place, on ``target``'s device.

    Repeated indices accumulate (where ``target[idx] += rows`` would keep
    only one of them): the gradient of a row lookup ``target[idx]``. Each
    library runs its fastest exact way:

        numpy             NumPy 1.25 and later: np.add.at on the flat
                          target with one index per number (its fast loop is
                          for 1-D indexing: 100 rows of 100 float32 into
                          10,000, 22 us against 130 us with row indices,
                          bitwise the same sums; as fast as the sort below
                          or faster for 50,000 rows).
                          Before: sort idx, sum the rows of each index with
                          one np.add.reduceat, then one fancy ``+=`` of the
                          unique rows: a few vectorised passes, where the old
                          np.add.at looped element by element in Python-level
                          ufunc calls (tens of times slower)
        torch             Tensor.index_add_: one kernel (CPU, CUDA; on CUDA
                          by atomics, so float sums are not bit-reproducible)
        cupy              cupy.add.at (CuPy 12 and later) or cupyx.scatter_add:
                          one atomic kernel (not run in xpnn's CPU tests)
        array_api_strict  a one-hot ``(V, N)`` matrix (``arange(V) == idx``)
        (and any other)   times the rows, added to the whole target: portable,
                          exact (each sum adds zeros and the rows), on the
                          device; it costs V * N * D, fine for a reference

    Args:
        target: ``(V, ...)`` floating-point array, written in place.
        idx: Integer indices in ``0..V-1``, any shape ``S`` (``(N,)`` or
            ``(N, T)``), on ``target``'s backend and device. They are not
            checked (reading them on a device would be a host sync): NumPy
            and PyTorch CPU raise IndexError for one out of range, the
            one-hot path drops it, a GPU kernel may fault.
        rows: ``S + target.shape[1:]``, ``target``'s dtype, backend and device.

    Returns:
        ``target`` itself.

    Raises:
        TypeError: ``idx`` is not integer, or ``rows`` is not of
            ``target``'s dtype.
        ValueError: ``target`` has no axis, or ``rows`` has another shape
            than ``idx.shape + target.shape[1:]``.
        xpnn.BackendMismatchError: The arrays are on different backends or
            devices.
    """
    xp = get_namespace(target, idx, rows)
    if not xp.isdtype(idx.dtype, "integral"):
        raise TypeError(
            f"index_add_rows() takes integer indices, got idx of dtype {_dtype_name(idx.dtype)}"
        )
    if rows.dtype != target.dtype:
        raise TypeError(
            f"index_add_rows(): rows of dtype {_dtype_name(rows.dtype)} do not fit a target of "
            f"dtype {_dtype_name(target.dtype)}; convert rows with xp.astype first"
        )
    if target.ndim < 1:
        raise ValueError("index_add_rows() needs a target with rows (V, ...), got a 0-d array")
    row_shape = tuple(target.shape[1:])
    want = (*tuple(idx.shape), *row_shape)
    if tuple(rows.shape) != want:
        raise ValueError(
            f"index_add_rows(): rows of shape {tuple(rows.shape)} do not fit idx of shape "
            f"{tuple(idx.shape)} and a target of rows {row_shape}: rows must be {want}"
        )
    n = math.prod(idx.shape)
    if n == 0:
        return target
    flat = xp.reshape(idx, (n,))
    rows = xp.reshape(rows, (n, *row_shape))
    lib = _library(target)
    if lib == "numpy":
        if _NUMPY_FAST_ADD_AT:
            width = math.prod(row_shape)
            if target.flags.c_contiguous and width > 1:
                # One element index per number: np.add.at's fast loop is for 1-D
                # indexing; with row indices it takes its slow path (100 rows of
                # 100 float32: 130 us -> 22 us, the same sums in the same order).
                cells = flat[:, None] * width + np.arange(width)
                np.add.at(target.reshape(-1), cells.reshape(-1), rows.reshape(-1))
            else:
                np.add.at(target, flat, rows)
            return target
        order = np.argsort(flat, kind="stable")
        ordered = flat[order]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        target[ordered[starts]] += np.add.reduceat(rows[order], starts, axis=0)
        return target
    if lib == "torch":
        import torch

        if flat.dtype not in (torch.int64, torch.int32):
            flat = flat.to(torch.int64)
        return target.index_add_(0, flat, rows)
    if lib == "cupy":
        import cupy

        with target.device:  # target's GPU, which need not be the current one
            if hasattr(cupy.add, "at"):
                cupy.add.at(target, flat, rows)
            else:  # CuPy before 12
                import cupyx

                cupyx.scatter_add(target, flat, rows)
        return target
    return _one_hot_index_add(xp, target, flat, rows)


def _one_hot_index_add(xp: Any, target: Any, flat: Any, rows: Any) -> Any:
    """:func:`index_add_rows` by a matrix product: ``target += one_hot(flat).T @ rows``.

    ``flat`` ``(N,)`` integer, ``rows`` ``(N, ...)``; an index outside
    ``0..V-1`` matches no row of the one-hot matrix and adds nothing.
    """
    v, n = target.shape[0], flat.shape[0]
    features = math.prod(target.shape[1:])
    classes = xp.arange(v, dtype=flat.dtype, device=device_of(target))
    hot = xp.astype(xp.reshape(classes, (v, 1)) == xp.reshape(flat, (1, n)), target.dtype)
    sums = xp.matmul(hot, xp.reshape(rows, (n, features)))
    target += xp.reshape(sums, tuple(target.shape))
    return target

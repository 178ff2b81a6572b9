"""The operations of a training step, writing into preallocated outputs.

Owns :class:`Ops` (the buffered fast paths for NumPy and CuPy, the
allocating ones for PyTorch and array-api-strict) and :func:`ops`, which
finds the ``Ops`` of arrays. On CuPy the fused operations run the kernels of
:mod:`xpnn.backend.cuda.kernels` and matmul the cuBLAS call of
:mod:`xpnn.backend.cuda.cublas`. ``Ops`` also has the operations of two
other modules, one idea each: the losses' (:mod:`xpnn.backend.loss_ops`:
label checks, picks, softmax with cross-entropy) and the layers' named fast
paths (:mod:`xpnn.backend.layer_ops`: ReLU by bits...).

(Named ``operations`` rather than ``ops`` so that ``xpnn.backend.ops`` stays
the function.)
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from xpnn.backend.cuda.cublas import _cupy_gemm
from xpnn.backend.cuda.kernels import _cupy_kernel
from xpnn.backend.dtypes import HALF_FLOATS, _dtype_name
from xpnn.backend.layer_ops import LayerOps
from xpnn.backend.loss_ops import LossOps
from xpnn.backend.namespace import device_of, get_namespace

__all__ = ["Ops", "ops"]


class Ops(LossOps, LayerOps):
    """Element-wise and matrix operations that can write into given outputs.

    NumPy and CuPy functions take ``out=``: layers pass preallocated buffers
    and a training step allocates nothing. Other namespaces (PyTorch,
    array-api-strict) have no ``out=`` in the Array API: there ``buffer()``
    returns None and every operation returns a new array. Either way the same
    operations run in the same order, so the results are bitwise the same.

    Get one with :func:`ops` from an array: ``k = ops(x)``. The losses'
    operations come from :class:`~xpnn.backend.loss_ops.LossOps`, the
    layers' fast paths from :class:`~xpnn.backend.layer_ops.LayerOps`.
    """

    def __init__(self, xp: Any, native: Any, torch: Any = None):
        self.xp = xp
        self.native = native  # numpy or cupy, or None
        self.torch = torch  # the torch module when xp is PyTorch's namespace
        self._aranges: dict[int, Any] = {}  # NumPy only: n -> arange(n), see _arange
        self._isdtype: dict[tuple[type, Any, str], bool] = {}

    def buffer(self, cache: dict, name: Any, shape: tuple[int, ...], dtype: Any, like: Any) -> Any:
        """A reusable output array kept in ``cache[name]`` (None without ``out=``)."""
        if self.native is None:
            return None
        buf = cache.get(name)
        if buf is not None and buf.shape == shape and buf.dtype == dtype:
            # NumPy has one device; a CuPy array names its GPU in .device.
            if self.native is np or buf.device == like.device:
                return buf
        buf = cache[name] = self.xp.empty(shape, dtype=dtype, device=device_of(like))
        return buf

    def quiet(self) -> Any:
        """A context in which NumPy (and array-api-strict, which computes with it)
        does not warn of overflow and invalid operations: for steps where an
        inf or NaN is expected and handled (a loss-scaled step that overflows
        is detected and skipped). Elsewhere a context that does nothing."""
        if self.native is np or (self.native is None and self.torch is None):
            return np.errstate(over="ignore", invalid="ignore", divide="ignore")
        return contextlib.nullcontext()

    def isdtype(self, dtype: Any, kind: str) -> bool:
        """``xp.isdtype(dtype, kind)``, remembered (it is slow for what it does)."""
        key = (type(dtype), dtype, kind)  # the type first: see _dtype_name
        try:
            return self._isdtype[key]
        except (KeyError, TypeError):
            pass
        answer = self._isdtype[key] = self.xp.isdtype(dtype, kind)
        return answer

    # Half-precision floats (float16, bfloat16) are stored and multiplied in
    # half, but softmax, the losses and sums accumulate in float32, as
    # PyTorch's autocast does: a float16 exp overflows above 11.1 and a sum of
    # float16 values loses a bit per addition. float32 and float64 arrays pass
    # these helpers untouched (no cast, no copy).

    @staticmethod
    def is_half(dtype: Any) -> bool:
        """Whether ``dtype`` is a half-precision float (float16 or bfloat16)."""
        return _dtype_name(dtype) in HALF_FLOATS

    def wide_dtype(self, dtype: Any) -> Any:
        """The dtype softmax, losses and sums of ``dtype`` accumulate in: float32
        for the half floats, ``dtype`` itself otherwise."""
        return self.xp.float32 if _dtype_name(dtype) in HALF_FLOATS else dtype

    def widen(self, a: Any, out: Any = None) -> Any:
        """``a`` in float32 if it is a half float, else ``a`` itself (not copied).

        Args:
            a: Any array.
            out: A float32 buffer of ``a``'s shape for the copy (NumPy and
                CuPy; ignored elsewhere and for arrays that are not half).

        Raises:
            ValueError: ``a`` is half and ``out`` is not float32 (writing
                there would round the result back to half without a word).
        """
        if _dtype_name(a.dtype) not in HALF_FLOATS:
            return a
        float32 = self.xp.float32
        if out is not None and self.native is not None:
            if out.dtype != float32:
                raise ValueError(
                    f"a {_dtype_name(a.dtype)} array is computed on in float32, so its "
                    f"buffer must be float32, got {_dtype_name(out.dtype)}"
                )
            self.native.copyto(out, a)
            return out
        return self.xp.astype(a, float32)

    def cast(self, a: Any, dtype: Any, out: Any = None) -> Any:
        """``a`` rounded once to ``dtype`` (into ``out``, of that dtype, where given)."""
        if out is not None and self.native is not None:
            self.native.copyto(out, a, casting="same_kind")
            return out
        return self.xp.astype(a, dtype)

    def unwiden(self, a: Any, dtype: Any) -> Any:
        """``a`` rounded once to ``dtype`` if that is a half float, else ``a`` itself.

        The way back from :meth:`widen`: what was computed in float32 for
        half inputs returns to their dtype; for other dtypes nothing happens
        (no cast, no copy, whatever ``a``'s dtype).
        """
        if _dtype_name(dtype) not in HALF_FLOATS:
            return a
        return self.xp.astype(a, dtype)

    def sum_wide(self, a: Any, axis: int | None, out: Any = None) -> Any:
        """:meth:`sum`, accumulated in float32 when ``a`` is a half float.

        The float32 total is rounded once to ``out``'s dtype (``a``'s without
        ``out``). NumPy sums float16 along a non-contiguous axis (``axis=0``
        of a C-ordered batch: a bias gradient) in float16, one rounding per
        row; PyTorch and CuPy accumulate wider already. Other dtypes: exactly
        :meth:`sum`.
        """
        if _dtype_name(a.dtype) not in HALF_FLOATS:
            return self.sum(a, axis=axis, out=out)
        total = self.sum(self.widen(a), axis=axis)
        return self.cast(total, a.dtype if out is None else out.dtype, out=out)

    # Each operation writes into ``out`` where the library can, else returns a
    # new array (spelled out per operation: this is the hot path of a step).

    def add(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.add(a, b, out=out)
        return a + b

    def subtract(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.subtract(a, b, out=out)
        return a - b

    def multiply(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.multiply(a, b, out=out)
        return a * b

    def divide(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.divide(a, b, out=out)
        return a / b

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            if self.native is not np and _cupy_gemm(a, b, out):
                return out
            return self.native.matmul(a, b, out=out)
        if out is not None and self.torch is not None and out.dtype == a.dtype == b.dtype:
            # Straight into out (a layer's gradient array): no product-sized copy.
            return self.torch.matmul(a, b, out=out)
        return a @ b

    def exp(self, a: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.exp(a, out=out)
        return self.xp.exp(a)

    def tanh(self, a: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.tanh(a, out=out)
        return self.xp.tanh(a)

    # NumPy's sum and max are add.reduce and maximum.reduce behind a wrapper
    # that costs more than the reduction of a (100, 10) array; call them directly.

    def sum(self, a: Any, axis: int | None, out: Any = None, keepdims: bool = False) -> Any:
        if self.native is np:
            return np.add.reduce(a, axis=axis, out=out, keepdims=keepdims)
        if out is not None and self.native is not None:
            return self.native.sum(a, axis=axis, out=out, keepdims=keepdims)
        if out is not None and self.torch is not None and axis is not None and out.dtype == a.dtype:
            return self.torch.sum(a, dim=axis, keepdim=keepdims, out=out)
        return self.xp.sum(a, axis=axis, keepdims=keepdims)

    def max(self, a: Any, axis: int | None, keepdims: bool = False) -> Any:
        if self.native is np:
            return np.maximum.reduce(a, axis=axis, keepdims=keepdims)
        return self.xp.max(a, axis=axis, keepdims=keepdims)

    # Fused element-wise steps. On CuPy each is one kernel (a GPU step is
    # bound by kernel launches); elsewhere the same formula in separate passes.

    def negative(self, a: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.negative(a, out=out)
        return -a

    def sigmoid(self, x: Any, out: Any = None) -> Any:
        """The logistic function 1 / (1 + exp(-x)), element-wise, in x's dtype.

        Evaluated as written, in four passes that round at most once each, so
        the result is within a few ulp (relative) wherever it is a normal float,
        tiny values of negative x included (the tanh identity 0.5 * tanh(0.5 x)
        + 0.5 lost them all: sigmoid(-38) was 0 in float64). Below about -88.7
        (float32) or -709.8 (float64), where the true value is subnormal,
        exp(-x) overflows to inf and the result is 0; that overflow is
        intended and raises no warning. NaN stays NaN.
        """
        kernel = self._kernel("sigmoid")
        if kernel is not None and out is not None:
            return kernel(x, out)
        if self.torch is not None:  # no floating-point warnings to silence
            return self._sigmoid_passes(x, out)
        # NumPy (and array-api-strict, which computes with NumPy) would warn of
        # the intended overflow.
        with np.errstate(over="ignore", under="ignore"):
            return self._sigmoid_passes(x, out)

    def _sigmoid_passes(self, x: Any, out: Any) -> Any:
        e = self.exp(self.negative(x, out=out), out=out)
        return self.divide(1.0, self.add(e, 1.0, out=e), out=e)

    def sigmoid_backward(self, y: Any, dout: Any, out: Any = None) -> Any:
        """(1 - y) * y * dout, the sigmoid's backward pass from its output y."""
        kernel = self._kernel("sigmoid_backward")
        if kernel is not None and out is not None:
            return kernel(y, dout, out)
        dx = self.subtract(1.0, y, out=out)
        return self.multiply(self.multiply(dx, y, out=dx), dout, out=dx)

    def scaled_difference(self, a: Any, b: Any, scale: Any, out: Any = None) -> Any:
        """(a - b) * scale; ``scale`` a number or a 0-d array of a's dtype (never read)."""
        kernel = self._kernel("scaled_difference")
        if kernel is not None and out is not None:
            if isinstance(scale, (int, float)):
                return kernel(a, b, a.dtype.type(scale), out)
            if self._device_scalar(scale, a.dtype):  # broadcast by the kernel, never read
                return kernel(a, b, scale, out)
        return self.multiply(self.subtract(a, b, out=out), scale, out=out)

    def _device_scalar(self, scale: Any, dtype: Any) -> bool:
        """Whether ``scale`` is a 0-d array of ``dtype`` of this (native) library."""
        return isinstance(scale, self.native.ndarray) and scale.ndim == 0 and scale.dtype == dtype

    def subtract_scaled(self, p: Any, g: Any, lr: float, scratch: Any = None) -> Any:
        """p -= lr * g in place (lr * g goes into ``scratch`` when given)."""
        kernel = self._kernel("subtract_scaled")
        if kernel is not None:
            return kernel(g, p.dtype.type(lr), p)
        p -= self.multiply(g, lr, out=scratch)
        return p

    def take_rows(self, x: Any, idx: Any, out: Any = None) -> Any:
        """``x``'s rows (or elements, for 1-D ``x``) at ``idx``, into ``out`` if given.

        ``idx`` must hold valid indices (on CuPy they are not checked).
        """
        if out is not None and self.native is not None:
            return self.native.take(x, idx, axis=0, out=out)
        return self.xp.take(x, idx, axis=0)

    def _kernel(self, name: str) -> Any:
        if self.native is None or self.native is np:
            return None
        return _cupy_kernel(name)


_ops_cache: dict[int, Ops] = {}


def ops(*arrays: Any) -> Ops:
    """The :class:`Ops` for the namespace of ``arrays`` (see get_namespace)."""
    for a in arrays:  # the hot path: all NumPy arrays
        if type(a) is not np.ndarray:
            break
    else:
        k = _ops_cache.get(-1) if arrays else None
        if k is not None:
            return k
    xp = get_namespace(*arrays)
    k = _ops_cache.get(id(xp))
    if k is None:
        import array_api_compat

        native = torch = None
        if array_api_compat.is_numpy_namespace(xp):
            native = np
        elif array_api_compat.is_cupy_namespace(xp):
            import cupy

            native = cupy
        elif array_api_compat.is_torch_namespace(xp):
            import torch
        k = _ops_cache[id(xp)] = Ops(xp, native, torch)
        if native is np:
            _ops_cache[-1] = k
    return k

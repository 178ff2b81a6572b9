"""The operations of a training step, writing into preallocated outputs.

Owns :class:`Ops` (the buffered fast paths for NumPy and CuPy, the
allocating ones for PyTorch and array-api-strict, the label checks and
picks of the losses) and :func:`ops`, which finds the ``Ops`` of arrays. On
CuPy the fused operations run the kernels of :mod:`xpnn.backend.cuda.kernels`
and matmul the cuBLAS call of :mod:`xpnn.backend.cuda.cublas`.

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
from xpnn.backend.namespace import backend_of, device_of, get_namespace

__all__ = ["Ops", "ops"]


class Ops:
    """Element-wise and matrix operations that can write into given outputs.

    NumPy and CuPy functions take ``out=``: layers pass preallocated buffers
    and a training step allocates nothing. Other namespaces (PyTorch,
    array-api-strict) have no ``out=`` in the Array API: there ``buffer()``
    returns None and every operation returns a new array. Either way the same
    operations run in the same order, so the results are bitwise the same.

    Get one with :func:`ops` from an array: ``k = ops(x)``.
    """

    def __init__(self, xp: Any, native: Any, torch: Any = None):
        self.xp = xp
        self.native = native  # numpy or cupy, or None
        self.torch = torch  # the torch module when xp is PyTorch's namespace
        self._aranges: dict[int, Any] = {}  # NumPy only: n -> arange(n), see _arange
        self._isdtype: dict[tuple[type, Any, str], bool] = {}
        # The unsigned integer type of each integer size (NumPy's check_labels).
        self._unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}

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

    def _arange(self, n: int) -> Any:
        """NumPy's ``arange(n)``, made once: row and class numbers of pick() and
        label_difference(), which a step would otherwise make every time."""
        numbers = self._aranges.get(n)
        if numbers is None:
            numbers = self._aranges[n] = np.arange(n)
        return numbers

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

    def dout_scale(self, dout: Any, n: int, dtype: Any, like: Any) -> Any:
        """``dout / n``, the factor of a mean loss's backward, without reading ``dout``.

        Args:
            dout: The upstream gradient of the loss: a Python number (or a
                NumPy scalar), used as it always was; or a 0-d array on the
                backend and device of ``like`` (a loss scale kept on the
                device), cast to ``dtype`` there, never read on the host.
            n: The batch size the loss averages over.
            dtype: The dtype the backward pass computes in.
            like: An array the backward pass computes on.

        Raises:
            ValueError: ``dout`` is an array that is not 0-d (a loss is a scalar).
            xpnn.BackendMismatchError: ``dout`` is on another backend or device.
        """
        if isinstance(dout, (int, float, np.generic)):
            return dout / n
        if getattr(dout, "ndim", None) != 0:
            raise ValueError(
                "dout must be a number or a 0-d array (the loss is a scalar), got "
                + (f"shape {tuple(dout.shape)}" if hasattr(dout, "shape") else repr(dout))
            )
        get_namespace(dout, like)  # the same backend and device, or BackendMismatchError
        if dout.dtype != dtype:
            dout = self.xp.astype(dout, dtype)  # on the device: no sync
        return dout / n

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

    def check_labels(self, t: Any, num_classes: int, who: str = "labels") -> None:
        """Refuse labels that are not class indices ``0..num_classes-1``.

        The dtype is always checked. The values are read only where that is
        free, in host memory (NumPy, PyTorch on the CPU, array-api-strict on
        its CPU device); on a device (CuPy, PyTorch CUDA, array-api-strict's
        simulated devices) reading them would be a host synchronisation, so
        they are not checked here and the losses turn an invalid label into a
        NaN loss and a NaN gradient row instead. Negative labels are out of
        range everywhere (they do not count from the end).

        Args:
            t: Labels, any shape, integer.
            num_classes: The number of classes C (> 0).
            who: What the labels are, for the message.

        Raises:
            TypeError: ``t`` is not of an integer dtype.
            ValueError: A label read is outside ``0..num_classes-1`` (the
                message names the range found).
        """
        if not self.isdtype(t.dtype, "integral"):
            raise TypeError(
                f"{who} must have an integer dtype (class indices), got {_dtype_name(t.dtype)}"
            )
        if self.native is np:
            # Seen as unsigned, a negative label is huge: one reduction (the
            # ufunc's own, cheaper than max()) says whether all are in range.
            unsigned = t.view(self._unsigned[t.itemsize])
            if t.size == 0 or np.maximum.reduce(unsigned, axis=None) < num_classes:
                return
            found = int(np.minimum.reduce(t, axis=None)), int(np.maximum.reduce(t, axis=None))
        else:
            found = self._label_range(t)
            if found is None or (found[0] >= 0 and found[1] < num_classes):
                return
        lo, hi = found
        why = " (negative labels do not count from the end)" if lo < 0 else ""
        raise ValueError(
            f"{who} must be class indices in 0..{num_classes - 1}, found values in {lo}..{hi}{why}"
        )

    def _label_range(self, t: Any) -> tuple[int, int] | None:
        """``(min(t), max(t))`` of labels off NumPy where reading them is free, else
        None (on a device, where it would be a host sync; also for empty ``t``)."""
        backend = backend_of(t)
        if backend.is_gpu:
            return None
        if backend.name == "array_api_strict" and backend.device != self.xp.Device("CPU_DEVICE"):
            return None  # a simulated device refuses to be read, as a GPU would cost a sync
        if 0 in tuple(t.shape):
            return None
        return int(self.xp.min(t)), int(self.xp.max(t))

    def pick(self, a: Any, t: Any, *, checked: bool = False) -> Any:
        """``a[i, t[i]]`` for every row i: ``(N, C)`` and integer ``(N,)`` -> ``(N,)``.

        Labels must be in ``0..C-1``. On NumPy others raise ValueError (unless
        ``checked``); elsewhere the element picked for an invalid label is NaN,
        as checking on a device would be a host sync (:meth:`check_labels`
        raises where it is free: call it first). An invalid label is never
        used as an index (NumPy would wrap a negative one to another class,
        PyTorch CUDA would assert on the device): it is clamped into range
        and the element it picks replaced.

        Args:
            a: ``(N, C)``, float.
            t: ``(N,)``, integer.
            checked: :meth:`check_labels` already ran on ``t`` (skips a
                second read of the labels on NumPy).
        """
        if self.native is np:
            if not checked:
                self.check_labels(t, a.shape[1])
            return a[self._arange(a.shape[0]), t]  # fancy indexing: a third of take_along_axis
        xp = self.xp
        c = a.shape[1]
        if t.dtype != xp.int64:  # PyTorch's gather takes int64 indices only
            t = xp.astype(t, xp.int64)
        t = xp.reshape(t, (-1, 1))
        valid = (t >= 0) & (t < c)
        index = xp.clip(t, 0, c - 1)  # a valid index for every row: never out of bounds
        if self.torch is not None:
            # torch.take_along_dim reads out of bounds without a word (PyTorch
            # 2.13, CPU), and gather would assert on CUDA: the index is in range.
            picked = self.torch.gather(a, 1, index)
        else:
            picked = xp.take_along_axis(a, index, axis=1)
        return xp.where(valid, picked, float("nan"))[:, 0]

    def softmax_cross_entropy(
        self, x: Any, t: Any, y: Any = None, shifted: Any = None, *, checked: bool = False
    ) -> tuple[Any, Any]:
        """Softmax of scores and their mean cross-entropy against integer labels.

        With ``s = x - max(x)`` per row: ``softmax(x) = exp(s) / sum(exp(s))``
        and the loss of a row is ``log(sum(exp(s))) - s[label]``
        (log-sum-exp: finite for finite scores, unless the loss itself
        exceeds the float range, as for a label whose score is 1e308 below
        the maximum: then it is inf).

        Half-precision scores (float16, bfloat16) are cast to float32 first
        (into ``shifted``) and everything is computed in float32, as under
        PyTorch's autocast: float16's exp would overflow for a score 11.1
        above another's, and its sums lose a bit per addition.

        Args:
            x: Scores ``(N, C)``, float, N > 0.
            t: Labels ``(N,)`` in ``0..C-1``, integer.
            y: Output buffer for the softmax ``(N, C)``, or None.
            shifted: Work buffer ``(N, C)`` for ``s``, or None.
            checked: :meth:`check_labels` already ran on ``t``.

        Both buffers have x's dtype, or float32 for half ``x``
        (:meth:`wide_dtype`).

        Returns:
            ``(softmax(x), mean loss)``: ``(N, C)`` and a 0-d array, in x's
            dtype (float32 for half ``x``).

        Raises:
            ValueError: ``N`` is 0 (a mean over no samples), or a label is
                out of range where reading labels is free (see
                :meth:`check_labels`). On a device a label out of range makes
                its row's loss NaN, so the mean is NaN (on CuPy both results
                come from one kernel). Half ``x`` with buffers not float32.
        """
        n, c = x.shape
        if n == 0:
            raise ValueError(f"the loss of an empty batch is undefined: scores of shape {(n, c)}")
        if not checked:
            self.check_labels(t, c)
        x = self._widen_scores(x, y, shifted)
        kernel = self._kernel("softmax_cross_entropy")
        if (
            kernel is not None
            and y is not None
            and x.dtype in (np.float32, np.float64)
            and y.dtype == x.dtype
        ):
            return kernel(x, t, y)
        y, s, total = self.softmax_rows(x, y, shifted)
        loss = self.sum(self.xp.log(total[:, 0]) - self.pick(s, t, checked=True), axis=None) / n
        return y, loss

    def softmax_rows(self, x: Any, y: Any = None, shifted: Any = None) -> tuple[Any, Any, Any]:
        """Softmax over the rows of ``x`` ``(N, C)``, keeping what a loss needs.

        Half-precision ``x`` is computed on in float32 (cast into
        ``shifted``), as in :meth:`softmax_cross_entropy`.

        Returns:
            ``(softmax(x), s, sum(exp(s)))`` with ``s = x - max(x)`` per row:
            ``(N, C)``, ``(N, C)`` and ``(N, 1)`` (into ``y`` and ``shifted``
            where given), in x's dtype (float32 for half ``x``).

        Raises:
            ValueError: Half ``x`` with buffers that are not float32.
        """
        x = self._widen_scores(x, y, shifted)
        s = self.subtract(x, self.max(x, axis=1, keepdims=True), out=shifted)
        e = self.exp(s, out=y)
        total = self.sum(e, axis=1, keepdims=True)
        return self.divide(e, total, out=e), s, total

    def _widen_scores(self, x: Any, y: Any, shifted: Any) -> Any:
        """Half scores in float32 (into ``shifted``), checking the softmax
        buffers are float32 too; other scores unchanged."""
        if _dtype_name(x.dtype) not in HALF_FLOATS:
            return x
        if y is not None and self.native is not None and y.dtype != self.xp.float32:
            raise ValueError(
                f"the softmax of {_dtype_name(x.dtype)} scores is computed in float32, so "
                f"its buffer must be float32, got {_dtype_name(y.dtype)}"
            )
        return self.widen(x, out=shifted)

    def label_difference(self, y: Any, t: Any, scale: Any, out: Any = None) -> Any:
        """``(y - one_hot(t)) * scale``: softmax-with-loss's backward for integer labels.

        ``y`` is ``(N, C)``, ``t`` integer ``(N,)``, ``scale`` a number or a
        0-d array of y's dtype on y's device (never read on the host,
        see :meth:`dout_scale`); the one-hot is not built
        on CuPy (one kernel) and is a boolean comparison on NumPy. A row whose
        label is outside ``0..C-1`` is NaN, as its loss is (see :meth:`pick`),
        except on NumPy: there the forward pass refused such labels, and
        checking again would cost a read of the labels every step.
        """
        kernel = self._kernel("label_difference")
        if kernel is not None and out is not None:
            if isinstance(scale, (int, float)):
                return kernel(y, t, y.shape[1], y.dtype.type(scale), out)
            if self._device_scalar(scale, y.dtype):  # broadcast by the kernel, never read
                return kernel(y, t, y.shape[1], scale, out)
        xp = self.xp
        c = y.shape[1]
        if self.native is np:
            hot = np.equal(t.reshape(-1, 1), self._arange(c))
            return self.multiply(self.subtract(y, hot, out=out), scale, out=out)
        t = xp.reshape(t, (-1, 1))
        classes = xp.arange(c, dtype=t.dtype, device=device_of(t))
        hot = xp.astype(t == classes, y.dtype)  # the Array API does not mix bool and float
        dx = self.multiply(self.subtract(y, hot, out=out), scale, out=out)
        return xp.where((t >= 0) & (t < c), dx, float("nan"))

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

"""The operations of the losses: label checks, picks, softmax with cross-entropy.

Owns :class:`LossOps`, the part of :class:`xpnn.backend.Ops` that
:mod:`xpnn.functions` and :class:`xpnn.layers.SoftmaxWithLoss` call: checking
integer labels where reading them is free, picking each row's label, the
fused softmax-with-loss forward and backward (one kernel each on CuPy, see
:mod:`xpnn.backend.cuda.kernels`), and the factor ``dout / N`` of a mean
loss's backward. Get them through :func:`xpnn.backend.ops`, as every operation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.backend.dtypes import HALF_FLOATS, _dtype_name
from xpnn.backend.namespace import backend_of, device_of, get_namespace

__all__ = ["LossOps"]

#: The unsigned integer type of each integer size (NumPy's check_labels).
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


class LossOps:
    """The label checks and loss operations of :class:`xpnn.backend.Ops` (a mixin:
    it uses the core operations, ``xp``, ``native`` and ``torch`` of ``Ops``)."""

    xp: Any
    native: Any  # numpy or cupy, or None
    torch: Any  # the torch module when xp is PyTorch's namespace
    _aranges: dict[int, Any]  # NumPy only: n -> arange(n), see _arange

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

    def _arange(self, n: int) -> Any:
        """NumPy's ``arange(n)``, made once: row and class numbers of pick() and
        label_difference(), which a step would otherwise make every time."""
        numbers = self._aranges.get(n)
        if numbers is None:
            numbers = self._aranges[n] = np.arange(n)
        return numbers

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
            unsigned = t.view(_UNSIGNED[t.itemsize])
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
        if self.torch is not None:  # the hot path of PyTorch: one kernel for both ends
            if t.device.type != "cpu" or t.numel() == 0:
                return None
            lo, hi = self.torch.aminmax(t)
            return int(lo), int(hi)
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

    def softmax(self, x: Any) -> Any:
        """Softmax over the last axis of ``x`` (any number of axes), the plain expressions.

        The maximum subtracted, ``exp``, divided by the sum; half-precision
        ``x`` is computed on in float32 and the result rounded once to x's
        dtype. What :func:`xpnn.functions.softmax` computes after its checks,
        and the attention's weights (:mod:`xpnn.backend.attention_ops`); new
        arrays, no buffers.
        """
        xp = self.xp
        wide = self.widen(x)  # x itself unless half
        e = xp.exp(wide - xp.max(wide, axis=-1, keepdims=True))
        p = e / xp.sum(e, axis=-1, keepdims=True)
        return p if wide is x else xp.astype(p, x.dtype)

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

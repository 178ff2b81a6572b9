"""Activation layers (vol. 1, ch. 5; vol. 2, ch. 1): ``Sigmoid``, ``Relu``, ``Softmax``."""

from __future__ import annotations

from typing import Any

from xpnn.backend import ops
from xpnn.functions import softmax
from xpnn.layers.base import Layer, register_layer

__all__ = ["Relu", "Sigmoid", "Softmax"]


@register_layer
class Sigmoid(Layer):
    """out = 1 / (1 + exp(-x)), element-wise; backward uses the saved output.

    Computed as written, as :func:`xpnn.functions.sigmoid` (four in-place
    passes): within a few ulp of the true value wherever that is a normal
    float, for negative ``x`` too; where exp(-x) overflows (x below about
    -88.7 in float32) the output is 0, without a warning. Backward is
    ``dout * (1 - out) * out``. Shapes and dtype of ``out`` are those of ``x``.
    """

    keeps_shape = True

    def __init__(self) -> None:
        super().__init__()
        self.out: Any = None

    def forward(self, x: Any) -> Any:
        k = ops(x)
        out = self._buffer(k, "out", tuple(x.shape), x.dtype, x)
        self.out = k.sigmoid(x, out=out)
        return self.out

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        k = ops(dout, self.out)
        dx = self._buffer(k, "dx", tuple(dout.shape), dout.dtype, dout)
        return k.sigmoid_backward(self.out, dout, out=dx)


@register_layer
class Relu(Layer):
    """out = max(0, x); backward zeroes the gradient where x <= 0.

    As in the book, ``mask`` is ``x <= 0``. NaN is not ``<= 0``: a NaN input
    stays NaN and its gradient passes unchanged, as with ``torch.relu``
    (whose backward keeps the gradient unless the output is <= 0). The
    backends' fast ways of computing this (by bits on NumPy and CuPy,
    PyTorch's threshold) are :meth:`xpnn.backend.Ops.relu` and
    :meth:`~xpnn.backend.Ops.relu_backward`.
    """

    keeps_shape = True

    def __init__(self) -> None:
        super().__init__()
        self._mask: Any = None
        self._x: Any = None  # the input, where the backend made no mask (PyTorch)

    @property
    def mask(self) -> Any:
        """The book's ``mask``: ``x <= 0`` of the last forward pass (None before one)."""
        if self._mask is None and self._x is not None:
            self._mask = self._x <= 0  # made on demand where the backend needed none
        return self._mask

    @mask.setter
    def mask(self, value: Any) -> None:
        self._mask, self._x = value, None

    def forward(self, x: Any) -> Any:
        # The book: self.mask = (x <= 0); out = x.copy(); out[self.mask] = 0
        out, mask = ops(x).relu(x, self._buffers)
        self._mask, self._x = mask, (x if mask is None else None)
        return out

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        # The book: dout[self.mask] = 0; dx = dout
        return ops(dout).relu_backward(dout, self._mask, self._x, self._buffers)


@register_layer
class Softmax(Layer):
    """Softmax over the last axis."""

    keeps_shape = True

    def __init__(self) -> None:
        super().__init__()
        self.out: Any = None

    def forward(self, x: Any) -> Any:
        self.out = softmax(x)
        return self.out

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        k = ops(dout)
        # Half floats: computed in float32 (widen), rounded once at the end (unwiden).
        out, d = k.widen(self.out), k.widen(dout)
        dx = out * d  # the book: dx = self.out * dout
        dx = dx - out * k.xp.sum(dx, axis=-1, keepdims=True)  # dx -= self.out * sumdx
        return k.unwiden(dx, dout.dtype)

"""Activation layers (vol. 1, ch. 5; vol. 2, ch. 1): ``Sigmoid``, ``Relu``, ``Softmax``."""

from __future__ import annotations

from typing import Any

from xpnn.backend import get_namespace, ops
from xpnn.functions import softmax
from xpnn.layers.base import (
    Layer,
    register_layer,
)

__all__ = ["Relu", "Sigmoid", "Softmax"]


#: Float widths -> (signed, unsigned) integer dtypes of the same size, for
#: selecting values by their bits (Relu on NumPy and CuPy).
_BITS = {2: ("int16", "uint16"), 4: ("int32", "uint32"), 8: ("int64", "uint64")}


def _select_bits(native: Any, value: Any, keep: Any, out: Any) -> Any:
    """``out = value`` where ``keep`` is all ones, +0.0 where it is 0 (bitwise, exact)."""
    unsigned = _BITS[value.dtype.itemsize][1]
    native.bitwise_and(value.view(unsigned), keep.view(unsigned), out=out.view(unsigned))
    return out


@register_layer
class Sigmoid(Layer):
    """out = 1 / (1 + exp(-x)), element-wise; backward uses the saved output.

    Computed as written, as :func:`xpnn.functions.sigmoid` (four in-place
    passes): within a few ulp of the true value wherever that is a normal
    float, for negative ``x`` too; where exp(-x) overflows (x below about
    -88.7 in float32) the output is 0, without a warning. Backward is
    ``dout * (1 - out) * out``. Shapes and dtype of ``out`` are those of ``x``.
    """

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
    (whose backward keeps the gradient unless the output is <= 0).
    """

    def __init__(self) -> None:
        super().__init__()
        self._mask: Any = None
        self._x: Any = None  # PyTorch: the input, whose mask is made on demand

    @property
    def mask(self) -> Any:
        """The book's ``mask``: ``x <= 0`` of the last forward pass (None before one)."""
        if self._mask is None and self._x is not None:
            self._mask = self._x <= 0
        return self._mask

    @mask.setter
    def mask(self, value: Any) -> None:
        self._mask, self._x = value, None

    def forward(self, x: Any) -> Any:
        k = ops(x)
        if k.native is not None and x.dtype.itemsize in _BITS:
            # NumPy, CuPy: into buffers of x's memory order, reused from step to
            # step (the output is valid until the next call). A masked copy
            # (where) costs ~10x a pass over random masks; the selection is
            # done on the bits instead: out = x & keep, keep all ones where
            # x > 0 or NaN, all zeros where x <= 0 (+0.0): where's result exactly.
            native = k.native
            self.mask = native.less_equal(x, 0, out=self._like(k, "mask", x, bool))
            # keep = mask - 1 (0 or -1: all ones), computed on the mask's bytes as
            # int8 and widened on the way out: 5x faster than bool - int.
            keep = native.add(
                self.mask.view(native.int8),
                native.int8(-1),
                out=self._like(k, "keep", x, _BITS[x.dtype.itemsize][0]),
                casting="unsafe",
            )
            return _select_bits(native, x, keep, self._like(k, "out", x, x.dtype))
        self._buffers.pop("keep", None)  # backward must not use an earlier call's
        xp = k.xp
        if k.torch is not None:
            # threshold: x <= 0 ? +0.0 : x, where's result exactly (NaN kept), in
            # one pass; backward compares x again (threshold_backward).
            self.mask, self._x = None, x
            return k.torch.threshold(x, 0, 0)
        self.mask = x <= 0
        return xp.where(self.mask, xp.zeros_like(x), x)

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        k = ops(dout)
        keep = self._buffers.get("keep")
        if (
            k.native is not None
            and keep is not None
            and keep.shape == dout.shape
            and keep.itemsize == dout.dtype.itemsize
        ):
            return _select_bits(k.native, dout, keep, self._like(k, "dx", dout, dout.dtype))
        if k.torch is not None and self._x is not None and self._x.shape == dout.shape:
            # x <= 0 ? 0 : dout, the book's dout[mask] = 0 (a NaN x passes dout).
            return k.torch.ops.aten.threshold_backward(dout, self._x, 0)
        xp = k.xp
        return xp.where(self.mask, xp.zeros_like(dout), dout)

    def _like(self, k: Any, name: str, like: Any, dtype: Any) -> Any:
        """A buffer of ``like``'s shape and memory order, kept while they stay the same."""
        key = (tuple(like.shape), tuple(like.strides), like.dtype, dtype, like.device)
        if self._buffers.get(name + " key") != key:
            self._buffers[name] = k.native.empty_like(like, dtype=dtype)
            self._buffers[name + " key"] = key
        return self._buffers[name]


@register_layer
class Softmax(Layer):
    """Softmax over the last axis."""

    def __init__(self) -> None:
        super().__init__()
        self.out: Any = None

    def forward(self, x: Any) -> Any:
        self.out = softmax(x)
        return self.out

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        xp = get_namespace(dout)
        k = ops(dout)
        out, d = k.widen(self.out), k.widen(dout)  # half floats: the sum in float32
        dx = out * d
        dx = dx - out * xp.sum(dx, axis=-1, keepdims=True)
        return dx if d is dout else xp.astype(dx, dout.dtype)

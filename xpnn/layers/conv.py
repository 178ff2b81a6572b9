"""Convolutional layers (vol. 1, ch. 7 of the book): im2col, Convolution, Pooling.

The book turns a convolution into one matrix product: :func:`im2col` lays
every window of the (padded) input out as a row, ``(N*out_h*out_w,
C*filter_h*filter_w)``, the filters become a ``(C*filter_h*filter_w, FN)``
matrix, and :func:`col2im`, the adjoint of ``im2col``, sums the rows of a
gradient back into image shape (overlapping windows add up). Both keep the
book's shapes and element order, in the input's dtype (the book's make
float64). Output sizes are the book's: ``out_h = (H + 2*pad - filter_h) //
stride + 1`` (likewise ``out_w``); padding is zeros.

The layers' ``forward`` and ``backward`` are the book's, step by step, each
step a named operation of :mod:`xpnn.backend.conv_columns` (im2col, col2im),
:mod:`xpnn.backend.conv_kernels` (the convolution) or
:mod:`xpnn.backend.conv_pooling`, which runs it as fast as the backend
allows and says how (PyTorch's own kernels, buffers reused, a correlation
for dx); the refusals come first (:mod:`xpnn.backend.conv_checks`). Where a
kernel or the correlation runs, the book's sums come in another order:
equal to rounding, checked against numerical gradients and PyTorch's
autograd on every backend. Outputs of a layer are valid until its next call
(copy them to keep them).

:class:`Convolution` and :class:`Pooling` are registered layers, so models
made of them save and load; ``from xpnn.layers import Convolution,
Pooling`` works as the book's ``common.layers`` does.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import get_namespace, ops, zeros
from xpnn.backend.conv_checks import (
    bias_array,
    check_conv_input,
    check_conv_params,
    check_float,
    checked_out_size,
    col2im_args,
    config_pad,
    window_args,
    window_sample_shape,
    window_scratch,
)
from xpnn.backend.conv_columns import col2im_into, im2col_into
from xpnn.backend.conv_kernels import (
    bias_grad,
    by_correlation,
    columns_grad,
    conv2d_backward,
    conv2d_forward,
    conv2d_input_grad,
    conv2d_input_grad_by_correlation,
    conv_matmul_add,
    dout_rows,
    torch_by_columns,
    torch_kernels,
    weight_grad,
)
from xpnn.backend.conv_pooling import (
    max_of_windows,
    max_pool2d,
    max_pool2d_backward,
    max_pool_dmax_by_comparison,
    max_pool_dmax_one_hot,
    routes_by_comparison,
)
from xpnn.layers.base import Layer, _config_sizes, _zeros_like_all, register_layer
from xpnn.layers.dense import Affine

__all__ = ["Convolution", "Pooling", "col2im", "im2col"]


def im2col(input_data: Any, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0) -> Any:
    """The windows of images as rows: the book's ``im2col`` on any backend.

    Args:
        input_data: Images ``(N, C, H, W)`` of any dtype.
        filter_h: Window height (a positive int).
        filter_w: Window width (a positive int).
        stride: Step between windows (a positive int).
        pad: Zeros added on each side of H and W (an int >= 0).

    Returns:
        ``(N*out_h*out_w, C*filter_h*filter_w)`` in ``input_data``'s dtype, on
        its device: row ``(n, i, j)`` (in that order) is the window at output
        position ``(i, j)`` of image ``n``, flattened as ``(C, filter_h,
        filter_w)``, with ``out_h = (H + 2*pad - filter_h) // stride + 1`` and
        likewise ``out_w``. New data, returned as the transpose (a view) of
        a C-ordered ``(C*filter_h*filter_w, N*out_h*out_w)`` array.

    Raises:
        TypeError: A size is not an int.
        ValueError: ``input_data`` is not 4-D, a size is not positive (pad
            negative), or the window is larger than the padded input.
    """
    fh, fw, stride, pad = window_args(filter_h, filter_w, stride, pad, ("filter_h", "filter_w"))
    k = ops(input_data)
    checked_out_size(tuple(input_data.shape), fh, fw, stride, pad, "im2col")
    return im2col_into(k, input_data, fh, fw, stride, pad).T


def col2im(
    col: Any,
    input_shape: tuple[int, int, int, int],
    filter_h: int,
    filter_w: int,
    stride: int = 1,
    pad: int = 0,
) -> Any:
    """Rows of windows summed back into images: the book's ``col2im``, any backend.

    The adjoint of :func:`im2col`: where windows overlap, their values add
    up (so it is the gradient of ``im2col``, not its inverse); the padding
    is cut off.

    Args:
        col: ``(N*out_h*out_w, C*filter_h*filter_w)``, as :func:`im2col` makes.
        input_shape: The images' shape ``(N, C, H, W)``.
        filter_h: Window height (a positive int).
        filter_w: Window width (a positive int).
        stride: Step between windows (a positive int).
        pad: Padding of each side (an int >= 0).

    Returns:
        ``(N, C, H, W)`` in ``col``'s dtype, on its device: except on
        PyTorch, a transposed view of a ``(C, N, H + 2*pad, W + 2*pad)``
        array (the order in which the sums run along contiguous rows).

    Raises:
        TypeError: A size is not an int.
        ValueError: ``input_shape`` is not 4 ints, a size is not positive
            (pad negative), the window is larger than the padded input, or
            ``col``'s shape does not fit.
    """
    shape, fh, fw, stride, pad = col2im_args(col, input_shape, filter_h, filter_w, stride, pad)
    return col2im_into(ops(col), col.T, shape, fh, fw, stride, pad)


@register_layer
class Convolution(Layer):
    """The book's convolution layer: im2col, one matrix product, and back.

    ``out[n, f, i, j] = sum(W[f] * window(n, i, j)) + b[f]`` with the
    windows of ``x`` padded by ``pad`` zeros, ``stride`` apart. Forward
    computes the book's ``im2col(x) @ W.reshape(FN, -1).T + b`` and returns
    it as ``(N, FN, out_h, out_w)`` (on NumPy and CuPy a transposed view of
    an ``(FN, N, out_h, out_w)`` array: the product runs transposed, see
    :mod:`xpnn.backend.conv_kernels`); backward fills ``grads`` ``[dW, db]``
    in place and returns ``dx`` through :func:`col2im`, in the same
    transposed form.

    Config: ``{"filter_num": FN, "channels": C, "filter_h": FH, "filter_w":
    FW, "stride": s, "pad": p}``.

    Args:
        W: Filters ``(FN, C, FH, FW)``, floating point (the inputs' dtype).
        b: Biases ``(FN,)``, on W's backend and device; or one number for
            every filter (the book's ``apply_filter.py`` passes ``0``, which
            its ``+ self.b`` broadcasts): then ``(FN,)`` of it, in W's dtype.
        stride: Step between windows, a positive int.
        pad: Zeros around each side of the input, an int >= 0.

    Attributes:
        x, col, col_W: The book's saved input, its im2col rows
            ``(N*out_h*out_w, C*FH*FW)`` (a transposed view; made on demand
            where PyTorch's kernels convolved) and the filter matrix
            ``(C*FH*FW, FN)`` (a view of W) of the last forward pass.
        dW, db: The gradients (``grads[0]``, ``grads[1]``), after backward.

    Raises:
        TypeError: W or b is not floating point, stride or pad not an int.
        ValueError: W is not 4-D or b not ``(FN,)``; stride not positive or
            pad negative.
        xpnn.BackendMismatchError: W and b are on different backends or devices.
    """

    param_names = ("W", "b")

    def __init__(self, W: Any, b: Any, stride: int = 1, pad: int = 0):
        super().__init__()
        b = bias_array(W, b)  # one number: the same bias for every filter
        k = ops(W, b)  # BackendMismatchError for W and b apart
        self.stride, self.pad = check_conv_params(k, W, b, stride, pad)
        self.params = [W, b]
        self.grads = _zeros_like_all(self.params)
        self.x: Any = None
        self._col: Any = None
        self._kernels = False  # the last forward pass ran PyTorch's kernels
        self._x_shape: tuple[int, int, int, int] | None = None

    @property
    def W(self) -> Any:
        return self.params[0]

    @property
    def b(self) -> Any:
        return self.params[1]

    # The book's names of the gradients (grads[0], grads[1]), as Affine has them.
    dW = Affine.dW
    db = Affine.db

    def forward(self, x: Any) -> Any:
        """Convolve images ``x`` ``(N, C, H, W)`` (W's float dtype) with the filters.

        Returns:
            ``(N, FN, out_h, out_w)`` in W's dtype.

        Raises:
            TypeError: ``x`` is not floating point, or not of W's dtype.
            ValueError: ``x`` is not 4-D, its channels are not W's, or the
                filters do not fit the padded input.
            xpnn.BackendMismatchError: ``x`` is on another backend or device.
        """
        W, b = self.params
        k = ops(x, W)
        N, out_h, out_w = check_conv_input(k, x, W, self.stride, self.pad)  # before any change
        FN, _, FH, FW = W.shape
        self.x, self._col = x, None
        self._x_shape = tuple(x.shape)
        self._kernels = torch_kernels(k, x, W)
        if self._kernels and not torch_by_columns(x, W):
            # PyTorch's own convolution: the same sums, no `col` (made on demand).
            out, self.x = conv2d_forward(k, x, W, b, self.stride, self.pad)
            return out
        xp = k.xp
        col = im2col_into(k, x, FH, FW, self.stride, self.pad, self._buffers).T
        col_W = xp.reshape(W, (FN, -1)).T
        out = conv_matmul_add(k, col, col_W, b, self._buffers)  # col @ col_W + b
        out = xp.permute_dims(xp.reshape(out, (N, out_h, out_w, -1)), (0, 3, 1, 2))
        self._col = col
        return out

    @property
    def col(self) -> Any:
        """The book's ``col``: the last input's windows ``(N*out_h*out_w, C*FH*FW)``.

        A transposed view of the layer's buffer; made on demand (once per
        forward pass) where PyTorch's kernels convolved without it. None
        before a forward pass.
        """
        if self._col is None and self.x is not None:
            fh, fw = self.params[0].shape[2:]
            k = ops(self.x)
            self._col = im2col_into(k, self.x, fh, fw, self.stride, self.pad, self._buffers).T
        return self._col

    @property
    def col_W(self) -> Any:
        """The book's ``col_W``: the filters as a ``(C*FH*FW, FN)`` matrix, a view of W
        (None before a forward pass)."""
        if self.x is None:
            return None
        W = self.params[0]
        return get_namespace(W).reshape(W, (W.shape[0], -1)).T

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        """Fill ``grads`` (dW, db) in place; return dx (None if not ``input_grad``).

        Args:
            dout: ``(N, FN, out_h, out_w)``, the gradient of the output.

        Returns:
            dx of x's shape ``(N, C, H, W)``, in dout's dtype (W's, promoted).

        Raises:
            RuntimeError: No forward pass yet.
            ValueError: ``dout``'s shape is not the last output's.
        """
        # (Layer checked that a forward pass came first and dout has its output's shape.)
        W = self.params[0]
        k = ops(dout, W)
        FH, FW = W.shape[2:]
        kernels = self._kernels and torch_kernels(k, dout, W)
        if kernels and not torch_by_columns(self.x, W):
            # PyTorch's own kernel: dx, dW and db in one call, no `col`.
            s, p = self.stride, self.pad
            return conv2d_backward(k, dout, self.x, W, s, p, self.grads, input_grad)
        # The book's steps; dout as a matrix is `d` (the 4-D dout stays for PyTorch).
        d = dout_rows(k, dout, self._buffers)  # dout.transpose(0, 2, 3, 1).reshape(-1, FN)
        weight_grad(k, self.col, d, self.dW)  # dW = (col.T @ dout).T.reshape(FN, C, FH, FW)
        bias_grad(k, d, self.db)  # db = sum(dout, axis=0)
        if not input_grad:
            return None
        if kernels:  # PyTorch, a first layer on the CPU: dx by its kernel
            return conv2d_input_grad(k, dout, self.x, W, self.stride, self.pad)
        if by_correlation(k, tuple(W.shape), self.stride, self.pad):
            return conv2d_input_grad_by_correlation(k, d, W, self._x_shape, self.pad, self._buffers)
        dcol = columns_grad(k, d, self.col_W, self._buffers)  # dout @ col_W.T
        return col2im_into(k, dcol.T, self._x_shape, FH, FW, self.stride, self.pad, self._buffers)

    def config(self) -> dict[str, Any]:
        keys = ("filter_num", "channels", "filter_h", "filter_w")
        sizes = dict(zip(keys, (int(d) for d in self.params[0].shape), strict=True))
        return {**sizes, "stride": self.stride, "pad": self.pad}

    @classmethod
    def _checked_config(cls, config: Any) -> tuple[int, int, int, int, int, int]:
        sizes = _config_sizes(
            cls, config, "filter_num", "channels", "filter_h", "filter_w", "stride", extra=("pad",)
        )
        return (*sizes, config_pad(cls, config))

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        fn, c, fh, fw, _, _ = cls._checked_config(config)
        return {"W": (fn, c, fh, fw), "b": (fn,)}

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(FN, out_h, out_w)`` for images ``(C, H, W)`` of W's C (see :class:`Layer`)."""
        fn, c, *window = cls._checked_config(config)
        return (fn, *window_sample_shape(tuple(input_shape), tuple(window), "Convolution", c))

    @classmethod
    def scratch_sample_elements(cls, config: Any, input_shape: tuple[int, ...]) -> int:
        return window_scratch(tuple(input_shape), cls._checked_config(config)[2:])

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any, backend: Any) -> Layer:
        fn, c, fh, fw, stride, pad = cls._checked_config(config)
        W = zeros((fn, c, fh, fw), dtype=dtype, backend=backend)
        b = zeros((fn,), dtype=dtype, backend=backend)
        return cls(W, b, stride, pad)

    def __repr__(self) -> str:
        return f"Convolution(W={tuple(self.params[0].shape)}, stride={self.stride}, pad={self.pad})"


@register_layer
class Pooling(Layer):
    """The book's max pooling: the largest value of each ``pool_h x pool_w`` window.

    Each channel is pooled on its own. Forward takes ``x`` ``(N, C, H, W)``
    and returns ``(N, C, out_h, out_w)`` (C-ordered on NumPy and CuPy, so an
    Affine layer after it flattens it without a copy). Backward routes each
    output gradient to its window's maximum, the first one in the window's
    row-major order on ties (as ``argmax``, see :attr:`arg_max`), and sums
    the windows back with :func:`col2im` (each backend's way:
    :mod:`xpnn.backend.conv_pooling`). A window holding NaN pools to NaN
    (its gradient, undefined, is dropped on NumPy and CuPy, sent to the last
    NaN by PyTorch's kernel, to the first elsewhere, as the book's argmax).
    Padding is zeros, as the book's ``im2col`` pads (PyTorch's
    ``max_pool2d`` pads with -inf: they differ where a window's values at
    the border are all negative).

    Config: ``{"pool_h": ph, "pool_w": pw, "stride": s, "pad": p}``. No parameters.

    Args:
        pool_h: Window height, a positive int.
        pool_w: Window width, a positive int.
        stride: Step between windows, a positive int; 1 by default, as the
            book's ``common/layers.py`` (its nets pass ``stride=2`` for their 2x2
            poolings).
        pad: Zeros around each side, an int >= 0.

    Raises:
        TypeError: A size is not an int.
        ValueError: A size is not positive (pad negative).
    """

    def __init__(self, pool_h: int, pool_w: int, stride: int = 1, pad: int = 0):
        super().__init__()
        self.pool_h, self.pool_w, self.stride, self.pad = window_args(
            pool_h, pool_w, stride, pad, ("pool_h", "pool_w")
        )
        self.x: Any = None
        self._col: Any = None  # the windows (C, pool_h*pool_w, N*out_h*out_w)
        self._max: Any = None  # their maxima (C, N, out_h, out_w)
        self._arg: Any = None
        self._x_shape: tuple[int, int, int, int] | None = None
        self._out_shape: tuple[int, int, int, int] | None = None
        self._positions: Any = None  # arange(pool_h * pool_w) on the input's device
        self._kernels = False  # the last forward pass ran PyTorch's max_pool2d
        self._img: Any = None  # its padded input and indices
        self._idx: Any = None

    @property
    def arg_max(self) -> Any:
        """Where each maximum of the last forward pass is in its window.

        ``(C, N*out_h*out_w)`` integers in ``0..pool_h*pool_w-1`` (row-major
        window position, the first maximum on ties), or None before a
        forward pass. The book's is the same numbers in the order of its
        rows (``(N*out_h*out_w*C,)``). Computed on demand on NumPy and CuPy.
        """
        if self._arg is None and self.x is not None:
            if self._col is None:  # the windows, where PyTorch's kernels pooled without them
                x, k, size = self.x, ops(self.x), self.pool_h * self.pool_w
                col = im2col_into(
                    k, x, self.pool_h, self.pool_w, self.stride, self.pad, self._buffers
                )
                self._col = k.xp.reshape(col, (x.shape[1], size, -1))
            self._arg = get_namespace(self._col).argmax(self._col, axis=1)
        return self._arg

    def forward(self, x: Any) -> Any:
        """Max-pool images ``x`` ``(N, C, H, W)`` (floating point).

        Returns:
            ``(N, C, out_h, out_w)`` in x's dtype.

        Raises:
            TypeError: ``x`` is not floating point.
            ValueError: ``x`` is not 4-D or the window does not fit the padded input.
        """
        k = ops(x)
        check_float(k, x, "Pooling")
        shape = tuple(x.shape)
        ph, pw, s, p = self.pool_h, self.pool_w, self.stride, self.pad
        out_h, out_w = checked_out_size(shape, ph, pw, s, p, "Pooling")
        N, C = shape[0], shape[1]
        self._kernels = torch_kernels(k, x, x)
        if self._kernels:
            # PyTorch's max_pool2d (its indices route the gradient); `col` and
            # `arg_max` are made on demand.
            out, self._img, self._idx = max_pool2d(k, x, ph, pw, s, p)
            self._col, self._arg = None, None
        else:
            # The book's im2col, one window per row (here per column: (C, ph*pw,
            # N*out_h*out_w)), and the max of each (its argmax where it is free).
            xp = k.xp
            col = xp.reshape(im2col_into(k, x, ph, pw, s, p, self._buffers), (C, ph * pw, -1))
            self._col = col
            self._max, self._arg = max_of_windows(k, col, (N, C, out_h, out_w), self._buffers)
            out = xp.permute_dims(self._max, (1, 0, 2, 3))  # (C, N, ...) as (N, C, ...)
        self.x, self._x_shape, self._out_shape = x, shape, (N, C, out_h, out_w)
        return out

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        """The gradient of x: each ``dout`` element at its window's maximum, summed.

        Args:
            dout: ``(N, C, out_h, out_w)``, floating point.

        Returns:
            dx ``(N, C, H, W)`` in dout's dtype (None if not ``input_grad``).

        Raises:
            RuntimeError: No forward pass yet.
            ValueError: ``dout``'s shape is not the last output's.
        """
        # (Layer checked that a forward pass came first and dout has its output's shape.)
        if not input_grad:
            return None
        k = ops(dout, self.x)
        ph, pw, s, p = self.pool_h, self.pool_w, self.stride, self.pad
        if self._kernels and torch_kernels(k, dout, self.x):
            return max_pool2d_backward(k, dout, self._img, self._idx, ph, pw, s, p, self._x_shape)
        # The book's dmax: each dout element at its window's (first) maximum, 0
        # elsewhere, as (C, pool_size, N*out_h*out_w); then dcol and col2im.
        C, pool_size = self._out_shape[1], ph * pw
        if routes_by_comparison(k):
            dmax = max_pool_dmax_by_comparison(k, dout, self._col, self._max, self._buffers)
        else:
            # (arg_max is made on demand after PyTorch's kernels, for a dout of another dtype.)
            dmax, self._positions = max_pool_dmax_one_hot(
                k, dout, self.arg_max, pool_size, self._positions
            )
        dcol = k.xp.reshape(dmax, (C * pool_size, -1))
        return col2im_into(k, dcol, self._x_shape, ph, pw, s, p, self._buffers)

    def config(self) -> dict[str, Any]:
        keys = ("pool_h", "pool_w", "stride", "pad")
        return dict(zip(keys, (self.pool_h, self.pool_w, self.stride, self.pad), strict=True))

    @classmethod
    def _checked_config(cls, config: Any) -> tuple[int, int, int, int]:
        ph, pw, s = _config_sizes(cls, config, "pool_h", "pool_w", "stride", extra=("pad",))
        return ph, pw, s, config_pad(cls, config)

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        cls._checked_config(config)
        return {}

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(C, out_h, out_w)`` for images ``(C, H, W)`` (see :class:`Layer`)."""
        shape = tuple(input_shape)
        out_h, out_w = window_sample_shape(shape, cls._checked_config(config), "Pooling")
        return (shape[0], out_h, out_w)

    @classmethod
    def scratch_sample_elements(cls, config: Any, input_shape: tuple[int, ...]) -> int:
        return window_scratch(tuple(input_shape), cls._checked_config(config))

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any, backend: Any) -> Layer:
        return cls(*cls._checked_config(config))

    def __repr__(self) -> str:
        return (
            f"Pooling(pool_h={self.pool_h}, pool_w={self.pool_w}, stride={self.stride}, "
            f"pad={self.pad})"
        )

"""Convolutional layers (vol. 1, ch. 7 of the book): im2col, Convolution, Pooling.

The book turns a convolution into one matrix product: :func:`im2col` lays
every window of the (padded) input out as a row, ``(N*out_h*out_w,
C*filter_h*filter_w)``, the filters become a ``(C*filter_h*filter_w, FN)``
matrix, and :func:`col2im`, the adjoint of ``im2col``, sums the rows of a
gradient back into image shape (overlapping windows add up). Both keep the
book's shapes and element order, in the input's dtype (the book's make
float64).

Inside, the columns are built transposed, ``(C*filter_h*filter_w,
N*out_h*out_w)`` laid out ``(C, filter_h, filter_w, N, out_h, out_w)``: each
filter element's plane of windows is then one strided slice of the image,
copied with long contiguous runs, and the layers multiply the transposes
(``W @ col.T`` rather than ``col @ W.T``), which gives each filter's output
planes contiguous and takes a third to a fifth of the time of the book's
layout on NumPy. :func:`im2col` returns the transpose of that array (the
book's matrix, as a view).

Everything is written with portable ``xp`` operations (strided slices,
``permute_dims``, ``reshape``), with faster paths where a backend has them:
on NumPy and CuPy ``im2col`` is one copy out of a strided view of the input
and the layers reuse their buffers (``out=``) from step to step, as the
layers of :mod:`xpnn.layers` do, so a training step allocates no column-
or image-sized array after the first, and pass their arrays on in the
memory order the next step reads fastest (a convolution's output and its
input gradient channels first, a pooling's output samples first, so an
Affine layer flattens it without a copy); on PyTorch ``im2col`` is
``Tensor.unfold`` and ``col2im`` is ``torch.nn.functional.fold``. Outputs
of a layer are valid until its next call (copy them to keep them).

Two paths skip the column matrix where it costs most:

* on PyTorch (float32, float64) the layers run PyTorch's own kernels,
  ``conv2d``, ``convolution_backward``, ``max_pool2d_with_indices`` and its
  backward (oneDNN on the CPU, cuDNN on CUDA), on channels-last arrays
  (still ``(N, C, H, W)`` to the user), the layout oneDNN runs fastest; the
  book's ``col`` and ``arg_max`` are made on demand for whoever reads them;
* on NumPy and CuPy the input gradient of a stride-1 convolution with no
  more filters than channels is a correlation of ``dout`` with the filters
  turned 180 degrees (``im2col`` of dout and one matrix product) instead
  of ``col2im``'s nine passes over the image.

Both compute the book's sums in another order: equal to rounding, checked
against numerical gradients and PyTorch's autograd on every backend.

Output sizes are the book's: ``out_h = (H + 2*pad - filter_h) // stride +
1`` (likewise ``out_w``); padding is zeros, as the book's ``im2col`` pads.

:class:`Convolution` and :class:`Pooling` are registered layers
(:func:`xpnn.layers.register_layer`), so models made of them save and load;
``from xpnn.layers import Convolution, Pooling`` works as the book's
``common.layers`` does.
"""

from __future__ import annotations

import numbers
from typing import Any

from xpnn.backend import _dtype_name, device_of, get_namespace, ops, zeros
from xpnn.layers.base import Layer, _config_sizes, _zeros_like_all, register_layer
from xpnn.layers.dense import Affine

__all__ = ["Convolution", "Pooling", "col2im", "im2col"]


# --- argument checks -------------------------------------------------------


def _int_arg(value: Any, who: str, minimum: int) -> int:
    """``value`` checked to be an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who} must be an int, got {type(value).__name__}")
    if value < minimum:
        what = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{who} must be {what}, got {value}")
    return int(value)


def _window_args(
    filter_h: Any, filter_w: Any, stride: Any, pad: Any, names: tuple[str, str]
) -> tuple[int, int, int, int]:
    return (
        _int_arg(filter_h, names[0], 1),
        _int_arg(filter_w, names[1], 1),
        _int_arg(stride, "stride", 1),
        _int_arg(pad, "pad", 0),
    )


def _out_size(
    shape: tuple[int, ...], fh: int, fw: int, stride: int, pad: int, who: str
) -> tuple[int, int]:
    """``(out_h, out_w)`` of windows ``fh x fw`` over an ``(N, C, H, W)`` shape.

    Raises:
        ValueError: ``shape`` is not 4-D, or a window does not fit the padded input.
    """
    if len(shape) != 4:
        raise ValueError(
            f"{who} takes images (N, C, H, W), got shape {shape}; reshape rows, e.g. "
            "xp.reshape(x, (N, 1, 28, 28)) for MNIST"
        )
    h, w = shape[2] + 2 * pad, shape[3] + 2 * pad
    if h < fh or w < fw:
        raise ValueError(
            f"{who}: a {fh}x{fw} window does not fit an input of shape {shape} padded by "
            f"{pad} ({h}x{w}); use a smaller window or more padding"
        )
    return (h - fh) // stride + 1, (w - fw) // stride + 1


def _check_float(k: Any, a: Any, who: str) -> None:
    if not k.isdtype(a.dtype, "real floating"):
        raise TypeError(
            f"{who} needs floating-point inputs, got {_dtype_name(a.dtype)}; convert them, "
            'e.g. with xpnn.asarray(x, dtype="float32")'
        )


def _torch_kernels(k: Any, x: Any, W: Any) -> bool:
    """Whether PyTorch's own kernels take a float32/float64 call on ``x`` and ``W``.

    Convolution and Pooling then run ``torch.nn.functional.conv2d``,
    ``max_pool2d`` and their ATen backward (oneDNN on CPU, cuDNN on CUDA):
    the same sums as the book's column matrix, without building it. Other
    dtypes (half floats) take the portable path.
    """
    torch = k.torch
    return torch is not None and x.dtype == W.dtype and x.dtype in (torch.float32, torch.float64)


def _nhwc(torch: Any, x: Any) -> Any:
    """``x`` (N, C, H, W) laid out channels last: ``x`` itself if it is, else a copy.

    Strides, not only the layout, must say so: PyTorch's kernels answer a
    one-channel input in the layout its strides suggest.
    """
    if x.stride(1) == 1 and x.is_contiguous(memory_format=torch.channels_last):
        return x
    return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)


# --- im2col and col2im -----------------------------------------------------


def _buffer(k: Any, cache: dict | None, name: str, shape: tuple, dtype: Any, like: Any) -> Any:
    """A buffer reused from ``cache`` (NumPy, CuPy), else None."""
    if cache is None:
        return None
    return k.buffer(cache, name, shape, dtype, like)


def _channels_first(k: Any, x: Any) -> bool:
    """Whether ``x`` (N, C, H, W) is a transposed view of a C-ordered (C, N, H, W) array.

    The layers of this module return their outputs so (NumPy, CuPy): the next
    layer then copies along contiguous runs.
    """
    return k.native is not None and bool(x.transpose(1, 0, 2, 3).flags.c_contiguous)


def _padded(k: Any, x: Any, pad: int, cache: dict | None, prefix: str = "") -> Any:
    """``x`` with ``pad`` zeros around its last two axes (``x`` itself for 0).

    On NumPy and CuPy the padded copy keeps ``x``'s memory order (a
    channels-first ``x`` gets a channels-first buffer), so the copy runs
    along contiguous rows.
    """
    if pad == 0:
        return x
    n, c, h, w = x.shape
    first = _channels_first(k, x)
    shape = (c, n, h + 2 * pad, w + 2 * pad) if first else (n, c, h + 2 * pad, w + 2 * pad)
    old = None if cache is None else cache.get(prefix + "padded")
    img = _buffer(k, cache, prefix + "padded", shape, x.dtype, x)
    if img is None:
        img = k.xp.zeros(shape, dtype=x.dtype, device=device_of(x))
    elif img is not old:  # a new buffer: zero it once; the border stays zero
        img[...] = 0
    if first:
        img = img.transpose(1, 0, 2, 3)
    img[:, :, pad : pad + h, pad : pad + w] = x
    return img


def _im2col_t(
    k: Any,
    x: Any,
    fh: int,
    fw: int,
    stride: int,
    pad: int,
    cache: dict | None = None,
    prefix: str = "",
) -> Any:
    """The transpose of im2col, ``(C*fh*fw, N*out_h*out_w)``, of a checked ``x``.

    Laid out ``(C, fh, fw, N, out_h, out_w)``: each filter element's plane
    of windows is a strided slice of the image copied whole (long inner runs
    along ``out_w``), and the matrix products of the layers take this
    transpose as it is. Into buffers of ``cache`` (named with ``prefix``)
    where the backend allows.
    """
    xp = k.xp
    n, c = x.shape[0], x.shape[1]
    oh, ow = _out_size(tuple(x.shape), fh, fw, stride, pad, "im2col")
    img = _padded(k, x, pad, cache, prefix)
    shape6 = (c, fh, fw, n, oh, ow)
    size, rows = c * fh * fw, n * oh * ow
    if k.native is not None:
        # NumPy, CuPy: the windows are a strided view of img; one copy lays them out.
        sn, sc, sh, sw = img.strides
        view = k.native.lib.stride_tricks.as_strided(
            img, shape=shape6, strides=(sc, sh, sw, sn, sh * stride, sw * stride)
        )
        col = _buffer(k, cache, prefix + "col", shape6, x.dtype, x)
        if col is None:
            col = xp.empty(shape6, dtype=x.dtype, device=device_of(x))
        k.native.copyto(col, view)
        return col.reshape(size, rows)
    if k.torch is not None:
        # (N, C, oh, ow, fh, fw) views of the windows, copied once.
        windows = img.unfold(2, fh, stride).unfold(3, fw, stride)
        return xp.reshape(xp.permute_dims(windows, (1, 4, 5, 0, 2, 3)), (size, rows))
    # Portable: one strided slice of the image per filter element.
    col = xp.zeros(shape6, dtype=x.dtype, device=device_of(x))
    for y in range(fh):
        y_stop = y + stride * (oh - 1) + 1
        for z in range(fw):
            z_stop = z + stride * (ow - 1) + 1
            part = img[:, :, y:y_stop:stride, z:z_stop:stride]
            col[:, y, z, ...] = xp.permute_dims(part, (1, 0, 2, 3))
    return xp.reshape(col, (size, rows))


def _col2im_t(
    k: Any,
    col_t: Any,
    input_shape: tuple[int, int, int, int],
    fh: int,
    fw: int,
    stride: int,
    pad: int,
    cache: dict | None = None,
) -> Any:
    """col2im of the transpose ``(C*fh*fw, N*out_h*out_w)`` of checked arguments
    (into a buffer of ``cache`` where the backend allows)."""
    xp = k.xp
    n, c, h, w = input_shape
    oh, ow = _out_size(input_shape, fh, fw, stride, pad, "col2im")
    if k.torch is not None and k.isdtype(col_t.dtype, "real floating"):
        # fold sums the windows back (and drops the padding): the book's col2im.
        blocks = xp.permute_dims(xp.reshape(col_t, (c * fh * fw, n, oh * ow)), (1, 0, 2))
        return k.torch.nn.functional.fold(blocks, (h, w), (fh, fw), padding=pad, stride=stride)
    col6 = xp.reshape(col_t, (c, fh, fw, n, oh, ow))
    # The image is laid out (C, N, H, W), the order of the columns' planes: each
    # filter element's plane adds into a strided slice along contiguous runs, and
    # the result, a transposed view, is what the layers' next backward step reads.
    shape = (c, n, h + 2 * pad, w + 2 * pad)
    img = _buffer(k, cache, "img", shape, col_t.dtype, col_t)
    # Windows that never overlap (stride >= window) are copied, not added; when
    # they also cover the whole padded image, nothing needs zeroing first.
    disjoint = stride >= fh and stride >= fw
    covered = disjoint and oh * stride == shape[2] and ow * stride == shape[3]
    covered = covered and stride == fh and stride == fw
    if img is None:
        img = xp.zeros(shape, dtype=col_t.dtype, device=device_of(col_t))
    elif not covered:
        img[...] = 0
    for y in range(fh):
        y_stop = y + stride * (oh - 1) + 1
        for z in range(fw):
            z_stop = z + stride * (ow - 1) + 1
            part = col6[:, y, z, ...]
            if k.native is not None:
                target = img[:, :, y:y_stop:stride, z:z_stop:stride]
                if disjoint:
                    k.native.copyto(target, part)
                else:
                    k.native.add(target, part, out=target)
            else:
                img[:, :, y:y_stop:stride, z:z_stop:stride] = (
                    img[:, :, y:y_stop:stride, z:z_stop:stride] + part
                )
    img = xp.permute_dims(img, (1, 0, 2, 3))
    if pad == 0:
        return img
    return img[:, :, pad : pad + h, pad : pad + w]


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
    fh, fw, stride, pad = _window_args(filter_h, filter_w, stride, pad, ("filter_h", "filter_w"))
    k = ops(input_data)
    _out_size(tuple(input_data.shape), fh, fw, stride, pad, "im2col")
    return _im2col_t(k, input_data, fh, fw, stride, pad).T


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
    fh, fw, stride, pad = _window_args(filter_h, filter_w, stride, pad, ("filter_h", "filter_w"))
    shape = tuple(input_shape)
    if len(shape) == 4:
        shape = tuple(_int_arg(d, "input_shape entries", 0) for d in shape)
    oh, ow = _out_size(shape, fh, fw, stride, pad, "col2im")
    want = (shape[0] * oh * ow, shape[1] * fh * fw)
    if tuple(col.shape) != want:
        raise ValueError(
            f"col2im: col of shape {tuple(col.shape)} does not fit input_shape {shape} with "
            f"{fh}x{fw} windows, stride {stride}, pad {pad}: expected {want}"
        )
    return _col2im_t(ops(col), col.T, shape, fh, fw, stride, pad)


# --- layers ----------------------------------------------------------------


@register_layer
class Convolution(Layer):
    """The book's convolution layer: im2col, one matrix product, and back.

    ``out[n, f, i, j] = sum(W[f] * window(n, i, j)) + b[f]`` with the
    windows of ``x`` padded by ``pad`` zeros, ``stride`` apart. Forward
    computes the book's ``im2col(x) @ W.reshape(FN, -1).T + b``, as its
    transpose ``W.reshape(FN, -1) @ im2col(x).T + b`` (see the module), and
    returns it as ``(N, FN, out_h, out_w)``, a transposed view of an
    ``(FN, N, out_h, out_w)`` array; backward fills ``grads`` ``[dW, db]``
    in place and returns ``dx`` through :func:`col2im`, in the same
    transposed form.

    Config: ``{"filter_num": FN, "channels": C, "filter_h": FH, "filter_w":
    FW, "stride": s, "pad": p}``.

    Args:
        W: Filters ``(FN, C, FH, FW)``, floating point.
        b: Biases ``(FN,)``, on W's backend and device.
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
        k = ops(W, b)  # BackendMismatchError for W and b apart
        for name, a in (("W", W), ("b", b)):
            _check_float(k, a, f"Convolution {name}")
        if W.ndim != 4 or b.ndim != 1 or b.shape[0] != W.shape[0]:
            raise ValueError(
                "Convolution needs W of shape (FN, C, FH, FW) and b of shape (FN,), got W "
                f"{tuple(W.shape)} and b {tuple(b.shape)}"
            )
        if 0 in tuple(W.shape):
            raise ValueError(f"Convolution W must have no empty axis, got shape {tuple(W.shape)}")
        self.stride = _int_arg(stride, "stride", 1)
        self.pad = _int_arg(pad, "pad", 0)
        self.params = [W, b]
        self.grads = _zeros_like_all(self.params)
        self.x: Any = None
        self._col: Any = None
        self._kernels = False  # the last forward pass ran PyTorch's kernels
        self._x_shape: tuple[int, int, int, int] | None = None
        self._out_shape: tuple[int, int, int, int] | None = None

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
        """Convolve images ``x`` ``(N, C, H, W)`` (floating point) with the filters.

        Returns:
            ``(N, FN, out_h, out_w)`` in W's dtype (x's and W's promoted).

        Raises:
            TypeError: ``x`` is not floating point.
            ValueError: ``x`` is not 4-D, its channels are not W's, or the
                filters do not fit the padded input.
            xpnn.BackendMismatchError: ``x`` is on another backend or device.
        """
        W, b = self.params
        k = ops(x, W)
        _check_float(k, x, "Convolution")
        fn, c, fh, fw = W.shape
        shape = tuple(x.shape)
        oh, ow = _out_size(shape, fh, fw, self.stride, self.pad, "Convolution")
        if shape[1] != c:
            raise ValueError(
                f"Convolution filters W {tuple(W.shape)} take {c} channels, got x of shape "
                f"{shape} ({shape[1]} channels)"
            )
        xp = k.xp
        n = shape[0]
        self.x, self._col = x, None
        self._x_shape, self._out_shape = shape, (n, fn, oh, ow)
        self._kernels = _torch_kernels(k, x, W)
        if self._kernels and self._by_columns(x):
            # PyTorch, CPU, columns no larger than the output (a first layer: C =
            # 1): the book's col @ col_W + b as one addmm, whose (N*oh*ow, FN)
            # rows are the output channels last; backward reuses the columns.
            col_t = _im2col_t(k, x, fh, fw, self.stride, self.pad)
            self._col = col_t.T
            rows = k.torch.addmm(b, self._col, self.col_W)
            return rows.view(n, oh, ow, fn).permute(0, 3, 1, 2)
        if self._kernels:
            # PyTorch's own convolution (oneDNN on CPU, cuDNN on CUDA): the same
            # sums, no column matrix; `col` is made on demand.
            # Channels last (NHWC in memory, still (N, C, H, W) to the user): the
            # layout oneDNN's CPU kernels run fastest, kept by Relu and max_pool2d.
            x = self.x = _nhwc(k.torch, x)
            return k.torch.nn.functional.conv2d(x, W, b, stride=self.stride, padding=self.pad)
        # The book's out = col @ col_W + b, computed transposed: (FN, N*oh*ow) =
        # W (FN, C*FH*FW) @ col.T, so each filter's output planes are contiguous.
        col_t = _im2col_t(k, x, fh, fw, self.stride, self.pad, self._buffers)
        w_rows = xp.reshape(W, (fn, c * fh * fw))
        out = self._buffer(k, "out", (fn, col_t.shape[1]), W.dtype, x)
        out = k.add(k.matmul(w_rows, col_t, out=out), xp.reshape(b, (fn, 1)), out=out)
        self._col = col_t.T
        return xp.permute_dims(xp.reshape(out, (fn, n, oh, ow)), (1, 0, 2, 3))

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
            self._col = _im2col_t(k, self.x, fh, fw, self.stride, self.pad, self._buffers).T
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
        if self._x_shape is None:
            raise RuntimeError("Convolution.backward needs a forward pass first")
        W, _ = self.params
        k = ops(dout, W)
        xp = k.xp
        fn, c, fh, fw = W.shape
        if tuple(dout.shape) != self._out_shape:
            raise ValueError(
                f"Convolution.backward: dout of shape {tuple(dout.shape)} does not fit the last "
                f"output {self._out_shape}"
            )
        if self._kernels and _torch_kernels(k, dout, W):
            # PyTorch's kernels; but where the columns are no larger than the
            # output (the first layer of an MNIST net: C = 1), oneDNN's weight
            # gradient takes three times as long as the column product below.
            columns = self._by_columns(self.x)
            dx = None
            if input_grad or not columns:
                dx, gW, gb = k.torch.ops.aten.convolution_backward(
                    dout, self.x, W, [fn], [self.stride] * 2, [self.pad] * 2, [1, 1], False,
                    [0, 0], 1, [input_grad, not columns, not columns],
                )  # fmt: skip
            if columns:
                # dout laid out channels last is the book's (N*oh*ow, FN) matrix,
                # a view: dW.T = col.T @ dout with the transposed columns as made.
                d = _nhwc(k.torch, dout).permute(0, 2, 3, 1).reshape(-1, fn)
                col_t = self.col.T  # (C*FH*FW, N*oh*ow)
                self.grads[0][...] = k.torch.matmul(col_t, d).T.reshape(W.shape)
                k.sum(d, axis=0, out=self.grads[1])
            else:
                self.grads[0].copy_(gW)
                self.grads[1].copy_(gb)
            return dx
        d_t = self._weight_grads(k, dout)
        if not input_grad:
            return None
        size, rows = c * fh * fw, d_t.shape[1]
        q = fh - 1 - self.pad
        if k.native is not None and self.stride == 1 and fh == fw and q >= 0 and fn <= c:
            return self._dx_by_correlation(k, d_t, q)
        # The book's dcol = d @ col_W.T, transposed: W.T @ d.T.
        dcol_t = self._buffer(k, "dcol", (size, rows), dout.dtype, dout)
        dcol_t = k.matmul(xp.reshape(W, (fn, size)).T, d_t, out=dcol_t)
        return _col2im_t(k, dcol_t, self._x_shape, fh, fw, self.stride, self.pad, self._buffers)

    def _by_columns(self, x: Any) -> bool:
        """PyTorch on the CPU: whether the columns are no larger than the output.

        There (a first layer, C = 1) the book's column products beat oneDNN's
        weight gradient threefold, and the forward pass makes the columns the
        backward pass needs.
        """
        fn, c, fh, fw = self.params[0].shape
        return x.device.type == "cpu" and c * fh * fw <= fn

    def _weight_grads(self, k: Any, dout: Any) -> Any:
        """Fill dW and db from the columns; return dout as ``(FN, N*oh*ow)``."""
        xp = k.xp
        W = self.params[0]
        fn, c, fh, fw = W.shape
        n, _, oh, ow = self._out_shape
        # dout as (FN, N*oh*ow), the transpose of the book's (N*oh*ow, FN).
        d_t = xp.permute_dims(dout, (1, 0, 2, 3))
        if k.native is not None and not d_t.flags.c_contiguous:
            # (A dout laid out (FN, N, oh, ow), as this module's layers and the
            # elementwise layers after them pass it back, needs no copy.)
            buf = self._buffer(k, "dout_t", (fn, n, oh, ow), dout.dtype, dout)
            k.native.copyto(buf, d_t)
            d_t = buf
        d_t = xp.reshape(d_t, (fn, n * oh * ow))
        dW, db = self.grads
        # The book's dW = (col.T @ d).T, as d.T @ col straight into dW's rows.
        if k.native is not None:
            k.matmul(d_t, self.col, out=dW.reshape(fn, c * fh * fw))
        else:
            dW[...] = xp.reshape(d_t @ self.col, tuple(W.shape))
        value = k.sum_wide(d_t, axis=1, out=db)
        if value is not db:
            db[...] = value
        return d_t

    def _dx_by_correlation(self, k: Any, d_t: Any, q: int) -> Any:
        """dx ``(N, C, H, W)`` of a stride-1 convolution as a convolution of dout.

        The book's ``col2im(dout @ col_W.T)`` is, for stride 1, the correlation
        of dout ``(FN, N*oh*ow)`` padded by ``q = FH - 1 - pad`` with the
        filters turned 180 degrees and their channel axes swapped: ``im2col``
        of dout, then one matrix product. The same sums in another order;
        where FN <= C its columns are no larger than ``dcol`` and it saves
        col2im's passes over the image (NumPy, CuPy).
        """
        W = self.params[0]
        fn, c, fh, fw = W.shape
        n, _, oh, ow = self._out_shape
        h, w = self._x_shape[2:]
        native = k.native
        flipped = self._buffer(k, "W_flipped", (c, fn, fh, fw), W.dtype, W)
        native.copyto(flipped, W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        d4 = d_t.reshape(fn, n, oh, ow).transpose(1, 0, 2, 3)
        cols = _im2col_t(k, d4, fh, fw, 1, q, self._buffers, "dout ")
        dx = self._buffer(k, "dx", (c, n * h * w), d_t.dtype, d_t)
        native.matmul(flipped.reshape(c, fn * fh * fw), cols, out=dx)
        return dx.reshape(c, n, h, w).transpose(1, 0, 2, 3)

    def config(self) -> dict[str, Any]:
        fn, c, fh, fw = (int(d) for d in self.params[0].shape)
        return {
            "filter_num": fn,
            "channels": c,
            "filter_h": fh,
            "filter_w": fw,
            "stride": self.stride,
            "pad": self.pad,
        }

    @classmethod
    def _checked_config(cls, config: Any) -> tuple[int, int, int, int, int, int]:
        sizes = _config_sizes(
            cls, config, "filter_num", "channels", "filter_h", "filter_w", "stride", extra=("pad",)
        )
        try:
            pad = _int_arg(config["pad"], "pad", 0)
        except (TypeError, ValueError) as exc:  # from a file: a ValueError, as for every layer
            raise ValueError(f"Convolution config: {exc}") from None
        return (*sizes, pad)

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        fn, c, fh, fw, _, _ = cls._checked_config(config)
        return {"W": (fn, c, fh, fw), "b": (fn,)}

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
    Affine layer after it flattens it without a copy; elsewhere a transposed
    view of a ``(C, N, out_h, out_w)`` array). Backward routes each output gradient to its
    window's maximum, the first one in the window's row-major order on ties
    (as ``argmax``, see :attr:`arg_max`), and sums the windows back with
    :func:`col2im`. On NumPy and CuPy the routing compares each window
    element with the maximum (into buffers); on PyTorch (float32, float64)
    it is the kernels of ``max_pool2d_with_indices``, whose indices are the
    same first maxima; elsewhere it compares the window positions with
    ``arg_max`` (one-hot), never an index assignment. A
    window holding NaN pools to NaN (its gradient, undefined, is dropped on
    NumPy and CuPy, sent to the last NaN by PyTorch's kernel, to the first
    elsewhere, as the book's argmax). Padding is
    zeros, as the book's ``im2col`` pads (PyTorch's ``max_pool2d`` pads
    with -inf: they differ where a window's values at the border are all
    negative).

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
        self.pool_h, self.pool_w, self.stride, self.pad = _window_args(
            pool_h, pool_w, stride, pad, ("pool_h", "pool_w")
        )
        self.x: Any = None
        self._col: Any = None  # the windows (C, pool_h*pool_w, N*out_h*out_w)
        self._max: Any = None  # their maxima (C, N*out_h*out_w), NumPy/CuPy (C, N, oh, ow)
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
            col = self._windows()
            self._arg = get_namespace(col).argmax(col, axis=1)
        return self._arg

    def _windows(self) -> Any:
        """The last input's windows ``(C, pool_h*pool_w, N*out_h*out_w)``, made on
        demand where PyTorch's kernels pooled without them."""
        if self._col is None:
            x = self.x
            k = ops(x)
            col = _im2col_t(k, x, self.pool_h, self.pool_w, self.stride, self.pad, self._buffers)
            self._col = k.xp.reshape(col, (x.shape[1], self.pool_h * self.pool_w, -1))
        return self._col

    def forward(self, x: Any) -> Any:
        """Max-pool images ``x`` ``(N, C, H, W)`` (floating point).

        Returns:
            ``(N, C, out_h, out_w)`` in x's dtype.

        Raises:
            TypeError: ``x`` is not floating point.
            ValueError: ``x`` is not 4-D or the window does not fit the padded input.
        """
        k = ops(x)
        _check_float(k, x, "Pooling")
        shape = tuple(x.shape)
        ph, pw, s, p = self.pool_h, self.pool_w, self.stride, self.pad
        oh, ow = _out_size(shape, ph, pw, s, p, "Pooling")
        xp = k.xp
        n, c = shape[0], shape[1]
        self._kernels = _torch_kernels(k, x, x)
        if self._kernels:
            # PyTorch's max_pool2d over the zero-padded input (the book pads with
            # zeros, max_pool2d with -inf); its indices route the gradient.
            # Channels last: several times faster on the CPU (a copy for an input
            # laid out otherwise, as the output of a 1-channel convolution is).
            img = _nhwc(k.torch, _padded(k, x, p, None))
            out, self._idx = k.torch.ops.aten.max_pool2d_with_indices(img, [ph, pw], [s, s])
            self._img, self._col, self._arg = img, None, None
            self.x, self._x_shape, self._out_shape = x, shape, (n, c, oh, ow)
            return out
        # The windows as (C, ph*pw, N*oh*ow): the transpose of the book's rows.
        col = xp.reshape(_im2col_t(k, x, ph, pw, s, p, self._buffers), (c, ph * pw, -1))
        self._col, self._arg = col, None
        if k.native is not None:
            # The maximum only: backward finds the first one by comparison. Written
            # straight into an (N, C, out_h, out_w) array, so that an Affine layer
            # after it flattens the samples without a copy.
            out = self._buffer(k, "out", (n, c, oh, ow), x.dtype, x)
            k.native.max(col.reshape(c, ph * pw, n, oh, ow), axis=1, out=out.transpose(1, 0, 2, 3))
            self._max = out.transpose(1, 0, 2, 3)
            self.x, self._x_shape, self._out_shape = x, shape, (n, c, oh, ow)
            return out
        elif k.torch is not None:
            out, self._arg = k.torch.max(col, dim=1)  # the first maximum's index on ties
        else:
            self._arg = xp.argmax(col, axis=1)
            out = xp.max(col, axis=1)
        self._max = out
        self.x, self._x_shape, self._out_shape = x, shape, (n, c, oh, ow)
        return xp.permute_dims(xp.reshape(out, (c, n, oh, ow)), (1, 0, 2, 3))

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
        if self._x_shape is None:
            raise RuntimeError("Pooling.backward needs a forward pass first")
        if not input_grad:
            return None
        if tuple(dout.shape) != self._out_shape:
            raise ValueError(
                f"Pooling.backward: dout of shape {tuple(dout.shape)} does not fit the last "
                f"output {self._out_shape}"
            )
        k = ops(dout, self.x)
        xp = k.xp
        if self._kernels and _torch_kernels(k, dout, self.x):
            ph, pw, s, p = self.pool_h, self.pool_w, self.stride, self.pad
            dout = _nhwc(k.torch, dout)  # as the indices
            dx = k.torch.ops.aten.max_pool2d_with_indices_backward(
                dout, self._img, [ph, pw], [s, s], [0, 0], [1, 1], False, self._idx
            )
            h, w = self._x_shape[2:]
            return dx if p == 0 else dx[:, :, p : p + h, p : p + w]
        n, c, oh, ow = self._out_shape
        size = self.pool_h * self.pool_w
        rows = n * oh * ow
        d = xp.permute_dims(dout, (1, 0, 2, 3))
        if k.native is not None:
            # dmax[:, p] = dout where window element p is the first maximum: one
            # comparison per window element, into buffers.
            # (C, N, out_h, out_w) views throughout: d and the maxima in any layout.
            native = k.native
            col = self._col.reshape(c, size, n, oh, ow)
            hot = self._buffer(k, "hot", (c, n, oh, ow), xp.bool, dout)
            found = self._buffer(k, "found", (c, n, oh, ow), xp.bool, dout)
            dmax = self._buffer(k, "dmax", (c, size, n, oh, ow), dout.dtype, dout)
            for p in range(size):
                native.equal(col[:, p], self._max, out=hot)
                if p:
                    native.greater(hot, found, out=hot)  # and no maximum before it
                native.multiply(hot, d, out=dmax[:, p])
                if p < size - 1:
                    if p:
                        native.logical_or(found, hot, out=found)
                    else:
                        native.copyto(found, hot)
        else:
            # A one-hot comparison of the window positions with arg_max (made on
            # demand after PyTorch's kernels, for a dout of another dtype).
            arg_max = self.arg_max
            positions = self._positions
            if (
                positions is None
                or positions.shape[1] != size
                or device_of(positions) != device_of(dout)
            ):
                positions = self._positions = xp.reshape(
                    xp.arange(size, dtype=arg_max.dtype, device=device_of(dout)), (1, size, 1)
                )
            arg = xp.reshape(arg_max, (c, 1, rows))
            d = xp.reshape(d, (c, 1, rows))
            dmax = xp.astype(arg == positions, dout.dtype) * d
        return _col2im_t(
            k,
            xp.reshape(dmax, (c * size, rows)),
            self._x_shape,
            self.pool_h,
            self.pool_w,
            self.stride,
            self.pad,
            self._buffers,
        )

    def config(self) -> dict[str, Any]:
        return {
            "pool_h": self.pool_h,
            "pool_w": self.pool_w,
            "stride": self.stride,
            "pad": self.pad,
        }

    @classmethod
    def _checked_config(cls, config: Any) -> tuple[int, int, int, int]:
        ph, pw, s = _config_sizes(cls, config, "pool_h", "pool_w", "stride", extra=("pad",))
        try:
            pad = _int_arg(config["pad"], "pad", 0)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Pooling config: {exc}") from None
        return ph, pw, s, pad

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        cls._checked_config(config)
        return {}

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any, backend: Any) -> Layer:
        return cls(*cls._checked_config(config))

    def __repr__(self) -> str:
        return (
            f"Pooling(pool_h={self.pool_h}, pool_w={self.pool_w}, stride={self.stride}, "
            f"pad={self.pad})"
        )

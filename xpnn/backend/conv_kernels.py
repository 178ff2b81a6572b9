"""The steps of a convolution layer, each as fast as its backend allows.

:class:`xpnn.layers.conv.Convolution` states the book's formulas and calls
one operation of this module per step; each computes that step (checked by
the layer) on every backend and says why it is faster than the book's
NumPy. The two choices of algorithm are the layer's, through the predicates
here:

* :func:`torch_kernels`, :func:`torch_by_columns`: on PyTorch (float32,
  float64) PyTorch's own kernels (:func:`conv2d_forward`,
  :func:`conv2d_backward`: oneDNN on the CPU, cuDNN on CUDA), except on the
  CPU where the columns are no larger than the output (a first layer, C =
  1): there the book's column products (:func:`conv_matmul_add`,
  :func:`weight_grad`) beat oneDNN's weight gradient threefold;
* :func:`by_correlation`: on NumPy and CuPy the input gradient of a
  stride-1 convolution with no more filters than channels is a correlation
  (:func:`conv2d_input_grad_by_correlation`) instead of ``col2im``.

Everything else is the book's column matrix, transposed (see
:mod:`xpnn.backend.conv_columns`), in buffers of the layer's ``cache``
(NumPy, CuPy) reused from step to step, and passed on in the memory order
the next step reads fastest: the output and the input gradient channels
first (transposed views of ``(FN, N, ...)`` and ``(C, N, ...)`` arrays).
The sums are the book's, in another order where a kernel or the
correlation runs: equal to rounding.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend.conv_columns import _buffer, channels_last, im2col_into, out_size

__all__ = [
    "bias_grad",
    "by_correlation",
    "columns_grad",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_input_grad",
    "conv2d_input_grad_by_correlation",
    "conv_matmul_add",
    "dout_rows",
    "torch_by_columns",
    "torch_kernels",
    "weight_grad",
]


# --- which algorithm --------------------------------------------------------


def torch_kernels(k: Any, x: Any, W: Any) -> bool:
    """Whether PyTorch's own kernels take a float32/float64 call on ``x`` and ``W``.

    Convolution and Pooling then run ``torch.nn.functional.conv2d``,
    ``max_pool2d`` and their ATen backward (oneDNN on CPU, cuDNN on CUDA):
    the same sums as the book's column matrix, without building it. Other
    dtypes (half floats) take the portable path.
    """
    torch = k.torch
    return torch is not None and x.dtype == W.dtype and x.dtype in (torch.float32, torch.float64)


def torch_by_columns(x: Any, W: Any) -> bool:
    """PyTorch on the CPU: whether the columns are no larger than the output.

    There (a first layer, C = 1) the book's column products beat oneDNN's
    weight gradient threefold, and the forward pass makes the columns the
    backward pass needs. Asked only where :func:`torch_kernels` holds.
    """
    fn, c, fh, fw = W.shape
    return x.device.type == "cpu" and c * fh * fw <= fn


def by_correlation(k: Any, W_shape: tuple[int, ...], stride: int, pad: int) -> bool:
    """Whether :func:`conv2d_input_grad_by_correlation` computes dx (NumPy, CuPy).

    Stride 1, square filters, ``pad < FH`` and no more filters than channels
    (FN <= C): its columns are then no larger than the book's ``dcol`` and
    it saves col2im's passes over the image.
    """
    fn, c, fh, fw = W_shape
    q = fh - 1 - pad
    return k.native is not None and stride == 1 and fh == fw and q >= 0 and fn <= c


# --- PyTorch's kernels --------------------------------------------------------


def conv2d_forward(k: Any, x: Any, W: Any, b: Any, stride: int, pad: int) -> tuple[Any, Any]:
    """The convolution by PyTorch's ``conv2d``: ``(out, x)``, x laid out channels last.

    oneDNN on CPU, cuDNN on CUDA: the same sums as the book's ``col @ col_W
    + b``, with no column matrix. Channels last (NHWC in memory, still
    ``(N, C, H, W)`` to the user) is the layout oneDNN's CPU kernels run
    fastest, kept by Relu and ``max_pool2d``; the layer keeps the returned
    ``x`` for backward (``x`` itself if it was channels last, else a copy).
    """
    x = channels_last(k.torch, x)
    return k.torch.nn.functional.conv2d(x, W, b, stride=stride, padding=pad), x


def conv2d_backward(
    k: Any, dout: Any, x: Any, W: Any, stride: int, pad: int, grads: list, input_grad: bool
) -> Any:
    """dx, dW and db by ATen's ``convolution_backward``: fills ``grads`` ``[dW, db]``.

    Returns dx (None unless ``input_grad``). One kernel for the three
    gradients of the book's backward, with no column matrix (oneDNN on CPU,
    cuDNN on CUDA), on the channels-last ``x`` of :func:`conv2d_forward`.
    """
    fn = W.shape[0]
    dx, gW, gb = k.torch.ops.aten.convolution_backward(
        dout, x, W, [fn], [stride] * 2, [pad] * 2, [1, 1], False,
        [0, 0], 1, [input_grad, True, True],
    )  # fmt: skip
    grads[0].copy_(gW)
    grads[1].copy_(gb)
    return dx


def conv2d_input_grad(k: Any, dout: Any, x: Any, W: Any, stride: int, pad: int) -> Any:
    """dx alone by ATen's ``convolution_backward`` (PyTorch, where the columns are small).

    The book's ``col2im(dout @ col_W.T)`` in one kernel, with no ``dcol``
    matrix. Only the weight gradient is left to the columns there
    (:func:`weight_grad`): oneDNN's takes three times as long as the column
    product where the columns are no larger than the output.
    """
    fn = W.shape[0]
    dx, _, _ = k.torch.ops.aten.convolution_backward(
        dout, x, W, [fn], [stride] * 2, [pad] * 2, [1, 1], False,
        [0, 0], 1, [True, False, False],
    )  # fmt: skip
    return dx


# --- the book's column products -----------------------------------------------


def conv_matmul_add(k: Any, col: Any, col_W: Any, b: Any, cache: dict | None) -> Any:
    """The book's ``col @ col_W + b``, ``(N*out_h*out_w, FN)``.

    On PyTorch (float32, float64) one ``addmm``, whose rows are the output
    channels last (what PyTorch's kernels after it run fastest). Elsewhere
    computed transposed, ``col_W.T @ col.T + b`` (the columns' own layout,
    see :mod:`xpnn.backend.conv_columns`) into the buffer ``"out"`` of
    ``cache`` (NumPy, CuPy), so each filter's output planes are contiguous;
    returned as its transpose (a view).
    """
    if k.torch is not None and torch_kernels(k, col, col_W):
        return k.torch.addmm(b, col, col_W)
    fn = col_W.shape[1]
    out = _buffer(k, cache, "out", (fn, col.shape[0]), col_W.dtype, col)
    out = k.add(k.matmul(col_W.T, col.T, out=out), k.xp.reshape(b, (fn, 1)), out=out)
    return out.T


def dout_rows(k: Any, dout: Any, cache: dict | None) -> Any:
    """The book's ``dout.transpose(0, 2, 3, 1).reshape(-1, FN)``: ``(N*out_h*out_w, FN)``.

    No copy where the layout allows: on PyTorch (float32, float64) dout laid
    out channels last (as the kernels return it) is that matrix, a view.
    Elsewhere it is the transpose (a view) of dout as ``(FN, N*out_h*out_w)``,
    which the layers of :mod:`xpnn.layers.conv` and the element-wise layers
    after them pass back as it is; any other layout is copied into the
    buffer ``"dout_t"`` of ``cache`` (NumPy, CuPy).
    """
    xp = k.xp
    fn = dout.shape[1]
    if k.torch is not None and torch_kernels(k, dout, dout):
        return channels_last(k.torch, dout).permute(0, 2, 3, 1).reshape(-1, fn)
    d_t = xp.permute_dims(dout, (1, 0, 2, 3))
    if k.native is not None and not d_t.flags.c_contiguous:
        buf = _buffer(k, cache, "dout_t", tuple(d_t.shape), dout.dtype, dout)
        k.native.copyto(buf, d_t)
        d_t = buf
    return xp.reshape(d_t, (fn, -1)).T


def weight_grad(k: Any, col: Any, d: Any, dW: Any) -> None:
    """The book's ``dW = (col.T @ dout).T.reshape(FN, C, FH, FW)``, into ``dW``.

    On NumPy and CuPy as ``dout.T @ col`` straight into dW's rows (no
    product-sized temporary); on PyTorch (float32, float64) the book's
    product, whose transpose is copied into dW.
    """
    fn = dW.shape[0]
    if k.native is not None:
        k.matmul(d.T, col, out=dW.reshape(fn, -1))
    elif k.torch is not None and torch_kernels(k, col, d):
        dW[...] = k.torch.matmul(col.T, d).T.reshape(dW.shape)
    else:
        dW[...] = k.xp.reshape(d.T @ col, tuple(dW.shape))


def bias_grad(k: Any, d: Any, db: Any) -> None:
    """The book's ``db = sum(dout, axis=0)``, into ``db``.

    Summed along the rows of dout's own layout (the transpose's contiguous
    axis), in float32 for half floats (:meth:`xpnn.backend.Ops.sum_wide`),
    written by the sum itself where the backend has ``out=``.
    """
    if k.torch is not None and torch_kernels(k, d, d):
        k.sum(d, axis=0, out=db)
        return
    value = k.sum_wide(d.T, axis=1, out=db)
    if value is not db:
        db[...] = value


def columns_grad(k: Any, d: Any, col_W: Any, cache: dict | None) -> Any:
    """The book's ``dcol = dout @ col_W.T``, ``(N*out_h*out_w, C*FH*FW)``.

    Computed transposed, ``col_W @ dout.T``, into the buffer ``"dcol"`` of
    ``cache`` (NumPy, CuPy): the layout :func:`~xpnn.backend.conv_columns.col2im_into`
    reads along contiguous runs. Returned as its transpose (a view).
    """
    dcol_t = _buffer(k, cache, "dcol", (col_W.shape[0], d.shape[0]), d.dtype, d)
    return k.matmul(col_W, d.T, out=dcol_t).T


def conv2d_input_grad_by_correlation(
    k: Any, d: Any, W: Any, x_shape: tuple[int, int, int, int], pad: int, cache: dict
) -> Any:
    """dx ``(N, C, H, W)`` of a stride-1 convolution as a convolution of dout (NumPy, CuPy).

    The book's ``col2im(dout @ col_W.T)`` is, for stride 1, the correlation
    of dout (``d``, the book's ``(N*oh*ow, FN)``) padded by ``q = FH - 1 -
    pad`` with the filters turned 180 degrees and their channel axes
    swapped: ``im2col`` of dout, then one matrix product. The same sums in
    another order; where FN <= C (see :func:`by_correlation`) its columns
    are no larger than ``dcol`` and it saves col2im's nine passes over the
    image. Into buffers of ``cache``.
    """
    fn, c, fh, fw = W.shape
    n, _, h, w = x_shape
    oh, ow = out_size(h, w, fh, fw, 1, pad)
    q = fh - 1 - pad
    native = k.native
    flipped = _buffer(k, cache, "W_flipped", (c, fn, fh, fw), W.dtype, W)
    native.copyto(flipped, W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    d4 = d.T.reshape(fn, n, oh, ow).transpose(1, 0, 2, 3)
    cols = im2col_into(k, d4, fh, fw, 1, q, cache, "dout ")
    dx = _buffer(k, cache, "dx", (c, n * h * w), d.dtype, d)
    native.matmul(flipped.reshape(c, fn * fh * fw), cols, out=dx)
    return dx.reshape(c, n, h, w).transpose(1, 0, 2, 3)

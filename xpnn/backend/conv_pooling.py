"""The steps of max pooling, each as fast as its backend allows.

:class:`xpnn.layers.conv.Pooling` states the book's formulas (``im2col``,
``max`` and ``argmax`` of each window, the gradient routed to the maximum,
``col2im``) and calls one operation of this module per step. On PyTorch
(float32, float64) the whole pooling is PyTorch's ``max_pool2d_with_indices``
and its backward (:func:`max_pool2d`, :func:`max_pool2d_backward`), whose
indices are the same first maxima as the book's ``argmax``; elsewhere
the windows are the transposed columns of
:func:`xpnn.backend.conv_columns.im2col_into`, ``(C, pool_h*pool_w,
N*out_h*out_w)``, reduced by :func:`max_of_windows` and routed back by
:func:`max_pool_dmax_by_comparison` (NumPy, CuPy: into buffers, no argmax)
or :func:`max_pool_dmax_one_hot` (one-hot, never an index assignment).
"""

from __future__ import annotations

from typing import Any

from xpnn.backend.conv_columns import _buffer, channels_last, padded
from xpnn.backend.namespace import device_of

__all__ = [
    "max_of_windows",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool_dmax_by_comparison",
    "max_pool_dmax_one_hot",
    "routes_by_comparison",
]


def max_pool2d(k: Any, x: Any, ph: int, pw: int, stride: int, pad: int) -> tuple[Any, Any, Any]:
    """Max pooling by PyTorch's ``max_pool2d_with_indices``: ``(out, img, indices)``.

    Over the zero-padded input ``img`` (the book pads with zeros,
    ``max_pool2d`` with -inf), whose indices (the first maximum of each
    window, as ``argmax``) route the gradient in :func:`max_pool2d_backward`.
    No column matrix; channels last, several times faster on the CPU (a copy
    for an input laid out otherwise, as the output of a 1-channel
    convolution is).
    """
    img = channels_last(k.torch, padded(k, x, pad, None))
    out, idx = k.torch.ops.aten.max_pool2d_with_indices(img, [ph, pw], [stride, stride])
    return out, img, idx


def max_pool2d_backward(
    k: Any,
    dout: Any,
    img: Any,
    idx: Any,
    ph: int,
    pw: int,
    stride: int,
    pad: int,
    x_shape: tuple[int, int, int, int],
) -> Any:
    """dx ``x_shape`` by PyTorch's ``max_pool2d_with_indices_backward``.

    Each ``dout`` element goes to the index :func:`max_pool2d` found, the
    windows summed back, in one kernel (dout laid out channels last, as the
    indices); the padding is cut off.
    """
    dout = channels_last(k.torch, dout)  # as the indices
    dx = k.torch.ops.aten.max_pool2d_with_indices_backward(
        dout, img, [ph, pw], [stride, stride], [0, 0], [1, 1], False, idx
    )
    h, w = x_shape[2:]
    return dx if pad == 0 else dx[:, :, pad : pad + h, pad : pad + w]


def max_of_windows(
    k: Any, col: Any, out_shape: tuple[int, int, int, int], cache: dict | None
) -> tuple[Any, Any]:
    """The book's ``max(col, axis=1)`` (and ``argmax``) of windows ``(C, size, N*oh*ow)``.

    Returns ``(maxima, arg_max)``: the maxima as ``(C, N, out_h, out_w)``
    and, where it comes at no cost, each one's first position in its window
    ``(C, N*oh*ow)`` (PyTorch's ``max`` gives both; array-api-strict runs
    ``argmax``); None on NumPy and CuPy, where backward finds the first
    maximum by comparison and ``arg_max`` is made on demand. There the
    maxima go straight into the buffer ``"out"`` of ``cache``, laid out
    ``(N, C, out_h, out_w)``, so that an Affine layer after the pooling
    flattens the samples without a copy.
    """
    xp = k.xp
    n, c, oh, ow = out_shape
    if k.native is not None:
        out = _buffer(k, cache, "out", (n, c, oh, ow), col.dtype, col)
        k.native.max(col.reshape(c, col.shape[1], n, oh, ow), axis=1, out=out.transpose(1, 0, 2, 3))
        return out.transpose(1, 0, 2, 3), None
    if k.torch is not None:
        out, arg_max = k.torch.max(col, dim=1)  # the first maximum's index on ties
    else:
        arg_max = xp.argmax(col, axis=1)
        out = xp.max(col, axis=1)
    return xp.reshape(out, (c, n, oh, ow)), arg_max


def routes_by_comparison(k: Any) -> bool:
    """Whether :func:`max_pool_dmax_by_comparison` routes the gradient (NumPy, CuPy)."""
    return k.native is not None


def max_pool_dmax_by_comparison(k: Any, dout: Any, col: Any, maxima: Any, cache: dict) -> Any:
    """The book's ``dmax`` ``(C, size, N, oh, ow)``: dout where a window element is
    the first maximum, 0 elsewhere (NumPy, CuPy).

    One comparison of each window element with the maximum, into buffers of
    ``cache``: the forward pass computed the maximum only (no argmax), and
    nothing is assigned by index. ``(C, N, out_h, out_w)`` views throughout:
    dout and the maxima in any layout.
    """
    native = k.native
    c, size = col.shape[0], col.shape[1]
    n, oh, ow = maxima.shape[1:]
    d = k.xp.permute_dims(dout, (1, 0, 2, 3))
    col = col.reshape(c, size, n, oh, ow)
    hot = _buffer(k, cache, "hot", (c, n, oh, ow), k.xp.bool, dout)
    found = _buffer(k, cache, "found", (c, n, oh, ow), k.xp.bool, dout)
    dmax = _buffer(k, cache, "dmax", (c, size, n, oh, ow), dout.dtype, dout)
    for p in range(size):
        native.equal(col[:, p], maxima, out=hot)
        if p:
            native.greater(hot, found, out=hot)  # and no maximum before it
        native.multiply(hot, d, out=dmax[:, p])
        if p < size - 1:
            if p:
                native.logical_or(found, hot, out=found)
            else:
                native.copyto(found, hot)
    return dmax


def max_pool_dmax_one_hot(
    k: Any, dout: Any, arg_max: Any, size: int, positions: Any
) -> tuple[Any, Any]:
    """The book's ``dmax`` ``(C, size, N*oh*ow)`` as a one-hot comparison with ``arg_max``.

    ``dmax[:, p] = (arg_max == p) * dout``: element-wise, portable to every
    namespace (never an index assignment).
    Returns ``(dmax, positions)``, ``positions`` being ``arange(size)`` on
    dout's device, made once and passed back in by the caller.
    """
    xp = k.xp
    c, rows = arg_max.shape[0], arg_max.shape[1]
    if positions is None or positions.shape[1] != size or device_of(positions) != device_of(dout):
        positions = xp.reshape(
            xp.arange(size, dtype=arg_max.dtype, device=device_of(dout)), (1, size, 1)
        )
    arg = xp.reshape(arg_max, (c, 1, rows))
    d = xp.reshape(xp.permute_dims(dout, (1, 0, 2, 3)), (c, 1, rows))
    return xp.astype(arg == positions, dout.dtype) * d, positions

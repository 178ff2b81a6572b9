"""The column matrix of a convolution: im2col and col2im, fast on each backend.

Owns :func:`im2col_into` and :func:`col2im_into` (the book's ``im2col`` and
``col2im`` of :mod:`xpnn.layers.conv`, checked there, in the transposed
layout the layers multiply), the zero padding they read (:func:`padded`)
and the channels-last layout PyTorch's kernels run fastest in
(:func:`channels_last`).

The columns are built transposed, ``(C*fh*fw, N*out_h*out_w)`` laid out
``(C, fh, fw, N, out_h, out_w)``: each filter element's plane of windows is
then one strided slice of the image, copied with long contiguous runs, and
the layers multiply the transposes (``W @ col.T`` rather than ``col @
W.T``), which gives each filter's output planes contiguous and takes a
third to a fifth of the time of the book's layout on NumPy. On NumPy and
CuPy the arrays go into buffers of a ``cache`` dict reused from step to step
(:meth:`xpnn.backend.Ops.buffer`), so a training step allocates no column-
or image-sized array after the first; elsewhere every call makes new arrays.

Arguments are checked by the callers: sizes are positive ints, the windows
fit the padded input.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend.namespace import device_of

__all__ = ["channels_last", "col2im_into", "im2col_into", "out_size", "padded"]


def out_size(h: int, w: int, fh: int, fw: int, stride: int, pad: int) -> tuple[int, int]:
    """The book's ``(out_h, out_w)`` of ``fh x fw`` windows over an ``h x w`` image."""
    return (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1


def _buffer(k: Any, cache: dict | None, name: str, shape: tuple, dtype: Any, like: Any) -> Any:
    """A buffer reused from ``cache`` (NumPy, CuPy), else None."""
    if cache is None:
        return None
    return k.buffer(cache, name, shape, dtype, like)


def _channels_first(k: Any, x: Any) -> bool:
    """Whether ``x`` (N, C, H, W) is a transposed view of a C-ordered (C, N, H, W) array.

    The convolution layers return their outputs so (NumPy, CuPy): the next
    layer then copies along contiguous runs.
    """
    return k.native is not None and bool(x.transpose(1, 0, 2, 3).flags.c_contiguous)


def channels_last(torch: Any, x: Any) -> Any:
    """``x`` (N, C, H, W) laid out channels last: ``x`` itself if it is, else a copy.

    The layout oneDNN's CPU kernels run fastest (several times faster for
    ``max_pool2d``), still ``(N, C, H, W)`` to the user. Strides, not only
    the layout, must say so: PyTorch's kernels answer a one-channel input in
    the layout its strides suggest.
    """
    if x.stride(1) == 1 and x.is_contiguous(memory_format=torch.channels_last):
        return x
    return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)


def padded(k: Any, x: Any, pad: int, cache: dict | None, prefix: str = "") -> Any:
    """``x`` with ``pad`` zeros around its last two axes (``x`` itself for 0).

    On NumPy and CuPy the padded copy goes into a buffer zeroed once (the
    border stays zero) and keeps ``x``'s memory order (a channels-first
    ``x`` gets a channels-first buffer), so the copy runs along contiguous
    rows.
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


def im2col_into(
    k: Any,
    x: Any,
    fh: int,
    fw: int,
    stride: int,
    pad: int,
    cache: dict | None = None,
    prefix: str = "",
) -> Any:
    """The book's ``im2col(x, fh, fw, stride, pad)`` transposed: ``(C*fh*fw, N*out_h*out_w)``.

    Laid out ``(C, fh, fw, N, out_h, out_w)``: each filter element's plane
    of windows is a strided slice of the image copied whole (long inner runs
    along ``out_w``), and the matrix products of the layers take this
    transpose as it is (a third to a fifth of the time of the book's layout
    on NumPy). Faster per backend: on NumPy and CuPy one copy out of a
    strided view of the (padded) image into a buffer of ``cache`` (named
    with ``prefix``); on PyTorch ``Tensor.unfold`` views copied once;
    elsewhere one strided slice of the image per filter element.
    """
    xp = k.xp
    n, c = x.shape[0], x.shape[1]
    oh, ow = out_size(x.shape[2], x.shape[3], fh, fw, stride, pad)
    img = padded(k, x, pad, cache, prefix)
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


def col2im_into(
    k: Any,
    col_t: Any,
    input_shape: tuple[int, int, int, int],
    fh: int,
    fw: int,
    stride: int,
    pad: int,
    cache: dict | None = None,
) -> Any:
    """The book's ``col2im`` of the transposed columns ``col_t`` ``(C*fh*fw, N*out_h*out_w)``.

    Sums each window back into an image ``input_shape`` (overlaps add up,
    the padding is cut off). Faster per backend: on PyTorch (floats) one
    ``torch.nn.functional.fold``; on NumPy and CuPy each filter element's
    plane adds (``out=``) into a strided slice of a ``(C, N, H, W)`` buffer
    of ``cache`` along contiguous runs -- copied, not added, where windows
    never overlap, with no zeroing where they also cover the image -- and the
    result, a transposed view, is what the layers' next backward step reads
    fastest; elsewhere the same slices added into a new array.
    """
    xp = k.xp
    n, c, h, w = input_shape
    oh, ow = out_size(h, w, fh, fw, stride, pad)
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

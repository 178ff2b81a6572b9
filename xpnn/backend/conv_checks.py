"""The refusals of :mod:`xpnn.layers.conv`: window sizes, image shapes, dtypes.

Owns the checks that ``im2col``, ``col2im``, ``Convolution`` and ``Pooling``
run before they change anything, kept here so that the layers' code states
the book's math: each raises a TypeError or ValueError naming the sizes,
shapes or dtypes it got and the fix. Plain Python on shapes and dtypes: no
array is read, so no host sync. :func:`window_sample_shape` and
:func:`window_scratch` give the layers' sizes for one sample from shapes alone,
for a model's check that its layers chain (:meth:`xpnn.layers.Layer.output_sample_shape`).
"""

from __future__ import annotations

import numbers
from typing import Any

from xpnn.backend.dtypes import _dtype_name
from xpnn.backend.namespace import device_of, get_namespace

__all__ = [
    "bias_array",
    "check_conv_input",
    "check_conv_params",
    "check_float",
    "col2im_args",
    "checked_out_size",
    "config_pad",
    "int_arg",
    "window_args",
    "window_sample_shape",
    "window_scratch",
]


def int_arg(value: Any, who: str, minimum: int) -> int:
    """``value`` checked to be an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who} must be an int, got {type(value).__name__}")
    if value < minimum:
        what = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{who} must be {what}, got {value}")
    return int(value)


def window_args(
    filter_h: Any, filter_w: Any, stride: Any, pad: Any, names: tuple[str, str]
) -> tuple[int, int, int, int]:
    """Window height and width (named ``names``) and stride checked positive, pad >= 0."""
    return (
        int_arg(filter_h, names[0], 1),
        int_arg(filter_w, names[1], 1),
        int_arg(stride, "stride", 1),
        int_arg(pad, "pad", 0),
    )


def config_pad(cls: type, config: Any) -> int:
    """A layer config's ``pad``; from a file, a ValueError as for every layer's config."""
    try:
        return int_arg(config["pad"], "pad", 0)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{cls.__name__} config: {exc}") from None


def checked_out_size(
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


def window_sample_shape(
    shape: tuple[int, ...], window: tuple[int, int, int, int], who: str, channels: int = 0
) -> tuple[int, int]:
    """``(out_h, out_w)`` of ``window`` ``(fh, fw, stride, pad)`` over samples ``(C, H, W)``.

    From shapes alone, as a model checks that its layers chain (Python ints:
    no overflow, whatever sizes a file gives).

    Raises:
        ValueError: ``shape`` is not 3-D, its channels are not ``channels``
            (when given), the window does not fit the padded input, or the
            stride exceeds the padded input on both axes (it would take one
            window, as a stride of the larger side does, and the runtime's
            byte strides would overflow).
    """
    fh, fw, stride, pad = window
    if len(shape) != 3:
        raise ValueError(f"{who} takes images, samples of shape (C, H, W), got samples of {shape}")
    if channels and shape[0] != channels:
        raise ValueError(
            f"{who} filters take {channels} channels, got samples of shape {shape} "
            f"({shape[0]} channels)"
        )
    h, w = shape[1] + 2 * pad, shape[2] + 2 * pad
    if h < fh or w < fw:
        raise ValueError(
            f"{who}: a {fh}x{fw} window does not fit samples of shape {shape} padded by {pad} "
            f"({h}x{w}); use a smaller window or more padding"
        )
    if stride > max(h, w):
        raise ValueError(
            f"{who}: stride {stride} exceeds the padded input {h}x{w} on both axes (it takes "
            f"one window, as stride {max(h, w)} does); use a stride of at most {max(h, w)}"
        )
    return (h - fh) // stride + 1, (w - fw) // stride + 1


def window_scratch(shape: tuple[int, ...], window: tuple[int, int, int, int]) -> int:
    """Elements per sample that ``im2col`` makes for ``window`` over samples ``(C, H, W)``
    that fit it (:func:`window_sample_shape`): the padded copy and the columns."""
    fh, fw, _, pad = window
    c, h, w = shape
    out_h, out_w = window_sample_shape(shape, window, "im2col")
    padded = c * (h + 2 * pad) * (w + 2 * pad) if pad else 0
    return padded + c * fh * fw * out_h * out_w


def col2im_args(
    col: Any, input_shape: Any, filter_h: Any, filter_w: Any, stride: Any, pad: Any
) -> tuple[tuple[int, ...], int, int, int, int]:
    """``(input_shape, fh, fw, stride, pad)`` of a ``col2im`` call, checked to fit ``col``."""
    fh, fw, stride, pad = window_args(filter_h, filter_w, stride, pad, ("filter_h", "filter_w"))
    shape = tuple(input_shape)
    if len(shape) == 4:
        shape = tuple(int_arg(d, "input_shape entries", 0) for d in shape)
    oh, ow = checked_out_size(shape, fh, fw, stride, pad, "col2im")
    want = (shape[0] * oh * ow, shape[1] * fh * fw)
    if tuple(col.shape) != want:
        raise ValueError(
            f"col2im: col of shape {tuple(col.shape)} does not fit input_shape {shape} with "
            f"{fh}x{fw} windows, stride {stride}, pad {pad}: expected {want}"
        )
    return shape, fh, fw, stride, pad


def bias_array(W: Any, b: Any) -> Any:
    """A Convolution's biases: ``b`` itself, or ``(FN,)`` of one number in W's dtype and device.

    The book's ``apply_filter.py`` passes ``b = 0``, which its ``+ self.b``
    broadcasts to every filter; this makes that broadcast an array, so the
    layer keeps a ``(FN,)`` parameter and its gradient.

    Raises:
        TypeError: W or b is neither an array nor (b) a real number.
    """
    if isinstance(b, numbers.Real) and not isinstance(b, bool) and hasattr(W, "shape"):
        xp = get_namespace(W)
        b = xp.full((W.shape[0],), float(b), dtype=W.dtype, device=device_of(W))
    for name, value in (("W", W), ("b", b)):
        if not hasattr(value, "dtype"):
            raise TypeError(
                f"Convolution {name} must be a floating-point array (b: or one number), "
                f"got {type(value).__name__}"
            )
    return b


def check_float(k: Any, a: Any, who: str) -> None:
    """Refuse an array ``a`` that is not real floating point."""
    if not k.isdtype(a.dtype, "real floating"):
        raise TypeError(
            f"{who} needs floating-point inputs, got {_dtype_name(a.dtype)}; convert them, "
            'e.g. with xpnn.asarray(x, dtype="float32")'
        )


def check_conv_params(k: Any, W: Any, b: Any, stride: Any, pad: Any) -> tuple[int, int]:
    """``(stride, pad)`` of a Convolution with filters ``W`` and biases ``b``, checked."""
    for name, a in (("W", W), ("b", b)):
        check_float(k, a, f"Convolution {name}")
    if W.ndim != 4 or b.ndim != 1 or b.shape[0] != W.shape[0]:
        raise ValueError(
            "Convolution needs W of shape (FN, C, FH, FW) and b of shape (FN,), got W "
            f"{tuple(W.shape)} and b {tuple(b.shape)}"
        )
    if 0 in tuple(W.shape):
        raise ValueError(f"Convolution W must have no empty axis, got shape {tuple(W.shape)}")
    return int_arg(stride, "stride", 1), int_arg(pad, "pad", 0)


def check_conv_input(k: Any, x: Any, W: Any, stride: int, pad: int) -> tuple[int, int, int]:
    """``(N, out_h, out_w)`` of images ``x`` checked to fit Convolution's filters ``W``.

    Raises:
        TypeError: ``x`` is not floating point, or not of W's dtype (NumPy
            would promote to the wider one, PyTorch fail in its kernel).
        ValueError: ``x`` is not 4-D, the filters do not fit the padded
            input, or its channels are not W's.
    """
    check_float(k, x, "Convolution")
    if x.dtype != W.dtype:
        want = _dtype_name(W.dtype)
        raise TypeError(
            f"Convolution computes in its filters' dtype: W is {want}, x is "
            f'{_dtype_name(x.dtype)}; convert x, e.g. with xpnn.asarray(x, dtype="{want}")'
        )
    shape = tuple(x.shape)
    _, c, fh, fw = W.shape
    out_h, out_w = checked_out_size(shape, fh, fw, stride, pad, "Convolution")
    if shape[1] != c:
        raise ValueError(
            f"Convolution filters W {tuple(W.shape)} take {c} channels, got x of shape "
            f"{shape} ({shape[1]} channels)"
        )
    return shape[0], out_h, out_w

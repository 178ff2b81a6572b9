"""What ``Trainer.fit`` checks before anything changes: the data and the settings.

``fit`` (and the book form's constructor) refuses bad data and settings
before it touches the model, the optimizer or any generator, with a message
that names the shapes, dtypes and values. The checks here look only at
shapes, dtypes and Python values: they do no device work. The one check that
needs the device, the range of integer labels, reads it in
:meth:`xpnn.training.trainer.Trainer._check_data` (one small read per data
set and fit) and hands the numbers to :func:`check_label_range`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from xpnn.backend import _dtype_name

__all__ = [
    "check_data",
    "check_label_range",
    "check_model",
    "check_samples",
    "check_settings",
    "check_validation_samples",
]


def check_model(model: Any) -> bool:
    """Whether ``model`` is layered (``forward``/``backward``), else chapter-4 style.

    Raises:
        TypeError: It is neither (no ``loss``/``gradient`` either).
    """
    layered = hasattr(model, "forward") and hasattr(model, "backward")
    if not layered and not (hasattr(model, "gradient") and hasattr(model, "loss")):
        raise TypeError(
            f"{type(model).__name__} is not a model: it needs forward(x, t) and backward() "
            "(vol. 2 style) or loss(x, t) and gradient(x, t) (chapter-4 style)"
        )
    return layered


def check_settings(
    data_size: int, max_epoch: Any, batch_size: Any, eval_interval: Any, max_grad: Any
) -> None:
    """Check ``fit``'s counts and ``max_grad`` against ``data_size`` samples.

    Raises:
        ValueError: A count that is not a positive int, a ``batch_size``
            larger than the data, a ``max_grad`` that is not a positive
            finite number.
    """
    for name, value in (
        ("max_epoch", max_epoch),
        ("batch_size", batch_size),
        ("eval_interval", eval_interval),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if batch_size > data_size:
        raise ValueError(f"batch_size {batch_size} is larger than the data ({data_size})")
    if max_grad is not None and (
        isinstance(max_grad, bool)
        or not isinstance(max_grad, numbers.Real)
        or not (math.isfinite(max_grad) and max_grad > 0)
    ):
        raise ValueError(f"max_grad must be a positive number, got {max_grad!r}")


def check_data(model: Any, xp: Any, x: Any, t: Any, xname: str, tname: str) -> tuple[int, Any]:
    """Check the shapes and dtypes of a data set ``(x, t)`` for ``model``.

    ``x`` must be floating point (integer or boolean one-hot too for a model
    whose ``one_hot_inputs`` is True: vol. 2's word2vec models), ``(N,
    features)`` or ``(N, ...)`` samples that fit the model's
    ``input_size``; ``t`` ``(N,)`` integer labels or ``(N, classes)``
    one-hot, as wide as the model's ``output_size``; N at least 1.

    Returns:
        ``(N, classes)``: the classes are the model's ``output_size``, else
        the one-hot width, else None (integer labels: the largest label
        decides, see :func:`check_label_range`).

    Raises:
        ValueError: A shape that does not fit, or an empty data set (the
            message names both shapes).
        TypeError: ``x`` is not floating point, or ``(N,)`` labels are not
            integers.
    """
    if x.ndim < 2:
        raise ValueError(
            f"{xname} must be 2-D (samples, features) or more (samples, ...), such as "
            f"images (samples, channels, height, width), got shape {tuple(x.shape)}"
        )
    # Checked before any reduction over the samples: the label range of no
    # labels (xp.min) fails with the library's own words, not ours.
    empty = [name for name, a in ((xname, x), (tname, t)) if a.ndim >= 1 and a.shape[0] == 0]
    if empty:
        raise ValueError(
            f"the data set is empty: {xname} has shape {tuple(x.shape)} and {tname} has shape "
            f"{tuple(t.shape)} (no samples in {' and '.join(empty)}); it needs at least one "
            "labelled sample"
        )
    # vol. 2's word2vec models take the book's int32 one-hot words as they are.
    one_hot = getattr(model, "one_hot_inputs", False) and (
        xp.isdtype(x.dtype, "integral") or xp.isdtype(x.dtype, "bool")
    )
    if not (one_hot or xp.isdtype(x.dtype, "real floating")):
        raise TypeError(
            f"{xname} must be floating point, got {_dtype_name(x.dtype)}; convert it with "
            f'xpnn.asarray(x, dtype="float32") (or the model\'s dtype)'
        )
    check_samples(model, x, xname)
    n = x.shape[0]
    if t.ndim not in (1, 2) or t.shape[0] != n:
        raise ValueError(
            f"{xname} has {n} samples (shape {tuple(x.shape)}) but {tname} has shape "
            f"{tuple(t.shape)}; labels must be ({n},) integers or ({n}, classes) one-hot"
        )
    classes = getattr(model, "output_size", None)
    if t.ndim == 2 and classes is not None and t.shape[1] != classes:
        raise ValueError(
            f"{tname} is one-hot with {t.shape[1]} classes (shape {tuple(t.shape)}) but "
            f"{type(model).__name__} has {classes} outputs"
        )
    if t.ndim == 1 and not xp.isdtype(t.dtype, "integral"):
        raise TypeError(
            f"{tname} of shape ({n},) must hold integer labels, got {_dtype_name(t.dtype)}"
        )
    return n, classes if classes is not None or t.ndim == 1 else t.shape[1]


def check_label_range(model: Any, tname: str, low: int, high: int, classes: Any) -> int:
    """Check integer labels from ``low`` to ``high`` against the model's classes.

    Returns:
        The classes: ``classes`` if known, else ``high + 1``.

    Raises:
        ValueError: A negative label, or one the model has no output for.
    """
    if low < 0 or (classes is not None and high >= classes):
        raise ValueError(
            f"{tname} holds labels from {low} to {high}, outside 0..{(classes or 0) - 1} "
            f"for {type(model).__name__} with {classes} outputs"
        )
    return classes if classes is not None else high + 1


def check_samples(model: Any, x: Any, xname: str) -> None:
    """Check ``x``'s samples against the model's ``input_size``, if it has one.

    An int is the features of 2-D ``(N, features)`` rows; a tuple the
    shape of one sample, as ``LayeredNet(input_size=(1, 28, 28))`` takes.
    """
    name, shape = type(model).__name__, tuple(x.shape)
    size = getattr(model, "input_size", None)
    if isinstance(size, (tuple, list)):
        if shape[1:] != tuple(size):
            raise ValueError(
                f"{xname} has samples of shape {shape[1:]} (shape {shape}) but {name} "
                f"expects samples of shape {tuple(size)}"
            )
    elif size is not None and x.ndim != 2:
        raise ValueError(
            f"{xname} has shape {shape} but {name} expects ({shape[0]}, {size}) rows of "
            f"{size} features: flatten the samples (load_mnist(flatten=True), or "
            f"xp.reshape(x, ({shape[0]}, -1))) or use a model that takes them as they are"
        )
    elif size is not None and x.shape[1] != size:
        raise ValueError(
            f"{xname} has {x.shape[1]} features (shape {shape}) but {name} expects {size}"
        )


def check_validation_samples(x: Any, x_val: Any) -> None:
    """Check that the validation samples have the training samples' shape."""
    if tuple(x_val.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(
            f"x_test has samples of shape {tuple(x_val.shape[1:])} (shape "
            f"{tuple(x_val.shape)}) but x has {tuple(x.shape[1:])}"
        )

"""Activation and loss functions (the book's ``common/functions.py``).

Every function takes its array namespace from its inputs, so it runs on the
backend and device the data lives on, and returns arrays there (losses are
0-d arrays: read them on the host with ``float(xpnn.to_numpy(loss))`` only
when you need the number, never inside a training step).

Shapes: ``x``/``y`` are ``(C,)`` for one sample or ``(N, C)`` for a batch.
Labels ``t`` are either one-hot with the shape of ``y``, or integer class
indices of shape ``()``/``(N,)``.

Half-precision inputs (float16, bfloat16) are computed on in float32 by
softmax and the losses, as PyTorch's autocast does: softmax returns the
input's dtype (rounded once at the end), the losses a float32 0-d array.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import _dtype_name, get_namespace, note_selection_unused, ops

__all__ = [
    "check_labels",
    "cross_entropy_error",
    "identity_function",
    "mean_squared_error",
    "relu",
    "relu_grad",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "softmax_cross_entropy",
    "softmax_loss",
    "step_function",
    "sum_squared_error",
]

#: The book adds this to y before log() so that log(0) never happens.
CEE_DELTA = 1e-7


def identity_function(x: Any) -> Any:
    """Return ``x`` unchanged (the output activation for regression)."""
    note_selection_unused(x)
    return x


def step_function(x: Any) -> Any:
    """1 where ``x > 0``, else 0, in the dtype of ``x``."""
    note_selection_unused(x)
    xp = get_namespace(x)
    return xp.astype(x > 0, x.dtype)


def sigmoid(x: Any) -> Any:
    """Logistic function 1 / (1 + exp(-x)), element-wise, in the float dtype of ``x``.

    Computed as written (:meth:`xpnn.Ops.sigmoid`): within a few ulp of the
    true value wherever that is a normal float, tiny results for negative
    ``x`` included. Below about -88.7 (float32) or -709.8 (float64) exp(-x)
    overflows to inf and the result is 0, without a warning. NaN stays NaN.
    """
    note_selection_unused(x)
    return ops(x).sigmoid(x)  # one formula for the function and the layer


def sigmoid_grad(x: Any) -> Any:
    """Derivative of :func:`sigmoid` at ``x``: (1 - s) * s."""
    note_selection_unused(x)
    s = sigmoid(x)
    return (1 - s) * s


def relu(x: Any) -> Any:
    """max(0, x), element-wise; NaN stays NaN (as torch.relu and np.maximum)."""
    note_selection_unused(x)
    xp = get_namespace(x)
    # x <= 0 is False for NaN, which is thus kept; where(x > 0, x, 0) made it 0.
    return xp.where(x <= 0, xp.zeros_like(x), x)


def relu_grad(x: Any) -> Any:
    """Derivative of :func:`relu`: 1 where ``x >= 0`` (as the book), else 0."""
    note_selection_unused(x)
    xp = get_namespace(x)
    return xp.astype(x >= 0, x.dtype)


def softmax(x: Any) -> Any:
    """Softmax over the last axis, for one sample ``(C,)`` or a batch ``(N, C)``.

    The row maximum is subtracted first, so large scores do not overflow
    (where ``x - max`` overflows to -inf, exp gives the right 0). An empty
    batch ``(0, C)`` gives an empty result. Half-precision ``x`` (float16,
    bfloat16) is computed on in float32 and the result rounded once to x's
    dtype.

    Raises:
        TypeError: ``x`` is not floating point.
        ValueError: ``x`` has no classes (its last axis is empty).
    """
    note_selection_unused(x)
    _check_scores(x, "softmax", batch=False)
    return ops(x).softmax(x)


def mean_squared_error(y: Any, t: Any) -> Any:
    """The book's E = 1/2 * sum((y - t)^2), summed over all elements.

    Args:
        y: Network output, any shape, float.
        t: Target of the same shape (one-hot for classification).

    Returns:
        A 0-d array in the dtype of ``y`` (float32 for half ``y``).
    """
    note_selection_unused(y)
    xp = get_namespace(y, t)
    if y.shape != t.shape:
        raise ValueError(f"y and t must have the same shape, got {y.shape} and {t.shape}")
    y = ops(y).widen(y)  # half: the squares summed in float32
    d = y - xp.astype(t, y.dtype)  # integer or float64 t must not promote float32 y
    return 0.5 * xp.sum(d * d)


#: The book calls mean_squared_error "sum of squared errors" too.
sum_squared_error = mean_squared_error


def check_labels(t: Any, num_classes: int, who: str = "labels") -> None:
    """Check that ``t`` holds class indices ``0..num_classes-1``, where that is free.

    The dtype is always checked. The values are read only where they lie in
    host memory (NumPy, PyTorch on the CPU, array-api-strict on its CPU
    device). On a device (CuPy, PyTorch CUDA, array-api-strict's simulated
    devices) reading them would be a host synchronisation, so nothing is
    read: there the losses give a NaN loss, and SoftmaxWithLoss a NaN
    gradient row, for an invalid label instead. Negative labels are out of
    range on every backend (they do not count from the end).

    Args:
        t: Integer labels, any shape (usually ``(N,)``).
        num_classes: The number of classes C, a positive int.
        who: What the labels are, for the error message.

    Raises:
        TypeError: ``t`` has no integer dtype.
        ValueError: A label is outside ``0..num_classes-1`` (where read): the
            message names the range found and the range allowed.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    ops(t).check_labels(t, num_classes, who)


def _check_scores(y: Any, who: str, *, batch: bool = True) -> None:
    """Refuse scores or probabilities ``(C,)``/``(N, C)`` a function cannot use.

    ``batch``: the caller averages over the samples, so N must be > 0.
    """
    if not ops(y).isdtype(y.dtype, "real floating"):
        raise TypeError(
            f"{who} needs floating-point scores, got {_dtype_name(y.dtype)}; "
            'convert them, e.g. with xpnn.asarray(x, dtype="float32")'
        )
    if batch and y.ndim not in (1, 2):
        raise ValueError(f"{who} needs y of shape (C,) or (N, C), got shape {tuple(y.shape)}")
    if y.ndim >= 1 and y.shape[-1] == 0:
        raise ValueError(f"{who} needs at least one class, got shape {tuple(y.shape)}")
    if batch and y.ndim == 2 and y.shape[0] == 0:
        raise ValueError(
            f"{who} of an empty batch is undefined (a mean over 0 samples): "
            f"got shape {tuple(y.shape)}"
        )


def _as_batch(y: Any, t: Any, xp: Any) -> tuple[Any, Any]:
    """Reshape one sample to a batch of one and one-hot labels to indices.

    Returns ``y`` as ``(N, C)`` and ``t`` as integer indices ``(N,)`` in
    ``0..C-1`` (checked where that is free, see :func:`check_labels`).
    """
    if y.ndim == 1:
        y = xp.reshape(y, (1, y.shape[0]))
        t = xp.reshape(t, (1, -1)) if t.ndim == 1 else xp.reshape(t, (1,))
    if y.ndim != 2:
        raise ValueError(f"y must be (C,) or (N, C), got shape {y.shape}")
    if t.shape == y.shape:  # one-hot -> class index, as the book does
        t = xp.argmax(t, axis=1)
    elif t.shape != (y.shape[0],):
        raise ValueError(
            f"t must be one-hot {y.shape} or integer labels ({y.shape[0]},), got shape {t.shape}"
        )
    else:
        check_labels(t, y.shape[1], "integer labels")
    return y, t


def _pick(xp: Any, a: Any, t: Any) -> Any:
    """``a[i, t[i]]`` for each row i: (N, C), (N,) -> (N,), portably.

    ``t`` comes from :func:`_as_batch`, which checked it; an invalid label
    that could not be read (on a device) picks NaN.
    """
    return ops(a, t).pick(a, t, checked=True)


def cross_entropy_error(y: Any, t: Any) -> Any:
    """The book's cross-entropy error, averaged over the batch.

    E = -1/N * sum_n log(y[n, t_n] + 1e-7)

    Args:
        y: Probabilities (softmax output), ``(C,)`` or ``(N, C)``.
        t: One-hot labels of the shape of ``y``, or integer labels ``()`` /
            ``(N,)``.

    Returns:
        A 0-d array in the dtype of ``y`` (float32 for half ``y``: the log
        and the sum in float32).

    Raises:
        TypeError: ``y`` is not floating point, or labels are not integers.
        ValueError: Shapes do not fit, the batch is empty, or an integer
            label is outside ``0..C-1`` (see :func:`check_labels`: on a
            device the loss is NaN instead).
    """
    note_selection_unused(y)
    xp = get_namespace(y, t)
    _check_scores(y, "cross_entropy_error")
    y, t = _as_batch(ops(y).widen(y), t, xp)
    return -xp.sum(xp.log(_pick(xp, y, t) + CEE_DELTA)) / y.shape[0]


def softmax_loss(x: Any, t: Any) -> Any:
    """The book's ``softmax_loss``: ``cross_entropy_error(softmax(x), t)``, composed as it is.

    Vol. 1's ``common/functions.py`` has it; :func:`softmax_cross_entropy`
    computes the same loss fused and stable (no ``1e-7``). Same arguments and
    result as :func:`cross_entropy_error`.
    """
    return cross_entropy_error(softmax(x), t)


def softmax_cross_entropy(scores: Any, t: Any) -> Any:
    """Softmax followed by cross-entropy, fused and numerically stable.

    Uses log-softmax (log-sum-exp), so extreme scores give finite losses
    where ``cross_entropy_error(softmax(scores), t)`` would take log(0). It
    has no 1e-7 delta, so it differs from that composition by up to about
    1e-7 / y per sample. One-hot ``t`` may also hold soft targets (rows
    summing to 1): the loss is then -sum(t * log softmax(scores)) / N.

    Args:
        scores: Unnormalised scores, ``(C,)`` or ``(N, C)``.
        t: One-hot (or soft) targets of that shape, or integer labels.

    Returns:
        A 0-d array in the dtype of ``scores`` (float32 for half
        ``scores``, which are computed on in float32).

    Raises:
        TypeError: ``scores`` are not floating point, or labels are not
            integers.
        ValueError: Shapes do not fit, the batch is empty, or an integer
            label is outside ``0..C-1`` (see :func:`check_labels`: on a
            device the loss is NaN instead).
    """
    note_selection_unused(scores)
    xp = get_namespace(scores, t)
    _check_scores(scores, "softmax_cross_entropy")
    scores = ops(scores).widen(scores)
    if scores.ndim == 1:
        scores = xp.reshape(scores, (1, scores.shape[0]))
        t = xp.reshape(t, (1, -1)) if t.ndim == 1 else xp.reshape(t, (1,))
    n = scores.shape[0]
    if t.shape == scores.shape and xp.isdtype(t.dtype, "real floating"):
        log_p = _log_softmax(xp, scores)
        t = xp.astype(t, log_p.dtype)
        # Where t is 0 the term is 0, even if log_p is -inf there (scores
        # spanning more than the float range): 0 * -inf would be NaN.
        return -xp.sum(t * xp.where(t != 0, log_p, 0.0)) / n
    _, t = _as_batch(scores, t, xp)  # the labels are checked before any work
    return -xp.sum(_pick(xp, _log_softmax(xp, scores), t)) / n


def _log_softmax(xp: Any, scores: Any) -> Any:
    """log(softmax(scores)) over the rows of ``(N, C)`` scores, by log-sum-exp."""
    shifted = scores - xp.max(scores, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))

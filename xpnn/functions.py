"""Activation and loss functions (the book's ``common/functions.py``).

Every function takes its array namespace from its inputs, so it runs on the
backend and device the data lives on, and returns arrays there (losses are
0-d arrays: read them on the host with ``float(xpnn.to_numpy(loss))`` only
when you need the number, never inside a training step).

Shapes: ``x``/``y`` are ``(C,)`` for one sample or ``(N, C)`` for a batch.
Labels ``t`` are either one-hot with the shape of ``y``, or integer class
indices of shape ``()``/``(N,)``.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import get_namespace, ops

__all__ = [
    "cross_entropy_error",
    "identity_function",
    "mean_squared_error",
    "relu",
    "relu_grad",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "softmax_cross_entropy",
    "step_function",
    "sum_squared_error",
]

#: The book adds this to y before log() so that log(0) never happens.
CEE_DELTA = 1e-7


def identity_function(x: Any) -> Any:
    """Return ``x`` unchanged (the output activation for regression)."""
    return x


def step_function(x: Any) -> Any:
    """1 where ``x > 0``, else 0, in the dtype of ``x``."""
    xp = get_namespace(x)
    return xp.astype(x > 0, x.dtype)


def sigmoid(x: Any) -> Any:
    """Logistic function 1 / (1 + exp(-x)), element-wise.

    Computed as 0.5 * tanh(0.5 * x) + 0.5, the same function: it never
    overflows (exp(-x) would for x < -88 in float32) and takes three passes.
    """
    return ops(x).sigmoid(x)  # one formula for the function and the layer


def sigmoid_grad(x: Any) -> Any:
    """Derivative of :func:`sigmoid` at ``x``: (1 - s) * s."""
    s = sigmoid(x)
    return (1 - s) * s


def relu(x: Any) -> Any:
    """max(0, x), element-wise."""
    xp = get_namespace(x)
    return xp.where(x > 0, x, xp.zeros_like(x))


def relu_grad(x: Any) -> Any:
    """Derivative of :func:`relu`: 1 where ``x >= 0`` (as the book), else 0."""
    xp = get_namespace(x)
    return xp.astype(x >= 0, x.dtype)


def softmax(x: Any) -> Any:
    """Softmax over the last axis, for one sample ``(C,)`` or a batch ``(N, C)``.

    The row maximum is subtracted first, so large scores do not overflow.
    """
    xp = get_namespace(x)
    e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def mean_squared_error(y: Any, t: Any) -> Any:
    """The book's E = 1/2 * sum((y - t)^2), summed over all elements.

    Args:
        y: Network output, any shape, float.
        t: Target of the same shape (one-hot for classification).

    Returns:
        A 0-d array in the dtype of ``y``.
    """
    xp = get_namespace(y, t)
    if y.shape != t.shape:
        raise ValueError(f"y and t must have the same shape, got {y.shape} and {t.shape}")
    d = y - xp.astype(t, y.dtype)  # integer or float64 t must not promote float32 y
    return 0.5 * xp.sum(d * d)


#: The book calls mean_squared_error "sum of squared errors" too.
sum_squared_error = mean_squared_error


def _as_batch(y: Any, t: Any, xp: Any) -> tuple[Any, Any]:
    """Reshape one sample to a batch of one and one-hot labels to indices.

    Returns ``y`` as ``(N, C)`` and ``t`` as integer indices ``(N,)``.
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
    elif not xp.isdtype(t.dtype, "integral"):
        raise TypeError(f"integer labels must have an integer dtype, got {t.dtype}")
    return y, t


def _pick(xp: Any, a: Any, t: Any) -> Any:
    """``a[i, t[i]]`` for each row i: (N, C), (N,) -> (N,), portably."""
    return ops(a, t).pick(a, t)


def cross_entropy_error(y: Any, t: Any) -> Any:
    """The book's cross-entropy error, averaged over the batch.

    E = -1/N * sum_n log(y[n, t_n] + 1e-7)

    Args:
        y: Probabilities (softmax output), ``(C,)`` or ``(N, C)``.
        t: One-hot labels of the shape of ``y``, or integer labels ``()`` /
            ``(N,)``.

    Returns:
        A 0-d array in the dtype of ``y``.
    """
    xp = get_namespace(y, t)
    y, t = _as_batch(y, t, xp)
    return -xp.sum(xp.log(_pick(xp, y, t) + CEE_DELTA)) / y.shape[0]


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
        A 0-d array in the dtype of ``scores``.
    """
    xp = get_namespace(scores, t)
    if scores.ndim == 1:
        scores = xp.reshape(scores, (1, scores.shape[0]))
        t = xp.reshape(t, (1, -1)) if t.ndim == 1 else xp.reshape(t, (1,))
    shifted = scores - xp.max(scores, axis=-1, keepdims=True)
    log_p = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
    n = scores.shape[0]
    if t.shape == scores.shape and xp.isdtype(t.dtype, "real floating"):
        t = xp.astype(t, log_p.dtype)
        # Where t is 0 the term is 0, even if log_p is -inf there (scores
        # spanning more than the float range): 0 * -inf would be NaN.
        terms = xp.where(t != 0, t * log_p, xp.zeros_like(log_p))
        return -xp.sum(terms) / n
    _, t = _as_batch(scores, t, xp)
    return -xp.sum(_pick(xp, log_p, t)) / n

"""Numerical differentiation and gradient descent (the book's chapter 4.3-4.4).

The book's ``numerical_gradient`` walks ``x`` with ``np.nditer``, which only
NumPy has. Here the walk is over index tuples and every write is an Array API
item assignment, so it runs on every backend and device. Like the book's, it
perturbs ``x`` *in place*: ``f`` may ignore its argument and read the same
array through a closure (``lambda W: net.loss(x, t)``), which is how the book
takes gradients of network weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from xpnn.backend import get_namespace

__all__ = ["gradient_descent", "numerical_diff", "numerical_gradient"]

#: The book's step for central differences.
H = 1e-4


def numerical_diff(f: Callable[[Any], Any], x: Any, h: float = H) -> Any:
    """Central difference (f(x + h) - f(x - h)) / 2h.

    Args:
        f: A function of one variable.
        x: A Python number or an array (then element-wise).
        h: The step.
    """
    return (f(x + h) - f(x - h)) / (2 * h)


def _require_float(x: Any, xp: Any, who: str) -> None:
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{who} needs a floating-point array, got dtype {x.dtype}: an integer "
            "array cannot hold x + h; convert it, e.g. xpnn.asarray(x, dtype='float64')"
        )


def numerical_gradient(f: Callable[[Any], Any], x: Any, h: float = H) -> Any:
    """Gradient of a scalar function by central differences, one element at a time.

    Args:
        f: Called as ``f(x)`` and returning a scalar (0-d array or number).
        x: Floating-point array of any shape on any backend. Perturbed in
            place during the call and restored exactly afterwards, also when
            ``f`` raises.
        h: The step.

    Returns:
        An array of the shape, dtype, backend and device of ``x``.

    Raises:
        TypeError: ``x`` is not a floating-point array.
    """
    xp = get_namespace(x)
    _require_float(x, xp, "numerical_gradient")
    grad = xp.zeros_like(x)
    for idx in itertools.product(*(range(n) for n in x.shape)):
        # A copy: on CuPy and PyTorch x[idx] is a view that the writes below
        # would change.
        saved = xp.asarray(x[idx], copy=True)
        try:
            x[idx] = saved + h
            fxh1 = f(x)
            x[idx] = saved - h
            fxh2 = f(x)
        finally:
            x[idx] = saved
        grad[idx] = (fxh1 - fxh2) / (2 * h)
    return grad


def gradient_descent(
    f: Callable[[Any], Any],
    init_x: Any,
    lr: float = 0.01,
    step_num: int = 100,
    *,
    return_path: bool = False,
) -> Any:
    """Minimise ``f`` by steps of ``-lr * numerical_gradient(f, x)``.

    Unlike the book's version, ``init_x`` itself is not modified.

    Args:
        f: Scalar function of a floating-point array.
        init_x: Starting point, e.g. ``xpnn.asarray([-3.0, 4.0])``.
        lr: Learning rate.
        step_num: Number of steps.
        return_path: Also return the points visited, for plotting.

    Returns:
        The final ``x``; with ``return_path``, ``(x, path)`` where ``path``
        has shape ``(step_num, *init_x.shape)`` and holds x before each step
        (as the book's ``x_history``).
    """
    xp = get_namespace(init_x)
    _require_float(init_x, xp, "gradient_descent")
    if isinstance(step_num, bool) or not isinstance(step_num, int) or step_num < 0:
        raise ValueError(f"step_num must be a non-negative int, got {step_num!r}")
    x = xp.asarray(init_x, copy=True)
    path = []
    for _ in range(step_num):
        if return_path:
            path.append(x)
        x = x - lr * numerical_gradient(f, x)
    if not return_path:
        return x
    # stack([x])[:0] is an empty path on x's device (step_num == 0)
    return x, xp.stack(path) if path else xp.stack([x])[:0, ...]

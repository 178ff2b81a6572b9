"""The spiral data set of vol. 2, ch. 1: three interleaved arms in the plane.

Generated exactly as the book's ``dataset/spiral.py`` (same seed, same
points), but with a private ``numpy.random.RandomState``, so NumPy's global
random state is never touched. Generation is host-side; the arrays are then
placed on the active backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.backend import asarray, get_backend

__all__ = ["load_data", "load_spiral"]


def load_spiral(
    seed: int = 1984, *, n_per_class: int = 100, num_classes: int = 3, dtype: Any = None
) -> tuple[Any, Any]:
    """Points on ``num_classes`` noisy spiral arms, as the book's ``load_data``.

    Args:
        seed: The book's seed (1984) gives the book's data set.
        n_per_class: Points per arm (book: 100).
        num_classes: Number of arms (book: 3).
        dtype: Float dtype of ``x`` (the backend's default if omitted).

    Returns:
        ``(x, t)`` on the active backend: ``x`` of shape
        ``(n_per_class * num_classes, 2)`` in the float dtype, ``t`` one-hot
        of shape ``(n_per_class * num_classes, num_classes)``, int64, as the
        book returns it.
    """
    for name, value in (("n_per_class", n_per_class), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    # RandomState(seed).randn() draws the numbers np.random.seed(seed) and
    # np.random.randn() gave the book, in the same order (class-major).
    rs = np.random.RandomState(seed)
    rate = np.arange(n_per_class) / n_per_class
    x = np.empty((num_classes * n_per_class, 2))
    t = np.zeros((num_classes * n_per_class, num_classes), dtype=np.int64)
    for j in range(num_classes):
        theta = j * 4.0 + 4.0 * rate + rs.randn(n_per_class) * 0.2
        rows = slice(j * n_per_class, (j + 1) * n_per_class)
        x[rows, 0] = rate * np.sin(theta)  # radius = rate
        x[rows, 1] = rate * np.cos(theta)
        t[rows, j] = 1
    # A new data set: float32 unless asked (host points are float64).
    return asarray(x, dtype=get_backend().float_dtype if dtype is None else dtype), asarray(t)


def load_data(seed: int = 1984) -> tuple[Any, Any]:
    """The book's ``spiral.load_data(seed=1984)``: :func:`load_spiral` with its defaults.

    Returns ``(x, t)``: ``(300, 2)`` points in the backend's float dtype and
    ``(300, 3)`` one-hot int64 labels, on the active backend.
    """
    return load_spiral(seed)

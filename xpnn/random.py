"""Seeded random numbers that are the same on every backend.

Every draw is made on the host by a :class:`numpy.random.Generator` (PCG64)
and then moved to the active backend with :func:`xpnn.asarray`. The same seed
therefore gives the same initial weights and the same mini-batch order on
numpy, CuPy, PyTorch and array-api-strict, so a GPU run can be compared with a
CPU run number for number. Nothing here touches NumPy's global random state.

Example::

    rng = xpnn.default_rng(42)
    W = rng.normal(0.0, 0.01, size=(784, 50))     # float32 on the active backend
    idx = rng.permutation(60000)                   # int64 on the active backend
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.backend import Backend, _dtype_name, asarray, get_backend

__all__ = ["Generator", "default_rng"]


class Generator:
    """A seeded random generator whose draws land on an xpnn backend.

    Args:
        seed: An int (or None for fresh OS entropy), as for
            :func:`numpy.random.default_rng`.
        backend: Where draws are placed. If omitted, the backend active *at
            each draw* (so one generator serves inside ``use_backend`` blocks).
    """

    def __init__(self, seed: int | None = None, *, backend: Backend | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.seed = seed
        self.backend = backend
        self._rng = np.random.default_rng(seed)

    # The host generator's state, for checkpoints that must resume exactly.
    def get_state(self) -> dict[str, Any]:
        """Return the generator's state (a JSON-serialisable dict)."""
        return self._rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`get_state`."""
        self._rng.bit_generator.state = state

    def _put(self, host: np.ndarray, dtype: Any) -> Any:
        return asarray(host, dtype=dtype, backend=self.backend)

    def _put_floats(self, host: Any, dtype: Any, below: float | None = None) -> Any:
        """Round float64 draws to the target float dtype on the host, then move them.

        Rounding on the host makes every backend get the same numbers. With
        ``below``, values that rounding pushed up to it (float32 rounds any
        float64 above 1 - 2**-25 to 1.0) are set to the largest float under
        it, so half-open intervals stay half-open. NumPy has no bfloat16: those
        draws are rounded on the host into float32 values that bfloat16 holds
        exactly (to nearest, ties to even, as every library casts).
        """
        backend = self.backend or get_backend()
        name = _dtype_name(backend.float_dtype if dtype is None else dtype)
        if name not in ("float16", "bfloat16", "float32", "float64"):
            raise ValueError(f"float draws need a float dtype, got {dtype!r}")
        if name == "bfloat16":
            values = _bfloat16_values(np.asarray(host, dtype=np.float64))
            if below is not None:
                values = np.minimum(values, _bfloat16_below(below))
            return asarray(values, dtype=name, backend=backend)
        values = np.asarray(host).astype(name)
        if below is not None:
            top = np.nextafter(np.asarray(below, dtype=name), np.asarray(-np.inf, dtype=name))
            values = np.minimum(values, top)
        return asarray(values, dtype=name, backend=backend)

    def random(self, size: int | tuple[int, ...] | None = None, dtype: Any = None) -> Any:
        """Uniform floats in [0, 1), shape ``size``, float dtype of the backend."""
        return self._put_floats(self._rng.random(size), dtype, below=1.0)

    def normal(
        self,
        loc: float = 0.0,
        scale: float = 1.0,
        size: int | tuple[int, ...] | None = None,
        dtype: Any = None,
    ) -> Any:
        """Normal draws with mean ``loc`` and standard deviation ``scale``.

        Drawn in float64 on the host, then cast to ``dtype`` (the backend's
        default float dtype if omitted), so every backend gets equal numbers.
        """
        if scale < 0:
            raise ValueError(f"scale must be non-negative, got {scale}")
        return self._put_floats(self._rng.normal(loc, scale, size), dtype)

    def standard_normal(self, size: int | tuple[int, ...] | None = None, dtype: Any = None) -> Any:
        """Standard normal draws; like ``numpy.random.randn(*size)`` in the book."""
        return self.normal(0.0, 1.0, size, dtype)

    def uniform(
        self,
        low: float = 0.0,
        high: float = 1.0,
        size: int | tuple[int, ...] | None = None,
        dtype: Any = None,
    ) -> Any:
        """Uniform floats in ``[low, high)``."""
        if not high >= low:
            raise ValueError(f"need low <= high, got low={low}, high={high}")
        draws = self._rng.uniform(low, high, size)
        return self._put_floats(draws, dtype, below=high if high > low else None)

    def integers(
        self,
        low: int,
        high: int | None = None,
        size: int | tuple[int, ...] | None = None,
        dtype: Any = "int64",
    ) -> Any:
        """Random integers in ``[low, high)`` (``[0, low)`` if ``high`` is None)."""
        return self._put(np.asarray(self._rng.integers(low, high, size)), dtype)

    def choice(
        self,
        a: int,
        size: int | tuple[int, ...] | None = None,
        replace: bool = True,
        dtype: Any = "int64",
    ) -> Any:
        """Random indices from ``range(a)``; the book's ``np.random.choice(n, k)``.

        Args:
            a: Population size (an int; choose from arrays with
                ``xp.take(x, rng.choice(len(x), k), axis=0)``).
            size: Output shape.
            replace: Draw with replacement (the book's default).
        """
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(
                f"choice() takes the population size as an int, got {type(a).__name__}; "
                "pick elements with xp.take(x, rng.choice(n, k), axis=0)"
            )
        if a <= 0:
            raise ValueError(f"population size must be positive, got {a}")
        if replace:
            # What numpy's choice(a, size) draws, without its argument handling.
            return self._put(np.asarray(self._rng.integers(0, a, size)), dtype)
        return self._put(np.asarray(self._rng.choice(a, size, replace=False)), dtype)

    def permutation(self, n: int, dtype: Any = "int64") -> Any:
        """A random permutation of ``range(n)``."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"permutation() takes an int, got {type(n).__name__}")
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        return self._put(self._rng.permutation(n), dtype)

    def __repr__(self) -> str:
        where = self.backend.spec if self.backend else "active backend"
        return f"xpnn.random.Generator(seed={self.seed}, on {where})"


def default_rng(seed: int | None = None, *, backend: Backend | None = None) -> Generator:
    """Return a :class:`Generator`; ``seed`` makes it reproducible on every backend."""
    return Generator(seed, backend=backend)


def _bfloat16_values(values: np.ndarray) -> np.ndarray:
    """float64 values rounded to bfloat16 (to nearest, ties to even), as float32.

    bfloat16 is the upper half of a float32: round the lower 16 bits away.
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    with np.errstate(over="ignore"):
        rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)


def _bfloat16_below(below: float) -> np.float32:
    """The largest bfloat16 value under ``below`` (finite, as float32)."""
    top = _bfloat16_values(np.asarray([below], dtype=np.float64))
    if top[0] >= below:  # one bfloat16 step down: the upper 16 bits are the value
        bits = top.view(np.uint32)
        step = np.uint32(0x10000)
        if top[0] > 0:
            bits = bits - step
        elif top[0] < 0:
            bits = bits + step
        else:
            bits = np.asarray([0x80010000], dtype=np.uint32)  # -smallest subnormal
        top = bits.view(np.float32)
    return top[0]

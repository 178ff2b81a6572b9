"""Seeded random numbers that are the same on every backend.

Every draw of a :class:`Generator` is made on the host by a
:class:`numpy.random.Generator` (PCG64) and then moved to the active backend
with :func:`xpnn.asarray`. The same seed therefore gives the same initial
weights and the same mini-batch order on numpy, CuPy, PyTorch and
array-api-strict, so a GPU run can be compared with a CPU run number for
number. Nothing here touches NumPy's global random state.

Draws needed inside a training step (dropout masks) must not cross from the
host: :func:`counter_uniform` computes them on the device of an array, as a
hash of each element's index and a key, with the same bits on every backend.

A global seed (:func:`seed`, the book's ``np.random.seed`` spelling, or the
environment variable ``XPNN_SEED`` read at import) makes everything left
unseeded reproducible: while one is set, ``default_rng(None)``, a model
built without ``seed=`` and ``Dropout(seed=None)`` take their seeds from one
process-wide sequence derived from it (:func:`fresh_seed`), so two runs of
the same script start from the same weights on every backend. An explicit
``seed=`` always wins; ``seed(None)`` goes back to fresh OS entropy.

Example::

    xpnn.random.seed(0)                            # or XPNN_SEED=0 python script.py
    rng = xpnn.default_rng(42)
    W = rng.normal(0.0, 0.01, size=(784, 50))     # float32 on the active backend
    idx = rng.permutation(60000)                   # int64 on the active backend
    u = xpnn.random.counter_uniform((100, 50), (seed, step), like=x)  # on x's device
"""

from __future__ import annotations

import math
import os
import secrets
import threading
from typing import Any

import numpy as np

from xpnn.backend import (
    Backend,
    _dtype_name,
    asarray,
    device_of,
    get_backend,
    get_namespace,
    resolve_dtype,
)

__all__ = ["Generator", "counter_uniform", "default_rng", "fresh_seed", "get_seed", "seed"]

#: The environment variable read at import: a global seed, as :func:`seed` sets.
SEED_ENV_VAR = "XPNN_SEED"

# ------------------------------------------------------------- global seed
#
# The one piece of global state of this module. ``_seed_value`` is the seed
# that ``seed()`` set (None: fresh entropy), or _FROM_ENV while seed() has not
# been called: then XPNN_SEED (read once at import, parsed at first use so
# that `import xpnn` never fails; a bad value raises each time it is used).
# ``_stream`` is the sequence the seeds are drawn from, made at first use.

_FROM_ENV = object()
_env_seed: str | None = os.environ.get(SEED_ENV_VAR, "").strip() or None  # blank: unset
_seed_value: Any = _FROM_ENV
_stream: np.random.Generator | None = None
_seed_lock = threading.Lock()
_FRESH_BITS = 63  # seeds of models and Dropout layers are in [0, 2**63)


def _checked_seed(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int or None, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} must be non-negative, got {value}")
    return int(value)


def _parse_env_seed(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            f"{SEED_ENV_VAR}={raw!r} is not a seed: set it to a non-negative integer "
            f"(e.g. {SEED_ENV_VAR}=0), or unset it for fresh entropy"
        )
    return value


def seed(value: int | None) -> None:
    """Set the global seed, as the book's ``np.random.seed(0)`` does for NumPy.

    From now on every generator, model and Dropout layer made without a seed
    takes one from a sequence that starts anew from ``value`` (see
    :func:`fresh_seed`), so a script gives the same numbers on every run and
    every backend. Explicit seeds are unaffected. ``seed(None)`` goes back to
    fresh OS entropy (and overrides ``XPNN_SEED``). NumPy's own global state
    is neither read nor changed.

    Raises:
        TypeError: ``value`` is not an int or None.
        ValueError: ``value`` is negative.
    """
    global _seed_value, _stream
    value = _checked_seed(value, "seed")
    with _seed_lock:
        _seed_value = value
        _stream = None if value is None else np.random.default_rng(value)


def get_seed() -> int | None:
    """The global seed in force: :func:`seed`'s, else ``XPNN_SEED``'s, else None.

    Raises:
        ValueError: ``XPNN_SEED`` is set to something other than a
            non-negative integer (and :func:`seed` has not been called).
    """
    value = _seed_value
    if value is _FROM_ENV:
        return None if _env_seed is None else _parse_env_seed(_env_seed)
    return value


def fresh_seed() -> int:
    """A seed in ``[0, 2**63)`` for something the caller did not seed.

    While a global seed is set (:func:`seed` or ``XPNN_SEED``), the next draw
    of one process-wide sequence seeded by it: the same script makes the
    same calls in the same order, so it gets the same seeds on every run
    (draws from several threads at once come in the order they happen).
    Otherwise 63 bits of OS entropy (:mod:`secrets`), different every time.

    Raises:
        ValueError: ``XPNN_SEED`` is not a non-negative integer.
    """
    global _stream
    with _seed_lock:
        if _stream is None:
            value = get_seed()
            if value is None:
                return secrets.randbits(_FRESH_BITS)
            _stream = np.random.default_rng(value)
        return int(_stream.integers(0, 2**_FRESH_BITS, dtype=np.int64))


class Generator:
    """A seeded random generator whose draws land on an xpnn backend.

    Args:
        seed: An int, as for :func:`numpy.random.default_rng`; or None: a
            seed from :func:`fresh_seed` while a global seed is set (then
            recorded in ``self.seed``), else fresh OS entropy.
        backend: Where draws are placed. If omitted, the backend active *at
            each draw* (so one generator serves inside ``use_backend`` blocks).
    """

    def __init__(self, seed: int | None = None, *, backend: Backend | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if seed is None and get_seed() is not None:
            seed = fresh_seed()
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
    """Return a :class:`Generator`; ``seed`` makes it reproducible on every backend.

    Without ``seed``, the global seed (:func:`seed`, ``XPNN_SEED``) makes it
    reproducible too; with neither, it draws from fresh OS entropy.
    """
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


# ------------------------------------------------------ counter-based draws

_MASK32 = 0xFFFFFFFF
# The multipliers of a lowbias32-style mixer (hash-prospector's 0x21f0aaad,
# 0x735a2d97, shifts 16, 15, 15): both odd and below 2**31, so a 32-bit
# value times one stays below 2**63 and int64 arithmetic never wraps.
_M1, _M2 = 0x21F0AAAD, 0x735A2D97
_GOLDEN = 0x9E3779B9
# Bits of the hash a uniform draw keeps: each value m * 2**-bits is exact in
# the dtype and below 1 (bfloat16 holds 8 significant bits, float16 11).
_UNIFORM_BITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 24}
_KEY_LIMIT = 2**63


def _mix32(x: Any) -> Any:
    """A bijection of 32-bit values (Python ints or int64 arrays holding them)."""
    x = x ^ (x >> 16)
    x = (x * _M1) & _MASK32
    x = x ^ (x >> 15)
    x = (x * _M2) & _MASK32
    return x ^ (x >> 15)


def _key_words(key: tuple[int, ...]) -> tuple[int, int]:
    """Two 32-bit words hashed from every bit of ``key`` (on the host, Python ints)."""
    words = []
    for start in (0x243F6A88, 0x85A308D3):  # two independent chains
        h = start
        for value in key:
            for word in (value & _MASK32, value >> 32):
                h = _mix32(((h + _GOLDEN) & _MASK32) ^ word)
        words.append(_mix32(((h + _GOLDEN) & _MASK32) ^ len(key)))
    return words[0], words[1]


def _check_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ValueError(
            f"shape must be a tuple of non-negative ints (or one int), got {shape!r:.80}"
        )
    return tuple(int(d) for d in shape)


def _check_key(key: Any) -> tuple[int, ...]:
    if not isinstance(key, tuple):
        raise TypeError(
            f"key must be a tuple of non-negative ints, e.g. (seed, step), got {type(key).__name__}"
        )
    for i, value in enumerate(key):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"key[{i}] must be an int, got {type(value).__name__}")
        if not 0 <= value < _KEY_LIMIT:
            raise ValueError(f"key[{i}] must be in 0 <= key < 2**63, got {value}")
    return tuple(int(v) for v in key)


def _counter_bits(shape: Any, key: Any, like: Any) -> tuple[Any, Any, tuple[int, ...]]:
    """32-bit hash values (int64), flat, for the elements of ``shape``, on ``like``'s device.

    Element ``i`` (in C order) gets a hash of ``(i, key)``: two rounds of
    :func:`_mix32`, keyed by two words hashed from ``key`` on the host. Only
    int64 shifts, ``&``, ``^`` and products below 2**63: the same bits on
    every backend. Returns the flat bits, the namespace and the checked
    shape; reshape last (NumPy's 0-d arithmetic would give a scalar).
    """
    shape, key = _check_shape(shape), _check_key(key)
    xp = get_namespace(like)
    n = math.prod(shape)
    k1, k2 = _key_words(key)
    index = xp.arange(n, dtype=xp.int64, device=device_of(like))
    x = _mix32((index & _MASK32 if n > 2**32 else index) ^ k1)
    if n > 2**32:  # indices beyond 32 bits: fold their high word in
        x = x ^ (index >> 32)
    return _mix32(x ^ k2), xp, shape


def counter_uniform(shape: Any, key: Any, *, like: Any, dtype: Any = None) -> Any:
    """Uniform floats in [0, 1) computed on the device of ``like``, from a key.

    A counter-based generator: element ``i`` (C order) is a hash of ``(i,
    key)``, so the same ``(shape, key)`` gives the same numbers on every
    backend and device, and no state is kept (a training step passes
    ``(seed, step)``). Nothing is read to or sent from the host but the
    key's two 32-bit words (Python ints in the operations). The hash is
    int64 arithmetic only (shifts, ``&``, ``^``, products below 2**63), no
    wrap-around is relied on. Statistically fine for dropout masks, not
    for cryptography.

    Each value is ``m * 2**-b`` with ``m`` the top ``b`` bits of the 32-bit
    hash: ``b = 24`` for float32 and float64 (the same values in both),
    11 for float16, 8 for bfloat16; so every value is exact in ``dtype``
    and below 1.

    Args:
        shape: The output shape (an int or a tuple of non-negative ints).
        key: A tuple of ints in ``0 <= k < 2**63`` (e.g. ``(seed, draw)``);
            all its bits matter, and keys differing anywhere give unrelated
            draws.
        like: An array whose namespace and device the draws are made on.
        dtype: Float dtype of the result (a name or a dtype of ``like``'s
            namespace); default ``like``'s dtype if it is floating, else
            float32.

    Returns:
        An array of ``shape`` and ``dtype`` on ``like``'s device.

    Raises:
        TypeError: ``key`` is not a tuple of ints.
        ValueError: ``shape`` is not a tuple of non-negative ints, a key
            entry is out of range, or ``dtype`` is not a float dtype.
    """
    xp = get_namespace(like)
    if dtype is None:
        dtype = like.dtype if xp.isdtype(like.dtype, "real floating") else xp.float32
    dtype = resolve_dtype(xp, dtype)
    name = _dtype_name(dtype)
    if name not in _UNIFORM_BITS:
        raise ValueError(f"counter_uniform draws floats; dtype must be a float dtype, got {name}")
    bits = _UNIFORM_BITS[name]
    x, xp, shape = _counter_bits(shape, key, like)
    return xp.reshape(xp.astype(x >> (32 - bits), dtype) * (2.0**-bits), shape)

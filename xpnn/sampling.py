"""Draws from a fixed discrete distribution, on the device, the same on every backend.

Vol. 2 ch. 4's ``UnigramSampler`` draws, for each target word, a few words
without replacement from the unigram distribution (the book's CPU path:
``np.random.choice(V, size, replace=False, p=p)`` with ``p[target] = 0``, in
a Python loop over the rows). Here the whole batch is drawn at once:

* :func:`cumulative_table` builds the probabilities and their running sum
  once, on the host in float64 (NumPy), and sends them to the device of the
  counts: device ``pow`` and ``cumsum`` differ between libraries by an ulp,
  and a table that differs by an ulp draws a different word now and then.
  One table for every backend means the same ids on every backend.
* :func:`choice_without_replacement` draws by inverting the running sum of
  the words not drawn yet (the sequential scheme that ``np.random.choice``
  with ``replace=False`` follows), one column at a time: ``size`` steps of a
  few ``(N, size + 1)`` array operations and one ``searchsorted``, never an
  ``(N, V)`` array, never a loop over rows, nothing read to the host.

Uniform numbers come from :func:`xpnn.random.counter_uniform`, keyed (the
sampler passes ``(seed, draws)``); every operation after the table is
elementwise IEEE arithmetic, comparisons and ``searchsorted``, which give
the same bits on NumPy, CuPy, PyTorch and array-api-strict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.backend import asarray, backend_of, device_of, get_namespace, to_numpy
from xpnn.random import counter_uniform

__all__ = ["CumulativeTable", "choice_without_replacement", "cumulative_table"]

#: Each uniform draw joins two 24-bit ``counter_uniform`` draws: 48 bits, exact in float64.
_HALF_BITS = 24


class CumulativeTable:
    """A discrete distribution over ids ``0..V-1`` as the device arrays a draw needs.

    Attributes:
        p: ``(V,)`` float64 probabilities (words of weight 0 have 0).
        cdf: ``(V,)`` float64 running sum of ``p`` (``cdf[i] = p[0] + ... + p[i]``).
        total: ``cdf[-1]`` as a Python float (1 up to rounding).
        tail: ``(T,)`` int64, the largest ids of positive probability, largest
            first (``T`` = the most ids a draw excludes plus one): where
            rounding pushes a draw past the end of the running sum, the draw
            is the largest id not excluded.
        support: How many ids have a positive probability.
    """

    def __init__(self, p: Any, cdf: Any, total: float, tail: Any, support: int):
        self.p, self.cdf, self.total, self.tail, self.support = p, cdf, total, tail, support


def cumulative_table(counts: Any, power: float, tail: int) -> CumulativeTable:
    """The distribution ``counts ** power / sum(counts ** power)`` on ``counts``' device.

    Computed once on the host (float64, NumPy's sequential ``cumsum``) and
    sent to the device of ``counts``: the same table on every backend. This
    reads ``counts`` to the host once (build time, not a training step).

    Args:
        counts: ``(V,)`` non-negative integer counts on any backend.
        power: A finite exponent ``>= 0`` (ids with count 0 keep weight 0,
            also for ``power`` 0).
        tail: How many ids a draw may exclude at most (target and the draws
            before): the table keeps the ``tail + 1`` largest ids of positive
            weight for draws that rounding pushes past the end.
    """
    c = to_numpy(counts).astype(np.float64)
    weights = np.where(c > 0, np.power(np.where(c > 0, c, 1.0), power), 0.0)
    p = weights / weights.sum()
    cdf = np.cumsum(p)
    support = np.flatnonzero(p > 0)
    last = support[::-1][: tail + 1].astype(np.int64)
    where = backend_of(counts)
    return CumulativeTable(
        asarray(p, backend=where),
        asarray(cdf, backend=where),
        float(cdf[-1]),
        asarray(np.ascontiguousarray(last), backend=where),
        int(support.size),
    )


def _uniform(n: int, size: int, key: tuple[int, ...], like: Any) -> Any:
    """``(n, size)`` float64 uniform in [0, 1): two 24-bit counter draws joined into 48 bits."""
    hi = counter_uniform((n, size), (*key, 0), like=like, dtype="float64")
    lo = counter_uniform((n, size), (*key, 1), like=like, dtype="float64")
    return hi + lo * 2.0**-_HALF_BITS


def _draw_one(table: CumulativeTable, taken: list[Any], u: Any) -> Any:
    """One id per row from the ids not in ``taken`` (each ``(N,)``), for uniforms ``u`` ``(N,)``.

    With the excluded ids sorted, ``e_0 < e_1 < ... < e_m``, the running sum
    of the ids left is ``cdf[i] - E_a`` between ``e_{a-1}`` and ``e_a``
    (``E_a``: the excluded probability below ``e_a``). The draw is the
    smallest ``i`` whose sum passes ``x = u * (total - E_m)``: for each
    segment ``a`` the candidate is ``searchsorted(cdf, x + E_a, 'right')``,
    and the draw is the first candidate that falls before its segment's end
    (candidates only grow with ``a``, so: the smallest such candidate).
    """
    xp = get_namespace(u)
    n, m = int(u.shape[0]), len(taken)
    v = int(table.cdf.shape[0])
    ends = xp.sort(xp.stack(taken, axis=1), axis=1)  # (N, m) sorted excluded ids
    p_ends = xp.reshape(xp.take(table.p, xp.reshape(ends, (-1,))), (n, m))
    below = [xp.zeros_like(u)]  # E_0 .. E_m, summed left to right (the same bits everywhere)
    for a in range(m):
        below.append(below[-1] + p_ends[:, a])
    x = u * (table.total - below[m])
    found = xp.searchsorted(table.cdf, xp.stack([x + e for e in below], axis=1), side="right")
    found = xp.astype(found, xp.int64)
    limit = xp.concat([ends, xp.full((n, 1), v, dtype=xp.int64, device=device_of(ends))], axis=1)
    picked = xp.min(xp.where(found < limit, found, xp.full_like(found, v)), axis=1)
    # Rounding put x past the end: the largest id left is the draw.
    tail = table.tail
    free = xp.all(xp.reshape(tail, (1, -1, 1)) != xp.reshape(ends, (n, 1, m)), axis=2)
    none = xp.full_like(free, -1, dtype=xp.int64)
    largest = xp.max(xp.where(free, xp.reshape(tail, (1, -1)), none), axis=1)
    return xp.where(picked < v, picked, largest)


def choice_without_replacement(
    table: CumulativeTable, size: int, exclude: Any, key: tuple[int, ...]
) -> Any:
    """``size`` distinct ids per row, none of them that row's ``exclude`` id.

    Distributed as drawing one id after the other, each from the ids not
    drawn yet (nor excluded) in proportion to ``table.p``: the book's
    ``np.random.choice(V, size, replace=False, p=p)`` with ``p[exclude] = 0``
    renormalised, for every row at once.

    Args:
        table: From :func:`cumulative_table`, with ``tail >= size``.
        size: Ids per row, at most ``table.support - 1``.
        exclude: ``(N,)`` integer ids on the table's device (the targets).
        key: A tuple of ints for :func:`xpnn.random.counter_uniform`: the
            draw is a function of ``(table, exclude, key)``.

    Returns:
        ``(N, size)`` int64 ids on that device, in the order drawn.
    """
    xp = get_namespace(table.cdf)
    n = int(exclude.shape[0])
    u = _uniform(n, size, key, table.cdf)
    taken = [xp.astype(exclude, xp.int64)]
    for j in range(size):
        taken.append(_draw_one(table, taken, u[:, j]))
    if size == 0:
        return xp.zeros((n, 0), dtype=xp.int64, device=device_of(table.cdf))
    return xp.stack(taken[1:], axis=1)

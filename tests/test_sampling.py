"""xpnn.sampling: draws without replacement from a fixed table, on every backend.

The batched draw is checked against a plain per-row implementation of the
sequential scheme (zero the ids drawn, renormalise, invert the running sum)
fed the same uniforms: the same ids, row by row. The rounding edge (a draw
past the end of the running sum) and the table's build are checked apart.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.sampling import (
    CumulativeTable,
    _uniform,
    choice_without_replacement,
    cumulative_table,
)


def ids(a) -> np.ndarray:
    return np.asarray(xpnn.to_numpy(a)).copy()


def counts_array(values) -> object:
    return xpnn.asarray(np.asarray(values, dtype=np.int64))


def per_row_reference(p: np.ndarray, exclude: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The sequential scheme, one row and one draw at a time, in NumPy."""
    out = np.empty(u.shape, dtype=np.int64)
    for r in range(u.shape[0]):
        q = p.copy()
        q[exclude[r]] = 0.0
        for j in range(u.shape[1]):
            cdf = np.cumsum(q)
            out[r, j] = np.searchsorted(cdf, u[r, j] * cdf[-1], side="right")
            q[out[r, j]] = 0.0
    return out


def test_cumulative_table_is_the_books_distribution(backend):
    counts = [4, 0, 9, 1, 0, 16]
    table = cumulative_table(counts_array(counts), 0.75, 3)
    c = np.asarray(counts, dtype=np.float64)
    w = np.where(c > 0, c**0.75, 0.0)
    np.testing.assert_allclose(ids(table.p), w / w.sum(), rtol=1e-15)
    np.testing.assert_array_equal(ids(table.cdf), np.cumsum(w / w.sum()))
    assert table.support == 4 and table.total == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_array_equal(ids(table.tail), [5, 3, 2, 0])  # largest first
    assert xpnn.backend_of(table.cdf) == xpnn.backend_of(counts_array(counts))


@pytest.mark.parametrize("size", [1, 3, 6])
def test_draws_equal_the_per_row_sequential_scheme(backend, size):
    rng = np.random.default_rng(size)
    counts = rng.zipf(1.3, size=400).clip(max=5000)
    counts[rng.choice(400, 40, replace=False)] = 0  # words never seen
    table = cumulative_table(counts_array(counts), 0.75, size)
    exclude = rng.choice(np.flatnonzero(counts), 700)
    key = (5, size)
    got = ids(choice_without_replacement(table, size, counts_array(exclude), key))
    u = ids(_uniform(700, size, key, table.cdf))
    want = per_row_reference(ids(table.p), exclude, u)
    np.testing.assert_array_equal(got, want)
    assert (counts[got] > 0).all() and not (got == exclude[:, None]).any()
    assert all(len(set(row)) == size for row in got.tolist())


def test_a_draw_past_the_end_is_the_largest_id_left(backend):
    counts = counts_array([3, 1, 2, 0, 5])
    built = cumulative_table(counts, 1.0, 1)
    # A total far above the running sum's end: most draws overshoot, as rounding can.
    table = CumulativeTable(built.p, built.cdf, 4.0, built.tail, 4)
    exclude = np.array([4, 0, 2, 1, 4, 0, 2, 1] * 4)
    key = (0,)
    u = ids(_uniform(exclude.size, 1, key, table.cdf))[:, 0]
    got = ids(choice_without_replacement(table, 1, counts_array(exclude), key))[:, 0]
    p = ids(table.p)
    over = u * (4.0 - p[exclude]) + p[exclude] >= ids(table.cdf)[-1]
    assert over.any() and not over.all()
    largest_left = np.where(exclude == 4, 2, 4)
    np.testing.assert_array_equal(got[over], largest_left[over])
    assert (got != 3).all() and (got != exclude).all()


def test_the_same_ids_on_every_backend(backend):
    counts = np.random.default_rng(1).zipf(1.2, size=2000).clip(max=10**6)
    exclude = np.arange(300) % 2000
    table = cumulative_table(counts_array(counts), 0.75, 5)
    got = ids(choice_without_replacement(table, 5, counts_array(exclude), (9, 1)))
    with xpnn.use_backend("numpy"):
        ref = cumulative_table(counts_array(counts), 0.75, 5)
        want = ids(choice_without_replacement(ref, 5, counts_array(exclude), (9, 1)))
    np.testing.assert_array_equal(got, want)

"""xpnn.linalg: the book's SVD and scikit-learn's randomized SVD on every backend.

The full SVD against NumPy's; the randomized one against the exact top
singular values of a matrix with a decaying spectrum (a PPMI matrix of a
real corpus, and a made one), the same numbers on every backend from one
``random_state``, and refused input.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.linalg import randomized_svd, svd
from xpnn.text import create_co_matrix, ppmi, preprocess


def host(a) -> np.ndarray:
    return np.array(xpnn.to_numpy(a), dtype=np.float64, copy=True)


def decaying(m=60, n=40, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A, _ = np.linalg.qr(rng.standard_normal((m, m)))
    B, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = 2.0 ** -np.arange(min(m, n), dtype=np.float64)
    return (A[:, : len(s)] * s) @ B[: len(s)]


def test_svd_is_numpys(backend):
    M = decaying(8, 5)
    U, S, V = svd(xpnn.asarray(M))
    Sn = np.linalg.svd(M, compute_uv=False)
    assert U.shape == (8, 8) and S.shape == (5,) and V.shape == (5, 5)
    np.testing.assert_allclose(host(S), Sn, rtol=1e-10)
    np.testing.assert_allclose(host(U)[:, :5] * host(S) @ host(V), M, atol=1e-12)
    assert xpnn.backend_of(U) == xpnn.backend_of(xpnn.asarray(M))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_randomized_svd_finds_the_largest_singular_values(backend, dtype):
    M = decaying()
    U, S, V = randomized_svd(xpnn.asarray(M, dtype=dtype), 5, n_iter=5, random_state=0)
    assert tuple(U.shape) == (60, 5) and tuple(S.shape) == (5,) and tuple(V.shape) == (5, 40)
    assert U.dtype == xpnn.asarray(M, dtype=dtype).dtype
    tol = 1e-10 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(host(S), np.linalg.svd(M, compute_uv=False)[:5], rtol=tol)
    u = host(U)
    np.testing.assert_allclose(u.T @ u, np.eye(5), atol=tol * 10)
    rows = np.abs(u).argmax(axis=0)
    assert (u[rows, np.arange(5)] > 0).all()  # signs fixed as scikit-learn's


def test_randomized_svd_of_a_ppmi_matrix_matches_the_full_svd(backend):
    text = "you say goodbye and i say hello . " * 3 + "the cat sat on the mat and the dog sat"
    corpus, word_to_id, _ = preprocess(text)
    W = ppmi(create_co_matrix(corpus, len(word_to_id), 1))
    _, S, _ = randomized_svd(W, 3, random_state=1)
    want = np.linalg.svd(host(W), compute_uv=False)[:3]
    np.testing.assert_allclose(host(S), want, rtol=1e-4)


def test_one_random_state_gives_the_same_vectors_on_every_backend(backend):
    M = decaying(30, 20, seed=2)
    U = host(randomized_svd(xpnn.asarray(M), 4, random_state=7)[0])
    with xpnn.use_backend("numpy"):
        want = host(randomized_svd(xpnn.asarray(M), 4, random_state=7)[0])
    np.testing.assert_allclose(U, want, atol=1e-10)
    other = host(randomized_svd(xpnn.asarray(M), 4, n_iter=0, random_state=8)[0])
    assert not np.array_equal(other, want)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((np.ones(4),), {}, ValueError, "2-D"),
        ((np.ones((3, 3), dtype=np.int64),), {}, TypeError, "real floats"),
        ((np.ones((3, 3)), 0), {}, ValueError, "n_components must be in 1..3"),
        ((np.ones((3, 3)), 4), {}, ValueError, "n_components must be in 1..3"),
        ((np.ones((3, 3)), 2), {"n_iter": -1}, ValueError, "n_iter must be an int >= 0"),
        (([[1.0]], 1), {}, TypeError, "must be an array"),
    ],
)
def test_bad_input_is_refused(backend, args, kwargs, error, message):
    M = args[0] if isinstance(args[0], list) else xpnn.asarray(args[0])
    with pytest.raises(error, match=message):
        randomized_svd(M, *(args[1:] or (1,)), **kwargs)

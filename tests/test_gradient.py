"""Numerical differentiation and gradient descent, with the book's numbers."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.gradient import (
    Float32GradientWarning,
    gradient_descent,
    numerical_diff,
    numerical_gradient,
)


def function_1(x):
    return 0.01 * x**2 + 0.1 * x


def function_2(x):
    return x[0] ** 2 + x[1] ** 2


def f64(a):
    return xpnn.asarray(a, dtype="float64")


def test_numerical_diff_book_numbers():
    # book: 0.1999999999990898 and 0.2999999999986347
    assert numerical_diff(function_1, 5) == pytest.approx(0.2, abs=1e-10)
    assert numerical_diff(function_1, 10) == pytest.approx(0.3, abs=1e-10)
    assert numerical_diff(function_1, 5) != 0.2  # a real central difference, not the formula


def test_numerical_diff_on_arrays(backend):
    d = xpnn.to_numpy(numerical_diff(function_1, f64([5.0, 10.0])))
    np.testing.assert_allclose(d, [0.2, 0.3], atol=1e-10)


@pytest.mark.parametrize(
    ("point", "expected"),
    [((3.0, 4.0), (6.0, 8.0)), ((0.0, 2.0), (0.0, 4.0)), ((3.0, 0.0), (6.0, 0.0))],
)
def test_numerical_gradient_book_numbers(backend, point, expected):
    g = numerical_gradient(function_2, f64(point))
    np.testing.assert_allclose(xpnn.to_numpy(g), expected, atol=1e-8)


def test_numerical_gradient_any_shape_and_dtype_kept(backend, xp):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 3, 2))
    x = f64(a)
    g = numerical_gradient(lambda v: xp.sum(v**3), x)
    assert g.shape == x.shape and g.dtype == xp.float64
    # central differences of x^3 are exactly 3x^2 + h^2 (up to rounding)
    np.testing.assert_allclose(xpnn.to_numpy(g), 3 * a**2 + 1e-8, rtol=1e-7, atol=1e-9)
    with pytest.warns(Float32GradientWarning, match="float32"):
        g32 = numerical_gradient(lambda v: xp.sum(v * v), xpnn.asarray(a, dtype="float32"))
    assert g32.dtype == xp.float32


def test_numerical_gradient_through_a_closure(backend, xp):
    """The book's trick: f ignores its argument and reads the array it closes over."""
    w = f64([[1.0, 2.0], [3.0, 4.0]])
    g = numerical_gradient(lambda _: xp.sum(w * w) / 2, w)
    np.testing.assert_allclose(xpnn.to_numpy(g), [[1.0, 2.0], [3.0, 4.0]], atol=1e-8)


def test_numerical_gradient_restores_x_exactly(backend, xp):
    a = np.random.default_rng(2).normal(size=(3, 4))
    x = f64(a)
    numerical_gradient(lambda v: xp.sum(xp.sin(v)), x)
    np.testing.assert_array_equal(xpnn.to_numpy(x), a)


def test_numerical_gradient_restores_x_when_f_raises(backend, xp):
    a = np.array([0.1, 0.2, 0.3])
    x = f64(a)
    calls = []

    def f(v):
        calls.append(1)
        if len(calls) == 4:  # second element, after its +h write
            raise RuntimeError("boom")
        return xp.sum(v)

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    np.testing.assert_array_equal(xpnn.to_numpy(x), a)


def test_numerical_gradient_refuses_integers(backend):
    x = xpnn.asarray(np.array([1, 2]))
    with pytest.raises(TypeError, match="floating-point"):
        numerical_gradient(function_2, x)


def test_numerical_gradient_refuses_non_arrays():
    with pytest.raises(TypeError):
        numerical_gradient(function_2, [3.0, 4.0])


def test_gradient_descent_book_numbers(backend, xp):
    init = f64([-3.0, 4.0])
    x = gradient_descent(function_2, init, lr=0.1, step_num=100)
    assert float(xpnn.to_numpy(xp.max(xp.abs(x)))) < 1e-8  # book: [-6.1e-10, 8.1e-10]
    np.testing.assert_array_equal(xpnn.to_numpy(init), [-3.0, 4.0])  # input untouched


def test_gradient_descent_lr_too_large_diverges(backend):
    x = xpnn.to_numpy(gradient_descent(function_2, f64([-3.0, 4.0]), lr=10.0, step_num=100))
    assert np.all(np.abs(x) > 1e10) or not np.all(np.isfinite(x))  # book: ~ -2.6e12, -1.3e12


def test_gradient_descent_lr_too_small_barely_moves(backend):
    x = xpnn.to_numpy(gradient_descent(function_2, f64([-3.0, 4.0]), lr=1e-10, step_num=100))
    np.testing.assert_allclose(x, [-3.0, 4.0], atol=1e-6)  # book: -2.99999994, 3.99999992
    assert not np.array_equal(x, [-3.0, 4.0])


def test_gradient_descent_path(backend, xp):
    x, path = gradient_descent(function_2, f64([-3.0, 4.0]), lr=0.1, step_num=20, return_path=True)
    p = xpnn.to_numpy(path)
    assert p.shape == (20, 2)
    np.testing.assert_array_equal(p[0], [-3.0, 4.0])
    np.testing.assert_allclose(p[1], [-2.4, 3.2], atol=1e-8)  # x - 0.1 * 2x
    # the final x is one step past the last recorded point
    np.testing.assert_allclose(xpnn.to_numpy(x), 0.8 * p[-1], atol=1e-8)
    norms = np.linalg.norm(p, axis=1)
    assert np.all(np.diff(norms) < 0)
    _, empty = gradient_descent(function_2, f64([1.0, 1.0]), step_num=0, return_path=True)
    assert xpnn.to_numpy(empty).shape == (0, 2)


@pytest.mark.parametrize("steps", [-1, 2.5, True])
def test_gradient_descent_bad_step_num(steps):
    with pytest.raises(ValueError, match="step_num"):
        gradient_descent(function_2, f64([1.0, 1.0]), step_num=steps)

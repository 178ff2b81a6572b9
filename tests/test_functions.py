"""Activations and losses on every backend, with the book's printed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn
from xpnn.functions import (
    cross_entropy_error,
    identity_function,
    mean_squared_error,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    softmax_cross_entropy,
    step_function,
    sum_squared_error,
)

# The book's example (4.2.1): "2" is the right answer.
T_ONE_HOT = [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
Y_GOOD = [0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]
Y_BAD = [0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0]


def host(a):
    return xpnn.to_numpy(a)


def f64(a):
    return xpnn.asarray(a, dtype="float64")


def test_mean_squared_error_book_numbers(backend):
    t = f64(T_ONE_HOT)
    assert math.isclose(float(host(mean_squared_error(f64(Y_GOOD), t))), 0.0975, rel_tol=1e-12)
    assert math.isclose(float(host(mean_squared_error(f64(Y_BAD), t))), 0.5975, rel_tol=1e-12)
    assert sum_squared_error is mean_squared_error


def test_cross_entropy_error_book_numbers(backend):
    t = f64(T_ONE_HOT)
    good = float(host(cross_entropy_error(f64(Y_GOOD), t)))
    bad = float(host(cross_entropy_error(f64(Y_BAD), t)))
    assert good == pytest.approx(0.510825457099338, abs=1e-12)  # book: 0.51082545709933802
    assert bad == pytest.approx(2.302584092994546, abs=1e-12)  # book: 2.3025840929945458


def test_cross_entropy_error_labels_one_hot_or_integer(backend):
    y = f64([Y_GOOD, Y_BAD])
    one_hot = f64([T_ONE_HOT, T_ONE_HOT])
    labels = xpnn.asarray(np.array([2, 2]))
    expected = (0.510825457099338 + 2.302584092994546) / 2
    assert float(host(cross_entropy_error(y, one_hot))) == pytest.approx(expected, abs=1e-12)
    assert float(host(cross_entropy_error(y, labels))) == pytest.approx(expected, abs=1e-12)
    single = cross_entropy_error(f64(Y_GOOD), xpnn.asarray(np.array(2)))
    assert float(host(single)) == pytest.approx(0.510825457099338, abs=1e-12)


def test_losses_keep_float32(backend, xp):
    y = xpnn.asarray([Y_GOOD])
    t = xpnn.asarray(np.array([2]))
    assert y.dtype == xp.float32
    assert cross_entropy_error(y, t).dtype == xp.float32
    assert softmax_cross_entropy(y, t).dtype == xp.float32
    assert mean_squared_error(y, xpnn.asarray([T_ONE_HOT])).dtype == xp.float32


def test_activations(backend):
    x = f64([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(host(identity_function(x)), [-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(host(step_function(x)), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(host(relu(x)), [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(host(relu_grad(x)), [0.0, 1.0, 1.0])
    s = 1 / (1 + np.exp(-np.array([-1.0, 0.0, 2.0])))
    np.testing.assert_allclose(host(sigmoid(x)), s, rtol=1e-15)
    np.testing.assert_allclose(host(sigmoid_grad(x)), s * (1 - s), rtol=1e-14)


def test_sigmoid_has_no_overflow_for_extreme_inputs(backend):
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = host(sigmoid(xpnn.asarray([-1000.0, 1000.0])))
    np.testing.assert_array_equal(out, [0.0, 1.0])


def test_softmax_book_example_and_overflow(backend):
    a = f64([1010.0, 1000.0, 990.0])  # the book's overflow example
    y = host(softmax(a))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [9.99954600e-01, 4.53978686e-05, 2.06106005e-09], rtol=1e-7)
    batch = host(softmax(f64([[0.3, 2.9, 4.0], [1.0, 1.0, 1.0]])))
    np.testing.assert_allclose(batch[0], [0.01821127, 0.24519181, 0.73659691], rtol=1e-6)
    np.testing.assert_allclose(batch.sum(axis=1), [1.0, 1.0], rtol=1e-15)


def test_softmax_cross_entropy_matches_the_composition(backend):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    s, t = f64(scores), xpnn.asarray(labels)
    fused = float(host(softmax_cross_entropy(s, t)))
    composed = float(host(cross_entropy_error(softmax(s), t)))
    assert fused == pytest.approx(composed, abs=1e-6)
    one_hot = f64(np.eye(4)[labels])
    assert float(host(softmax_cross_entropy(s, one_hot))) == pytest.approx(fused, abs=1e-14)
    # reference computed on the host in float64
    p = np.exp(scores - scores.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert fused == pytest.approx(-np.log(p[np.arange(5), labels]).mean(), rel=1e-12)


def test_softmax_cross_entropy_is_finite_for_extreme_scores(backend):
    scores = xpnn.asarray([[1e4, -1e4, 0.0], [-1e30, 1e30, 0.0]])
    labels = xpnn.asarray(np.array([1, 0]))
    loss = float(host(softmax_cross_entropy(scores, labels)))
    assert math.isfinite(loss)
    assert loss == pytest.approx((2e4 + 2e30) / 2, rel=1e-6)
    single = softmax_cross_entropy(xpnn.asarray([0.0, 1e4]), xpnn.asarray(np.array(1)))
    assert float(host(single)) == 0.0


@pytest.mark.parametrize(
    ("y_shape", "t_shape", "error"),
    [((2, 3), (3,), ValueError), ((2, 3), (2, 2), ValueError), ((2, 3, 1), (2,), ValueError)],
)
def test_cross_entropy_error_bad_shapes(backend, y_shape, t_shape, error):
    y = xpnn.asarray(np.full(y_shape, 0.5))
    t = xpnn.asarray(np.zeros(t_shape, dtype=np.int64))
    with pytest.raises(error, match="shape"):
        cross_entropy_error(y, t)
    with pytest.raises(error, match="shape"):
        softmax_cross_entropy(y, t)


def test_float_labels_that_are_not_one_hot_are_refused(backend):
    y = xpnn.asarray(np.full((2, 3), 0.5))
    with pytest.raises(TypeError, match="integer dtype"):
        cross_entropy_error(y, xpnn.asarray([0.0, 1.0]))


def test_mean_squared_error_shape_mismatch(backend):
    with pytest.raises(ValueError, match="same shape"):
        mean_squared_error(xpnn.asarray([1.0, 2.0]), xpnn.asarray([1.0]))


def test_losses_refuse_mixed_backends(backend):
    other = "numpy" if backend.name != "numpy" else "array_api_strict:device1"
    t = xpnn.asarray(T_ONE_HOT, backend=xpnn.backend._open(other))
    with pytest.raises(xpnn.BackendMismatchError):
        cross_entropy_error(xpnn.asarray(Y_GOOD), t)

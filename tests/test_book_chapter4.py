"""The book's chapter-4 cells, ported by changing only the imports, print its numbers.

Each test is a cell of vol. 1, ch. 4 with ``np.array(...)`` data wrapped in
``xpnn.asarray`` and ``np.`` math replaced by the data's namespace; the
expected values are the ones the book prints. Float64 data keeps its dtype
(``xpnn.asarray`` follows ``numpy.asarray``), so the numbers are the book's on
every backend. Float32 runs of the same cells are told apart by a warning.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnn
from xpnn.functions import cross_entropy_error, softmax
from xpnn.gradient import (
    Float32GradientWarning,
    gradient_descent,
    numerical_diff,
    numerical_gradient,
)


def host(a):
    return np.array(xpnn.to_numpy(a), copy=True)


def function_1(x):
    return 0.01 * x**2 + 0.1 * x


def function_2(x):
    return xpnn.get_namespace(x).sum(x**2)


def test_asarray_keeps_the_dtype_of_typed_data(backend, xp):
    assert xpnn.asarray(np.array([3.0, 4.0])).dtype == xp.float64
    assert xpnn.asarray(np.array([3.0, 4.0], dtype=np.float32)).dtype == xp.float32
    assert xpnn.asarray(np.float64(2.5)).dtype == xp.float64  # a NumPy scalar has a dtype
    assert xpnn.asarray(np.array([1, 2])).dtype == xp.int64
    # Untyped data takes the backend's default float; dtype= always wins.
    assert xpnn.asarray([3.0, 4.0]).dtype == xp.float32
    assert xpnn.asarray(2.5).dtype == xp.float32
    assert xpnn.asarray([1, 2]).dtype == xp.int64
    assert xpnn.asarray(np.array([3.0, 4.0]), dtype="float32").dtype == xp.float32
    assert xpnn.asarray([3.0], dtype="float64").dtype == xp.float64


def test_asarray_keeps_the_dtype_across_backends(backend, xp):
    for other in ("numpy", "array_api_strict:device2"):
        src = xpnn.asarray(np.array([0.1, 0.2]), backend=xpnn.backend._open(other))
        moved = xpnn.asarray(src)
        assert moved.dtype == xp.float64
        np.testing.assert_array_equal(host(moved), [0.1, 0.2])


def test_numerical_diff_cell(backend):
    # 4.2.2: the book prints 0.1999999999990898 and 0.2999999999986347.
    assert numerical_diff(function_1, 5) == pytest.approx(0.1999999999990898, rel=1e-13)
    assert numerical_diff(function_1, 10) == pytest.approx(0.2999999999986347, rel=1e-13)
    x = xpnn.asarray(np.array([5.0, 10.0]))
    np.testing.assert_allclose(
        host(numerical_diff(function_1, x)), [0.1999999999990898, 0.2999999999986347], rtol=1e-12
    )


@pytest.mark.parametrize(
    ("point", "book"),
    [((3.0, 4.0), (6.0, 8.0)), ((0.0, 2.0), (0.0, 4.0)), ((3.0, 0.0), (6.0, 0.0))],
)
def test_numerical_gradient_cell(backend, point, book):
    # 4.4: array([ 6.,  8.]), array([ 0.,  4.]), array([ 6.,  0.])
    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32GradientWarning)  # float64: no warning
        grad = numerical_gradient(function_2, xpnn.asarray(np.array(point)))
    np.testing.assert_allclose(host(grad), book, rtol=0, atol=1e-9)


def test_numerical_gradient_in_float32_warns_and_is_off(backend):
    x = xpnn.asarray(np.array([3.0, 4.0]), dtype="float32")
    with pytest.warns(Float32GradientWarning, match=r"float32.*dtype='float64'"):
        grad = host(numerical_gradient(function_2, x))
    assert np.abs(grad - [6.0, 8.0]).max() > 1e-3  # the three lost digits the warning is about


@pytest.mark.parametrize(
    ("lr", "book", "rtol"),
    [
        (0.1, (-6.11110793e-10, 8.14814391e-10), 1e-6),  # 4.4.1
        (10.0, (-2.58983747e13, -1.29524862e12), 1e-6),  # too large: diverges
        (1e-10, (-2.99999994, 3.99999992), 1e-8),  # too small: hardly moves
    ],
)
def test_gradient_descent_cells(backend, lr, book, rtol):
    init_x = xpnn.asarray(np.array([-3.0, 4.0]))
    x = gradient_descent(function_2, init_x=init_x, lr=lr, step_num=100)
    np.testing.assert_allclose(host(x), book, rtol=rtol)


def test_gradient_descent_float32_warns_once_per_call(backend):
    init_x = xpnn.asarray([-3.0, 4.0])  # a list: the backend's float32
    with pytest.warns(Float32GradientWarning) as record:
        x = gradient_descent(function_2, init_x=init_x, lr=10.0, step_num=100)
    assert len(record) == 1
    assert abs(host(x)).max() < 1e12  # float32 stops far from the book's 2.6e13


def test_gradient_descent_path_is_the_scripts_x_history(backend):
    init_x = xpnn.asarray(np.array([-3.0, 4.0]))
    x, x_history = gradient_descent(function_2, init_x, lr=0.1, step_num=20, return_path=True)
    assert tuple(x_history.shape) == (20, 2)
    np.testing.assert_array_equal(host(x_history)[0], [-3.0, 4.0])
    assert tuple(x.shape) == (2,)


def test_simplenet_cell(backend):
    # 4.4.2 with the W the book printed.
    net = xpnn.models.simpleNet()
    net.W = xpnn.asarray(
        np.array([[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]])
    )
    x = xpnn.asarray(np.array([0.6, 0.9]))
    p = net.predict(x)
    np.testing.assert_allclose(host(p), [1.05414809, 0.63071653, 1.1328074], rtol=1e-8)
    assert int(host(xpnn.get_namespace(p).argmax(p))) == 2
    t = xpnn.asarray(np.array([0, 0, 1]))
    # The book prints 0.92806853663411326, computed without its own 1e-7 delta.
    assert float(host(net.loss(x, t))) == pytest.approx(0.92806853663411326, abs=3e-7)

    def f(W):
        return net.loss(x, t)

    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32GradientWarning)
        dW = numerical_gradient(f, net.W)
    book = [[0.21924763, 0.14356247, -0.36281009], [0.32887144, 0.2153437, -0.54421514]]
    np.testing.assert_allclose(host(dW), book, atol=1e-6)


def test_simplenet_default_float32_weights_still_run_with_float64_data(backend, xp):
    net = xpnn.models.simpleNet(seed=0)  # float32 W, the default
    x = xpnn.asarray(np.array([0.6, 0.9]))
    assert net.predict(x).dtype == xp.float64  # the wider float, on every backend
    with pytest.warns(Float32GradientWarning):
        numerical_gradient(lambda W: net.loss(x, xpnn.asarray(np.array(2))), net.W)


def test_two_layer_net_cells(backend):
    # 4.5.1: the shapes, and numerical gradients that match backprop in float64.
    net = xpnn.TwoLayerNet(input_size=784, hidden_size=100, output_size=10)
    assert tuple(net.params["W1"].shape) == (784, 100)
    assert tuple(net.params["b1"].shape) == (100,)
    assert tuple(net.params["W2"].shape) == (100, 10)
    assert tuple(net.params["b2"].shape) == (10,)

    rng = np.random.default_rng(0)
    small = xpnn.TwoLayerNet(6, 5, 3, weight_init_std=0.5, seed=0, dtype="float64")
    x = xpnn.asarray(rng.random((4, 6)))
    t = xpnn.asarray(np.eye(3)[rng.integers(0, 3, 4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32GradientWarning)
        numeric = {k: host(v) for k, v in small.numerical_gradient(x, t).items()}
    backprop = {k: host(v) for k, v in small.gradient(x, t).items()}
    for k in numeric:
        np.testing.assert_allclose(numeric[k], backprop[k], rtol=1e-6, atol=1e-10)

    net32 = xpnn.TwoLayerNet(6, 5, 3, seed=0)
    with pytest.warns(Float32GradientWarning, match="TwoLayerNet.numerical_gradient"):
        net32.numerical_gradient(xpnn.asarray(rng.random((4, 6)), dtype="float32"), t)


def test_softmax_and_cross_entropy_cells(backend):
    # 3.5.1 / 4.2.2: softmax([0.3, 2.9, 4.0]) and the two cross-entropy examples.
    a = xpnn.asarray(np.array([0.3, 2.9, 4.0]))
    np.testing.assert_allclose(host(softmax(a)), [0.01821127, 0.24519181, 0.73659691], atol=5e-9)
    t = xpnn.asarray(np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0]))
    y = xpnn.asarray(np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]))
    assert float(host(cross_entropy_error(y, t))) == pytest.approx(0.51082545709933802, rel=1e-12)
    y = xpnn.asarray(np.array([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0]))
    assert float(host(cross_entropy_error(y, t))) == pytest.approx(2.3025840929945458, rel=1e-12)

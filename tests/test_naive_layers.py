"""Chapter 5's MulLayer and AddLayer (the book's layer_naive.py) on numbers and arrays."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.layers.naive import AddLayer, MulLayer


def test_the_books_apple_and_orange_shopping():
    # buy_apple_orange.py: 2 apples at 100, 3 oranges at 150, tax 1.1.
    mul_apple, mul_orange, add, mul_tax = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    apples = mul_apple.forward(100, 2)
    oranges = mul_orange.forward(150, 3)
    price = mul_tax.forward(add.forward(apples, oranges), 1.1)
    d_total, d_tax = mul_tax.backward(1)
    d_apples, d_oranges = add.backward(d_total)
    d_apple, d_apple_num = mul_apple.backward(d_apples)
    d_orange, d_orange_num = mul_orange.backward(d_oranges)
    assert price == (100 * 2 + 150 * 3) * 1.1
    assert (d_apple_num, d_apple, d_orange, d_orange_num, d_tax) == pytest.approx(
        (110, 2.2, 3.3, 165, 650)
    )


def test_on_arrays_of_every_backend(backend):
    x = xpnn.asarray(np.array([1.0, 2.0, 3.0]))
    y = xpnn.asarray(np.array([4.0, 5.0, 6.0]))
    mul = MulLayer()
    out = mul.forward(x, y)
    dx, dy = mul.backward(xpnn.asarray(np.ones(3)))
    np.testing.assert_array_equal(xpnn.to_numpy(out), [4.0, 10.0, 18.0])
    np.testing.assert_array_equal(xpnn.to_numpy(dx), [4.0, 5.0, 6.0])  # d(xy)/dx = y
    np.testing.assert_array_equal(xpnn.to_numpy(dy), [1.0, 2.0, 3.0])
    da, db = AddLayer().backward(x)
    np.testing.assert_array_equal(xpnn.to_numpy(da), xpnn.to_numpy(x))
    np.testing.assert_array_equal(xpnn.to_numpy(db), xpnn.to_numpy(x))


def test_backward_before_forward_is_refused():
    with pytest.raises(RuntimeError, match=r"MulLayer.backward needs a forward\(x, y\) call"):
        MulLayer().backward(1.0)


def test_the_star_import_gives_the_books_names():
    names = {}
    exec("from xpnn.layers.naive import *", names)
    assert {"MulLayer", "AddLayer"} <= set(names)


def test_matmul_takes_the_books_integer_one_hot_rows(backend):
    """vol. 2 ch03/cbow_predict.py: MatMul(W_in).forward(np.array([[1, 0, 0, 0, 0, 0, 0]]))."""
    from xpnn.layers import MatMul

    W = xpnn.asarray(np.arange(21, dtype=np.float64).reshape(7, 3) / 7)
    c0 = xpnn.asarray(np.array([[1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0]]))
    layer = MatMul(W)
    out = layer.forward(c0)
    np.testing.assert_array_equal(xpnn.to_numpy(out), xpnn.to_numpy(W)[[0, 2]])
    layer.backward(xpnn.asarray(np.ones((2, 3))))
    want = np.zeros((7, 3))
    want[[0, 2]] = 1
    np.testing.assert_array_equal(xpnn.to_numpy(layer.grads[0]), want)
    with pytest.raises(TypeError, match="W is float64, x is float32"):
        layer.forward(xpnn.asarray(np.eye(7, dtype=np.float32)))

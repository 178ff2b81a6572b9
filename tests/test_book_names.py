"""The book's names work where a port would reach for them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import xpnn


def test_spiral_load_data_is_the_books_function(backend, xp):
    from xpnn.datasets import spiral

    x, t = spiral.load_data(seed=1984)
    x2, t2 = xpnn.datasets.load_spiral()
    assert x.dtype == xp.float32 and tuple(x.shape) == (300, 2)
    assert tuple(t.shape) == (300, 3)
    np.testing.assert_array_equal(xpnn.to_numpy(x), xpnn.to_numpy(x2))
    np.testing.assert_array_equal(xpnn.to_numpy(t), xpnn.to_numpy(t2))
    other, _ = spiral.load_data(seed=1)
    assert not np.array_equal(xpnn.to_numpy(other), xpnn.to_numpy(x))


def test_spiral_keeps_float32_by_default_although_its_points_are_made_in_float64(backend, xp):
    x, _ = xpnn.datasets.load_spiral()
    assert x.dtype == xp.float32
    x64, _ = xpnn.datasets.load_spiral(dtype="float64")
    assert x64.dtype == xp.float64


def test_simplenet_has_the_books_name():
    assert xpnn.simpleNet is xpnn.SimpleNet is xpnn.models.simpleNet


def test_import_xpnn_then_xpnn_io_save_as_the_readme_writes_it(tmp_path):
    # A fresh interpreter: nothing else has imported xpnn.io before.
    code = (
        "import xpnn\n"
        "net = xpnn.TwoLayerNet(2, 3, 2, seed=0)\n"
        f"xpnn.io.save(net, {str(tmp_path / 'net.npz')!r})\n"
        f"print(type(xpnn.io.load({str(tmp_path / 'net.npz')!r})).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "TwoLayerNet"
    for name in ("io", "datasets", "functions", "gradient", "layers", "optimizers"):
        assert name in xpnn.__all__ and hasattr(xpnn, name)


def test_vol1_functions_and_gradient_names(backend):
    """softmax_loss and numerical_gradient_2d: the book's names, the book's numbers."""
    from xpnn.functions import cross_entropy_error, softmax, softmax_loss
    from xpnn.gradient import numerical_gradient, numerical_gradient_2d

    x = xpnn.asarray(np.array([[0.3, 2.9, 4.0], [1.0, -1.0, 0.5]]))
    t = xpnn.asarray(np.array([2, 0]))
    host = np.asarray(xpnn.to_numpy(x))
    p = np.exp(host - host.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    want = -np.sum(np.log(p[[0, 1], [2, 0]] + 1e-7)) / 2  # the book's composition
    assert float(xpnn.to_numpy(softmax_loss(x, t))) == pytest.approx(want, rel=1e-12)
    assert float(xpnn.to_numpy(softmax_loss(x, t))) == float(
        xpnn.to_numpy(cross_entropy_error(softmax(x), t))
    )
    assert numerical_gradient_2d is numerical_gradient

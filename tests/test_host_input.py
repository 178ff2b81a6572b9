"""NumPy data into a model: wrapped without a copy on PyTorch CPU, refused across devices.

The book's vol. 2 ``ch01/train_custom_loop.py`` predicts on its own ``np.c_[...]``
grid. A PyTorch CPU tensor and a NumPy array share host memory, so a model on
torch:cpu takes the NumPy array as it is (``torch.asarray`` wraps its buffer);
where the parameters live on another device (a GPU, array-api-strict's
``device1``) moving the data stays the caller's explicit ``xpnn.asarray``.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.backend import adopt_host_input


def _grid():
    xx, yy = np.meshgrid(np.arange(-1.0, 1.0, 0.5), np.arange(-1.0, 1.0, 0.5))
    return np.c_[xx.ravel(), yy.ravel()]  # float64, as the book's


def test_numpy_data_into_a_model(backend):
    net = xpnn.LayeredTwoLayerNet(2, 5, 3, seed=0, dtype="float64")
    x = _grid()
    t = np.arange(x.shape[0]) % 3
    on_cpu_torch = backend.name == "torch" and backend.device.type == "cpu"
    if backend.name != "numpy" and not on_cpu_torch:
        with pytest.raises(xpnn.BackendMismatchError, match=r"xpnn\.asarray"):
            net.predict(x)
        return
    moved_x, moved_t = xpnn.asarray(x), xpnn.asarray(t)  # the explicit way
    scores = net.predict(x)
    assert xpnn.backend_of(scores).name == backend.name  # computed where the model is
    np.testing.assert_array_equal(xpnn.to_numpy(scores), xpnn.to_numpy(net.predict(moved_x)))
    assert net.accuracy(x, t) == net.accuracy(moved_x, moved_t)
    assert float(xpnn.to_numpy(net.forward(x, t))) == float(
        xpnn.to_numpy(net.forward(moved_x, moved_t))
    )


def test_adopting_shares_the_buffer_and_leaves_other_data_alone(backend):
    like = xpnn.zeros(3)
    x = np.arange(3.0)
    got = adopt_host_input(x, like)
    if backend.name == "torch" and backend.device.type == "cpu":
        assert got.data_ptr() == x.ctypes.data  # wrapped, not copied
        assert str(got.dtype) == "torch.float64"  # its dtype kept
    else:
        assert got is x  # NumPy already, or another device: unchanged (refused later)
    assert adopt_host_input(like, like) is like
    assert adopt_host_input([1.0], like) == [1.0]  # only NumPy arrays are wrapped


def test_a_layer_with_torch_cpu_weights_takes_numpy_input(backend):
    """ch07/apply_filter.py: Convolution(w, 0).forward(img), img read by matplotlib."""
    from xpnn.layers import Convolution

    w = xpnn.asarray(np.arange(9.0, dtype=np.float32).reshape(1, 1, 3, 3))
    img = np.ones((1, 1, 5, 5), dtype=np.float32)
    conv = Convolution(w, 0)
    on_cpu_torch = backend.name == "torch" and backend.device.type == "cpu"
    if backend.name != "numpy" and not on_cpu_torch:
        with pytest.raises(xpnn.BackendMismatchError):
            conv.forward(img)
        return
    out = conv.forward(img)
    assert xpnn.backend_of(out).name == backend.name
    np.testing.assert_array_equal(xpnn.to_numpy(out), np.full((1, 1, 3, 3), 36.0))


def test_one_bias_number_for_every_filter(backend):
    from xpnn.layers import Convolution

    w = xpnn.asarray(np.ones((4, 1, 2, 2), dtype=np.float32))
    conv = Convolution(w, 0.5)
    b = conv.params[1]
    assert tuple(b.shape) == (4,) and b.dtype == w.dtype and xpnn.device_of(b) == xpnn.device_of(w)
    out = conv.forward(xpnn.asarray(np.ones((1, 1, 3, 3), dtype=np.float32)))
    np.testing.assert_array_equal(xpnn.to_numpy(out), np.full((1, 4, 2, 2), 4.5))
    with pytest.raises(TypeError, match="floating"):
        Convolution(w, True)  # a bool is no bias


def test_integer_label_columns_are_labels(backend):
    """ch07/gradient_check.py passes T = np.array([1]).reshape((1, 1))."""
    net = xpnn.SimpleConvNet(
        input_dim=(1, 6, 6),
        conv_param={"filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1},
        hidden_size=4,
        output_size=3,
        seed=0,
        dtype="float64",
    )
    x = xpnn.asarray(np.random.default_rng(0).random((4, 1, 6, 6)))
    labels = np.array([0, 2, 1, 2])
    t, column = xpnn.asarray(labels), xpnn.asarray(labels.reshape(4, 1))
    assert net.loss(x, column) == net.loss(x, t)
    assert net.accuracy(x, column) == net.accuracy(x, t)
    grads = {k: np.array(xpnn.to_numpy(g)) for k, g in net.gradient(x, column).items()}
    for k, g in net.gradient(x, t).items():
        np.testing.assert_array_equal(grads[k], xpnn.to_numpy(g))
    layered = xpnn.MultiLayerNet(3, [4], 3, seed=0)
    rows = xpnn.asarray(np.ones((4, 3), dtype=np.float32))
    assert layered.accuracy(rows, column) == layered.accuracy(rows, t)
    with pytest.raises(ValueError, match=r"labels of shape \(4, 2\)"):
        layered.forward(rows, xpnn.asarray(np.zeros((4, 2), dtype=np.int64)))

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

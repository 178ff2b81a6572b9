"""The benchmark's textbook references compute what xpnn computes.

A speed-up is only meaningful against a reference that is right: both
textbook nets must give xpnn's float64 gradients and loss for the same
weights and batch.
"""

import numpy as np
import pytest

import xpnn
from xpnn.bench import TextbookNet, TidiedTextbookNet, _textbook_step


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    x = rng.random((20, 784), dtype=np.float32)  # float32 images, as the book loads them
    t = rng.integers(0, 10, 20)
    return x, t, np.eye(10)[t]


def xpnn_net_like(book):
    with xpnn.use_backend("numpy", dtype="float64"):
        net = xpnn.TwoLayerNet(784, 50, 10, seed=0)
    for k, v in book.params.items():
        net.params[k][...] = v
    return net


@pytest.mark.parametrize("kind", ["book", "tidied"])
def test_textbook_gradients_and_loss_equal_xpnn(batch, kind):
    x, t, one_hot = batch
    book = TextbookNet(seed=1) if kind == "book" else TidiedTextbookNet(seed=1)
    xb, tb = (x, one_hot) if kind == "book" else (x.astype(np.float64), t)
    net = xpnn_net_like(book)
    want = net.gradient(x.astype(np.float64), t)
    got = book.gradient(xb, tb)
    for k in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-15, err_msg=k)
    # The book adds 1e-7 inside the log: about 1e-7 / 0.1 per sample here.
    np.testing.assert_allclose(
        book.loss(xb, tb), float(net.loss(x.astype(np.float64), t)), atol=2e-6
    )


def test_textbook_step_trains(batch):
    x, _, one_hot = batch
    book = TextbookNet(seed=1)
    x = np.repeat(x, 10, axis=0)
    one_hot = np.repeat(one_hot, 10, axis=0)
    before = book.loss(x, one_hot)
    step = _textbook_step(book, x, one_hot, seed=2)
    for _ in range(200):
        step()
    assert book.loss(x, one_hot) < before - 0.1


def test_bare_numpy_floor_step_computes_the_same_training():
    """The information-only floor step trains the same net as xpnn (float32 rounding)."""
    from xpnn.bench import BATCH, _floor_step

    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 784), dtype=np.float32)
    t = rng.integers(0, 10, BATCH)
    step = _floor_step(x, t, seed=3)
    with xpnn.use_backend("numpy"):
        net = xpnn.TwoLayerNet(784, 50, 10, seed=0)
    for k, v in step.params.items():
        net.params[k][...] = v
    opt = xpnn.SGD(lr=0.1)
    for _ in range(5):
        # A batch is the whole of x in some order: the gradient does not depend on it.
        step()
        opt.update(net.params, net.gradient(xpnn.asarray(x), xpnn.asarray(t)))
    for k, v in step.params.items():
        np.testing.assert_allclose(v, net.params[k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert np.abs(step.params["b2"]).max() > 1e-3  # it did train

"""Layers, SimpleNet and TwoLayerNet: book numbers, gradient checks, training."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.gradient import numerical_gradient
from xpnn.layers import Affine, MatMul, Relu, Sigmoid, Softmax, SoftmaxWithLoss


def host(a):
    return xpnn.to_numpy(a)


def f64(a):
    return xpnn.asarray(a, dtype="float64")


def rel_error(a, b):
    """max |a - b| relative to the larger gradient's scale (per parameter)."""
    a, b = host(a), host(b)
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-12)
    return float(np.max(np.abs(a - b)) / scale)


# ------------------------------------------------------------------ SimpleNet

BOOK_W = [[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]]


def test_simplenet_book_numbers(backend):
    net = xpnn.SimpleNet(dtype="float64")
    net.W = f64(BOOK_W)  # the book prints W, then everything computed from it
    x = f64([0.6, 0.9])
    t = f64([0, 0, 1])
    p = host(net.predict(x))
    np.testing.assert_allclose(p, [1.05414809, 0.63071653, 1.1328074], atol=1e-8)
    assert int(np.argmax(p)) == 2
    assert float(host(net.loss(x, t))) == pytest.approx(
        0.92806853663411326, abs=1e-6
    )  # W printed to 8 digits
    dW = numerical_gradient(lambda _: net.loss(x, t), net.W)
    np.testing.assert_allclose(
        host(dW),
        [[0.21924763, 0.14356247, -0.36281009], [0.32887144, 0.2153437, -0.54421514]],
        atol=1e-7,
    )


def test_simplenet_seeded_and_default_float32(backend, xp):
    a, b = xpnn.SimpleNet(seed=3), xpnn.SimpleNet(seed=3)
    assert a.W.shape == (2, 3) and a.W.dtype == xp.float32
    np.testing.assert_array_equal(host(a.W), host(b.W))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        a.predict(xpnn.asarray([1.0, 2.0, 3.0]))


# ---------------------------------------------------------------- TwoLayerNet


def test_two_layer_net_book_shapes(backend, xp):
    net = xpnn.TwoLayerNet(input_size=784, hidden_size=100, output_size=10, seed=0)
    shapes = {k: tuple(v.shape) for k, v in net.params.items()}
    assert shapes == {"W1": (784, 100), "b1": (100,), "W2": (100, 10), "b2": (10,)}
    assert all(v.dtype == xp.float32 for v in net.params.values())
    assert all(xpnn.device_of(v) == backend.device for v in net.params.values())
    w1 = host(net.params["W1"])
    assert abs(w1.std() - 0.01) < 0.0005 and not np.any(host(net.params["b1"]))
    x = xpnn.default_rng(1).random((100, 784))
    assert tuple(net.predict(x).shape) == (100, 10)
    np.testing.assert_allclose(host(net.predict(x)).sum(axis=1), 1.0, rtol=1e-5)


def test_same_seed_same_weights_on_every_backend(backend):
    on_backend = xpnn.TwoLayerNet(20, 7, 3, seed=42)
    with xpnn.use_backend("numpy"):
        on_numpy = xpnn.TwoLayerNet(20, 7, 3, seed=42)
    for key in on_numpy.params:
        np.testing.assert_array_equal(host(on_backend.params[key]), host(on_numpy.params[key]))
    other = xpnn.TwoLayerNet(20, 7, 3, seed=43)
    assert not np.array_equal(host(other.params["W1"]), host(on_backend.params["W1"]))


def _batch(n=6, d=5, c=3, seed=0, one_hot=False):
    rng = np.random.default_rng(seed)
    x = f64(rng.normal(size=(n, d)))
    labels = rng.integers(0, c, size=n)
    t = f64(np.eye(c)[labels]) if one_hot else xpnn.asarray(labels)
    return x, t


@pytest.mark.parametrize("one_hot", [False, True], ids=["int-labels", "one-hot"])
def test_backprop_equals_numerical_gradient_float64(backend, one_hot):
    net = xpnn.TwoLayerNet(5, 4, 3, weight_init_std=1.0, seed=7, dtype="float64")
    x, t = _batch(one_hot=one_hot)
    numeric = net.numerical_gradient(x, t)
    analytic = net.gradient(x, t)
    for key in net.KEYS:
        assert analytic[key].shape == net.params[key].shape
        assert rel_error(analytic[key], numeric[key]) <= 1e-6, key
        assert np.any(host(analytic[key]) != 0), key


def test_gradient_depends_on_the_data(backend):
    """A gradient that ignored x or t would still pass a check at one point."""
    net = xpnn.TwoLayerNet(5, 4, 3, weight_init_std=1.0, seed=7, dtype="float64")
    x1, t1 = _batch(seed=1)
    g1 = {k: host(v).copy() for k, v in net.gradient(x1, t1).items()}
    x2, t2 = _batch(seed=2)
    g2 = net.gradient(x2, t2)
    assert any(not np.allclose(g1[k], host(g2[k])) for k in net.KEYS)


def test_accuracy_and_labels(backend):
    net = xpnn.TwoLayerNet(5, 4, 3, seed=0, dtype="float64")
    x, t = _batch(n=8)
    predicted = np.argmax(host(net.predict(x)), axis=1)
    expected = float(np.mean(predicted == host(t)))
    assert float(host(net.accuracy(x, t))) == pytest.approx(expected)
    one_hot = f64(np.eye(3)[host(t)])
    assert float(host(net.accuracy(x, one_hot))) == pytest.approx(expected)
    assert float(host(net.loss(x, one_hot))) == pytest.approx(float(host(net.loss(x, t))))


def test_training_lowers_loss_and_raises_accuracy(backend):
    """Three Gaussian blobs; plain gradient descent with backprop, float32."""
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    labels = np.repeat(np.arange(3), 40)
    x = xpnn.asarray(centers[labels] + rng.normal(scale=0.5, size=(120, 4)), dtype="float32")
    t = xpnn.asarray(labels)
    net = xpnn.TwoLayerNet(4, 10, 3, weight_init_std=0.5, seed=0)
    loss0, acc0 = float(host(net.loss(x, t))), float(host(net.accuracy(x, t)))
    for _ in range(300):
        grads = net.gradient(x, t)
        for key in net.KEYS:
            net.params[key] -= 1.0 * grads[key]
    loss1, acc1 = float(host(net.loss(x, t))), float(host(net.accuracy(x, t)))
    assert loss1 < 0.5 * loss0
    assert acc1 >= 0.95 > acc0


def test_two_layer_net_errors(backend):
    with pytest.raises(ValueError, match="hidden_size"):
        xpnn.TwoLayerNet(4, 0, 3)
    with pytest.raises(ValueError, match="input_size"):
        xpnn.TwoLayerNet(4.0, 2, 3)
    net = xpnn.TwoLayerNet(4, 2, 3)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        net.loss(xpnn.asarray(np.zeros((2, 5))), xpnn.asarray(np.array([0, 1])))
    with pytest.raises(ValueError, match="dtype"):
        xpnn.TwoLayerNet(4, 2, 3, dtype="float8")


# ---------------------------------------------------------------------- layers


def _layer_cases(xp):
    rng = np.random.default_rng(5)
    W, b = f64(rng.normal(size=(4, 3))), f64(rng.normal(size=3))
    return {
        "MatMul": (MatMul(W), (2, 4)),
        "Affine": (Affine(xp.asarray(W, copy=True), b), (2, 4)),
        "Sigmoid": (Sigmoid(), (2, 3)),
        "Relu": (Relu(), (2, 3)),
        "Softmax": (Softmax(), (2, 3)),
    }


@pytest.mark.parametrize("name", ["MatMul", "Affine", "Sigmoid", "Relu", "Softmax"])
def test_layer_backward_equals_numerical_gradient(backend, xp, name):
    layer, shape = _layer_cases(xp)[name]
    rng = np.random.default_rng(6)
    x = f64(rng.normal(size=shape) + 0.05)  # keep Relu inputs away from its kink
    out = layer.forward(x)
    weights = f64(rng.normal(size=tuple(out.shape)))  # loss = sum(out * weights)

    def loss(_):
        return xp.sum(layer.forward(x) * weights)

    layer.forward(x)
    dx = layer.backward(weights)
    assert rel_error(dx, numerical_gradient(loss, x)) <= 1e-7
    grads = [xp.asarray(g, copy=True) for g in layer.grads]
    for param, grad in zip(layer.params, grads, strict=True):
        assert rel_error(grad, numerical_gradient(loss, param)) <= 1e-7


def test_layer_grads_are_written_in_place(backend):
    rng = np.random.default_rng(0)
    layer = Affine(f64(rng.normal(size=(3, 2))), f64(np.zeros(2)))
    before = [id(g) for g in layer.grads]
    layer.forward(f64(rng.normal(size=(4, 3))))
    layer.backward(f64(np.ones((4, 2))))
    assert [id(g) for g in layer.grads] == before
    np.testing.assert_allclose(host(layer.grads[1]), [4.0, 4.0])


def test_softmax_with_loss_backward(backend):
    x, t = _batch(n=4, d=3, c=3)
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, t)
    dx = host(layer.backward())
    y = host(xpnn.functions.softmax(x))
    expected = (y - np.eye(3)[host(t)]) / 4
    np.testing.assert_allclose(dx, expected, rtol=1e-12)
    assert float(host(loss)) > 0
    assert layer.loss is loss


def test_model_entry_points_name_what_is_wrong(backend):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    x = xpnn.asarray(np.zeros((5, 4)), dtype="float32")
    with pytest.raises(
        ValueError, match=r"labels of shape \(3,\) do not fit scores of shape \(5, 2\)"
    ):
        net.loss(x, xpnn.asarray(np.zeros(3, dtype=np.int64)))
    with pytest.raises(ValueError, match=r"\(5, 3\) do not fit"):
        net.gradient(x, xpnn.asarray(np.zeros((5, 3))))
    with pytest.raises(TypeError, match="floating-point inputs, got int64"):
        net.predict(xpnn.asarray(np.zeros((5, 4), dtype=np.int64)))
    # (NumPy data into torch:cpu is wrapped, not refused: test another device there.)
    other = "numpy" if backend.name == "array_api_strict" else "array_api_strict:device1"
    with xpnn.use_backend(other):
        x_other = xpnn.asarray(np.zeros((5, 4)), dtype="float32")
    with pytest.raises(xpnn.BackendMismatchError):
        net.accuracy(x_other, xpnn.asarray(np.zeros(5, dtype=np.int64)))


def _reads_labels_for_free(backend) -> bool:
    """Host memory (NumPy, PyTorch on the CPU): a label check costs no sync."""
    return backend.name == "numpy" or backend.spec == "torch:cpu"


@pytest.mark.parametrize("bad", [4, -1], ids=["too-large", "negative"])
def test_labels_out_of_range_never_give_a_finite_loss(backend, bad):
    """A label the net has no output for raises (host) or gives NaN loss and gradient."""
    x = xpnn.asarray(np.zeros((3, 4)), dtype="float32")
    t = xpnn.asarray(np.array([0, bad, 1]))
    layer = SoftmaxWithLoss()
    if _reads_labels_for_free(backend):
        with pytest.raises(ValueError, match=rf"0\.\.3, found values in .*{bad}"):
            layer.forward(x, t)
        return
    loss = layer.forward(x, t)
    dx = xpnn.to_numpy(layer.backward())
    assert np.isnan(float(xpnn.to_numpy(loss)))
    assert np.isnan(dx[1]).all() and np.isfinite(dx[[0, 2]]).all()


@pytest.mark.parametrize("bad", [4, -1], ids=["too-large", "negative"])
def test_models_refuse_labels_out_of_range(backend, bad):
    net = xpnn.TwoLayerNet(4, 3, 4, seed=0, dtype="float64")
    x = xpnn.asarray(np.ones((3, 4)))
    t = xpnn.asarray(np.array([0, bad, 1]))
    if _reads_labels_for_free(backend):
        for call in (net.loss, net.gradient, net.numerical_gradient):
            with pytest.raises(ValueError, match=str(bad)):
                call(x, t)
        return
    assert np.isnan(float(xpnn.to_numpy(net.loss(x, t))))
    for grads in (net.gradient(x, t), net.numerical_gradient(x, t)):
        assert all(np.isnan(xpnn.to_numpy(g)).all() for g in grads.values())


@pytest.mark.parametrize("bad", [4, -1], ids=["too-large", "negative"])
def test_functions_refuse_labels_out_of_range(backend, bad):
    y = xpnn.asarray(np.full((3, 4), 0.25))
    t = xpnn.asarray(np.array([0, bad, 1]))
    for fn in (xpnn.functions.cross_entropy_error, xpnn.functions.softmax_cross_entropy):
        if _reads_labels_for_free(backend):
            with pytest.raises(ValueError, match=str(bad)):
                fn(y, t)
        else:
            assert np.isnan(float(xpnn.to_numpy(fn(y, t))))

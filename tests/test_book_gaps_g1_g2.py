"""Issue 24, G1 and G2: vol. 1 ch. 5's ReLU ``TwoLayerNet`` and the two Nesterovs.

G1: ``TwoLayerNet(..., activation="relu")`` and ``TwoLayerNetReLU`` are ch.
5's Affine - Relu - Affine + SoftmaxWithLoss net; checked against a NumPy
forward pass written here and against their own numerical gradient, and
saved and loaded with their activation.

G2: ``Nesterov`` is vol. 1's corrected code (``p`` moves with the old
velocity), ``NesterovVol2`` vol. 2's (with the new one); each is checked
against a NumPy loop of its book formula.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnn
from xpnn.gradient import numerical_gradient
from xpnn.models import MODELS, TwoLayerNet, TwoLayerNetReLU
from xpnn.optimizers import OPTIMIZERS, Nesterov, NesterovVol2, get_optimizer

KEYS = ("W1", "b1", "W2", "b2")


def host(a):
    return xpnn.to_numpy(a)


def f64(a):
    return xpnn.asarray(np.array(a, dtype=np.float64), dtype="float64")


def relu_net(cls=TwoLayerNetReLU, sizes=(6, 5, 4), **kwargs):
    """A float64 net with weights large enough that ReLU cuts some units."""
    return cls(*sizes, weight_init_std=1.0, seed=3, dtype="float64", **kwargs)


def batch(n=7, d=6, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, c, size=n)


def numpy_relu_net(p, x, t):
    """Affine - ReLU - Affine, then softmax and mean cross-entropy, in NumPy."""
    z = np.maximum(x @ p["W1"] + p["b1"], 0.0)
    s = z @ p["W2"] + p["b2"]
    e = np.exp(s - s.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    return s, y, -np.mean(np.log(y[np.arange(len(t)), t]))


# ---------------------------------------------------------------- G1


@pytest.mark.parametrize("make", ["class", "argument"])
def test_relu_net_forward_is_affine_relu_affine_softmax(backend, make):
    net = relu_net() if make == "class" else relu_net(TwoLayerNet, activation="relu")
    assert [type(layer).__name__ for layer in net.layers] == ["Affine", "Relu", "Affine"]
    x, t = batch()
    p = {k: host(net.params[k]) for k in KEYS}
    scores, probs, loss = numpy_relu_net(p, x, t)
    assert (x @ p["W1"] + p["b1"] < 0).any()  # ReLU does cut
    np.testing.assert_allclose(host(net.loss(f64(x), xpnn.asarray(t))), loss, rtol=1e-12)
    onehot = np.eye(4)[t]
    np.testing.assert_allclose(host(net.loss(f64(x), f64(onehot))), loss, rtol=1e-12)
    # ch. 5's predict returns scores; TwoLayerNet's (ch. 4's) probabilities.
    want = scores if make == "class" else probs
    np.testing.assert_allclose(host(net.predict(f64(x))), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(host(net.predict(f64(x[0]))), want[0], rtol=1e-12, atol=1e-14)
    acc = np.mean(scores.argmax(axis=1) == t)
    assert float(host(net.accuracy(f64(x), xpnn.asarray(t)))) == pytest.approx(acc)


@pytest.mark.parametrize("cls", [TwoLayerNetReLU, TwoLayerNet])
def test_relu_gradient_equals_numerical_gradient(backend, cls):
    net = relu_net(cls, activation="relu")
    x, t = batch()
    for labels in (xpnn.asarray(t), f64(np.eye(4)[t])):
        grad = {k: host(g).copy() for k, g in net.gradient(f64(x), labels).items()}
        num = net.numerical_gradient(f64(x), labels)
        assert set(num) == set(KEYS)
        for k in KEYS:
            assert tuple(num[k].shape) == tuple(net.params[k].shape)
            np.testing.assert_allclose(host(num[k]), grad[k], rtol=1e-6, atol=1e-8)


def test_relu_numerical_gradient_is_the_books_loop():
    """The batched differences equal the element-by-element loop's."""
    net = relu_net()
    x, t = batch(n=3)
    x, t = f64(x), xpnn.asarray(t)
    fast = net.numerical_gradient(x, t)
    for k in KEYS:
        slow = numerical_gradient(lambda _: net.loss(x, t), net.params[k])
        np.testing.assert_allclose(host(fast[k]), host(slow), rtol=1e-8, atol=1e-10)


def test_sigmoid_stays_the_default():
    net = TwoLayerNet(3, 4, 2, seed=0)
    assert net.activation == "sigmoid"
    assert type(net.layers[1]).__name__ == "Sigmoid"
    assert TwoLayerNetReLU(3, 4, 2, seed=0).activation == "relu"
    # The same seed gives the same weights whatever the activation.
    relu = TwoLayerNet(3, 4, 2, seed=0, activation="relu")
    for k in KEYS:
        np.testing.assert_array_equal(host(relu.params[k]), host(net.params[k]))


@pytest.mark.parametrize("bad", ["tanh", "ReLU", "", None, 1])
def test_other_activations_are_refused(bad):
    if bad is None:  # None means the default
        assert TwoLayerNet(3, 4, 2, activation=None).activation == "sigmoid"
        return
    with pytest.raises(ValueError, match=r"activation must be 'sigmoid'.*or 'relu'"):
        TwoLayerNet(3, 4, 2, activation=bad)
    config = {"input_size": 3, "hidden_size": 4, "output_size": 2, "activation": bad}
    with pytest.raises(ValueError, match="activation"):
        TwoLayerNet.array_shapes(config)
    with pytest.raises(ValueError, match="activation"):
        TwoLayerNetReLU.from_config(config)


@pytest.mark.parametrize(
    ("cls", "kwargs", "activation"),
    [
        (TwoLayerNet, {}, "sigmoid"),
        (TwoLayerNet, {"activation": "relu"}, "relu"),
        (TwoLayerNetReLU, {}, "relu"),
    ],
)
def test_config_and_io_round_trip_keep_the_activation(backend, tmp_path, cls, kwargs, activation):
    net = cls(3, 4, 2, seed=1, dtype="float64", **kwargs)
    config = {"input_size": 3, "hidden_size": 4, "output_size": 2, "activation": activation}
    assert net.config == config
    assert cls.array_shapes(config) == {"W1": (3, 4), "b1": (4,), "W2": (4, 2), "b2": (2,)}
    rebuilt = cls.from_config(config)
    assert rebuilt.activation == activation and rebuilt.config == config
    assert MODELS[cls.__name__] is cls
    xpnn.io.save(net, tmp_path / "net.npz")
    loaded = xpnn.io.load(tmp_path / "net.npz")
    assert type(loaded) is cls and loaded.config == config
    assert type(loaded.layers[1]).__name__ == {"sigmoid": "Sigmoid", "relu": "Relu"}[activation]
    x = f64(np.random.default_rng(2).normal(size=(5, 3)))
    np.testing.assert_allclose(host(loaded.predict(x)), host(net.predict(x)), rtol=1e-15)


def test_a_file_saved_before_activation_loads_as_sigmoid(tmp_path):
    net = TwoLayerNet(3, 4, 2, seed=1, dtype="float64")
    path = tmp_path / "old.npz"
    xpnn.io.save(net, path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("__xpnn__")))
    del meta["config"]["activation"]
    np.savez(path, **arrays, __xpnn__=np.array(json.dumps(meta)))
    assert TwoLayerNet.array_shapes(meta["config"])["W1"] == (3, 4)
    loaded = xpnn.io.load(path)
    assert type(loaded) is TwoLayerNet and loaded.activation == "sigmoid"
    assert type(loaded.layers[1]).__name__ == "Sigmoid"


def test_a_ch05_port_changes_only_its_import(backend):
    """ch05/train_neuralnet.py's calls, with ``from xpnn import TwoLayerNetReLU as TwoLayerNet``."""
    from xpnn import TwoLayerNetReLU as TwoLayerNet  # the port's import line

    assert TwoLayerNet is xpnn.TwoLayerNetReLU is xpnn.models.TwoLayerNetReLU
    assert "TwoLayerNetReLU" in xpnn.__all__ and "TwoLayerNetReLU" in xpnn.models.__all__
    network = TwoLayerNet(input_size=784, hidden_size=50, output_size=10)
    assert network.activation == "relu"
    rng = np.random.default_rng(0)
    x_batch = xpnn.asarray(rng.random((20, 784)).astype(np.float32))
    t_batch = xpnn.asarray(np.eye(10, dtype=np.float32)[rng.integers(0, 10, 20)])
    before = float(host(network.loss(x_batch, t_batch)))
    for _ in range(30):
        grad = network.gradient(x_batch, t_batch)
        for key in ("W1", "b1", "W2", "b2"):
            network.params[key] -= 0.1 * grad[key]
    assert float(host(network.loss(x_batch, t_batch))) < before


# ---------------------------------------------------------------- G2


def book_loop(form, start, grads, lr, mu):
    """The book's Nesterov in NumPy: vol. 1's corrected code or vol. 2's."""
    p = {k: v.copy() for k, v in start.items()}
    v = {k: np.zeros_like(a) for k, a in start.items()}
    for g in grads:
        for k in p:
            if form == "vol1":
                p[k] += mu * mu * v[k]
                p[k] -= (1 + mu) * lr * g[k]
                v[k] *= mu
                v[k] -= lr * g[k]
            else:
                v[k] *= mu
                v[k] -= lr * g[k]
                p[k] += mu * mu * v[k]
                p[k] -= (1 + mu) * lr * g[k]
    return p, v


@pytest.mark.parametrize(("cls", "form"), [(Nesterov, "vol1"), (NesterovVol2, "vol2")])
@pytest.mark.parametrize("container", ["dict", "list"])
def test_nesterov_forms_are_the_books_loops(backend, cls, form, container):
    rng = np.random.default_rng(5)
    shapes = {"W": (3, 4), "b": (4,)}
    start = {k: rng.normal(size=s) for k, s in shapes.items()}
    grads = [{k: rng.normal(size=s) for k, s in shapes.items()} for _ in range(5)]
    lr, mu = 0.1, 0.9
    opt = cls(lr=lr, momentum=mu)
    params = {k: f64(a) for k, a in start.items()}
    if container == "list":
        params = list(params.values())
    for g in grads:
        g = {k: f64(a) for k, a in g.items()}
        opt.update(params, g if container == "dict" else list(g.values()))
    want_p, want_v = book_loop(form, start, grads, lr, mu)
    got_p = params if container == "dict" else dict(zip(shapes, params, strict=True))
    got_v = opt.v if container == "dict" else dict(zip(shapes, opt.v, strict=True))
    for k in shapes:
        np.testing.assert_allclose(host(got_p[k]), want_p[k], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(host(got_v[k]), want_v[k], rtol=1e-12, atol=1e-12)
    assert opt.iter == 5


def test_the_two_nesterovs_differ():
    rng = np.random.default_rng(5)
    start = {"W": rng.normal(size=(3, 4))}
    grads = [{"W": rng.normal(size=(3, 4))} for _ in range(5)]
    p1, v1 = book_loop("vol1", start, grads, 0.1, 0.9)
    p2, v2 = book_loop("vol2", start, grads, 0.1, 0.9)
    np.testing.assert_allclose(v1["W"], v2["W"], rtol=1e-12)  # the same velocities
    assert np.abs(p1["W"] - p2["W"]).max() > 1e-2
    np.testing.assert_allclose(p2["W"], p1["W"] + 0.81 * v1["W"], rtol=1e-12, atol=1e-12)


def test_nesterov_names_and_checkpoints():
    assert OPTIMIZERS["nesterov"] is Nesterov
    assert type(get_optimizer("Nesterov", lr=0.1)) is Nesterov
    assert NesterovVol2 not in OPTIMIZERS.values()
    assert xpnn.Nesterov is Nesterov and xpnn.optimizers.NesterovVol2 is NesterovVol2
    params = [f64([1.0, -2.0])]
    vol2 = NesterovVol2(lr=0.1, momentum=0.5)
    vol2.update(params, [f64([0.5, -4.0])])
    state = vol2.state_dict()
    assert state["optimizer"] == "NesterovVol2"
    assert state["hyperparams"] == {"lr": 0.1, "momentum": 0.5}
    resumed = NesterovVol2()
    resumed.load_state_dict(state)
    assert resumed.iter == 1 and repr(resumed) == "NesterovVol2(lr=0.1, momentum=0.5)"
    with pytest.raises(ValueError, match="'NesterovVol2', not 'Nesterov'"):
        Nesterov().load_state_dict(state)
    with pytest.raises(ValueError, match="'Nesterov', not 'NesterovVol2'"):
        NesterovVol2().load_state_dict(Nesterov().state_dict())

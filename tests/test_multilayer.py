"""The book's chapter-6 nets: MultiLayerNet and MultiLayerNetExtend (and train_flg)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn
import xpnn.models.multilayer
from xpnn.io import load, save
from xpnn.layers import Affine, BatchNormalization, Dropout, Layer, Relu, SoftmaxWithLoss
from xpnn.models import MODELS, LayeredNet
from xpnn.models.multilayer import MultiLayerNet, MultiLayerNetExtend, weight_init_scale

EPS = 10e-7  # the book's BatchNormalization epsilon

#: The book's MultiLayerNetExtend (two hidden layers, batch norm): params as its
#: __init_weight and then its layer loop add them, grads as its gradient() fills them.
BOOK_PARAMS_ORDER = ["W1", "b1", "W2", "b2", "W3", "b3", "gamma1", "beta1", "gamma2", "beta2"]
BOOK_GRADS_ORDER = ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"]


def host(a):
    return np.array(xpnn.to_numpy(a), copy=True)


def batch(n=4, d=6, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = xpnn.asarray(rng.normal(size=(n, d)), dtype="float64")
    return x, xpnn.asarray(rng.integers(0, c, size=n))


def extend(**kw):
    """A small float64 net, 6 - [5, 4] - 3, with random (non-zero) biases, gamma and beta.

    Random values keep ReLU away from its kink at 0 (the initial biases are
    exactly 0, where a sample whose kept inputs are all 0 sits on it).
    """
    kw.setdefault("seed", 1)
    net = MultiLayerNetExtend(6, [5, 4], 3, dtype="float64", **kw)
    rng = np.random.default_rng(2)
    for key, p in net.params.items():
        if not key.startswith("W"):
            base = 1.0 if key.startswith("gamma") else 0.0
            values = base + rng.uniform(0.2, 0.5, size=p.shape) * rng.choice([-1, 1], p.shape)
            net.params[key] = xpnn.asarray(values, dtype="float64")
    return net


def close(analytic, numeric, key):
    a, n = host(analytic), host(numeric)
    # A bias before BatchNormalization has a gradient of exactly 0 (the
    # normalisation removes it): compare it absolutely.
    tol = 1e-6 * max(float(np.max(np.abs(a))), float(np.max(np.abs(n))), 1e-3)
    assert float(np.max(np.abs(a - n))) <= tol, key


# ------------------------------------------------------------ gradients


@pytest.mark.parametrize("lam", [0, 0.1], ids=["no-decay", "decay"])
@pytest.mark.parametrize("use_dropout", [False, True], ids=["", "dropout"])
@pytest.mark.parametrize("use_batchnorm", [False, True], ids=["", "bn"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_backprop_equals_numerical_gradient(backend, activation, use_batchnorm, use_dropout, lam):
    net = extend(
        activation=activation,
        weight_decay_lambda=lam,
        use_dropout=use_dropout,
        dropout_ration=0.3,
        use_batchnorm=use_batchnorm,
    )
    x, t = batch()
    numeric = net.numerical_gradient(x, t)  # the masks the next training pass draws
    analytic = net.gradient(x, t)
    assert list(analytic) == list(numeric) == list(net.grads)
    assert set(numeric) == set(net.params)
    for key in net.params:
        assert tuple(numeric[key].shape) == tuple(net.params[key].shape)
        close(analytic[key], numeric[key], key)
    assert np.any(host(analytic["W1"]) != 0)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_multilayernet_is_the_extend_without_extras(backend, activation):
    x, t = batch()
    plain = MultiLayerNet(
        6, [5, 4], 3, activation, weight_decay_lambda=0.1, seed=4, dtype="float64"
    )
    ext = MultiLayerNetExtend(
        6, [5, 4], 3, activation, weight_decay_lambda=0.1, seed=4, dtype="float64"
    )
    assert [type(layer) for layer in plain.layers] == [type(layer) for layer in ext.layers]
    numeric = plain.numerical_gradient(x, t)
    analytic = {k: host(g) for k, g in plain.gradient(x, t).items()}
    same = ext.gradient(x, t)
    for key in plain.params:
        close(analytic[key], numeric[key], key)
        np.testing.assert_array_equal(analytic[key], host(same[key]))


def test_weight_decay_is_added_to_every_w_gradient_scaled_by_dout(backend):
    x, t = batch()
    lam = 0.25
    plain, decayed = extend(use_batchnorm=True), extend(use_batchnorm=True, weight_decay_lambda=lam)
    want = {k: host(g) for k, g in plain.gradient(x, t).items()}
    got = decayed.gradient(x, t)
    assert got is decayed.grads
    for key, g in want.items():
        extra = lam * host(decayed.params[key]) if key.startswith("W") else 0.0
        np.testing.assert_allclose(host(got[key]), g + extra, rtol=1e-12, atol=1e-15)
    # dout (a loss scale: a number or a 0-d device array) scales the decay too.
    for dout in (2.0, xpnn.asarray(2.0, dtype="float64")):
        decayed.forward(x, t)
        decayed.backward(dout, input_grad=False)
        for key, g in want.items():
            extra = lam * host(decayed.params[key]) if key.startswith("W") else 0.0
            np.testing.assert_allclose(host(decayed.grads[key]), 2 * (g + extra), rtol=1e-12)


def test_without_decay_the_loss_is_the_loss_layers(backend):
    net = extend()
    x, t = batch()
    assert net.forward(x, t) is net.loss_layer.loss  # nothing added, nothing computed


def test_grads_are_the_layers_arrays(backend):
    net = extend(use_batchnorm=True, use_dropout=True)
    affines = [layer for layer in net.layers if isinstance(layer, Affine)]
    bns = [layer for layer in net.layers if isinstance(layer, BatchNormalization)]
    for i, layer in enumerate(affines, 1):
        assert layer.params[0] is net.params[f"W{i}"] and layer.grads[0] is net.grads[f"W{i}"]
        assert layer.params[1] is net.params[f"b{i}"] and layer.grads[1] is net.grads[f"b{i}"]
    for i, layer in enumerate(bns, 1):
        assert layer.params[0] is net.params[f"gamma{i}"] and layer.dgamma is net.grads[f"gamma{i}"]
        assert layer.params[1] is net.params[f"beta{i}"] and layer.dbeta is net.grads[f"beta{i}"]
    # The book's orders: params as its __init_weight and layer loop add them, grads
    # as its gradient() fills them, layer by layer.
    assert list(net.params) == BOOK_PARAMS_ORDER
    assert list(net.grads) == BOOK_GRADS_ORDER


# ------------------------------------------------------------ the loss, by hand


def numpy_loss(net, x, t, *, train, masks=None, running=None):
    """The book's MultiLayerNetExtend loss in NumPy, from the net's host arrays."""
    p = {k: host(v) for k, v in net.params.items()}
    cfg = net.config
    h = host(x)
    stats = []
    for i in range(1, len(cfg["hidden_size_list"]) + 1):
        a = h @ p[f"W{i}"] + p[f"b{i}"]
        if cfg.get("use_batchnorm"):
            if train:
                mu, var = a.mean(axis=0), a.var(axis=0)
                stats.append((mu, var))
            else:
                mu, var = running[i - 1]
            a = p[f"gamma{i}"] * (a - mu) / np.sqrt(var + EPS) + p[f"beta{i}"]
        h = np.maximum(a, 0) if cfg["activation"] == "relu" else 1 / (1 + np.exp(-a))
        if cfg.get("use_dropout"):
            h = h * masks[i - 1] if train else h * (1 - cfg["dropout_ration"])
    last = len(cfg["hidden_size_list"]) + 1
    s = h @ p[f"W{last}"] + p[f"b{last}"]
    s = s - s.max(axis=1, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    ce = -logp[np.arange(len(s)), host(t)].mean()
    decay = sum(
        0.5 * cfg["weight_decay_lambda"] * np.sum(p[f"W{i}"] ** 2) for i in range(1, last + 1)
    )
    return ce + decay, stats


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_loss_equals_the_numpy_computation(backend, activation):
    net = extend(
        activation=activation, weight_decay_lambda=0.1, use_dropout=True, use_batchnorm=True
    )
    x, t = batch(n=8)
    train_loss = float(host(net.loss(x, t, train_flg=True)))
    masks = [host(layer.mask) for layer in net.layers if isinstance(layer, Dropout)]
    assert len(masks) == 2 and 0 < np.mean(np.concatenate([m.ravel() for m in masks])) < 1
    want, stats = numpy_loss(net, x, t, train=True, masks=masks)
    assert train_loss == pytest.approx(want, rel=1e-12)
    # The running statistics moved from 0 by (1 - momentum) of the batch's.
    bns = [layer for layer in net.layers if isinstance(layer, BatchNormalization)]
    for bn, (mu, var) in zip(bns, stats, strict=True):
        np.testing.assert_allclose(host(bn.running_mean), 0.1 * mu, rtol=1e-12)
        np.testing.assert_allclose(host(bn.running_var), 0.1 * var, rtol=1e-12)
    # Test mode (the default of loss): running statistics, activations scaled.
    running = [(host(bn.running_mean), host(bn.running_var)) for bn in bns]
    want, _ = numpy_loss(net, x, t, train=False, running=running)
    assert float(host(net.loss(x, t))) == pytest.approx(want, rel=1e-12)
    plain = MultiLayerNet(
        6, [5, 4], 3, activation, weight_decay_lambda=0.1, seed=5, dtype="float64"
    )
    want, _ = numpy_loss(plain, x, t, train=True)
    assert float(host(plain.loss(x, t))) == pytest.approx(want, rel=1e-12)


def test_numerical_gradient_leaves_statistics_draws_and_params_as_they_were(backend):
    net = extend(use_dropout=True, use_batchnorm=True, weight_decay_lambda=0.1)
    x, t = batch()
    net.gradient(x, t)  # a training step: running statistics move, one mask drawn
    dropouts = [layer for layer in net.layers if isinstance(layer, Dropout)]
    bns = [layer for layer in net.layers if isinstance(layer, BatchNormalization)]
    before = {k: host(a) for k, a in net.named_arrays().items()}
    arrays = [(bn.running_mean, bn.running_var) for bn in bns]
    masks = [d.mask for d in dropouts]
    assert [d.draws for d in dropouts] == [1, 1]
    net.numerical_gradient(x, t)
    assert [d.draws for d in dropouts] == [1, 1]
    assert [d.mask for d in dropouts] == masks and not any(d.hold_mask for d in dropouts)
    assert [(bn.running_mean, bn.running_var) for bn in bns] == arrays  # the same arrays
    for key, a in net.named_arrays().items():
        np.testing.assert_array_equal(host(a), before[key], err_msg=key)


def test_numerical_gradient_warns_in_float32(backend):
    net = MultiLayerNetExtend(3, [2], 2, use_batchnorm=True, seed=0)
    x = xpnn.asarray(np.ones((2, 3)), dtype="float32")
    with pytest.warns(xpnn.gradient.Float32GradientWarning, match="float32"):
        net.numerical_gradient(x, xpnn.asarray(np.array([0, 1])))


# ------------------------------------------------------------ initial weights


def test_weight_init_scale():
    assert weight_init_scale("relu", 50) == weight_init_scale("HE", 50) == math.sqrt(2 / 50)
    assert weight_init_scale("Sigmoid", 8) == weight_init_scale("xavier", 8) == math.sqrt(1 / 8)
    assert weight_init_scale(0.01, 784) == 0.01
    for bad in ["tanh", 0, -0.1, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="weight_init_std"):
            weight_init_scale(bad, 10)
    with pytest.raises(TypeError, match="weight_init_std"):
        weight_init_scale(None, 10)
    with pytest.raises(ValueError, match="fan_in"):
        weight_init_scale("he", 0)


@pytest.mark.parametrize(
    ("std", "expected"),
    [
        ("relu", [math.sqrt(2 / 800), math.sqrt(2 / 400)]),
        ("xavier", [math.sqrt(1 / 800), math.sqrt(1 / 400)]),
    ],
)
def test_weight_scales_of_a_big_net(backend, std, expected):
    net = MultiLayerNet(800, [400], 800, weight_init_std=std, seed=0)
    for key, want in zip(["W1", "W2"], expected, strict=True):
        assert host(net.params[key]).std() == pytest.approx(want, rel=0.01), key
        assert abs(host(net.params[key]).mean()) < 0.01 * want
    assert not np.any(host(net.params["b1"]))


def test_same_seed_same_weights_on_every_backend(backend):
    kw = dict(use_batchnorm=True, use_dropout=True, seed=42, dtype="float64")
    on_backend = MultiLayerNetExtend(7, [6, 5], 4, weight_init_std=0.5, **kw)
    with xpnn.use_backend("numpy"):
        on_numpy = MultiLayerNetExtend(7, [6, 5], 4, weight_init_std=0.5, **kw)
    rng = np.random.default_rng(42)  # W1, W2, W3 in order: 0.5 * standard normal
    for key, shape in [("W1", (7, 6)), ("W2", (6, 5)), ("W3", (5, 4))]:
        want = 0.5 * rng.standard_normal(shape)
        np.testing.assert_array_equal(host(on_backend.params[key]), want)
        np.testing.assert_array_equal(host(on_numpy.params[key]), want)
    np.testing.assert_array_equal(host(on_backend.params["gamma2"]), np.ones(5))
    # The Dropout seeds derive from the net's: the same masks everywhere.
    x, t = batch(d=7, c=4)
    on_backend.gradient(x, t)
    with xpnn.use_backend("numpy"):
        on_numpy.gradient(xpnn.asarray(host(x)), xpnn.asarray(host(t)))
    for a, b in zip(on_backend.layers, on_numpy.layers, strict=True):
        if isinstance(a, Dropout):
            assert a.seed == b.seed
            np.testing.assert_array_equal(host(a.mask), host(b.mask))
    other = MultiLayerNetExtend(7, [6, 5], 4, seed=43, dtype="float64")
    assert not np.array_equal(host(other.params["W1"]), host(on_backend.params["W1"]))


def test_settings_are_read_only_but_the_decay_may_change(backend):
    net = extend(use_dropout=True)
    x, t = batch()
    base = float(host(net.loss(x, t)))
    net.weight_decay_lambda = 0.5
    assert net.config["weight_decay_lambda"] == 0.5
    want = base + 0.25 * sum(float(np.sum(host(net.params[f"W{i}"]) ** 2)) for i in (1, 2, 3))
    assert float(host(net.loss(x, t))) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="weight_decay_lambda"):
        net.weight_decay_lambda = -1.0
    assert net.weight_decay_lambda == 0.5
    for name in ("activation", "hidden_size_list", "dropout_ration", "use_batchnorm", "seed"):
        with pytest.raises(AttributeError):
            setattr(net, name, getattr(net, name))
    assert (net.hidden_size_list, net.hidden_layer_num, net.output_size) == ([5, 4], 2, 3)


def test_default_dtype_and_seed(backend, xp):
    net = MultiLayerNetExtend(3, [2], 2, use_dropout=True, use_batchnorm=True)
    assert all(p.dtype == xp.float32 for p in net.params.values())
    assert isinstance(net.seed, int) and net.config["seed"] == net.seed
    assert net.last_layer is net.loss_layer


# ------------------------------------------------------------ arguments


BAD = [
    ({"input_size": 0}, ValueError, "input_size"),
    ({"input_size": 2.0}, ValueError, "input_size"),
    ({"hidden_size_list": []}, ValueError, "hidden_size_list"),
    ({"hidden_size_list": [3, 0]}, ValueError, "hidden_size_list"),
    ({"hidden_size_list": 3}, ValueError, "hidden_size_list"),
    ({"hidden_size_list": [True]}, ValueError, "hidden_size_list"),
    ({"output_size": -1}, ValueError, "output_size"),
    ({"activation": "tanh"}, ValueError, "activation"),
    ({"weight_init_std": "lecun"}, ValueError, "weight_init_std"),
    ({"weight_init_std": -0.01}, ValueError, "weight_init_std"),
    ({"weight_decay_lambda": -0.1}, ValueError, "weight_decay_lambda"),
    ({"weight_decay_lambda": float("inf")}, ValueError, "weight_decay_lambda"),
    ({"weight_decay_lambda": float("nan")}, ValueError, "weight_decay_lambda"),
    ({"weight_decay_lambda": "0.1"}, TypeError, "weight_decay_lambda"),
    ({"dropout_ration": 1.0}, ValueError, "dropout_ration"),
    ({"dropout_ration": -0.1}, ValueError, "dropout_ration"),
    ({"use_dropout": "yes"}, TypeError, "use_dropout"),
    ({"use_batchnorm": 1}, TypeError, "use_batchnorm"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 2**63}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
]


@pytest.mark.parametrize(("change", "error", "name"), BAD, ids=[str(c) for c, _, _ in BAD])
def test_invalid_arguments_raise_before_anything_is_allocated(monkeypatch, change, error, name):
    def refuse(*args, **kwargs):
        raise AssertionError("allocated before checking the arguments")

    monkeypatch.setattr(xpnn.models.multilayer, "default_rng", refuse)
    monkeypatch.setattr(xpnn.models.multilayer, "zeros", refuse)
    args = {"input_size": 4, "hidden_size_list": [3], "output_size": 2, **change}
    with pytest.raises(error, match=name):
        MultiLayerNetExtend(**args)
    extended = {"use_dropout", "dropout_ration", "use_batchnorm"}
    if not extended & set(change):
        with pytest.raises(error, match=name):
            MultiLayerNet(**args)


def test_a_bad_file_config_is_a_value_error_naming_the_key():
    good = MultiLayerNetExtend(4, [3], 2, use_batchnorm=True, seed=0).config
    assert MultiLayerNetExtend.array_shapes(good)["running_var1"] == (3,)
    for key, value in [("use_batchnorm", "yes"), ("hidden_size_list", [0]), ("seed", None)]:
        with pytest.raises(ValueError, match=key):
            MultiLayerNetExtend.array_shapes({**good, key: value})
    with pytest.raises(ValueError, match="exactly the keys"):
        MultiLayerNet.array_shapes(good)  # the extended keys are not MultiLayerNet's
    with pytest.raises(ValueError, match="exactly the keys"):
        MultiLayerNetExtend.array_shapes(None)


# ------------------------------------------------------------ saving


@pytest.mark.parametrize("cls", [MultiLayerNet, MultiLayerNetExtend])
def test_save_load_round_trip(backend, tmp_path, cls):
    extra = {"use_dropout": True, "dropout_ration": 0.25, "use_batchnorm": True}
    kw = extra if cls is MultiLayerNetExtend else {}
    net = cls(6, [5, 4], 3, "sigmoid", 0.3, 0.01, **kw, seed=7, dtype="float64")
    x, t = batch(n=8)
    for _ in range(3):  # train a little: the running statistics move from 0
        grads = net.gradient(x, t)
        for key in net.params:
            net.params[key] -= 0.5 * grads[key]
    assert MODELS[cls.__name__] is cls
    loaded = load(save(net, tmp_path / "net.npz"))
    assert type(loaded) is cls and loaded.config == net.config
    arrays = net.named_arrays()
    assert set(arrays) == set(cls.array_shapes(net.config))
    if cls is MultiLayerNetExtend:
        assert {"running_mean1", "running_var1", "running_mean2", "running_var2"} <= set(arrays)
        assert np.any(host(arrays["running_var2"]) != 0)
    for key, a in loaded.named_arrays().items():
        np.testing.assert_array_equal(host(a), host(arrays[key]), err_msg=key)
    np.testing.assert_array_equal(host(loaded.predict(x)), host(net.predict(x)))
    assert float(host(loaded.loss(x, t))) == float(host(net.loss(x, t)))
    # The loaded statistics are the ones its layers use.
    bns = [layer for layer in loaded.layers if isinstance(layer, BatchNormalization)]
    for i, bn in enumerate(bns, 1):
        assert bn.running_mean is loaded.named_arrays()[f"running_mean{i}"]


# ------------------------------------------------------------ training


def test_trainer_fits_batchnorm_and_dropout(backend):
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=2.0, size=(3, 6))
    labels = rng.integers(0, 3, size=120)
    x = xpnn.asarray(centers[labels] + rng.normal(scale=0.5, size=(120, 6)), dtype="float32")
    t = xpnn.asarray(labels)
    net = MultiLayerNetExtend(
        6,
        [16, 16],
        3,
        weight_decay_lambda=0.001,
        use_dropout=True,
        dropout_ration=0.2,
        use_batchnorm=True,
        seed=0,
    )
    before = float(host(net.loss(x, t)))
    trainer = xpnn.Trainer(net, xpnn.SGD(0.1))
    trainer.fit(x, t, max_epoch=15, batch_size=20, eval_interval=6, progress=False, verbose=False)
    losses = trainer.loss_list
    assert len(losses) == 15 and losses[-1] < 0.5 * losses[0]
    assert float(host(net.loss(x, t))) < 0.5 * before
    assert float(host(net.accuracy(x, t))) >= 0.9
    assert [d.draws for d in net.layers if isinstance(d, Dropout)] == [90, 90]


# ------------------------------------------------------------ LayeredNet's train_flg


class Recorder(Layer):
    """Passes x through and records the train_flg of each call."""

    takes_train_flg = True

    def __init__(self):
        super().__init__()
        self.flags = []

    def forward(self, x, train_flg=True):
        self.flags.append(train_flg)
        return x

    def backward(self, dout, *, input_grad=True):
        return dout


def test_layered_net_passes_train_flg_only_to_the_layers_that_take_it(backend):
    rng = xpnn.default_rng(0)
    layers = [Affine(rng.standard_normal((3, 4)), xpnn.zeros(4)), Recorder(), Relu()]
    layers.append(Affine(rng.standard_normal((4, 2)), xpnn.zeros(2)))
    net = LayeredNet(layers, SoftmaxWithLoss(), 3)  # Relu and Affine would refuse a flag
    x, t = rng.standard_normal((5, 3)), xpnn.asarray(np.array([0, 1, 0, 1, 1]))
    net.forward(x, t)
    net.backward()
    net.forward(x, t, train_flg=False)
    net.predict(x)
    net.scores(x)
    net.accuracy(x, t)
    net.predict(x, train_flg=True)
    net.scores(x[0, ...], train_flg=True)
    assert layers[1].flags == [True, False, False, False, False, True, True]


def test_gradients_come_in_the_books_order(backend):
    """ch06/batch_norm_gradient_check.py prints the keys of gradient() in its order."""
    net = xpnn.MultiLayerNetExtend(4, [3, 3], 2, use_batchnorm=True, seed=0, dtype="float64")
    x = xpnn.asarray(np.random.default_rng(0).normal(size=(2, 4)))
    t = xpnn.asarray(np.array([0, 1]))
    assert list(net.gradient(x, t)) == BOOK_GRADS_ORDER
    assert list(net.numerical_gradient(x, t)) == BOOK_GRADS_ORDER
    # params keep the book's own order: its __init_weight's W and b first.
    assert list(net.params) == BOOK_PARAMS_ORDER

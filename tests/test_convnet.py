"""The book's convolutional nets: SimpleConvNet (ch. 7) and DeepConvNet (ch. 8)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn
import xpnn.models.convnet
from xpnn.io import load, save
from xpnn.layers import Affine, Convolution, Dropout, Pooling, Relu
from xpnn.models import MODELS
from xpnn.models.convnet import DeepConvNet, SimpleConvNet


def host(a):
    return np.array(xpnn.to_numpy(a), copy=True)


def conv(filter_num, filter_size=3, pad=1, stride=1):
    return {"filter_num": filter_num, "filter_size": filter_size, "pad": pad, "stride": stride}


def images(n, shape=(1, 8, 8), classes=3, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = xpnn.asarray(rng.normal(size=(n, *shape)), dtype=dtype)
    return x, xpnn.asarray(rng.integers(0, classes, size=n))


def simple(**kw):
    """A tiny float64 SimpleConvNet: (2, 7, 7) images, 3 filters 3x3 (pad 1, stride 2)."""
    args = dict(input_dim=(2, 7, 7), conv_param=conv(3, 3, 1, 2), hidden_size=5, output_size=3)
    args.update(kw)
    args.setdefault("weight_init_std", 0.3)
    args.setdefault("seed", 1)
    return SimpleConvNet(**args, dtype="float64")


#: A shrunken DeepConvNet: 2 filters per convolution, the book's pads and strides.
DEEP_SMALL = {
    f"conv_param_{i}": conv(2 if i < 5 else 3, 3, 2 if i == 4 else 1) for i in range(1, 7)
}


def deep(seed=1, **kw):
    """A tiny float64 DeepConvNet on (1, 8, 8) images (8-8-pool-4-6-pool-3-3-pool-1)."""
    args = dict(input_dim=(1, 8, 8), **DEEP_SMALL, hidden_size=4, output_size=3)
    args.update(kw)
    return DeepConvNet(**args, seed=seed, dtype="float64")


def random_biases(net, seed=2):
    """Positive biases keep most ReLUs alive (a tiny net with zero biases is often dead)
    and their inputs away from the kink at 0 (and pooling from ties at 0)."""
    rng = np.random.default_rng(seed)
    for key, p in net.params.items():
        if key.startswith("b"):
            net.params[key] = xpnn.asarray(rng.uniform(0.05, 0.3, size=p.shape), dtype="float64")
    return net


def close(analytic, numeric, key):
    a, n = host(analytic), host(numeric)
    tol = 1e-6 * max(float(np.max(np.abs(a))), float(np.max(np.abs(n))), 1e-3)
    assert float(np.max(np.abs(a - n))) <= tol, key


# ------------------------------------------------------------ gradients


@pytest.mark.parametrize(
    "kw",
    [
        {},  # (2, 7, 7), pad 1, stride 2: an even 4x4 convolution output
        {"input_dim": (1, 7, 6), "conv_param": conv(2, 2, 0, 1)},  # odd 6x5: pooled 3x2
    ],
    ids=["pad1-stride2", "odd-nonsquare"],
)
def test_simple_convnet_backprop_equals_numerical_gradient(backend, kw):
    net = random_biases(simple(**kw))
    x, t = images(3, net.input_dim)
    numeric = net.numerical_gradient(x, t)
    analytic = net.gradient(x, t)
    assert analytic is net.grads
    assert list(analytic) == list(numeric) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for key in net.params:
        assert tuple(numeric[key].shape) == tuple(net.params[key].shape)
        close(analytic[key], numeric[key], key)
    assert np.any(host(analytic["W1"]) != 0)


def test_deep_convnet_backprop_equals_numerical_gradient_with_dropout_held(backend):
    # Perturbing a weight by h = 1e-4 moves hundreds of ReLU inputs and pooling maxima:
    # some nets cross a kink (then only the numerical gradient is off: the backprop equals
    # torch's autograd, test_gradient_equals_torch_autograd); this one crosses none.
    net = random_biases(deep(seed=0), seed=10)
    x, t = images(2)
    dropouts = [layer for layer in net.layers if isinstance(layer, Dropout)]
    numeric = net.numerical_gradient(x, t)  # the masks the next training pass draws
    assert [d.draws for d in dropouts] == [0, 0] and not any(d.hold_mask for d in dropouts)
    analytic = net.gradient(x, t)
    assert [d.draws for d in dropouts] == [1, 1]
    assert list(analytic) == list(numeric) == [f"{p}{i}" for i in range(1, 9) for p in "Wb"]
    for key in net.params:
        close(analytic[key], numeric[key], key)
    assert np.any(host(analytic["W1"]) != 0)
    # The second Dropout (after the last Affine) drops some scores: W8's columns.
    assert 0 < np.mean(host(dropouts[1].mask)) < 1


def test_grads_are_the_layers_arrays(backend):
    for net, kinds in [
        (simple(), [Convolution, Relu, Pooling, Affine, Relu, Affine]),
        (
            deep(),
            [Convolution, Relu, Convolution, Relu, Pooling] * 3
            + [Affine, Relu, Dropout, Affine, Dropout],
        ),
    ]:
        assert [type(layer) for layer in net.layers] == kinds
        with_params = [layer for layer in net.layers if layer.params]
        for i, layer in enumerate(with_params, 1):
            assert layer.params[0] is net.params[f"W{i}"] and layer.grads[0] is net.grads[f"W{i}"]
            assert layer.params[1] is net.params[f"b{i}"] and layer.grads[1] is net.grads[f"b{i}"]
            if isinstance(layer, Convolution):  # the book's names
                assert layer.dW is layer.grads[0] and layer.db is layer.grads[1]
        assert net.last_layer is net.loss_layer
    # The book's DeepConvNet finds its parameters at these layer indices.
    net = deep()
    for i, layer_idx in enumerate((0, 2, 5, 7, 10, 12, 15, 18), 1):
        assert net.layers[layer_idx].params[0] is net.params[f"W{i}"]
    assert [i for i, layer in enumerate(net.layers) if isinstance(layer, Dropout)] == [17, 19]


# ------------------------------------------------------------ the computation, by an oracle


def torch_scores(net, x, *, dropout_scale=1.0, params=None):
    """The net's scores by torch.nn.functional, from its host arrays (or ``params``).

    ``dropout_scale``: a number (test mode) or the two Dropout masks (training).
    """
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    p = params or {k: torch.from_numpy(host(v)) for k, v in net.params.items()}
    scales = dropout_scale if isinstance(dropout_scale, list) else [dropout_scale] * 2
    h = torch.from_numpy(host(x))
    params = [net.conv_param] if isinstance(net, SimpleConvNet) else net.conv_params
    for i, cp in enumerate(params, 1):
        h = F.conv2d(h, p[f"W{i}"], p[f"b{i}"], stride=cp["stride"], padding=cp["pad"])
        h = F.relu(h)
        if isinstance(net, SimpleConvNet) or i % 2 == 0:
            h = F.max_pool2d(h, 2, 2)  # after a ReLU: zero padding would change nothing
    h = h.reshape(h.shape[0], -1)
    last = len(params) + 2
    h = F.relu(h @ p[f"W{last - 1}"] + p[f"b{last - 1}"]) * scales[0]
    return (h @ p[f"W{last}"] + p[f"b{last}"]) * scales[1]


PREDICT_CASES = {
    "simple": lambda: simple(),
    # (8 - 3) / 2 + 1 is not an int: the book's sizes floor it (3x3, pooled 1x1).
    "simple-floored": lambda: simple(input_dim=(1, 8, 8), conv_param=conv(2, 3, 0, 2)),
    "deep": lambda: deep(),
    "deep-stride2": lambda: deep(conv_param_1=conv(2, 3, 1, 2)),  # 4-4-pool-2-4-pool-2-2-pool
}


@pytest.mark.parametrize("case", list(PREDICT_CASES))
def test_predict_equals_torch_functional(backend, case):
    net = random_biases(PREDICT_CASES[case]())
    x, t = images(4, net.input_dim)
    want = torch_scores(net, x, dropout_scale=1.0 if case.startswith("simple") else 0.5).numpy()
    np.testing.assert_allclose(host(net.predict(x)), want, rtol=1e-10, atol=1e-12)
    # The test-mode loss is the cross-entropy of those scores.
    s = want - want.max(axis=1, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    ce = -logp[np.arange(len(s)), host(t)].mean()
    assert float(host(net.loss(x, t, train_flg=False))) == pytest.approx(ce, rel=1e-10)


@pytest.mark.parametrize("which", ["simple", "deep"])
def test_gradient_equals_torch_autograd(backend, which):
    """Backprop through the training-mode net (Dropout masks included) equals autograd's."""
    torch = pytest.importorskip("torch")
    net = random_biases(simple() if which == "simple" else deep())
    x, t = images(3, net.input_dim)
    grads = {k: host(g) for k, g in net.gradient(x, t).items()}
    masks = [torch.from_numpy(host(d.mask)) for d in net.layers if isinstance(d, Dropout)]
    p = {k: torch.tensor(host(v), requires_grad=True) for k, v in net.params.items()}
    scores = torch_scores(net, x, dropout_scale=masks or 1.0, params=p)
    loss = torch.nn.functional.cross_entropy(scores, torch.from_numpy(host(t)))
    loss.backward()
    assert float(host(net.loss_layer.loss)) == pytest.approx(loss.item(), rel=1e-12)
    for key, g in grads.items():
        np.testing.assert_allclose(g, p[key].grad.numpy(), rtol=1e-9, atol=1e-14, err_msg=key)
    assert np.any(grads["W1"] != 0)


# ------------------------------------------------------------ initial weights


BOOK_SIMPLE = {
    "W1": (30, 1, 5, 5),
    "b1": (30,),
    "W2": (4320, 100),
    "b2": (100,),
    "W3": (100, 10),
    "b3": (10,),
}
BOOK_DEEP = {
    "W1": (16, 1, 3, 3),
    "b1": (16,),
    "W2": (16, 16, 3, 3),
    "b2": (16,),
    "W3": (32, 16, 3, 3),
    "b3": (32,),
    "W4": (32, 32, 3, 3),
    "b4": (32,),
    "W5": (64, 32, 3, 3),
    "b5": (64,),
    "W6": (64, 64, 3, 3),
    "b6": (64,),
    "W7": (64 * 4 * 4, 50),
    "b7": (50,),
    "W8": (50, 10),
    "b8": (10,),
}
#: ch08/deep_convnet.py's pre_node_nums for hidden_size=50.
BOOK_PRE_NODE_NUMS = [1 * 3 * 3, 16 * 3 * 3, 16 * 3 * 3, 32 * 3 * 3, 32 * 3 * 3, 64 * 3 * 3]
BOOK_PRE_NODE_NUMS += [64 * 4 * 4, 50]


def test_the_books_default_sizes_and_weights():
    """The book's shapes, and its initial weights drawn W1, W2, ... in order."""
    with xpnn.use_backend("numpy"):
        nets = [SimpleConvNet(seed=3), DeepConvNet(seed=3)]
    scales = [[0.01] * 3, [math.sqrt(2.0 / n) for n in BOOK_PRE_NODE_NUMS]]
    for net, book, scale in zip(nets, [BOOK_SIMPLE, BOOK_DEEP], scales, strict=True):
        assert type(net).array_shapes(net.config) == book
        assert list(net.params) == list(book)
        assert {k: tuple(v.shape) for k, v in net.params.items()} == book
        rng = np.random.default_rng(3)
        for i, s in enumerate(scale, 1):
            want = s * rng.standard_normal(book[f"W{i}"])
            np.testing.assert_array_equal(host(net.params[f"W{i}"]), want.astype("float32"))
            assert not np.any(host(net.params[f"b{i}"]))
        x, _ = images(2, (1, 28, 28), dtype="float32")
        assert tuple(net.predict(x).shape) == (2, 10)


def test_same_seed_same_weights_on_every_backend(backend):
    for make, scales in [
        (lambda: simple(seed=42), [0.3] * 3),
        # He: a filter's C_in * 3 * 3, then the flattened 3 * 1 * 1 inputs, then hidden_size.
        (lambda: deep(seed=42), [math.sqrt(2 / n) for n in [9, 18, 18, 18, 18, 27, 3, 4]]),
    ]:
        on_backend = make()
        with xpnn.use_backend("numpy"):
            on_numpy = make()
        rng = np.random.default_rng(42)
        for i, scale in enumerate(scales, 1):
            key = f"W{i}"
            want = scale * rng.standard_normal(tuple(on_backend.params[key].shape))
            np.testing.assert_array_equal(host(on_backend.params[key]), want, err_msg=key)
            np.testing.assert_array_equal(host(on_numpy.params[key]), want, err_msg=key)
    # The Dropout seeds derive from the net's: the same masks everywhere.
    net = deep(seed=42)
    x, t = images(2)
    net.gradient(x, t)
    with xpnn.use_backend("numpy"):
        ref = deep(seed=42)
        ref.gradient(xpnn.asarray(host(x)), xpnn.asarray(host(t)))
    for a, b in zip(net.layers, ref.layers, strict=True):
        if isinstance(a, Dropout):
            assert a.seed == b.seed
            np.testing.assert_array_equal(host(a.mask), host(b.mask))
    other = deep(seed=43)
    assert not np.array_equal(host(other.params["W1"]), host(net.params["W1"]))
    assert [d.seed for d in other.layers if isinstance(d, Dropout)] != [
        d.seed for d in net.layers if isinstance(d, Dropout)
    ]


@pytest.mark.parametrize("std", ["he", "Xavier"])
def test_simple_convnet_takes_he_and_xavier_names(std):
    with xpnn.use_backend("numpy"):
        net = SimpleConvNet((1, 8, 8), conv(2, 3, 0, 1), 4, 3, std, seed=0, dtype="float64")
    num = 2.0 if std == "he" else 1.0
    rng = np.random.default_rng(0)
    for key, fan_in in [("W1", 9), ("W2", 2 * 3 * 3), ("W3", 4)]:
        want = math.sqrt(num / fan_in) * rng.standard_normal(tuple(net.params[key].shape))
        np.testing.assert_array_equal(host(net.params[key]), want, err_msg=key)
    assert net.weight_init_std == std.lower()


def test_default_dtype_seed_and_read_only_settings(backend, xp):
    net = DeepConvNet((1, 8, 8), **DEEP_SMALL, hidden_size=4)
    assert all(p.dtype == xp.float32 for p in net.params.values())
    assert isinstance(net.seed, int) and net.config["seed"] == net.seed
    assert net.input_dim == (1, 8, 8) and net.hidden_size == 4 and net.output_size == 10
    assert net.conv_params == list(DEEP_SMALL.values())
    for name in ("input_dim", "hidden_size", "output_size", "seed", "conv_params"):
        with pytest.raises(AttributeError):
            setattr(net, name, getattr(net, name))
    simple_net = SimpleConvNet((1, 8, 8), conv(2))
    for name in ("conv_param", "weight_init_std"):
        with pytest.raises(AttributeError):
            setattr(simple_net, name, getattr(simple_net, name))
    simple_net.conv_param["pad"] = 5  # a copy
    assert simple_net.conv_param["pad"] == 1


# ------------------------------------------------------------ accuracy


@pytest.mark.parametrize("which", ["simple", "deep"])
def test_accuracy_in_batches_equals_unbatched(backend, xp, which):
    net = random_biases(simple() if which == "simple" else deep())
    n = 11
    x, _ = images(n, net.input_dim, seed=5)
    scores = host(net.predict(x))
    labels = scores.argmax(axis=1)
    labels[[1, 4, 9, 10]] = (labels[[1, 4, 9, 10]] + 1) % 3  # 7 of 11 right; 10 in the tail
    want = 7 / 11
    t = xpnn.asarray(labels)
    one_hot = xpnn.asarray(np.eye(3)[labels], dtype="float64")
    for batch_size in (1, 3, 4, 11, 100):
        got = net.accuracy(x, t, batch_size=batch_size)
        assert isinstance(got, float) and got == want, batch_size
        assert net.accuracy(x, one_hot, batch_size) == want
    assert net.accuracy(x, t) == want
    # Test mode: the Dropout layers draw nothing.
    assert all(d.draws == 0 for d in net.layers if isinstance(d, Dropout))


def test_accuracy_refuses_bad_arguments(backend):
    net = simple()
    x, t = images(4, net.input_dim)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            net.accuracy(x, t, batch_size=bad)
    with pytest.raises(ValueError, match="t must be labels"):
        net.accuracy(x, t[:3])
    with pytest.raises(ValueError, match=r"x of shape \(N, 2, 7, 7\)"):
        net.accuracy(x[:, :1, ...], t)


# ------------------------------------------------------------ arguments


BAD_COMMON = [
    ({"input_dim": (1, 8)}, ValueError, "input_dim"),
    ({"input_dim": (0, 8, 8)}, ValueError, "input_dim"),
    ({"input_dim": 64}, ValueError, "input_dim"),
    ({"input_dim": (1, 8.0, 8)}, ValueError, "input_dim"),
    ({"hidden_size": 0}, ValueError, "hidden_size"),
    ({"output_size": True}, ValueError, "output_size"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 2**63}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
]
BAD_SIMPLE = [
    *BAD_COMMON,
    ({"conv_param": [30, 5, 0, 1]}, TypeError, "conv_param must be a dict"),
    ({"conv_param": {"filter_num": 2, "filter_size": 3, "pad": 0}}, ValueError, "'stride'"),
    ({"conv_param": {**conv(2), "filter_nums": 3}}, ValueError, "'filter_nums'"),
    ({"conv_param": conv(0)}, ValueError, r"conv_param\['filter_num'\]"),
    ({"conv_param": conv(2, 2.5)}, ValueError, r"conv_param\['filter_size'\]"),
    ({"conv_param": conv(2, pad=-1)}, ValueError, r"conv_param\['pad'\]"),
    ({"conv_param": conv(2, stride=0)}, ValueError, r"conv_param\['stride'\]"),
    # A filter larger than the padded input: 9 > 8 + 2 * 0.
    ({"conv_param": conv(2, 9, 0)}, ValueError, r"filter_size'\] 9 is larger than its padded"),
    # A convolution output of 1x1 (stride 8): nothing for the 2x2 pooling.
    ({"conv_param": conv(2, 3, 0, 8)}, ValueError, "pooling .* needs an input of at least 2x2"),
    ({"weight_init_std": 0}, ValueError, "weight_init_std"),
    ({"weight_init_std": "lecun"}, ValueError, "weight_init_std"),
    ({"weight_init_std": None}, TypeError, "weight_init_std"),
]
BAD_DEEP = [
    *BAD_COMMON,
    ({"conv_param_3": {**conv(2), "size": 3}}, ValueError, "conv_param_3 has unknown keys"),
    ({"conv_param_5": conv(2, pad=None)}, ValueError, r"conv_param_5\['pad'\]"),
    ({"conv_param_6": "big"}, TypeError, "conv_param_6 must be a dict"),
    # (1, 4, 4): 4-4-pool-2-2(pad 0: 3x3 filter on 2x2)
    ({"input_dim": (1, 4, 4), "conv_param_3": conv(2, 3, 0)}, ValueError, "conv_param_3"),
    # (1, 2, 2): ... the last pooling gets 1x1.
    ({"input_dim": (1, 2, 2)}, ValueError, r"pooling \(stride 2\) after conv_param_6's"),
]


def refuse_allocation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("allocated before checking the arguments")

    monkeypatch.setattr(xpnn.models.convnet, "default_rng", refuse)
    monkeypatch.setattr(xpnn.models.convnet, "zeros", refuse)


@pytest.mark.parametrize(
    ("change", "error", "match"), BAD_SIMPLE, ids=[str(c) for c, *_ in BAD_SIMPLE]
)
def test_simple_convnet_refuses_bad_arguments_before_allocating(monkeypatch, change, error, match):
    refuse_allocation(monkeypatch)
    args = {"input_dim": (1, 8, 8), "conv_param": conv(2, 3, 0), **change}
    with pytest.raises(error, match=match) as info:
        SimpleConvNet(**args)
    assert str(info.value).startswith("SimpleConvNet: ")


@pytest.mark.parametrize(("change", "error", "match"), BAD_DEEP, ids=[str(c) for c, *_ in BAD_DEEP])
def test_deep_convnet_refuses_bad_arguments_before_allocating(monkeypatch, change, error, match):
    refuse_allocation(monkeypatch)
    args = {"input_dim": (1, 8, 8), **DEEP_SMALL, **change}
    with pytest.raises(error, match=match) as info:
        DeepConvNet(**args)
    assert str(info.value).startswith("DeepConvNet: ")


def test_an_unknown_dtype_fails_before_drawing(monkeypatch):
    refuse_allocation(monkeypatch)
    with pytest.raises((TypeError, ValueError), match=r"int8|dtype"):
        SimpleConvNet((1, 8, 8), conv(2), dtype="int8")


def test_the_smallest_nets_that_fit_build():
    with xpnn.use_backend("numpy"):
        net = SimpleConvNet((1, 3, 3), conv(2, 2, 0), 4, 3, seed=0)  # conv 2x2, pooled 1x1
        assert tuple(net.params["W2"].shape) == (2, 4)
        net = DeepConvNet((1, 4, 4), **DEEP_SMALL, hidden_size=4, seed=0)
        assert tuple(net.params["W7"].shape) == (3, 4)
        x, _ = images(2, (1, 4, 4), dtype="float32")
        assert tuple(net.predict(x).shape) == (2, 10)


def test_a_bad_file_config_is_a_value_error_naming_the_key():
    with xpnn.use_backend("numpy"):
        good = deep(seed=0).config
        good_simple = simple(seed=0).config
    assert DeepConvNet.array_shapes(good)["W7"] == (3, 4)
    bad = [
        ("conv_param_2", {"filter_num": 2}),
        ("input_dim", [1, 8]),
        ("hidden_size", "4"),
        ("seed", None),
        ("seed", "1"),
    ]
    for key, value in bad:
        with pytest.raises(ValueError, match=key):
            DeepConvNet.array_shapes({**good, key: value})
    with pytest.raises(ValueError, match="conv_param_6"):  # sizes that do not fit
        DeepConvNet.array_shapes({**good, "input_dim": [1, 2, 2]})
    with pytest.raises(ValueError, match="exactly the keys"):
        SimpleConvNet.array_shapes(good)
    with pytest.raises(ValueError, match="exactly the keys"):
        DeepConvNet.array_shapes(good_simple)
    with pytest.raises(ValueError, match="exactly the keys"):
        SimpleConvNet.array_shapes(None)
    with pytest.raises(ValueError, match="weight_init_std"):
        SimpleConvNet.array_shapes({**good_simple, "weight_init_std": None})


# ------------------------------------------------------------ saving


@pytest.mark.parametrize("which", ["simple", "deep"])
def test_save_load_round_trip(backend, tmp_path, which):
    net = random_biases(simple(seed=7) if which == "simple" else deep(seed=7))
    x, t = images(5, net.input_dim)
    for _ in range(2):  # train a little
        grads = net.gradient(x, t)
        for key in net.params:
            net.params[key] -= 0.1 * grads[key]
    assert MODELS[type(net).__name__] is type(net)
    loaded = load(save(net, tmp_path / "net.npz"))
    assert type(loaded) is type(net) and loaded.config == net.config
    assert set(net.named_arrays()) == set(type(net).array_shapes(net.config)) == set(net.params)
    for key, a in loaded.named_arrays().items():
        np.testing.assert_array_equal(host(a), host(net.params[key]), err_msg=key)
    np.testing.assert_array_equal(host(loaded.predict(x)), host(net.predict(x)))
    assert loaded.accuracy(x, t) == net.accuracy(x, t)
    assert [d.seed for d in loaded.layers if isinstance(d, Dropout)] == [
        d.seed for d in net.layers if isinstance(d, Dropout)
    ]
    # A config rebuilds the same initial weights (its seed).
    fresh = type(net).from_config(net.config, dtype="float64")
    again = simple(seed=7) if which == "simple" else deep(seed=7)
    np.testing.assert_array_equal(host(fresh.params["W1"]), host(again.params["W1"]))


# ------------------------------------------------------------ training


@pytest.mark.parametrize(("which", "epochs"), [("simple", 8), ("deep", 25)])
def test_trainer_fit_decreases_the_loss(which, epochs):
    """A few Trainer.fit epochs on (60, 1, 8, 8) images of 3 noisy prototypes (NumPy)."""
    rng = np.random.default_rng(0)
    prototypes = rng.normal(size=(3, 1, 8, 8))
    labels = rng.integers(0, 3, size=60)
    data = prototypes[labels] + rng.normal(scale=0.5, size=(60, 1, 8, 8))
    with xpnn.use_backend("numpy"):
        x, t = xpnn.asarray(data, dtype="float32"), xpnn.asarray(labels)
        if which == "simple":
            net = SimpleConvNet((1, 8, 8), conv(4, 3, 0), 16, 3, 0.1, seed=0)
        else:  # two Dropout layers (one on the scores, as the book's): slower to train
            small = {k: {**v, "filter_num": 4} for k, v in DEEP_SMALL.items()}
            net = DeepConvNet((1, 8, 8), **small, hidden_size=32, output_size=3, seed=0)
        before = float(host(net.loss(x, t, train_flg=False)))
        trainer = xpnn.Trainer(net, xpnn.Adam(0.01))
        trainer.fit(
            x, t, max_epoch=epochs, batch_size=20, eval_interval=3, progress=False, verbose=False
        )
        losses = trainer.loss_list
        assert len(losses) == epochs and losses[-1] < 0.6 * losses[0]
        assert float(host(net.loss(x, t, train_flg=False))) < 0.5 * before
        assert net.accuracy(x, t) >= 0.9
        draws = [d.draws for d in net.layers if isinstance(d, Dropout)]
        assert draws == ([] if which == "simple" else [3 * epochs] * 2)


def test_the_books_nets_train_on_mnist_shaped_images():
    """Trainer.fit on (N, 1, 28, 28) float32 batches with the book's default sizes."""
    rng = np.random.default_rng(1)
    with xpnn.use_backend("numpy"):
        x = xpnn.asarray(rng.random((20, 1, 28, 28)), dtype="float32")
        t = xpnn.asarray(rng.integers(0, 10, size=20))
        for net in (SimpleConvNet(seed=0), DeepConvNet(seed=0)):
            before = {k: host(p) for k, p in net.params.items()}
            trainer = xpnn.Trainer(net, xpnn.SGD(0.01))
            trainer.fit(x, t, max_epoch=1, batch_size=10, progress=False, verbose=False)
            assert len(trainer.loss_list) == 1 and math.isfinite(trainer.loss_list[0])
            for key, p in net.params.items():
                assert not np.array_equal(host(p), before[key]), (type(net).__name__, key)
            assert 0.0 <= net.accuracy(x, t, batch_size=16) <= 1.0


def test_affine_has_the_books_gradient_names(backend):
    # The book's DeepConvNet.gradient reads self.layers[i].dW and .db.
    net = SimpleConvNet(
        (1, 8, 8),
        {"filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1},
        hidden_size=4,
        output_size=3,
        seed=0,
        dtype="float64",
    )
    x = xpnn.asarray(np.random.default_rng(0).normal(size=(4, 1, 8, 8)), backend=backend)
    t = xpnn.asarray(np.array([0, 1, 2, 1]), backend=backend)
    grads = net.gradient(x, t)
    affine = net.layers[3]
    assert affine.dW is affine.grads[0] and affine.db is affine.grads[1]
    assert np.array_equal(xpnn.to_numpy(affine.dW), xpnn.to_numpy(grads["W2"]))


@pytest.mark.parametrize("cls", [xpnn.SimpleConvNet, xpnn.DeepConvNet])
def test_layer_plan_is_the_layers_the_constructor_makes(cls):
    kwargs = {"input_dim": (1, 16, 16), "hidden_size": 7, "output_size": 4, "seed": 3}
    plan = cls.layer_plan(**kwargs)
    net = cls(**kwargs)
    kinds = {"conv": "Convolution", "affine": "Affine", "relu": "Relu", "pool": "Pooling"}
    assert [kinds.get(step[0], "Dropout") for step in plan] == [
        type(layer).__name__ for layer in net.layers
    ]
    for step, layer in zip(plan, net.layers, strict=True):
        if step[0] in ("conv", "affine"):
            assert tuple(net.params[step[1]].shape) == step[2] == tuple(layer.params[0].shape)
    with pytest.raises(ValueError, match=f"{cls.__name__}: .*hidden_size"):
        cls.layer_plan(hidden_size=0)
    with pytest.raises(TypeError, match="unknown arguments \\['dtype'\\]"):
        cls.layer_plan(dtype="float32")

"""A LayeredNet's layers must chain: checked as a whole, before anything is allocated.

Issue 23: a saved LayeredNet whose layers each had a valid config but did not fit
one another (an Affine of 100 features after a 784-wide layer, a 40x40 filter on a
28x28 image, a pad of 10**6, a loss layer in the middle...) loaded, and failed only
at the first predict, with a raw NumPy error or a TiB allocation. Each crafted file
here has arrays of the shapes its config implies (so the old xpnn loaded it) and must
now be refused by ``xpnn.io.load`` with a ``ModelFileError`` naming the layer, in
under 2 s and 100 MB; a net built in code gets the same refusal, as a ValueError, at
construction.
"""

from __future__ import annotations

import json
import time
import tracemalloc

import numpy as np
import pytest

import xpnn
from xpnn.io import ModelFileError, load, save
from xpnn.layers import (
    LAYERS,
    Affine,
    BatchNormalization,
    Convolution,
    Dropout,
    Flatten,
    Layer,
    MatMul,
    Pooling,
    Relu,
    Sigmoid,
    Softmax,
    SoftmaxWithLoss,
)
from xpnn.models import LayeredNet


def normal(shape, scale=0.1):
    return xpnn.default_rng(sum(shape)).standard_normal(shape, dtype="float32") * scale


def zeros(n):
    return xpnn.zeros(n, dtype="float32")


def dense_net():
    """Affine 20 -> 784, Relu, Affine 784 -> 3: rows of 20 features."""
    layers = [Affine(normal((20, 784)), zeros(784)), Relu(), Affine(normal((784, 3)), zeros(3))]
    return LayeredNet(layers, SoftmaxWithLoss(), input_size=20)


def conv_layers():
    """(1, 28, 28) -> Conv 4x5x5 (4, 24, 24) -> Relu -> Pool 2x2/2 (4, 12, 12) -> BN(4)
    -> Dropout -> Flatten (576,) -> Affine 576 -> 3."""
    ones = xpnn.asarray(np.ones(4), dtype="float32")
    return [
        Convolution(normal((4, 1, 5, 5)), zeros(4), stride=1, pad=0),
        Relu(),
        Pooling(2, 2, stride=2),
        BatchNormalization(ones, zeros(4)),
        Dropout(0.5, seed=0),
        Flatten(),
        Affine(normal((576, 3)), zeros(3)),
    ]


def conv_net():
    return LayeredNet(conv_layers(), SoftmaxWithLoss(), input_size=(1, 28, 28))


def host(a):
    return np.array(xpnn.to_numpy(a), copy=True)


def craft(path, edit):
    """Edit the file's config, and give it arrays of the shapes the new config implies
    (zeros where they changed), so that only the chain of its layers is wrong."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("__xpnn__")))
    edit(meta["config"])
    shapes = {}
    for i, entry in enumerate(meta["config"]["layers"]):
        kind = LAYERS[entry["kind"]]
        declared = {**kind.param_shapes(entry["config"]), **kind.state_shapes(entry["config"])}
        shapes.update({f"layers.{i}.{name}": shape for name, shape in declared.items()})
    out = {
        k: arrays[k] if k in arrays and arrays[k].shape == s else np.zeros(s, meta["dtype"])
        for k, s in shapes.items()
    }
    text = json.dumps(meta, separators=(",", ":"))  # 30,000 layers fit the metadata limit
    np.savez(path, __xpnn__=np.array(text), **out)
    return path


def layer(i, **config):
    def edit(c):
        c["layers"][i]["config"].update(config)

    return edit


def entry(kind, **config):
    return {"kind": kind, "config": config}


# The crafted files: (net, edit, what the refusal says).
CASES = {
    "affine-100-after-784": (
        dense_net,
        layer(2, input_size=100),
        r"layer 2 \(Affine\): Affine of input_size 100 .* got samples of shape \(784,\)",
    ),
    "filter-40x40-on-28x28": (
        conv_net,
        layer(0, filter_h=40, filter_w=40),
        r"layer 0 \(Convolution\): .*a 40x40 window does not fit samples of shape \(1, 28, 28\)",
    ),
    "wrong-channels": (
        conv_net,
        layer(0, channels=3),
        r"layer 0 \(Convolution\): Convolution filters take 3 channels, got samples of shape "
        r"\(1, 28, 28\) \(1 channels\)",
    ),
    "batchnorm-size": (
        conv_net,
        layer(3, size=5),
        r"layer 3 \(BatchNormalization\): BatchNormalization of size 5 does not fit samples of "
        r"shape \(4, 12, 12\)",
    ),
    "pool-window-larger-than-input": (
        conv_net,
        layer(2, pool_h=30, pool_w=30),
        r"layer 2 \(Pooling\): Pooling: a 30x30 window does not fit samples of shape "
        r"\(4, 24, 24\)",
    ),
    "pool-stride-10**18": (
        conv_net,
        layer(2, stride=10**18),
        r"layer 2 \(Pooling\): Pooling: stride 1000000000000000000 exceeds the padded input "
        r"24x24",
    ),
    "conv-stride-10**18": (
        conv_net,
        layer(0, stride=10**18),
        r"layer 0 \(Convolution\): Convolution: stride 1000000000000000000 exceeds",
    ),
    "conv-pad-10**6": (
        conv_net,
        layer(0, pad=10**6),
        r"layer 0 \(Convolution\): one sample's activations reach [\d,]+ elements .*"
        r"MAX_SAMPLE_ELEMENTS = 268,435,456",
    ),
    "pool-pad-10**6": (
        conv_net,
        layer(2, pad=10**6),
        r"layer 2 \(Pooling\): one sample's activations reach [\d,]+ elements",
    ),
    "input-1x10**5x10**5": (
        conv_net,
        lambda c: c.update(input_size=[1, 10**5, 10**5]),
        r"input_size: one sample's activations reach 10,000,000,000 elements",
    ),
    "scores-not-rows": (
        conv_net,
        lambda c: c.update(layers=c["layers"][:5]),
        r"the loss layer \(SoftmaxWithLoss\): SoftmaxWithLoss takes scores \(N, C\), .* got "
        r"samples of shape \(4, 12, 12\)",
    ),
    "softmax-with-loss-as-hidden-layer": (
        conv_net,
        lambda c: c["layers"].__setitem__(1, entry("SoftmaxWithLoss")),
        r"layer 1 \(SoftmaxWithLoss\) is a loss layer",
    ),
    "relu-as-loss-layer": (
        conv_net,
        lambda c: c.update(loss=entry("Relu")),
        r"the loss layer \(Relu\) is not a loss layer",
    ),
    "dropout-as-loss-layer": (
        dense_net,
        lambda c: c.update(loss=entry("Dropout", dropout_ratio=0.5, seed=1)),
        r"the loss layer \(Dropout\) is not a loss layer",
    ),
    "input-of-10000-dimensions": (
        dense_net,
        lambda c: c.update(input_size=[1] * 10_000),
        r"input_size has 10000 dimensions, more than xpnn takes \(MAX_SAMPLE_DIMS = 8",
    ),
    "30000-relu-layers": (
        dense_net,
        lambda c: c["layers"].extend([entry("Relu")] * 30_000),
        r"30,003 layers, more than xpnn takes \(MAX_LAYERS = 1,000",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_file_whose_layers_do_not_chain_is_refused_cheaply(tmp_path, case):
    make, edit, match = CASES[case]
    path = craft(save(make(), tmp_path / "net.npz"), edit)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ModelFileError, match="bad model configuration: ") as err:
            load(path)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.match(match)
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MB"


def test_the_crafted_files_would_load_without_the_chain_check(tmp_path):
    """The crafting keeps each layer's own config and the arrays' shapes right: a
    file whose chain is right loads."""
    path = craft(save(conv_net(), tmp_path / "net.npz"), layer(2, stride=2))
    loaded = load(path)
    assert [type(x) for x in loaded.layers] == [type(x) for x in conv_net().layers]


# ------------------------------------------------------------ nets built in code


def test_a_net_built_in_code_that_does_not_chain_is_refused_at_construction(backend):
    with pytest.raises(ValueError, match=r"layer 2 \(Affine\): Affine of input_size 100"):
        LayeredNet(
            [Affine(normal((20, 784)), zeros(784)), Relu(), Affine(normal((100, 3)), zeros(3))],
            SoftmaxWithLoss(),
            input_size=20,
        )
    layers = conv_layers()
    with pytest.raises(ValueError, match=r"layer 0 \(Convolution\): .*take 1 channels"):
        LayeredNet(layers, SoftmaxWithLoss(), input_size=(3, 28, 28))
    with pytest.raises(ValueError, match=r"layer 0 \(Convolution\): .*a 5x5 window does not fit"):
        LayeredNet(layers, SoftmaxWithLoss(), input_size=(1, 4, 4))
    # BatchNormalization fits (4, 13, 13) per channel; the Affine of 576 then does not.
    with pytest.raises(ValueError, match=r"layer 6 \(Affine\): .*\(676,\) \(676 features\)"):
        LayeredNet(layers, SoftmaxWithLoss(), input_size=(1, 30, 30))
    bn = BatchNormalization(*(xpnn.asarray(np.ones(5), dtype="float32") for _ in range(2)))
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNormalization\): .*size 5 .*\(8,\)"):
        LayeredNet([Affine(normal((20, 8)), zeros(8)), bn], SoftmaxWithLoss(), input_size=20)
    with pytest.raises(ValueError, match=r"layer 0 \(Convolution\): Convolution takes images"):
        LayeredNet(layers, SoftmaxWithLoss(), input_size=784)
    with pytest.raises(ValueError, match=r"input_size: one sample's activations reach"):
        LayeredNet(layers, SoftmaxWithLoss(), input_size=(1, 10**5, 10**5))
    with pytest.raises(ValueError, match=r"input_size has 9 dimensions"):
        LayeredNet(layers, SoftmaxWithLoss(), input_size=(1,) * 9)
    for bad, match in [
        (Pooling(2, 2, stride=10**18), r"layer 2 \(Pooling\): Pooling: stride 10{18} exceeds"),
        (Pooling(2, 2, stride=2, pad=10**6), r"layer 2 \(Pooling\): one sample's activations"),
        (Pooling(30, 30, stride=2), r"layer 2 \(Pooling\): Pooling: a 30x30 window"),
    ]:
        with pytest.raises(ValueError, match=match):
            LayeredNet([*layers[:2], bad, *layers[3:]], SoftmaxWithLoss(), input_size=(1, 28, 28))
    with pytest.raises(ValueError, match=r"the loss layer \(SoftmaxWithLoss\): .*\(4, 12, 12\)"):
        LayeredNet(layers[:5], SoftmaxWithLoss(), input_size=(1, 28, 28))
    # The same layers in the right order, and rows into a MatMul.
    assert conv_net().input_size == (1, 28, 28)
    LayeredNet([MatMul(normal((20, 3)))], SoftmaxWithLoss(), input_size=20)
    with pytest.raises(ValueError, match=r"layer 0 \(MatMul\): MatMul .* takes rows of 576"):
        LayeredNet([MatMul(normal((576, 3)))], SoftmaxWithLoss(), input_size=(4, 12, 12))


def test_loss_layers_in_the_wrong_place_are_refused_without_input_size(backend):
    w = normal((5, 3))
    with pytest.raises(ValueError, match=r"layer 1 \(SoftmaxWithLoss\) is a loss layer"):
        LayeredNet([Affine(w, zeros(3)), SoftmaxWithLoss()], SoftmaxWithLoss())
    for not_a_loss in (Relu(), Sigmoid(), Softmax(), Flatten(), Dropout(0.5, seed=0)):
        name = type(not_a_loss).__name__
        with pytest.raises(ValueError, match=rf"the loss layer \({name}\) is not a loss layer"):
            LayeredNet([Affine(w, zeros(3))], not_a_loss)


def test_too_many_layers_are_refused_at_construction():
    from xpnn.models.layered import MAX_LAYERS

    relus = [Relu() for _ in range(MAX_LAYERS)]
    LayeredNet([Affine(normal((5, 3)), zeros(3)), *relus[1:]], SoftmaxWithLoss(), input_size=5)
    with pytest.raises(ValueError, match=r"1,001 layers, more than xpnn takes"):
        LayeredNet([Affine(normal((5, 3)), zeros(3)), *relus], SoftmaxWithLoss(), input_size=5)


# ------------------------------------------------------------ what each layer declares


@pytest.mark.parametrize(
    ("kind", "config", "given", "gives"),
    [
        (Affine, {"input_size": 784, "output_size": 10}, (1, 28, 28), (10,)),
        (MatMul, {"input_size": 784, "output_size": 10}, (784,), (10,)),
        (Flatten, {}, (4, 12, 12), (576,)),
        (Relu, {}, (4, 12, 12), (4, 12, 12)),
        (Sigmoid, {}, (7,), (7,)),
        (Softmax, {}, (7,), (7,)),
        (Dropout, {"dropout_ratio": 0.5, "seed": 0}, (3, 5), (3, 5)),
        (BatchNormalization, {"size": 4, "momentum": 0.9}, (4, 12, 12), (4, 12, 12)),
        (BatchNormalization, {"size": 576, "momentum": 0.9}, (4, 12, 12), (4, 12, 12)),
        (BatchNormalization, {"size": 50, "momentum": 0.9}, (50,), (50,)),
        (
            Convolution,
            {"filter_num": 30, "channels": 1, "filter_h": 5, "filter_w": 5, "stride": 1, "pad": 0},
            (1, 28, 28),
            (30, 24, 24),
        ),
        (
            Convolution,
            {"filter_num": 16, "channels": 3, "filter_h": 3, "filter_w": 3, "stride": 2, "pad": 1},
            (3, 9, 7),
            (16, 5, 4),
        ),
        (Pooling, {"pool_h": 2, "pool_w": 2, "stride": 2, "pad": 0}, (30, 24, 24), (30, 12, 12)),
        (Pooling, {"pool_h": 3, "pool_w": 2, "stride": 1, "pad": 1}, (2, 5, 5), (2, 5, 6)),
        (SoftmaxWithLoss, {}, (10,), ()),
    ],
)
def test_each_layer_declares_its_output_sample_shape(backend, kind, config, given, gives):
    assert kind.output_sample_shape(config, given) == gives
    if kind is SoftmaxWithLoss:
        return
    # What forward really gives, for two samples.
    x = xpnn.asarray(np.random.default_rng(0).normal(size=(2, *given)), dtype="float32")
    built = kind.from_config(config, dtype="float32", backend=xpnn.get_backend())
    args = (x, False) if kind.takes_train_flg else (x,)
    assert tuple(built.forward(*args).shape) == (2, *gives)


def test_the_window_arithmetic_holds_for_any_size():
    conv = {"filter_num": 2, "channels": 1, "filter_h": 3, "filter_w": 3, "stride": 10**18}
    with pytest.raises(ValueError, match="stride 1000000000000000000 exceeds the padded input"):
        Convolution.output_sample_shape({**conv, "pad": 0}, (1, 28, 28))
    # A stride beyond one axis only, or of the larger side, is fine.
    one_window = Convolution.output_sample_shape({**conv, "stride": 28, "pad": 0}, (1, 28, 28))
    assert one_window == (2, 1, 1)
    pool = {"pool_h": 1, "pool_w": 2, "stride": 5, "pad": 0}  # stride 5 > H = 1
    assert Pooling.output_sample_shape(pool, (1, 1, 10)) == (1, 1, 2)
    huge = Convolution.output_sample_shape({**conv, "stride": 1, "pad": 10**400}, (1, 28, 28))
    assert huge[1] == 2 * 10**400 + 26
    elements = Convolution.scratch_sample_elements({**conv, "stride": 1, "pad": 0}, (1, 28, 28))
    assert elements == 9 * 26 * 26  # im2col's columns; no padded copy for pad 0


def test_is_loss(monkeypatch):
    losses = {  # take (x, t)
        "SoftmaxWithLoss",
        "SigmoidWithLoss",
        "NegativeSamplingLoss",
        "TimeSoftmaxWithLoss",
        "TimeSigmoidWithLoss",
    }
    assert SoftmaxWithLoss.is_loss
    assert {name for name, k in LAYERS.items() if k.is_loss} <= losses
    assert not LAYERS["EmbeddingDot"].is_loss  # forward(h, idx): two inputs, no target

    class TakesTarget(Layer):
        def forward(self, x, t):
            return x

    class TakesAFlag(Layer):
        def forward(self, x, train_flg=True):
            return x

    class SaysSo(Layer):
        is_loss = True

        def forward(self, x, t=None):
            return x

    assert TakesTarget.is_loss and not TakesAFlag.is_loss and SaysSo.is_loss


# ------------------------------------------------------------ what still loads


def _round_trip(net, x, tmp_path):
    loaded = load(save(net, tmp_path / "net.npz"))
    assert type(loaded) is type(net)
    np.testing.assert_array_equal(host(loaded.predict(x)), host(net.predict(x)))
    return loaded


def images(n=2):
    return xpnn.asarray(np.random.default_rng(1).normal(size=(n, 1, 28, 28)), dtype="float32")


@pytest.mark.parametrize(
    "make",
    [
        lambda: xpnn.TwoLayerNet(784, 20, 10, seed=0),
        lambda: xpnn.MultiLayerNet(784, [20, 20], 10, seed=0),
        lambda: xpnn.MultiLayerNetExtend(
            784, [20, 20], 10, use_dropout=True, use_batchnorm=True, seed=0
        ),
    ],
    ids=["TwoLayerNet", "MultiLayerNet", "MultiLayerNetExtend"],
)
def test_the_books_dense_nets_still_save_and_load(backend, tmp_path, make):
    x = xpnn.asarray(np.random.default_rng(1).normal(size=(2, 784)), dtype="float32")
    _round_trip(make(), x, tmp_path)


@pytest.mark.parametrize(
    "make",
    [lambda: xpnn.SimpleConvNet(seed=0), lambda: xpnn.DeepConvNet(seed=0), conv_net],
    ids=["SimpleConvNet", "DeepConvNet", "LayeredNet-conv-pool-bn-dropout"],
)
def test_the_books_conv_nets_still_save_and_load(backend, tmp_path, make):
    _round_trip(make(), images(), tmp_path)


class Halve(Layer):
    """A user's layer that keeps half the features and declares no output shape."""

    def forward(self, x):
        return x[:, : x.shape[1] // 2]

    def backward(self, dout, *, input_grad=True):  # pragma: no cover - not trained here
        raise NotImplementedError


class Same(Layer):
    """A user's layer that declares it keeps the shape."""

    keeps_shape = True

    def forward(self, x):
        return x

    def backward(self, dout, *, input_grad=True):  # pragma: no cover - not trained here
        return dout


def test_a_users_registered_layer_still_loads(backend, tmp_path, monkeypatch):
    monkeypatch.setitem(LAYERS, "Halve", Halve)  # what register_layer(Halve) does
    # 8 features, halved to 4 by a layer that declares nothing: the chain is not
    # checked after it, so the Affine of 4 after an 8-wide layer is not refused.
    net = LayeredNet(
        [Affine(normal((20, 8)), zeros(8)), Halve(), Relu(), Affine(normal((4, 3)), zeros(3))],
        SoftmaxWithLoss(),
        input_size=20,
    )
    x = xpnn.asarray(np.random.default_rng(1).normal(size=(2, 20)), dtype="float32")
    loaded = _round_trip(net, x, tmp_path)
    assert isinstance(loaded.layers[1], Halve)


def test_a_users_layer_that_declares_its_shape_is_checked(backend, monkeypatch):
    monkeypatch.setitem(LAYERS, "Same", Same)
    with pytest.raises(ValueError, match=r"layer 2 \(Affine\): Affine of input_size 4 .*\(8,\)"):
        LayeredNet(
            [Affine(normal((20, 8)), zeros(8)), Same(), Affine(normal((4, 3)), zeros(3))],
            SoftmaxWithLoss(),
            input_size=20,
        )

    class Redefined(Relu):
        """forward anew, shape not declared anew: it counts as undeclared."""

        def forward(self, x):
            return x[:, :4]

    LayeredNet(
        [Affine(normal((20, 8)), zeros(8)), Redefined(), Affine(normal((4, 3)), zeros(3))],
        SoftmaxWithLoss(),
        input_size=20,
    )

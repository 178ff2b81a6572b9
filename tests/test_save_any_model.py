"""Any model made of xpnn layers saves and loads, on every backend and dtype."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import xpnn
from xpnn.io import ModelFileError, load, save
from xpnn.layers import LAYERS, Affine, Layer, MatMul, Relu, Sigmoid, SoftmaxWithLoss
from xpnn.models import LayeredNet


def custom_net(dtype="float32", input_size=5):
    """Affine - Relu - MatMul - Sigmoid - Affine, built from layers as the book does."""
    rng = xpnn.default_rng(3)
    w = [rng.standard_normal(s, dtype=dtype) for s in [(5, 4), (4, 6), (6, 3)]]
    b1, b3 = rng.standard_normal(4, dtype=dtype), rng.standard_normal(3, dtype=dtype)
    layers = [Affine(w[0], b1), Relu(), MatMul(w[1]), Sigmoid(), Affine(w[2], b3)]
    return LayeredNet(layers, SoftmaxWithLoss(), input_size)


def host(a):
    return np.array(xpnn.to_numpy(a), copy=True)


def batch(dtype):
    return xpnn.asarray(np.random.default_rng(0).normal(size=(7, 5)), dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_layered_net_of_any_layers_round_trips(backend, tmp_path, dtype):
    net = custom_net(dtype)
    loaded = load(save(net, tmp_path / "net.npz"))
    assert type(loaded) is LayeredNet and loaded.input_size == 5
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in net.layers]
    assert type(loaded.loss_layer) is SoftmaxWithLoss
    assert loaded.params[0].dtype == getattr(backend.xp, dtype)
    assert xpnn.backend_of(loaded.params[0]) == backend
    for got, want in zip(loaded.params, net.params, strict=True):
        np.testing.assert_array_equal(host(got), host(want))
    x = batch(dtype)
    np.testing.assert_array_equal(host(loaded.predict(x)), host(net.predict(x)))
    # The loaded layers hold the loaded params: training updates what predicts.
    assert loaded.layers[2].params[0] is loaded.params[2]


def test_saved_on_numpy_loads_on_every_backend(backend, tmp_path):
    with xpnn.use_backend("numpy", dtype="float64"):
        net = custom_net("float64")
        save(net, tmp_path / "net.npz")
        want = host(net.predict(batch("float64")))
    loaded = load(tmp_path / "net.npz")  # onto the backend under test
    assert xpnn.backend_of(loaded.params[0]) == backend
    got = host(loaded.predict(batch("float64")))
    if backend.name == "numpy":
        np.testing.assert_array_equal(got, want)
    else:  # the same weights; another library's matrix product may round otherwise
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_the_file_describes_the_layers_as_data(tmp_path):
    path = save(custom_net(input_size=None), tmp_path / "net.npz")
    with zipfile.ZipFile(path) as z:
        names = sorted(z.namelist())
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["__xpnn__"]))
    assert meta["format"] == xpnn.io.MODEL_FORMAT == 2 and meta["model"] == "LayeredNet"
    assert meta["config"] == {
        "layers": [
            {"kind": "Affine", "config": {"input_size": 5, "output_size": 4}},
            {"kind": "Relu", "config": {}},
            {"kind": "MatMul", "config": {"input_size": 4, "output_size": 6}},
            {"kind": "Sigmoid", "config": {}},
            {"kind": "Affine", "config": {"input_size": 6, "output_size": 3}},
        ],
        "loss": {"kind": "SoftmaxWithLoss", "config": {}},
        "input_size": None,
    }
    assert names == sorted(
        ["__xpnn__.npy"] + [f"layers.{n}.npy" for n in ["0.W", "0.b", "2.W", "4.W", "4.b"]]
    )
    assert load(path).input_size is None


def _rewrite_meta(path, edit):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("__xpnn__")))
    edit(meta)
    np.savez(path, __xpnn__=np.array(json.dumps(meta)), **arrays)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m["config"]["layers"][1].update(kind="Deconvolution"),
         "layer 1 is of unknown layer kind 'Deconvolution'; known kinds: MatMul, Affine"),
        (lambda m: m["config"]["layers"][1].update(kind=["Relu"]), "unknown layer kind"),
        (lambda m: m["config"]["loss"].update(kind="Affine"), "Affine config must have"),
        (lambda m: m["config"]["layers"][0]["config"].update(input_size=0), "positive int"),
        (lambda m: m["config"]["layers"][1]["config"].update(ratio=0.5),
         r"Relu config must have exactly the keys \[\]"),
        (lambda m: m["config"].update(layers=[]), "non-empty list"),
        (lambda m: m["config"].update(input_size="5"), "'input_size' must be"),
        (lambda m: m["config"].pop("loss"), "LayeredNet config must have exactly the keys"),
    ],
    ids=["unknown-kind", "kind-not-a-string", "loss-with-params", "size-0", "extra-key",
         "no-layers", "input-size", "no-loss"],
)  # fmt: skip
def test_bad_layer_configs_are_refused(tmp_path, edit, match):
    path = save(custom_net(), tmp_path / "net.npz")
    _rewrite_meta(path, edit)
    with pytest.raises(ModelFileError, match="bad model configuration") as err:
        load(path)
    assert err.match(match)


def test_a_layer_config_that_implies_other_shapes_is_refused(tmp_path):
    # Without input_size the chain of sample shapes is not checked (test_model_chain.py
    # does that): the arrays' shapes against the config are, still.
    path = save(custom_net(input_size=None), tmp_path / "net.npz")
    _rewrite_meta(path, lambda m: m["config"]["layers"][2]["config"].update(output_size=7))
    with pytest.raises(
        ModelFileError, match=r"wrong shapes: layers.2.W \(4, 6\) \(expected \(4, 7\)\)"
    ):
        load(path)
    # With it, the chain breaks first: layer 4 gets 7 features where it takes 6.
    path = save(custom_net(), tmp_path / "chained.npz")
    _rewrite_meta(path, lambda m: m["config"]["layers"][2]["config"].update(output_size=7))
    with pytest.raises(ModelFileError, match=r"layer 4 \(Affine\)"):
        load(path)


# ------------------------------------------------------------ what cannot be saved


def test_a_layered_net_subclass_is_not_saved_as_something_else(tmp_path):
    class Mine(LayeredNet):
        def predict(self, x):
            return super().predict(x) * 2

    net = custom_net()
    with pytest.raises(TypeError, match=r"cannot save a Mine: .*xpnn.LayeredNet\(net.layers"):
        save(Mine(net.layers, net.loss_layer, 5), tmp_path / "n.npz")
    assert list(tmp_path.iterdir()) == []


def test_an_unregistered_layer_is_named(tmp_path):
    class Double(Layer):
        def forward(self, x):
            return 2 * x

    net = custom_net()
    with pytest.raises(TypeError, match=r"layer 1, a .*Double: it is not a registered layer kind"):
        save(LayeredNet([net.layers[0], Double()], SoftmaxWithLoss()), tmp_path / "n.npz")
    assert list(tmp_path.iterdir()) == []


def test_layers_that_do_not_fit_their_config_or_dtype(tmp_path):
    w = xpnn.zeros((5, 4))
    with pytest.raises(ValueError, match="do not fit its config"):
        save(LayeredNet([Affine(w, xpnn.zeros(3))], SoftmaxWithLoss()), tmp_path / "n.npz")
    mixed = LayeredNet([Affine(w, xpnn.zeros(4, dtype="float64"))], SoftmaxWithLoss())
    with pytest.raises(ValueError, match=r"\['float32', 'float64'\], not one float dtype"):
        save(mixed, tmp_path / "n.npz")
    assert list(tmp_path.iterdir()) == []


def test_tied_weights_are_not_silently_untied(tmp_path):
    w = xpnn.zeros((4, 4))
    tied = LayeredNet([MatMul(w), Relu(), MatMul(w)], SoftmaxWithLoss())
    with pytest.raises(ValueError, match=r"layers\.0\.W and layers\.2\.W are the same array"):
        save(tied, tmp_path / "n.npz")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ a new layer joins


class Scale(Layer):
    """A test layer with a hyper-parameter, a parameter and a state array."""

    param_names = ("g",)
    state_names = ("seen",)

    def __init__(self, g, factor, seen=None):
        super().__init__()
        self.params, self.grads = [g], [xpnn.get_namespace(g).zeros_like(g)]
        self.factor = factor
        self.seen = xpnn.get_namespace(g).zeros_like(g) if seen is None else seen

    def forward(self, x):
        return x * self.params[0] * self.factor + self.seen

    def config(self):
        return {"size": int(self.params[0].shape[0]), "factor": self.factor}

    @classmethod
    def param_shapes(cls, config):
        if not isinstance(config, dict) or sorted(config) != ["factor", "size"]:
            raise ValueError(f"Scale config must have the keys factor, size, got {config!r}")
        return {"g": (config["size"],)}

    @classmethod
    def state_shapes(cls, config):
        return {"seen": (config["size"],)}

    @classmethod
    def from_config(cls, config, *, dtype, backend):
        size = cls.param_shapes(config)["g"]
        return cls(xpnn.zeros(size, dtype, backend=backend), config["factor"])


def test_a_new_layer_saves_by_declaring_its_config(backend, tmp_path, monkeypatch):
    monkeypatch.setitem(LAYERS, "Scale", Scale)  # what xpnn.layers.register_layer(Scale) does
    g = xpnn.asarray(np.array([1.0, 2.0, 3.0, 4.0]), dtype="float32")
    seen = xpnn.asarray(np.array([0.5, 0.0, -0.5, 1.0]), dtype="float32")
    net = LayeredNet(
        [
            Affine(xpnn.asarray(np.ones((5, 4)), dtype="float32"), xpnn.zeros(4)),
            Scale(g, 0.5, seen),
        ],
        SoftmaxWithLoss(),
    )
    path = save(net, tmp_path / "n.npz")
    loaded = load(path)
    assert isinstance(loaded.layers[1], Scale) and loaded.layers[1].factor == 0.5
    np.testing.assert_array_equal(host(loaded.layers[1].seen), host(seen))
    x = batch("float32")
    np.testing.assert_array_equal(host(loaded.predict(x)), host(net.predict(x)))
    monkeypatch.delitem(LAYERS, "Scale")
    with pytest.raises(ModelFileError, match="unknown layer kind 'Scale'"):
        load(path)


def test_register_layer_refuses_a_second_class_of_a_name(monkeypatch):
    monkeypatch.setattr(xpnn.layers, "LAYERS", dict(LAYERS))
    assert xpnn.layers.register_layer(Affine) is Affine  # again: fine

    class Affine2(Affine):
        pass

    Affine2.__name__ = "Affine"
    with pytest.raises(ValueError, match="a layer kind 'Affine' is registered already"):
        xpnn.layers.register_layer(Affine2)


def test_shapes_come_from_a_config_without_allocating():
    config = {
        "layers": [{"kind": "Affine", "config": {"input_size": 10**6, "output_size": 10**6}}],
        "loss": {"kind": "SoftmaxWithLoss", "config": {}},
        "input_size": None,
    }
    assert LayeredNet.array_shapes(config) == {
        "layers.0.W": (10**6, 10**6),
        "layers.0.b": (10**6,),
    }
    sizes = {"input_size": 10**6, "hidden_size": 10**6, "output_size": 2}
    assert xpnn.TwoLayerNet.array_shapes(sizes)["W1"] == (10**6, 10**6)


# ------------------------------------------------------------ the book's models


def _write_format_1(model, path):
    """Write a file as xpnn.io.save did before format 2 (its exact code path)."""
    if isinstance(model, xpnn.SimpleNet):
        named = {"W": model.W}
    elif isinstance(model.params, dict):
        named = dict(model.params)
    else:
        named = {f"params.{i}": p for i, p in enumerate(model.params)}
    arrays = {key: xpnn.to_numpy(p) for key, p in named.items()}
    meta = {
        "format": 1,
        "xpnn": "0.1.0",
        "model": type(model).__name__,
        "config": model.config,
        "dtype": next(iter(arrays.values())).dtype.name,
        "params": {key: list(a.shape) for key, a in arrays.items()},
    }
    with open(path, "wb") as f:
        np.savez(f, **{**arrays, "__xpnn__": np.array(json.dumps(meta))})
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda: xpnn.TwoLayerNet(4, 3, 2, seed=1),
        lambda: xpnn.LayeredTwoLayerNet(4, 3, 2, seed=1, dtype="float64"),
        lambda: xpnn.SimpleNet(seed=1),
    ],
    ids=["TwoLayerNet", "LayeredTwoLayerNet-float64", "SimpleNet"],
)
def test_files_of_format_1_still_load(backend, tmp_path, make):
    net = make()
    loaded = load(_write_format_1(net, tmp_path / "old.npz"))
    assert type(loaded) is type(net)
    want, got = xpnn.io._file_arrays(net), xpnn.io._file_arrays(loaded)
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_array_equal(host(got[key]), host(want[key]))
        assert got[key].dtype == want[key].dtype
    # and the book's models still write the same layout (with format 2)
    with zipfile.ZipFile(save(net, tmp_path / "new.npz")) as z:
        assert sorted(z.namelist()) == sorted(["__xpnn__.npy", *(f"{k}.npy" for k in want)])


def test_fortran_order_and_compressed_files_load(tmp_path):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=1)
    path = save(net, tmp_path / "n.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["W1"] = np.asfortranarray(arrays["W1"])
    np.savez_compressed(path, **arrays)
    loaded = load(path)
    np.testing.assert_array_equal(host(loaded.params["W1"]), host(net.params["W1"]))

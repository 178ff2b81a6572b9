"""Saving and loading models: .npz without pickle, across backends."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import xpnn
from xpnn.io import ModelFileError, load, save


def host_params(model):
    return {k: xpnn.to_numpy(v) for k, v in xpnn.io._named_params(model).items()}


@pytest.mark.parametrize("cls", ["TwoLayerNet", "LayeredTwoLayerNet"])
def test_round_trip_on_every_backend(backend, tmp_path, cls):
    net = getattr(xpnn, cls)(5, 4, 3, seed=1)
    path = save(net, tmp_path / "net.npz")
    loaded = load(path)
    assert type(loaded) is type(net)
    assert xpnn.backend_of(next(iter(xpnn.io._named_params(loaded).values()))) == backend
    for key, value in host_params(net).items():
        np.testing.assert_array_equal(host_params(loaded)[key], value)
    x = xpnn.default_rng(0).standard_normal((2, 5))
    np.testing.assert_array_equal(xpnn.to_numpy(loaded.scores(x)), xpnn.to_numpy(net.scores(x)))


def test_saved_on_one_backend_loads_on_another(backend, tmp_path):
    with xpnn.use_backend("numpy", dtype="float64"):
        net = xpnn.TwoLayerNet(4, 3, 2, seed=2)
        save(net, tmp_path / "cpu.npz")
    loaded = load(tmp_path / "cpu.npz")  # onto the backend under test
    assert loaded.params["W1"].dtype == backend.xp.float64
    np.testing.assert_array_equal(
        xpnn.to_numpy(loaded.params["W1"]), xpnn.to_numpy(net.params["W1"])
    )
    assert load(tmp_path / "cpu.npz", dtype="float32").params["W1"].dtype == backend.xp.float32


def test_loaded_layers_use_the_loaded_weights(tmp_path):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=2)
    save(net, tmp_path / "n.npz")
    loaded = load(tmp_path / "n.npz")
    assert loaded.layers[0].params[0] is loaded.params["W1"]


def test_simplenet_round_trip(tmp_path):
    net = xpnn.SimpleNet(seed=4)
    loaded = load(save(net, tmp_path / "s.npz"))
    np.testing.assert_array_equal(xpnn.to_numpy(loaded.W), xpnn.to_numpy(net.W))


def test_metadata(tmp_path):
    save(xpnn.TwoLayerNet(4, 3, 2), tmp_path / "n.npz")
    with np.load(tmp_path / "n.npz", allow_pickle=False) as data:
        meta = json.loads(str(data["__xpnn__"]))
    assert meta["model"] == "TwoLayerNet" and meta["xpnn"] == xpnn.__version__
    assert meta["config"] == {
        "input_size": 4,
        "hidden_size": 3,
        "output_size": 2,
        "activation": "sigmoid",
    }
    assert meta["dtype"] == "float32"


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)


def test_wrong_keys_and_shapes_are_named(tmp_path):
    path = save(xpnn.TwoLayerNet(4, 3, 2), tmp_path / "n.npz")
    _rewrite(path, W1=None, W9=np.zeros(3, np.float32))
    with pytest.raises(ModelFileError, match=r"missing \['W1'\], unexpected \['W9'\]"):
        load(path)
    path = save(xpnn.TwoLayerNet(4, 3, 2), tmp_path / "m.npz")
    _rewrite(path, b2=np.zeros(5, np.float32))
    with pytest.raises(ModelFileError, match=r"b2 \(5,\) \(expected \(2,\)\)"):
        load(path)


def test_pickle_and_foreign_files_are_refused(tmp_path):
    book = tmp_path / "params.pkl"  # the book's way of saving weights
    book.write_bytes(pickle.dumps({"W1": np.zeros((2, 2))}))
    with pytest.raises(ModelFileError, match="pickled Python objects"):
        load(book)
    with_objects = tmp_path / "obj.npz"
    np.savez(
        with_objects,
        __xpnn__=np.array(json.dumps({"model": "TwoLayerNet"})),
        W1=np.array([{"evil": 1}], dtype=object),
    )
    with pytest.raises(ModelFileError, match="refused"):
        load(with_objects)
    not_zip = tmp_path / "text.npz"
    not_zip.write_bytes(b"PK\x03\x04 but not really a zip file")
    with pytest.raises(ModelFileError, match=r"not an \.npz"):
        load(not_zip)
    plain = tmp_path / "plain.npz"
    np.savez(plain, W1=np.zeros(2))
    with pytest.raises(ModelFileError, match="no xpnn metadata"):
        load(plain)
    unknown = tmp_path / "unknown.npz"
    np.savez(unknown, __xpnn__=np.array(json.dumps({"format": 2, "model": "ResNet"})))
    with pytest.raises(ModelFileError, match="unknown model 'ResNet'"):
        load(unknown)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")


def test_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = save(xpnn.TwoLayerNet(4, 3, 2, seed=0), tmp_path / "n.npz")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        save(xpnn.TwoLayerNet(4, 3, 2, seed=1), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["n.npz"]


def test_save_refuses_unknown_models(tmp_path):
    with pytest.raises(TypeError, match="cannot save"):
        save(object(), tmp_path / "x.npz")

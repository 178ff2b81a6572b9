"""The book's ``net.save_params`` / ``net.load_params`` on every LayeredNet model (issue 24).

Vol. 1's ``train_convnet.py`` ends with ``network.save_params("params.pkl")`` and
ch. 8 starts from ``network.load_params("deep_convnet_params.pkl")``: both run
unchanged, writing xpnn's safe format (no pickle) and reading it or the book's
pickles through :func:`xpnn.io.load_book_pickle`.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn.io import BookPickleError, ModelFileError
from xpnn.layers import Affine, Relu, SoftmaxWithLoss
from xpnn.models import (
    DeepConvNet,
    LayeredNet,
    LayeredTwoLayerNet,
    MultiLayerNet,
    MultiLayerNetExtend,
    SimpleConvNet,
    TwoLayerNet,
)

BOOK1 = Path("/work/.mirror/oreilly-japan+deep-learning-from-scratch/repo")
CONV = {"filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1}


def _layered(seed):
    rng = xpnn.default_rng(seed)
    W = rng.normal(0.0, 0.1, (4, 3), dtype=xpnn.get_backend().float_dtype)
    b = rng.normal(0.0, 0.1, (3,), dtype=xpnn.get_backend().float_dtype)
    return LayeredNet([Affine(W, b), Relu()], SoftmaxWithLoss(), input_size=4)


MODELS = {
    "TwoLayerNet": lambda s: TwoLayerNet(4, 3, 2, seed=s),
    "LayeredTwoLayerNet": lambda s: LayeredTwoLayerNet(4, 3, 2, seed=s),
    "MultiLayerNet": lambda s: MultiLayerNet(4, [3, 3], 2, seed=s),
    "MultiLayerNetExtend": lambda s: MultiLayerNetExtend(4, [3], 2, use_batchnorm=True, seed=s),
    "SimpleConvNet": lambda s: SimpleConvNet((1, 6, 6), CONV, 4, 2, seed=s),
    "DeepConvNet": lambda s: DeepConvNet(seed=s),
    "LayeredNet": _layered,
}


def host_params(net):
    items = net.params.items() if isinstance(net.params, dict) else enumerate(net.params)
    return {k: xpnn.to_numpy(v).copy() for k, v in items}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))


@pytest.mark.parametrize("name", MODELS)
def test_save_then_load_into_a_fresh_model(backend, name, tmp_path):
    net, fresh = MODELS[name](0), MODELS[name](1)
    path = tmp_path / "params.pkl"  # the book's name: the content is xpnn's .npz
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnn.io.PrecisionLossWarning)  # vol. 2: float16
        assert net.save_params(str(path)) == path
    assert path.read_bytes()[:4] == b"PK\x03\x04"  # no pickle
    assert not list(tmp_path.glob(".*.part"))
    params = id(fresh.params)
    fresh.load_params(str(path))
    assert id(fresh.params) == params  # in place: the layers hold the new values
    expected = host_params(net)
    if name in ("LayeredNet", "LayeredTwoLayerNet"):  # vol. 2 stores float16
        expected = {k: v.astype(np.float16).astype(v.dtype) for k, v in expected.items()}
    assert_same(host_params(fresh), expected)
    x = xpnn.asarray(np.linspace(0, 1, 2 * 36, dtype="float32").reshape(2, 1, 6, 6))
    if name == "DeepConvNet":
        x = xpnn.asarray(np.linspace(0, 1, 784, dtype="float32").reshape(1, 1, 28, 28))
    elif name != "SimpleConvNet":
        x = xpnn.asarray(np.linspace(0, 1, 8, dtype="float32").reshape(2, 4))
    x = xpnn.asarray(x, dtype=fresh.params_list()[0].dtype)
    np.testing.assert_allclose(
        xpnn.to_numpy(fresh.predict(x)), xpnn.to_numpy(_predict_host(net, expected, x)), rtol=1e-5
    )


def _predict_host(net, expected, x):
    """``net`` predicting with the ``expected`` values (a third model, loaded in code)."""
    for k, v in expected.items():
        net.params[k] = xpnn.asarray(v, dtype=net.params[k].dtype)
    return net.predict(x)


def test_the_book_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    SimpleConvNet((1, 6, 6), CONV, 4, 2, seed=0).save_params()
    assert (tmp_path / "params.pkl").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpnn.io.PrecisionLossWarning)
        LayeredTwoLayerNet(4, 3, 2, seed=0).save_params()
    assert (tmp_path / "LayeredTwoLayerNet.pkl").is_file()
    assert xpnn.io.load("LayeredTwoLayerNet.pkl").params[0].dtype == np.float32
    net = SimpleConvNet((1, 6, 6), CONV, 4, 2, seed=1)
    net.load_params()
    assert_same(host_params(net), host_params(SimpleConvNet((1, 6, 6), CONV, 4, 2, seed=0)))
    assert xpnn.io.load("params.pkl").config["seed"] == 0  # xpnn.io reads it too


def test_the_attribute_error_is_gone():
    for name in MODELS:
        assert callable(MODELS[name](0).save_params), name
        assert callable(MODELS[name](0).load_params), name


def test_a_wrong_shape_file_is_refused_and_nothing_changes(backend, tmp_path):
    small, big = tmp_path / "small.pkl", tmp_path / "book.pkl"
    TwoLayerNet(4, 3, 2, seed=0).save_params(small)
    net = TwoLayerNet(5, 3, 2, seed=1)
    before = host_params(net)
    with pytest.raises(ModelFileError, match=r"wrong shapes: W1 \(4, 3\) \(expected \(5, 3\)\)"):
        net.load_params(small)
    # The book's pickle: a dict keyed like params, one of the wrong shape.
    book = {k: np.ones_like(v) for k, v in before.items()}
    book["b2"] = np.ones(3)
    big.write_bytes(pickle.dumps(book))
    with pytest.raises(ModelFileError, match=r"b2 \(3,\) \(expected \(2,\)\)"):
        net.load_params(big)
    book["b2"] = np.ones(2)
    book["W9"] = np.ones(2)
    big.write_bytes(pickle.dumps(book))
    with pytest.raises(ModelFileError, match=r"unexpected \['W9'\]"):
        net.load_params(big)
    assert_same(host_params(net), before)


def test_the_book_pickles_load_in_place(backend, tmp_path):
    net = TwoLayerNet(4, 3, 2, seed=0)
    book = {k: np.full(v.shape, 0.5) for k, v in host_params(net).items()}  # float64
    path = tmp_path / "params.pkl"
    path.write_bytes(pickle.dumps(book, protocol=2))
    W1 = net.params["W1"]
    net.load_params(path)
    assert net.params["W1"] is W1
    assert xpnn.backend_of(net.params["W1"]).spec == backend.spec
    assert_same(host_params(net), {k: v.astype(np.float32) for k, v in book.items()})
    # vol. 2: a list in params order (BaseModel pickles float16)
    net2 = LayeredTwoLayerNet(4, 3, 2, seed=0)
    values = [np.full(p.shape, 0.25, dtype=np.float16) for p in host_params(net2).values()]
    path.write_bytes(pickle.dumps(values, protocol=5))
    net2.load_params(path)
    assert_same(host_params(net2), {i: v.astype(np.float32) for i, v in enumerate(values)})
    with pytest.raises(ModelFileError, match="list of 4 arrays"):
        net2.load_params(_dump(tmp_path, {"W1": values[0]}))
    with pytest.raises(ModelFileError, match="dict of arrays"):
        net.load_params(_dump(tmp_path, values))


def _dump(tmp_path, value):
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps(value))
    return path


def test_a_hostile_pickle_runs_nothing_and_changes_nothing(tmp_path):
    flag = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    net = TwoLayerNet(4, 3, 2, seed=0)
    before = host_params(net)
    path = tmp_path / "params.pkl"
    path.write_bytes(pickle.dumps({"W1": Evil()}))
    with pytest.raises(BookPickleError, match=r"params\.pkl: refused the global .*system"):
        net.load_params(path)
    assert not flag.exists()
    path.write_bytes(pickle.dumps(subprocess.Popen))
    with pytest.raises(BookPickleError, match=r"subprocess\.Popen"):
        net.load_params(path)
    assert_same(host_params(net), before)


def test_the_save_path_is_checked_first(tmp_path):
    net = TwoLayerNet(4, 3, 2, seed=0)
    with pytest.raises(ValueError, match="is a folder"):
        net.save_params(tmp_path)
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link.pkl").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match="symbolic link"):
        net.save_params(tmp_path / "link.pkl")
    assert (tmp_path / "real").read_bytes() == b"x"
    with pytest.raises(FileNotFoundError):
        net.load_params(tmp_path / "missing.pkl")


def test_the_pretrained_deep_convnet_loads_with_one_call(backend, tmp_path):
    """Ch. 8's shipped weights: 97.6% of mnist5k's 1,000 test digits (the book's own
    code gives the same 0.976 on them; 99.38% is on the full MNIST test set)."""
    if backend.spec not in ("numpy:cpu", "torch:cpu"):
        pytest.skip("the accuracy check runs on numpy and torch:cpu")
    path = tmp_path / "deep_convnet_params.pkl"
    done = subprocess.run(
        ["git", "-C", str(BOOK1), "show", "HEAD:ch08/deep_convnet_params.pkl"],
        capture_output=True,
    )
    if done.returncode or not done.stdout:
        pytest.skip("the book's repository (ch08/deep_convnet_params.pkl) is not on this machine")
    path.write_bytes(done.stdout)
    net = DeepConvNet()
    net.load_params(str(path))
    _, (x_test, t_test) = xpnn.datasets.load_mnist5k(flatten=False)
    assert float(net.accuracy(x_test, t_test)) >= 0.975

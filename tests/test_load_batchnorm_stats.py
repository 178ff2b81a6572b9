"""A file whose BatchNormalization running_var is negative is refused (issue 23, item 1).

A variance is never negative: loaded, such a layer predicts NaN. ``load`` and
``load_params`` refuse it, naming the file, the layer and the count, before
the model is built (``xpnn.io.checks.STATE_CONSTRAINTS``).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_io_hostile import refused_cheaply  # load refused in < 2 s and < 8 MiB traced

import xpnn
from xpnn.io import ModelFileError, load, load_params, save
from xpnn.io.checks import STATE_CONSTRAINTS
from xpnn.layers import Affine, BatchNormalization, Relu, SoftmaxWithLoss
from xpnn.models import LayeredNet, MultiLayerNetExtend


def extend():
    net = MultiLayerNetExtend(6, [5, 4], 3, use_batchnorm=True, seed=0)
    x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    net.loss(xpnn.asarray(x), xpnn.asarray(np.arange(8) % 3), train_flg=True)  # running stats
    return net


def layered():
    rng = np.random.default_rng(0)

    def a(*shape, value=None):
        return xpnn.asarray(
            np.full(shape, value, np.float32) if value is not None else rng.random(shape, "f4")
        )

    bn = BatchNormalization(a(5, value=1.0), a(5, value=0.0), running_var=a(5))
    layers = [Affine(a(6, 5), a(5)), bn, Relu(), Affine(a(5, 3), a(3))]
    return LayeredNet(layers, SoftmaxWithLoss(), 6)


def rewrite_array(path, key, edit):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    edit(arrays[key])
    np.savez(path, **arrays)
    return path


def set_values(index, values):
    def edit(a):
        a[index] = values

    return edit


@pytest.mark.parametrize("dtype", [None, "float16"])
def test_multilayernetextend_with_a_negative_running_var_is_refused(tmp_path, dtype):
    path = save(extend(), tmp_path / "net.npz", dtype=dtype)
    assert load(path)  # as saved: loads
    rewrite_array(path, "running_var2", set_values([0, 3], -1.0))
    message = refused_cheaply(path, r"net\.npz: running_var2, the running_var of hidden layer 2")
    assert "BatchNormalization, holds 2 negative values of 4" in message
    assert "damaged or edited" in message


def test_a_layered_net_with_a_negative_running_var_is_refused(backend, tmp_path):
    path = save(layered(), tmp_path / "net.npz")
    rewrite_array(path, "layers.1.running_var", set_values(2, -1.0))
    message = refused_cheaply(path, r"net\.npz: layers\.1\.running_var")
    assert "the running_var of layer 1 (BatchNormalization), holds 1 negative value of 5" in message
    # allow_nonfinite lets NaN through, not a negative variance.
    refused_cheaply(path, "1 negative value", allow_nonfinite=True)


def test_refused_before_the_model_is_built(tmp_path, monkeypatch):
    path = rewrite_array(
        save(extend(), tmp_path / "net.npz"), "running_var1", set_values(0, -1e-30)
    )

    def never(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(MultiLayerNetExtend, "from_config", classmethod(never))
    refused_cheaply(path, "running_var1, the running_var of hidden layer 1's Batch")


def test_zero_and_nan_variances(tmp_path):
    # The book starts running_var at zeros (a layer never trained): kept.
    net = layered()
    bn = net.layers[1]
    bn.running_var[...] = xpnn.asarray(np.array([0.0, -0.0, 1.0, 2.0, 3.0], np.float32))
    path = save(net, tmp_path / "net.npz")
    np.testing.assert_array_equal(xpnn.to_numpy(load(path).layers[1].running_var)[:2], 0.0)
    rewrite_array(path, "layers.1.running_var", set_values(0, np.nan))
    refused_cheaply(path, "layers.1.running_var holds NaN")


def test_load_params_refuses_and_changes_nothing(backend):
    net = extend()
    before = {k: np.array(xpnn.to_numpy(v)) for k, v in xpnn.io._file_arrays(net).items()}
    arrays = {k: v.copy() for k, v in before.items()}
    arrays["W1"] += 1.0
    arrays["running_var1"][4] = -0.5
    with pytest.raises(ModelFileError, match=r"x\.npz: running_var1, .*layer 1 \(Batch"):
        load_params(net, arrays, source="x.npz")
    for key, value in xpnn.io._file_arrays(net).items():
        np.testing.assert_array_equal(xpnn.to_numpy(value), before[key], err_msg=key)
    arrays["running_var1"][4] = 0.5
    load_params(net, arrays)
    np.testing.assert_array_equal(xpnn.to_numpy(net.params["W1"]), arrays["W1"])


def test_the_constraint_is_declared_by_layer_kind_and_state():
    assert STATE_CONSTRAINTS["BatchNormalization"] == {"running_var": "non-negative"}
    for kind, states in STATE_CONSTRAINTS.items():
        assert set(states) <= set(xpnn.layers.LAYERS[kind].state_names)

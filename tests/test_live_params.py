"""``params`` is live: assigning into it writes into the arrays the layers hold."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import xpnn
from xpnn.backend import _open
from xpnn.models import ParamDict, ParamList


def host(a):
    return np.array(xpnn.to_numpy(a), copy=True)


def _batch(n=5, d=4, c=2, seed=0):
    rng = np.random.default_rng(seed)
    return xpnn.asarray(rng.normal(size=(n, d)), dtype="float32"), xpnn.asarray(
        rng.integers(0, c, n)
    )


def test_the_issue_snippet_changes_predictions(backend):
    """The issue's case: zeroing every parameter through params[k] = ..."""
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    x, _ = _batch()
    before = host(net.predict(x))
    for k in net.params:
        net.params[k] = xpnn.asarray(np.zeros(net.params[k].shape))
    after = host(net.predict(x))
    assert not np.allclose(before, after)
    # All-zero weights: every class equally likely.
    np.testing.assert_allclose(after, np.full((5, 2), 0.5), rtol=0, atol=0)
    assert isinstance(net.params, dict) and isinstance(net.params, ParamDict)


@pytest.mark.parametrize("model", ["TwoLayerNet", "LayeredTwoLayerNet"])
def test_assignment_writes_into_the_layers_arrays(backend, model):
    net = getattr(xpnn, model)(4, 3, 2, seed=0)
    keys = list(net.params) if isinstance(net.params, dict) else range(len(net.params))
    layer_arrays = [p for layer in net.layers for p in layer.params]
    rng = np.random.default_rng(1)
    for i, k in enumerate(keys):
        new = rng.normal(size=tuple(net.params[k].shape))
        net.params[k] = xpnn.asarray(new, dtype="float32")
        assert net.params[k] is layer_arrays[i]  # the same array, new values
        np.testing.assert_array_equal(host(layer_arrays[i]), new.astype(np.float32))


def test_optimizer_state_keeps_its_references(backend):
    """After an assignment, updates still reach the layers (nothing was rebound)."""
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    opt = xpnn.Momentum(lr=0.1)
    x, t = _batch()
    opt.update(net.params, net.gradient(x, t))
    net.params["W2"] = xpnn.asarray(np.ones((3, 2)), dtype="float32")
    opt.update(net.params, net.gradient(x, t))
    w2_layer = net.layers[2].params[0]
    assert w2_layer is net.params["W2"]
    assert not np.array_equal(host(w2_layer), np.ones((3, 2), dtype=np.float32))


def test_in_place_operators_still_work(backend):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    before = host(net.params["b1"])
    net.params["b1"] += 1.0  # __getitem__, __iadd__, then __setitem__ of the same array
    np.testing.assert_allclose(host(net.layers[0].params[1]), before + 1.0)


def test_float64_values_are_stored_in_the_parameters_dtype(backend):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    value = np.full((4, 3), 1 / 3)  # float64
    net.params["W1"] = xpnn.asarray(value)
    assert xpnn.get_namespace(net.params["W1"]).isdtype(net.params["W1"].dtype, "real floating")
    assert host(net.params["W1"]).dtype == np.float32
    np.testing.assert_array_equal(host(net.params["W1"]), value.astype(np.float32))


def test_assigning_a_view_of_the_parameter_itself(backend):
    net = xpnn.TwoLayerNet(3, 3, 2, seed=0)
    w = host(net.params["W1"])
    net.params["W1"] = net.params["W1"].T  # overlaps its destination
    np.testing.assert_array_equal(host(net.params["W1"]), w.T)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (
            lambda: xpnn.asarray(np.zeros((3, 4)), dtype="float32"),
            ValueError,
            r"\(4, 3\).*\(3, 4\)",
        ),
        (lambda: xpnn.asarray(np.zeros((4, 3), dtype=np.int64)), TypeError, "int64"),
        (lambda: [[0.0] * 3] * 4, TypeError, "xpnn.asarray"),
    ],
    ids=["shape", "dtype-kind", "not-an-array"],
)
def test_refused_values_name_what_does_not_fit(backend, value, error, match):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    before = host(net.params["W1"])
    with pytest.raises(error, match=match) as info:
        net.params["W1"] = value()
    assert "params['W1']" in str(info.value)
    np.testing.assert_array_equal(host(net.params["W1"]), before)


def test_values_from_another_backend_are_refused(backend):
    other = "array_api_strict:device2" if backend.name != "array_api_strict" else "numpy"
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    value = xpnn.asarray(np.zeros((4, 3)), dtype="float32", backend=_open(other))
    with pytest.raises(xpnn.BackendMismatchError, match=r"params\['W1'\]"):
        net.params["W1"] = value


def test_update_checks_everything_before_writing(backend):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    before = {k: host(v) for k, v in net.params.items()}
    good = xpnn.asarray(np.zeros((4, 3)), dtype="float32")
    bad = xpnn.asarray(np.zeros((2, 2)), dtype="float32")
    with pytest.raises(ValueError, match=r"params\['b1'\]"):
        net.params.update({"W1": good, "b1": bad})
    for k, v in net.params.items():
        np.testing.assert_array_equal(host(v), before[k])


def test_keys_are_fixed(backend):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    with pytest.raises(KeyError, match="W3"):
        net.params["W3"] = net.params["W1"]
    with pytest.raises(TypeError, match="fixed"):
        del net.params["W1"]
    with pytest.raises(TypeError, match="fixed"):
        net.params.pop("W1")
    layered = xpnn.LayeredTwoLayerNet(4, 3, 2, seed=0)
    with pytest.raises(TypeError, match="fixed length"):
        layered.params.append(layered.params[0])
    with pytest.raises(IndexError):
        layered.params[4] = layered.params[0]
    assert sorted(net.params) == ["W1", "W2", "b1", "b2"] and len(layered.params) == 4


def test_list_params_slices_and_whole_assignment(backend):
    a = xpnn.LayeredTwoLayerNet(4, 3, 2, seed=0)
    b = xpnn.LayeredTwoLayerNet(4, 3, 2, seed=1)
    assert isinstance(a.params, ParamList)
    a.params[:2] = b.params[:2]
    np.testing.assert_array_equal(host(a.layers[0].params[0]), host(b.params[0]))
    a.params = list(b.params)  # the book's rebinding idiom, written in place
    for p, q in zip(a.params, b.params, strict=True):
        assert p is not q
        np.testing.assert_array_equal(host(p), host(q))
    with pytest.raises(ValueError, match="length is fixed"):
        a.params[:] = b.params[:3]


def test_dict_rebinding_is_written_in_place_and_checked(backend):
    a = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    b = xpnn.TwoLayerNet(4, 3, 2, seed=1)
    w1 = a.params["W1"]
    a.params = dict(b.params)  # the book's load_params: self.params[key] = val
    assert a.params["W1"] is w1 and a.layers[0].params[0] is w1
    np.testing.assert_array_equal(host(w1), host(b.params["W1"]))
    with pytest.raises(ValueError, match="exactly the keys"):
        a.params = {"W1": b.params["W1"]}


def test_deepcopy_keeps_params_live_and_shared_with_layers(backend):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    twin = copy.deepcopy(net)
    assert isinstance(twin.params, ParamDict)
    assert twin.params["W1"] is twin.layers[0].params[0]
    twin.params["W1"] = xpnn.asarray(np.zeros((4, 3)), dtype="float32")
    assert not np.array_equal(host(net.params["W1"]), host(twin.params["W1"]))
    np.testing.assert_array_equal(host(twin.layers[0].params[0]), np.zeros((4, 3)))


def test_inputs_of_another_float_dtype_are_refused_with_the_fix(backend):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)  # float32
    x = xpnn.asarray(np.zeros((2, 4)))  # float64, kept
    with pytest.raises(TypeError, match=r"float32.*float64.*dtype='float32'"):
        net.predict(x)


@pytest.mark.parametrize("model", ["TwoLayerNet", "LayeredTwoLayerNet"])
def test_one_sample_gives_one_row_of_results(backend, model):
    """A (features,) sample once gave (features, classes) on NumPy, (classes,) on torch."""
    net = getattr(xpnn, model)(4, 3, 2, seed=0)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3, 4))
    batch = xpnn.asarray(rows, dtype="float32")
    one = xpnn.asarray(rows[0], dtype="float32")
    row = host(net.predict(batch))[0]
    got = host(net.predict(one))
    assert got.shape == (2,)
    np.testing.assert_allclose(got, row, rtol=1e-6)
    t = xpnn.asarray(np.array(1))
    single = float(host(net.forward(one, t)))
    batch_of_one = float(
        host(net.forward(xpnn.get_namespace(one).reshape(one, (1, 4)), xpnn.asarray(np.array([1]))))
    )
    assert single == batch_of_one
    assert float(host(net.accuracy(one, t))) in (0.0, 1.0)


def test_layers_refuse_a_lone_row(backend):
    from xpnn.layers import Affine

    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    layer = Affine(net.params["W1"], net.params["b1"])
    with pytest.raises(ValueError, match=r"batch \(N, D\).*\(4,\)"):
        layer.forward(xpnn.asarray(np.ones(4), dtype="float32"))

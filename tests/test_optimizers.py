"""Optimizers: book formulas, convergence, in-place updates, state and checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn
from xpnn.layers import Affine
from xpnn.optimizers import (
    SGD,
    AdaGrad,
    Adam,
    Momentum,
    Nesterov,
    NesterovVol2,
    Optimizer,
    RMSprop,
)

NAMES = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]
CLASSES = {cls.__name__: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam)}
#: The state arrays of each optimizer, by the book's attribute names.
STATE_NAMES = {
    "SGD": (),
    "Momentum": ("v",),
    "Nesterov": ("v",),
    "AdaGrad": ("h",),
    "RMSprop": ("h",),
    "Adam": ("m", "v"),
}
#: Hyper-parameters unlike the defaults, so one that is ignored shows.
HYPER = {
    "SGD": {"lr": 0.1},
    "Momentum": {"lr": 0.1, "momentum": 0.8},
    "Nesterov": {"lr": 0.1, "momentum": 0.7},
    "AdaGrad": {"lr": 0.2},
    "RMSprop": {"lr": 0.05, "decay_rate": 0.9},
    "Adam": {"lr": 0.05, "beta1": 0.8, "beta2": 0.95},
}
#: Learning rates that bring the quadratic bowl down within 200 steps.
BOWL_LR = {
    "SGD": 0.1,
    "Momentum": 0.02,
    "Nesterov": 0.02,
    "AdaGrad": 0.5,
    "RMSprop": 0.05,
    "Adam": 0.1,
}
#: Learning rates that train the small TwoLayerNet within 30 steps.
NET_LR = {
    "SGD": 1.0,
    "Momentum": 0.1,
    "Nesterov": 0.1,
    "AdaGrad": 0.1,
    "RMSprop": 0.01,
    "Adam": 0.03,
}


def host(a):
    return xpnn.to_numpy(a)


def f64(a):
    """Host data on the backend in float64, always a copy (numpy would share)."""
    return xpnn.asarray(np.array(a, dtype=np.float64), dtype="float64")


def make(name, **kwargs):
    return CLASSES[name](**{**HYPER[name], **kwargs})


def host_copy(container):
    if isinstance(container, dict):
        return {k: host(v).copy() for k, v in container.items()}
    return [host(v).copy() for v in container]


# --------------------------------------------------- an independent reference


def reference_step(name, hp, p, g, state, t):
    """One step of the book's algorithm on host arrays, written out anew.

    ``state`` (a dict of NumPy arrays, empty at first) is updated; ``t`` is the
    step number 1, 2, ...; returns the new parameter.
    """
    lr = hp["lr"]
    zero = np.zeros_like(p)
    if name == "SGD":
        return p - lr * g
    if name == "Momentum":
        state["v"] = hp["momentum"] * state.get("v", zero) - lr * g
        return p + state["v"]
    if name == "Nesterov":
        # Vol. 1's corrected code: p moves with the velocity before the update.
        mu, v_old = hp["momentum"], state.get("v", zero)
        state["v"] = mu * v_old - lr * g
        return p + mu**2 * v_old - (1 + mu) * lr * g
    if name == "AdaGrad":
        state["h"] = state.get("h", zero) + g**2
        return p - lr * g / (np.sqrt(state["h"]) + 1e-7)
    if name == "RMSprop":
        rho = hp["decay_rate"]
        state["h"] = rho * state.get("h", zero) + (1 - rho) * g**2
        return p - lr * g / (np.sqrt(state["h"]) + 1e-7)
    if name == "Adam":
        # Kingma & Ba's bias-corrected moments; the book's eps sits on the
        # uncorrected sqrt(v), i.e. eps / sqrt(1 - beta2^t) on sqrt(v_hat).
        b1, b2 = hp["beta1"], hp["beta2"]
        state["m"] = b1 * state.get("m", zero) + (1 - b1) * g
        state["v"] = b2 * state.get("v", zero) + (1 - b2) * g**2
        m_hat = state["m"] / (1 - b1**t)
        v_hat = state["v"] / (1 - b2**t)
        return p - lr * m_hat / (np.sqrt(v_hat) + 1e-7 / math.sqrt(1 - b2**t))
    raise AssertionError(name)


@pytest.mark.parametrize("name", NAMES)
def test_first_two_steps_match_reference(backend, name):
    rng = np.random.default_rng(1)
    shapes = [(3, 4), (4,)]
    p_host = [rng.normal(size=s) for s in shapes]
    grad_steps = [[rng.normal(scale=2.0, size=s) for s in shapes] for _ in range(2)]
    grad_steps[0][1][2] = 0.0  # a zero gradient: AdaGrad & co. divide by 1e-7 there

    params = [f64(p) for p in p_host]
    opt = make(name)
    ref_states = [{} for _ in shapes]
    for t, grads in enumerate(grad_steps, start=1):
        opt.update(params, [f64(g) for g in grads])
        p_host = [
            reference_step(name, HYPER[name], p, g, s, t)
            for p, g, s in zip(p_host, grads, ref_states, strict=True)
        ]
        for got, want in zip(params, p_host, strict=True):
            np.testing.assert_allclose(host(got), want, rtol=1e-12, atol=1e-15)
        for state_name in STATE_NAMES[name]:
            for got, want in zip(getattr(opt, state_name), ref_states, strict=True):
                np.testing.assert_allclose(host(got), want[state_name], rtol=1e-12, atol=1e-15)
    assert opt.iter == 2


def test_first_step_by_hand(backend):
    """Numbers worked out on paper for p = [1, -2], g = [0.5, -4]."""
    g = [0.5, -4.0]

    def first_step(opt):
        params = [f64([1.0, -2.0])]
        opt.update(params, [f64(g)])
        return host(params[0])

    np.testing.assert_allclose(first_step(SGD(lr=0.1)), [0.95, -1.6], rtol=1e-14)
    np.testing.assert_allclose(first_step(Momentum(lr=0.1)), [0.95, -1.6], rtol=1e-14)
    # Nesterov (vol. 1): p += mu^2 v_old - (1 + mu) lr g with v_old = 0: -1.9 * 0.1 g.
    np.testing.assert_allclose(first_step(Nesterov(lr=0.1)), [0.905, -1.24], rtol=1e-14)
    # NesterovVol2: v = -lr g first, then p += mu^2 v - (1 + mu) lr g = -(0.81 + 1.9) * 0.1 g.
    np.testing.assert_allclose(first_step(NesterovVol2(lr=0.1)), [0.8645, -0.916], rtol=1e-14)
    # AdaGrad and Adam move each element by lr (up to the 1e-7) against its
    # gradient's sign, RMSprop by lr / sqrt(1 - decay_rate) = 10 lr.
    np.testing.assert_allclose(first_step(AdaGrad(lr=0.1)), [0.9, -1.9], rtol=1e-6)
    np.testing.assert_allclose(first_step(Adam(lr=0.1)), [0.9, -1.9], rtol=1e-5)
    np.testing.assert_allclose(first_step(RMSprop(lr=0.01)), [0.9, -1.9], rtol=1e-5)


def test_book_defaults():
    defaults = {name: CLASSES[name]().state_dict()["hyperparams"] for name in NAMES}
    assert defaults == {
        "SGD": {"lr": 0.01},
        "Momentum": {"lr": 0.01, "momentum": 0.9},
        "Nesterov": {"lr": 0.01, "momentum": 0.9},
        "AdaGrad": {"lr": 0.01},
        "RMSprop": {"lr": 0.01, "decay_rate": 0.99},
        "Adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999},
    }
    assert repr(Adam()) == "Adam(lr=0.001, beta1=0.9, beta2=0.999)"
    assert all(isinstance(CLASSES[name](), Optimizer) for name in NAMES)


# ------------------------------------------------------------- quadratic bowl


@pytest.mark.parametrize("name", NAMES)
def test_quadratic_bowl_descends(backend, xp, name):
    """f(p) = 0.5 * sum(a * p**2), gradient a * p, minimum 0 at p = 0."""
    a = xpnn.asarray([0.5, 1.0, 2.0, 5.0])
    p = xpnn.asarray([3.0, -2.0, 1.5, -1.0])

    def loss():
        return 0.5 * xp.sum(a * p * p)

    start = float(host(loss()))
    opt = CLASSES[name](lr=BOWL_LR[name])
    params = [p]
    for _ in range(200):
        opt.update(params, [a * p])
    assert params[0] is p
    end = float(host(loss()))
    assert end < 1e-3 * start, (start, end)


# ------------------------------------------------------ in place, dtype, device


@pytest.mark.parametrize("name", NAMES)
def test_updates_in_place_and_leaves_grads_alone(backend, name):
    rng = np.random.default_rng(2)
    W, b = f64(rng.normal(size=(3, 2))), f64(rng.normal(size=2))
    layer = Affine(W, b)  # holds the very arrays the optimizer updates
    params = [W, b]
    ids = [id(W), id(b)]
    before = host_copy(params)
    x = f64(rng.normal(size=(4, 3)))
    out_before = np.array(host(layer.forward(x)))  # a copy: the output is the layer's buffer
    grads = [f64(rng.normal(size=(3, 2))), f64(rng.normal(size=2))]
    grads_before = host_copy(grads)
    opt = make(name)
    for _ in range(2):
        opt.update(params, grads)
    assert [id(p) for p in params] == ids
    assert layer.params[0] is W and layer.params[1] is b
    for old, new in zip(before, params, strict=True):
        assert not np.allclose(old, host(new))
    for old, new in zip(grads_before, grads, strict=True):
        np.testing.assert_array_equal(old, host(new))
    out_after = host(layer.forward(x))
    np.testing.assert_allclose(out_after, host_copy([x])[0] @ host(W) + host(b), rtol=1e-12)
    assert not np.allclose(out_before, out_after)


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32_and_state_lives_beside_params(backend, xp, name):
    rng = np.random.default_rng(3)
    params = {
        "W": xpnn.asarray(rng.normal(size=(3, 2)), dtype="float32"),
        "b": xpnn.asarray(rng.normal(size=2), dtype="float32"),
    }
    assert all(p.dtype == xp.float32 for p in params.values())
    opt = make(name)
    for state_name in STATE_NAMES[name]:
        assert getattr(opt, state_name) is None  # created lazily
    for _ in range(3):
        grads = {
            k: xpnn.asarray(rng.normal(size=tuple(p.shape)), dtype="float32")
            for k, p in params.items()
        }
        opt.update(params, grads)
    for p in params.values():
        assert p.dtype == xp.float32
        assert xpnn.device_of(p) == backend.device
        assert np.all(np.isfinite(host(p)))
    for state_name in STATE_NAMES[name]:
        state = getattr(opt, state_name)
        assert isinstance(state, dict) and list(state) == ["W", "b"]
        for key, s in state.items():
            assert s.dtype == xp.float32, (state_name, key)
            assert xpnn.device_of(s) == backend.device, (state_name, key)
            assert tuple(s.shape) == tuple(params[key].shape)
            assert s is not params[key]


# ---------------------------------------------------------- list/dict contract


@pytest.mark.parametrize("name", NAMES)
def test_dict_and_list_contracts_agree(backend, name):
    rng = np.random.default_rng(4)
    init = {"W1": rng.normal(size=(3, 2)), "b1": rng.normal(size=2)}
    as_dict = {k: f64(v) for k, v in init.items()}
    as_list = [f64(init["W1"]), f64(init["b1"])]
    opt_dict, opt_list = make(name), make(name)
    for _ in range(3):
        grads = {k: rng.normal(size=v.shape) for k, v in init.items()}
        # The dict's keys come in another order than params': matched by key.
        opt_dict.update(as_dict, {"b1": f64(grads["b1"]), "W1": f64(grads["W1"])})
        opt_list.update(as_list, (f64(grads["W1"]), f64(grads["b1"])))
    np.testing.assert_array_equal(host(as_dict["W1"]), host(as_list[0]))
    np.testing.assert_array_equal(host(as_dict["b1"]), host(as_list[1]))
    assert not np.allclose(host(as_list[0]), init["W1"])
    for state_name in STATE_NAMES[name]:
        by_key, by_index = getattr(opt_dict, state_name), getattr(opt_list, state_name)
        assert isinstance(by_key, dict) and set(by_key) == {"W1", "b1"}
        assert isinstance(by_index, list) and len(by_index) == 2
        np.testing.assert_array_equal(host(by_key["b1"]), host(by_index[1]))


# ---------------------------------------------------------------------- errors

BAD_HYPER = [
    (SGD, {"lr": 0}, ValueError, "lr"),
    (SGD, {"lr": -0.1}, ValueError, "lr"),
    (SGD, {"lr": float("nan")}, ValueError, "lr"),
    (SGD, {"lr": float("inf")}, ValueError, "lr"),
    (SGD, {"lr": "0.1"}, TypeError, "lr"),
    (SGD, {"lr": True}, TypeError, "lr"),
    (Momentum, {"momentum": 1.0}, ValueError, "momentum"),
    (Momentum, {"momentum": -0.1}, ValueError, "momentum"),
    (Nesterov, {"momentum": 1.5}, ValueError, "momentum"),
    (Nesterov, {"lr": 0.0}, ValueError, "lr"),
    (AdaGrad, {"lr": -1}, ValueError, "lr"),
    (RMSprop, {"decay_rate": 1.0}, ValueError, "decay_rate"),
    (RMSprop, {"decay_rate": -0.5}, ValueError, "decay_rate"),
    (Adam, {"beta1": 1.0}, ValueError, "beta1"),
    (Adam, {"beta2": -0.01}, ValueError, "beta2"),
    (Adam, {"beta2": float("nan")}, ValueError, "beta2"),
    (Adam, {"lr": 0.0}, ValueError, "lr"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "exc", "word"),
    BAD_HYPER,
    ids=[f"{c.__name__}-{k}" for c, k, _, _ in BAD_HYPER],
)
def test_bad_hyperparameters(cls, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        cls(**kwargs)


def test_hyperparameters_must_be_python_numbers(backend):
    with pytest.raises(TypeError, match="Python number"):
        SGD(lr=xpnn.asarray(0.1))
    # Host scalars of NumPy are numbers and become Python floats.
    assert type(Adam(lr=np.float32(0.5)).lr) is float


def on_backend(c):
    """A NumPy array, or a list or dict of them, on the backend, dtype kept."""
    if isinstance(c, dict):
        return {k: on_backend(v) for k, v in c.items()}
    if isinstance(c, list):
        return [on_backend(v) for v in c]
    return xpnn.asarray(np.array(c), dtype=c.dtype)  # a copy: W is used twice


def _mismatches():
    W, b = np.zeros((3, 2)), np.zeros(2)
    return [
        ([W, b], [W], ValueError, r"params has 2 arrays but grads has 1"),
        ({"W": W, "b": b}, {"W": W}, ValueError, r"missing in grads: \['b'\]"),
        ({"W": W}, {"W": W, "c": b}, ValueError, r"not in params: \['c'\]"),
        ([W, b], [W, np.zeros(3)], ValueError, r"grads\[1\] has shape \(3,\).*\(2,\)"),
        ({"W": W}, {"W": W.T}, ValueError, r"grads\['W'\] has shape \(2, 3\).*\(3, 2\)"),
        ([W], [np.zeros((3, 2), dtype=np.float32)], ValueError, r"grads\[0\] has dtype"),
        ({"W": W}, [W], TypeError, "two lists or two dicts"),
        (W, W, TypeError, "two lists or two dicts"),
    ]


@pytest.mark.parametrize("case", range(len(_mismatches())))
@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_mismatched_params_and_grads(backend, name, case):
    params, grads, exc, pattern = _mismatches()[case]
    params, grads = on_backend(params), on_backend(grads)
    before = host_copy(params) if isinstance(params, (list, dict)) else None
    opt = CLASSES[name](lr=0.1)
    with pytest.raises(exc, match=pattern):
        opt.update(params, grads)
    assert opt.iter == 0
    for state_name in STATE_NAMES[name]:
        assert getattr(opt, state_name) is None
    if before is not None:  # nothing was touched
        after = host_copy(params)
        for k in range(len(before)) if isinstance(before, list) else before:
            np.testing.assert_array_equal(before[k], after[k])


@pytest.mark.parametrize("name", ["Momentum", "Adam"])
def test_state_made_for_other_params(backend, name):
    opt = make(name)
    opt.update([f64(np.ones(3))], [f64(np.ones(3))])
    others = [f64(np.ones(3)), f64(np.ones(2))]
    with pytest.raises(ValueError, match=r"created for other parameters.*list of 1"):
        opt.update(others, [f64(np.ones(3)), f64(np.ones(2))])
    with pytest.raises(ValueError, match="created for other parameters"):
        opt.update({0: f64(np.ones(3))}, {0: f64(np.ones(3))})
    with pytest.raises(ValueError, match=r"has shape \(3,\) but params\[0\] has shape \(4,\)"):
        opt.update([f64(np.ones(4))], [f64(np.ones(4))])
    assert opt.iter == 1
    np.testing.assert_array_equal(host(others[0]), np.ones(3))  # untouched


def test_integer_params_are_refused(backend):
    p = xpnn.asarray(np.arange(3))
    with pytest.raises(TypeError, match="floating"):
        SGD().update([p], [xpnn.asarray(np.arange(3))])
    np.testing.assert_array_equal(host(p), [0, 1, 2])


def test_arrays_of_another_backend_are_refused(backend):
    other = "array_api_strict" if backend.name == "numpy" else "numpy"
    with xpnn.use_backend(other):
        foreign = xpnn.asarray(np.ones(3), dtype="float64")
    p = f64(np.ones(3))
    with pytest.raises(xpnn.BackendMismatchError):
        Momentum().update([p], [foreign])
    opt = Momentum()
    opt.update([p], [f64(np.ones(3))])
    opt.load_state_dict({**opt.state_dict(), "state": {"v": [foreign]}})
    with pytest.raises(xpnn.BackendMismatchError):
        opt.update([p], [f64(np.ones(3))])


# ----------------------------------------------------------------- checkpoints


def _to_host(state):
    """What a caller does before saving: every array to NumPy."""
    return {
        **state,
        "state": {
            name: None if arrays is None else host_copy(arrays)
            for name, arrays in state["state"].items()
        },
    }


def _to_backend(state):
    """... and after loading: back onto the parameters' backend, same dtype."""
    return {
        **state,
        "state": {
            name: None if arrays is None else [xpnn.asarray(a, dtype=a.dtype) for a in arrays]
            for name, arrays in state["state"].items()
        },
    }


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_resumes_identically(backend, xp, name):
    a = f64([0.5, 1.0, 2.0, 5.0])
    start = [3.0, -2.0, 1.5, -1.0]
    continuous, resumed = [f64(start)], [f64(start)]
    opt = make(name)
    for _ in range(5):
        opt.update(continuous, [a * continuous[0]])

    first = make(name)
    for _ in range(2):
        first.update(resumed, [a * resumed[0]])
    saved = first.state_dict()
    assert saved["optimizer"] == name and saved["iter"] == 2
    assert saved["hyperparams"] == HYPER[name]
    assert set(saved["state"]) == set(STATE_NAMES[name])
    snapshot, p_saved = _to_host(saved), host(resumed[0]).copy()
    first.update(resumed, [a * resumed[0]])  # a later update leaves the snapshot alone
    for state_name in STATE_NAMES[name]:
        np.testing.assert_array_equal(
            host(saved["state"][state_name][0]), snapshot["state"][state_name][0]
        )
        assert saved["state"][state_name][0] is not getattr(first, state_name)[0]

    resumed = [f64(p_saved)]
    second = CLASSES[name]()  # default hyper-parameters: load must restore HYPER
    second.load_state_dict(_to_backend(snapshot))
    assert second.iter == 2 and second.state_dict()["hyperparams"] == HYPER[name]
    for _ in range(3):
        second.update(resumed, [a * resumed[0]])
    np.testing.assert_array_equal(host(resumed[0]), host(continuous[0]))
    assert not np.allclose(host(continuous[0]), start)
    for state_name in STATE_NAMES[name]:
        for s in getattr(second, state_name):
            assert s.dtype == xp.float64 and xpnn.device_of(s) == backend.device


def test_state_dict_of_a_fresh_optimizer_loads():
    state = Adam(lr=0.5).state_dict()
    assert state == {
        "optimizer": "Adam",
        "hyperparams": {"lr": 0.5, "beta1": 0.9, "beta2": 0.999},
        "iter": 0,
        "state": {"m": None, "v": None},
    }
    opt = Adam()
    opt.load_state_dict(state)
    assert opt.lr == 0.5 and opt.m is None


def _bad_states():
    good = Momentum(lr=0.1).state_dict()
    v = [np.zeros(2)]
    return [
        ({**good, "optimizer": "Adam"}, ValueError, "'Adam', not 'Momentum'"),
        ({k: good[k] for k in ("optimizer", "iter", "state")}, ValueError, "exactly the keys"),
        ({**good, "hyperparams": {"lr": 0.1}}, ValueError, "momentum"),
        ({**good, "hyperparams": {"lr": 0.1, "momentum": 2.0}}, ValueError, "momentum"),
        ({**good, "iter": -1}, ValueError, "iter"),
        ({**good, "iter": 1.5}, TypeError, "iter"),
        ({**good, "state": {"h": v}}, ValueError, r"entries \['v'\]"),
        ({**good, "state": {"v": np.zeros(2)}}, TypeError, "lists or dicts"),
        ({**good, "state": {"v": ["not an array"]}}, TypeError, "not an array"),
        ([("optimizer", "Momentum")], TypeError, "dict from state_dict"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_states())))
def test_load_state_dict_errors_change_nothing(case):
    state, exc, pattern = _bad_states()[case]
    opt = Momentum(lr=0.3, momentum=0.5)
    with pytest.raises(exc, match=pattern):
        opt.load_state_dict(state)
    assert (opt.lr, opt.momentum, opt.iter, opt.v) == (0.3, 0.5, 0, None)


def test_load_state_dict_needs_matching_moments():
    state = Adam().state_dict()
    state["state"] = {"m": [np.zeros(2)], "v": {"W": np.zeros(2)}}
    with pytest.raises(ValueError, match="keyed alike"):
        Adam().load_state_dict(state)


# ------------------------------------------------------------- with the model


@pytest.mark.parametrize("name", NAMES)
def test_trains_two_layer_net_through_its_layers(backend, name):
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    labels = np.repeat(np.arange(3), 20)
    x_host = centers[labels] + rng.normal(scale=0.5, size=(60, 4))
    x, t = xpnn.asarray(x_host, dtype="float32"), xpnn.asarray(labels)
    net = xpnn.TwoLayerNet(4, 8, 3, weight_init_std=0.5, seed=0)
    ids = {k: id(v) for k, v in net.params.items()}
    start = float(host(net.loss(x, t)))
    opt = CLASSES[name](lr=NET_LR[name])
    for _ in range(30):
        opt.update(net.params, net.gradient(x, t))
    end = float(host(net.loss(x, t)))  # computed by the layers
    assert end < 0.3 * start, (start, end)
    assert {k: id(v) for k, v in net.params.items()} == ids
    assert net.layers[0].params[0] is net.params["W1"]
    assert net.layers[2].params[1] is net.params["b2"]

    # The same loss by hand from the optimizer's parameters: the layers used them.
    w = {k: host(v).astype(np.float64) for k, v in net.params.items()}
    hidden = 1 / (1 + np.exp(-(x_host @ w["W1"] + w["b1"])))
    scores = hidden @ w["W2"] + w["b2"]
    scores -= scores.max(axis=1, keepdims=True)
    log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    by_hand = -log_probs[np.arange(60), labels].mean()
    assert end == pytest.approx(by_hand, rel=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_python_numbers_as_the_books_naive_comparison(name):
    """ch06/optimizer_compare_naive.py: params {"x": -7.0, "y": 2.0}, numbers all along."""
    params, grads = {"x": -7.0, "y": 2.0}, {"x": 0, "y": 0}
    ref = {"x": np.array(-7.0), "y": np.array(2.0)}
    ref_states = {"x": {}, "y": {}}
    opt = make(name)
    history = []
    for t in range(1, 31):
        history.append(params["x"])
        grads["x"], grads["y"] = params["x"] / 10.0, 2.0 * params["y"]  # the book's df
        ref_grads = {"x": ref["x"] / 10.0, "y": 2.0 * ref["y"]}
        opt.update(params, grads)
        for k in ref:
            ref[k] = reference_step(name, HYPER[name], ref[k], ref_grads[k], ref_states[k], t)
        assert all(type(v) is float for v in params.values())
        assert params == pytest.approx({k: float(v) for k, v in ref.items()}, rel=1e-12)
    # Rebound, not modified in place: the history keeps 30 different points.
    assert len(set(history)) == 30 and history[0] == -7.0
    assert opt.iter == 30


def test_python_numbers_mixed_with_arrays_are_refused():
    opt = SGD()
    params = {"x": 1.0, "W": np.ones(2)}
    with pytest.raises(TypeError, match=r"params\['x'\] is a Python number but params\['W'\]"):
        opt.update(params, {"x": 1.0, "W": np.ones(2)})
    with pytest.raises(TypeError, match=r"grads\['x'\] must be one too, got ndarray"):
        opt.update({"x": 1.0}, {"x": np.ones(1)})
    assert params["x"] == 1.0 and opt.iter == 0

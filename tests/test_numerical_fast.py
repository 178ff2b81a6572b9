"""two_layer_numerical_gradient: the textbook loop's central differences, batched.

Every comparison is against the generic element-by-element loop
(``numerical_gradient(lambda _: net.loss(x, t), param)``), which is what the
book runs, and against backpropagation. No timings here: speed is measured by
benchmarks, not tests.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
import xpnn.gradient as gradient_module
from xpnn.gradient import (
    Float32GradientWarning,
    numerical_gradient,
    two_layer_numerical_gradient,
)

KEYS = ("W1", "b1", "W2", "b2")


def host(a):
    return xpnn.to_numpy(a)


def f64(a):
    return xpnn.asarray(a, dtype="float64")


def make_case(sizes, labels, seed=0, n=9, std=1.0):
    """A float64 TwoLayerNet with random weights *and biases*, and a batch.

    ``labels``: "int" (N,) class indices, "one-hot" (N, C), or "soft" (N, C)
    rows of probabilities (the loss takes those as they are).
    """
    d, hidden, c = sizes
    rng = np.random.default_rng(seed)
    net = xpnn.TwoLayerNet(d, hidden, c, weight_init_std=std, seed=seed, dtype="float64")
    net.params["b1"][...] = f64(rng.normal(scale=std, size=hidden))  # in place: the layers' arrays
    net.params["b2"][...] = f64(rng.normal(scale=std, size=c))
    x = f64(rng.normal(size=(n, d)))
    classes = rng.integers(0, c, size=n)
    if labels == "int":
        t = xpnn.asarray(classes)
    elif labels == "one-hot":
        t = f64(np.eye(c)[classes])
    else:
        p = rng.random((n, c))
        t = f64(p / p.sum(axis=1, keepdims=True))
    return net, x, t


def fast(net, x, t, **kwargs):
    p = net.params
    return two_layer_numerical_gradient(p["W1"], p["b1"], p["W2"], p["b2"], x, t, **kwargs)


def textbook(net, x, t, **kwargs):
    """The book's loop: every element, the whole network twice."""
    return {k: numerical_gradient(lambda _: net.loss(x, t), net.params[k], **kwargs) for k in KEYS}


def max_abs_diff(a, b):
    return float(np.max(np.abs(host(a) - host(b))))


SIZES = [pytest.param((6, 5, 3), id="6-5-3"), pytest.param((20, 7, 4), id="20-7-4")]
LABELS = ["int", "one-hot", "soft"]


@pytest.fixture(params=["series", "exp"])
def path(request, monkeypatch):
    """Which way the first layer's exps are summed: as a series (the default
    for ordinary weights), or exp() called class by class (forced)."""
    if request.param == "exp":
        monkeypatch.setattr(gradient_module, "_SERIES_MAX_DEGREE", 0)
    return request.param


@pytest.mark.parametrize("labels", LABELS)
@pytest.mark.parametrize("sizes", SIZES)
def test_equals_the_textbook_loop(backend, path, sizes, labels):
    net, x, t = make_case(sizes, labels)
    got = fast(net, x, t)
    want = textbook(net, x, t)
    for k in KEYS:
        assert max_abs_diff(got[k], want[k]) <= 1e-8, k
        assert np.any(host(want[k]) != 0), k  # the check compares something


@pytest.mark.parametrize("sizes", SIZES)
def test_results_are_like_the_parameters(backend, xp, sizes):
    net, x, t = make_case(sizes, "int")
    got = fast(net, x, t)
    assert set(got) == set(KEYS)
    for k in KEYS:
        p = net.params[k]
        assert type(got[k]) is type(p), k
        assert tuple(got[k].shape) == tuple(p.shape), k
        assert got[k].dtype == xp.float64, k
        assert xpnn.device_of(got[k]) == xpnn.device_of(p) == backend.device, k
        assert got[k] is not p


def test_parameters_and_inputs_are_not_changed(backend):
    net, x, t = make_case((20, 7, 4), "one-hot")
    before = {k: host(v).copy() for k, v in net.params.items()}
    x_before, t_before = host(x).copy(), host(t).copy()
    fast(net, x, t)
    for k in KEYS:
        np.testing.assert_array_equal(host(net.params[k]), before[k], strict=True)
    np.testing.assert_array_equal(host(x), x_before, strict=True)
    np.testing.assert_array_equal(host(t), t_before, strict=True)


@pytest.mark.parametrize("labels", ["int", "one-hot"])
def test_agrees_with_backprop(backend, labels):
    net, x, t = make_case((20, 7, 4), labels, seed=3)
    got = fast(net, x, t)
    analytic = {k: host(v).copy() for k, v in net.gradient(x, t).items()}
    for k in KEYS:
        a, b = analytic[k], host(got[k])
        scale = max(np.max(np.abs(a)), np.max(np.abs(b)))
        assert np.max(np.abs(a - b)) <= 1e-6 * scale, k


def test_series_and_exp_give_the_same_numbers(monkeypatch):
    net, x, t = make_case((20, 7, 4), "one-hot", seed=8, n=30)
    series = {k: host(v) for k, v in fast(net, x, t).items()}
    monkeypatch.setattr(gradient_module, "_SERIES_MAX_DEGREE", 0)
    calls = fast(net, x, t)
    for k in KEYS:
        np.testing.assert_allclose(host(calls[k]), series[k], rtol=0, atol=1e-12)


def test_large_weights_and_inputs_call_exp(backend, monkeypatch):
    """max|W2| * max|x| ~ 1e4: beyond the series, exp() is called; still the loop's numbers."""
    chosen = []
    series_degree = gradient_module._series_degree
    monkeypatch.setattr(
        gradient_module, "_series_degree", lambda b: chosen.append(series_degree(b)) or chosen[-1]
    )
    net, x, t = make_case((6, 5, 3), "int", seed=9, std=30.0)
    x = x * 20.0
    net.params["W1"][...] = net.params["W1"] / 1000  # hidden units not saturated
    got, want = fast(net, x, t), textbook(net, x, t)
    assert chosen == [None]
    for k in KEYS:
        assert np.any(host(want[k]) != 0), k
        assert max_abs_diff(got[k], want[k]) <= 1e-8, k


def test_series_degree():
    degree = gradient_module._series_degree
    assert degree(0.0) == 1
    assert degree(1e-12) == 1
    assert degree(1e-6) == 3
    assert degree(1e-4) == 4
    assert degree(0.02) == 8
    for big in (0.05, 0.5, 2.0, float("inf"), float("nan")):
        assert degree(big) is None
    tol = gradient_module._SERIES_TOLERANCE
    for bound in (1e-9, 1e-6, 1e-3, 0.01, 0.02):
        q = degree(bound)
        tail = sum(bound**m / np.prod(np.arange(1.0, m + 1)) for m in range(q + 1, q + 30))
        assert tail <= tol, bound
        if q > 1:  # and one degree less would not do
            assert tail + bound**q / np.prod(np.arange(1.0, q + 1)) > tol, bound


def test_other_step_sizes(backend):
    net, x, t = make_case((6, 5, 3), "int", seed=4)
    for h in (1e-3, 1e-5):
        got, want = fast(net, x, t, h=h), textbook(net, x, t, h=h)
        for k in KEYS:
            assert max_abs_diff(got[k], want[k]) <= 1e-8, (h, k)


# 20-7-3 on 9 samples: a first-layer perturbation takes 2 * 9 = 18 values
# per temporary; there are 21 x 7 of them (W1 and b1).
BUDGETS = {"one-per-block": 1, "rows-split": 18 * 12, "hidden-units-together": 18 * 21 * 3}


@pytest.mark.parametrize("budget", BUDGETS.values(), ids=BUDGETS.keys())
def test_blocks_do_not_change_the_result(backend, monkeypatch, budget):
    """Small budgets split the perturbations into blocks of rows, or join hidden units."""
    net, x, t = make_case((20, 7, 3), "int", seed=5)
    whole = {k: host(v) for k, v in fast(net, x, t).items()}
    monkeypatch.setattr(gradient_module, "_BLOCK_ELEMENTS_CPU", budget)
    monkeypatch.setattr(gradient_module, "_BLOCK_ELEMENTS_GPU", budget)
    blocked = fast(net, x, t)
    for k in KEYS:
        np.testing.assert_allclose(host(blocked[k]), whole[k], rtol=0, atol=1e-13)


def test_blocks_cover_the_grid():
    cases = [(21, 7, 18, 1), (21, 7, 18, 18 * 12), (21, 7, 18, 18 * 21 * 3), (3, 2, 5, 10**6)]
    for rows, cols, per, budget in cases:
        seen = np.zeros((rows, cols), dtype=int)
        for r0, r1, j0, j1 in gradient_module._blocks(rows, cols, per, budget):
            assert (r1 - r0) * (j1 - j0) * per <= max(budget, per)
            seen[r0:r1, j0:j1] += 1
        assert np.all(seen == 1), (rows, cols, per, budget)


def test_zero_inputs_give_exactly_zero_first_layer_gradient(backend):
    """A feature that is 0 in every sample cannot change the loss: W1's row is 0."""
    net, x, t = make_case((6, 5, 3), "int", seed=6)
    a = host(x).copy()
    a[:, 2] = 0.0
    got = fast(net, f64(a), t)
    assert np.all(host(got["W1"])[2] == 0.0)
    assert np.all(host(got["W1"])[1] != 0.0)


def test_float32_keeps_float32(backend, xp):
    net = xpnn.TwoLayerNet(6, 5, 3, weight_init_std=1.0, seed=0, dtype="float32")
    x = xpnn.asarray(np.random.default_rng(0).normal(size=(4, 6)), dtype="float32")
    t = xpnn.asarray(np.array([0, 2, 1, 2]))
    with pytest.warns(Float32GradientWarning, match="two_layer_numerical_gradient"):
        got = fast(net, x, t)
    for k in KEYS:
        assert got[k].dtype == xp.float32 and tuple(got[k].shape) == tuple(net.params[k].shape)
        assert np.all(np.isfinite(host(got[k])))


def test_mnist_sized_net_on_a_subset_of_elements():
    """784-50-10, batch 100: 200 random elements of W1, 40 of W2, all of b1 and b2.

    The reference for one element is the generic loop run on a one-element
    view of the parameter (NumPy views share memory), so it perturbs that
    element only, in place, exactly as the loop over the whole array would.
    """
    with xpnn.use_backend("numpy", dtype="float64"):
        rng = np.random.default_rng(7)
        net = xpnn.TwoLayerNet(784, 50, 10, weight_init_std=0.1, seed=7, dtype="float64")
        net.params["b1"][...] = rng.normal(scale=0.1, size=50)
        net.params["b2"][...] = rng.normal(scale=0.1, size=10)
        # like MNIST: values in [0, 1], about half of them exactly 0
        x = f64(rng.random((100, 784)) * (rng.random((100, 784)) < 0.5))
        t = xpnn.asarray(rng.integers(0, 10, size=100))
        got = fast(net, x, t)

        def loss(_):
            return net.loss(x, t)

        for key, count in (("W1", 200), ("W2", 40)):
            p = net.params[key]
            flat = rng.choice(p.size, size=count, replace=False)
            for i, j in zip(*np.unravel_index(flat, p.shape), strict=True):
                view = p[i : i + 1, j]
                assert np.shares_memory(view, p)
                want = numerical_gradient(loss, view)[0]
                assert abs(float(got[key][i, j]) - float(want)) <= 1e-8, (key, i, j)
        for key in ("b1", "b2"):
            assert max_abs_diff(got[key], numerical_gradient(loss, net.params[key])) <= 1e-8, key
        assert np.count_nonzero(got["W1"]) > net.params["W1"].size // 4


# ---------------------------------------------------------------------- errors


def test_mismatched_shapes_are_named(backend):
    net, x, t = make_case((6, 5, 3), "int")
    p = dict(net.params)

    def call(**change):
        args = {**p, "x": x, "t": t, **change}
        return two_layer_numerical_gradient(
            args["W1"], args["b1"], args["W2"], args["b2"], args["x"], args["t"]
        )

    rng = np.random.default_rng(0)
    for change in (
        {"x": f64(rng.normal(size=(9, 7)))},
        {"b1": f64(np.zeros(4))},
        {"W2": f64(np.zeros((4, 3)))},
        {"b2": f64(np.zeros(4))},
        {"x": f64(np.zeros((0, 6)))},
    ):
        with pytest.raises(ValueError, match=r"W1 \(6, 5\)"):
            call(**change)
    with pytest.raises(ValueError, match=r"needs W1 \(D, H\)"):
        call(W1=f64(np.zeros(6)))
    with pytest.raises(
        ValueError, match=r"labels of shape \(8,\) do not fit scores of shape \(9, 3\)"
    ):
        call(t=xpnn.asarray(np.zeros(8, dtype=np.int64)))
    with pytest.raises(ValueError, match=r"\(9, 4\) do not fit"):
        call(t=f64(np.zeros((9, 4))))


def test_wrong_dtypes_are_named(backend):
    net, x, t = make_case((6, 5, 3), "int")
    p = net.params
    with pytest.raises(TypeError, match="integer dtype"):
        two_layer_numerical_gradient(p["W1"], p["b1"], p["W2"], p["b2"], x, f64(np.zeros(9)))
    with pytest.raises(TypeError, match=r"\(x\) needs a floating-point array"):
        x_int = xpnn.asarray(np.zeros((9, 6), dtype=np.int64))
        two_layer_numerical_gradient(p["W1"], p["b1"], p["W2"], p["b2"], x_int, t)


def test_arrays_of_two_backends_are_refused(backend):
    net, x, t = make_case((6, 5, 3), "int")
    other = "numpy" if backend.name != "numpy" else "array_api_strict:device1"
    with xpnn.use_backend(other):
        x_other = f64(host(x))
    p = net.params
    with pytest.raises(xpnn.BackendMismatchError):
        two_layer_numerical_gradient(p["W1"], p["b1"], p["W2"], p["b2"], x_other, t)

"""Edge cases must agree with autograd or raise, on every backend.

Labels out of range (negative ones included), NaN through ReLU, sigmoid of
very negative inputs, scores spanning more than the float range, empty
batches and integer inputs. Each case once gave a silent wrong result or an
error from deep inside a library; these are its regression tests.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnn
from xpnn.backend import ops
from xpnn.functions import (
    check_labels,
    cross_entropy_error,
    relu,
    sigmoid,
    softmax,
    softmax_cross_entropy,
)
from xpnn.layers import Affine, MatMul, Relu, Sigmoid, SoftmaxWithLoss

C = 3


def host(a):
    """A host copy (NumPy results may be a layer's buffer, reused by its next call)."""
    return np.array(xpnn.to_numpy(a), copy=True)


def on_device(backend) -> bool:
    """Whether reading labels would be a host sync there (so they are not read)."""
    return backend.is_gpu or (
        backend.name == "array_api_strict" and backend.spec != "array_api_strict:CPU_DEVICE"
    )


def softmax_ref(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def scores_host(n: int = 3) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, C))


# ------------------------------------------------------ labels out of range

BAD_LABELS = [
    pytest.param([-1, 0, 2], id="negative"),
    pytest.param([0, C, 2], id="too-large"),
    pytest.param([-7, 1, 9], id="both"),
]


def _range_message(who: str, labels: list[int]) -> str:
    """The ValueError's message: who, the classes allowed, the range found."""
    found = rf"{min(labels)}\.\.{max(labels)}"
    return rf"{who} must be class indices in 0\.\.{C - 1}, found values in {found}"


@pytest.mark.parametrize("labels", BAD_LABELS)
def test_softmax_with_loss_bad_labels_raise_or_give_nan_rows(backend, labels):
    """Host: ValueError naming the range. Device: NaN loss and NaN gradient rows."""
    x_host = scores_host()
    x = xpnn.asarray(x_host, dtype="float64")
    t = xpnn.asarray(np.array(labels))
    layer = SoftmaxWithLoss()
    if not on_device(backend):
        with pytest.raises(ValueError, match=_range_message("SoftmaxWithLoss labels", labels)):
            layer.forward(x, t)
        return
    loss = host(layer.forward(x, t))
    dx = host(layer.backward())
    bad = (np.array(labels) < 0) | (np.array(labels) >= C)
    assert np.isnan(loss)
    assert np.isnan(dx[bad]).all()
    good = ~bad
    expected = (softmax_ref(x_host) - np.eye(C)[np.clip(labels, 0, C - 1)]) / len(labels)
    np.testing.assert_allclose(dx[good], expected[good], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("labels", BAD_LABELS)
@pytest.mark.parametrize("fn", [cross_entropy_error, softmax_cross_entropy])
def test_loss_functions_bad_labels_raise_or_give_nan(backend, labels, fn):
    y = xpnn.asarray(softmax_ref(scores_host()), dtype="float64")
    t = xpnn.asarray(np.array(labels))
    if not on_device(backend):
        with pytest.raises(ValueError, match=_range_message("integer labels", labels)):
            fn(y, t)
        return
    assert np.isnan(host(fn(y, t)))


def test_one_hot_targets_are_unaffected_by_the_label_checks(backend):
    """The same samples as one-hot targets give the reference loss and gradient."""
    x_host = scores_host()
    labels = np.array([2, 0, 1])
    one_hot = xpnn.asarray(np.eye(C)[labels], dtype="float64")
    x = xpnn.asarray(x_host, dtype="float64")
    p = softmax_ref(x_host)
    expected = -np.log(p[np.arange(3), labels]).mean()
    layer = SoftmaxWithLoss()
    assert float(host(layer.forward(x, one_hot))) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(host(layer.backward()), (p - np.eye(C)[labels]) / 3, rtol=1e-12)
    assert float(host(softmax_cross_entropy(x, one_hot))) == pytest.approx(expected, rel=1e-12)
    y = xpnn.asarray(p, dtype="float64")
    cee = -np.log(p[np.arange(3), labels] + 1e-7).mean()
    assert float(host(cross_entropy_error(y, one_hot))) == pytest.approx(cee, rel=1e-12)


@pytest.mark.parametrize("labels", BAD_LABELS)
def test_pick_refuses_on_numpy_and_picks_nan_elsewhere(backend, labels):
    a_host = scores_host()
    a = xpnn.asarray(a_host, dtype="float64")
    t = xpnn.asarray(np.array(labels))
    k = ops(a, t)
    if backend.name == "numpy":
        with pytest.raises(ValueError, match=_range_message("labels", labels)):
            k.pick(a, t)
        return
    got = host(k.pick(a, t))
    bad = (np.array(labels) < 0) | (np.array(labels) >= C)
    assert np.isnan(got[bad]).all()
    rows = np.arange(3)[~bad]
    np.testing.assert_array_equal(got[~bad], a_host[rows, np.array(labels)[~bad]])


@pytest.mark.parametrize("labels", BAD_LABELS)
def test_label_difference_gives_nan_rows_off_numpy(backend, labels):
    """The backward kernel of the loss on its own (NumPy relies on the forward check)."""
    if backend.name == "numpy":
        pytest.skip("on NumPy the forward pass refuses bad labels; backward does not re-read them")
    y_host = softmax_ref(scores_host())
    y = xpnn.asarray(y_host, dtype="float64")
    t = xpnn.asarray(np.array(labels))
    k = ops(y, t)
    out = k.buffer({}, "dx", (3, C), y.dtype, y)
    got = host(k.label_difference(y, t, 0.5, out=out))
    bad = (np.array(labels) < 0) | (np.array(labels) >= C)
    assert np.isnan(got[bad]).all()
    expected = (y_host - np.eye(C)[np.clip(labels, 0, C - 1)]) * 0.5
    np.testing.assert_allclose(got[~bad], expected[~bad], rtol=1e-15)


def test_check_labels_refuses_non_integer_dtypes(backend):
    for bad in (xpnn.asarray([0.0, 1.0], dtype="float32"), xpnn.asarray(np.array([True, False]))):
        with pytest.raises(TypeError, match="my labels must have an integer dtype"):
            check_labels(bad, C, who="my labels")


def test_check_labels_reads_only_where_it_is_free(backend):
    bad = xpnn.asarray(np.array([0, -2, 5]))
    if on_device(backend):
        # Nothing is read (array-api-strict's device would refuse a read).
        assert check_labels(bad, C, who="my labels") is None
    else:
        with pytest.raises(ValueError, match=r"my labels .* 0\.\.2, found values in -2\.\.5"):
            check_labels(bad, C, who="my labels")
    for good in ([0, 2, 1], [], 2):
        check_labels(xpnn.asarray(np.array(good, dtype=np.int64)), C)
    check_labels(xpnn.asarray(np.array([0, 2], dtype=np.uint8)), C)


@pytest.mark.parametrize("num_classes", [0, -1, 2.0, True])
def test_check_labels_needs_a_positive_class_count(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        check_labels(np.array([0]), num_classes)


def test_array_api_strict_cpu_device_counts_as_host_memory():
    pytest.importorskip("array_api_strict")
    with xpnn.use_backend("array_api_strict"):
        t = xpnn.asarray(np.array([0, -1]))
        with pytest.raises(ValueError, match=r"found values in -1\.\.0"):
            check_labels(t, C)
        with pytest.raises(ValueError, match="SoftmaxWithLoss labels"):
            SoftmaxWithLoss().forward(xpnn.asarray(np.zeros((2, C)), dtype="float64"), t)


# ------------------------------------------------------------- ReLU and NaN


def test_relu_keeps_nan_and_passes_its_gradient_like_torch(backend):
    """torch.relu(nan) is nan, and its backward keeps the gradient there
    (the output is not <= 0); x <= 0 gets 0 (checked against torch in
    test_oracle_torch.py)."""
    x = xpnn.asarray([np.nan, -1.0, 0.0, 2.0], dtype="float64")
    np.testing.assert_array_equal(host(relu(x)), [np.nan, 0.0, 0.0, 2.0])
    layer = Relu()
    np.testing.assert_array_equal(host(layer.forward(x)), [np.nan, 0.0, 0.0, 2.0])
    dout = xpnn.asarray([1.0, 2.0, 3.0, 4.0], dtype="float64")
    np.testing.assert_array_equal(host(layer.backward(dout)), [1.0, 0.0, 0.0, 4.0])


# ------------------------------------------------------------------ sigmoid


def _sigmoid_exact(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) with 11 more bits than float64 (x86's long double)."""
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("needs an extended-precision long double for the reference")
    return 1 / (1 + np.exp(-x.astype(np.longdouble)))


@pytest.mark.parametrize(("dtype", "lo", "hi"), [("float64", -700, 40), ("float32", -87, 17)])
def test_sigmoid_keeps_relative_accuracy_over_the_normal_range(backend, dtype, lo, hi):
    """A few ulp everywhere the value is a normal float (tanh lost it all for x << 0)."""
    x = np.linspace(lo, hi, 20001).astype(dtype)
    exact = _sigmoid_exact(x)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        got = host(sigmoid(xpnn.asarray(x, dtype=dtype)))
        layer_out = host(Sigmoid().forward(xpnn.asarray(x, dtype=dtype)))
    assert got.dtype == np.dtype(dtype)
    ulp = np.spacing(exact.astype(dtype)).astype(np.longdouble)
    errors = np.abs(got.astype(np.longdouble) - exact) / ulp
    assert float(errors.max()) <= 4.0
    np.testing.assert_array_equal(layer_out, got)  # one formula for both


@pytest.mark.parametrize(("dtype", "x"), [("float64", -38.0), ("float32", -19.0)])
def test_sigmoid_of_the_reported_points(backend, dtype, x):
    exact = float(_sigmoid_exact(np.array([x]))[0])  # 3.1e-17 and 5.6e-9
    got = float(host(sigmoid(xpnn.asarray([x], dtype=dtype)))[0])
    assert got == pytest.approx(exact, rel=4 * float(np.finfo(dtype).eps))


def test_sigmoid_limits_and_nan(backend):
    x = xpnn.asarray([-np.inf, -1e4, 0.0, 1e4, np.inf, np.nan], dtype="float32")
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        got = host(sigmoid(x))
    np.testing.assert_array_equal(got, [0.0, 0.0, 0.5, 1.0, 1.0, np.nan])


def test_sigmoid_backward_is_one_minus_y_times_y(backend):
    x_host = np.linspace(-30, 30, 61)
    layer = Sigmoid()
    y = host(layer.forward(xpnn.asarray(x_host, dtype="float64")))
    dout = np.linspace(-1, 1, 61)
    dx = host(layer.backward(xpnn.asarray(dout, dtype="float64")))
    np.testing.assert_allclose(dx, dout * (1 - y) * y, rtol=1e-15, atol=0)


# ----------------------------------------- scores spanning the float range

EXTREME = {"float64": 1e308, "float32": 3e38}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # x - max -> -inf
@pytest.mark.filterwarnings("error:invalid value encountered:RuntimeWarning")  # no 0 * inf
def test_extreme_finite_scores_never_give_nan(backend, dtype):
    big = EXTREME[dtype]
    x = xpnn.asarray([[big, -big, 0.0]], dtype=dtype)
    np.testing.assert_array_equal(host(softmax(x)), [[1.0, 0.0, 0.0]])
    for target in (xpnn.asarray(np.array([0])), xpnn.asarray([[1.0, 0.0, 0.0]], dtype=dtype)):
        layer = SoftmaxWithLoss()
        assert float(host(layer.forward(x, target))) == 0.0
        np.testing.assert_array_equal(host(layer.backward()), [[0.0, 0.0, 0.0]])
        assert float(host(softmax_cross_entropy(x, target))) == 0.0
    # The true loss of the class at -big exceeds the float range: inf, never NaN,
    # with the right (finite) gradient.
    for target in (xpnn.asarray(np.array([1])), xpnn.asarray([[0.0, 1.0, 0.0]], dtype=dtype)):
        layer = SoftmaxWithLoss()
        assert float(host(layer.forward(x, target))) == np.inf
        np.testing.assert_array_equal(host(layer.backward()), [[1.0, -1.0, 0.0]])
        assert float(host(softmax_cross_entropy(x, target))) == np.inf


# ------------------------------------------------ empty batches, bad dtypes


def _empty_targets():
    return {
        "labels": xpnn.asarray(np.zeros(0, dtype=np.int64)),
        "one-hot": xpnn.asarray(np.zeros((0, C)), dtype="float64"),
    }


def test_losses_of_an_empty_batch_raise_naming_the_shape(backend):
    x = xpnn.asarray(np.zeros((0, C)), dtype="float64")
    for t in _empty_targets().values():
        with pytest.raises(ValueError, match=r"\(0, 3\)"):
            SoftmaxWithLoss().forward(x, t)
        for fn in (cross_entropy_error, softmax_cross_entropy):
            with pytest.raises(ValueError, match=r"empty batch.*\(0, 3\)"):
                fn(x, t)


def test_softmax_of_an_empty_batch_is_empty_and_of_no_classes_raises(backend):
    out = softmax(xpnn.asarray(np.zeros((0, C)), dtype="float32"))
    assert tuple(out.shape) == (0, C)
    no_classes = xpnn.asarray(np.zeros((2, 0)), dtype="float32")
    with pytest.raises(ValueError, match=r"at least one class.*\(2, 0\)"):
        softmax(no_classes)
    with pytest.raises(ValueError, match=r"\(2, 0\)"):
        SoftmaxWithLoss().forward(no_classes, xpnn.asarray(np.zeros(2, dtype=np.int64)))


def test_integer_scores_and_inputs_are_refused_with_a_type_error(backend):
    x = xpnn.asarray(np.array([[1, 2, 3], [4, 5, 6]]))
    t = xpnn.asarray(np.array([0, 2]))
    with pytest.raises(TypeError, match="scores must be floating point, got int64"):
        SoftmaxWithLoss().forward(x, t)
    with pytest.raises(TypeError, match="floating-point scores, got int64"):
        softmax_cross_entropy(x, t)
    W = xpnn.asarray(np.ones((3, 2)), dtype="float64")
    b = xpnn.asarray(np.zeros(2), dtype="float64")
    with pytest.raises(TypeError, match="floating-point inputs, got int64"):
        Affine(W, b).forward(x)
    # MatMul takes integer rows as the book's np.dot does (vol. 2 ch03/cbow_predict.py):
    # converted to W's dtype, the same product as the float rows.
    got = MatMul(W).forward(x)
    assert got.dtype == W.dtype
    want = MatMul(W).forward(xpnn.asarray(xpnn.to_numpy(x), dtype="float64"))
    np.testing.assert_array_equal(xpnn.to_numpy(got), xpnn.to_numpy(want))

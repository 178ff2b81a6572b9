"""Property-based tests (hypothesis) of the math, on every backend.

Each property runs through the ``backend`` fixture, so every backend gets the
same generated inputs. Data is generated on the host (NumPy) and moved with
:func:`xpnn.asarray`; results come back with :func:`xpnn.to_numpy` and are
checked on the host. Exact checks use float64.

The book's constants are written out here (the 1e-7 delta of the
cross-entropy) rather than taken from xpnn, so that a wrong constant there
cannot make these tests agree with it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xpnn
from xpnn.functions import cross_entropy_error, softmax, softmax_cross_entropy
from xpnn.gradient import numerical_gradient
from xpnn.layers import Affine, MatMul, Relu, Sigmoid, Softmax, SoftmaxWithLoss, one_hot
from xpnn.models import LayeredNet

#: The book's delta in cross_entropy_error: -log(y + 1e-7).
DELTA = 1e-7

FLOAT_DTYPES = st.sampled_from(["float32", "float64"])

#: Score matrices: one sample (C,) or a batch (N, C), 1 to 6 on each side.
SHAPES = hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=6)


def properties(max_examples: int):
    """Hypothesis settings for a test that also takes the ``backend`` fixture."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def host(a):
    """A host copy: on the numpy backend to_numpy returns the array itself."""
    return np.array(xpnn.to_numpy(a), copy=True)


def rel_error(a, b, floor=1e-12):
    """max |a - b| relative to the larger of the two's scale (as test_models),
    or to ``floor`` where that is larger."""
    a, b = host(a), host(b)
    if a.size == 0:
        return 0.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), floor)
    return float(np.max(np.abs(a - b)) / scale)


def as_batch(scores: np.ndarray, labels: np.ndarray):
    """Host (C,)/() -> (1, C)/(1,), as the functions treat one sample."""
    return np.atleast_2d(scores), np.reshape(labels, (-1,))


@st.composite
def scores_and_labels(draw, elements=None, dtype=np.float64):
    """Scores (C,) or (N, C) with integer labels () or (N,) in 0..C-1."""
    elements = st.floats(-30, 30) if elements is None else elements
    scores = draw(hnp.arrays(dtype, SHAPES, elements=elements))
    c = scores.shape[-1]
    labels = draw(hnp.arrays(np.int64, scores.shape[:-1], elements=st.integers(0, c - 1)))
    return scores, labels


# -------------------------------------------------------------------- softmax


@properties(40)
@given(
    dtype=FLOAT_DTYPES,
    x=hnp.arrays(np.float64, SHAPES, elements=st.floats(-1e4, 1e4)),
)
def test_softmax_is_a_distribution_that_keeps_the_order(backend, dtype, x):
    xp = backend.xp
    x_dev = xpnn.asarray(x, dtype=dtype)
    out = softmax(x_dev)
    assert out.shape == x_dev.shape and out.dtype == getattr(xp, dtype)
    p = host(out)
    assert np.all(np.isfinite(p))
    assert np.all((p >= 0) & (p <= 1))
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=tol)
    # exp and the division are monotonic: a larger score never gets less.
    xs = host(x_dev)[..., :, None] > host(x_dev)[..., None, :]
    ps = p[..., :, None] >= p[..., None, :]
    assert np.all(ps[xs])


@properties(30)
@given(
    x=st.one_of(
        hnp.arrays(np.float64, SHAPES, elements=st.floats(allow_nan=False, allow_infinity=False)),
        hnp.arrays(
            np.float32, SHAPES, elements=st.floats(width=32, allow_nan=False, allow_infinity=False)
        ),
    )
)
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_softmax_of_any_finite_scores_is_finite(backend, x):
    """Even where x - max(x) overflows to -inf, exp gives 0: never NaN or inf."""
    p = host(softmax(xpnn.asarray(x, dtype=x.dtype.name)))
    assert np.all(np.isfinite(p))
    assert np.all((p >= 0) & (p <= 1))
    tol = 1e-12 if x.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=tol)
    # the largest score gets the largest probability
    rows_x, rows_p = np.atleast_2d(x), np.atleast_2d(p)
    top = np.argmax(rows_x, axis=-1)
    np.testing.assert_array_equal(rows_p[np.arange(len(top)), top], rows_p.max(axis=-1))


@properties(40)
@given(
    dtype=FLOAT_DTYPES,
    data=st.data(),
    k=hnp.arrays(np.int64, SHAPES, elements=st.integers(-80_000, 80_000)),
)
def test_softmax_shift_invariance_is_exact_on_a_grid(backend, dtype, data, k):
    """x and c on the grid 1/8 with |x|, |c| <= 1e4: x + c and x + c - max are
    exact in float32 and float64, so softmax(x + c) must equal softmax(x) bitwise."""
    x = k / 8
    c = data.draw(hnp.arrays(np.int64, (*x.shape[:-1], 1), elements=st.integers(-80_000, 80_000)))
    c = c / 8
    p = host(softmax(xpnn.asarray(x, dtype=dtype)))
    p_shifted = host(softmax(xpnn.asarray(x + c, dtype=dtype)))
    np.testing.assert_array_equal(p_shifted, p)


@properties(40)
@given(x=hnp.arrays(np.float64, SHAPES, elements=st.floats(-1e4, 1e4)), data=st.data())
def test_softmax_shift_invariance_float64(backend, x, data):
    """Any per-row constant: equal up to the rounding of x + c (|x + c| <= 2e4)."""
    c = data.draw(hnp.arrays(np.float64, (*x.shape[:-1], 1), elements=st.floats(-1e4, 1e4)))
    p = host(softmax(xpnn.asarray(x, dtype="float64")))
    p_shifted = host(softmax(xpnn.asarray(x + c, dtype="float64")))
    assert np.all(np.isfinite(p_shifted))
    np.testing.assert_allclose(p_shifted, p, rtol=1e-10, atol=1e-300)


# -------------------------------------------------------------- cross entropy


@properties(40)
@given(dtype=FLOAT_DTYPES, case=scores_and_labels())
def test_cross_entropy_one_hot_equals_integer_labels(backend, dtype, case):
    scores, labels = case
    c = scores.shape[-1]
    y = softmax(xpnn.asarray(scores, dtype=dtype))
    by_label = host(cross_entropy_error(y, xpnn.asarray(labels)))
    by_one_hot = host(cross_entropy_error(y, xpnn.asarray(np.eye(c)[labels], dtype=dtype)))
    assert by_label.shape == () and by_one_hot.shape == ()
    assert by_label.dtype == by_one_hot.dtype == np.dtype(dtype)
    # one-hot rows are turned into the same indices: the very same computation
    np.testing.assert_array_equal(by_one_hot, by_label)
    # and it is the book's formula
    y2, t2 = as_batch(host(y).astype(np.float64), labels)
    expected = -np.mean(np.log(y2[np.arange(len(t2)), t2] + DELTA))
    rtol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(by_label, expected, rtol=rtol, atol=rtol)


@properties(40)
@given(case=scores_and_labels())
def test_fused_loss_differs_from_the_book_only_by_its_delta(backend, case):
    """sce - cee(softmax) = mean(log(y_t + 1e-7) - log(y_t)) = mean(log1p(1e-7 / y_t))."""
    scores, labels = case
    s = xpnn.asarray(scores, dtype="float64")
    t = xpnn.asarray(labels)
    y = softmax(s)
    sce = float(host(softmax_cross_entropy(s, t)))
    cee = float(host(cross_entropy_error(y, t)))
    assert np.isfinite(sce) and np.isfinite(cee)
    y2, t2 = as_batch(host(y), labels)
    y_t = y2[np.arange(len(t2)), t2]
    delta_effect = float(np.mean(np.log1p(DELTA / y_t)))
    assert sce - cee == pytest.approx(delta_effect, rel=1e-6, abs=1e-12 * (1 + abs(sce)))
    if np.min(y_t) >= 0.1:  # probabilities not tiny: the book's delta is ~1e-6
        assert abs(sce - cee) <= 1e-6
    # one-hot targets give the same fused loss
    c = scores.shape[-1]
    sce_one_hot = float(host(softmax_cross_entropy(s, xpnn.asarray(np.eye(c)[labels], "float64"))))
    assert sce_one_hot == pytest.approx(sce, rel=1e-12, abs=1e-14)


#: The largest |score| for which a batch of up to 6 samples has a finite mean
#: loss: max - min <= 2 * bound must not overflow, nor the sum of 6 losses.
EXTREME = {"float64": 1e306, "float32": float(np.float32(1e36))}


@properties(50)
@given(data=st.data(), dtype=FLOAT_DTYPES)
def test_fused_loss_is_finite_and_bounded_for_extreme_scores(backend, data, dtype):
    """loss_n = logsumexp(s_n) - s_n[t] lies in [max(s_n) - s_n[t], ... + log C]."""
    bound = EXTREME[dtype]
    width = 64 if dtype == "float64" else 32
    scores, labels = data.draw(
        scores_and_labels(st.floats(-bound, bound, width=width), dtype=np.dtype(dtype))
    )
    c = scores.shape[-1]
    s = xpnn.asarray(scores, dtype=dtype)
    by_label = float(host(softmax_cross_entropy(s, xpnn.asarray(labels))))
    by_one_hot = float(host(softmax_cross_entropy(s, xpnn.asarray(np.eye(c)[labels], dtype))))
    s2, t2 = as_batch(scores.astype(np.float64), labels)
    gap = float(np.mean(s2.max(axis=1) - s2[np.arange(len(t2)), t2]))
    rtol = 1e-12 if dtype == "float64" else 1e-5
    tol = rtol * (1 + gap)
    for loss in (by_label, by_one_hot):
        assert np.isfinite(loss)
        assert gap - tol <= loss <= gap + np.log(c) + tol
    assert by_one_hot == pytest.approx(by_label, rel=rtol, abs=rtol)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fused_loss_one_hot_when_max_minus_min_overflows(backend):
    s = xpnn.asarray([[1e308, -1e308]], dtype="float64")
    by_label = float(host(softmax_cross_entropy(s, xpnn.asarray(np.array([0])))))
    by_one_hot = float(host(softmax_cross_entropy(s, xpnn.asarray([[1.0, 0.0]], "float64"))))
    assert by_label == 0.0  # passes: softmax is [1, 0], the loss is -log 1
    assert by_one_hot == 0.0  # NaN


@pytest.mark.parametrize("label_dtype", ["int32", "int16", "uint8"])
def test_losses_accept_integer_labels_of_any_integer_dtype(backend, label_dtype):
    y = xpnn.asarray([[0.2, 0.8], [0.6, 0.4]], dtype="float64")
    labels = np.array([1, 0])
    for fn in (cross_entropy_error, softmax_cross_entropy):
        expected = float(host(fn(y, xpnn.asarray(labels.astype("int64")))))
        got = float(host(fn(y, xpnn.asarray(labels.astype(label_dtype)))))
        assert got == expected, fn.__name__


# --------------------------------------------------------- numerical gradient

FUNCTIONS = {
    "sin": (lambda xp, x, w: xp.sum(xp.sin(x) * w), lambda x, w: np.cos(x) * w),
    "square": (lambda xp, x, w: xp.sum(x**2 * w), lambda x, w: 2 * x * w),
    "cube": (lambda xp, x, w: xp.sum(x * x * x * w), lambda x, w: 3 * x * x * w),
}

#: Shapes up to (4, 4), 0-d and empty included.
GRAD_SHAPES = hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4)


@st.composite
def points_and_weights(draw):
    x = draw(hnp.arrays(np.float64, GRAD_SHAPES, elements=st.floats(-1e3, 1e3)))
    w = draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-3, 3)))
    return x, w


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@properties(40)
@given(dtype=FLOAT_DTYPES, name=st.sampled_from(sorted(FUNCTIONS)), case=points_and_weights())
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore::xpnn.gradient.Float32GradientWarning")  # float32 on purpose
def test_numerical_gradient_restores_its_input_bitwise(backend, dtype, name, case):
    x_host, w_host = case
    f, df = FUNCTIONS[name]
    xp = backend.xp
    x = xpnn.asarray(x_host, dtype=dtype)
    w = xpnn.asarray(w_host, dtype=dtype)
    before = host(x)
    grad = numerical_gradient(lambda z: f(xp, z, w), x)
    assert same_bits(host(x), before)  # -0.0 and subnormals included
    assert grad.shape == x.shape and grad.dtype == x.dtype
    assert xpnn.device_of(grad) == xpnn.device_of(x)
    if dtype == "float64" and x_host.size and np.max(np.abs(x_host)) <= 10:
        expected = df(x_host, w_host)
        np.testing.assert_allclose(host(grad), expected, rtol=1e-6, atol=1e-6)


class Boom(Exception):
    pass


@properties(30)
@given(dtype=FLOAT_DTYPES, case=points_and_weights(), data=st.data())
@pytest.mark.filterwarnings("ignore::xpnn.gradient.Float32GradientWarning")  # float32 on purpose
def test_numerical_gradient_restores_its_input_when_f_raises(backend, dtype, case, data):
    x_host, _ = case
    assume(x_host.size > 0)
    fail_at = data.draw(st.integers(1, 2 * x_host.size), label="fail_at")
    xp = backend.xp
    x = xpnn.asarray(x_host, dtype=dtype)
    before = host(x)
    calls = []

    def f(z):
        calls.append(1)
        if len(calls) == fail_at:
            raise Boom
        return xp.sum(z)

    with pytest.raises(Boom):
        numerical_gradient(f, x)
    assert same_bits(host(x), before)


# ---------------------------------------------------- backprop of layer stacks

KINDS = ("Affine", "MatMul", "Sigmoid", "Relu", "Softmax")
WEIGHTS = st.floats(-2, 2)


@st.composite
def layer_stacks(draw):
    """2-4 layers with parameters in (-2, 2), a batch and labels of the output size."""
    kinds = draw(
        st.lists(st.sampled_from(KINDS), min_size=2, max_size=4).filter(
            lambda k: k[-1] != "Softmax" and ("Affine" in k or "MatMul" in k)
        )
    )
    d = d_in = draw(st.integers(1, 4))
    specs = []
    for kind in kinds:
        if kind in ("Affine", "MatMul"):
            d_out = draw(st.integers(1, 4))
            params = [draw(hnp.arrays(np.float64, (d, d_out), elements=WEIGHTS))]
            if kind == "Affine":
                params.append(draw(hnp.arrays(np.float64, (d_out,), elements=WEIGHTS)))
            d = d_out
        else:
            params = []
        specs.append((kind, params))
    n = draw(st.integers(1, 4))
    x = draw(hnp.arrays(np.float64, (n, d_in), elements=WEIGHTS))
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, d - 1)))
    return specs, x, labels, draw(st.booleans())


def build(specs):
    classes = {"Affine": Affine, "MatMul": MatMul, "Sigmoid": Sigmoid, "Relu": Relu}
    classes["Softmax"] = Softmax
    return [classes[kind](*(xpnn.asarray(p, "float64") for p in params)) for kind, params in specs]


@properties(50)
@given(case=layer_stacks())
def test_backprop_of_random_stacks_equals_numerical_gradient(backend, case):
    specs, x_host, labels, use_one_hot = case
    layers = build(specs)
    net = LayeredNet(layers, SoftmaxWithLoss())
    c = net.params[-1].shape[-1]
    x = xpnn.asarray(x_host, "float64")
    t = xpnn.asarray(np.eye(c)[labels], "float64") if use_one_hot else xpnn.asarray(labels)

    # Keep away from Relu's kink, where the two gradients may rightly differ.
    h = x
    for layer in layers:
        if isinstance(layer, Relu):
            assume(np.min(np.abs(host(h)), initial=np.inf) > 1e-3)
        h = layer.forward(h)

    net.forward(x, t)
    dx = host(net.backward())
    grads = [host(g) for g in net.grads]  # copies: backward reuses them
    relus = [layer for layer in layers if isinstance(layer, Relu)]
    masks = [host(layer.mask) for layer in relus]
    crossed = []

    def loss(_):
        value = net.forward(x, t)
        # A step of 1e-4 may still cross a kink further down: then skip it.
        if any(not np.array_equal(host(r.mask), m) for r, m in zip(relus, masks, strict=True)):
            crossed.append(True)
        return value

    numeric = [host(numerical_gradient(loss, p)) for p in net.params]
    numeric_dx = host(numerical_gradient(loss, x))
    assume(not crossed)
    # A gradient that is ~0 has its error measured against 1e-2 of the
    # network's largest gradient (and at least 1e-3): central differences are
    # off by h**2 / 6 * (third derivative), ~1e-10, where the true gradient is 0.
    pairs = [*zip(grads, numeric, strict=True), (dx, numeric_dx)]
    network_scale = max(float(np.max(np.abs(a), initial=0)) for pair in pairs for a in pair)
    floor = max(1e-2 * network_scale, 1e-3)
    names = [f"param {i}" for i in range(len(grads))] + ["input"]
    for name, (g, n) in zip(names, pairs, strict=True):
        assert rel_error(g, n, floor) <= 1e-6, f"{name} of {[k for k, _ in specs]}"


# -------------------------------------------------------------------- one-hot


@properties(40)
@given(
    label_dtype=st.sampled_from(["int64", "int32", "int16", "int8", "uint8"]),
    dtype=FLOAT_DTYPES,
    data=st.data(),
)
def test_one_hot_rows_have_a_single_one_at_the_label(backend, label_dtype, dtype, data):
    c = data.draw(st.integers(1, 10), label="num_classes")
    labels = data.draw(
        hnp.arrays(np.int64, st.integers(0, 8), elements=st.integers(0, c - 1)), label="labels"
    )
    xp = backend.xp
    t = xpnn.asarray(labels.astype(label_dtype))
    out = one_hot(t, c, getattr(xp, dtype))
    assert out.shape == (labels.shape[0], c) and out.dtype == getattr(xp, dtype)
    assert xpnn.device_of(out) == backend.device
    np.testing.assert_array_equal(host(out), np.eye(c)[labels])


@properties(30)
@given(case=scores_and_labels(), data=st.data())
def test_softmax_with_loss_one_hot_equals_integer_labels(backend, case, data):
    scores, labels = case
    scores, labels = as_batch(scores, labels)  # the layer takes batches (N, C)
    c = scores.shape[-1]
    x = xpnn.asarray(scores, "float64")
    by_label, by_one_hot = SoftmaxWithLoss(), SoftmaxWithLoss()
    loss1 = host(by_label.forward(x, xpnn.asarray(labels)))
    loss2 = host(by_one_hot.forward(x, xpnn.asarray(np.eye(c)[labels], "float64")))
    np.testing.assert_allclose(loss2, loss1, rtol=1e-12, atol=1e-14)
    dout = data.draw(st.floats(-2, 2), label="dout")
    np.testing.assert_array_equal(host(by_one_hot.backward(dout)), host(by_label.backward(dout)))
    # The layer keeps integer labels as they are (backward subtracts 1 at them).
    np.testing.assert_array_equal(host(by_label.t), labels)

"""Half-precision floats: softmax, the losses and sums accumulate in float32.

As under PyTorch's autocast, float16/bfloat16 scores are cast to float32 for
softmax and the loss (a float32 0-d array), backward rounds its gradient once
to the scores' dtype, and sums of half arrays (a bias gradient) accumulate in
float32. float32/float64 paths are unchanged, bitwise.

Every test runs on every backend. Where a backend has no such dtype
(array-api-strict has neither float16 nor bfloat16, NumPy no bfloat16) the
test asserts the clear ValueError ``xpnn.asarray`` gives instead of skipping.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import xpnn
from xpnn.backend import ops, resolve_dtype
from xpnn.datasets import load_mnist5k
from xpnn.functions import cross_entropy_error, mean_squared_error, sigmoid, softmax
from xpnn.functions import softmax_cross_entropy as fused_loss
from xpnn.gradient import Float32GradientWarning, numerical_diff, numerical_gradient
from xpnn.layers import Affine, Relu, Sigmoid, Softmax, SoftmaxWithLoss

#: Which half floats each library has.
HALF_SUPPORT = {
    "numpy": {"float16"},
    "cupy": {"float16"},
    "torch": {"float16", "bfloat16"},
    "array_api_strict": set(),
}

#: Relative tolerance of a half forward loss against the float32 one. The
#: half pass rounds the inputs, the weights and every layer's output to the
#: half float, each a relative error of at most its unit roundoff u (2**-11
#: for float16, 2**-8 for bfloat16); the scores carry a few such roundings,
#: and the mean cross-entropy moves by at most 2 * max|score error| (its
#: gradient p - onehot has an L1 norm <= 2). With scores of a few units and
#: losses of about 2.3, a few u relative: 1e-2 (~20 u) for float16 and 4e-2
#: (~10 u) for bfloat16 leave a wide margin (measured on mnist5k: 1e-6 and 5e-5
#: for float16, 2e-6 and 8e-4 for bfloat16, with small and large weights).
LOSS_RTOL = {"float16": 1e-2, "bfloat16": 4e-2}

#: Relative error (on the norm) of the half gradients of a batch of 100
#: against float32: each gradient is a product of half operands (u each) whose
#: products are accumulated in float32, so a few u: 1e-2 for float16 (measured
#: at most 1.5e-3) and 5e-2 for bfloat16 (measured at most 9e-3).
GRAD_RTOL = {"float16": 1e-2, "bfloat16": 5e-2}

HALVES = [pytest.param("float16", id="float16"), pytest.param("bfloat16", id="bfloat16")]


def half_or_refused(backend: xpnn.Backend, name: str):
    """The backend's dtype ``name``; where it has none, assert the clear refusal.

    Returns None (the test then ends) after checking that ``xpnn.asarray``
    refuses the dtype with a ValueError naming it.
    """
    if name in HALF_SUPPORT[backend.name]:
        return resolve_dtype(backend.xp, name)
    with pytest.raises(ValueError, match=rf"has no {name}"):
        xpnn.asarray([1.0, 2.0], dtype=name)
    return None


def host(a) -> np.ndarray:
    """A host copy; bfloat16 comes back as float32 (exactly)."""
    return np.asarray(xpnn.to_numpy(a))


def value(a) -> float:
    return float(host(a))


@pytest.fixture(scope="module")
def mnist5k():
    """The packaged 5,000-digit sample, on the host: (x (4000, 784) float32, t (4000,))."""
    with xpnn.use_backend("numpy"):
        (x, t), _ = load_mnist5k(dtype="float32")
    return np.asarray(x), np.asarray(t)


def nets(xp, half, weight_init_std=0.01):
    """TwoLayerNet(784, 50, 10, seed=0) in float32 and the same weights in ``half``."""
    net = xpnn.TwoLayerNet(784, 50, 10, weight_init_std, seed=0)
    net_half = xpnn.TwoLayerNet(784, 50, 10, weight_init_std, seed=0, dtype=half)
    for key, p in net.params.items():
        net_half.params[key][...] = xp.astype(p, half)
    return net, net_half


def scores(net, x):
    """The net's scores (a copy: the last layer's output is its buffer)."""
    return net.scores(x)


# --------------------------------------------------------------------------
# (a) forward: the loss of a half pass, on mnist5k
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [100, 1000])
@pytest.mark.parametrize("name", HALVES)
@pytest.mark.parametrize("weight_init_std", [0.01, 1.0], ids=["small-w", "large-w"])
def test_half_loss_within_rounding_of_float32(backend, xp, mnist5k, name, n, weight_init_std):
    half = half_or_refused(backend, name)
    if half is None:
        return
    x_host, t_host = mnist5k
    net, net_half = nets(xp, half, weight_init_std)
    x, t = xpnn.asarray(x_host[:n]), xpnn.asarray(t_host[:n])
    x_half = xp.astype(x, half)

    loss = net.forward(x, t)
    loss_half = net_half.forward(x_half, t)  # on the device (loss() reads it to the host)
    assert loss_half.dtype == xp.float32 and loss_half.ndim == 0
    assert net_half.loss(x_half, t) == np.float32(value(loss_half))  # the same, read
    l32, lh = value(loss), value(loss_half)
    assert math.isfinite(lh)
    assert lh == pytest.approx(l32, rel=LOSS_RTOL[name])

    # Sharper: the loss is computed in float32 from the half scores, so it
    # moves by at most 2 * max|score error| (plus float32 rounding).
    s32, s_half = scores(net, x), scores(net_half, x_half)
    score_error = float(np.max(np.abs(host(s_half).astype(np.float64) - host(s32))))
    assert abs(lh - l32) <= 2 * score_error + 1e-5 * abs(l32)
    # ... and it is exactly the float32 loss of the half scores, cast.
    reference = SoftmaxWithLoss().forward(xp.astype(s_half, xp.float32), t)
    assert value(reference) == lh


@pytest.mark.parametrize("name", HALVES)
def test_large_logits_give_a_finite_loss_in_half(backend, xp, mnist5k, name):
    half = half_or_refused(backend, name)
    if half is None:
        return
    x_host, t_host = mnist5k
    net, _ = nets(xp, half, weight_init_std=1.0)
    x, t = xpnn.asarray(x_host[:1000]), xpnn.asarray(t_host[:1000])
    s = scores(net, x)
    s = s * (30.0 / xp.max(xp.abs(s)))  # scores spanning -30..30
    s_half = xp.astype(s, half)
    if name == "float16":  # exp(30) = 1.1e13 > 65504: the naive float16 exp overflows
        with np.errstate(over="ignore"):
            assert bool(host(xp.any(xp.isinf(xp.exp(s_half)))))

    layer = SoftmaxWithLoss()
    loss_half = layer.forward(s_half, t)
    assert loss_half.dtype == xp.float32
    assert layer.y.dtype == xp.float32  # the softmax kept for backward
    lh, l32 = value(loss_half), value(SoftmaxWithLoss().forward(s, t))
    assert math.isfinite(lh) and lh > 1  # large logits, many of them wrong: a large loss
    score_error = float(np.max(np.abs(host(s_half).astype(np.float64) - host(s))))
    assert abs(lh - l32) <= 2 * score_error + 1e-5 * abs(l32)

    dx = layer.backward()
    assert dx.dtype == half
    assert bool(host(xp.all(xp.isfinite(dx))))
    # The functional forms agree, all in float32.
    assert value(fused_loss(s_half, t)) == pytest.approx(lh, rel=1e-6)
    p = softmax(s_half)
    assert p.dtype == half and bool(host(xp.all(xp.isfinite(p))))


# --------------------------------------------------------------------------
# (b) backward: half gradients
# --------------------------------------------------------------------------


def relative_error(a, b) -> float:
    a, b = host(a).astype(np.float64), host(b).astype(np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("name", HALVES)
def test_half_backward_gives_half_grads_close_to_float32(backend, xp, mnist5k, name):
    half = half_or_refused(backend, name)
    if half is None:
        return
    x_host, t_host = mnist5k
    net, net_half = nets(xp, half)
    x, t = xpnn.asarray(x_host[:100]), xpnn.asarray(t_host[:100])
    grads = {k: xp.asarray(g, copy=True) for k, g in net.gradient(x, t).items()}
    grads_half = net_half.gradient(xp.astype(x, half), t)
    for key, g in grads_half.items():
        assert g.dtype == half, key
        assert relative_error(g, grads[key]) < GRAD_RTOL[name], key
    # The input gradient too (input_grad=True goes through every layer).
    net_half.forward(xp.astype(x, half), t)
    dx = net_half.backward()
    assert dx.dtype == half and dx.shape == x.shape


def test_loss_scale_as_device_array_rescues_float16_gradients(backend, xp, mnist5k):
    """Without a loss scale, float16 gradients of a batch of 1000 underflow.

    (y - t) / 1000 through W2 (~0.01) gives hidden gradients of ~1e-7, below
    float16's smallest normal 6.1e-5: the first layer's gradients lose most
    digits (measured: b1 5e-2, 4e-1 at N = 4000). Scaling the loss by 1024 (a
    float32 0-d array on the device, as mixed-precision training passes it)
    and dividing the gradients afterwards keeps them to float16 rounding.
    """
    half = half_or_refused(backend, "float16")
    if half is None:
        return
    x_host, t_host = mnist5k
    net, net_half = nets(xp, half)
    x, t = xpnn.asarray(x_host[:1000]), xpnn.asarray(t_host[:1000])
    grads = {k: xp.asarray(g, copy=True) for k, g in net.gradient(x, t).items()}
    scale = xpnn.asarray(1024.0, dtype="float32")
    net_half.forward(xp.astype(x, half), t)
    net_half.backward(scale, input_grad=False)
    for key, g in net_half.grads.items():
        assert g.dtype == half
        unscaled = xp.astype(g, xp.float32) / scale
        assert relative_error(unscaled, grads[key]) < GRAD_RTOL["float16"], key


def test_affine_bias_gradient_sums_half_in_float32(backend, xp):
    """db = sum(dout, axis=0) accumulates in float32, rounded once to half.

    NumPy sums float16 along axis 0 in float16, one rounding per row (67 ulp
    off for 10,000 rows); here the result is the float32 sum, rounded once.
    """
    half = half_or_refused(backend, "float16")
    if half is None:
        return
    rng = np.random.default_rng(0)
    dout = xpnn.asarray(rng.standard_normal((2000, 7)) * 0.01 + 0.003, dtype=half)
    layer = Affine(xpnn.zeros((3, 7), dtype=half), xpnn.zeros(7, dtype=half))
    layer.forward(xpnn.asarray(rng.standard_normal((2000, 3)), dtype=half))
    layer.backward(dout, input_grad=False)
    expected = xp.astype(xp.sum(xp.astype(dout, xp.float32), axis=0), half)
    assert layer.grads[1].dtype == half
    np.testing.assert_array_equal(host(layer.grads[1]), host(expected))


def test_softmax_layer_backward_in_half(backend, xp):
    half = half_or_refused(backend, "float16")
    if half is None:
        return
    rng = np.random.default_rng(1)
    x = xpnn.asarray(rng.standard_normal((50, 10)) * 5, dtype="float32")
    dout = xpnn.asarray(rng.standard_normal((50, 10)), dtype="float32")
    layer, layer_half = Softmax(), Softmax()
    layer.forward(x)
    y_half = layer_half.forward(xp.astype(x, half))
    assert y_half.dtype == half
    dx = layer.backward(dout)
    dx_half = layer_half.backward(xp.astype(dout, half))
    assert dx_half.dtype == half
    assert relative_error(dx_half, dx) < 1e-2


def test_half_matmul_accumulates_wider_than_half(backend, xp):
    """The layers' matrix products of half arrays are within float16 rounding.

    NumPy's float16 matmul and PyTorch's CPU half matmul accumulate in float32
    (measured: within 1 ulp of the correctly rounded product for k up to
    8192); accumulating in float16 would be ~20 times further off at k = 784.
    """
    half = half_or_refused(backend, "float16")
    if half is None:
        return
    rng = np.random.default_rng(2)
    a = xpnn.asarray(rng.random((100, 784)), dtype=half)
    b = xpnn.asarray(rng.standard_normal((784, 50)) * 0.01, dtype=half)
    k = ops(a, b)
    out = k.buffer({}, "out", (100, 50), half, a)
    product = k.matmul(a, b, out=out)
    exact = xp.astype(a, xp.float64) @ xp.astype(b, xp.float64)
    assert product.dtype == half
    assert relative_error(product, exact) < 2.0**-10  # float16 rounding of the result


# --------------------------------------------------------------------------
# (c) dout as a 0-d device array
# --------------------------------------------------------------------------


@pytest.mark.parametrize("labels", ["integer", "one-hot"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_dout_device_array_equals_dout_number_bitwise(backend, xp, dtype, labels):
    if dtype in ("float16", "bfloat16") and half_or_refused(backend, dtype) is None:
        return
    rng = np.random.default_rng(3)
    s = xpnn.asarray(rng.standard_normal((37, 10)) * 4, dtype=dtype)
    t_int = rng.integers(0, 10, 37)
    t = xpnn.asarray(t_int) if labels == "integer" else xpnn.asarray(np.eye(10)[t_int], dtype)
    for number in (1.0, 0.37, 1024.0, 3.0e-3):
        number = float(np.float32(number))  # the value the float32 array holds
        layer = SoftmaxWithLoss()
        layer.forward(s, t)
        expected = host(layer.backward(number)).copy()
        # float32 on the device (the loss scale of mixed precision), and
        # float64 (cast to the compute dtype on the device).
        for dout_dtype in ("float32", "float64"):
            dout = xpnn.asarray(np.float32(number), dtype=dout_dtype)
            dx = layer.backward(dout)
            assert dx.dtype == s.dtype
            assert xpnn.backend.device_of(dx) == xpnn.backend.device_of(s)
            np.testing.assert_array_equal(host(dx), expected)


def test_dout_must_be_a_scalar_on_the_scores_device(backend, xp):
    layer = SoftmaxWithLoss()
    layer.forward(xpnn.asarray([[1.0, 2.0], [3.0, 0.5]]), xpnn.asarray(np.array([0, 1])))
    with pytest.raises(ValueError, match="0-d array"):
        layer.backward(xpnn.asarray([1.0]))
    if backend.name == "array_api_strict":  # another device: refused, not moved
        import array_api_strict

        elsewhere = array_api_strict.asarray(1.0, device=array_api_strict.Device("CPU_DEVICE"))
        with pytest.raises(xpnn.BackendMismatchError):
            layer.backward(elsewhere)


# --------------------------------------------------------------------------
# (d) float32 and float64 paths unchanged
# --------------------------------------------------------------------------


def old_softmax_with_loss(xp, s, t_int, dout):
    """SoftmaxWithLoss as it computed before half support, spelled out."""
    n, c = s.shape
    shifted = s - xp.max(s, axis=1, keepdims=True)
    e = xp.exp(shifted)
    total = xp.sum(e, axis=1, keepdims=True)
    y = e / total
    index = xp.reshape(xp.astype(t_int, xp.int64), (-1, 1))
    picked = xp.take_along_axis(shifted, index, axis=1)[:, 0]
    loss = xp.sum(xp.log(total[:, 0]) - picked, axis=None) / n
    classes = xp.arange(c, dtype=xp.int64, device=xpnn.backend.device_of(s))
    hot = xp.astype(index == classes, s.dtype)
    return y, loss, (y - hot) * (dout / n)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_paths_unchanged_bitwise(backend, xp, mnist5k, dtype):
    x_host, t_host = mnist5k
    net = xpnn.TwoLayerNet(784, 50, 10, 1.0, seed=0, dtype=dtype)
    x, t = xpnn.asarray(x_host[:100], dtype=dtype), xpnn.asarray(t_host[:100])
    s = scores(net, x)
    layer = SoftmaxWithLoss()
    loss = layer.forward(s, t)
    y_old, loss_old, dx_old = old_softmax_with_loss(xp, s, t, 0.37)
    assert loss.dtype == s.dtype and layer.y.dtype == s.dtype
    np.testing.assert_array_equal(host(loss), host(loss_old))
    np.testing.assert_array_equal(host(layer.y), host(y_old))
    np.testing.assert_array_equal(host(layer.backward(0.37)), host(dx_old))
    # The functions, as they were written.
    e = xp.exp(s - xp.max(s, axis=-1, keepdims=True))
    p_old = e / xp.sum(e, axis=-1, keepdims=True)
    np.testing.assert_array_equal(host(softmax(s)), host(p_old))
    index = xp.reshape(xp.astype(t, xp.int64), (-1, 1))
    cee_old = -xp.sum(xp.log(xp.take_along_axis(p_old, index, axis=1)[:, 0] + 1e-7)) / 100
    np.testing.assert_array_equal(host(cross_entropy_error(p_old, t)), host(cee_old))
    shifted = s - xp.max(s, axis=-1, keepdims=True)
    log_p = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
    fused_old = -xp.sum(xp.take_along_axis(log_p, index, axis=1)[:, 0]) / 100
    np.testing.assert_array_equal(host(fused_loss(s, t)), host(fused_old))
    # The bias gradient: a plain sum.
    dout = xpnn.asarray(np.random.default_rng(4).standard_normal((100, 50)), dtype=dtype)
    affine = net.layers[0]
    affine.forward(x)
    affine.backward(dout, input_grad=False)
    np.testing.assert_array_equal(host(affine.grads[1]), host(xp.sum(dout, axis=0)))


def test_loss_layer_stays_in_its_buffers(backend, xp):
    """Where layers keep buffers (NumPy, CuPy) the loss layer writes into the
    same ones every step: float32 scores use exactly the float32 buffers of
    before (no half copy); float16 scores float32 ones plus a float16 dx.
    Elsewhere it keeps none, and the softmax is float32 for half scores too."""
    rng = np.random.default_rng(5)
    t = xpnn.asarray(rng.integers(0, 10, 64))
    buffered = ops(t).native is not None
    for dtype, keys in (
        ("float32", {"y", "shifted", "dx"}),
        ("float16", {"y", "shifted", "dx", "dx_half"}),
    ):
        if dtype == "float16" and half_or_refused(backend, dtype) is None:
            continue
        s = xpnn.asarray(rng.standard_normal((64, 10)), dtype=dtype)
        layer = SoftmaxWithLoss()
        layer.forward(s, t)
        first = layer.backward()
        buffers = dict(layer._buffers)
        layer.forward(s, t)
        second = layer.backward()
        assert layer.y.dtype == xp.float32 and second.dtype == s.dtype
        if not buffered:
            assert layer._buffers == {}
            continue
        assert second is first
        assert layer.y is buffers["y"]
        assert set(layer._buffers) == keys
        assert all(layer._buffers[k] is buffers[k] for k in keys)


# --------------------------------------------------------------------------
# The functions, sigmoid and relu in half
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", HALVES)
def test_functions_compute_half_in_float32(backend, xp, name):
    half = half_or_refused(backend, name)
    if half is None:
        return
    rng = np.random.default_rng(6)
    s = xpnn.asarray(rng.standard_normal((20, 10)) * 20, dtype=half)  # exp(20) > 65504
    wide = xp.astype(s, xp.float32)
    t = xpnn.asarray(rng.integers(0, 10, 20))
    p = softmax(s)
    assert p.dtype == half  # computed in float32, rounded once
    np.testing.assert_array_equal(host(p), host(xp.astype(softmax(wide), half)))
    for f, arg, target in (
        (fused_loss, s, t),
        (cross_entropy_error, p, t),
        (mean_squared_error, p, xp.astype(xpnn.asarray(np.eye(10)[host(t)]), half)),
    ):
        loss = f(arg, target)
        assert loss.dtype == xp.float32 and loss.ndim == 0, f.__name__
        assert math.isfinite(value(loss)), f.__name__
        np.testing.assert_array_equal(host(loss), host(f(xp.astype(arg, xp.float32), target)))


def test_sigmoid_and_relu_in_half_without_warnings(backend, xp):
    half = half_or_refused(backend, "float16")
    if half is None:
        return
    values = [-65504.0, -20.0, -12.0, -11.0, -1.0, 0.0, 1.0, 11.0, 20.0, 65504.0]
    x = xpnn.asarray([values], dtype=half)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy must not warn of exp's overflow
        y = sigmoid(x)
        layer = Sigmoid()
        out = layer.forward(x)
        dx = layer.backward(xpnn.asarray(np.ones((1, len(values))), dtype=half))
        r = Relu().forward(x)
    assert y.dtype == out.dtype == dx.dtype == r.dtype == half
    got = host(y).astype(np.float64)[0]
    with np.errstate(over="ignore"):
        exact = 1 / (1 + np.exp(-np.array(values)))
    # exp(-x) overflows float16 below x = -11.09: the result is 0 there (the
    # true value, below 1.5e-5, is subnormal in float16); else within rounding.
    assert np.all(got[:3] == 0)
    normal = exact >= 2.0**-14
    np.testing.assert_allclose(got[normal], exact[normal], rtol=2.0**-9)
    assert np.all(np.isfinite(host(dx)))
    np.testing.assert_array_equal(host(r)[0], np.maximum(values, 0).astype(np.float16))


# --------------------------------------------------------------------------
# (e) numerical differentiation warns in half
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", HALVES)
def test_numerical_gradient_warns_in_half(backend, xp, name):
    half = half_or_refused(backend, name)
    if half is None:
        return
    x = xpnn.asarray([3.0, 4.0], dtype=half)
    with pytest.warns(Float32GradientWarning, match=rf"in {name}:.*needs float64") as record:
        numerical_gradient(lambda v: xp.sum(v * v), x)
    assert "relative" in str(record[0].message)
    with pytest.warns(Float32GradientWarning, match=name):
        numerical_diff(lambda v: v * v, x)
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0, dtype=half)
    with pytest.warns(Float32GradientWarning, match=rf"TwoLayerNet.numerical_gradient.*{name}"):
        net.numerical_gradient(
            xpnn.asarray(np.ones((2, 4)), dtype=half), xpnn.asarray(np.array([0, 1]))
        )


def test_numerical_gradient_float32_message_kept_and_float64_silent(backend, xp):
    with pytest.warns(
        Float32GradientWarning, match=r"float32: with h=0.0001 expect errors of about 1e-03"
    ):
        numerical_gradient(lambda v: xp.sum(v * v), xpnn.asarray([3.0, 4.0], dtype="float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32GradientWarning)
        numerical_gradient(lambda v: xp.sum(v * v), xpnn.asarray([3.0, 4.0], dtype="float64"))


@pytest.mark.parametrize("model", ["TwoLayerNet", "MultiLayerNet"])
def test_narrower_float_data_is_widened_exactly_wider_is_refused(backend, model):
    """ch08/half_float_network.py feeds float16 images to a wider model: widened exactly."""
    rng = np.random.default_rng(0)
    x64 = rng.normal(size=(20, 6))
    t = xpnn.asarray(rng.integers(0, 3, 20))
    make = {
        "TwoLayerNet": lambda: xpnn.TwoLayerNet(6, 5, 3, seed=0, dtype="float64"),
        "MultiLayerNet": lambda: xpnn.MultiLayerNet(6, [5], 3, seed=0, dtype="float64"),
    }[model]
    net = make()
    for narrow in ("float32", "float16"):
        if narrow == "float16" and half_or_refused(backend, "float16") is None:
            continue
        x_narrow = xpnn.asarray(x64, dtype=narrow)
        widened = xpnn.asarray(xpnn.to_numpy(x_narrow).astype(np.float64))  # by hand
        assert net.accuracy(x_narrow, t) == net.accuracy(widened, t)
        np.testing.assert_array_equal(
            xpnn.to_numpy(net.predict(x_narrow)), xpnn.to_numpy(net.predict(widened))
        )
    small = xpnn.TwoLayerNet(6, 5, 3, seed=0)  # float32
    with pytest.raises(TypeError, match=r"computes in float32 .* but x is float64"):
        small.predict(xpnn.asarray(x64))  # narrowing would round: refused

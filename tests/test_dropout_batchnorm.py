"""Chapter 6: Dropout, BatchNormalization and the device random numbers behind dropout.

Tests taking the ``backend`` / ``xp`` fixtures run on every backend (see
conftest.py); array-api-strict's ``device1`` refuses implicit host reads, so
passing there shows a layer reads nothing back in a step. References are
computed on the host with NumPy, in float64, from the book's formulas.
"""

from __future__ import annotations

import math

import array_api_compat
import numpy as np
import pytest

import xpnn
from xpnn import backend as B
from xpnn.layers import (
    LAYERS,
    Affine,
    BatchNormalization,
    Dropout,
    Layer,
    Relu,
    SoftmaxWithLoss,
)
from xpnn.random import _key_words, _mix32, counter_uniform

EPS = 10e-7  # the book's

#: The half floats each library has (array-api-strict has none, NumPy no bfloat16).
HALF_SUPPORT = {"numpy": {"float16"}, "cupy": {"float16"}, "torch": {"float16", "bfloat16"}}


def host(a) -> np.ndarray:
    """A host copy (NumPy layers return buffers they reuse: copy before the next call)."""
    return np.array(xpnn.to_numpy(a), copy=True)


def on(backend, a, dtype="float64"):
    """``a`` on the backend, never sharing memory with the host array (a layer
    updates its running statistics in place)."""
    return xpnn.asarray(np.array(a, copy=True), dtype=dtype, backend=backend)


def assert_on(x, backend: xpnn.Backend) -> None:
    assert xpnn.get_namespace(x) is backend.xp
    assert array_api_compat.device(x) == backend.device


def numpy_like(dtype="float32"):
    return xpnn.asarray(np.zeros(1), dtype=dtype, backend=B._open("numpy"))


def half_dtypes(backend):
    return sorted(HALF_SUPPORT.get(backend.name, set()))


# ============================================================ counter_uniform


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4, 5), (0, 3), ()])
def test_counter_uniform_same_bits_on_every_backend(backend, xp, shape, dtype):
    like = xpnn.asarray(np.zeros(2), dtype=dtype)
    u = counter_uniform(shape, (12345, 6), like=like)
    assert_on(u, backend)
    assert u.dtype == getattr(xp, dtype) and tuple(u.shape) == shape
    reference = counter_uniform(shape, (12345, 6), like=numpy_like(dtype))
    np.testing.assert_array_equal(host(u), host(reference), strict=True)


def test_counter_uniform_half_floats_same_bits(backend, xp):
    for name in half_dtypes(backend):
        like = xpnn.asarray(np.zeros(2), dtype=name)
        u = counter_uniform((50, 40), (3, 1), like=like)
        assert u.dtype == B.resolve_dtype(xp, name)
        if name == "float16":
            reference = counter_uniform((50, 40), (3, 1), like=numpy_like(name))
            np.testing.assert_array_equal(host(u), host(reference), strict=True)
        bits = {"float16": 11, "bfloat16": 8}[name]
        scaled = host(u).astype(np.float64) * 2**bits
        assert np.array_equal(scaled, np.floor(scaled)) and scaled.max() < 2**bits


def test_counter_uniform_is_the_top_24_bits_and_below_1(backend):
    u64 = host(counter_uniform((200_000,), (1,), like=xpnn.zeros(1, dtype="float64")))
    u32 = host(counter_uniform((200_000,), (1,), like=xpnn.zeros(1, dtype="float32")))
    scaled = u64 * 2**24
    np.testing.assert_array_equal(scaled, np.floor(scaled))  # exact multiples of 2**-24
    assert 0.0 <= u64.min() and u64.max() < 1.0 and u32.max() < 1.0
    np.testing.assert_array_equal(u32.astype(np.float64), u64)  # same values in both


def test_counter_uniform_matches_the_hash_in_python_integers(backend):
    """The device's int64 arithmetic is exact: the same as Python's unbounded ints."""
    key = (2**62 + 12345, 7, 0)
    k1, k2 = _key_words(key)
    n = 1000
    u = host(counter_uniform((n,), key, like=xpnn.zeros(1, dtype="float64")))
    expected = [(_mix32(_mix32(i ^ k1) ^ k2) >> 8) * 2.0**-24 for i in range(n)]
    np.testing.assert_array_equal(u, np.array(expected))


def test_counter_uniform_default_dtype_follows_like(backend, xp):
    assert counter_uniform(3, (0,), like=xpnn.zeros(2, dtype="float64")).dtype == xp.float64
    assert counter_uniform(3, (0,), like=xpnn.zeros(2, dtype="float32")).dtype == xp.float32
    ints = xpnn.asarray(np.arange(3), dtype="int64")
    assert counter_uniform(3, (0,), like=ints).dtype == xp.float32
    assert counter_uniform(3, (0,), like=ints, dtype="float64").dtype == xp.float64


def test_counter_uniform_statistics():
    like = numpy_like()
    u = host(counter_uniform((100_000,), (2024, 0), like=like)).astype(np.float64)
    assert abs(u.mean() - 0.5) < 0.01
    assert abs(u.var() - 1 / 12) < 0.005
    for p in (0.01, 0.1, 0.3, 0.5, 0.9):
        assert abs((u < p).mean() - p) < 0.01, p
    # 10 equal bins, chi-square with 9 degrees of freedom (0.1% point: 27.9).
    counts = np.histogram(u, bins=10, range=(0.0, 1.0))[0]
    assert ((counts - 10_000) ** 2 / 10_000).sum() < 27.9
    # Neighbouring elements are uncorrelated.
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.02


@pytest.mark.parametrize(
    ("a", "b"),
    [((5, 0), (5, 1)), ((5, 0), (6, 0)), ((0,), (1,)), ((1, 2**40), (1, 0)), ((3,), (3, 0))],
)
def test_counter_uniform_neighbouring_keys_are_uncorrelated(a, b):
    like = numpy_like()
    ua = host(counter_uniform((100_000,), a, like=like)).astype(np.float64)
    ub = host(counter_uniform((100_000,), b, like=like)).astype(np.float64)
    assert abs(np.corrcoef(ua, ub)[0, 1]) < 0.02
    assert (ua == ub).mean() < 0.001


def test_counter_uniform_shape_does_not_change_the_stream():
    """Element i is a function of (i, key): reshaping takes the same numbers."""
    like = numpy_like()
    flat = host(counter_uniform(24, (9,), like=like))
    np.testing.assert_array_equal(host(counter_uniform((2, 3, 4), (9,), like=like)).ravel(), flat)
    np.testing.assert_array_equal(host(counter_uniform(10, (9,), like=like)), flat[:10])


@pytest.mark.parametrize(
    ("shape", "key", "error", "match"),
    [
        pytest.param((3,), [1, 2], TypeError, "key must be a tuple", id="key-list"),
        pytest.param((3,), 5, TypeError, "key must be a tuple", id="key-int"),
        pytest.param((3,), (1.0,), TypeError, r"key\[0\] must be an int", id="key-float"),
        pytest.param((3,), (1, True), TypeError, r"key\[1\] must be an int", id="key-bool"),
        pytest.param((3,), (-1,), ValueError, r"key\[0\] must be in", id="key-negative"),
        pytest.param((3,), (2**63,), ValueError, r"key\[0\] must be in", id="key-2**63"),
        pytest.param((-1, 2), (1,), ValueError, "non-negative ints", id="shape-negative"),
        pytest.param((2.0,), (1,), ValueError, "non-negative ints", id="shape-float"),
        pytest.param([2, 3], (1,), ValueError, "non-negative ints", id="shape-list"),
    ],
)
def test_counter_uniform_bad_arguments(backend, shape, key, error, match):
    with pytest.raises(error, match=match):
        counter_uniform(shape, key, like=xpnn.zeros(1))


def test_counter_uniform_refuses_integer_dtype(backend):
    with pytest.raises(ValueError, match="float dtype"):
        counter_uniform(3, (1,), like=xpnn.zeros(1), dtype="int32")


def test_counter_uniform_takes_numpy_integer_keys():
    like = numpy_like()
    np.testing.assert_array_equal(
        host(counter_uniform(np.int64(5), (np.int64(3), np.uint32(4)), like=like)),
        host(counter_uniform(5, (3, 4), like=like)),
    )


# ==================================================================== Dropout


def dropout_reference(shape, ratio, seed, draw):
    """The book's ``rand(*shape) > ratio`` with the documented uniform draws."""
    u = host(counter_uniform(shape, (seed, draw), like=numpy_like("float64")))
    return u > ratio


def test_dropout_is_a_registered_train_flag_layer():
    assert LAYERS["Dropout"] is Dropout and LAYERS["BatchNormalization"] is BatchNormalization
    assert Dropout.takes_train_flg and BatchNormalization.takes_train_flg
    assert not Layer.takes_train_flg and not Affine.takes_train_flg and not Relu.takes_train_flg


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_same_seed_same_masks_on_every_backend(backend, xp, dtype):
    x_host = np.random.default_rng(0).normal(size=(20, 30))
    x = on(backend, x_host, dtype)
    layer = Dropout(0.3, seed=42)
    for draw in range(3):
        out = layer.forward(x, train_flg=True)
        assert_on(out, backend)
        assert out.dtype == x.dtype and layer.mask.dtype == x.dtype
        keep = dropout_reference((20, 30), 0.3, 42, draw)
        np.testing.assert_array_equal(host(layer.mask), keep.astype(dtype))
        np.testing.assert_array_equal(host(out), (x_host.astype(dtype) * keep).astype(dtype))
        assert layer.draws == draw + 1
    masks = [host(layer.mask)]
    assert not np.array_equal(masks[0], dropout_reference((20, 30), 0.3, 42, 0))


def test_dropout_masks_do_not_depend_on_dtype(backend):
    for name in ("float32", "float64", *half_dtypes(backend)):
        layer = Dropout(0.5, seed=3)
        layer.forward(xpnn.asarray(np.ones((8, 16)), dtype=name))
        np.testing.assert_array_equal(
            host(layer.mask).astype(np.float64), dropout_reference((8, 16), 0.5, 3, 0), name
        )


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.8])
def test_dropout_keeps_about_one_minus_ratio(ratio):
    layer = Dropout(ratio, seed=1)
    kept = host(layer.forward(np.ones((200, 500), dtype=np.float32)))
    assert abs(kept.mean() - (1 - ratio)) < 0.01


def test_dropout_test_mode_scales_and_draws_nothing(backend):
    x_host = np.random.default_rng(1).normal(size=(4, 6))
    layer = Dropout(0.25, seed=0)
    out = layer.forward(on(backend, x_host), train_flg=False)
    np.testing.assert_allclose(host(out), x_host * 0.75, rtol=1e-15)
    assert layer.draws == 0 and layer.mask is None
    dout = np.random.default_rng(2).normal(size=(4, 6))
    np.testing.assert_allclose(host(layer.backward(on(backend, dout))), dout * 0.75, rtol=1e-15)


def test_dropout_backward_is_dout_times_the_mask(backend):
    layer = Dropout(0.5, seed=9)
    layer.forward(on(backend, np.ones((10, 10))))
    dout = np.random.default_rng(3).normal(size=(10, 10))
    dx = layer.backward(on(backend, dout))
    np.testing.assert_array_equal(host(dx), dout * dropout_reference((10, 10), 0.5, 9, 0))
    assert layer.backward(on(backend, dout), input_grad=False) is None


def test_dropout_gradient_check_with_held_mask(backend):
    rng = np.random.default_rng(4)
    x_host, R = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    layer = Dropout(0.4, seed=11)
    layer.forward(on(backend, x_host))
    layer.hold_mask = True

    def loss(xh):
        return float((host(layer.forward(on(backend, xh))) * R).sum())

    layer.forward(on(backend, x_host))
    dx = host(layer.backward(on(backend, R)))
    h, numeric = 1e-6, np.zeros_like(x_host)
    for i in np.ndindex(x_host.shape):
        plus, minus = x_host.copy(), x_host.copy()
        plus[i] += h
        minus[i] -= h
        numeric[i] = (loss(plus) - loss(minus)) / (2 * h)
    np.testing.assert_allclose(dx, numeric, atol=1e-8)
    assert layer.draws == 1  # held: nothing drawn since the first pass
    assert 0 < (dx == 0).sum() < dx.size


def test_dropout_hold_mask_reuses_only_a_mask_of_xs_shape(backend):
    layer = Dropout(0.5, seed=5)
    layer.hold_mask = True
    layer.forward(on(backend, np.ones((6, 6))))
    first = host(layer.mask)
    layer.forward(on(backend, np.ones((6, 6))))
    np.testing.assert_array_equal(host(layer.mask), first)
    assert layer.draws == 1
    layer.forward(on(backend, np.ones((3, 6))))  # another shape: a new mask
    assert layer.draws == 2 and tuple(layer.mask.shape) == (3, 6)
    layer.hold_mask = False
    layer.forward(on(backend, np.ones((3, 6))))
    assert layer.draws == 3


def test_dropout_ratio_zero_is_the_identity(backend):
    x_host = np.random.default_rng(5).normal(size=(50, 40))
    layer = Dropout(0.0, seed=0)
    np.testing.assert_array_equal(host(layer.forward(on(backend, x_host))), x_host)
    np.testing.assert_array_equal(host(layer.forward(on(backend, x_host), False)), x_host)
    assert layer.draws == 1


def test_dropout_seed_none_is_a_fresh_int():
    a, b = Dropout(), Dropout()
    assert isinstance(a.seed, int) and 0 <= a.seed < 2**63
    assert a.seed != b.seed
    assert a.config() == {"dropout_ratio": 0.5, "seed": a.seed}


def test_dropout_different_seeds_different_masks(backend):
    x = on(backend, np.ones((10, 10)))
    a, b = Dropout(0.5, seed=1), Dropout(0.5, seed=2)
    a.forward(x)
    b.forward(x)
    assert not np.array_equal(host(a.mask), host(b.mask))


def test_dropout_config_round_trip(backend):
    layer = Dropout(0.35, seed=77)
    config = layer.config()
    assert config == {"dropout_ratio": 0.35, "seed": 77}
    assert Dropout.param_shapes(config) == {} and Dropout.state_shapes(config) == {}
    twin = Dropout.from_config(config, dtype="float32", backend=backend)
    assert isinstance(twin, Dropout) and twin.config() == config and twin.draws == 0
    x = on(backend, np.ones((9, 9)))
    np.testing.assert_array_equal(host(layer.forward(x)), host(twin.forward(x)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"dropout_ratio": 1.0}, ValueError, "dropout_ratio", id="ratio-1"),
        pytest.param({"dropout_ratio": -0.1}, ValueError, "dropout_ratio", id="ratio<0"),
        pytest.param({"dropout_ratio": float("nan")}, ValueError, "dropout_ratio", id="nan"),
        pytest.param({"dropout_ratio": "0.5"}, TypeError, "dropout_ratio", id="ratio-str"),
        pytest.param({"dropout_ratio": True}, TypeError, "dropout_ratio", id="ratio-bool"),
        pytest.param({"seed": -1}, ValueError, "seed", id="seed<0"),
        pytest.param({"seed": 2**63}, ValueError, "seed", id="seed-2**63"),
        pytest.param({"seed": 1.5}, TypeError, "seed", id="seed-float"),
        pytest.param({"seed": True}, TypeError, "seed", id="seed-bool"),
    ],
)
def test_dropout_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Dropout(**kwargs)


@pytest.mark.parametrize(
    "config",
    [
        {"dropout_ratio": 0.5},
        {"dropout_ratio": 0.5, "seed": 1, "extra": 0},
        {"dropout_ratio": 1.5, "seed": 1},
        {"dropout_ratio": 0.5, "seed": "1"},
        [0.5, 1],
    ],
)
def test_dropout_bad_config_is_a_value_error(config):
    with pytest.raises(ValueError, match="Dropout config"):
        Dropout.param_shapes(config)


def test_dropout_refuses_integer_inputs(backend):
    with pytest.raises(TypeError, match="floating-point"):
        Dropout(0.5, seed=0).forward(xpnn.asarray(np.ones((2, 2)), dtype="int64"))


def test_dropout_backward_before_forward_says_so():
    with pytest.raises(RuntimeError, match="forward"):
        Dropout(0.5, seed=0).backward(np.ones((2, 2)))


# ========================================================= BatchNormalization


def book_batchnorm_2d(x, gamma, beta, momentum, running_mean, running_var, dout):
    """The book's common/layers.py BatchNormalization (train mode), re-typed in NumPy.

    Returns out, dx, dgamma, dbeta and the new running statistics.
    """
    mu = x.mean(axis=0)
    xc = x - mu
    var = np.mean(xc**2, axis=0)
    std = np.sqrt(var + 10e-7)
    xn = xc / std
    running_mean = momentum * running_mean + (1 - momentum) * mu
    running_var = momentum * running_var + (1 - momentum) * var
    out = gamma * xn + beta

    batch_size = x.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(xn * dout, axis=0)
    dxn = gamma * dout
    dxc = dxn / std
    dstd = -np.sum((dxn * xc) / (std * std), axis=0)
    dvar = 0.5 * dstd / std
    dxc += (2.0 / batch_size) * xc * dvar
    dmu = np.sum(dxc, axis=0)
    dx = dxc - dmu / batch_size
    return out, dx, dgamma, dbeta, running_mean, running_var


def make_bn(backend, gamma, beta, momentum=0.9, mean=None, var=None, dtype="float64"):
    arrays = [on(backend, a, dtype) if a is not None else None for a in (gamma, beta, mean, var)]
    return BatchNormalization(arrays[0], arrays[1], momentum, arrays[2], arrays[3])


def test_batchnorm_2d_is_the_books(backend):
    rng = np.random.default_rng(10)
    x, dout = rng.normal(2.0, 3.0, size=(8, 5)), rng.normal(size=(8, 5))
    gamma, beta = rng.normal(size=5), rng.normal(size=5)
    mean, var = rng.normal(size=5), rng.uniform(0.5, 2.0, size=5)
    layer = make_bn(backend, gamma, beta, 0.8, mean, var)
    out = host(layer.forward(on(backend, x), train_flg=True))
    dx = host(layer.backward(on(backend, dout)))
    book = book_batchnorm_2d(x, gamma, beta, 0.8, mean, var, dout)
    for got, want, what in zip(
        (out, dx, host(layer.dgamma), host(layer.dbeta), host(layer.running_mean)),
        book[:5],
        ("out", "dx", "dgamma", "dbeta", "running_mean"),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=what)
    np.testing.assert_allclose(host(layer.running_var), book[5], rtol=1e-12)
    assert layer.dgamma is layer.grads[0] and layer.dbeta is layer.grads[1]


def test_batchnorm_defaults_are_the_books(backend, xp):
    gamma = xpnn.asarray(np.ones(3), dtype="float32")
    layer = BatchNormalization(gamma, xpnn.zeros(3))
    assert layer.momentum == 0.9 and layer.eps == 10e-7
    np.testing.assert_array_equal(host(layer.running_mean), np.zeros(3, np.float32))
    np.testing.assert_array_equal(host(layer.running_var), np.zeros(3, np.float32))
    assert layer.running_mean.dtype == xp.float32
    assert layer.params[0] is gamma and layer.param_names == ("gamma", "beta")
    assert layer.state_names == ("running_mean", "running_var")


def test_batchnorm_running_statistics_after_two_steps(backend):
    rng = np.random.default_rng(11)
    x1, x2 = rng.normal(1.0, 2.0, size=(6, 4)), rng.normal(-1.0, 0.5, size=(6, 4))
    layer = make_bn(backend, np.ones(4), np.zeros(4), momentum=0.7)
    mean_array, var_array = layer.running_mean, layer.running_var
    layer.forward(on(backend, x1))
    layer.forward(on(backend, x2))
    mean, var = np.zeros(4), np.zeros(4)
    for x in (x1, x2):
        mean = 0.7 * mean + 0.3 * x.mean(axis=0)
        var = 0.7 * var + 0.3 * x.var(axis=0)  # biased, as the book
    # Updated in place: the arrays a saved model holds are the same objects.
    assert layer.running_mean is mean_array and layer.running_var is var_array
    np.testing.assert_allclose(host(layer.running_mean), mean, rtol=1e-12)
    np.testing.assert_allclose(host(layer.running_var), var, rtol=1e-12)


def test_batchnorm_test_mode_uses_running_statistics(backend):
    rng = np.random.default_rng(12)
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    layer = make_bn(backend, gamma, beta)
    for _ in range(3):
        layer.forward(on(backend, rng.normal(3.0, 2.0, size=(10, 4))))
    mean, var = host(layer.running_mean), host(layer.running_var)
    x = rng.normal(size=(5, 4))
    out = host(layer.forward(on(backend, x), train_flg=False))
    np.testing.assert_allclose(out, gamma * (x - mean) / np.sqrt(var + EPS) + beta, rtol=1e-12)
    np.testing.assert_array_equal(host(layer.running_mean), mean)  # test mode leaves them
    np.testing.assert_array_equal(host(layer.running_var), var)


def test_batchnorm_4d_test_mode_per_channel(backend):
    rng = np.random.default_rng(13)
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    mean, var = rng.normal(size=3), rng.uniform(0.5, 2, size=3)
    layer = make_bn(backend, gamma, beta, 0.9, mean, var)
    x = rng.normal(size=(2, 3, 4, 5))
    out = host(layer.forward(on(backend, x), train_flg=False))
    c = (1, 3, 1, 1)
    expected = gamma.reshape(c) * (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + EPS)
    np.testing.assert_allclose(out, expected + beta.reshape(c), rtol=1e-12)


def test_batchnorm_4d_is_2d_batchnorm_of_the_pixels(backend):
    """Per channel over N, H, W: the 2-D layer on (N*H*W, C) rows gives the same."""
    rng = np.random.default_rng(14)
    x, dout = rng.normal(size=(3, 4, 5, 2)), rng.normal(size=(3, 4, 5, 2))
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    layer = make_bn(backend, gamma, beta, 0.6)
    out = host(layer.forward(on(backend, x)))
    dx = host(layer.backward(on(backend, dout)))

    def rows(a):
        return a.transpose(0, 2, 3, 1).reshape(-1, 4)

    book = book_batchnorm_2d(rows(x), gamma, beta, 0.6, np.zeros(4), np.zeros(4), rows(dout))
    np.testing.assert_allclose(rows(out), book[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rows(dx), book[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(host(layer.dgamma), book[2], rtol=1e-10)
    np.testing.assert_allclose(host(layer.dbeta), book[3], rtol=1e-10)
    np.testing.assert_allclose(host(layer.running_mean), book[4], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(host(layer.running_var), book[5], rtol=1e-10)


def test_batchnorm_images_with_one_gamma_per_element_flatten_as_the_book(backend):
    rng = np.random.default_rng(15)
    x, dout = rng.normal(size=(6, 2, 3, 2)), rng.normal(size=(6, 2, 3, 2))
    gamma, beta = rng.normal(size=12), rng.normal(size=12)
    layer = make_bn(backend, gamma, beta)
    out = host(layer.forward(on(backend, x)))
    dx = host(layer.backward(on(backend, dout)))
    assert out.shape == dx.shape == x.shape
    book = book_batchnorm_2d(x.reshape(6, -1), gamma, beta, 0.9, 0, 0, dout.reshape(6, -1))
    np.testing.assert_allclose(out.reshape(6, -1), book[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx.reshape(6, -1), book[1], rtol=1e-9, atol=1e-12)


def central_differences(loss, arrays, h=1e-5):
    """Gradients of ``loss(*arrays)`` with respect to each array (host, float64)."""
    grads = []
    for which, a in enumerate(arrays):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            shifted = []
            for sign in (1, -1):
                moved = [b.copy() for b in arrays]
                moved[which][i] += sign * h
                shifted.append(loss(*moved))
            g[i] = (shifted[0] - shifted[1]) / (2 * h)
        grads.append(g)
    return grads


@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 3, 2)], ids=["2d", "4d"])
@pytest.mark.parametrize("train_flg", [True, False], ids=["train", "test"])
def test_batchnorm_gradient_check(backend, shape, train_flg):
    rng = np.random.default_rng(16)
    c = shape[1]
    x, R = rng.normal(1.0, 2.0, size=shape), rng.normal(size=shape)
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    mean, var = rng.normal(size=c), rng.uniform(0.5, 2.0, size=c)

    def loss(x, gamma, beta):
        layer = make_bn(backend, gamma, beta, 0.9, mean, var)
        return float((host(layer.forward(on(backend, x), train_flg)) * R).sum())

    layer = make_bn(backend, gamma, beta, 0.9, mean, var)
    layer.forward(on(backend, x), train_flg)
    dx = host(layer.backward(on(backend, R)))
    numeric = central_differences(loss, [x, gamma, beta])
    for got, want, what in zip(
        (dx, host(layer.dgamma), host(layer.dbeta)), numeric, ("dx", "dgamma", "dbeta"), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=what)


def test_batchnorm_backward_without_input_grad_fills_grads_only(backend):
    rng = np.random.default_rng(17)
    layer = make_bn(backend, np.ones(3), np.zeros(3))
    layer.forward(on(backend, rng.normal(size=(4, 3))))
    dout = rng.normal(size=(4, 3))
    assert layer.backward(on(backend, dout), input_grad=False) is None
    np.testing.assert_allclose(host(layer.dbeta), dout.sum(axis=0), rtol=1e-14)


def test_batchnorm_half_inputs_are_computed_in_float32(backend, xp):
    rng = np.random.default_rng(18)
    x_host, dout_host = rng.normal(5.0, 3.0, size=(32, 6)), rng.normal(size=(32, 6))
    gamma, beta = rng.uniform(0.5, 1.5, size=6), rng.normal(size=6)
    for name in half_dtypes(backend):
        half = B.resolve_dtype(xp, name)
        layer = make_bn(backend, gamma, beta, 0.9, dtype=name)
        x, dout = on(backend, x_host, name), on(backend, dout_host, name)
        out = layer.forward(x)
        dx = layer.backward(dout)
        assert out.dtype == dx.dtype == half
        assert layer.running_mean.dtype == layer.dgamma.dtype == half
        assert layer.xn.dtype == xp.float32  # the statistics were taken in float32
        # The reference: the same half values, computed in float64.
        r = [
            host(a).astype(np.float64)
            for a in (x, on(backend, gamma, name), on(backend, beta, name), dout)
        ]
        book = book_batchnorm_2d(r[0], r[1], r[2], 0.9, np.zeros(6), np.zeros(6), r[3])
        tol = {"float16": 2e-3, "bfloat16": 2e-2}[name]
        np.testing.assert_allclose(host(out).astype(np.float64), book[0], rtol=tol, atol=tol)
        np.testing.assert_allclose(host(dx).astype(np.float64), book[1], rtol=tol, atol=tol)
        np.testing.assert_allclose(host(layer.running_mean).astype(np.float64), book[4], rtol=tol)


def running_copies(layer):
    return host(layer.running_mean), host(layer.running_var)


def assert_running_unchanged(layer, before):
    np.testing.assert_array_equal(host(layer.running_mean), before[0])
    np.testing.assert_array_equal(host(layer.running_var), before[1])


@pytest.mark.parametrize("shape", [(4, 5), (4, 2, 3), (4, 2, 2, 2), (4,), (0, 3)], ids=str)
def test_batchnorm_refuses_x_that_does_not_fit_and_changes_nothing(backend, shape):
    layer = make_bn(backend, np.ones(3), np.zeros(3), 0.9, np.ones(3), np.full(3, 2.0))
    before = running_copies(layer)
    with pytest.raises(ValueError, match=r"BatchNormalization|batch"):
        layer.forward(on(backend, np.ones(shape)))
    assert_running_unchanged(layer, before)


def test_batchnorm_refuses_integer_x(backend):
    layer = make_bn(backend, np.ones(3), np.zeros(3))
    with pytest.raises(TypeError, match="floating-point"):
        layer.forward(xpnn.asarray(np.ones((2, 3)), dtype="int64"))


def test_batchnorm_momentum_changed_to_a_bad_value_changes_nothing(backend):
    layer = make_bn(backend, np.ones(3), np.zeros(3), 0.9, np.ones(3), np.full(3, 2.0))
    before = running_copies(layer)
    layer.momentum = 1.5
    with pytest.raises(ValueError, match="momentum"):
        layer.forward(on(backend, np.random.default_rng(0).normal(size=(4, 3))))
    assert_running_unchanged(layer, before)


@pytest.mark.parametrize(
    ("momentum", "error"),
    [(1.0, ValueError), (-0.1, ValueError), (float("nan"), ValueError), ("0.9", TypeError)],
)
def test_batchnorm_bad_momentum(backend, momentum, error):
    with pytest.raises(error, match="momentum"):
        make_bn(backend, np.ones(3), np.zeros(3), momentum)


@pytest.mark.parametrize(
    "shapes",
    [
        {"beta": (4,)},
        {"running_mean": (2,)},
        {"running_var": (3, 1)},
        {"gamma": (3, 1), "beta": (3, 1)},
    ],
    ids=str,
)
def test_batchnorm_arrays_of_different_shapes_are_refused(backend, shapes):
    arrays = {"gamma": (3,), "beta": (3,), "running_mean": (3,), "running_var": (3,)}
    arrays.update(shapes)
    built = {k: on(backend, np.ones(s)) for k, s in arrays.items()}
    with pytest.raises(ValueError, match="1-D of one shape"):
        BatchNormalization(
            built["gamma"], built["beta"], 0.9, built["running_mean"], built["running_var"]
        )


def test_batchnorm_refuses_integer_arrays(backend):
    with pytest.raises(TypeError, match="beta must be floating"):
        BatchNormalization(xpnn.zeros(3), xpnn.asarray(np.zeros(3), dtype="int64"))


def test_batchnorm_config_round_trip(backend, xp):
    layer = make_bn(backend, np.ones(7), np.zeros(7), 0.8)
    config = layer.config()
    assert config == {"size": 7, "momentum": 0.8}
    assert BatchNormalization.param_shapes(config) == {"gamma": (7,), "beta": (7,)}
    assert BatchNormalization.state_shapes(config) == {"running_mean": (7,), "running_var": (7,)}
    twin = BatchNormalization.from_config(config, dtype="float64", backend=backend)
    assert twin.config() == config
    for name in ("gamma", "beta", "running_mean", "running_var"):
        a = getattr(twin, name)
        assert tuple(a.shape) == (7,) and a.dtype == xp.float64
        assert_on(a, backend)


@pytest.mark.parametrize(
    "config",
    [
        {"size": 3},
        {"size": 0, "momentum": 0.9},
        {"size": 3.0, "momentum": 0.9},
        {"size": 3, "momentum": 1.0},
        {"size": 3, "momentum": "0.9"},
        {"size": 3, "momentum": 0.9, "eps": 1e-7},
    ],
    ids=str,
)
def test_batchnorm_bad_config_is_a_value_error(config):
    with pytest.raises(ValueError, match="BatchNormalization config"):
        BatchNormalization.state_shapes(config)


def test_a_model_with_batchnorm_and_dropout_saves_and_loads(backend, tmp_path):
    rng = np.random.default_rng(19)
    W1, W2 = (
        on(backend, rng.normal(size=(4, 5)), "float32"),
        on(backend, rng.normal(size=(5, 3)), "float32"),
    )
    bn = BatchNormalization(
        xpnn.asarray(rng.uniform(0.5, 1.5, size=5), dtype="float32"), xpnn.zeros(5)
    )
    drop = Dropout(0.3, seed=123)
    net = xpnn.LayeredNet(
        [Affine(W1, xpnn.zeros(5)), bn, Relu(), drop, Affine(W2, xpnn.zeros(3))],
        SoftmaxWithLoss(),
        input_size=4,
    )
    h = bn.forward(on(backend, rng.normal(size=(8, 5)), "float32"))  # running stats move
    del h
    assert "layers.1.running_mean" in net.named_arrays()
    xpnn.io.save(net, tmp_path / "net.npz")
    loaded = xpnn.io.load(tmp_path / "net.npz")
    bn2, drop2 = loaded.layers[1], loaded.layers[3]
    assert isinstance(bn2, BatchNormalization) and isinstance(drop2, Dropout)
    assert bn2.config() == bn.config() and drop2.config() == drop.config()
    for name in ("gamma", "beta", "running_mean", "running_var"):
        np.testing.assert_array_equal(host(getattr(bn2, name)), host(getattr(bn, name)), name)
    assert np.any(host(bn2.running_var) != 0)
    assert xpnn.models.LayeredNet.array_shapes(net.config)["layers.1.running_var"] == (5,)


def test_layer_configs_name_every_key():
    with pytest.raises(ValueError, match=r"exactly the keys \['momentum', 'size'\]"):
        BatchNormalization.param_shapes({"size": 3, "momentum": 0.9, "x": 1})
    assert math.isclose(
        BatchNormalization.from_config(
            {"size": 2, "momentum": 0}, dtype="float32", backend=B._open("numpy")
        ).momentum,
        0.0,
    )

"""Chapter 7: im2col, col2im, Convolution and Pooling on every backend.

Tests taking the ``backend`` / ``xp`` fixtures run on every backend (see
conftest.py); array-api-strict's ``device1`` refuses implicit host reads, so
passing there shows the layers read nothing back. References are computed on
the host with NumPy in float64: the book's im2col/col2im re-typed here, direct
loops for the layers, central differences for the gradients, and PyTorch's
``conv2d``/``max_pool2d`` autograd where PyTorch is installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import backend as B
from xpnn.layers import LAYERS, Affine, Relu, SoftmaxWithLoss
from xpnn.layers.conv import Convolution, Pooling, col2im, im2col

# (N, C, H, W, filter_h, filter_w, stride, pad): odd and even sizes, strides
# 1-2, pads 0-2, batch 1, windows as large as the padded input.
WINDOWS = [
    (2, 3, 7, 6, 3, 2, 1, 0),
    (1, 2, 8, 9, 3, 3, 2, 1),
    (2, 1, 5, 5, 2, 2, 2, 2),
    (3, 2, 6, 6, 5, 5, 1, 2),
    (1, 1, 4, 5, 1, 1, 1, 0),
    (2, 2, 3, 4, 5, 6, 2, 1),
    (1, 3, 6, 7, 3, 4, 2, 0),
]


def host(a) -> np.ndarray:
    """A host copy (NumPy layers return buffers they reuse: copy before the next call)."""
    return np.array(xpnn.to_numpy(a), copy=True)


def on(backend, a, dtype="float64"):
    return xpnn.asarray(np.array(a, copy=True), dtype=dtype, backend=backend)


# ------------------------------------------------ the book's algorithm, re-typed


def book_im2col(x, fh, fw, stride, pad):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((n, c, fh, fw, oh, ow))
    for y in range(fh):
        for z in range(fw):
            col[:, :, y, z, :, :] = img[
                :, :, y : y + stride * oh : stride, z : z + stride * ow : stride
            ]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def book_col2im(col, shape, fh, fw, stride, pad):
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    col = col.reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1))
    for y in range(fh):
        for z in range(fw):
            img[:, :, y : y + stride * oh : stride, z : z + stride * ow : stride] += col[:, :, y, z]
    return img[:, :, pad : h + pad, pad : w + pad]


# ------------------------------------------------ direct loops


def out_size(h, w, fh, fw, stride, pad):
    return (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1


def direct_conv(x, W, b, stride, pad):
    """out[n, f, i, j] = sum(W[f] * window) + b[f], window by window."""
    n, _, h, w = x.shape
    fn, _, fh, fw = W.shape
    oh, ow = out_size(h, w, fh, fw, stride, pad)
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    out = np.zeros((n, fn, oh, ow))
    for s in range(n):
        for f in range(fn):
            for i in range(oh):
                for j in range(ow):
                    window = img[s, :, i * stride : i * stride + fh, j * stride : j * stride + fw]
                    out[s, f, i, j] = np.sum(window * W[f]) + b[f]
    return out


def direct_pool(x, ph, pw, stride, pad, dout=None):
    """Max of each window (zero padding), and the gradient routed to the first maximum."""
    n, c, h, w = x.shape
    oh, ow = out_size(h, w, ph, pw, stride, pad)
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    out = np.zeros((n, c, oh, ow))
    dimg = np.zeros_like(img)
    for s in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    window = img[s, ch, i * stride : i * stride + ph, j * stride : j * stride + pw]
                    out[s, ch, i, j] = window.max()
                    first = int(np.flatnonzero(window.ravel() == window.max())[0])
                    if dout is not None:
                        a, z = divmod(first, pw)
                        dimg[s, ch, i * stride + a, j * stride + z] += dout[s, ch, i, j]
    return out, dimg[:, :, pad : pad + h, pad : pad + w]


def central_differences(loss, arrays, h=1e-6):
    """Gradients of ``loss(*arrays)`` with respect to each array (host, float64)."""
    grads = []
    for which, a in enumerate(arrays):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            values = []
            for sign in (1, -1):
                moved = [b.copy() for b in arrays]
                moved[which][i] += sign * h
                values.append(loss(*moved))
            g[i] = (values[0] - values[1]) / (2 * h)
        grads.append(g)
    return grads


def distinct(rng, shape):
    """Values at least 0.01 apart (no max changes under a 1e-6 nudge), shuffled."""
    size = int(np.prod(shape))
    return (rng.permutation(size) * 0.01 - size * 0.005).reshape(shape) + rng.uniform(0, 1e-3)


# ======================================================== im2col / col2im


@pytest.mark.parametrize("case", WINDOWS, ids=str)
def test_im2col_is_the_books(backend, xp, case):
    n, c, h, w, fh, fw, s, p = case
    x = np.random.default_rng(1).normal(size=(n, c, h, w))
    col = im2col(on(backend, x), fh, fw, s, p)
    assert col.dtype == xp.float64
    np.testing.assert_array_equal(host(col), book_im2col(x, fh, fw, s, p), strict=True)


@pytest.mark.parametrize("case", WINDOWS, ids=str)
def test_col2im_is_the_books(backend, xp, case):
    n, c, h, w, fh, fw, s, p = case
    oh, ow = out_size(h, w, fh, fw, s, p)
    col = np.random.default_rng(2).normal(size=(n * oh * ow, c * fh * fw))
    img = col2im(on(backend, col), (n, c, h, w), fh, fw, s, p)
    assert img.dtype == xp.float64 and tuple(img.shape) == (n, c, h, w)
    want = book_col2im(col, (n, c, h, w), fh, fw, s, p)
    np.testing.assert_allclose(host(img), want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("case", WINDOWS, ids=str)
def test_col2im_is_the_adjoint_of_im2col(backend, case):
    n, c, h, w, fh, fw, s, p = case
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, c, h, w))
    oh, ow = out_size(h, w, fh, fw, s, p)
    cols = rng.normal(size=(n * oh * ow, c * fh * fw))
    left = np.sum(host(im2col(on(backend, x), fh, fw, s, p)) * cols)
    right = np.sum(x * host(col2im(on(backend, cols), x.shape, fh, fw, s, p)))
    np.testing.assert_allclose(left, right, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_im2col_and_col2im_keep_the_dtype(backend, xp, dtype):
    x = on(backend, np.arange(2 * 2 * 5 * 5).reshape(2, 2, 5, 5), dtype)
    col = im2col(x, 3, 3, 2, 1)
    assert col.dtype == getattr(xp, dtype) and tuple(col.shape) == (2 * 3 * 3, 2 * 9)
    img = col2im(col, (2, 2, 5, 5), 3, 3, 2, 1)
    assert img.dtype == getattr(xp, dtype) and tuple(img.shape) == (2, 2, 5, 5)


def test_im2col_and_col2im_of_integers(backend, xp):
    """Any dtype is kept, integers too (PyTorch's fold takes floats only)."""
    x = np.arange(2 * 3 * 5 * 4).reshape(2, 3, 5, 4)
    col = im2col(xpnn.asarray(x), 3, 2, 2, 1)
    assert col.dtype == xp.int64
    np.testing.assert_array_equal(host(col), book_im2col(x, 3, 2, 2, 1))
    img = col2im(col, x.shape, 3, 2, 2, 1)
    assert img.dtype == xp.int64
    np.testing.assert_array_equal(host(img), book_col2im(host(col), x.shape, 3, 2, 2, 1))


#: The half floats each library has (array-api-strict has none, NumPy no bfloat16).
HALF_SUPPORT = {"numpy": {"float16"}, "cupy": {"float16"}, "torch": {"float16", "bfloat16"}}


def test_half_floats_are_kept_and_close(backend, xp):
    rng = np.random.default_rng(15)
    x, W, b = rng.normal(size=(2, 2, 6, 5)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)
    want = direct_conv(x, W, b, 1, 1)
    dout = rng.normal(size=want.shape)
    ref = make_conv(backend, W, b, 1, 1)
    ref.forward(on(backend, x))
    want_dx = host(ref.backward(on(backend, dout)))
    y = distinct(rng, want.shape)  # apart by more than a half float's rounding
    pooled, want_pool_dx = direct_pool(y, 2, 2, 2, 0, np.ones((2, 3, 3, 2)))
    for name in sorted(HALF_SUPPORT.get(backend.name, ())):
        dtype = B.resolve_dtype(xp, name)
        conv = make_conv(backend, W, b, 1, 1, name)
        out = conv.forward(on(backend, x, name))
        dx = conv.backward(on(backend, dout, name))
        assert out.dtype == dx.dtype == conv.dW.dtype == conv.db.dtype == dtype
        tol = 0.05 if name == "bfloat16" else 0.01
        scale = np.abs(want).max()
        np.testing.assert_allclose(host(out).astype(np.float64), want, atol=tol * scale)
        np.testing.assert_allclose(host(dx).astype(np.float64), want_dx, atol=tol * scale)
        pool = Pooling(2, 2, 2)
        p = pool.forward(on(backend, y, name))
        assert p.dtype == dtype
        np.testing.assert_allclose(host(p).astype(np.float64), pooled, rtol=tol)
        pdx = pool.backward(on(backend, np.ones((2, 3, 3, 2)), name))
        np.testing.assert_array_equal(host(pdx).astype(np.float64), want_pool_dx)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (((2, 3, 4), 2, 2), ValueError, r"images \(N, C, H, W\), got shape \(2, 3, 4\)"),
        (((1, 1, 4, 4), 0, 2), ValueError, "filter_h must be positive, got 0"),
        (((1, 1, 4, 4), 2, 2.0), TypeError, "filter_w must be an int, got float"),
        (((1, 1, 4, 4), 2, 2, 0), ValueError, "stride must be positive, got 0"),
        (((1, 1, 4, 4), 2, 2, 1, -1), ValueError, "pad must be >= 0, got -1"),
        (((1, 1, 4, 4), 2, 2, True), TypeError, "stride must be an int, got bool"),
        (((1, 1, 4, 4), 5, 2), ValueError, r"a 5x2 window does not fit .* \(4x4\)"),
        (((1, 1, 2, 2), 5, 5, 1, 1), ValueError, r"padded by 1 \(4x4\)"),
    ],
    ids=str,
)
def test_im2col_bad_arguments(backend, args, error, match):
    shape, *rest = args
    x = xpnn.zeros(shape, dtype="float32")
    with pytest.raises(error, match=match):
        im2col(x, *rest)


def test_col2im_bad_arguments(backend):
    col = xpnn.zeros((2 * 9, 1 * 4), dtype="float32")
    assert tuple(col2im(col, (2, 1, 4, 4), 2, 2).shape) == (2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"col of shape \(18, 4\) does not fit .* \(8, 4\)"):
        col2im(col, (2, 1, 4, 4), 2, 2, 2)
    with pytest.raises(ValueError, match=r"images \(N, C, H, W\)"):
        col2im(col, (2, 16), 2, 2)
    with pytest.raises(ValueError, match="input_shape entries must be >= 0"):
        col2im(col, (2, 1, -4, 4), 2, 2)
    with pytest.raises(ValueError, match="pad must be >= 0"):
        col2im(col, (2, 1, 4, 4), 2, 2, 1, -2)


# ============================================================ Convolution


def make_conv(backend, W, b, stride=1, pad=0, dtype="float64"):
    return Convolution(on(backend, W, dtype), on(backend, b, dtype), stride, pad)


@pytest.mark.parametrize("case", WINDOWS, ids=str)
def test_convolution_forward_is_the_direct_sum(backend, xp, case):
    n, c, h, w, fh, fw, s, p = case
    rng = np.random.default_rng(4)
    x, W, b = rng.normal(size=(n, c, h, w)), rng.normal(size=(3, c, fh, fw)), rng.normal(size=3)
    layer = make_conv(backend, W, b, s, p)
    out = layer.forward(on(backend, x))
    assert out.dtype == xp.float64
    np.testing.assert_allclose(host(out), direct_conv(x, W, b, s, p), rtol=1e-12, atol=1e-12)
    # A second call (buffers reused on NumPy) gives the same for other data.
    x2 = rng.normal(size=x.shape)
    out2 = layer.forward(on(backend, x2))
    np.testing.assert_allclose(host(out2), direct_conv(x2, W, b, s, p), rtol=1e-12, atol=1e-12)


GRAD_CASES = [
    # N, C, H, W, FN, fh, fw, stride, pad
    (2, 2, 5, 4, 3, 3, 2, 1, 0),
    (1, 1, 6, 7, 2, 3, 3, 2, 1),
    (2, 2, 4, 4, 2, 2, 2, 2, 2),
    (1, 2, 5, 5, 2, 1, 3, 1, 1),
    # stride 1, square filters, FN <= C: dx as a correlation of dout (NumPy, CuPy)
    (2, 3, 5, 6, 2, 3, 3, 1, 1),
    (1, 2, 4, 5, 2, 3, 3, 1, 2),
    (2, 2, 4, 4, 2, 2, 2, 1, 0),
    (1, 3, 3, 4, 1, 1, 1, 1, 0),
    # C*FH*FW <= FN: column products on PyTorch's CPU (a first layer's path)
    (2, 1, 5, 6, 5, 2, 2, 1, 1),
    (2, 2, 4, 4, 3, 1, 1, 1, 0),
    (1, 1, 7, 7, 4, 2, 2, 2, 0),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=str)
def test_convolution_backward_is_the_numerical_gradient(backend, case):
    n, c, h, w, fn, fh, fw, s, p = case
    rng = np.random.default_rng(5)
    x, W, b = rng.normal(size=(n, c, h, w)), rng.normal(size=(fn, c, fh, fw)), rng.normal(size=fn)
    oh, ow = out_size(h, w, fh, fw, s, p)
    R = rng.normal(size=(n, fn, oh, ow))

    def loss(x, W, b):
        return float(np.sum(direct_conv(x, W, b, s, p) * R))

    layer = make_conv(backend, W, b, s, p)
    layer.forward(on(backend, x))
    dx = host(layer.backward(on(backend, R)))
    numeric = central_differences(loss, [x, W, b])
    got = (dx, host(layer.dW), host(layer.db))
    for g, want, what in zip(got, numeric, ("dx", "dW", "db"), strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-7, err_msg=what)
    # The layer's own forward is the function differentiated.
    numeric_x = central_differences(
        lambda x: float(np.sum(host(layer.forward(on(backend, x))) * R)), [x]
    )
    np.testing.assert_allclose(dx, numeric_x[0], rtol=1e-6, atol=1e-7)


def test_stride_1_dx_skips_col2im_on_numpy():
    """FN <= C at stride 1: dx is a correlation of dout, no dcol/col2im buffers."""
    numpy = xpnn.backend._open("numpy")
    rng = np.random.default_rng(15)
    for fn, c, correlated in ((3, 4, True), (4, 4, True), (5, 4, False)):
        layer = make_conv(numpy, rng.normal(size=(fn, c, 3, 3)), np.zeros(fn), 1, 1)
        out = layer.forward(on(numpy, rng.normal(size=(2, c, 5, 5))))
        layer.backward(on(numpy, rng.normal(size=tuple(out.shape))))
        assert ("dout col" in layer._buffers) is correlated
        assert ("dcol" in layer._buffers) is not correlated


def test_torch_cpu_takes_columns_only_where_they_are_small():
    """PyTorch's CPU: columns (made in forward) where C*FH*FW <= FN, else oneDNN's kernels."""
    torch = pytest.importorskip("torch")
    torch_cpu = xpnn.backend._open("torch:cpu")
    rng = np.random.default_rng(16)
    for fn, c, columns in ((30, 1, True), (9, 1, True), (8, 1, False), (16, 16, False)):
        layer = make_conv(torch_cpu, rng.normal(size=(fn, c, 3, 3)), np.zeros(fn), 1, 1)
        out = layer.forward(on(torch_cpu, rng.normal(size=(2, c, 6, 6))))
        assert layer._kernels and (layer._col is not None) is columns
        assert out.is_contiguous(memory_format=torch.channels_last)  # what pooling runs fastest


def test_convolution_grads_are_filled_in_place(backend):
    rng = np.random.default_rng(6)
    layer = make_conv(backend, rng.normal(size=(2, 1, 3, 3)), np.zeros(2), 1, 1)
    dW, db = layer.grads
    x = on(backend, rng.normal(size=(2, 1, 5, 5)))
    dout = on(backend, rng.normal(size=(2, 2, 5, 5)))
    layer.forward(x)
    dx = layer.backward(dout)
    assert layer.grads[0] is dW and layer.grads[1] is db and layer.dW is dW and layer.db is db
    first = host(dW)
    assert np.any(first != 0) and tuple(dx.shape) == (2, 1, 5, 5)
    layer.forward(x)
    assert layer.backward(dout, input_grad=False) is None
    np.testing.assert_allclose(host(dW), first, rtol=1e-14)


def test_convolution_keeps_float32(backend, xp):
    rng = np.random.default_rng(7)
    layer = make_conv(backend, rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), dtype="float32")
    x = rng.normal(size=(3, 2, 6, 6))
    out = layer.forward(on(backend, x, "float32"))
    assert out.dtype == xp.float32 and tuple(out.shape) == (3, 4, 4, 4)
    want = direct_conv(x, host(layer.W).astype(np.float64), host(layer.b).astype(np.float64), 1, 0)
    np.testing.assert_allclose(host(out), want, rtol=1e-4, atol=1e-4)
    dx = layer.backward(on(backend, np.ones((3, 4, 4, 4)), "float32"))
    assert dx.dtype == xp.float32 and layer.dW.dtype == xp.float32


def test_convolution_refuses_bad_inputs_and_changes_nothing(backend):
    rng = np.random.default_rng(8)
    layer = make_conv(backend, rng.normal(size=(2, 3, 3, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"take 3 channels, got x of shape \(1, 2, 5, 5\)"):
        layer.forward(on(backend, np.zeros((1, 2, 5, 5))))
    with pytest.raises(ValueError, match=r"images \(N, C, H, W\), got shape \(1, 75\)"):
        layer.forward(on(backend, np.zeros((1, 75))))
    with pytest.raises(ValueError, match=r"a 3x3 window does not fit"):
        layer.forward(on(backend, np.zeros((1, 3, 2, 5))))
    with pytest.raises(TypeError, match="floating-point inputs, got int64"):
        layer.forward(xpnn.asarray(np.zeros((1, 3, 5, 5), dtype=np.int64)))
    with pytest.raises(RuntimeError, match="needs a forward pass first"):
        layer.backward(on(backend, np.zeros((1, 2, 3, 3))))
    assert layer.x is None
    layer.forward(on(backend, np.zeros((1, 3, 5, 5))))
    with pytest.raises(ValueError, match=r"dout of shape \(1, 2, 4, 4\) does not fit"):
        layer.backward(on(backend, np.zeros((1, 2, 4, 4))))


@pytest.mark.parametrize(
    ("W", "b", "kwargs", "error", "match"),
    [
        ((2, 3, 3), (2,), {}, ValueError, r"W of shape \(FN, C, FH, FW\)"),
        (
            (2, 1, 3, 3),
            (3,),
            {},
            ValueError,
            r"b of shape \(FN,\), got W \(2, 1, 3, 3\) and b \(3,\)",
        ),
        ((2, 1, 0, 3), (2,), {}, ValueError, "no empty axis"),
        ((2, 1, 3, 3), (2,), {"stride": 0}, ValueError, "stride must be positive"),
        ((2, 1, 3, 3), (2,), {"pad": -1}, ValueError, "pad must be >= 0"),
        ((2, 1, 3, 3), (2,), {"pad": 1.5}, TypeError, "pad must be an int"),
    ],
    ids=str,
)
def test_convolution_bad_arguments(backend, W, b, kwargs, error, match):
    with pytest.raises(error, match=match):
        Convolution(xpnn.zeros(W), xpnn.zeros(b), **kwargs)


@pytest.mark.parametrize(("x_dtype", "w_dtype"), [("float32", "float64"), ("float64", "float32")])
def test_convolution_refuses_x_in_another_dtype_than_W(backend, x_dtype, w_dtype):
    """One xpnn TypeError on every backend (NumPy would promote, PyTorch fail in
    its kernel), naming both dtypes and the fix, before any state changes."""
    rng = np.random.default_rng(17)
    layer = make_conv(backend, rng.normal(size=(2, 3, 3, 3)), np.zeros(2), 1, 1, w_dtype)
    mixed = on(backend, rng.normal(size=(1, 3, 5, 5)), x_dtype)
    match = rf'W is {w_dtype}, x is {x_dtype}; .*xpnn\.asarray\(x, dtype="{w_dtype}"\)'
    with pytest.raises(TypeError, match=match):
        layer.forward(mixed)
    assert layer.x is None and layer.col is None
    out = host(layer.forward(on(backend, rng.normal(size=(2, 3, 4, 4)), w_dtype)))
    x, col = layer.x, host(layer.col)
    with pytest.raises(TypeError, match=match):
        layer.forward(mixed)
    assert layer.x is x and layer._x_shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(host(layer.col), col)
    dx = layer.backward(on(backend, np.ones(out.shape), w_dtype))  # still the last pass's
    assert tuple(dx.shape) == (2, 3, 4, 4)


def test_convolution_refuses_integer_filters(backend):
    with pytest.raises(TypeError, match="Convolution W needs floating-point"):
        Convolution(xpnn.asarray(np.zeros((2, 1, 3, 3), dtype=np.int64)), xpnn.zeros(2))


def test_convolution_config_round_trip(backend, xp):
    layer = make_conv(backend, np.ones((5, 3, 4, 2)), np.zeros(5), 2, 1)
    config = layer.config()
    assert config == {
        "filter_num": 5,
        "channels": 3,
        "filter_h": 4,
        "filter_w": 2,
        "stride": 2,
        "pad": 1,
    }
    assert LAYERS["Convolution"] is Convolution
    assert Convolution.param_shapes(config) == {"W": (5, 3, 4, 2), "b": (5,)}
    twin = Convolution.from_config(config, dtype="float32", backend=backend)
    assert twin.config() == config
    assert twin.W.dtype == xp.float32 and tuple(twin.b.shape) == (5,)
    assert xpnn.get_namespace(twin.W) is backend.xp


@pytest.mark.parametrize(
    "config",
    [
        {"filter_num": 5, "channels": 3, "filter_h": 4, "filter_w": 2, "stride": 1},
        {"filter_num": 0, "channels": 3, "filter_h": 4, "filter_w": 2, "stride": 1, "pad": 0},
        {"filter_num": 5, "channels": 3, "filter_h": 4, "filter_w": 2, "stride": 1, "pad": -1},
        {"filter_num": 5, "channels": 3, "filter_h": 4, "filter_w": 2, "stride": 1, "pad": "0"},
    ],
    ids=str,
)
def test_convolution_bad_config_is_a_value_error(config):
    with pytest.raises(ValueError, match="Convolution config"):
        Convolution.param_shapes(config)


# ================================================================ Pooling


POOL_CASES = [
    # N, C, H, W, pool_h, pool_w, stride, pad
    (2, 2, 4, 4, 2, 2, 2, 0),
    (1, 3, 5, 7, 3, 2, 1, 1),
    (2, 1, 6, 5, 3, 3, 2, 2),
    (1, 2, 7, 7, 2, 3, 2, 0),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pooling_is_the_direct_max(backend, xp, case):
    n, c, h, w, ph, pw, s, p = case
    rng = np.random.default_rng(9)
    x = rng.normal(size=(n, c, h, w))
    layer = Pooling(ph, pw, s, p)
    out = layer.forward(on(backend, x))
    want, _ = direct_pool(x, ph, pw, s, p)
    assert out.dtype == xp.float64
    np.testing.assert_array_equal(host(out), want)


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pooling_backward_goes_to_the_first_maximum(backend, case):
    """Ties (small integers) route the gradient to the first maximum, as argmax."""
    n, c, h, w, ph, pw, s, p = case
    rng = np.random.default_rng(10)
    x = rng.integers(-2, 3, size=(n, c, h, w)).astype(np.float64)
    layer = Pooling(ph, pw, s, p)
    out = layer.forward(on(backend, x))
    dout = rng.normal(size=tuple(out.shape))
    _, want = direct_pool(x, ph, pw, s, p, dout)
    np.testing.assert_allclose(host(layer.backward(on(backend, dout))), want, rtol=1e-14)


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pooling_backward_is_the_numerical_gradient(backend, case):
    n, c, h, w, ph, pw, s, p = case
    rng = np.random.default_rng(11)
    x = distinct(rng, (n, c, h, w))
    layer = Pooling(ph, pw, s, p)
    out = layer.forward(on(backend, x))
    R = rng.normal(size=tuple(out.shape))
    dx = host(layer.backward(on(backend, R)))

    def loss(x):
        return float(np.sum(host(Pooling(ph, pw, s, p).forward(on(backend, x))) * R))

    (numeric,) = central_differences(loss, [x])
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-7)


def test_pooling_arg_max_is_the_first_maximum(backend):
    rng = np.random.default_rng(13)
    x = rng.integers(0, 3, size=(2, 3, 4, 6)).astype(np.float64)
    layer = Pooling(2, 3, stride=1)
    assert layer.arg_max is None
    layer.forward(on(backend, x))
    oh, ow = 3, 4
    windows = book_im2col(x, 2, 3, 1, 0).reshape(2 * oh * ow, 3, 6)  # rows (n, i, j), then C
    want = np.argmax(windows, axis=2).T  # (C, N*oh*ow), NumPy's first maximum
    np.testing.assert_array_equal(host(layer.arg_max), want)


def test_layers_reuse_their_buffers_on_numpy():
    """After the first step no column- or image-sized array is allocated (NumPy)."""
    numpy = xpnn.backend._open("numpy")
    rng = np.random.default_rng(14)
    conv = make_conv(numpy, rng.normal(size=(4, 2, 3, 3)), np.zeros(4), 1, 1, "float32")
    pool = Pooling(2, 2, 2, 1)
    x = on(numpy, rng.normal(size=(3, 2, 6, 6)), "float32")

    def step():
        h = pool.forward(conv.forward(x))
        conv.backward(pool.backward(xpnn.asarray(np.ones(tuple(h.shape), np.float32))))

    step()
    before = {
        name: {k: id(v) for k, v in layer._buffers.items()}
        for name, layer in (("c", conv), ("p", pool))
    }
    assert {"col", "padded", "out", "dcol", "img"} <= set(before["c"])
    assert {"col", "padded", "out", "hot", "dmax", "img"} <= set(before["p"])
    step()
    after = {
        name: {k: id(v) for k, v in layer._buffers.items()}
        for name, layer in (("c", conv), ("p", pool))
    }
    assert after == before


def test_pooling_keeps_float32_and_refuses_bad_inputs(backend, xp):
    layer = Pooling(2, 2, 2)
    out = layer.forward(on(backend, np.arange(32).reshape(2, 1, 4, 4), "float32"))
    assert out.dtype == xp.float32 and tuple(out.shape) == (2, 1, 2, 2)
    assert layer.backward(out, input_grad=False) is None
    assert layer.backward(out).dtype == xp.float32
    with pytest.raises(ValueError, match=r"images \(N, C, H, W\)"):
        layer.forward(on(backend, np.zeros((2, 16))))
    with pytest.raises(ValueError, match="a 2x2 window does not fit"):
        layer.forward(on(backend, np.zeros((2, 1, 1, 4))))
    with pytest.raises(TypeError, match="floating-point inputs"):
        layer.forward(xpnn.asarray(np.zeros((1, 1, 4, 4), dtype=np.int32)))
    with pytest.raises(ValueError, match=r"dout of shape \(2, 1, 3, 3\) does not fit"):
        layer.backward(on(backend, np.zeros((2, 1, 3, 3)), "float32"))
    with pytest.raises(RuntimeError, match="needs a forward pass first"):
        Pooling(2, 2).backward(out)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((0, 2), ValueError, "pool_h must be positive"),
        ((2, -1), ValueError, "pool_w must be positive"),
        ((2, 2, 0), ValueError, "stride must be positive"),
        ((2, 2, 1, -1), ValueError, "pad must be >= 0"),
        ((2.0, 2), TypeError, "pool_h must be an int"),
    ],
    ids=str,
)
def test_pooling_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        Pooling(*args)


def test_pooling_config_round_trip(backend):
    layer = Pooling(3, 2, stride=2, pad=1)
    config = layer.config()
    assert config == {"pool_h": 3, "pool_w": 2, "stride": 2, "pad": 1}
    assert LAYERS["Pooling"] is Pooling and Pooling.param_shapes(config) == {}
    twin = Pooling.from_config(config, dtype="float32", backend=backend)
    assert twin.config() == config and twin.params == []
    for bad in ({"pool_h": 3, "pool_w": 2, "stride": 2}, {**config, "pad": -1}):
        with pytest.raises(ValueError, match="Pooling config"):
            Pooling.param_shapes(bad)


# ======================================================== against PyTorch


TORCH_CASES = [
    # N, C, H, W, FN, fh, fw, stride, pad
    (2, 3, 7, 6, 4, 3, 2, 1, 0),
    (1, 2, 8, 9, 3, 3, 3, 2, 1),
    (2, 1, 5, 5, 2, 2, 2, 2, 2),
    (2, 4, 6, 6, 3, 3, 3, 1, 1),
    (2, 1, 6, 5, 5, 2, 2, 1, 1),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=str)
def test_convolution_and_pooling_are_torch_autograd(backend, case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    n, c, h, w, fn, fh, fw, s, p = case
    rng = np.random.default_rng(12)
    x, W, b = rng.normal(size=(n, c, h, w)), rng.normal(size=(fn, c, fh, fw)), rng.normal(size=fn)
    tx, tW, tb = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    tout = F.conv2d(tx, tW, tb, stride=s, padding=p)
    R = rng.normal(size=tuple(tout.shape))
    (tout * torch.tensor(R)).sum().backward()

    layer = make_conv(backend, W, b, s, p)
    out = layer.forward(on(backend, x))
    np.testing.assert_allclose(host(out), tout.detach().numpy(), rtol=1e-12, atol=1e-12)
    dx = host(layer.backward(on(backend, R)))
    for got, want in ((dx, tx.grad), (host(layer.dW), tW.grad), (host(layer.db), tb.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)

    # Max pooling: xpnn pads with zeros (the book's im2col), PyTorch with
    # -inf, so PyTorch pools the zero-padded input.
    xt = torch.tensor(x, requires_grad=True)
    tpool = F.max_pool2d(F.pad(xt, (p, p, p, p)), (fh, fw), stride=s)
    R = rng.normal(size=tuple(tpool.shape))
    (tpool * torch.tensor(R)).sum().backward()
    pool = Pooling(fh, fw, s, p)
    np.testing.assert_array_equal(host(pool.forward(on(backend, x))), tpool.detach().numpy())
    np.testing.assert_allclose(
        host(pool.backward(on(backend, R))), xt.grad.numpy(), rtol=1e-12, atol=1e-14
    )


# ============================================================ in a model


def little_cnn(backend, seed=0):
    """Convolution - Relu - Pooling - Affine on (1, 8, 8) images, 3 classes."""
    rng = np.random.default_rng(seed)
    W1 = on(backend, rng.normal(0, 0.3, size=(4, 1, 3, 3)), "float32")
    W2 = on(backend, rng.normal(0, 0.1, size=(4 * 4 * 4, 3)), "float32")
    layers = [
        Convolution(W1, xpnn.zeros(4, dtype="float32"), stride=1, pad=1),
        Relu(),
        Pooling(2, 2, stride=2),
        Affine(W2, xpnn.zeros(3, dtype="float32")),
    ]
    return xpnn.LayeredNet(layers, SoftmaxWithLoss(), input_size=(1, 8, 8))


def little_images(backend, n=60, seed=1):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 3, n)
    x = rng.normal(0, 0.5, size=(n, 1, 8, 8))
    for k in range(3):  # class k: a bright bar in rows 2k..2k+1
        x[t == k, 0, 2 * k : 2 * k + 2, :] += 2.0
    return on(backend, x, "float32"), xpnn.asarray(t, backend=backend)


def test_a_cnn_trains_saves_and_loads(backend, tmp_path):
    net = little_cnn(backend)
    x, t = little_images(backend)
    loss_before = float(net.forward(x, t))
    trainer = xpnn.Trainer(net, xpnn.SGD(lr=0.1))
    trainer.fit(x, t, max_epoch=4, batch_size=20, eval_interval=1, progress=False, verbose=False)
    assert float(net.forward(x, t)) < loss_before
    assert trainer.loss_list[-1] < trainer.loss_list[0]

    path = xpnn.io.save(net, tmp_path / "cnn.npz")
    loaded = xpnn.io.load(path)
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Convolution",
        "Relu",
        "Pooling",
        "Affine",
    ]
    assert loaded.config == net.config and loaded.input_size == (1, 8, 8)
    assert loaded.layers[0].config() == net.layers[0].config()
    assert loaded.layers[2].config() == net.layers[2].config()
    np.testing.assert_array_equal(host(loaded.predict(x)), host(net.predict(x)))


def test_book_import_path():
    from xpnn import layers

    assert layers.Convolution is Convolution and layers.Pooling is Pooling
    assert {"Convolution", "Pooling"} <= set(layers.__all__)


def test_pooling_defaults_to_the_books_stride_1(backend):
    # common/layers.py: Pooling(pool_h, pool_w, stride=1, pad=0) (its nets pass
    # stride=2); a port of Pooling(2, 2) must pool overlapping windows as the book does.
    layer = Pooling(2, 2)
    assert (layer.stride, layer.pad) == (1, 0)
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float64).reshape(2, 3, 4, 6)
    out = host(layer.forward(xpnn.asarray(x, backend=backend)))
    assert out.shape == (2, 3, 3, 5)
    # On this increasing ramp each window's maximum is its bottom-right element.
    np.testing.assert_array_equal(out, x[:, :, 1:, 1:])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_relu_selects_exactly_as_where(backend, dtype):
    # Relu's NumPy/CuPy path selects by bits (no masked copy): its output and
    # gradient must be where(x <= 0, 0, x) to the bit, -0.0, NaN and inf included,
    # on any memory order (the conv layers hand it channels-first views).
    if dtype == "float16" and backend.name == "array_api_strict":
        pytest.skip("array-api-strict has no float16")
    special = [-1.0, -0.0, 0.0, 2.5, np.nan, np.inf, -np.inf, 1e-30]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 6))
    x.flat[: len(special)] = special
    d = rng.standard_normal((3, 4, 5, 6))
    d.flat[: len(special)] = [1.0, np.inf, np.nan, -2.0, 3.0, np.nan, np.inf, 4.0]
    x, d = x.astype(dtype).transpose(1, 0, 2, 3), d.astype(dtype).transpose(1, 0, 2, 3)
    layer = Relu()
    out = layer.forward(xpnn.asarray(x, backend=backend))
    dx = layer.backward(xpnn.asarray(d, backend=backend))
    zero = np.zeros((), dtype=dtype)
    for got, want in ((out, np.where(x <= 0, zero, x)), (dx, np.where(x <= 0, zero, d))):
        got = np.ascontiguousarray(xpnn.to_numpy(got))
        assert got.dtype == want.dtype
        assert np.array_equal(got.view(np.uint8), np.ascontiguousarray(want).view(np.uint8))

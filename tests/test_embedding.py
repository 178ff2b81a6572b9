"""Vol. 2 ch. 4's ``Embedding``, ``EmbeddingDot``, ``SigmoidWithLoss`` and the
row scatter-add under them (``xpnn.backend.scatter.index_add_rows``), on every
backend: against NumPy references, numerical gradients (float64) and, where
PyTorch is installed, torch.autograd (float64 and float32)."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.backend import scatter
from xpnn.backend.scatter import index_add_rows
from xpnn.layers import LAYERS, Embedding, EmbeddingDot, Layer, SigmoidWithLoss

DTYPES = ["float64", "float32"]
TOL = {"float64": 1e-10, "float32": 1e-5}


def read_on_host(backend) -> bool:
    """Whether ids and labels live in host memory there, where they are read and checked."""
    return backend.name == "numpy" or (backend.name == "torch" and not backend.is_gpu)


def host(a) -> np.ndarray:
    """A float64 host copy (layers may return reused buffers)."""
    return np.array(xpnn.to_numpy(a), dtype=np.float64, copy=True)


def close(got, want, dtype: str) -> None:
    """Equal up to TOL relative to the largest element of ``want``."""
    want = np.asarray(want, dtype=np.float64)
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    np.testing.assert_allclose(host(got), want, rtol=TOL[dtype], atol=TOL[dtype] * scale)


def numgrad(f, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f`` at the float64 host array ``a``."""
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        keep = a[i]
        a[i] = keep + eps
        up = f(a)
        a[i] = keep - eps
        down = f(a)
        a[i] = keep
        grad[i] = (up - down) / (2 * eps)
    return grad


def ids(rng, vocab: int, shape) -> np.ndarray:
    """Word ids with repeats (few words, many draws), as int64."""
    return rng.integers(0, vocab, size=shape).astype(np.int64)


# ---------------------------------------------------------------- index_add_rows


@pytest.mark.parametrize("fast_add_at", [True, False], ids=["add_at", "sorted"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("idx_shape", "row_shape"),
    [((9,), (3,)), ((4, 5), (2,)), ((6,), ()), ((3, 2), (2, 2)), ((0,), (3,)), ((1,), (4,))],
)
def test_index_add_rows_matches_add_at(
    backend, xp, dtype, idx_shape, row_shape, fast_add_at, monkeypatch
):
    """Both NumPy paths (np.add.at, the sorted sums of NumPy < 1.25), every backend."""
    if not fast_add_at and backend.name != "numpy":
        pytest.skip("the sorted path is NumPy's alone")
    monkeypatch.setattr(scatter, "_NUMPY_FAST_ADD_AT", fast_add_at)
    rng = np.random.default_rng(0)
    vocab = 4
    target = rng.normal(size=(vocab, *row_shape)).astype(dtype)
    idx = ids(rng, vocab, idx_shape)
    rows = rng.normal(size=(*idx_shape, *row_shape)).astype(dtype)
    want = target.astype(np.float64)
    np.add.at(want, idx, rows.astype(np.float64))

    t = xpnn.asarray(target)
    got = index_add_rows(t, xpnn.asarray(idx), xpnn.asarray(rows))
    assert got is t  # in place
    close(t, want, dtype)


def test_index_add_rows_accumulates_one_index_many_times(backend, xp):
    t = xpnn.asarray(np.zeros((3, 2)))
    idx = xpnn.asarray(np.array([1, 1, 1, 1, 2], dtype=np.int32))
    index_add_rows(t, idx, xpnn.asarray(np.ones((5, 2))))
    np.testing.assert_array_equal(xpnn.to_numpy(t), [[0, 0], [4, 4], [1, 1]])


def test_index_add_rows_refuses_before_writing(backend, xp):
    t = xpnn.asarray(np.ones((3, 2)))
    idx = xpnn.asarray(np.array([0, 2]))
    rows = xpnn.asarray(np.ones((2, 2)))
    with pytest.raises(TypeError, match="integer indices"):
        index_add_rows(t, xp.astype(idx, xp.float64), rows)
    with pytest.raises(TypeError, match="convert rows"):
        index_add_rows(t, idx, xp.astype(rows, xp.float32))
    with pytest.raises(ValueError, match=r"rows must be \(2, 2\)"):
        index_add_rows(t, idx, xpnn.asarray(np.ones((2, 3))))
    with pytest.raises(ValueError, match="0-d"):
        index_add_rows(xpnn.asarray(np.float64(1.0)), idx, rows)
    np.testing.assert_array_equal(xpnn.to_numpy(t), np.ones((3, 2)))


# ---------------------------------------------------------------- Embedding


@pytest.mark.parametrize("idx_shape", [(7,), (3, 4), (1,)])
def test_embedding_forward_backward(backend, xp, idx_shape):
    rng = np.random.default_rng(1)
    W = rng.normal(size=(5, 3))
    idx = ids(rng, 5, idx_shape)
    dout = rng.normal(size=(*idx_shape, 3))
    layer = Embedding(xpnn.asarray(W))
    out = layer.forward(xpnn.asarray(idx))
    np.testing.assert_array_equal(xpnn.to_numpy(out), W[idx])  # the book's W[idx], exactly
    assert layer.backward(xpnn.asarray(dout)) is None
    want = np.zeros_like(W)
    np.add.at(want, idx, dout)
    close(layer.grads[0], want, "float64")
    assert layer.dW is layer.grads[0]
    assert layer.idx.shape == idx_shape

    def loss(w):
        return float(np.sum(host(Embedding(xpnn.asarray(w)).forward(xpnn.asarray(idx))) * dout))

    np.testing.assert_allclose(host(layer.grads[0]), numgrad(loss, W.copy()), atol=1e-7)
    # A second backward zeroes dW first (no accumulation across calls).
    layer.backward(xpnn.asarray(dout))
    close(layer.grads[0], want, "float64")


def test_embedding_refusals_change_nothing(backend, xp):
    rng = np.random.default_rng(2)
    W = rng.normal(size=(4, 2))
    layer = Embedding(xpnn.asarray(W))
    with pytest.raises(RuntimeError, match="forward pass first"):
        layer.backward(xpnn.asarray(np.ones((2, 2))))
    idx = xpnn.asarray(np.array([0, 3, 3]))
    layer.forward(idx)
    layer.backward(xpnn.asarray(np.ones((3, 2))))
    kept_idx, kept_dW = layer.idx, host(layer.grads[0])
    with pytest.raises(TypeError, match="integer word ids"):
        layer.forward(xpnn.asarray(np.array([0.0, 1.0])))
    if read_on_host(backend):
        with pytest.raises(ValueError, match=r"Embedding ids .*0\.\.3"):
            layer.forward(xpnn.asarray(np.array([0, 4])))
        with pytest.raises(ValueError, match="negative"):
            layer.forward(xpnn.asarray(np.array([-1])))
    with pytest.raises(TypeError, match="W's dtype"):
        layer.backward(xpnn.asarray(np.ones((3, 2), dtype=np.float32)))
    with pytest.raises(ValueError, match="does not fit the last output"):
        layer.backward(xpnn.asarray(np.ones((2, 2))))
    assert layer.idx is kept_idx
    np.testing.assert_array_equal(host(layer.grads[0]), kept_dW)
    np.testing.assert_array_equal(host(layer.params[0]), W)


# ---------------------------------------------------------------- EmbeddingDot


def test_embedding_dot_forward_backward(backend, xp):
    rng = np.random.default_rng(3)
    W, h = rng.normal(size=(6, 4)), rng.normal(size=(5, 4))
    idx = np.array([1, 1, 4, 0, 1])  # repeated ids
    dout = rng.normal(size=5)
    layer = EmbeddingDot(xpnn.asarray(W))
    out = layer.forward(xpnn.asarray(h), xpnn.asarray(idx))
    close(out, np.sum(W[idx] * h, axis=1), "float64")
    dh = layer.backward(xpnn.asarray(dout))
    assert layer.params is layer.embed.params and layer.grads is layer.embed.grads
    assert len(layer.cache) == 2

    def loss_W(w):
        return float(
            host(EmbeddingDot(xpnn.asarray(w)).forward(xpnn.asarray(h), xpnn.asarray(idx))) @ dout
        )

    def loss_h(v):
        return float(
            host(EmbeddingDot(xpnn.asarray(W)).forward(xpnn.asarray(v), xpnn.asarray(idx))) @ dout
        )

    np.testing.assert_allclose(host(layer.grads[0]), numgrad(loss_W, W.copy()), atol=1e-7)
    np.testing.assert_allclose(host(dh), numgrad(loss_h, h.copy()), atol=1e-7)


def test_embedding_dot_refusals_change_nothing(backend, xp):
    W = xpnn.asarray(np.ones((4, 3)))
    layer = EmbeddingDot(W)
    h, idx = xpnn.asarray(np.ones((2, 3))), xpnn.asarray(np.array([0, 1]))
    layer.forward(h, idx)
    kept = (layer.cache, layer.embed.idx)
    with pytest.raises(ValueError, match=r"h \(N, 3\) and idx \(N,\)"):
        layer.forward(xpnn.asarray(np.ones((3, 3))), idx)
    with pytest.raises(ValueError, match=r"h \(N, 3\)"):
        layer.forward(h, xpnn.asarray(np.array([[0, 1]])))
    with pytest.raises(TypeError, match="weights' dtype"):
        layer.forward(xpnn.asarray(np.ones((2, 3), dtype=np.float32)), idx)
    with pytest.raises(TypeError, match="integer word ids"):
        layer.forward(h, xpnn.asarray(np.array([0.0, 1.0])))
    assert (layer.cache, layer.embed.idx) == kept


# ---------------------------------------------------------------- SigmoidWithLoss


def book_loss(x: np.ndarray, t: np.ndarray) -> float:
    """The book's composition: cross_entropy_error(np.c_[1 - y, y], t)."""
    y = 1 / (1 + np.exp(-x))
    p = np.c_[1 - y, y]
    return float(-np.sum(np.log(p[np.arange(t.shape[0]), t] + 1e-7)) / t.shape[0])


@pytest.mark.parametrize("n", [1, 6])
def test_sigmoid_with_loss_forward_backward(backend, xp, n):
    rng = np.random.default_rng(4)
    x, t = rng.normal(size=n) * 2, rng.integers(0, 2, size=n)
    layer = SigmoidWithLoss()
    loss = layer.forward(xpnn.asarray(x), xpnn.asarray(t))
    assert loss.shape == ()
    assert float(host(loss)) == pytest.approx(book_loss(x, t), rel=1e-12)
    assert layer.loss is loss
    y = 1 / (1 + np.exp(-x))
    close(layer.backward(), (y - t) / n, "float64")
    close(layer.backward(2.0), 2 * (y - t) / n, "float64")
    close(layer.backward(xpnn.asarray(np.float64(3.0))), 3 * (y - t) / n, "float64")
    # The book's backward is the gradient of the loss without its 1e-7.
    grad = numgrad(lambda v: book_loss(v, t), x.copy())
    np.testing.assert_allclose(host(layer.backward()), grad, atol=1e-6)


def test_sigmoid_with_loss_refusals_change_nothing(backend, xp):
    layer = SigmoidWithLoss()
    assert layer.is_loss and not EmbeddingDot.is_loss and not Embedding.is_loss
    x, t = xpnn.asarray(np.array([0.5, -1.0])), xpnn.asarray(np.array([1, 0]))
    layer.forward(x, t)
    kept = (layer.loss, layer.y, layer.t)
    with pytest.raises(TypeError, match="integer dtype"):
        layer.forward(x, xp.astype(t, xp.float64))
    with pytest.raises(TypeError, match="floating-point scores"):
        layer.forward(t, t)
    with pytest.raises(ValueError, match=r"scores \(N,\)"):
        layer.forward(xpnn.asarray(np.ones((2, 1))), t)
    with pytest.raises(ValueError, match=r"scores \(N,\)"):
        layer.forward(x, xpnn.asarray(np.array([1, 0, 1])))
    if read_on_host(backend):
        with pytest.raises(ValueError, match=r"0\.\.1"):
            layer.forward(x, xpnn.asarray(np.array([2, 0])))
    assert (layer.loss, layer.y, layer.t) == kept
    with pytest.raises(ValueError, match="0-d"):
        layer.backward(xpnn.asarray(np.ones(2)))


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("kind", [Embedding, EmbeddingDot, SigmoidWithLoss])
def test_config_round_trip(backend, xp, kind):
    assert LAYERS[kind.__name__] is kind
    if kind is SigmoidWithLoss:
        layer = kind()
        assert layer.config() == {} and kind.param_shapes({}) == {}
        assert kind.output_sample_shape({}, ()) == ()
        with pytest.raises(ValueError, match="one per sample"):
            kind.output_sample_shape({}, (2,))
        assert isinstance(kind.from_config({}, dtype="float32", backend=backend), kind)
        return
    layer = kind(xpnn.asarray(np.ones((7, 3), dtype=np.float32)))
    config = layer.config()
    assert config == {"vocab_size": 7, "hidden_size": 3}
    assert kind.param_shapes(config) == {"W": (7, 3)}
    again = kind.from_config(config, dtype="float32", backend=backend)
    assert isinstance(again, Layer) and again.config() == config
    assert again.params[0].dtype == layer.params[0].dtype
    with pytest.raises(ValueError, match="vocab_size"):
        kind.param_shapes({"vocab_size": 0, "hidden_size": 3})
    with pytest.raises(ValueError, match="exactly the keys"):
        kind.param_shapes({"vocab_size": 7})
    if kind is Embedding:
        assert kind.output_sample_shape(config, ()) == (3,)
        assert kind.output_sample_shape(config, (5,)) == (5, 3)


# ---------------------------------------------------------------- PyTorch as the oracle


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_matches_autograd(backend, xp, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    W = rng.normal(size=(6, 4)).astype(dtype)
    idx = np.array([[2, 2, 5], [2, 0, 5]])  # repeated ids in one batch
    dout = rng.normal(size=(2, 3, 4)).astype(dtype)
    layer = Embedding(xpnn.asarray(W))
    out = layer.forward(xpnn.asarray(idx))
    layer.backward(xpnn.asarray(dout))
    tW = torch.tensor(W.astype(np.float64), requires_grad=True)
    tout = torch.nn.functional.embedding(torch.tensor(idx), tW)
    tout.backward(torch.tensor(dout, dtype=torch.float64))
    close(out, tout.detach(), dtype)
    close(layer.grads[0], tW.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_dot_matches_autograd(backend, xp, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    W, h = rng.normal(size=(5, 3)).astype(dtype), rng.normal(size=(8, 3)).astype(dtype)
    idx = rng.integers(0, 3, size=8)  # 8 draws of 3 words: repeats
    dout = rng.normal(size=8).astype(dtype)
    layer = EmbeddingDot(xpnn.asarray(W))
    out = layer.forward(xpnn.asarray(h), xpnn.asarray(idx))
    dh = layer.backward(xpnn.asarray(dout))
    tW = torch.tensor(W.astype(np.float64), requires_grad=True)
    th = torch.tensor(h.astype(np.float64), requires_grad=True)
    tout = torch.sum(tW[torch.tensor(idx)] * th, dim=1)
    tout.backward(torch.tensor(dout, dtype=torch.float64))
    close(out, tout.detach(), dtype)
    close(dh, th.grad, dtype)
    close(layer.grads[0], tW.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_sigmoid_with_loss_matches_autograd(backend, xp, dtype, scale):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    x = (rng.normal(size=9) * scale).astype(dtype)
    t = rng.integers(0, 2, size=9)
    layer = SigmoidWithLoss()
    loss = layer.forward(xpnn.asarray(x), xpnn.asarray(t))
    dx = layer.backward(xpnn.asarray(np.asarray(1.5, dtype=dtype)))
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    tt = torch.tensor(t, dtype=torch.float64)
    y = torch.sigmoid(tx)
    # The book's loss: the picked probability plus 1e-7 under the log.
    book = -torch.mean(torch.log(torch.where(tt == 1, y, 1 - y) + 1e-7))
    close(loss, book.detach(), dtype)
    # The loss is F.binary_cross_entropy of the sigmoid up to the 1e-7, which
    # moves it by at most 1e-7 / p per sample: checked where no p is tiny.
    if scale == 1.0:
        assert abs(float(host(loss)) - float(F.binary_cross_entropy(y, tt).detach())) < 1e-5
    # The book's backward is the gradient of the loss without its 1e-7: that of
    # BCE, taken from the logits (binary_cross_entropy's log, clamped at -100,
    # gives saturated samples a gradient of 0).
    (F.binary_cross_entropy_with_logits(tx, tt) * 1.5).backward()
    close(dx, tx.grad, dtype)


def test_numpy_ids_with_torch_cpu_weights(backend, xp):
    if backend.name != "torch" or backend.is_gpu:
        pytest.skip("NumPy ids are wrapped for PyTorch CPU weights only")
    W = np.arange(12.0).reshape(4, 3)
    layer = EmbeddingDot(xpnn.asarray(W))
    out = layer.forward(np.ones((2, 3)), np.array([3, 0]))
    np.testing.assert_array_equal(host(out), [W[3].sum(), W[0].sum()])


def test_layers_sharing_a_gradient_add_into_it(backend):
    """Embedding(W, grad=dW): the owner zeroes dW once; each layer adds its rows."""
    rng = np.random.default_rng(3)
    W = xpnn.asarray(rng.standard_normal((6, 4)))
    ids = [xpnn.asarray(np.array(i, dtype=np.int64)) for i in ([0, 2, 2], [5, 2, 1])]
    douts = [xpnn.asarray(rng.standard_normal((3, 4))) for _ in ids]
    alone = []
    for idx, dout in zip(ids, douts, strict=True):
        layer = Embedding(W)
        layer.forward(idx)
        layer.backward(dout)
        alone.append(host(layer.grads[0]))
    dW = xpnn.asarray(np.full((6, 4), 7.0))  # stale values: the owner clears them
    shared = [Embedding(W, grad=dW), EmbeddingDot(W, grad=dW).embed]
    assert all(layer.grads[0] is dW for layer in shared)
    Embedding.zero_shared_grad(dW)
    for layer, idx, dout in zip(shared, ids, douts, strict=True):
        layer.forward(idx)
        layer.backward(dout)
    np.testing.assert_allclose(host(dW), alone[0] + alone[1], rtol=1e-12)
    with pytest.raises(ValueError, match=r"grad must be an array of W's shape \(6, 4\)"):
        Embedding(W, grad=xpnn.asarray(np.zeros((6, 3))))


def test_numpy_index_add_rows_is_np_add_at_bit_for_bit():
    """The flat one-index-per-number path gives np.add.at's own sums (repeats, (N, T) ids)."""
    rng = np.random.default_rng(5)
    idx = rng.zipf(1.3, size=(40, 3)) % 50  # many repeats
    rows = rng.standard_normal((40, 3, 4, 2)).astype(np.float32)
    start = rng.standard_normal((50, 4, 2)).astype(np.float32)
    want = start.copy()
    np.add.at(want, idx.reshape(-1), rows.reshape(-1, 4, 2))
    got = index_add_rows(start.copy(), idx, rows)
    assert got.tobytes() == want.tobytes()
    # A non-contiguous target (a column slice) takes np.add.at with row indices.
    wide = np.zeros((50, 6), dtype=np.float32)
    part = wide[:, 1:3]
    index_add_rows(part, idx[:, 0], rows[:, 0, 0, :])
    ref = np.zeros((50, 2), dtype=np.float32)
    np.add.at(ref, idx[:, 0], rows[:, 0, 0, :])
    assert np.array_equal(wide[:, 1:3], ref) and not wide[:, [0, 3, 4, 5]].any()

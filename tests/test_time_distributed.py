"""Vol. 2 ch. 5-6's ``TimeEmbedding``, ``TimeAffine``, ``TimeSoftmaxWithLoss``,
``TimeDropout`` and ``TimeSigmoidWithLoss`` on every backend: against a NumPy
re-implementation of the book's code, central differences (float64) and, where
PyTorch is installed, ``torch.nn.functional.cross_entropy(ignore_index=-1)``."""

from __future__ import annotations

import numpy as np
import pytest
from test_recurrent import numgrad  # central differences, shared

import xpnn
from xpnn.layers import (
    LAYERS,
    Dropout,
    TimeAffine,
    TimeDropout,
    TimeEmbedding,
    TimeSigmoidWithLoss,
    TimeSoftmaxWithLoss,
)

N, T, D, V = 2, 3, 4, 5


def arr(a, dtype="float64"):
    return xpnn.asarray(np.asarray(a), dtype=dtype)


def ids(a):
    return xpnn.asarray(np.asarray(a, dtype=np.int64))


def host(a) -> np.ndarray:
    return np.array(xpnn.to_numpy(a), dtype=np.float64, copy=True)


def close(got, want, rtol=1e-12) -> None:
    want = np.asarray(want, dtype=np.float64)
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    np.testing.assert_allclose(host(got), want, rtol=rtol, atol=rtol * scale)


def normal(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def read_on_host(backend) -> bool:
    """Whether labels live in host memory there, where they are read and checked."""
    return backend.name == "numpy" or (backend.name == "torch" and not backend.is_gpu)


# ---------------------------------------------------------------- the book's code in NumPy


def book_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    x = np.exp(x)
    x /= x.sum(axis=1, keepdims=True)
    return x


def book_time_softmax_with_loss(xs, ts, dout=1.0, ignore_label=-1):
    """The book's forward and backward, line by line."""
    n, t, v = xs.shape
    if ts.ndim == 3:
        ts = ts.argmax(axis=2)
    mask = ts != ignore_label
    xs = xs.reshape(n * t, v)
    ts = ts.reshape(n * t)
    mask = mask.reshape(n * t)
    ys = book_softmax(xs)
    ls = np.log(ys[np.arange(n * t), ts])
    ls *= mask
    loss = -np.sum(ls)
    loss /= mask.sum()
    dx = ys.copy()
    dx[np.arange(n * t), ts] -= 1
    dx *= dout
    dx /= mask.sum()
    dx *= mask[:, np.newaxis]
    return loss, dx.reshape((n, t, v))


def book_time_sigmoid_with_loss(xs, ts):
    n, t = xs.shape
    loss, dxs = 0.0, np.empty(xs.shape)
    for s in range(t):
        y = 1 / (1 + np.exp(-xs[:, s]))
        p = np.stack([1 - y, y], axis=1)
        loss += -np.sum(np.log(p[np.arange(n), ts[:, s]] + 1e-7)) / n
        dxs[:, s] = (y - ts[:, s]) * (1 / t) / n
    return loss / t, dxs


def labels_with_ignored(seed=7):
    ts = np.random.default_rng(seed).integers(0, V, size=(N, T))
    ts[0, 1] = ts[1, 2] = -1
    return ts


# ---------------------------------------------------------------- 1. forward is the book's


def test_time_embedding_and_affine_forward_are_the_books(backend):
    W = normal((V, D), 1)
    xs = np.array([[0, 3, 3], [4, 1, 0]])
    emb = TimeEmbedding(arr(W))
    close(emb.forward(ids(xs)), W[xs])
    assert len(emb.layers) == T

    Wa, b, x = normal((D, V), 2), normal((V,), 3), normal((N, T, D), 4)
    close(
        TimeAffine(arr(Wa), arr(b)).forward(arr(x)),
        (x.reshape(N * T, -1) @ Wa + b).reshape(N, T, -1),
    )


@pytest.mark.parametrize("labels", ["ids", "one-hot"])
def test_time_softmax_with_loss_is_the_books(backend, labels):
    xs = normal((N, T, V), 5) * 3
    ts = labels_with_ignored() if labels == "ids" else np.eye(V)[np.array([[0, 4, 2], [1, 1, 3]])]
    layer = TimeSoftmaxWithLoss()
    assert layer.ignore_label == -1
    t_in = ids(ts) if labels == "ids" else arr(ts)
    loss = layer.forward(arr(xs), t_in)
    want_loss, want_dx = book_time_softmax_with_loss(xs, ts, dout=2.5)
    close(loss, want_loss)
    close(layer.backward(2.5), want_dx)
    close(layer.backward(arr(2.5)), want_dx)  # a 0-d dout; ys not overwritten


def test_time_sigmoid_with_loss_is_the_books(backend):
    xs = normal((N, T), 6) * 2
    ts = np.random.default_rng(8).integers(0, 2, size=(N, T))
    layer = TimeSigmoidWithLoss()
    loss = layer.forward(arr(xs), ids(ts))
    want_loss, want_dx = book_time_sigmoid_with_loss(xs, ts)
    close(loss, want_loss)
    close(layer.backward(), want_dx)
    assert len(layer.layers) == T


# ---------------------------------------------------------------- 2. backward is the gradient


def test_time_embedding_backward_is_the_gradient(backend):
    W = normal((V, D), 1)
    xs = np.array([[0, 3, 3], [4, 3, 0]])  # repeated ids over steps and rows
    dout = normal((N, T, D), 2)
    layer = TimeEmbedding(arr(W))
    layer.forward(ids(xs))
    assert layer.backward(arr(dout)) is None
    want = numgrad(lambda: float(np.sum(W[xs] * dout)), W)
    close(layer.grads[0], want, rtol=1e-8)
    layer.backward(arr(dout))  # zeroed first: not twice the gradient
    close(layer.grads[0], want, rtol=1e-8)


def test_time_affine_backward_is_the_gradient(backend):
    W, b, x, dout = normal((D, V), 1), normal((V,), 2), normal((N, T, D), 3), normal((N, T, V), 4)
    layer = TimeAffine(arr(W), arr(b))

    def f():
        return float(np.sum(host(TimeAffine(arr(W), arr(b)).forward(arr(x))) * dout))

    layer.forward(arr(x))
    dx = layer.backward(arr(dout))
    close(dx, numgrad(f, x), rtol=1e-8)
    close(layer.grads[0], numgrad(f, W), rtol=1e-8)
    close(layer.grads[1], numgrad(f, b), rtol=1e-8)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_loss_backward_is_the_gradient(backend, kind):
    if kind == "softmax":
        x, t, cls = normal((N, T, V), 5), ids(labels_with_ignored()), TimeSoftmaxWithLoss
    else:
        t = ids(np.random.default_rng(8).integers(0, 2, size=(N, T)))
        x, cls = normal((N, T), 6), TimeSigmoidWithLoss

    def f():
        return float(host(cls().forward(arr(x), t)))

    layer = cls()
    layer.forward(arr(x), t)
    # The book's sigmoid loss has log(y + 1e-7), its gradient not: 1e-7 / y apart.
    close(layer.backward(), numgrad(f, x), rtol=1e-7 if kind == "softmax" else 2e-6)


def test_time_dropout_backward_is_the_gradient(backend):
    x, dout = normal((N, T, D), 1), normal((N, T, D), 2)
    layer = TimeDropout(0.4, seed=3)
    layer.forward(arr(x))
    layer.hold_mask = True  # the same mask for every difference

    def f():
        return float(np.sum(host(layer.forward(arr(x))) * dout))

    want = numgrad(f, x)
    layer.forward(arr(x))
    close(layer.backward(arr(dout)), want, rtol=1e-8)


# ---------------------------------------------------------------- 3. torch's cross_entropy


def test_time_softmax_with_loss_is_torch_cross_entropy(backend):
    torch = pytest.importorskip("torch")
    xs, ts = normal((N, T, V), 9) * 2, labels_with_ignored(10)
    layer = TimeSoftmaxWithLoss()
    loss = layer.forward(arr(xs), ids(ts))
    dx = layer.backward()
    x = torch.from_numpy(xs.reshape(N * T, V)).requires_grad_()
    want = torch.nn.functional.cross_entropy(x, torch.from_numpy(ts.reshape(-1)), ignore_index=-1)
    want.backward()
    close(loss, want.item(), rtol=1e-10)
    close(dx, x.grad.numpy().reshape(N, T, V), rtol=1e-10)


# ---------------------------------------------------------------- 4. ignore_label


def test_ignored_positions_count_for_nothing(backend):
    xs, ts = normal((N, T, V), 11), labels_with_ignored(12)
    ts = np.where(ts == -1, -1, ts % (V - 1))  # no label V - 1: ignored below
    layer = TimeSoftmaxWithLoss()
    loss = host(layer.forward(arr(xs), ids(ts)))
    dx = host(layer.backward())
    keep = ts != -1
    assert np.all(dx[~keep] == 0) and np.all(np.any(dx[keep] != 0, axis=1))
    # Other scores at the ignored positions change nothing.
    xs2 = xs.copy()
    xs2[~keep] = normal((int((~keep).sum()), V), 13) * 10
    again = TimeSoftmaxWithLoss()
    np.testing.assert_array_equal(host(again.forward(arr(xs2), ids(ts))), loss)
    # The mean is over the counted positions: the counted rows alone give it.
    rows = TimeSoftmaxWithLoss()
    counted = rows.forward(arr(xs[keep][None]), ids(ts[keep][None]))
    close(counted, loss, rtol=1e-12)
    # ignore_label is the attribute's: another one is honoured.
    other = TimeSoftmaxWithLoss()
    other.ignore_label = V - 1
    ts4 = np.where(keep, ts, V - 1)
    np.testing.assert_array_equal(host(other.forward(arr(xs), ids(ts4))), loss)


def test_an_all_ignored_batch_is_refused_where_read_else_nan_as_the_book(backend):
    xs = arr(normal((N, T, V), 14))
    layer = TimeSoftmaxWithLoss()
    all_ignored = ids(np.full((N, T), -1))
    if read_on_host(backend):
        with pytest.raises(ValueError, match="every label is ignore_label"):
            layer.forward(xs, all_ignored)
        assert layer.cache is None
    else:  # not read on a device: the book's 0 / 0
        with np.errstate(invalid="ignore"):  # array_api_strict computes with NumPy
            assert np.isnan(host(layer.forward(xs, all_ignored)))


# ---------------------------------------------------------------- 5. TimeDropout


def test_time_dropout_is_the_books(backend):
    x = normal((N, T, D), 1) + 3
    layer = TimeDropout(0.5, seed=42)
    assert layer.train_flg is True and layer.dropout_ratio == 0.5
    out = host(layer.forward(arr(x)))
    mask = host(layer.mask)
    assert set(np.unique(mask)) <= {0.0, 2.0} and 0 < np.count_nonzero(mask) < mask.size
    np.testing.assert_array_equal(out, x * mask)
    dout = normal((N, T, D), 2)
    np.testing.assert_array_equal(host(layer.backward(arr(dout))), dout * mask)
    # The keep pattern is Dropout's for the same seed and draw.
    ref = Dropout(0.5, seed=42)
    ref.forward(arr(x))
    np.testing.assert_array_equal(mask != 0, host(ref.mask) != 0)
    assert layer.draws == 1
    # train_flg False: identity, forward and backward; nothing drawn.
    layer.train_flg = False
    np.testing.assert_array_equal(host(layer.forward(arr(x))), x)
    np.testing.assert_array_equal(host(layer.backward(arr(dout))), dout)
    assert layer.draws == 1
    # A model's train_flg argument overrides the attribute for the call.
    np.testing.assert_array_equal(host(layer.forward(arr(x), False)), x)
    assert np.any(host(layer.forward(arr(x), True)) != x) and layer.draws == 2


def test_time_dropout_masks_are_the_same_on_every_backend(backend):
    x = np.ones((4, 5, 6))
    with xpnn.use_backend("numpy"):
        ref = TimeDropout(0.3, seed=5)
        want = [host(ref.forward(arr(x))) for _ in range(2)]
    layer = TimeDropout(0.3, seed=5)
    for w in want:
        np.testing.assert_array_equal(host(layer.forward(arr(x, "float32"))), w.astype(np.float32))
    np.testing.assert_allclose(want[0][want[0] != 0], 1 / 0.7)
    assert np.any(want[0] != want[1])


def test_time_dropout_saves_as_dropout_does():
    layer = TimeDropout(0.25, seed=9)
    assert isinstance(layer, Dropout) and LAYERS["TimeDropout"] is TimeDropout
    assert layer.config() == {"dropout_ratio": 0.25, "seed": 9}
    twin = TimeDropout.from_config(layer.config(), dtype="float32", backend=None)
    assert type(twin) is TimeDropout and twin.seed == 9 and twin.dropout_ratio == 0.25


# ---------------------------------------------------------------- 6. refusals change nothing


def snapshot(layer):
    return {k: v for k, v in vars(layer).items() if not k.startswith("_")}


@pytest.mark.parametrize(
    "make, good, bad, error",
    [
        (
            lambda: TimeEmbedding(arr(normal((V, D), 1))),
            lambda: (ids([[0, 1, 2], [3, 4, 0]]),),
            lambda: (arr([[0.0, 1.0, 2.0]]),),  # float ids
            TypeError,
        ),
        (
            lambda: TimeEmbedding(arr(normal((V, D), 1))),
            lambda: (ids([[0, 1, 2], [3, 4, 0]]),),
            lambda: (ids([0, 1]),),  # (N,), not (N, T)
            ValueError,
        ),
        (
            lambda: TimeAffine(arr(normal((D, V), 1)), arr(normal((V,), 2))),
            lambda: (arr(normal((N, T, D), 3)),),
            lambda: (arr(normal((N, T, D + 1), 3)),),
            ValueError,
        ),
        (
            lambda: TimeAffine(arr(normal((D, V), 1)), arr(normal((V,), 2))),
            lambda: (arr(normal((N, T, D), 3)),),
            lambda: (arr(normal((N, T, D), 3), "float32"),),
            TypeError,
        ),
        (
            TimeSoftmaxWithLoss,
            lambda: (arr(normal((N, T, V), 3)), ids(labels_with_ignored())),
            lambda: (arr(normal((N, T, V), 3)), ids(np.zeros((N, T + 1)))),
            ValueError,
        ),
        (
            TimeSoftmaxWithLoss,
            lambda: (arr(normal((N, T, V), 3)), ids(labels_with_ignored())),
            lambda: (arr(normal((N, T, V), 3)), arr(np.zeros((N, T)))),  # float labels
            TypeError,
        ),
        (
            TimeSigmoidWithLoss,
            lambda: (arr(normal((N, T), 3)), ids(np.ones((N, T)))),
            lambda: (arr(normal((N, T), 3)), ids(np.ones((N, T + 1)))),
            ValueError,
        ),
        (
            lambda: TimeDropout(0.5, seed=1),
            lambda: (arr(normal((N, T, D), 3)),),
            lambda: (ids(np.ones((N, T, D))),),
            TypeError,
        ),
    ],
)
def test_a_refused_input_changes_nothing(backend, make, good, bad, error):
    layer = make()
    layer.forward(*good())
    before = snapshot(layer)
    grads = [host(g) for g in layer.grads]
    with pytest.raises(error):
        layer.forward(*bad())
    after = snapshot(layer)
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] is value or after[key] == value, key
    for g, want in zip(layer.grads, grads, strict=True):
        np.testing.assert_array_equal(host(g), want)


@pytest.mark.parametrize("cls", [TimeSoftmaxWithLoss, TimeSigmoidWithLoss])
def test_out_of_range_labels_are_refused_where_read(backend, cls):
    if not read_on_host(backend):
        pytest.skip("labels are not read on a device")
    shape = (N, T, V) if cls is TimeSoftmaxWithLoss else (N, T)
    bad = np.zeros((N, T), dtype=np.int64)
    bad[1, 1] = V if cls is TimeSoftmaxWithLoss else 2
    layer = cls()
    with pytest.raises(ValueError, match="labels"):
        layer.forward(arr(normal(shape, 1)), ids(bad))
    bad[1, 1] = -2  # only ignore_label (-1) is ignored
    with pytest.raises(ValueError, match="labels"):
        layer.forward(arr(normal(shape, 1)), ids(bad))


def test_float32_is_kept(backend):
    layer = TimeAffine(arr(normal((D, V), 1), "float32"), arr(normal((V,), 2), "float32"))
    out = layer.forward(arr(normal((N, T, D), 3), "float32"))
    loss = TimeSoftmaxWithLoss()
    value = loss.forward(out, ids(labels_with_ignored()))
    dx = layer.backward(loss.backward())
    for a in (out, value, dx, *layer.grads):
        assert xpnn.to_numpy(a).dtype == np.float32

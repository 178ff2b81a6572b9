"""Vol. 2 ch. 8's ``WeightSum``, ``AttentionWeight``, ``Attention``, ``TimeAttention`` on
every backend: against the book's ``ch08/attention_layer.py`` re-typed in NumPy (its
``np.repeat`` included), central differences (float64) and, where PyTorch is
installed, a hand-written torch autograd of the same computation."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.backend.attention_ops import attention_all_steps, attention_all_steps_backward
from xpnn.layers import LAYERS, Attention, AttentionWeight, Softmax, TimeAttention, WeightSum

N, T, H = 2, 4, 3  # batch, encoder steps, hidden size
T_DEC = 3  # decoder steps


def arr(a, dtype="float64"):
    return xpnn.asarray(np.asarray(a), dtype=dtype)


def host(a) -> np.ndarray:
    """A float64 host copy."""
    return np.array(xpnn.to_numpy(a), dtype=np.float64, copy=True)


def close(got, want, rtol=1e-12) -> None:
    want = np.asarray(want, dtype=np.float64)
    np.testing.assert_allclose(host(got), want, rtol=rtol, atol=rtol * float(np.max(np.abs(want))))


def normal(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def weights(seed: int) -> np.ndarray:
    """Attention weights ``(N, T)``: positive rows summing to 1."""
    e = np.exp(normal((N, T), seed))
    return e / e.sum(axis=1, keepdims=True)


def numgrad(f, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` in the float64 host array ``a`` (in place)."""
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        keep = a[i]
        a[i] = keep + eps
        up = f()
        a[i] = keep - eps
        down = f()
        a[i] = keep
        grad[i] = (up - down) / (2 * eps)
    return grad


# ---------------------------------------------------------------- the book's code in NumPy


class BookSoftmax:  # common/layers.py
    def forward(self, x):
        x = x - x.max(axis=1, keepdims=True)
        self.out = np.exp(x) / np.sum(np.exp(x), axis=1, keepdims=True)
        return self.out

    def backward(self, dout):
        dx = self.out * dout
        sumdx = np.sum(dx, axis=1, keepdims=True)
        dx -= self.out * sumdx
        return dx


class BookWeightSum:
    def forward(self, hs, a):
        N, T, H = hs.shape
        ar = a.reshape(N, T, 1).repeat(H, axis=2)
        t = hs * ar
        c = np.sum(t, axis=1)
        self.cache = (hs, ar)
        return c

    def backward(self, dc):
        hs, ar = self.cache
        N, T, H = hs.shape
        dt = dc.reshape(N, 1, H).repeat(T, axis=1)
        dar = dt * hs
        dhs = dt * ar
        da = np.sum(dar, axis=2)
        return dhs, da


class BookAttentionWeight:
    def __init__(self):
        self.softmax = BookSoftmax()

    def forward(self, hs, h):
        N, T, H = hs.shape
        hr = h.reshape(N, 1, H).repeat(T, axis=1)
        t = hs * hr
        s = np.sum(t, axis=2)
        a = self.softmax.forward(s)
        self.cache = (hs, hr)
        return a

    def backward(self, da):
        hs, hr = self.cache
        N, T, H = hs.shape
        ds = self.softmax.backward(da)
        dt = ds.reshape(N, T, 1).repeat(H, axis=2)
        dhs = dt * hr
        dhr = dt * hs
        dh = np.sum(dhr, axis=1)
        return dhs, dh


class BookAttention:
    def __init__(self):
        self.attention_weight_layer = BookAttentionWeight()
        self.weight_sum_layer = BookWeightSum()

    def forward(self, hs, h):
        a = self.attention_weight_layer.forward(hs, h)
        out = self.weight_sum_layer.forward(hs, a)
        self.attention_weight = a
        return out

    def backward(self, dout):
        dhs0, da = self.weight_sum_layer.backward(dout)
        dhs1, dh = self.attention_weight_layer.backward(da)
        return dhs0 + dhs1, dh


class BookTimeAttention:
    def forward(self, hs_enc, hs_dec):
        _N, T, _H = hs_dec.shape
        out = np.empty_like(hs_dec)
        self.layers = []
        self.attention_weights = []
        for t in range(T):
            layer = BookAttention()
            out[:, t, :] = layer.forward(hs_enc, hs_dec[:, t, :])
            self.layers.append(layer)
            self.attention_weights.append(layer.attention_weight)
        return out

    def backward(self, dout):
        _N, T, _H = dout.shape
        dhs_enc = 0
        dhs_dec = np.empty_like(dout)
        for t in range(T):
            dhs, dh = self.layers[t].backward(dout[:, t, :])
            dhs_enc += dhs
            dhs_dec[:, t, :] = dh
        return dhs_enc, dhs_dec


# ---------------------------------------------------------------- the four layers, one table

# kind -> (xpnn class, book class, the forward's two inputs as host arrays, dout's shape)
KINDS = {
    "WeightSum": (WeightSum, BookWeightSum, lambda: (normal((N, T, H), 1), weights(2)), (N, H)),
    "AttentionWeight": (
        AttentionWeight,
        BookAttentionWeight,
        lambda: (normal((N, T, H), 1), normal((N, H), 2)),
        (N, T),
    ),
    "Attention": (
        Attention,
        BookAttention,
        lambda: (normal((N, T, H), 1), normal((N, H), 2)),
        (N, H),
    ),
    "TimeAttention": (
        TimeAttention,
        BookTimeAttention,
        lambda: (normal((N, T, H), 1), normal((N, T_DEC, H), 2)),
        (N, T_DEC, H),
    ),
}


# ---------------------------------------------------------------- 1. the book's numbers


@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_backward_are_the_books(backend, kind):
    cls, book_cls, inputs, dout_shape = KINDS[kind]
    x, y = inputs()
    dout = normal(dout_shape, 3)
    layer, book = cls(), book_cls()
    close(layer.forward(arr(x), arr(y)), book.forward(x, y))
    for got, want in zip(layer.backward(arr(dout)), book.backward(dout), strict=True):
        close(got, want)
    assert layer.params == [] and layer.grads == []


def test_float32_is_kept(backend, xp):
    hs, h = arr(normal((N, T, H), 1), "float32"), arr(normal((N, T_DEC, H), 2), "float32")
    layer = TimeAttention()
    out = layer.forward(hs, h)
    assert out.dtype == xp.float32 and tuple(out.shape) == (N, T_DEC, H)
    dhs_enc, dhs_dec = layer.backward(arr(normal((N, T_DEC, H), 3), "float32"))
    assert dhs_enc.dtype == dhs_dec.dtype == xp.float32
    assert tuple(dhs_enc.shape) == (N, T, H) and tuple(dhs_dec.shape) == (N, T_DEC, H)


# ---------------------------------------------------------------- 2. gradients


@pytest.mark.parametrize("kind", KINDS)
def test_backward_is_the_gradient(backend, kind):
    cls, book_cls, inputs, dout_shape = KINDS[kind]
    x, y = inputs()
    dout = normal(dout_shape, 3)
    layer = cls()
    layer.forward(arr(x), arr(y))
    dx, dy = layer.backward(arr(dout))

    def loss():
        return float(np.sum(book_cls().forward(x, y) * dout))

    close(dx, numgrad(loss, x), rtol=1e-7)  # dhs (dhs_enc)
    close(dy, numgrad(loss, y), rtol=1e-7)  # da, dh (dhs_dec)


def test_time_attention_sums_the_steps_encoder_gradients(backend):
    hs_enc, hs_dec = normal((N, T, H), 1), normal((N, T_DEC, H), 2)
    dout = normal((N, T_DEC, H), 3)
    layer = TimeAttention()
    layer.forward(arr(hs_enc), arr(hs_dec))
    dhs_enc, dhs_dec = layer.backward(arr(dout))
    steps = [Attention() for _ in range(T_DEC)]
    want_enc = np.zeros((N, T, H))
    for t, step in enumerate(steps):
        step.forward(arr(hs_enc), arr(hs_dec[:, t, :]))
        dhs, dh = step.backward(arr(dout[:, t, :]))
        want_enc += host(dhs)
        close(dhs_dec[:, t, :], host(dh))
    close(dhs_enc, want_enc)


@pytest.mark.parametrize("t_dec", [1, T_DEC + 2])  # 1: AttentionDecoder.generate's steps
def test_time_attention_is_the_loop_of_attention_layers(backend, t_dec):
    # The book's TimeAttention: one Attention per decoder step, run on the same backend.
    n, t_enc, h = N + 1, T + 1, H + 2
    hs_enc, hs_dec = normal((n, t_enc, h), 1), normal((n, t_dec, h), 2)
    dout = normal((n, t_dec, h), 3)
    layer = TimeAttention()
    out = layer.forward(arr(hs_enc), arr(hs_dec))
    dhs_enc, dhs_dec = layer.backward(arr(dout))
    assert tuple(out.shape) == (n, t_dec, h) and len(layer.attention_weights) == t_dec
    want_enc = np.zeros((n, t_enc, h))
    for t in range(t_dec):
        step = Attention()
        close(out[:, t, :], host(step.forward(arr(hs_enc), arr(hs_dec[:, t, :]))))
        close(layer.attention_weights[t], host(step.attention_weight))
        dhs, dh = step.backward(arr(dout[:, t, :]))
        want_enc += host(dhs)
        close(dhs_dec[:, t, :], host(dh))
        # layers[t] holds the step's weights; it ran no forward pass of its own.
        assert layer.layers[t].attention_weight is layer.attention_weights[t]
        with pytest.raises(RuntimeError, match="needs a forward pass first"):
            layer.layers[t].backward(arr(dout[:, t, :]))
    close(dhs_enc, want_enc)


def test_attention_ops_are_the_formula(backend, xp):
    hs_enc, hs_dec = normal((N, T, H), 1), normal((N, T_DEC, H), 2)
    dout = normal((N, T_DEC, H), 3)

    def formula():  # the weights and contexts, written out on the host
        s = np.einsum("nth,nsh->nst", hs_enc, hs_dec)
        e = np.exp(s - s.max(axis=2, keepdims=True))
        a = e / e.sum(axis=2, keepdims=True)
        return np.einsum("nst,nth->nsh", a, hs_enc), a

    out, a = attention_all_steps(arr(hs_enc), arr(hs_dec))
    want_out, want_a = formula()
    close(out, want_out)
    close(a, want_a)
    dhs_enc, dhs_dec = attention_all_steps_backward(arr(hs_enc), arr(hs_dec), a, arr(dout))

    def loss():
        return float(np.sum(formula()[0] * dout))

    close(dhs_enc, numgrad(loss, hs_enc), rtol=1e-7)
    close(dhs_dec, numgrad(loss, hs_dec), rtol=1e-7)
    # Every call returns new arrays: the weights kept stay valid.
    kept = host(a)
    attention_all_steps(arr(hs_enc[::-1]), arr(hs_dec[:, ::-1]))
    np.testing.assert_array_equal(host(a), kept)
    # float32 stays float32.
    out32, a32 = attention_all_steps(arr(hs_enc, "float32"), arr(hs_dec, "float32"))
    grads32 = attention_all_steps_backward(
        arr(hs_enc, "float32"), arr(hs_dec, "float32"), a32, arr(dout, "float32")
    )
    assert out32.dtype == a32.dtype == grads32[0].dtype == grads32[1].dtype == xp.float32


# ---------------------------------------------------------------- 3. torch autograd


def torch_attention(torch, hs_enc, hs_dec):
    """Dot-product attention, hand-written: ``(N, T_dec, H)`` and the weights."""
    scores = torch.einsum("nth,nsh->nst", hs_enc, hs_dec)  # (N, T_dec, T_enc)
    a = torch.softmax(scores, dim=2)
    return torch.einsum("nst,nth->nsh", a, hs_enc), a


@pytest.mark.parametrize("kind", KINDS)
def test_the_layers_are_torch_autograd(backend, kind):
    torch = pytest.importorskip("torch")
    cls, _, inputs, dout_shape = KINDS[kind]
    x, y = inputs()
    dout = normal(dout_shape, 3)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(y, dtype=torch.float64, requires_grad=True)
    if kind == "WeightSum":
        out = torch.einsum("nth,nt->nh", tx, ty)
    elif kind == "TimeAttention":
        out = torch_attention(torch, tx, ty)[0]
    else:
        c, a = torch_attention(torch, tx, ty[:, None, :])
        out = c[:, 0, :] if kind == "Attention" else a[:, 0, :]
    (out * torch.tensor(dout)).sum().backward()

    layer = cls()
    close(layer.forward(arr(x), arr(y)), out.detach().numpy(), rtol=1e-10)
    dx, dy = layer.backward(arr(dout))
    close(dx, tx.grad.numpy(), rtol=1e-10)
    close(dy, ty.grad.numpy(), rtol=1e-10)


# ---------------------------------------------------------------- 4. the weights kept


def test_time_attention_keeps_each_steps_weights_summing_to_one(backend):
    hs_enc, hs_dec = normal((N, T, H), 1), normal((N, T_DEC, H), 2)
    layer = TimeAttention()
    layer.forward(arr(hs_enc), arr(hs_dec))
    book = BookTimeAttention()
    book.forward(hs_enc, hs_dec)
    assert isinstance(layer.attention_weights, list) and len(layer.attention_weights) == T_DEC
    assert len(layer.layers) == T_DEC and all(type(s) is Attention for s in layer.layers)
    for t, a in enumerate(layer.attention_weights):
        assert tuple(a.shape) == (N, T)
        assert a is layer.layers[t].attention_weight
        close(np.sum(host(a), axis=1), np.ones(N))
        assert np.all(host(a) > 0)
        close(a, book.attention_weights[t])
    # One array per step, each the step's own: not one buffer written over.
    assert not np.allclose(host(layer.attention_weights[0]), host(layer.attention_weights[1]))


def test_attention_weight_is_a_softmax_over_t(backend):
    hs, h = normal((N, T, H), 1), normal((N, H), 2)
    layer = Attention()
    layer.forward(arr(hs), arr(h))
    a = layer.attention_weight
    assert a is layer.attention_weight_layer.softmax.out
    assert type(layer.attention_weight_layer.softmax) is Softmax
    s = np.einsum("nth,nh->nt", hs, h)
    close(a, np.exp(s) / np.exp(s).sum(axis=1, keepdims=True))


# ---------------------------------------------------------------- 5. refusals


def snapshot(layer):
    """What a refused call must leave as it was."""
    names = ("cache", "attention_weight", "layers", "attention_weights", "_dout_shape")
    state = {n: getattr(layer, n) for n in names if hasattr(layer, n)}
    for sub in ("attention_weight_layer", "weight_sum_layer"):
        if hasattr(layer, sub):
            state[sub] = (getattr(layer, sub).cache, getattr(layer, sub)._dout_shape)
    return state


def assert_same(before, after):
    assert before.keys() == after.keys()
    for name in before:
        if isinstance(before[name], list):  # layers, attention_weights: the same list
            assert after[name] is before[name] and after[name] == before[name]
        elif isinstance(before[name], tuple):
            assert len(after[name]) == len(before[name])
            assert all(a is b for a, b in zip(after[name], before[name], strict=True)), name
        else:
            assert after[name] is before[name], name


# kind -> {case: (error, x, y, a phrase of the message)}, shapes after N, T, H = 2, 4, 3
def bad_inputs(kind):
    hs = normal((N, T, H), 1)
    second = {
        "WeightSum": weights(2),
        "AttentionWeight": normal((N, H), 2),
        "Attention": normal((N, H), 2),
        "TimeAttention": normal((N, T_DEC, H), 2),
    }[kind]
    y_name = {"WeightSum": "a", "TimeAttention": "hs_dec"}.get(kind, "h")
    other_n = np.concatenate([second, second[:1]], axis=0)
    cases = {
        "other N": (ValueError, hs, other_n, str(tuple(other_n.shape))),
        "hs 2-D": (ValueError, hs[:, 0, :], second, r"\(2, 3\)"),
        "second 1-D": (ValueError, hs, second[0], str(tuple(second[0].shape))),
        "T = 0": (ValueError, hs[:, :0, :], second, r"\(2, 0, 3\)"),
        "int": (TypeError, np.ones((N, T, H), dtype=np.int64), second, "floating-point"),
        "int second": (TypeError, hs, second.astype(np.int64), f"got {y_name} of dtype int64"),
        "mixed": (TypeError, hs.astype(np.float32), second, "one dtype"),
    }
    if kind == "WeightSum":
        cases["other T"] = (ValueError, hs, weights(2)[:, :-1], r"\(2, 3\)")
    else:
        wider = np.concatenate([second, second[..., :1]], axis=-1)
        cases["other H"] = (ValueError, hs, wider, str(tuple(wider.shape)))
    if kind == "TimeAttention":
        cases["T_dec = 0"] = (ValueError, hs, second[:, :0, :], r"\(2, 0, 3\)")
    return cases


def to_backend(a):
    return arr(a, dtype=str(a.dtype))


@pytest.mark.parametrize("kind", KINDS)
def test_refused_input_changes_nothing(backend, kind):
    cls, _, inputs, dout_shape = KINDS[kind]
    layer = cls()
    with pytest.raises(RuntimeError, match=rf"^{kind}\.backward needs a forward pass first"):
        layer.backward(arr(normal(dout_shape, 3)))
    x, y = inputs()
    dout = arr(normal(dout_shape, 3))
    layer.forward(arr(x), arr(y))
    first = [host(g) for g in layer.backward(dout)]
    before = snapshot(layer)
    for case, (error, bx, by, message) in bad_inputs(kind).items():
        with pytest.raises(error, match=message) as caught:
            layer.forward(to_backend(bx), to_backend(by))
        assert str(caught.value).startswith(kind), (case, str(caught.value))
        if error is ValueError:  # both shapes named
            assert str(tuple(bx.shape)) in str(caught.value), case
            assert str(tuple(by.shape)) in str(caught.value), case
        assert_same(before, snapshot(layer))
    bad_shape = (*dout_shape[:-1], dout_shape[-1] + 1)
    with pytest.raises(ValueError, match=rf"dout of shape \({bad_shape[0]}, .*{dout_shape}"):
        layer.backward(arr(normal(bad_shape, 4)))
    with pytest.raises(TypeError, match=rf"^{kind}\.backward: dout of dtype float32"):
        layer.backward(arr(normal(dout_shape, 4), "float32"))
    assert_same(before, snapshot(layer))
    # Nothing changed: the same dout gives the same gradients.
    for again, want in zip(layer.backward(dout), first, strict=True):
        np.testing.assert_array_equal(host(again), want)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("kind", KINDS)
def test_registered_without_config(backend, kind):
    cls = KINDS[kind][0]
    assert LAYERS[kind] is cls and not cls.is_loss
    layer = cls()
    assert layer.config() == {} and cls.param_shapes({}) == {}
    again = cls.from_config({}, dtype="float32", backend=backend)
    assert type(again) is cls and again.params == [] and again.grads == []
    with pytest.raises(ValueError, match=kind):
        cls.param_shapes({"hidden_size": 3})

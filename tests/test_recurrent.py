"""Vol. 2 ch. 5-6's ``RNN``, ``TimeRNN``, ``LSTM``, ``TimeLSTM`` on every backend:
against a NumPy re-implementation of the book's formulas, central differences
(float64) and, where PyTorch is installed, ``torch.nn.LSTM`` with the same weights."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.layers import LAYERS, LSTM, RNN, TimeLSTM, TimeRNN

N, T, D, H = 2, 3, 4, 3


def arr(a, dtype="float64"):
    return xpnn.asarray(np.asarray(a), dtype=dtype)


def host(a) -> np.ndarray:
    """A float64 host copy."""
    return np.array(xpnn.to_numpy(a), dtype=np.float64, copy=True)


def close(got, want, rtol=1e-12) -> None:
    want = np.asarray(want, dtype=np.float64)
    np.testing.assert_allclose(host(got), want, rtol=rtol, atol=rtol * float(np.max(np.abs(want))))


def weights(gates: int, seed: int = 0, d: int = D, h: int = H) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((d, gates * h)) * 0.7,
        rng.standard_normal((h, gates * h)) * 0.7,
        rng.standard_normal((gates * h,)) * 0.5,
    ]


def normal(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


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


# ---------------------------------------------------------------- the book's formulas in NumPy


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def rnn_step(x, h_prev, Wx, Wh, b):
    return np.tanh(h_prev @ Wh + x @ Wx + b)


def lstm_step(x, h_prev, c_prev, Wx, Wh, b):
    h = h_prev.shape[1]
    A = x @ Wx + h_prev @ Wh + b
    f, g, i, o = A[:, :h], A[:, h : 2 * h], A[:, 2 * h : 3 * h], A[:, 3 * h :]
    f, g, i, o = sigmoid(f), np.tanh(g), sigmoid(i), sigmoid(o)
    c_next = f * c_prev + g * i
    return o * np.tanh(c_next), c_next


def time_rnn(xs, Wx, Wh, b, h=None):
    h = np.zeros((xs.shape[0], Wh.shape[0])) if h is None else h
    hs = []
    for t in range(xs.shape[1]):
        h = rnn_step(xs[:, t, :], h, Wx, Wh, b)
        hs.append(h)
    return np.stack(hs, axis=1)


def time_lstm(xs, Wx, Wh, b, h=None, c=None):
    h = np.zeros((xs.shape[0], Wh.shape[0])) if h is None else h
    c = np.zeros_like(h) if c is None else c
    hs = []
    for t in range(xs.shape[1]):
        h, c = lstm_step(xs[:, t, :], h, c, Wx, Wh, b)
        hs.append(h)
    return np.stack(hs, axis=1), h, c


# ---------------------------------------------------------------- 1. forward


def test_rnn_and_lstm_forward_are_the_books(backend):
    x, h, c = normal((N, D), 1), normal((N, H), 2), normal((N, H), 3)
    w1, w4 = weights(1), weights(4)
    close(RNN(*map(arr, w1)).forward(arr(x), arr(h)), rnn_step(x, h, *w1))
    h_next, c_next = LSTM(*map(arr, w4)).forward(arr(x), arr(h), arr(c))
    want_h, want_c = lstm_step(x, h, c, *w4)
    close(h_next, want_h)
    close(c_next, want_c)


def test_time_layers_forward_are_the_books(backend):
    xs = normal((N, T, D), 1)
    w1, w4 = weights(1), weights(4)
    rnn = TimeRNN(*map(arr, w1))
    close(rnn.forward(arr(xs)), time_rnn(xs, *w1))
    assert len(rnn.layers) == T and all(type(layer) is RNN for layer in rnn.layers)
    lstm = TimeLSTM(*map(arr, w4))
    hs, h, c = time_lstm(xs, *w4)
    close(lstm.forward(arr(xs)), hs)
    close(lstm.h, h)
    close(lstm.c, c)


@pytest.mark.parametrize("cls, gates", [(TimeRNN, 1), (TimeLSTM, 4)])
def test_float32_is_kept(backend, cls, gates):
    xs = normal((N, T, D), 1)
    w = weights(gates)
    layer = cls(*(arr(p, "float32") for p in w))
    hs = layer.forward(arr(xs, "float32"))
    assert xpnn.to_numpy(hs).dtype == np.float32
    want = time_rnn(xs, *w) if gates == 1 else time_lstm(xs, *w)[0]
    close(hs, want, rtol=1e-5)
    dxs = layer.backward(arr(normal((N, T, H), 5), "float32"))
    assert xpnn.to_numpy(dxs).dtype == np.float32
    assert all(xpnn.to_numpy(g).dtype == np.float32 for g in layer.grads)


# ---------------------------------------------------------------- 2. backward


def test_rnn_backward_is_the_gradient(backend):
    x, h, dh = normal((N, D), 1), normal((N, H), 2), normal((N, H), 4)
    w = weights(1)
    layer = RNN(*map(arr, w))
    layer.forward(arr(x), arr(h))
    dx, dh_prev = layer.backward(arr(dh))

    def loss():
        return float(np.sum(rnn_step(x, h, *w) * dh))

    close(dx, numgrad(loss, x), rtol=1e-7)
    close(dh_prev, numgrad(loss, h), rtol=1e-7)
    for grad, p in zip(layer.grads, w, strict=True):
        close(grad, numgrad(loss, p), rtol=1e-7)


def test_lstm_backward_is_the_gradient(backend):
    x, h, c = normal((N, D), 1), normal((N, H), 2), normal((N, H), 3)
    dh, dc = normal((N, H), 4), normal((N, H), 5)
    w = weights(4)
    layer = LSTM(*map(arr, w))
    layer.forward(arr(x), arr(h), arr(c))
    dx, dh_prev, dc_prev = layer.backward(arr(dh), arr(dc))

    def loss():
        h_next, c_next = lstm_step(x, h, c, *w)
        return float(np.sum(h_next * dh) + np.sum(c_next * dc))

    close(dx, numgrad(loss, x), rtol=1e-7)
    close(dh_prev, numgrad(loss, h), rtol=1e-7)
    close(dc_prev, numgrad(loss, c), rtol=1e-7)
    for grad, p in zip(layer.grads, w, strict=True):
        close(grad, numgrad(loss, p), rtol=1e-7)


@pytest.mark.parametrize("cls, gates", [(TimeRNN, 1), (TimeLSTM, 4)])
def test_time_layers_backward_is_the_gradient(backend, cls, gates):
    # From a given h0 (stateful, set_state): dh is the gradient of h0.
    xs, h0, dhs = normal((N, T, D), 1), normal((N, H), 2), normal((N, T, H), 4)
    w = weights(gates)
    layer = cls(*map(arr, w), stateful=True)
    layer.set_state(arr(h0))
    layer.forward(arr(xs))
    dxs = layer.backward(arr(dhs))

    def loss():
        hs = time_rnn(xs, *w, h=h0) if gates == 1 else time_lstm(xs, *w, h=h0)[0]
        return float(np.sum(hs * dhs))

    close(dxs, numgrad(loss, xs), rtol=1e-7)
    close(layer.dh, numgrad(loss, h0), rtol=1e-7)
    for grad, p in zip(layer.grads, w, strict=True):
        close(grad, numgrad(loss, p), rtol=1e-7)
    # The grads are the sum of the steps' (the book's), written in place.
    for i, grad in enumerate(layer.grads):
        close(grad, sum(host(step.grads[i]) for step in layer.layers))


@pytest.mark.parametrize("cls, gates", [(TimeRNN, 1), (TimeLSTM, 4)])
def test_time_layers_write_grads_in_place(backend, cls, gates):
    layer = cls(*map(arr, weights(gates)))
    held = list(layer.grads)
    layer.forward(arr(normal((N, T, D), 1)))
    layer.backward(arr(normal((N, T, H), 2)))
    assert all(a is b for a, b in zip(layer.grads, held, strict=True))
    assert all(np.any(host(g) != 0) for g in held)
    assert layer.backward(arr(normal((N, T, H), 2)), input_grad=False) is None


# ---------------------------------------------------------------- 3. torch.nn.LSTM


def book_to_torch(a: np.ndarray) -> np.ndarray:
    """Gate blocks along axis 0 from the book's f, g, i, o to torch's i, f, g, o."""
    f, g, i, o = np.split(a, 4, axis=0)
    return np.concatenate([i, f, g, o], axis=0)


def torch_to_book(a: np.ndarray) -> np.ndarray:
    i, f, g, o = np.split(a, 4, axis=0)
    return np.concatenate([f, g, i, o], axis=0)


def test_time_lstm_is_torch_lstm_stateful_over_two_calls(backend):
    torch = pytest.importorskip("torch")
    Wx, Wh, b = weights(4, seed=7)
    xs1, xs2 = normal((N, T, D), 1), normal((N, T, D), 2)
    dhs2 = normal((N, T, H), 3)

    net = torch.nn.LSTM(D, H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(book_to_torch(Wx.T)))
        net.weight_hh_l0.copy_(torch.from_numpy(book_to_torch(Wh.T)))
        net.bias_ih_l0.copy_(torch.from_numpy(book_to_torch(b)))
        net.bias_hh_l0.zero_()

    layer = TimeLSTM(arr(Wx), arr(Wh), arr(b), stateful=True)
    hs1 = layer.forward(arr(xs1))
    with torch.no_grad():
        want1, (h1, c1) = net(torch.from_numpy(xs1))
    close(hs1, want1.numpy(), rtol=1e-10)

    # The second call starts from the first's last h and c.
    hs2 = layer.forward(arr(xs2))
    dxs2 = layer.backward(arr(dhs2))
    x2 = torch.from_numpy(xs2).requires_grad_()
    h1, c1 = h1.clone().requires_grad_(), c1.clone()
    want2, _ = net(x2, (h1, c1))
    (want2 * torch.from_numpy(dhs2)).sum().backward()

    close(hs2, want2.detach().numpy(), rtol=1e-10)
    close(dxs2, x2.grad.numpy(), rtol=1e-10)
    close(layer.dh, h1.grad[0].numpy(), rtol=1e-10)
    dWx, dWh, db = layer.grads
    close(dWx, torch_to_book(net.weight_ih_l0.grad.numpy()).T, rtol=1e-10)
    close(dWh, torch_to_book(net.weight_hh_l0.grad.numpy()).T, rtol=1e-10)
    close(db, torch_to_book(net.bias_ih_l0.grad.numpy()), rtol=1e-10)


# ---------------------------------------------------------------- 4. state


@pytest.mark.parametrize("cls, gates", [(TimeRNN, 1), (TimeLSTM, 4)])
def test_state_carries_over_only_when_stateful(backend, cls, gates):
    w = weights(gates)
    xs1, xs2 = normal((N, T, D), 1), normal((N, T, D), 2)
    fresh = host(cls(*map(arr, w)).forward(arr(xs2)))

    stateful = cls(*map(arr, w), stateful=True)
    stateful.forward(arr(xs1))
    carried = host(stateful.forward(arr(xs2)))
    assert not np.allclose(carried, fresh)  # the state mattered
    if gates == 1:
        close(carried, time_rnn(xs2, *w, h=time_rnn(xs1, *w)[:, -1, :]))
    else:
        _, h1, c1 = time_lstm(xs1, *w)
        close(carried, time_lstm(xs2, *w, h=h1, c=c1)[0])

    stateful.reset_state()
    assert stateful.h is None and getattr(stateful, "c", None) is None
    close(stateful.forward(arr(xs2)), fresh)

    stateless = cls(*map(arr, w))
    stateless.forward(arr(xs1))
    close(stateless.forward(arr(xs2)), fresh)
    stateless.set_state(arr(normal((N, H), 9)))  # not stateful: ignored
    close(stateless.forward(arr(xs2)), fresh)


def test_set_state_of_time_lstm_takes_h_and_c(backend):
    w = weights(4)
    xs, h0, c0 = normal((N, T, D), 1), normal((N, H), 2), normal((N, H), 3)
    layer = TimeLSTM(*map(arr, w), stateful=True)
    layer.set_state(arr(h0), arr(c0))
    close(layer.forward(arr(xs)), time_lstm(xs, *w, h=h0, c=c0)[0])
    layer.set_state(arr(h0))  # c=None: c starts from zeros
    close(layer.forward(arr(xs)), time_lstm(xs, *w, h=h0)[0])


# ---------------------------------------------------------------- 5. refusals


def snapshot(layer):
    state = [host(g) for g in layer.grads]
    for name in ("h", "c", "dh"):
        value = getattr(layer, name, None)
        state.append(None if value is None else host(value))
    return state, getattr(layer, "layers", None)


def assert_same(before, after):
    (a, layers_a), (b, layers_b) = before, after
    assert layers_a is layers_b
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            assert x is y
        else:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("cls, gates", [(TimeRNN, 1), (TimeLSTM, 4)])
def test_refused_input_changes_nothing(backend, cls, gates):
    layer = cls(*map(arr, weights(gates)), stateful=True)
    with pytest.raises(RuntimeError, match=rf"^{cls.__name__}\.backward needs a forward pass"):
        layer.backward(arr(normal((N, T, H), 1)))
    assert layer.h is None and layer.layers is None and layer.dh is None
    assert all(not np.any(host(g)) for g in layer.grads)

    layer.forward(arr(normal((N, T, D), 1)))
    layer.backward(arr(normal((N, T, H), 2)))
    before = snapshot(layer)
    bad = {
        "float32": (TypeError, arr(normal((N, T, D), 1), "float32"), "W is float64, x is float32"),
        "int": (TypeError, arr(np.ones((N, T, D)), "int64"), "floating-point"),
        "2-D": (ValueError, arr(normal((N, D), 1)), r"\(2, 4\)"),
        "wrong D": (ValueError, arr(normal((N, T, D + 1), 1)), r"\(2, 3, 5\)"),
        "T = 0": (ValueError, arr(np.zeros((N, 0, D))), r"T > 0"),
        "other N": (
            ValueError,
            arr(normal((N + 1, T, D), 1)),
            r"state h must be of shape \(3, 3\)",
        ),
    }
    for error, xs, message in bad.values():
        with pytest.raises(error, match=message) as caught:
            layer.forward(xs)
        assert cls.__name__ in str(caught.value)
        assert_same(before, snapshot(layer))
    with pytest.raises(TypeError, match=rf"{cls.__name__}\.backward: dout of dtype float32"):
        layer.backward(arr(normal((N, T, H), 2), "float32"))
    with pytest.raises(ValueError, match=r"dout of shape \(2, 3, 4\)"):
        layer.backward(arr(normal((N, T, H + 1), 2)))
    assert_same(before, snapshot(layer))


def test_cells_refuse_states_of_another_shape(backend):
    x, h = arr(normal((N, D), 1)), arr(normal((N + 1, H), 2))
    with pytest.raises(ValueError, match=r"RNN: h_prev must be of shape \(2, 3\)"):
        RNN(*map(arr, weights(1))).forward(x, h)
    lstm = LSTM(*map(arr, weights(4)))
    with pytest.raises(ValueError, match=r"LSTM: c_prev must be of shape \(2, 3\)"):
        lstm.forward(x, arr(normal((N, H), 2)), h)
    assert lstm.cache is None


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("cls, gates", [(RNN, 1), (LSTM, 4), (TimeRNN, 1), (TimeLSTM, 4)])
def test_config_round_trip(backend, cls, gates):
    assert LAYERS[cls.__name__] is cls and not cls.is_loss
    w = weights(gates)
    timed = cls in (TimeRNN, TimeLSTM)
    layer = cls(*map(arr, w), stateful=True) if timed else cls(*map(arr, w))
    config = layer.config()
    want = {"input_size": D, "hidden_size": H, **({"stateful": True} if timed else {})}
    assert config == want
    assert cls.param_shapes(config) == {
        "Wx": (D, gates * H),
        "Wh": (H, gates * H),
        "b": (gates * H,),
    }
    again = cls.from_config(config, dtype="float32", backend=backend)
    assert [tuple(p.shape) for p in again.params] == [p.shape for p in w]
    assert again.config() == config
    if timed:
        assert cls.output_sample_shape(config, (T, D)) == (T, H)
        with pytest.raises(ValueError, match=cls.__name__):
            cls.output_sample_shape(config, (T, D + 1))
        with pytest.raises(ValueError, match="'stateful' must be a bool"):
            cls.param_shapes({**config, "stateful": 1})

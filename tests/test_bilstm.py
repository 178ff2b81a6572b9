"""Vol. 2 ch. 6's ``TimeBiLSTM`` on every backend: against the book's composition
of two LSTMs in NumPy, central differences (float64) and, where PyTorch is
installed, ``torch.nn.LSTM(bidirectional=True)`` with the same weights."""

from __future__ import annotations

import numpy as np
import pytest
from test_recurrent import (  # the helpers of the recurrent layers' tests, shared
    D,
    H,
    N,
    T,
    arr,
    book_to_torch,
    close,
    host,
    normal,
    numgrad,
    time_lstm,
    torch_to_book,
    weights,
)

import xpnn
from xpnn.layers import LAYERS, TimeBiLSTM, TimeLSTM


def both(seed: int = 0) -> list[np.ndarray]:
    """Wx1, Wh1, b1 (the forward direction), Wx2, Wh2, b2 (the backward one)."""
    return weights(4, seed=seed) + weights(4, seed=seed + 100)


def bilstm(xs, w, h1=None, c1=None, h2=None, c2=None):
    """The book's TimeBiLSTM.forward: xs forward, xs[:, ::-1] backward, concatenated."""
    o1, *_ = time_lstm(xs, *w[:3], h=h1, c=c1)
    o2, *_ = time_lstm(xs[:, ::-1], *w[3:], h=h2, c=c2)
    return np.concatenate((o1, o2[:, ::-1]), axis=2)


# ---------------------------------------------------------------- 1. forward


def test_forward_is_the_books(backend):
    xs = normal((N, T, D), 1)
    w = both()
    layer = TimeBiLSTM(*map(arr, w))
    hs = layer.forward(arr(xs))
    assert tuple(hs.shape) == (N, T, 2 * H)
    close(hs, bilstm(xs, w))
    # The two directions really differ (so a swap would be seen).
    assert not np.allclose(host(hs)[:, :, :H], host(hs)[:, :, H:])
    assert type(layer.forward_lstm) is TimeLSTM and type(layer.backward_lstm) is TimeLSTM


def test_float32_is_kept(backend):
    xs = normal((N, T, D), 1)
    w = both()
    layer = TimeBiLSTM(*(arr(p, "float32") for p in w))
    hs = layer.forward(arr(xs, "float32"))
    assert xpnn.to_numpy(hs).dtype == np.float32
    close(hs, bilstm(xs, w), rtol=1e-5)
    dxs = layer.backward(arr(normal((N, T, 2 * H), 5), "float32"))
    assert xpnn.to_numpy(dxs).dtype == np.float32
    assert all(xpnn.to_numpy(g).dtype == np.float32 for g in layer.grads)


# ---------------------------------------------------------------- 2. backward


def test_backward_is_the_gradient(backend):
    # From given states of both directions: each direction's dh is its h0's gradient.
    xs, dhs = normal((N, T, D), 1), normal((N, T, 2 * H), 4)
    h1, c1, h2, c2 = (normal((N, H), s) for s in (5, 6, 7, 8))
    w = both()
    layer = TimeBiLSTM(*map(arr, w), stateful=True)
    layer.forward_lstm.set_state(arr(h1), arr(c1))
    layer.backward_lstm.set_state(arr(h2), arr(c2))
    layer.forward(arr(xs))
    dxs = layer.backward(arr(dhs))

    def loss():
        return float(np.sum(bilstm(xs, w, h1, c1, h2, c2) * dhs))

    close(dxs, numgrad(loss, xs), rtol=1e-7)
    close(layer.forward_lstm.dh, numgrad(loss, h1), rtol=1e-7)
    close(layer.backward_lstm.dh, numgrad(loss, h2), rtol=1e-7)
    for grad, p in zip(layer.grads, w, strict=True):  # dWx1, dWh1, db1, dWx2, dWh2, db2
        close(grad, numgrad(loss, p), rtol=1e-7)


def test_params_and_grads_are_the_two_layers_arrays_written_in_place(backend):
    layer = TimeBiLSTM(*map(arr, both()))
    inner = (layer.forward_lstm, layer.backward_lstm)
    joined = [p for m in inner for p in m.params]
    assert all(a is b for a, b in zip(layer.params, joined, strict=True))
    held = list(layer.grads)
    assert all(a is b for a, b in zip(held, [g for m in inner for g in m.grads], strict=True))
    layer.forward(arr(normal((N, T, D), 1)))
    layer.backward(arr(normal((N, T, 2 * H), 2)))
    assert all(a is b for a, b in zip(layer.grads, held, strict=True))
    assert all(np.any(host(g) != 0) for g in held)
    assert layer.backward(arr(normal((N, T, 2 * H), 2)), input_grad=False) is None


# ---------------------------------------------------------------- 3. torch.nn.LSTM


def test_is_torch_bidirectional_lstm_stateful_over_two_calls(backend):
    torch = pytest.importorskip("torch")
    w = both(seed=7)
    xs1, xs2 = normal((N, T, D), 1), normal((N, T, D), 2)
    dhs2 = normal((N, T, 2 * H), 3)

    net = torch.nn.LSTM(D, H, batch_first=True, bidirectional=True, dtype=torch.float64)
    names = {"": w[:3], "_reverse": w[3:]}  # torch's suffix of each direction
    with torch.no_grad():
        for suffix, (Wx, Wh, b) in names.items():
            getattr(net, f"weight_ih_l0{suffix}").copy_(torch.from_numpy(book_to_torch(Wx.T)))
            getattr(net, f"weight_hh_l0{suffix}").copy_(torch.from_numpy(book_to_torch(Wh.T)))
            getattr(net, f"bias_ih_l0{suffix}").copy_(torch.from_numpy(book_to_torch(b)))
            getattr(net, f"bias_hh_l0{suffix}").zero_()

    layer = TimeBiLSTM(*map(arr, w), stateful=True)
    hs1 = layer.forward(arr(xs1))
    with torch.no_grad():
        want1, (h1, c1) = net(torch.from_numpy(xs1))
    close(hs1, want1.numpy(), rtol=1e-10)

    # The second call starts each direction from the first's last h and c
    # (torch's h_n: the backward direction's is the one after step 0).
    hs2 = layer.forward(arr(xs2))
    dxs2 = layer.backward(arr(dhs2))
    x2 = torch.from_numpy(xs2).requires_grad_()
    h1, c1 = h1.clone().requires_grad_(), c1.clone()
    want2, _ = net(x2, (h1, c1))
    (want2 * torch.from_numpy(dhs2)).sum().backward()

    close(hs2, want2.detach().numpy(), rtol=1e-10)
    close(dxs2, x2.grad.numpy(), rtol=1e-10)
    close(layer.forward_lstm.dh, h1.grad[0].numpy(), rtol=1e-10)
    close(layer.backward_lstm.dh, h1.grad[1].numpy(), rtol=1e-10)
    for i, suffix in enumerate(names):
        dWx, dWh, db = layer.grads[3 * i : 3 * i + 3]
        close(dWx, torch_to_book(getattr(net, f"weight_ih_l0{suffix}").grad.numpy()).T, 1e-10)
        close(dWh, torch_to_book(getattr(net, f"weight_hh_l0{suffix}").grad.numpy()).T, 1e-10)
        close(db, torch_to_book(getattr(net, f"bias_ih_l0{suffix}").grad.numpy()), 1e-10)


# ---------------------------------------------------------------- 4. state


def test_state_carries_over_only_when_stateful(backend):
    w = both()
    xs1, xs2 = normal((N, T, D), 1), normal((N, T, D), 2)
    fresh = host(TimeBiLSTM(*map(arr, w)).forward(arr(xs2)))

    stateful = TimeBiLSTM(*map(arr, w), stateful=True)
    stateful.forward(arr(xs1))
    carried = host(stateful.forward(arr(xs2)))
    assert not np.allclose(carried, fresh)  # the state mattered
    _, h1, c1 = time_lstm(xs1, *w[:3])
    _, h2, c2 = time_lstm(xs1[:, ::-1], *w[3:])
    close(carried, bilstm(xs2, w, h1, c1, h2, c2))

    stateful.reset_state()
    assert all(m.h is None and m.c is None for m in (stateful.forward_lstm, stateful.backward_lstm))
    close(stateful.forward(arr(xs2)), fresh)

    stateless = TimeBiLSTM(*map(arr, w))
    stateless.forward(arr(xs1))
    close(stateless.forward(arr(xs2)), fresh)


# ---------------------------------------------------------------- 5. refusals


def state_of(layer):
    """Everything a refused call must leave as it was, on the host."""
    out = [host(g) for g in layer.grads]
    for m in (layer.forward_lstm, layer.backward_lstm):
        out += [None if getattr(m, s) is None else host(getattr(m, s)) for s in ("h", "c", "dh")]
        out.append(m.layers)
    return out


def assert_unchanged(before, after):
    for a, b in zip(before, after, strict=True):
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a is b


def test_refused_input_changes_nothing(backend):
    layer = TimeBiLSTM(*map(arr, both()), stateful=True)
    with pytest.raises(RuntimeError, match=r"^TimeBiLSTM\.backward needs a forward pass"):
        layer.backward(arr(normal((N, T, 2 * H), 1)))

    layer.forward(arr(normal((N, T, D), 1)))
    layer.backward(arr(normal((N, T, 2 * H), 2)))
    before = state_of(layer)
    bad = {
        "float32": (TypeError, arr(normal((N, T, D), 1), "float32"), "W is float64, x is float32"),
        "int": (TypeError, arr(np.ones((N, T, D)), "int64"), "floating-point"),
        "2-D": (ValueError, arr(normal((N, D), 1)), r"\(2, 4\)"),
        "wrong D": (ValueError, arr(normal((N, T, D + 1), 1)), r"\(2, 3, 5\)"),
        "T = 0": (ValueError, arr(np.zeros((N, 0, D))), r"T > 0"),
        "other N": (
            ValueError,
            arr(normal((N + 1, T, D), 1)),
            r"state forward_lstm\.h must be of shape \(3, 3\)",
        ),
    }
    for error, xs, message in bad.values():
        with pytest.raises(error, match=message) as caught:
            layer.forward(xs)
        assert "TimeBiLSTM" in str(caught.value)
        assert_unchanged(before, state_of(layer))
    with pytest.raises(TypeError, match=r"TimeBiLSTM\.backward: dout of dtype float32"):
        layer.backward(arr(normal((N, T, 2 * H), 2), "float32"))
    with pytest.raises(ValueError, match=r"dout of shape \(2, 3, 7\).*\(2, 3, 6\)"):
        layer.backward(arr(normal((N, T, 2 * H + 1), 2)))
    with pytest.raises(ValueError, match=r"dout of shape \(2, 3, 3\).*\(2, 3, 6\)"):
        layer.backward(arr(normal((N, T, H), 2)))  # one direction's width
    assert_unchanged(before, state_of(layer))


def test_the_backward_directions_state_is_checked_before_either_direction_runs(backend):
    # Only the backward LSTM's state misfits: the forward one must not run first.
    layer = TimeBiLSTM(*map(arr, both()), stateful=True)
    layer.forward(arr(normal((N, T, D), 1)))
    layer.backward_lstm.set_state(arr(normal((N + 1, H), 2)), arr(normal((N + 1, H), 3)))
    before = state_of(layer)
    with pytest.raises(ValueError, match=r"TimeBiLSTM: the state backward_lstm\.h .*\(2, 3\)"):
        layer.forward(arr(normal((N, T, D), 4)))
    assert_unchanged(before, state_of(layer))


def test_directions_of_another_shape_or_dtype_are_refused(backend):
    w = both()
    wide = weights(4, h=H + 1)  # the backward direction with H + 1: dhs could not be split
    with pytest.raises(ValueError, match=r"same shapes for both directions.*\(4, 16\)"):
        TimeBiLSTM(*map(arr, w[:3] + wide))
    with pytest.raises(ValueError, match=r"got shapes \(4, 9\)"):
        TimeBiLSTM(*map(arr, weights(3) + weights(3)))  # GRU-shaped weights
    with pytest.raises(ValueError, match=r"one dtype, got float64, .*float32"):
        TimeBiLSTM(*map(arr, w[:5]), arr(w[5], "float32"))


# ---------------------------------------------------------------- config


def test_config_round_trip(backend):
    assert LAYERS["TimeBiLSTM"] is TimeBiLSTM and not TimeBiLSTM.is_loss
    w = both()
    layer = TimeBiLSTM(*map(arr, w), stateful=True)
    config = layer.config()
    assert config == {"input_size": D, "hidden_size": H, "stateful": True}
    one = {"Wx": (D, 4 * H), "Wh": (H, 4 * H), "b": (4 * H,)}
    assert TimeBiLSTM.param_shapes(config) == {
        f"{name}{i}": shape for i in (1, 2) for name, shape in one.items()
    }
    assert list(TimeBiLSTM.param_shapes(config)) == list(TimeBiLSTM.param_names)
    again = TimeBiLSTM.from_config(config, dtype="float32", backend=backend)
    assert [tuple(p.shape) for p in again.params] == [p.shape for p in w]
    assert again.config() == config and again.backward_lstm.stateful
    assert TimeBiLSTM.output_sample_shape(config, (T, D)) == (T, 2 * H)
    with pytest.raises(ValueError, match="TimeBiLSTM"):
        TimeBiLSTM.output_sample_shape(config, (T, D + 1))
    with pytest.raises(ValueError, match="'stateful' must be a bool"):
        TimeBiLSTM.param_shapes({**config, "stateful": 1})

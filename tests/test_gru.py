"""Vol. 2 ch. 6's ``GRU`` and ``TimeGRU`` on every backend: against a NumPy
re-implementation of the book's formulas, central differences (float64) and,
where PyTorch is installed, a hand-written ``torch.autograd`` of the same formulas.

Not ``torch.nn.GRU``: the book applies the reset gate before the product,
``tanh(x @ Wxh + (r * h_prev) @ Whh + bh)``, PyTorch after it,
``tanh(W_in x + b_in + r * (W_hn h + b_hn))``; the two differ (checked below)."""

from __future__ import annotations

import numpy as np
import pytest
from test_recurrent import (  # the helpers of the recurrent layers' tests, shared
    D,
    H,
    N,
    T,
    arr,
    assert_same,
    close,
    host,
    normal,
    numgrad,
    sigmoid,
    snapshot,
    weights,
)

import xpnn
from xpnn.layers import GRU, LAYERS, TimeGRU

# ---------------------------------------------------------------- the book's formulas in NumPy


def gru_step(x, h_prev, Wx, Wh, b):
    """The book's GRU.forward: blocks z, r, h_hat; r multiplies h_prev before Whh."""
    h = Wh.shape[0]
    Wxz, Wxr, Wxh = Wx[:, :h], Wx[:, h : 2 * h], Wx[:, 2 * h :]
    Whz, Whr, Whh = Wh[:, :h], Wh[:, h : 2 * h], Wh[:, 2 * h :]
    bz, br, bh = b[:h], b[h : 2 * h], b[2 * h :]
    z = sigmoid(x @ Wxz + h_prev @ Whz + bz)
    r = sigmoid(x @ Wxr + h_prev @ Whr + br)
    h_hat = np.tanh(x @ Wxh + (r * h_prev) @ Whh + bh)
    return (1 - z) * h_prev + z * h_hat


def time_gru(xs, Wx, Wh, b, h=None):
    h = np.zeros((xs.shape[0], Wh.shape[0])) if h is None else h
    hs = []
    for t in range(xs.shape[1]):
        h = gru_step(xs[:, t, :], h, Wx, Wh, b)
        hs.append(h)
    return np.stack(hs, axis=1)


# ---------------------------------------------------------------- 1. forward


def test_gru_forward_is_the_books(backend):
    x, h = normal((N, D), 1), normal((N, H), 2)
    w = weights(3)
    close(GRU(*map(arr, w)).forward(arr(x), arr(h)), gru_step(x, h, *w))


def test_time_gru_forward_is_the_books(backend):
    xs = normal((N, T, D), 1)
    w = weights(3)
    layer = TimeGRU(*map(arr, w))
    hs = time_gru(xs, *w)
    close(layer.forward(arr(xs)), hs)
    close(layer.h, hs[:, -1, :])
    assert len(layer.layers) == T and all(type(step) is GRU for step in layer.layers)


def test_float32_is_kept(backend):
    xs = normal((N, T, D), 1)
    w = weights(3)
    layer = TimeGRU(*(arr(p, "float32") for p in w))
    hs = layer.forward(arr(xs, "float32"))
    assert xpnn.to_numpy(hs).dtype == np.float32
    close(hs, time_gru(xs, *w), rtol=1e-5)
    dxs = layer.backward(arr(normal((N, T, H), 5), "float32"))
    assert xpnn.to_numpy(dxs).dtype == np.float32
    assert all(xpnn.to_numpy(g).dtype == np.float32 for g in layer.grads)


# ---------------------------------------------------------------- 2. backward


def test_gru_backward_is_the_gradient(backend):
    x, h, dh = normal((N, D), 1), normal((N, H), 2), normal((N, H), 4)
    w = weights(3)
    layer = GRU(*map(arr, w))
    layer.forward(arr(x), arr(h))
    dx, dh_prev = layer.backward(arr(dh))

    def loss():
        return float(np.sum(gru_step(x, h, *w) * dh))

    close(dx, numgrad(loss, x), rtol=1e-7)
    close(dh_prev, numgrad(loss, h), rtol=1e-7)
    for grad, p in zip(layer.grads, w, strict=True):  # dWx, dWh, db
        close(grad, numgrad(loss, p), rtol=1e-7)


def test_time_gru_backward_is_the_gradient(backend):
    # From a given h0 (stateful, set_state): dh is the gradient of h0.
    xs, h0, dhs = normal((N, T, D), 1), normal((N, H), 2), normal((N, T, H), 4)
    w = weights(3)
    layer = TimeGRU(*map(arr, w), stateful=True)
    layer.set_state(arr(h0))
    layer.forward(arr(xs))
    dxs = layer.backward(arr(dhs))

    def loss():
        return float(np.sum(time_gru(xs, *w, h=h0) * dhs))

    close(dxs, numgrad(loss, xs), rtol=1e-7)
    close(layer.dh, numgrad(loss, h0), rtol=1e-7)
    for grad, p in zip(layer.grads, w, strict=True):
        close(grad, numgrad(loss, p), rtol=1e-7)
    # The grads are the sum of the steps' (the book's), written in place.
    for i, grad in enumerate(layer.grads):
        close(grad, sum(host(step.grads[i]) for step in layer.layers))


def test_time_gru_writes_grads_in_place(backend):
    layer = TimeGRU(*map(arr, weights(3)))
    held = list(layer.grads)
    layer.forward(arr(normal((N, T, D), 1)))
    layer.backward(arr(normal((N, T, H), 2)))
    assert all(a is b for a, b in zip(layer.grads, held, strict=True))
    assert all(np.any(host(g) != 0) for g in held)
    assert layer.backward(arr(normal((N, T, H), 2)), input_grad=False) is None


# ---------------------------------------------------------------- 3. torch.autograd


def torch_time_gru(torch, xs, Wx, Wh, b, h):
    """The book's formulas in PyTorch, differentiated by autograd."""
    hh = Wh.shape[0]
    hs = []
    for t in range(xs.shape[1]):
        x = xs[:, t, :]
        z = torch.sigmoid(x @ Wx[:, :hh] + h @ Wh[:, :hh] + b[:hh])
        r = torch.sigmoid(x @ Wx[:, hh : 2 * hh] + h @ Wh[:, hh : 2 * hh] + b[hh : 2 * hh])
        h_hat = torch.tanh(x @ Wx[:, 2 * hh :] + (r * h) @ Wh[:, 2 * hh :] + b[2 * hh :])
        h = (1 - z) * h + z * h_hat
        hs.append(h)
    return torch.stack(hs, dim=1)


def test_time_gru_is_torch_autograd_of_the_books_formula_stateful_over_two_calls(backend):
    torch = pytest.importorskip("torch")
    w = weights(3, seed=7)
    xs1, xs2, dhs2 = normal((N, T, D), 1), normal((N, T, D), 2), normal((N, T, H), 3)
    Wx, Wh, b = (torch.from_numpy(p.copy()).requires_grad_() for p in w)

    layer = TimeGRU(*map(arr, w), stateful=True)
    with torch.no_grad():
        want1 = torch_time_gru(torch, torch.from_numpy(xs1), Wx, Wh, b, torch.zeros(N, H).double())
    close(layer.forward(arr(xs1)), want1.numpy(), rtol=1e-10)

    # The second call starts from the first's last h.
    hs2 = layer.forward(arr(xs2))
    dxs2 = layer.backward(arr(dhs2))
    x2 = torch.from_numpy(xs2).requires_grad_()
    h1 = want1[:, -1, :].clone().requires_grad_()
    want2 = torch_time_gru(torch, x2, Wx, Wh, b, h1)
    (want2 * torch.from_numpy(dhs2)).sum().backward()

    close(hs2, want2.detach().numpy(), rtol=1e-10)
    close(dxs2, x2.grad.numpy(), rtol=1e-10)
    close(layer.dh, h1.grad.numpy(), rtol=1e-10)
    for grad, p in zip(layer.grads, (Wx, Wh, b), strict=True):
        close(grad, p.grad.numpy(), rtol=1e-10)


def test_torch_nn_gru_is_another_formula(backend):
    # nn.GRU loaded with the same weights differs from the book's GRU only by
    # where r is applied: set r to 1 and they agree. The map: gate order r, z, n;
    # weights transposed; the candidate's bias in b_in, b_hn = 0; and z negated,
    # since PyTorch keeps z * h_prev where the book keeps (1 - z) * h_prev
    # (1 - sigmoid(a) = sigmoid(-a)).
    torch = pytest.importorskip("torch")
    Wx, Wh, b = weights(3, seed=7)
    xs = normal((N, T, D), 1)

    def to_torch(a):  # blocks z, r, h_hat along axis 0 -> r, -z, n
        z, r, n = np.split(a, 3, axis=0)
        return torch.from_numpy(np.concatenate([r, -z, n], axis=0))

    def nn_gru(b_in):
        net = torch.nn.GRU(D, H, batch_first=True, dtype=torch.float64)
        with torch.no_grad():
            net.weight_ih_l0.copy_(to_torch(Wx.T))
            net.weight_hh_l0.copy_(to_torch(Wh.T))
            net.bias_ih_l0.copy_(to_torch(b_in))
            net.bias_hh_l0.zero_()
            return net(torch.from_numpy(xs))[0].numpy()

    ours = host(TimeGRU(*map(arr, (Wx, Wh, b))).forward(arr(xs)))
    assert not np.allclose(ours, nn_gru(b), rtol=1e-3, atol=1e-3)
    # With r = 1 (a huge reset-gate bias) r * (h @ Whh) is (r * h) @ Whh.
    b1 = b.copy()
    b1[H : 2 * H] = 1e3
    ours1 = host(TimeGRU(*map(arr, (Wx, Wh, b1))).forward(arr(xs)))
    np.testing.assert_allclose(ours1, nn_gru(b1), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- 4. state


def test_state_carries_over_only_when_stateful(backend):
    w = weights(3)
    xs1, xs2 = normal((N, T, D), 1), normal((N, T, D), 2)
    fresh = host(TimeGRU(*map(arr, w)).forward(arr(xs2)))

    stateful = TimeGRU(*map(arr, w), stateful=True)
    stateful.forward(arr(xs1))
    carried = host(stateful.forward(arr(xs2)))
    assert not np.allclose(carried, fresh)  # the state mattered
    close(carried, time_gru(xs2, *w, h=time_gru(xs1, *w)[:, -1, :]))

    stateful.reset_state()
    assert stateful.h is None
    close(stateful.forward(arr(xs2)), fresh)

    h0 = normal((N, H), 9)
    stateful.set_state(arr(h0))
    close(stateful.forward(arr(xs2)), time_gru(xs2, *w, h=h0))

    stateless = TimeGRU(*map(arr, w))
    stateless.forward(arr(xs1))
    close(stateless.forward(arr(xs2)), fresh)
    stateless.set_state(arr(h0))  # not stateful: ignored
    close(stateless.forward(arr(xs2)), fresh)


# ---------------------------------------------------------------- 5. refusals


def test_refused_input_changes_nothing(backend):
    layer = TimeGRU(*map(arr, weights(3)), stateful=True)
    with pytest.raises(RuntimeError, match=r"^TimeGRU\.backward needs a forward pass"):
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
        assert "TimeGRU" in str(caught.value)
        assert_same(before, snapshot(layer))
    with pytest.raises(TypeError, match=r"TimeGRU\.backward: dout of dtype float32"):
        layer.backward(arr(normal((N, T, H), 2), "float32"))
    with pytest.raises(ValueError, match=r"dout of shape \(2, 3, 4\)"):
        layer.backward(arr(normal((N, T, H + 1), 2)))
    assert_same(before, snapshot(layer))


def test_cell_refuses_states_of_another_shape(backend):
    gru = GRU(*map(arr, weights(3)))
    with pytest.raises(ValueError, match=r"GRU: h_prev must be of shape \(2, 3\)"):
        gru.forward(arr(normal((N, D), 1)), arr(normal((N + 1, H), 2)))
    with pytest.raises(ValueError, match=r"GRU takes x \(N, 4\).*got shape \(2, 5\)"):
        gru.forward(arr(normal((N, D + 1), 1)), arr(normal((N, H), 2)))
    assert gru.cache is None


@pytest.mark.parametrize("cls", [GRU, TimeGRU])
def test_weights_of_another_layout_are_refused(backend, cls):
    Wx, Wh, b = weights(3)
    lstm = weights(4)  # (D, 4H) blocks: would be cut wrongly at H, 2H
    with pytest.raises(ValueError, match=r"got shapes \(4, 12\), \(3, 12\) and \(12,\)"):
        cls(*map(arr, lstm))
    with pytest.raises(ValueError, match=r"got shapes \(4, 9\), \(3, 9\) and \(12,\)"):
        cls(arr(Wx), arr(Wh), arr(lstm[2]))
    with pytest.raises(ValueError, match=r"one dtype, got float64, float32 and float64"):
        cls(arr(Wx), arr(Wh, "float32"), arr(b))


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("cls", [GRU, TimeGRU])
def test_config_round_trip(backend, cls):
    assert LAYERS[cls.__name__] is cls and not cls.is_loss
    w = weights(3)
    timed = cls is TimeGRU
    layer = cls(*map(arr, w), stateful=True) if timed else cls(*map(arr, w))
    config = layer.config()
    assert config == {"input_size": D, "hidden_size": H, **({"stateful": True} if timed else {})}
    assert cls.param_shapes(config) == {"Wx": (D, 3 * H), "Wh": (H, 3 * H), "b": (3 * H,)}
    again = cls.from_config(config, dtype="float32", backend=backend)
    assert [tuple(p.shape) for p in again.params] == [p.shape for p in w]
    assert again.config() == config
    if timed:
        assert cls.output_sample_shape(config, (T, D)) == (T, H)
        with pytest.raises(ValueError, match="TimeGRU"):
            cls.output_sample_shape(config, (T, D + 1))
        with pytest.raises(ValueError, match="'stateful' must be a bool"):
            cls.param_shapes({**config, "stateful": 1})

"""The RNN language models' loss and every gradient against PyTorch autograd.

The same computation written again in ``torch`` (float64) from the model's
weights: the embedding as a row lookup, each LSTM from its one ``Wx``,
``Wh``, ``b`` with the book's gate order f, g, i, o, dropout as the
multiplication by the very masks xpnn drew (read from the ``TimeDropout``
layers after forward, moved to the host with ``xpnn.to_numpy``), the tied
affine ``embed_W.T``, and the mean cross-entropy over ``N * T``. Autograd
gives each gradient; the tied weight's is the sum of its two uses. Two
consecutive batches, the hidden state carried as truncated BPTT carries it
(the torch side detaches it between batches), on every backend.
"""

from __future__ import annotations

import numpy as np
import pytest
from _model_oracles import torch_lstm

import xpnn
from xpnn.models import BetterRnnlm, Rnnlm, SimpleRnnlm

V, D, H, N, T = 11, 5, 4, 3, 4
RATIO = 0.4


def host(a) -> np.ndarray:
    return np.array(xpnn.to_numpy(a), dtype=np.float64, copy=True)


def build(cls):
    """A float64 model with spread weights (scale ~0.5): no gradient near zero."""
    if cls is BetterRnnlm:  # weight tying: wordvec_size == hidden_size
        model = BetterRnnlm(V, D, D, RATIO, seed=3, dtype="float64")
    else:
        model = cls(V, D, H, seed=3, dtype="float64")
    rng = np.random.default_rng(11)
    model.params = [
        xpnn.asarray(rng.standard_normal(tuple(p.shape)) * 0.5, dtype=p.dtype) for p in model.params
    ]
    return model


def batches(count=2):
    rng = np.random.default_rng(5)
    return [
        (rng.integers(0, V, size=(N, T)), rng.integers(0, V, size=(N, T))) for _ in range(count)
    ]


# ---------------------------------------------------------------- the reference in torch


def rnn(torch, xs, Wx, Wh, b, h):
    """The book's RNN over ``xs`` (N, T, D): ``tanh(h_prev @ Wh + x @ Wx + b)``."""
    hs = []
    for t in range(xs.shape[1]):
        h = torch.tanh(h @ Wh + xs[:, t, :] @ Wx + b)
        hs.append(h)
    return torch.stack(hs, dim=1), h


def mean_cross_entropy(torch, scores, ts):
    """The mean over ``N * T`` rows of ``-log softmax(scores)[t]``."""
    rows = scores.reshape(-1, scores.shape[-1])
    logp = torch.log_softmax(rows, dim=1)
    t = torch.from_numpy(ts.reshape(-1))
    return -logp[torch.arange(rows.shape[0]), t].mean()


def reference(torch, cls, weights, xs, ts, state, masks):
    """Loss, gradients (in ``params`` order) and the state carried on (detached)."""
    w = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in weights]
    embed = w[0][torch.from_numpy(xs.reshape(-1))].reshape(N, T, -1)
    if cls is BetterRnnlm:
        m1, m2, m3 = (torch.from_numpy(m) for m in masks)
        (h1, c1), (h2, c2) = state
        y, h1, c1 = torch_lstm(torch, embed * m1, w[1], w[2], w[3], h1, c1)
        y, h2, c2 = torch_lstm(torch, y * m2, w[4], w[5], w[6], h2, c2)
        scores = (y * m3) @ w[0].T + w[7]  # weight tying: the affine is embed_W.T
        carried = [(h1, c1), (h2, c2)]
    elif cls is Rnnlm:
        h, c = state
        y, h, c = torch_lstm(torch, embed, w[1], w[2], w[3], h, c)
        scores = y @ w[4] + w[5]
        carried = (h, c)
    else:
        (h,) = state
        y, h = rnn(torch, embed, w[1], w[2], w[3], h)
        scores = y @ w[4] + w[5]
        carried = (h,)
    loss = mean_cross_entropy(torch, scores, ts)
    loss.backward()
    detach = lambda s: tuple(a.detach() for a in s)  # noqa: E731 - truncated BPTT
    carried = [detach(s) for s in carried] if cls is BetterRnnlm else detach(carried)
    return float(loss.detach()), [a.grad.numpy() for a in w], carried


def zero_state(torch, cls):
    z = lambda k: torch.zeros((N, k), dtype=torch.float64)  # noqa: E731
    if cls is BetterRnnlm:
        return [(z(D), z(D)), (z(D), z(D))]
    return (z(H), z(H)) if cls is Rnnlm else (z(H),)


# ---------------------------------------------------------------- the comparisons


@pytest.mark.parametrize("cls", [SimpleRnnlm, Rnnlm, BetterRnnlm])
def test_loss_and_every_gradient_are_torch_autograds_over_two_stateful_batches(backend, cls):
    torch = pytest.importorskip("torch")
    model = build(cls)
    weights = [host(p) for p in model.params]
    state = zero_state(torch, cls)
    earlier_masks = None
    for xs, ts in batches():
        loss = model.forward(xpnn.asarray(xs), xpnn.asarray(ts))  # BetterRnnlm: training mode
        model.backward()
        masks = []
        if cls is BetterRnnlm:
            masks = [host(layer.mask) for layer in model.drop_layers]  # the masks xpnn drew
            scale = 1 / (1 - RATIO)
            for m in masks:  # inverted dropout: 0 or 1 / (1 - ratio), both present
                assert set(np.unique(m).tolist()) == {0.0, scale}
            if earlier_masks is not None:  # each batch draws afresh
                assert not all(
                    np.array_equal(a, b) for a, b in zip(masks, earlier_masks, strict=True)
                )
            earlier_masks = masks
        want_loss, want_grads, state = reference(torch, cls, weights, xs, ts, state, masks)
        assert float(xpnn.to_numpy(loss)) == pytest.approx(want_loss, rel=1e-12, abs=1e-12)
        assert len(model.grads) == len(want_grads) == len(model.params)
        for i, (got, want) in enumerate(zip(model.grads, want_grads, strict=True)):
            assert np.abs(want).max() > 1e-6, i  # every gradient is exercised
            np.testing.assert_allclose(
                host(got), want, rtol=1e-10, atol=1e-12, err_msg=f"grads[{i}]"
            )
    # The state carried is torch's too (truncated BPTT: values on, gradients cut).
    layers = model.lstm_layers if cls is BetterRnnlm else [model.layers[1]]
    states = state if cls is BetterRnnlm else [state]
    for layer, s in zip(layers, states, strict=True):
        np.testing.assert_allclose(host(layer.h), s[0].numpy(), rtol=1e-12, atol=1e-14)
        if cls is not SimpleRnnlm:
            np.testing.assert_allclose(host(layer.c), s[1].numpy(), rtol=1e-12, atol=1e-14)


def test_the_masks_matter_and_the_tied_gradient_has_both_parts(backend):
    """Without the masks, or without the affine's use of embed_W, torch disagrees:
    the comparison above can fail."""
    torch = pytest.importorskip("torch")
    model = build(BetterRnnlm)
    weights = [host(p) for p in model.params]
    ((xs, ts),) = batches(1)
    loss = float(xpnn.to_numpy(model.forward(xpnn.asarray(xs), xpnn.asarray(ts))))
    model.backward()
    got = host(model.grads[0])
    ones = [np.ones((N, T, D))] * 3
    zero = zero_state(torch, BetterRnnlm)
    plain_loss, plain, _ = reference(torch, BetterRnnlm, weights, xs, ts, zero, ones)
    assert plain_loss != pytest.approx(loss, rel=1e-6)
    for i, g in enumerate(model.grads):  # every gradient sees the masks
        assert np.abs(host(g) - plain[i]).max() > 1e-4, i
    masks = [host(layer.mask) for layer in model.drop_layers]
    _, grads, _ = reference(
        torch, BetterRnnlm, weights, xs, ts, zero_state(torch, BetterRnnlm), masks
    )
    assert np.abs(host(model.layers[-1].grads[0])).max() > 1e-3  # the affine's part counts
    np.testing.assert_allclose(got, grads[0], rtol=1e-10, atol=1e-12)

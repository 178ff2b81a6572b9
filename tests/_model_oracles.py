"""Oracles shared by the tests of the vol. 2 models (the RNN language models, seq2seq and
attention): every gradient of a whole model by central differences, and the book's LSTM
written in PyTorch for autograd. Imported as ``import _model_oracles`` (``tests/`` is on
``sys.path``: pytest's rootdir insertion)."""

from __future__ import annotations

import numpy as np

import xpnn


def host(a) -> np.ndarray:
    """A float64 host copy of an array of any backend."""
    return np.array(xpnn.to_numpy(a), dtype=np.float64, copy=True)


def check_model_gradients(model, xs, ts, *, reset_state=False, every_param_moves=False, **kw):
    """Every gradient of ``model`` against central differences (step 1e-6) of its loss.

    ``model.forward(xs, ts, **kw)`` gives the loss; ``reset_state`` calls
    ``model.reset_state()`` before each (stateful models); ``every_param_moves``
    also asserts each parameter's numerical gradient is not all zero.
    """

    def loss():
        if reset_state:
            model.reset_state()
        return float(model.forward(xs, ts, **kw))

    loss()
    model.backward()
    got = [host(g) for g in model.grads]
    for k, (p, g) in enumerate(zip(model.params, got, strict=True)):
        h = host(p)
        want = np.zeros_like(h)
        for i in np.ndindex(h.shape):
            keep = h[i]
            for sign in (1, -1):
                h[i] = keep + sign * 1e-6
                p[...] = xpnn.asarray(h, dtype=p.dtype)
                want[i] += sign * loss() / 2e-6
            h[i] = keep
        p[...] = xpnn.asarray(h, dtype=p.dtype)
        if every_param_moves:
            assert np.abs(want).max() > 1e-6, k  # every parameter is exercised
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-8, err_msg=f"params[{k}]")


def torch_lstm(torch, xs, Wx, Wh, b, h, c):
    """The book's LSTM over ``xs`` (N, T, D): one product A, gates f, g, i, o in that order.

    Returns ``(hs, h, c)``: every step's ``h`` ``(N, T, H)`` and the last ``h`` and ``c``.
    """
    Hh = Wh.shape[0]
    hs = []
    for t in range(xs.shape[1]):
        A = xs[:, t, :] @ Wx + h @ Wh + b
        f = torch.sigmoid(A[:, :Hh])
        g = torch.tanh(A[:, Hh : 2 * Hh])
        i = torch.sigmoid(A[:, 2 * Hh : 3 * Hh])
        o = torch.sigmoid(A[:, 3 * Hh :])
        c = f * c + g * i
        h = o * torch.tanh(c)
        hs.append(h)
    return torch.stack(hs, dim=1), h, c

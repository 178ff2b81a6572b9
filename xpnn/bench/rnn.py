"""``xpnn bench rnn``: one RNN language model training iteration (vol. 2, ch. 5-6), side by side.

The book's ch. 6 settings: batch 20, time 35, vocabulary 10,000, SGD (lr
20) after ``clip_grads`` with ``max_grad`` 0.25, for three models: ``Rnnlm``
with wordvec and hidden 100 (``ch06/train_rnnlm.py``), ``Rnnlm`` with 650,
and ``BetterRnnlm`` 650 with dropout 0.5 (``ch06/train_better_rnnlm.py``).
The data are a synthetic Zipf-like corpus (rank ``r`` with probability
proportional to ``1 / r``, fixed seed), cut into batches as the book's
``RnnlmTrainer`` cuts them (row ``i`` reads from ``i * jump``, each batch
``time`` words further), the same batches for every candidate, the models
stateful as the book's. Candidates, timed in one process, interleaved
(round r starts at candidate r, each timed repeat after a pause), as
:mod:`xpnn.bench.words` does:

* **the book's algorithm** (NumPy, float32 as the book's ``astype('f')``):
  ``Embedding``, ``TimeEmbedding`` (one ``Embedding`` and one ``(V, D)``
  gradient per step, summed), ``LSTM``, ``TimeLSTM`` (T small products),
  ``TimeAffine``, ``TimeSoftmaxWithLoss``, ``TimeDropout``, ``Rnnlm``,
  ``BetterRnnlm``, ``SGD``, ``clip_grads`` and the Trainer's
  ``remove_duplicate``, re-typed here (:class:`BookRnnlm`,
  :class:`BookBetterRnnlm`); the book's code is not imported;
* **xpnn numpy** and **xpnn torch:cpu**: :class:`xpnn.models.Rnnlm` and
  :class:`~xpnn.models.BetterRnnlm`, ``forward``, ``backward``,
  :func:`xpnn.training.clip_grads`, :class:`xpnn.SGD` ``update``;
* **PyTorch CPU eager, nn.LSTM**: ``nn.Embedding``, ``nn.LSTM`` (fused, two
  layers with dropout between for BetterRnnlm), ``nn.Linear`` (its weight
  the embedding's for BetterRnnlm), ``cross_entropy``,
  ``clip_grad_norm_``, ``torch.optim.SGD``;
* **PyTorch CPU eager, per-step loop**: the same, the LSTM written as the
  book writes it (``A = x @ Wx + h @ Wh + b``, gates f, g, i, o, one step
  after the other) under autograd;
* a floor, for information: the TimeAffine products and the softmax with
  its loss alone, forward and backward (NumPy and PyTorch), which no
  implementation of these models avoids;
* on a GPU: xpnn on CuPy and on torch:cuda and PyTorch CUDA (nn.LSTM), else
  "not measured".

Parts are timed inside the same iterations (``perf_counter`` between the
phases): forward, backward, clipping, update (and the book's duplicate
removal). Host-side NumPy appears here on purpose: the book's reference is
NumPy.
"""

# The book's unpackings are kept as it writes them, used or not:
# ruff: noqa: RUF059

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn
from xpnn.bench.words import _clock, _gpus, _measure, _target, book_remove_duplicate

__all__ = ["BookBetterRnnlm", "BookRnnlm", "BookSGD", "bench_rnn", "book_clip_grads", "format_rnn"]

BOOK = "book's algorithm (NumPy)"
XPNN = "xpnn numpy"
XPNN_TORCH = "xpnn torch:cpu"
TORCH_LSTM = "PyTorch CPU eager, nn.LSTM"
TORCH_LOOP = "PyTorch CPU eager, per-step loop"
FLOOR_NUMPY = "floor: TimeAffine + softmax alone, NumPy (info)"
FLOOR_TORCH = "floor: TimeAffine + softmax alone, PyTorch (info)"
NO_GPU = "not measured (no GPU here)"
NO_TORCH = "not measured (torch not installed)"
PAUSE_S = 0.3  # quiet before each timed repeat (OpenBLAS's idle threads spin ~0.1 s)
SETTINGS = {"vocab": 10_000, "batch": 20, "time": 35, "tokens": 200_000}
#: name -> (class, wordvec and hidden size, dropout ratio or None).
MODELS = {
    "Rnnlm 100": ("Rnnlm", 100, None),
    "Rnnlm 650": ("Rnnlm", 650, None),
    "BetterRnnlm 650": ("BetterRnnlm", 650, 0.5),
}
LR, MAX_GRAD = 20.0, 0.25
#: (reference, xpnn path, least speed-up of the path over the reference).
TARGETS = ((BOOK, XPNN, 1.5), (TORCH_LOOP, XPNN_TORCH, 1.0))
QUICK = {
    "vocab": 50,
    "batch": 3,
    "time": 4,
    "tokens": 600,
    "hidden": 8,
    "repeats": 2,
    "repeat_s": 0.002,
    "warmup": 1,
    "pause_s": 0.0,
}

# ------------------------------------------------------- the book's algorithm
# Re-typed from the book's common/layers.py (Embedding), common/time_layers.py,
# common/functions.py (sigmoid, softmax), ch06/rnnlm.py, ch06/better_rnnlm.py,
# common/optimizer.py (SGD), common/util.py (clip_grads) and common/trainer.py
# (MIT). One change: arrays the book makes with dtype='f' take the weights'
# dtype, so that the tests can compare in float64.


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    x = np.exp(x)
    x /= x.sum(axis=1, keepdims=True)
    return x


class _Embedding:
    def __init__(self, W):
        self.params, self.grads, self.idx = [W], [np.zeros_like(W)], None

    def forward(self, idx):
        (W,) = self.params
        self.idx = idx
        return W[idx]

    def backward(self, dout):
        (dW,) = self.grads
        dW[...] = 0
        np.add.at(dW, self.idx, dout)


class _TimeEmbedding:
    def __init__(self, W):
        self.params, self.grads, self.layers, self.W = [W], [np.zeros_like(W)], None, W

    def forward(self, xs):
        N, T = xs.shape
        V, D = self.W.shape
        out = np.empty((N, T, D), dtype=self.W.dtype)
        self.layers = []
        for t in range(T):
            layer = _Embedding(self.W)
            out[:, t, :] = layer.forward(xs[:, t])
            self.layers.append(layer)
        return out

    def backward(self, dout):
        N, T, D = dout.shape
        grad = 0
        for t in range(T):
            layer = self.layers[t]
            layer.backward(dout[:, t, :])
            grad += layer.grads[0]
        self.grads[0][...] = grad


class _LSTM:
    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.cache = None

    def forward(self, x, h_prev, c_prev):
        Wx, Wh, b = self.params
        N, H = h_prev.shape
        A = np.dot(x, Wx) + np.dot(h_prev, Wh) + b
        f, g, i, o = A[:, :H], A[:, H : 2 * H], A[:, 2 * H : 3 * H], A[:, 3 * H :]
        f, g, i, o = _sigmoid(f), np.tanh(g), _sigmoid(i), _sigmoid(o)
        c_next = f * c_prev + g * i
        h_next = o * np.tanh(c_next)
        self.cache = (x, h_prev, c_prev, i, f, g, o, c_next)
        return h_next, c_next

    def backward(self, dh_next, dc_next):
        Wx, Wh, b = self.params
        x, h_prev, c_prev, i, f, g, o, c_next = self.cache
        tanh_c_next = np.tanh(c_next)
        ds = dc_next + (dh_next * o) * (1 - tanh_c_next**2)
        dc_prev = ds * f
        di, df, do, dg = ds * g, ds * c_prev, dh_next * tanh_c_next, ds * i
        di *= i * (1 - i)
        df *= f * (1 - f)
        do *= o * (1 - o)
        dg *= 1 - g**2
        dA = np.hstack((df, dg, di, do))
        dWh = np.dot(h_prev.T, dA)
        dWx = np.dot(x.T, dA)
        db = dA.sum(axis=0)
        self.grads[0][...] = dWx
        self.grads[1][...] = dWh
        self.grads[2][...] = db
        return np.dot(dA, Wx.T), np.dot(dA, Wh.T), dc_prev


class _TimeLSTM:
    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.layers, self.h, self.c, self.dh, self.stateful = None, None, None, None, stateful

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, D = xs.shape
        H = Wh.shape[0]
        self.layers = []
        hs = np.empty((N, T, H), dtype=Wx.dtype)
        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype=Wx.dtype)
        if not self.stateful or self.c is None:
            self.c = np.zeros((N, H), dtype=Wx.dtype)
        for t in range(T):
            layer = _LSTM(*self.params)
            self.h, self.c = layer.forward(xs[:, t, :], self.h, self.c)
            hs[:, t, :] = self.h
            self.layers.append(layer)
        return hs

    def backward(self, dhs):
        Wx, Wh, b = self.params
        N, T, H = dhs.shape
        D = Wx.shape[0]
        dxs = np.empty((N, T, D), dtype=Wx.dtype)
        dh, dc = 0, 0
        grads = [0, 0, 0]
        for t in reversed(range(T)):
            layer = self.layers[t]
            dx, dh, dc = layer.backward(dhs[:, t, :] + dh, dc)
            dxs[:, t, :] = dx
            for i, grad in enumerate(layer.grads):
                grads[i] += grad
        for i, grad in enumerate(grads):
            self.grads[i][...] = grad
        self.dh = dh
        return dxs

    def reset_state(self):
        self.h, self.c = None, None


class _TimeAffine:
    def __init__(self, W, b):
        self.params, self.grads, self.x = [W, b], [np.zeros_like(W), np.zeros_like(b)], None

    def forward(self, x):
        N, T, D = x.shape
        W, b = self.params
        rx = x.reshape(N * T, -1)
        out = np.dot(rx, W) + b
        self.x = x
        return out.reshape(N, T, -1)

    def backward(self, dout):
        x = self.x
        N, T, D = x.shape
        W, b = self.params
        dout = dout.reshape(N * T, -1)
        rx = x.reshape(N * T, -1)
        db = np.sum(dout, axis=0)
        dW = np.dot(rx.T, dout)
        dx = np.dot(dout, W.T)
        dx = dx.reshape(*x.shape)
        self.grads[0][...] = dW
        self.grads[1][...] = db
        return dx


class _TimeSoftmaxWithLoss:
    def __init__(self):
        self.params, self.grads, self.cache, self.ignore_label = [], [], None, -1

    def forward(self, xs, ts):
        N, T, V = xs.shape
        mask = ts != self.ignore_label
        xs, ts, mask = xs.reshape(N * T, V), ts.reshape(N * T), mask.reshape(N * T)
        ys = _softmax(xs)
        ls = np.log(ys[np.arange(N * T), ts])
        ls *= mask
        loss = -np.sum(ls)
        loss /= mask.sum()
        self.cache = (ts, ys, mask, (N, T, V))
        return loss

    def backward(self, dout=1):
        ts, ys, mask, (N, T, V) = self.cache
        dx = ys
        dx[np.arange(N * T), ts] -= 1
        dx *= dout
        dx /= mask.sum()
        dx *= mask[:, np.newaxis]
        return dx.reshape((N, T, V))


class _TimeDropout:
    """The book's, ``np.random.rand`` drawn from ``rng`` (``draw(shape)`` may stand for it)."""

    def __init__(self, dropout_ratio=0.5, rng=None):
        self.params, self.grads = [], []
        self.dropout_ratio, self.mask, self.train_flg = dropout_ratio, None, True
        self.rng = rng or np.random.RandomState(0)
        self.draw = None  # a test's hook: the flags of a given mask

    def forward(self, xs):
        if self.train_flg:
            if self.draw is not None:
                flg = self.draw(xs.shape)
            else:
                flg = self.rng.rand(*xs.shape) > self.dropout_ratio
            scale = 1 / (1.0 - self.dropout_ratio)
            self.mask = flg.astype(np.float32) * scale
            return xs * self.mask
        return xs

    def backward(self, dout):
        return dout * self.mask


class _BookModel:
    def predict(self, xs):
        for layer in self.layers:
            xs = layer.forward(xs)
        return xs

    def forward(self, xs, ts):
        return self.loss_layer.forward(self.predict(xs), ts)

    def backward(self, dout=1):
        dout = self.loss_layer.backward(dout)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def _collect(self):
        self.params, self.grads = [], []
        for layer in self.layers:
            self.params += layer.params
            self.grads += layer.grads


class BookRnnlm(_BookModel):
    """The book's ``ch06/rnnlm.py``: embedding, one stateful TimeLSTM, affine (float32)."""

    def __init__(self, vocab_size=10000, wordvec_size=100, hidden_size=100, seed=0, dtype="f"):
        V, D, H = vocab_size, wordvec_size, hidden_size
        rn = np.random.RandomState(seed).randn
        embed_W = (rn(V, D) / 100).astype(dtype)
        lstm_Wx = (rn(D, 4 * H) / np.sqrt(D)).astype(dtype)
        lstm_Wh = (rn(H, 4 * H) / np.sqrt(H)).astype(dtype)
        lstm_b = np.zeros(4 * H).astype(dtype)
        affine_W = (rn(H, V) / np.sqrt(H)).astype(dtype)
        affine_b = np.zeros(V).astype(dtype)
        self.layers = [
            _TimeEmbedding(embed_W),
            _TimeLSTM(lstm_Wx, lstm_Wh, lstm_b, stateful=True),
            _TimeAffine(affine_W, affine_b),
        ]
        self.loss_layer = _TimeSoftmaxWithLoss()
        self.lstm_layer = self.layers[1]
        self._collect()

    def reset_state(self):
        self.lstm_layer.reset_state()


class BookBetterRnnlm(_BookModel):
    """The book's ``ch06/better_rnnlm.py``: two LSTMs, three dropouts, weight tying."""

    def __init__(
        self,
        vocab_size=10000,
        wordvec_size=650,
        hidden_size=650,
        dropout_ratio=0.5,
        seed=0,
        dtype="f",
    ):
        V, D, H = vocab_size, wordvec_size, hidden_size
        rs = np.random.RandomState(seed)
        rn = rs.randn
        embed_W = (rn(V, D) / 100).astype(dtype)
        lstm_Wx1 = (rn(D, 4 * H) / np.sqrt(D)).astype(dtype)
        lstm_Wh1 = (rn(H, 4 * H) / np.sqrt(H)).astype(dtype)
        lstm_b1 = np.zeros(4 * H).astype(dtype)
        lstm_Wx2 = (rn(H, 4 * H) / np.sqrt(H)).astype(dtype)
        lstm_Wh2 = (rn(H, 4 * H) / np.sqrt(H)).astype(dtype)
        lstm_b2 = np.zeros(4 * H).astype(dtype)
        affine_b = np.zeros(V).astype(dtype)
        self.layers = [
            _TimeEmbedding(embed_W),
            _TimeDropout(dropout_ratio, rs),
            _TimeLSTM(lstm_Wx1, lstm_Wh1, lstm_b1, stateful=True),
            _TimeDropout(dropout_ratio, rs),
            _TimeLSTM(lstm_Wx2, lstm_Wh2, lstm_b2, stateful=True),
            _TimeDropout(dropout_ratio, rs),
            _TimeAffine(embed_W.T, affine_b),  # weight tying!!
        ]
        self.loss_layer = _TimeSoftmaxWithLoss()
        self.lstm_layers = [self.layers[2], self.layers[4]]
        self.drop_layers = [self.layers[1], self.layers[3], self.layers[5]]
        self._collect()

    def predict(self, xs, train_flg=False):
        for layer in self.drop_layers:
            layer.train_flg = train_flg
        return super().predict(xs)

    def forward(self, xs, ts, train_flg=True):
        return self.loss_layer.forward(self.predict(xs, train_flg), ts)

    def reset_state(self):
        for layer in self.lstm_layers:
            layer.reset_state()


def book_clip_grads(grads, max_norm):
    """The book's ``clip_grads`` (``common/util.py``): the norm read to the host, then scaled."""
    total_norm = 0
    for grad in grads:
        total_norm += np.sum(grad**2)
    total_norm = np.sqrt(total_norm)
    rate = max_norm / (total_norm + 1e-6)
    if rate < 1:
        for grad in grads:
            grad *= rate


class BookSGD:
    """The book's ``SGD``: ``params[i] -= lr * grads[i]``."""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for i in range(len(params)):
            params[i] -= self.lr * grads[i]


# -------------------------------------------------------------------- data


def batches(vocab: int, batch: int, time: int, tokens: int, seed: int = 0):
    """``(xs, ts)``, each ``(n, batch, time)`` int64: a Zipf-like corpus cut as the Trainer does.

    Every word appears once at least; row ``i`` of batch ``k`` reads from
    ``i * jump + k * time`` (``jump = (tokens - 1) // batch``), modulo the corpus.
    """
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1)
    rest = rng.choice(vocab, max(0, tokens - vocab), p=p / p.sum())
    corpus = np.concatenate([np.arange(vocab), rest])
    rng.shuffle(corpus)
    xs_all, ts_all = corpus[:-1], corpus[1:]
    size = xs_all.shape[0]
    jump = size // batch
    n = max(1, jump // time)
    pos = (
        np.arange(batch)[None, :, None] * jump
        + np.arange(n)[:, None, None] * time
        + np.arange(time)[None, None, :]
    ) % size
    return xs_all[pos].astype(np.int64), ts_all[pos].astype(np.int64)


class _Cycle:
    """The next batch ``(xs, ts)`` on each call, cycling."""

    def __init__(self, xs: Any, ts: Any):
        self.xs, self.ts, self.at, self.n = xs, ts, 0, int(xs.shape[0])

    def __call__(self) -> tuple[Any, Any]:
        k, self.at = self.at, (self.at + 1) % self.n
        return self.xs[k, ...], self.ts[k, ...]


# -------------------------------------------------------------- candidates

Step = tuple[Callable[[], None], dict[str, float]]


def _phases(cycle, clock, acc, forward, backward, clip, update, dedupe=None) -> Callable:
    def step():
        xs, ts = cycle()
        t0 = clock()
        forward(xs, ts)
        t1 = clock()
        backward()
        t2 = clock()
        args = dedupe() if dedupe else ()
        t3 = clock()
        clip(*args)
        t4 = clock()
        update(*args)
        t5 = clock()
        for name, dt in (("forward", t1 - t0), ("backward", t2 - t1), ("clip", t4 - t3)):
            acc[name] += dt
        acc["update"] += t5 - t4
        if dedupe:
            acc["duplicate removal"] += t3 - t2

    return step


def _parts(book: bool = False) -> dict[str, float]:
    names = ("forward", "backward") + (("duplicate removal",) if book else ()) + ("clip", "update")
    return dict.fromkeys(names, 0.0)


def _book_step(data, sizes, model_name) -> Step:
    kind, hidden, ratio = model_name
    V = sizes["vocab"]
    if kind == "Rnnlm":
        model: Any = BookRnnlm(V, hidden, hidden, seed=0)
    else:
        model = BookBetterRnnlm(V, hidden, hidden, ratio, seed=0)
    opt, acc, clock = BookSGD(LR), _parts(True), _clock(None)

    def dedupe():
        return book_remove_duplicate(model.params, model.grads)

    def clip(params, grads):
        book_clip_grads(grads, MAX_GRAD)

    step = _phases(
        _Cycle(*data), clock, acc, model.forward, model.backward, clip, opt.update, dedupe
    )
    return step, acc


def _xpnn_model(spec: str, sizes, model_name):
    kind, hidden, ratio = model_name
    V = sizes["vocab"]
    with xpnn.use_backend(spec):
        if kind == "Rnnlm":
            return xpnn.models.Rnnlm(V, hidden, hidden, seed=0)
        return xpnn.models.BetterRnnlm(V, hidden, hidden, ratio, seed=0)


def _xpnn_step(spec: str, data, sizes, model_name, sync=None) -> Step:
    model = _xpnn_model(spec, sizes, model_name)
    return _model_step(spec, data, model, xpnn.SGD(lr=LR), MAX_GRAD, sync)


def _model_step(spec: str, data, model, opt, max_grad: float, sync=None) -> Step:
    """An xpnn model's iteration as ``Trainer.fit`` runs it: forward, backward, clip, update,
    on the batches ``data`` moved to ``spec``'s backend (also ``bench seq2seq``'s)."""
    from xpnn.training import clip_grads

    with xpnn.use_backend(spec):
        cycle = _Cycle(xpnn.asarray(data[0]), xpnn.asarray(data[1]))
    acc, clock = _parts(), _clock(sync)
    step = _phases(
        cycle,
        clock,
        acc,
        model.forward,
        model.backward,
        lambda: clip_grads(model.grads, max_grad),
        lambda: opt.update(model.params, model.grads),
    )
    return step, acc


class TorchRnnlm:
    """PyTorch eager Rnnlm / BetterRnnlm: ``nn.LSTM`` (``fused``) or the book's per-step loop.

    ``fused=False``: each LSTM is ``Wx`` ``(D, 4H)``, ``Wh`` ``(H, 4H)``,
    ``b`` ``(4H,)`` and T steps of ``A = x @ Wx + h @ Wh + b``, gates f, g,
    i, o, as the book's ``LSTM``; ``fused=True``: ``nn.LSTM`` (gates i, f,
    g, o, two biases). ``tied``: the affine's weight is the embedding's
    (BetterRnnlm). The state ``(h, c)`` of each LSTM carries over between
    calls, detached (truncated BPTT, as the book's stateful layers).
    """

    def __init__(self, torch, vocab, hidden, layers, ratio, fused, device="cpu", seed=0):
        self.torch, self.fused, self.ratio = torch, fused, ratio or 0.0
        nn = torch.nn
        torch.manual_seed(seed)
        self.embed = nn.Embedding(vocab, hidden).to(device)
        self.linear = nn.Linear(hidden, vocab).to(device)
        with torch.no_grad():
            self.embed.weight.normal_(0.0, 0.01)
            self.linear.bias.zero_()
        if ratio is not None:
            self.linear.weight = self.embed.weight  # weight tying
        params = [self.embed.weight, self.linear.bias]
        if ratio is None:
            params.append(self.linear.weight)
        if fused:
            self.lstm = nn.LSTM(
                hidden, hidden, layers, batch_first=True, dropout=self.ratio if layers > 1 else 0.0
            ).to(device)
            params += list(self.lstm.parameters())
        else:
            self.cells = []
            for _ in range(layers):
                s = 1.0 / hidden**0.5
                Wx = (torch.randn(hidden, 4 * hidden, device=device) * s).requires_grad_()
                Wh = (torch.randn(hidden, 4 * hidden, device=device) * s).requires_grad_()
                b = torch.zeros(4 * hidden, device=device, requires_grad=True)
                self.cells.append((Wx, Wh, b))
                params += [Wx, Wh, b]
        self.params = params
        self.layers, self.state = layers, None
        self.opt = torch.optim.SGD(params, lr=LR)

    def _drop(self, x):
        if not self.ratio:
            return x
        return self.torch.nn.functional.dropout(x, self.ratio, training=True)

    def _loop(self, xs, cell, state):
        torch = self.torch
        Wx, Wh, b = cell
        N, T, _ = xs.shape
        H = Wh.shape[0]
        h, c = state if state is not None else (xs.new_zeros(N, H), xs.new_zeros(N, H))
        hs = []
        for t in range(T):
            A = xs[:, t, :] @ Wx + h @ Wh + b
            f = torch.sigmoid(A[:, :H])
            g = torch.tanh(A[:, H : 2 * H])
            i = torch.sigmoid(A[:, 2 * H : 3 * H])
            o = torch.sigmoid(A[:, 3 * H :])
            c = f * c + g * i
            h = o * torch.tanh(c)
            hs.append(h)
        return torch.stack(hs, dim=1), (h.detach(), c.detach())

    def loss(self, xs, ts):
        torch = self.torch
        x = self._drop(self.embed(xs))
        if self.fused:
            state = self.state
            x, (h, c) = self.lstm(x, state)
            self.state = (h.detach(), c.detach())
        else:
            states = self.state or [None] * self.layers
            new = []
            for k, cell in enumerate(self.cells):
                if k:
                    x = self._drop(x)
                x, st = self._loop(x, cell, states[k])
                new.append(st)
            self.state = new
        x = self._drop(x)
        scores = self.linear(x)
        scores = scores.reshape(-1, scores.shape[-1])
        return torch.nn.functional.cross_entropy(scores, ts.reshape(-1))


def _torch_step(data, sizes, model_name, fused, device="cpu", sync=None) -> Step | None:
    try:
        import torch
    except ImportError:
        return None
    kind, hidden, ratio = model_name
    layers = 1 if kind == "Rnnlm" else 2
    model = TorchRnnlm(torch, sizes["vocab"], hidden, layers, ratio, fused, device)
    dev = torch.device(device)
    cycle = _Cycle(torch.from_numpy(data[0]).to(dev), torch.from_numpy(data[1]).to(dev))
    acc, clock, state = _parts(), _clock(sync), {}

    def forward(xs, ts):
        state["loss"] = model.loss(xs, ts)

    def backward():
        model.opt.zero_grad(set_to_none=True)
        state["loss"].backward()

    def clip():
        torch.nn.utils.clip_grad_norm_(model.params, MAX_GRAD)

    return _phases(cycle, clock, acc, forward, backward, clip, model.opt.step), acc


def _floor_steps(sizes, hidden) -> dict[str, Step]:
    """TimeAffine's products and the softmax with its loss, forward and backward, alone."""
    N, T, V = sizes["batch"], sizes["time"], sizes["vocab"]
    rng = np.random.default_rng(7)
    rx = rng.standard_normal((N * T, hidden), np.float32)
    W = rng.standard_normal((hidden, V), np.float32) / np.float32(hidden**0.5)
    b = np.zeros(V, np.float32)
    ts = rng.integers(0, V, N * T)
    rows = np.arange(N * T)

    def numpy_floor():
        s = rx @ W
        s += b
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        _ = -np.log(s[rows, ts]).sum() / (N * T)
        s[rows, ts] -= 1
        s /= N * T
        _ = s.sum(axis=0), rx.T @ s, s @ W.T

    steps: dict[str, Step] = {FLOOR_NUMPY: (numpy_floor, {})}
    try:
        import torch
    except ImportError:
        return steps
    trx, tW, tb = torch.from_numpy(rx), torch.from_numpy(W), torch.from_numpy(b)
    tts, trows = torch.from_numpy(ts), torch.from_numpy(rows)

    def torch_floor():
        s = torch.addmm(tb, trx, tW)
        ys = torch.softmax(s, dim=1)
        _ = -torch.log(ys[trows, tts]).sum() / (N * T)
        ys[trows, tts] -= 1
        ys /= N * T
        _ = ys.sum(dim=0), trx.T @ ys, ys @ tW.T

    steps[FLOOR_TORCH] = (torch_floor, {})
    return steps


# -------------------------------------------------------------------- case


def _floor_note(
    timed,
    ref,
    path,
    goal,
    floors: tuple[str, str] = (FLOOR_NUMPY, FLOOR_TORCH),
    floor_what: str = "the TimeAffine products and softmax alone",
) -> str:
    """Why a target is not met: the time needed, the path's parts, the floor that bounds it.

    ``floors`` are the rows of the NumPy and the PyTorch floor and ``floor_what`` says what
    they time (``bench seq2seq`` passes its own: the matrix products alone).
    """
    need = timed[ref]["median"] / goal
    mine = timed[path]["parts"]
    cells = ", ".join(f"{k} {v['median']:.2f}" for k, v in mine.items())
    note = f"needs <= {need:.2f} ms/iteration, measures {timed[path]['median']:.2f} ({cells})"
    floor = timed.get(floors[1] if "torch" in path else floors[0])
    if floor and "median" in floor:
        note += (
            f"; {floor_what} take {floor['median']:.2f} ms "
            f"({100 * floor['median'] / timed[path]['median']:.0f}% of it)"
        )
    ref_parts = timed[ref]["parts"]
    slower = [k for k in mine if k in ref_parts and mine[k]["median"] > ref_parts[k]["median"]]
    if slower:
        note += f"; slower than the reference's: {', '.join(slower)}"
    return note


def _gpu_part(data, sizes, models, repeats, repeat_s, warmup, pause_s) -> dict[str, Any]:
    """xpnn on CuPy and torch:cuda and PyTorch CUDA nn.LSTM, per model (when each runs)."""
    have_cupy, torch_cuda, sync = _gpus()
    if not (have_cupy or torch_cuda):
        return {"status": NO_GPU}

    result: dict[str, Any] = {"status": "measured", "models": {}}
    for label, spec in models.items():
        steps: dict[str, Step] = {}
        if have_cupy:
            steps["xpnn cupy"] = _xpnn_step("cupy:0", data, sizes, spec, sync)
        if torch_cuda:
            steps["xpnn torch:cuda"] = _xpnn_step("torch:cuda", data, sizes, spec, sync)
            steps["PyTorch CUDA eager, nn.LSTM"] = _torch_step(  # type: ignore[assignment]
                data, sizes, spec, True, "cuda", sync
            )
        result["models"][label] = _measure(steps, repeats, repeat_s, warmup, pause_s, sync)
    return result


def bench_rnn(
    vocab: int = SETTINGS["vocab"],
    batch: int = SETTINGS["batch"],
    time: int = SETTINGS["time"],
    tokens: int = SETTINGS["tokens"],
    models: tuple[str, ...] = tuple(MODELS),
    hidden: int | None = None,
    repeats: int = 5,
    repeat_s: float = 0.4,
    warmup: int = 2,
    pause_s: float = PAUSE_S,
    quick: bool = False,
) -> dict[str, Any]:
    """One RNNLM iteration per model: the book's algorithm, xpnn, PyTorch eager, floors.

    Args:
        vocab: The vocabulary V (the book's 10,000).
        batch: The rows N (the book's 20).
        time: The time steps T (the book's 35).
        tokens: The synthetic corpus's length.
        models: Names of :data:`MODELS` to run.
        hidden: Wordvec and hidden size of every model instead of its own.
        repeats: Timed repeats per candidate (each a median's sample).
        repeat_s: Least seconds per repeat (iterations per repeat chosen from the warmup).
        warmup: Untimed iterations per candidate before the repeats.
        pause_s: Quiet before each timed repeat.
        quick: The tiny sizes of :data:`QUICK` (a test's: a second), over the others.

    Returns:
        ``unit``, ``settings``, ``models`` (per model: ``candidates``, per
        name median/min/max ms per iteration, ``repeats``, ``steps per
        repeat``, ``parts`` with median/min/max ms each, ``speed-up`` = its
        median over xpnn numpy's, or ``status`` when it did not run;
        ``targets``, ``{name: {"goal", "value", "met", "floor"}}``, ``floor``
        explaining a target not met), ``gpu`` (``{"status": ...}``, with
        ``models`` when measured).
    """
    if quick:
        vocab, batch, time, tokens = (QUICK[k] for k in ("vocab", "batch", "time", "tokens"))
        hidden, repeats, repeat_s = QUICK["hidden"], QUICK["repeats"], QUICK["repeat_s"]
        warmup, pause_s = QUICK["warmup"], QUICK["pause_s"]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; valid: {', '.join(MODELS)}")
    sizes = {"vocab": vocab, "batch": batch, "time": time, "tokens": tokens}
    specs = {}
    for m in models:
        kind, h, ratio = MODELS[m]
        specs[m] = (kind, hidden or h, ratio)
    data = batches(vocab, batch, time, tokens)
    out: dict[str, Any] = {}
    for label, spec in specs.items():
        steps: dict[str, Step] = {
            BOOK: _book_step(data, sizes, spec),
            XPNN: _xpnn_step("numpy", data, sizes, spec),
        }
        missing: dict[str, Any] = {}
        loop = _torch_step(data, sizes, spec, fused=False)
        if loop is None:
            missing = {n: {"status": NO_TORCH} for n in (XPNN_TORCH, TORCH_LSTM, TORCH_LOOP)}
        else:
            steps[XPNN_TORCH] = _xpnn_step("torch:cpu", data, sizes, spec)
            steps[TORCH_LSTM] = _torch_step(data, sizes, spec, fused=True)  # type: ignore[assignment]
            steps[TORCH_LOOP] = loop
        steps.update(_floor_steps(sizes, spec[1]))
        timed = _measure(steps, repeats, repeat_s, warmup, pause_s)
        base = timed[XPNN]["median"]
        for r in timed.values():
            r["speed-up"] = r["median"] / base
        targets = {}
        for ref, path, goal in TARGETS:
            t = _target(timed, ref, path, goal)
            t["floor"] = _floor_note(timed, ref, path, goal) if t["met"] is False else None
            targets[f"{ref} / {path} >= {goal:g}"] = t
        if TORCH_LSTM in timed:  # reported beside the target, not a target
            targets[f"{TORCH_LSTM} / {XPNN_TORCH} (info)"] = {
                "goal": None,
                "value": timed[TORCH_LSTM]["median"] / timed[XPNN_TORCH]["median"],
                "met": None,
                "floor": None,
            }
        floors = {k: v for k, v in timed.items() if k.startswith("floor")}
        cands = {k: v for k, v in timed.items() if not k.startswith("floor")}
        out[label] = {
            "kind": spec[0],
            "hidden": spec[1],
            "dropout": spec[2],
            "candidates": {**cands, **missing, **floors},
            "targets": targets,
        }
    return {
        "unit": "ms/iteration",
        "settings": {
            **sizes,
            "optimizer": f"SGD(lr={LR})",
            "max_grad": MAX_GRAD,
            "corpus": "Zipf-like (p ~ 1/rank), every word once at least, seed 0",
            "repeats": repeats,
            "repeat_s": repeat_s,
            "warmup": warmup,
            "pause_s": pause_s,
            "quick": quick,
        },
        "models": out,
        "gpu": _gpu_part(data, sizes, specs, max(3, repeats // 2), repeat_s, warmup, pause_s),
    }


# ------------------------------------------------------------------ report

_PARTS = ("forward", "backward", "duplicate removal", "clip", "update")


def _rows(candidates: dict[str, Any]) -> list[str]:
    lines = []
    for name, r in candidates.items():
        if "median" not in r:
            lines.append(f"    {name:<50} {r['status']}")
            continue
        ratio = f"  {r['speed-up']:>6.2f}x" if "speed-up" in r else ""
        lines.append(
            f"    {name:<50} {r['median']:>9.2f} ({r['min']:.2f}-{r['max']:.2f}){ratio}"
            f"  [{r['repeats']} x {r['steps per repeat']}]"
        )
        cells = [f"{k} {p['median']:.2f}" for k in _PARTS if (p := r["parts"].get(k)) is not None]
        if cells:
            lines.append("        " + "; ".join(cells))
    return lines


def _target_lines(targets: dict[str, Any]) -> list[str]:
    lines = []
    for name, t in targets.items():
        if t["value"] is None:
            lines.append(f"    target {name}: {NO_TORCH}")
        elif t["goal"] is None:
            lines.append(f"    {name}: {t['value']:.2f}")
        else:
            lines.append(f"    target {name}: {t['value']:.2f}: {'met' if t['met'] else 'NOT met'}")
            if t.get("floor"):
                lines.append(f"      why: {t['floor']}")
    return lines


def format_rnn(result: dict[str, Any]) -> list[str]:
    """The rnn case as plain-text lines."""
    s = result["settings"]
    lines = [
        f"  RNNLM iteration: V {s['vocab']}, batch {s['batch']}, time {s['time']}, "
        f"{s['optimizer']}, clip_grads {s['max_grad']}, float32",
        "  median ms/iteration (min-max), time / xpnn numpy's, [repeats x iterations];"
        " parts below, median ms",
    ]
    for label, m in result["models"].items():
        drop = f", dropout {m['dropout']}" if m["dropout"] is not None else ""
        lines.append(f"  {label}: {m['kind']}, wordvec = hidden = {m['hidden']}{drop}")
        lines += _rows(m["candidates"])
        lines += _target_lines(m["targets"])
    gpu = result["gpu"]
    if gpu.get("status") != "measured":
        lines.append(f"  GPU: {gpu['status']}")
    else:
        lines.append("  GPU:")
        for label, timed in gpu["models"].items():
            lines.append(f"  {label}:")
            lines += _rows(timed)
    return lines

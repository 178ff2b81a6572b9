"""``xpnn bench seq2seq``: one seq2seq training iteration (vol. 2, ch. 7-8), side by side.

The book's settings: batch 128, Adam (lr 0.001) after ``clip_grads`` with
``max_grad`` 5.0, wordvec 16, for two models: ``PeekySeq2seq`` with hidden
128 on the addition data (``ch07/train_seq2seq.py``: vocabulary 13,
questions of 7 characters, answers of 5 with the leading ``_``) and
``AttentionSeq2seq`` with hidden 256 on the date data (``ch08/train.py``:
vocabulary 59, questions of 29 characters, answers of 11 with ``_``). The
data are random ids of those shapes and vocabularies (fixed seed, every
answer starting with the same id, as the book's ``_``), a few batches
cycled, the same for every candidate. Candidates, timed in one process,
interleaved (round r starts at candidate r, each timed repeat after a
pause), as :mod:`xpnn.bench.rnn` does:

* **the book's algorithm** (NumPy, float32 as the book's ``astype('f')``):
  ``Encoder``, ``PeekyDecoder``, ``AttentionEncoder``, ``AttentionDecoder``,
  ``WeightSum``, ``AttentionWeight``, ``Attention``, ``TimeAttention``
  (one ``Attention`` per decoder step), ``Softmax``, re-typed here
  (:class:`BookPeekySeq2seq`, :class:`BookAttentionSeq2seq`) on the time
  layers, ``clip_grads`` and ``remove_duplicate`` :mod:`xpnn.bench.rnn` and
  :mod:`xpnn.bench.words` re-typed, and the book's ``Adam``
  (:class:`~xpnn.bench.words.BookAdam`); the book's code is not imported;
* **xpnn numpy** and **xpnn torch:cpu**: :class:`xpnn.models.PeekySeq2seq`
  and :class:`~xpnn.models.AttentionSeq2seq`, what ``Trainer.fit`` runs per
  iteration: ``forward(xs, ts)``, ``backward()``,
  :func:`xpnn.training.clip_grads`, :class:`xpnn.Adam` ``update`` (xpnn's
  models list every weight once: the Trainer removes no duplicates);
* **PyTorch CPU eager**: ``nn.Embedding``, ``nn.LSTM`` (the decoder's
  started from the encoder's last ``h``), ``nn.Linear``, the peeky ``h``
  concatenated as the book's, and the book's dot-product attention written
  by hand (weights ``softmax(dec_hs @ hs^T)`` over the encoder steps, the
  context their weighted sum of ``hs``, ``[c, dec_hs]`` into the affine),
  ``cross_entropy``, ``clip_grad_norm_``, ``torch.optim.Adam``
  (:class:`TorchSeq2seq`);
* a floor, for information: the iteration's matrix products alone (the
  LSTMs' input, recurrent and weight-gradient products, the affine's three,
  and the attention's six as batched products), in NumPy and in PyTorch;
* on a GPU: xpnn on CuPy (eager, and forward, backward and clipping
  replayed as one CUDA graph with Adam after it: xpnn's Adam depends on the
  update count, which a graph would freeze), xpnn on torch:cuda, and
  PyTorch CUDA eager, else "not measured".

Parts are timed inside the same iterations (``perf_counter`` between the
phases): forward, backward, clipping, update (and the book's duplicate
removal). Host-side NumPy appears here on purpose: the book's reference is
NumPy.
"""

# The book's unpackings are kept as it writes them, used or not:
# ruff: noqa: RUF059

from __future__ import annotations

from typing import Any

import numpy as np

import xpnn
from xpnn.bench.rnn import (
    Step,
    _Cycle,
    _floor_note,
    _model_step,
    _parts,
    _phases,
    _TimeAffine,
    _TimeEmbedding,
    _TimeLSTM,
    _TimeSoftmaxWithLoss,
    book_clip_grads,
)
from xpnn.bench.words import BookAdam, _clock, _gpus, _measure, _target, book_remove_duplicate

__all__ = [
    "BookAttentionSeq2seq",
    "BookPeekySeq2seq",
    "TorchSeq2seq",
    "bench_seq2seq",
    "format_seq2seq",
]

BOOK = "book's algorithm (NumPy)"
XPNN = "xpnn numpy"
XPNN_TORCH = "xpnn torch:cpu"
TORCH = "PyTorch CPU eager (nn.LSTM)"
FLOOR_NUMPY = "floor: the matrix products alone, NumPy (info)"
FLOOR_TORCH = "floor: the matrix products alone, PyTorch (info)"
GPU_CUPY, GPU_GRAPH = "xpnn cupy", "xpnn cupy, CUDA graph (Adam eager)"
GPU_XPNN_TORCH, GPU_TORCH = "xpnn torch:cuda", "PyTorch CUDA eager (nn.LSTM)"
NO_GPU = "not measured (no GPU here)"
NO_TORCH = "not measured (torch not installed)"
PAUSE_S = 0.3  # quiet before each timed repeat (OpenBLAS's idle threads spin ~0.1 s)
BATCH, BATCHES, START_ID = 128, 8, 0  # rows; distinct batches cycled; the answers' "_"
#: name -> (class, its sizes): the book's ch07/train_seq2seq.py (peeky) and ch08/train.py.
MODELS = {
    "PeekySeq2seq (addition)": (
        "PeekySeq2seq",
        {"vocab": 13, "wordvec": 16, "hidden": 128, "question": 7, "answer": 5},
    ),
    "AttentionSeq2seq (dates)": (
        "AttentionSeq2seq",
        {"vocab": 59, "wordvec": 16, "hidden": 256, "question": 29, "answer": 11},
    ),
}
LR, MAX_GRAD = 0.001, 5.0
#: (reference, xpnn path, least speed-up of the path over the reference).
TARGETS = ((BOOK, XPNN, 1.5), (TORCH, XPNN_TORCH, 1.0))
GPU_TARGETS = ((GPU_TORCH, GPU_GRAPH, 1.5),)
QUICK = {
    "sizes": {"vocab": 11, "wordvec": 4, "hidden": 6, "question": 5, "answer": 4},
    "batch": 3,
    "repeats": 2,
    "repeat_s": 0.002,
    "warmup": 1,
    "pause_s": 0.0,
}

# ------------------------------------------------------- the book's algorithm
# Re-typed from the book's ch07/seq2seq.py, ch07/peeky_seq2seq.py,
# ch08/attention_layer.py, ch08/attention_seq2seq.py and common/layers.py
# (Softmax) (MIT), on the time layers re-typed in xpnn.bench.rnn. One change,
# as there: arrays the book makes with dtype='f' take the weights' dtype, and
# the weights are drawn from a seeded RandomState (the book: np.random.randn),
# so that the tests can compare in float64.


class _SeqTimeLSTM(_TimeLSTM):
    """The book's ``TimeLSTM`` with its ``set_state`` (the decoders start from ``h``)."""

    def set_state(self, h, c=None):
        self.h, self.c = h, c


def _book_weights(rs, shapes, dtype):
    """The book's init, in its order: ``randn / 100`` embeddings, ``randn / sqrt(fan_in)``."""
    out = {}
    for name, shape in shapes.items():
        if name.endswith("_b"):
            out[name] = np.zeros(shape).astype(dtype)
        elif name == "embed_W":
            out[name] = (rs.randn(*shape) / 100).astype(dtype)
        else:
            out[name] = (rs.randn(*shape) / np.sqrt(shape[0])).astype(dtype)
    return out


class _Softmax:
    def __init__(self):
        self.params, self.grads, self.out = [], [], None

    def forward(self, x):
        x = x - x.max(axis=1, keepdims=True)
        x = np.exp(x)
        x /= x.sum(axis=1, keepdims=True)
        self.out = x
        return self.out

    def backward(self, dout):
        dx = self.out * dout
        sumdx = np.sum(dx, axis=1, keepdims=True)
        dx -= self.out * sumdx
        return dx


class _Encoder:
    def __init__(self, embed_W, lstm_Wx, lstm_Wh, lstm_b):
        self.embed = _TimeEmbedding(embed_W)
        self.lstm = _SeqTimeLSTM(lstm_Wx, lstm_Wh, lstm_b, stateful=False)
        self.params = self.embed.params + self.lstm.params
        self.grads = self.embed.grads + self.lstm.grads
        self.hs = None

    def forward(self, xs):
        xs = self.embed.forward(xs)
        hs = self.lstm.forward(xs)
        self.hs = hs
        return hs[:, -1, :]

    def backward(self, dh):
        dhs = np.zeros_like(self.hs)
        dhs[:, -1, :] = dh
        dout = self.lstm.backward(dhs)
        dout = self.embed.backward(dout)
        return dout


class _AttentionEncoder(_Encoder):
    def forward(self, xs):
        xs = self.embed.forward(xs)
        hs = self.lstm.forward(xs)
        return hs

    def backward(self, dhs):
        dout = self.lstm.backward(dhs)
        dout = self.embed.backward(dout)
        return dout


class _Decoder:
    def __init__(self, embed_W, lstm_Wx, lstm_Wh, lstm_b, affine_W, affine_b):
        self.embed = _TimeEmbedding(embed_W)
        self.lstm = _SeqTimeLSTM(lstm_Wx, lstm_Wh, lstm_b, stateful=True)
        self.affine = _TimeAffine(affine_W, affine_b)
        self.params, self.grads = [], []
        for layer in (self.embed, self.lstm, self.affine):
            self.params += layer.params
            self.grads += layer.grads
        self.cache = None


class _PeekyDecoder(_Decoder):
    def forward(self, xs, h):
        N, T = xs.shape
        N, H = h.shape

        self.lstm.set_state(h)

        out = self.embed.forward(xs)
        hs = np.repeat(h, T, axis=0).reshape(N, T, H)
        out = np.concatenate((hs, out), axis=2)

        out = self.lstm.forward(out)
        out = np.concatenate((hs, out), axis=2)

        score = self.affine.forward(out)
        self.cache = H
        return score

    def backward(self, dscore):
        H = self.cache

        dout = self.affine.backward(dscore)
        dout, dhs0 = dout[:, :, H:], dout[:, :, :H]
        dout = self.lstm.backward(dout)
        dembed, dhs1 = dout[:, :, H:], dout[:, :, :H]
        self.embed.backward(dembed)

        dhs = dhs0 + dhs1
        dh = self.lstm.dh + np.sum(dhs, axis=1)
        return dh


class _WeightSum:
    def __init__(self):
        self.params, self.grads, self.cache = [], [], None

    def forward(self, hs, a):
        N, T, H = hs.shape
        ar = a.reshape(N, T, 1)
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


class _AttentionWeight:
    def __init__(self):
        self.params, self.grads, self.softmax, self.cache = [], [], _Softmax(), None

    def forward(self, hs, h):
        N, T, H = hs.shape
        hr = h.reshape(N, 1, H)
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


class _Attention:
    def __init__(self):
        self.params, self.grads = [], []
        self.attention_weight_layer = _AttentionWeight()
        self.weight_sum_layer = _WeightSum()
        self.attention_weight = None

    def forward(self, hs, h):
        a = self.attention_weight_layer.forward(hs, h)
        out = self.weight_sum_layer.forward(hs, a)
        self.attention_weight = a
        return out

    def backward(self, dout):
        dhs0, da = self.weight_sum_layer.backward(dout)
        dhs1, dh = self.attention_weight_layer.backward(da)
        dhs = dhs0 + dhs1
        return dhs, dh


class _TimeAttention:
    def __init__(self):
        self.params, self.grads, self.layers, self.attention_weights = [], [], None, None

    def forward(self, hs_enc, hs_dec):
        N, T, H = hs_dec.shape
        out = np.empty_like(hs_dec)
        self.layers = []
        self.attention_weights = []
        for t in range(T):
            layer = _Attention()
            out[:, t, :] = layer.forward(hs_enc, hs_dec[:, t, :])
            self.layers.append(layer)
            self.attention_weights.append(layer.attention_weight)
        return out

    def backward(self, dout):
        N, T, H = dout.shape
        dhs_enc = 0
        dhs_dec = np.empty_like(dout)
        for t in range(T):
            layer = self.layers[t]
            dhs, dh = layer.backward(dout[:, t, :])
            dhs_enc += dhs
            dhs_dec[:, t, :] = dh
        return dhs_enc, dhs_dec


class _AttentionDecoder(_Decoder):
    def __init__(self, *arrays):
        super().__init__(*arrays)
        self.attention = _TimeAttention()

    def forward(self, xs, enc_hs):
        h = enc_hs[:, -1]
        self.lstm.set_state(h)

        out = self.embed.forward(xs)
        dec_hs = self.lstm.forward(out)
        c = self.attention.forward(enc_hs, dec_hs)
        out = np.concatenate((c, dec_hs), axis=2)
        score = self.affine.forward(out)
        return score

    def backward(self, dscore):
        dout = self.affine.backward(dscore)
        N, T, H2 = dout.shape
        H = H2 // 2

        dc, ddec_hs0 = dout[:, :, :H], dout[:, :, H:]
        denc_hs, ddec_hs1 = self.attention.backward(dc)
        ddec_hs = ddec_hs0 + ddec_hs1
        dout = self.lstm.backward(ddec_hs)
        dh = self.lstm.dh
        denc_hs[:, -1] += dh
        self.embed.backward(dout)
        return denc_hs


class _BookSeq2seq:
    """The book's ``Seq2seq``: the answer ``ts[:, :-1]`` fed, ``ts[:, 1:]`` scored."""

    _encoder: Any = _Encoder
    _decoder: Any = _PeekyDecoder
    _peeky = True  # the decoder's LSTM sees [h, embedding] (fan-in H + D)

    def __init__(self, vocab_size, wordvec_size, hidden_size, seed=0, dtype="f"):
        V, D, H = vocab_size, wordvec_size, hidden_size
        rs = np.random.RandomState(seed)
        e = H if self._peeky else 0
        enc = {"embed_W": (V, D), "lstm_Wx": (D, 4 * H), "lstm_Wh": (H, 4 * H), "lstm_b": (4 * H,)}
        dec = {"embed_W": (V, D), "lstm_Wx": (e + D, 4 * H), "lstm_Wh": (H, 4 * H)}
        # the affine scores [h, out] (peeky) or [c, dec_hs] (attention): 2H rows, both
        dec.update({"lstm_b": (4 * H,), "affine_W": (2 * H, V), "affine_b": (V,)})
        enc, dec = _book_weights(rs, enc, dtype), _book_weights(rs, dec, dtype)
        self.encoder = self._encoder(*enc.values())
        self.decoder = self._decoder(*dec.values())
        self.softmax = _TimeSoftmaxWithLoss()
        self.params = self.encoder.params + self.decoder.params
        self.grads = self.encoder.grads + self.decoder.grads
        #: The arrays' names, as xpnn's ``named_arrays`` (in the order of ``params``).
        self.names = [f"encoder.{k}" for k in enc] + [f"decoder.{k}" for k in dec]

    def forward(self, xs, ts):
        decoder_xs, decoder_ts = ts[:, :-1], ts[:, 1:]
        h = self.encoder.forward(xs)
        score = self.decoder.forward(decoder_xs, h)
        loss = self.softmax.forward(score, decoder_ts)
        return loss

    def backward(self, dout=1):
        dout = self.softmax.backward(dout)
        dh = self.decoder.backward(dout)
        dout = self.encoder.backward(dh)
        return dout


class BookPeekySeq2seq(_BookSeq2seq):
    """The book's ``PeekySeq2seq`` (``ch07/peeky_seq2seq.py``): Encoder and PeekyDecoder."""


class BookAttentionSeq2seq(_BookSeq2seq):
    """The book's ``AttentionSeq2seq`` (``ch08/attention_seq2seq.py``)."""

    _encoder = _AttentionEncoder
    _decoder = _AttentionDecoder
    _peeky = False


BOOK_MODELS = {"PeekySeq2seq": BookPeekySeq2seq, "AttentionSeq2seq": BookAttentionSeq2seq}


# -------------------------------------------------------------------- data


def batches(sizes: dict[str, int], batch: int, count: int = BATCHES, seed: int = 0):
    """``(xs, ts)``: ``(count, batch, question)`` and ``(count, batch, answer)`` int64 ids.

    Random ids in ``0..vocab-1``, each answer starting with :data:`START_ID`
    (the book's ``_``).
    """
    rng = np.random.default_rng(seed)
    V = sizes["vocab"]
    xs = rng.integers(0, V, (count, batch, sizes["question"]))
    ts = rng.integers(0, V, (count, batch, sizes["answer"]))
    ts[:, :, 0] = START_ID
    return xs.astype(np.int64), ts.astype(np.int64)


# -------------------------------------------------------------- candidates


def _book_step(data, sizes, kind) -> Step:
    model = BOOK_MODELS[kind](sizes["vocab"], sizes["wordvec"], sizes["hidden"], seed=0)
    opt, acc, clock = BookAdam(LR), _parts(True), _clock(None)

    def dedupe():
        return book_remove_duplicate(model.params, model.grads)

    def clip(params, grads):
        book_clip_grads(grads, MAX_GRAD)

    step = _phases(
        _Cycle(*data), clock, acc, model.forward, model.backward, clip, opt.update, dedupe
    )
    return step, acc


def _xpnn_model(spec: str, sizes, kind, dtype=None):
    V, D, H = sizes["vocab"], sizes["wordvec"], sizes["hidden"]
    with xpnn.use_backend(spec):
        return getattr(xpnn.models, kind)(V, D, H, seed=0, dtype=dtype)


def _xpnn_step(spec: str, data, sizes, kind, sync=None) -> Step:
    model = _xpnn_model(spec, sizes, kind)
    return _model_step(spec, data, model, xpnn.Adam(lr=LR), MAX_GRAD, sync)


GRAPH_PART = "graph: forward, backward, clip"


def _xpnn_graph_step(data, sizes, kind, sync) -> Step:
    """xpnn on CuPy: the batch copied into fixed buffers, one graph launch, Adam eagerly."""
    from xpnn.backend import CudaGraph
    from xpnn.training import clip_grads

    model = _xpnn_model("cupy:0", sizes, kind)
    with xpnn.use_backend("cupy:0"):
        cycle = _Cycle(xpnn.asarray(data[0]), xpnn.asarray(data[1]))
        xb, tb = xpnn.asarray(data[0][0]), xpnn.asarray(data[1][0])
    opt, clock = xpnn.Adam(lr=LR), _clock(sync)
    acc = {GRAPH_PART: 0.0, "update": 0.0}

    def body():
        model.forward(xb, tb)
        model.backward()
        clip_grads(model.grads, MAX_GRAD)

    graph = CudaGraph(xb)
    graph.run_eagerly(body)  # kernels compiled, the layers' buffers in the graph's pool
    graph.record(body)

    def step():
        xs, ts = cycle()
        t0 = clock()
        xb[...] = xs  # copies on the device, ordered before the launch
        tb[...] = ts
        graph.launch()
        t1 = clock()
        opt.update(model.params, model.grads)
        t2 = clock()
        acc[GRAPH_PART] += t1 - t0
        acc["update"] += t2 - t1

    return step, acc


class TorchSeq2seq:
    """PyTorch eager PeekySeq2seq / AttentionSeq2seq: ``nn.LSTM`` and the book's attention.

    The encoder: ``nn.Embedding``, ``nn.LSTM``; the decoder's ``nn.LSTM``
    starts from the encoder's last ``h`` (``c`` zeros). Peeky: that ``h``
    concatenated before every step's embedding and LSTM output, as the
    book's. Attention: weights ``softmax(dec_hs @ hs^T)`` over the encoder
    steps, the context ``a @ hs``, ``[c, dec_hs]`` into the affine. The
    loss is ``cross_entropy`` over the ``N * (T - 1)`` scored steps.
    """

    def __init__(self, torch, kind, sizes, device="cpu", seed=0):
        self.torch, self.peeky = torch, kind == "PeekySeq2seq"
        nn = torch.nn
        V, D, H = sizes["vocab"], sizes["wordvec"], sizes["hidden"]
        torch.manual_seed(seed)
        extra = H if self.peeky else 0
        self.enc_embed = nn.Embedding(V, D).to(device)
        self.enc_lstm = nn.LSTM(D, H, batch_first=True).to(device)
        self.dec_embed = nn.Embedding(V, D).to(device)
        self.dec_lstm = nn.LSTM(extra + D, H, batch_first=True).to(device)
        self.affine = nn.Linear(2 * H, V).to(device)
        self.modules = {
            "encoder": (self.enc_embed, self.enc_lstm),
            "decoder": (self.dec_embed, self.dec_lstm),
        }
        self.params = [
            p
            for m in (self.enc_embed, self.enc_lstm, self.dec_embed, self.dec_lstm, self.affine)
            for p in m.parameters()
        ]
        self.opt = torch.optim.Adam(self.params, lr=LR)

    def loss(self, xs, ts):
        torch = self.torch
        decoder_xs, decoder_ts = ts[:, :-1], ts[:, 1:]
        hs, _ = self.enc_lstm(self.enc_embed(xs))
        h = hs[:, -1, :]
        state = (h.unsqueeze(0), torch.zeros_like(h).unsqueeze(0))
        out = self.dec_embed(decoder_xs)
        if self.peeky:
            N, T = decoder_xs.shape
            hr = h.unsqueeze(1).expand(N, T, h.shape[1])
            out, _ = self.dec_lstm(torch.cat((hr, out), dim=2), state)
            out = torch.cat((hr, out), dim=2)
        else:
            dec_hs, _ = self.dec_lstm(out, state)
            a = torch.softmax(dec_hs @ hs.transpose(1, 2), dim=2)  # (N, T_dec, T_enc)
            out = torch.cat((a @ hs, dec_hs), dim=2)
        score = self.affine(out)
        return torch.nn.functional.cross_entropy(
            score.reshape(-1, score.shape[-1]), decoder_ts.reshape(-1)
        )

    # nn.LSTM's gates are i, f, g, o; the book's f, g, i, o.
    _TO_TORCH, _TO_BOOK = (2, 0, 1, 3), (1, 2, 0, 3)

    def _gates(self, a, order):
        torch = self.torch
        blocks = torch.chunk(a, 4, dim=-1)
        return torch.cat([blocks[k] for k in order], dim=-1)

    def load(self, arrays: dict[str, Any]) -> None:
        """Set the weights from the book's arrays by xpnn's names (``encoder.embed_W``...).

        ``lstm_b`` goes into ``bias_ih``; ``bias_hh`` is zeroed.
        """
        torch = self.torch
        with torch.no_grad():
            for part, (embed, lstm) in self.modules.items():

                def get(name, part=part):
                    return torch.as_tensor(np.asarray(arrays[f"{part}.{name}"]))

                embed.weight.copy_(get("embed_W"))
                lstm.weight_ih_l0.copy_(self._gates(get("lstm_Wx"), self._TO_TORCH).T)
                lstm.weight_hh_l0.copy_(self._gates(get("lstm_Wh"), self._TO_TORCH).T)
                lstm.bias_ih_l0.copy_(self._gates(get("lstm_b"), self._TO_TORCH))
                lstm.bias_hh_l0.zero_()
            self.affine.weight.copy_(torch.as_tensor(np.asarray(arrays["decoder.affine_W"])).T)
            self.affine.bias.copy_(torch.as_tensor(np.asarray(arrays["decoder.affine_b"])))

    def grads(self) -> dict[str, Any]:
        """The gradients as the book's arrays (NumPy), by xpnn's names, after ``backward``."""
        out = {}
        for part, (embed, lstm) in self.modules.items():
            out[f"{part}.embed_W"] = embed.weight.grad
            out[f"{part}.lstm_Wx"] = self._gates(lstm.weight_ih_l0.grad.T, self._TO_BOOK)
            out[f"{part}.lstm_Wh"] = self._gates(lstm.weight_hh_l0.grad.T, self._TO_BOOK)
            out[f"{part}.lstm_b"] = self._gates(lstm.bias_ih_l0.grad, self._TO_BOOK)
        out["decoder.affine_W"] = self.affine.weight.grad.T
        out["decoder.affine_b"] = self.affine.bias.grad
        return {k: v.detach().cpu().numpy() for k, v in out.items()}


def _torch_step(data, sizes, kind, device="cpu", sync=None) -> Step | None:
    try:
        import torch
    except ImportError:
        return None
    model = TorchSeq2seq(torch, kind, sizes, device)
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


def _floor_steps(sizes, batch, kind) -> dict[str, Step]:
    """The iteration's matrix products alone, forward and backward, at their least count.

    Per LSTM: all steps' ``x @ Wx`` as one product, T products ``h @ Wh``
    forward and T ``dA @ Wh^T`` backward, ``dWx``, ``dWh``, ``dx`` as one
    product each; the affine's forward, ``dW``, ``dx``; for attention, the
    scores and the context as batched products, forward and backward (six).
    """
    V, D, H, Tq, Ta = (sizes[k] for k in ("vocab", "wordvec", "hidden", "question", "answer"))
    N, Td = batch, Ta - 1
    peeky = kind == "PeekySeq2seq"
    rng = np.random.default_rng(7)

    def r(*shape):
        return rng.standard_normal(shape, np.float32)

    D_dec = D + (H if peeky else 0)  # the peeky decoder's LSTM sees [h, embedding]
    arrays: dict[str, Any] = {
        # per LSTM: xs (N T, D), Wx, Wh, dA of all steps (N T, 4H), hs (N T, H), T
        "lstms": [
            (r(N * T, d), r(d, 4 * H), r(H, 4 * H), r(N * T, 4 * H), r(N * T, H), T)
            for d, T in ((D, Tq), (D_dec, Td))
        ],
        "h": r(N, H),
        "dA": r(N, 4 * H),
        "affine": (r(N * Td, 2 * H), r(2 * H, V), r(N * Td, V)),
        "attention": None if peeky else (r(N, Tq, H), r(N, Td, H), r(N, Td, Tq)),
    }

    def products(a, tr, bt):
        for x, Wx, Wh, dA, hs, T in a["lstms"]:
            _ = x @ Wx
            for _ in range(T):
                _ = a["h"] @ Wh
                _ = a["dA"] @ tr(Wh)
            _ = tr(x) @ dA, tr(hs) @ dA, dA @ tr(Wx)
        y, W, ds = a["affine"]
        _ = y @ W, tr(y) @ ds, ds @ tr(W)
        if a["attention"] is not None:
            hs, dec, w = a["attention"]
            _ = dec @ bt(hs), w @ hs  # scores, context
            _ = dec @ bt(hs), bt(w) @ dec, w @ hs, bt(w) @ dec  # their gradients

    def numpy_floor():
        products(arrays, lambda m: m.T, lambda m: np.swapaxes(m, 1, 2))

    steps: dict[str, Step] = {FLOOR_NUMPY: (numpy_floor, {})}
    try:
        import torch
    except ImportError:
        return steps

    def to_torch(v):
        if isinstance(v, np.ndarray):
            return torch.from_numpy(v)
        if isinstance(v, (list, tuple)):
            return type(v)(to_torch(u) for u in v)
        return v

    tarrays = {k: to_torch(v) for k, v in arrays.items()}

    def torch_floor():
        products(tarrays, lambda m: m.T, lambda m: m.transpose(1, 2))

    steps[FLOOR_TORCH] = (torch_floor, {})
    return steps


# -------------------------------------------------------------------- case


def _targets(timed, targets) -> dict[str, Any]:
    out = {}
    for ref, path, goal in targets:
        t = _target(timed, ref, path, goal)
        t["floor"] = None
        if t["met"] is False:
            floors = (FLOOR_NUMPY, FLOOR_TORCH)
            t["floor"] = _floor_note(timed, ref, path, goal, floors, "the matrix products alone")
        out[f"{ref} / {path} >= {goal:g}"] = t
    return out


def _gpu_part(specs, batch, repeats, repeat_s, warmup, pause_s) -> dict[str, Any]:
    """xpnn on CuPy (eager, CUDA graph) and torch:cuda, PyTorch CUDA eager (when each runs)."""
    have_cupy, torch_cuda, sync = _gpus()
    if not (have_cupy or torch_cuda):
        return {"status": NO_GPU}

    result: dict[str, Any] = {"status": "measured", "models": {}}
    for label, (kind, sizes) in specs.items():
        data = batches(sizes, batch)
        steps: dict[str, Step] = {}
        failed: dict[str, Any] = {}
        if have_cupy:
            steps[GPU_CUPY] = _xpnn_step("cupy:0", data, sizes, kind, sync)
            try:
                steps[GPU_GRAPH] = _xpnn_graph_step(data, sizes, kind, sync)
            except Exception as e:  # reported, not raised
                failed[GPU_GRAPH] = {"status": f"did not run: {type(e).__name__}: {e}"}
        if torch_cuda:
            steps[GPU_XPNN_TORCH] = _xpnn_step("torch:cuda", data, sizes, kind, sync)
            steps[GPU_TORCH] = _torch_step(data, sizes, kind, "cuda", sync)  # type: ignore[assignment]
        timed: dict[str, Any] = _measure(steps, repeats, repeat_s, warmup, pause_s, sync)
        timed.update(failed)
        result["models"][label] = {"candidates": timed, "targets": _targets(timed, GPU_TARGETS)}
    return result


def bench_seq2seq(
    batch: int = BATCH,
    models: tuple[str, ...] = tuple(MODELS),
    sizes: dict[str, int] | None = None,
    repeats: int = 7,
    repeat_s: float = 0.5,
    warmup: int = 2,
    pause_s: float = PAUSE_S,
    quick: bool = False,
) -> dict[str, Any]:
    """One seq2seq iteration per model: the book's algorithm, xpnn, PyTorch eager, floors.

    Args:
        batch: The rows N (the book's 128).
        models: Names of :data:`MODELS` to run.
        sizes: Sizes (``vocab``, ``wordvec``, ``hidden``, ``question``,
            ``answer``) every model takes instead of its own, any of them.
        repeats: Timed repeats per candidate (each a median's sample).
        repeat_s: Least seconds per repeat (iterations per repeat chosen from the warmup).
        warmup: Untimed iterations per candidate before the repeats.
        pause_s: Quiet before each timed repeat.
        quick: The tiny sizes of :data:`QUICK` (a test's: a second), over the others.

    Returns:
        ``unit``, ``settings``, ``models`` (per model: its sizes,
        ``candidates``, per name median/min/max ms per iteration,
        ``repeats``, ``steps per repeat``, ``parts`` with median/min/max ms
        each, ``speed-up`` = its median over xpnn numpy's, or ``status``
        when it did not run; ``targets``, ``{name: {"goal", "value", "met",
        "floor"}}``, ``floor`` explaining a target not met), ``gpu``
        (``{"status": ...}``, with ``models`` when measured).
    """
    if quick:
        sizes, batch = QUICK["sizes"], QUICK["batch"]
        repeats, repeat_s = QUICK["repeats"], QUICK["repeat_s"]
        warmup, pause_s = QUICK["warmup"], QUICK["pause_s"]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; valid: {', '.join(MODELS)}")
    bad = sorted(set(sizes or {}) - set(MODELS[next(iter(MODELS))][1]))
    if bad:
        raise ValueError(
            f"unknown size {bad[0]!r}; valid: vocab, wordvec, hidden, question, answer"
        )
    if (sizes or {}).get("answer", 2) < 2:
        raise ValueError("sizes['answer'] must be >= 2: the decoder is fed ts[:, :-1]")
    specs = {m: (MODELS[m][0], {**MODELS[m][1], **(sizes or {})}) for m in models}
    out: dict[str, Any] = {}
    for label, (kind, sz) in specs.items():
        data = batches(sz, batch)
        steps: dict[str, Step] = {
            BOOK: _book_step(data, sz, kind),
            XPNN: _xpnn_step("numpy", data, sz, kind),
        }
        missing: dict[str, Any] = {}
        ref = _torch_step(data, sz, kind)
        if ref is None:
            missing = {n: {"status": NO_TORCH} for n in (XPNN_TORCH, TORCH)}
        else:
            steps[XPNN_TORCH] = _xpnn_step("torch:cpu", data, sz, kind)
            steps[TORCH] = ref
        steps.update(_floor_steps(sz, batch, kind))
        timed = _measure(steps, repeats, repeat_s, warmup, pause_s)
        base = timed[XPNN]["median"]
        for r in timed.values():
            r["speed-up"] = r["median"] / base
        floors = {k: v for k, v in timed.items() if k.startswith("floor")}
        cands = {k: v for k, v in timed.items() if not k.startswith("floor")}
        out[label] = {
            "kind": kind,
            **sz,
            "candidates": {**cands, **missing, **floors},
            "targets": _targets(timed, TARGETS),
        }
    return {
        "unit": "ms/iteration",
        "settings": {
            "batch": batch,
            "optimizer": f"Adam(lr={LR})",
            "max_grad": MAX_GRAD,
            "data": f"random ids, {BATCHES} batches cycled, answers start with id {START_ID}, "
            "seed 0",
            "repeats": repeats,
            "repeat_s": repeat_s,
            "warmup": warmup,
            "pause_s": pause_s,
            "quick": quick,
        },
        "models": out,
        "gpu": _gpu_part(specs, batch, max(3, repeats // 2), repeat_s, warmup, pause_s),
    }


# ------------------------------------------------------------------ report

_PARTS = ("forward", "backward", "duplicate removal", "clip", GRAPH_PART, "update")


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


def _target_lines(targets: dict[str, Any], missing: str = NO_TORCH) -> list[str]:
    lines = []
    for name, t in targets.items():
        if t["value"] is None:
            lines.append(f"    target {name}: {missing}")
            continue
        lines.append(f"    target {name}: {t['value']:.2f}: {'met' if t['met'] else 'NOT met'}")
        if t.get("floor"):
            lines.append(f"      why: {t['floor']}")
    return lines


def format_seq2seq(result: dict[str, Any]) -> list[str]:
    """The seq2seq case as plain-text lines."""
    s = result["settings"]
    lines = [
        f"  seq2seq iteration: batch {s['batch']}, {s['optimizer']}, clip_grads {s['max_grad']}, "
        "float32",
        "  median ms/iteration (min-max), time / xpnn numpy's, [repeats x iterations];"
        " parts below, median ms",
    ]
    for label, m in result["models"].items():
        lines.append(
            f"  {label}: {m['kind']}, V {m['vocab']}, wordvec {m['wordvec']}, hidden "
            f"{m['hidden']}, questions {m['question']}, answers {m['answer']} ids"
        )
        lines += _rows(m["candidates"])
        lines += _target_lines(m["targets"])
    gpu = result["gpu"]
    if gpu.get("status") != "measured":
        lines.append(f"  GPU: {gpu['status']}")
    else:
        lines.append("  GPU:")
        for label, m in gpu["models"].items():
            lines.append(f"  {label}:")
            lines += _rows(m["candidates"])
            lines += _target_lines(m["targets"], "not measured (a candidate did not run)")
    return lines

"""Vol. 2 ch. 8's ``AttentionSeq2seq`` on every backend: the book's weights and lists,
central differences (float64), PyTorch autograd of the same computation, greedy
generation against the book's loop in NumPy, batched generation, the attention
weights, saving and refusals."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from _model_oracles import check_model_gradients, host, torch_lstm

import xpnn
from xpnn.io import load, save
from xpnn.models import (
    MODELS,
    AttentionDecoder,
    AttentionEncoder,
    AttentionSeq2seq,
    Encoder,
    Seq2seq,
)
from xpnn.models.seq2seq import eval_seq2seq, eval_seq2seq_batch

V, D, H, N, T_IN, T_OUT = 7, 4, 5, 2, 4, 5
NAMES = ["embed_W", "lstm_Wx", "lstm_Wh", "lstm_b"]
DEC_NAMES = [*NAMES, "affine_W", "affine_b"]


def make(seed=0, dtype="float64"):
    return AttentionSeq2seq(V, D, H, seed=seed, dtype=dtype)


def spread(model, seed=1, scale=0.5):
    """Weights of scale ~0.5, so every gradient is far from zero."""
    rng = np.random.default_rng(seed)
    model.params = [
        xpnn.asarray(rng.standard_normal(tuple(p.shape)) * scale, dtype=p.dtype)
        for p in model.params
    ]


def data(seed=0, n=N, t_in=T_IN, t_out=T_OUT):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, size=(n, t_in)), rng.integers(0, V, size=(n, t_out))


def reads_ids(backend) -> bool:
    """Whether the backend's ids are read (refused out of range): host memory only."""
    return backend.name in ("numpy", "torch") and not backend.is_gpu


# ---------------------------------------------------------------- lists and weights


def test_the_books_classes_attributes_params_and_grads(backend):
    model = make(dtype="float32")
    assert isinstance(model, Seq2seq) and MODELS["AttentionSeq2seq"] is AttentionSeq2seq
    assert type(model.encoder) is AttentionEncoder and isinstance(model.encoder, Encoder)
    assert type(model.decoder) is AttentionDecoder
    assert model.decoder.attention.params == [] and model.decoder.attention.grads == []
    assert model.params[0].dtype == backend.xp.float32
    parts = model.encoder.params + model.decoder.params
    assert all(a is b for a, b in zip(model.params, parts, strict=True))
    parts = model.encoder.grads + model.decoder.grads
    assert all(a is b for a, b in zip(model.grads, parts, strict=True))
    assert [tuple(p.shape) for p in model.params] == [
        (V, D), (D, 4 * H), (H, 4 * H), (4 * H,),
        (V, D), (D, 4 * H), (H, 4 * H), (4 * H,), (2 * H, V), (V,),
    ]  # fmt: skip
    assert list(model.named_arrays()) == [f"encoder.{k}" for k in NAMES] + [
        f"decoder.{k}" for k in DEC_NAMES
    ]
    assert model.encoder.lstm.stateful is False and model.decoder.lstm.stateful is True
    xs, ts = data()
    loss = model.forward(xpnn.asarray(xs), xpnn.asarray(ts))
    assert tuple(loss.shape) == () and loss.dtype == backend.xp.float32
    assert model.backward() is None
    assert [tuple(g.shape) for g in model.grads] == [tuple(p.shape) for p in model.params]
    # The encoder returns all its states; the decoder's backward returns their gradient.
    hs = model.encoder.forward(xpnn.asarray(xs))
    assert tuple(hs.shape) == (N, T_IN, H)
    score = model.decoder.forward(xpnn.asarray(ts[:, :-1]), hs)
    assert tuple(score.shape) == (N, T_OUT - 1, V)
    dhs = model.decoder.backward(backend.xp.ones_like(score))
    assert tuple(dhs.shape) == (N, T_IN, H) and dhs.dtype == hs.dtype
    assert model.encoder.backward(dhs) is None
    assert repr(model) == f"AttentionSeq2seq(vocab_size={V}, wordvec_size={D}, hidden_size={H})"


def test_the_books_initial_weights_from_the_seed(backend):
    a, b = AttentionSeq2seq(40, 30, 20, seed=3), AttentionSeq2seq(40, 30, 20, seed=3)
    c = AttentionSeq2seq(40, 30, 20, seed=4)
    for p, q in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(host(p), host(q))
    assert not np.array_equal(host(a.params[1]), host(c.params[1]))
    w = dict(zip(a.named_arrays(), (host(p) for p in a.params), strict=True))
    for part in ("encoder", "decoder"):
        assert 0.005 < w[f"{part}.embed_W"].std() < 0.02  # randn / 100
        for name in ("lstm_Wx", "lstm_Wh"):
            x = w[f"{part}.{name}"]
            assert 0.8 < x.std() * math.sqrt(x.shape[0]) < 1.2  # randn / sqrt(fan_in)
        assert not w[f"{part}.lstm_b"].any()
    x = w["decoder.affine_W"]
    assert x.shape == (40, 40)  # (2H, V)
    assert 0.8 < x.std() * math.sqrt(40) < 1.2 and not w["decoder.affine_b"].any()
    assert not np.array_equal(w["encoder.embed_W"], w["decoder.embed_W"])
    # The parts alone draw their own weights as the book's.
    enc = AttentionEncoder(40, 30, 20, seed=3)
    np.testing.assert_array_equal(host(enc.params[0]), w["encoder.embed_W"])
    dec = AttentionDecoder(40, 30, 20, seed=3, dtype="float64")
    assert [tuple(p.shape) for p in dec.params] == [tuple(p.shape) for p in a.params[4:]]
    assert dec.params[0].dtype == backend.xp.float64


# ---------------------------------------------------------------- gradients


def test_every_gradient_matches_central_differences(backend):
    model = make()
    spread(model)
    xs, ts = data(2)
    check_model_gradients(model, xpnn.asarray(xs), xpnn.asarray(ts), every_param_moves=True)


# ---------------------------------------------------------------- PyTorch autograd


def torch_attention(torch, enc_hs, dec_hs):
    """Each decoder step's softmax over T_enc of its dot products, and the weighted sum."""
    s = torch.einsum("nsh,nth->nts", enc_hs, dec_hs)  # (N, T_dec, T_enc)
    a = torch.softmax(s, dim=2)
    return torch.einsum("nts,nsh->nth", a, enc_hs), a


def torch_reference(torch, weights, xs, ts):
    """The loss and the gradients (``params`` order) of the book's AttentionSeq2seq."""
    w = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in weights]
    eW, eWx, eWh, eb, dW, dWx, dWh, db, aW, ab = w
    n = xs.shape[0]
    zeros = torch.zeros((n, H), dtype=torch.float64)
    enc_hs, _, _ = torch_lstm(torch, eW[torch.from_numpy(xs)], eWx, eWh, eb, zeros, zeros)
    dec_x, dec_t = ts[:, :-1], ts[:, 1:]
    # The decoder's LSTM starts from the last encoder state, c from zeros.
    dec_hs, _, _ = torch_lstm(
        torch, dW[torch.from_numpy(dec_x)], dWx, dWh, db, enc_hs[:, -1], zeros
    )
    c, _ = torch_attention(torch, enc_hs, dec_hs)
    scores = torch.cat((c, dec_hs), dim=2) @ aW + ab  # the context first
    rows = scores.reshape(-1, V)
    logp = torch.log_softmax(rows, dim=1)
    loss = -logp[torch.arange(rows.shape[0]), torch.from_numpy(dec_t.reshape(-1))].mean()
    loss.backward()
    return float(loss.detach()), [a.grad.numpy() for a in w]


def test_loss_and_every_gradient_are_torch_autograds(backend):
    torch = pytest.importorskip("torch")
    model = make(seed=4)
    spread(model, seed=5)
    weights = [host(p) for p in model.params]
    # Several batches (one encoder step, one row too): nothing of one leaks into the next.
    for seed, n, t_in, t_out in ((6, 3, T_IN, T_OUT), (7, 2, 6, 3), (8, 1, 1, 2), (9, 3, 3, 4)):
        xs, ts = data(seed, n=n, t_in=t_in, t_out=t_out)
        loss = model.forward(xpnn.asarray(xs), xpnn.asarray(ts))
        model.backward()
        want_loss, want_grads = torch_reference(torch, weights, xs, ts)
        assert float(xpnn.to_numpy(loss)) == pytest.approx(want_loss, rel=1e-12, abs=1e-12)
        for i, (got, want) in enumerate(zip(model.grads, want_grads, strict=True)):
            # One encoder step starts from h = 0: its lstm_Wh has no gradient then.
            assert np.abs(want).max() > 1e-6 or (t_in == 1 and i == 2), i
            np.testing.assert_allclose(
                host(got), want, rtol=1e-10, atol=1e-12, err_msg=f"batch {seed}, grads[{i}]"
            )


# ---------------------------------------------------------------- generation


def np_lstm_step(x, h, c, Wx, Wh, b):
    A = x @ Wx + h @ Wh + b
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    f, g, i, o = (
        sig(A[:, :H]),
        np.tanh(A[:, H : 2 * H]),
        sig(A[:, 2 * H : 3 * H]),
        sig(A[:, 3 * H :]),
    )
    c = f * c + g * i
    return o * np.tanh(c), c


def book_generate(weights, question, start_id, sample_size):
    """The book's ``AttentionSeq2seq.generate`` in NumPy, one row; and each step's weights."""
    eW, eWx, eWh, eb, dW, dWx, dWh, db, aW, ab = weights
    h, c = np.zeros((1, H)), np.zeros((1, H))
    enc_hs = []
    for t in range(question.shape[1]):
        h, c = np_lstm_step(eW[question[:, t]], h, c, eWx, eWh, eb)
        enc_hs.append(h)
    enc_hs = np.stack(enc_hs, axis=1)  # (1, T_enc, H)
    h, c = enc_hs[:, -1], np.zeros((1, H))  # lstm.set_state(h): c starts at zeros
    sampled, attention = [], []
    sample_id = start_id
    for _ in range(sample_size):
        x = np.array(sample_id).reshape((1, 1))
        h, c = np_lstm_step(dW[x[:, 0]], h, c, dWx, dWh, db)
        s = np.sum(enc_hs * h.reshape(1, 1, H), axis=2)  # (1, T_enc)
        a = np.exp(s - s.max(axis=1, keepdims=True))
        a /= a.sum(axis=1, keepdims=True)
        ctx = np.sum(enc_hs * a.reshape(1, -1, 1), axis=1)
        score = np.concatenate((ctx, h), axis=1) @ aW + ab
        sample_id = np.argmax(score.flatten())
        sampled.append(int(sample_id))
        attention.append(a)
    return sampled, attention


def test_generate_is_the_books_greedy_loop(backend):
    model = make(seed=8)
    spread(model, seed=15, scale=1.0)
    weights = [host(p) for p in model.params]
    xs, _ = data(10, n=6)
    seen, answers = set(), set()
    for row in range(6):
        q = xs[row : row + 1]
        got = model.generate(xpnn.asarray(q), 3, 6)
        want, attention = book_generate(weights, q, 3, 6)
        assert got == want and all(type(i) is int for i in got)
        seen.update(got)
        answers.add(tuple(got))
        # Every step's attention is kept, as the book's loop computes it.
        kept = model.decoder.attention.attention_weights
        assert len(kept) == 6 and len(model.decoder.attention.layers) == 6
        for a, b in zip(kept, attention, strict=True):
            np.testing.assert_allclose(host(a), b, rtol=1e-12, atol=1e-14)
    assert len(seen) > 1 and len(answers) > 1  # not a constant answer
    # A NumPy question with the start id as a NumPy int, as the book passes them.
    q = xs[:1] if backend.name != "array_api_strict" else xpnn.asarray(xs[:1])
    assert model.generate(q, np.int64(3), 6) == book_generate(weights, xs[:1], 3, 6)[0]


def test_batched_generate_is_n_single_generates(backend):
    model = make(seed=11, dtype="float32")
    spread(model, seed=12, scale=1.0)
    xs, _ = data(13, n=5, t_in=7)
    batched = model.generate(xpnn.asarray(xs), 2, 4)
    assert isinstance(batched, list) and len(batched) == 5
    batched_weights = [host(a) for a in model.decoder.attention.attention_weights]
    assert [w.shape for w in batched_weights] == [(5, 7)] * 4
    singles = []
    for i in range(5):
        singles.append(model.generate(xpnn.asarray(xs[i : i + 1]), 2, 4))
        for t, a in enumerate(model.decoder.attention.attention_weights):
            np.testing.assert_allclose(host(a)[0], batched_weights[t][i], rtol=1e-5, atol=1e-6)
    assert batched == singles
    assert len({tuple(r) for r in batched}) > 1  # the rows differ
    ids = model.generate_ids(xpnn.asarray(xs), 2, 4)
    assert tuple(ids.shape) == (5, 4) and xpnn.backend_of(ids) == backend
    assert ids.dtype == backend.xp.int64 and np.asarray(xpnn.to_numpy(ids)).tolist() == batched
    # The decoder alone: N rows of encoder states give N lists, one row the book's flat list.
    hs = model.encoder.forward(xpnn.asarray(xs))
    assert model.decoder.generate(hs, 2, 4) == batched
    assert model.decoder.generate(hs[:1, :, :], 2, 4) == batched[0]


def test_the_attention_weights_of_every_step_sum_to_one(backend):
    """After ``forward``, one ``(N, T_enc)`` array per decoder step: the book's heat map."""
    model = make(seed=14)
    spread(model, seed=15, scale=1.0)
    xs, ts = data(16, n=3, t_in=6, t_out=5)
    model.forward(xpnn.asarray(xs), xpnn.asarray(ts))
    kept = model.decoder.attention.attention_weights
    assert len(kept) == 4  # T_out - 1 decoder steps
    d = np.array([host(a) for a in kept])  # visualize_attention.py: np.array(d)
    assert d.shape == (4, 3, 6)
    np.testing.assert_allclose(d.sum(axis=2), 1.0, rtol=0, atol=1e-12)
    assert (d >= 0).all() and d.max() - d.min() > 0.05  # not uniform: the steps attend
    # The book's one-question map: d.reshape(d.shape[0], d.shape[2]).
    model.forward(xpnn.asarray(xs[:1]), xpnn.asarray(ts[:1]))
    d1 = np.array([host(a) for a in model.decoder.attention.attention_weights])
    np.testing.assert_allclose(d1.reshape(d1.shape[0], d1.shape[2]), d[:, 0, :], rtol=1e-12)
    # After generate: one array per decoded step, each row summing to 1.
    model.generate(xpnn.asarray(xs), 0, 7)
    g = np.array([host(a) for a in model.decoder.attention.attention_weights])
    assert g.shape == (7, 3, 6)
    np.testing.assert_allclose(g.sum(axis=2), 1.0, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- saving


def test_save_and_load_round_trip(backend, tmp_path):
    model = make(seed=5)
    spread(model)
    path = save(model, tmp_path / "m.npz")
    with np.load(path) as f:
        assert "encoder.embed_W" in f.files and "decoder.affine_b" in f.files
    loaded = load(path)
    assert type(loaded) is AttentionSeq2seq and loaded.config == model.config == {
        "vocab_size": V, "wordvec_size": D, "hidden_size": H}  # fmt: skip
    assert type(loaded.encoder) is AttentionEncoder and type(loaded.decoder) is AttentionDecoder
    assert loaded.params[0].dtype == model.params[0].dtype
    for p, q in zip(loaded.params, model.params, strict=True):
        np.testing.assert_array_equal(host(p), host(q))
    xs, ts = (xpnn.asarray(a) for a in data(6))
    want = float(model.forward(xs, ts))
    assert float(loaded.forward(xs, ts)) == pytest.approx(want, rel=1e-12)
    assert loaded.generate(xs, 1, 3) == model.generate(xs, 1, 3)
    assert loaded.decoder.affine.params[0] is loaded.params[8]  # the layers hold the loaded
    assert loaded.encoder.lstm.params[0] is loaded.params[1]


def test_save_params_load_params_and_the_books_pickle(backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, other = make(seed=1), make(seed=2)
    spread(model)
    model.save_params()  # the book's AttentionSeq2seq.pkl, float16
    assert (tmp_path / "AttentionSeq2seq.pkl").exists()
    other.load_params()
    half = [host(p).astype(np.float16) for p in model.params]
    for p, q in zip(other.params, half, strict=True):
        np.testing.assert_array_equal(host(p), q.astype(np.float64))
    # The book's BaseModel.save_params: a pickle of the params list in float16.
    third = make(seed=3)
    with open(tmp_path / "book.pkl", "wb") as f:
        pickle.dump(half, f)
    third.load_params("book.pkl")
    for p, q in zip(third.params, half, strict=True):
        np.testing.assert_array_equal(host(p), q.astype(np.float64))


def test_config_refusals():
    good = {"vocab_size": 7, "wordvec_size": 4, "hidden_size": 5}
    shapes = AttentionSeq2seq.array_shapes(good)
    assert shapes["decoder.affine_W"] == (10, 7) and shapes["decoder.lstm_Wx"] == (4, 20)
    with pytest.raises(ValueError, match="exactly the keys"):
        AttentionSeq2seq.array_shapes({**good, "seed": 1})
    with pytest.raises(ValueError, match="'hidden_size' must be a positive int"):
        AttentionSeq2seq.array_shapes({**good, "hidden_size": 0})
    with pytest.raises(ValueError, match="positive int"):
        AttentionSeq2seq(7, 0, 3)
    with pytest.raises(ValueError, match="positive int"):
        AttentionDecoder(7, 4, -1)


# ---------------------------------------------------------------- refusals


def snapshot(model):
    return [host(p) for p in model.params], [host(g) for g in model.grads]


def test_refusals_leave_the_model_unchanged(backend):
    model = make(seed=6)
    spread(model)
    xs, ts = data(7)
    model.forward(xpnn.asarray(xs), xpnn.asarray(ts))
    model.backward()
    before = snapshot(model)
    attention = model.decoder.attention
    state = (model.encoder.hs, model.softmax.cache, attention.layers, attention.attention_weights)

    def unchanged():
        now = (model.encoder.hs, model.softmax.cache, attention.layers, attention.attention_weights)
        return all(a is b for a, b in zip(now, state, strict=True))

    bad = [
        (ValueError, "same rows", xs, ts[:1]),
        (ValueError, r"T >= 2", xs, ts[:, :1]),
        (ValueError, r"shape \(N, T\)", xs[:, :, None], ts),
        (ValueError, r"shape \(N, T\)", xs[:0], ts[:0]),
        (ValueError, r"shape \(N, T\)", xs[:, :0], ts),
        (TypeError, "integer", xs.astype(np.float64), ts),
        (TypeError, "integer", xs, ts.astype(np.float32)),
    ]
    if reads_ids(backend):
        bad += [
            (ValueError, "0..6", np.where(xs == xs[0, 0], V, xs), ts),
            (ValueError, "0..6", xs, np.where(ts == ts[0, 1], -2, ts)),
            (ValueError, "decoder inputs", xs, np.concatenate([ts[:, :2] * 0 - 1, ts], 1)),
        ]
    for error, match, x, t in bad:
        with pytest.raises(error, match=match):
            model.forward(xpnn.asarray(x), xpnn.asarray(t))
        assert unchanged()
    gen_bad = [
        (ValueError, "start_id", xs, V, 3),
        (TypeError, "start_id", xs, 1.0, 3),
        (TypeError, "start_id", xs, True, 3),
        (ValueError, "sample_size", xs, 1, 0),
        (ValueError, r"shape \(N, T\)", xs[0], 1, 3),
    ]
    if reads_ids(backend):
        gen_bad.append((ValueError, "0..6", xs + V, 1, 3))
    for error, match, x, start, size in gen_bad:
        with pytest.raises(error, match=match):
            model.generate(xpnn.asarray(x), start, size)
        assert unchanged()
    after = snapshot(model)
    for a, b in zip(before[0] + before[1], after[0] + after[1], strict=True):
        np.testing.assert_array_equal(a, b)
    # A target the loss ignores (-1) is taken, as TimeSoftmaxWithLoss takes it.
    t = ts.copy()
    t[0, -1] = -1
    assert math.isfinite(float(model.forward(xpnn.asarray(xs), xpnn.asarray(t))))


def test_backward_before_forward_is_refused():
    with pytest.raises(RuntimeError, match="forward pass first"):
        AttentionSeq2seq(V, D, H, seed=0).backward()


# ---------------------------------------------------------------- evaluation

CHARS = {0: "_", 1: "0", 2: "1", 3: "2", 4: "+", 5: " ", 6: "3"}


def test_eval_seq2seq_batch_is_the_mean_of_eval_seq2seq(backend):
    model = make(seed=17, dtype="float32")
    spread(model, seed=18, scale=1.0)
    xs, ts = data(19, n=9)
    ts[:, 0] = 0
    answers = model.generate(xpnn.asarray(xs), 0, T_OUT - 1)
    for i in range(0, 9, 2):  # about half answered right
        ts[i, 1:] = answers[i]
    want = sum(
        eval_seq2seq(model, xpnn.asarray(xs[i : i + 1]), ts[i : i + 1], CHARS) for i in range(9)
    )
    assert want >= 5
    for batch_size in (1, 4, 1000):
        got = eval_seq2seq_batch(
            model, xpnn.asarray(xs), xpnn.asarray(ts), 0, batch_size=batch_size
        )
        assert got == want / 9

"""Vol. 2 ch. 7's ``Seq2seq`` and ``PeekySeq2seq`` on every backend: the book's weights
and lists, central differences (float64), PyTorch autograd of the same computation,
greedy generation against the book's loop in NumPy, batched generation, saving,
refusals, ``eval_seq2seq`` and ``eval_seq2seq_batch``."""

from __future__ import annotations

import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from _model_oracles import check_model_gradients, host, torch_lstm

import xpnn
from xpnn.io import load, save
from xpnn.models import MODELS, Decoder, Encoder, PeekyDecoder, PeekySeq2seq, Seq2seq, seq2seq
from xpnn.models.seq2seq import eval_seq2seq, eval_seq2seq_batch
from xpnn.optimizers import Adam

V, D, H, N, T_IN, T_OUT = 7, 4, 5, 2, 4, 5
ALL = [Seq2seq, PeekySeq2seq]
NAMES = ["embed_W", "lstm_Wx", "lstm_Wh", "lstm_b"]
DEC_NAMES = [*NAMES, "affine_W", "affine_b"]


def make(cls, seed=0, dtype="float64"):
    return cls(V, D, H, seed=seed, dtype=dtype)


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


@pytest.mark.parametrize("cls", ALL)
def test_the_books_attributes_params_and_grads(backend, cls):
    model = make(cls, dtype="float32")
    assert isinstance(model.encoder, Encoder)
    assert type(model.decoder) is (PeekyDecoder if cls is PeekySeq2seq else Decoder)
    assert model.params[0].dtype == backend.xp.float32
    parts = model.encoder.params + model.decoder.params
    assert all(a is b for a, b in zip(model.params, parts, strict=True))
    parts = model.encoder.grads + model.decoder.grads
    assert all(a is b for a, b in zip(model.grads, parts, strict=True))
    extra = H if cls is PeekySeq2seq else 0
    assert [tuple(p.shape) for p in model.params] == [
        (V, D), (D, 4 * H), (H, 4 * H), (4 * H,),
        (V, D), (extra + D, 4 * H), (H, 4 * H), (4 * H,), (extra + H, V), (V,),
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
    assert MODELS[cls.__name__] is cls


@pytest.mark.parametrize("cls", ALL)
def test_the_books_initial_weights_from_the_seed(backend, cls):
    a, b, c = cls(40, 30, 20, seed=3), cls(40, 30, 20, seed=3), cls(40, 30, 20, seed=4)
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
    assert 0.8 < x.std() * math.sqrt(x.shape[0]) < 1.2 and not w["decoder.affine_b"].any()
    # The encoder and the decoder draw different numbers from the one generator.
    assert not np.array_equal(w["encoder.embed_W"], w["decoder.embed_W"])
    # An Encoder alone draws its own weights as the book's.
    enc = Encoder(40, 30, 20, seed=3)
    np.testing.assert_array_equal(host(enc.params[0]), w["encoder.embed_W"])


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("cls", ALL)
def test_every_gradient_matches_central_differences(backend, cls):
    model = make(cls)
    spread(model)
    xs, ts = data(2)
    check_model_gradients(model, xpnn.asarray(xs), xpnn.asarray(ts), every_param_moves=True)


# ---------------------------------------------------------------- PyTorch autograd


def torch_reference(torch, peeky, weights, xs, ts):
    """The loss and the gradients (``params`` order) of the book's seq2seq, by autograd."""
    w = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in weights]
    eW, eWx, eWh, eb, dW, dWx, dWh, db, aW, ab = w
    n = xs.shape[0]
    zeros = torch.zeros((n, H), dtype=torch.float64)
    enc = eW[torch.from_numpy(xs)]  # (N, T_in, D)
    h = torch_lstm(torch, enc, eWx, eWh, eb, zeros, zeros)[0][:, -1, :]
    dec_x, dec_t = ts[:, :-1], ts[:, 1:]
    out = dW[torch.from_numpy(dec_x)]
    hs = h[:, None, :].expand(n, dec_x.shape[1], H)
    if peeky:
        out = torch.cat((hs, out), dim=2)
    out, _, _ = torch_lstm(torch, out, dWx, dWh, db, h, zeros)  # c starts at zeros, as the book's
    if peeky:
        out = torch.cat((hs, out), dim=2)
    scores = out @ aW + ab
    rows = scores.reshape(-1, V)
    logp = torch.log_softmax(rows, dim=1)
    loss = -logp[torch.arange(rows.shape[0]), torch.from_numpy(dec_t.reshape(-1))].mean()
    loss.backward()
    return float(loss.detach()), [a.grad.numpy() for a in w]


@pytest.mark.parametrize("cls", ALL)
def test_loss_and_every_gradient_are_torch_autograds(backend, cls):
    torch = pytest.importorskip("torch")
    model = make(cls, seed=4)
    spread(model, seed=5)
    weights = [host(p) for p in model.params]
    for seed in (6, 7):  # two batches: nothing of the first leaks into the second
        xs, ts = data(seed, n=3)
        loss = model.forward(xpnn.asarray(xs), xpnn.asarray(ts))
        model.backward()
        want_loss, want_grads = torch_reference(torch, cls is PeekySeq2seq, weights, xs, ts)
        assert float(xpnn.to_numpy(loss)) == pytest.approx(want_loss, rel=1e-12, abs=1e-12)
        for i, (got, want) in enumerate(zip(model.grads, want_grads, strict=True)):
            assert np.abs(want).max() > 1e-6, i
            np.testing.assert_allclose(host(got), want, rtol=1e-9, atol=1e-12, err_msg=str(i))


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


def book_generate(weights, peeky, question, start_id, sample_size):
    """The book's ``Seq2seq.generate`` (and ``PeekyDecoder.generate``) in NumPy, one row."""
    eW, eWx, eWh, eb, dW, dWx, dWh, db, aW, ab = weights
    h, c = np.zeros((1, H)), np.zeros((1, H))
    for t in range(question.shape[1]):
        h, c = np_lstm_step(eW[question[:, t]], h, c, eWx, eWh, eb)
    peeky_h = h.reshape(1, H)
    c = np.zeros((1, H))  # lstm.set_state(h): c starts at zeros
    sampled = []
    sample_id = start_id
    for _ in range(sample_size):
        x = np.array(sample_id).reshape((1, 1))
        out = dW[x[:, 0]]
        if peeky:
            out = np.concatenate((peeky_h, out), axis=1)
        h, c = np_lstm_step(out, h, c, dWx, dWh, db)
        out = np.concatenate((peeky_h, h), axis=1) if peeky else h
        score = out @ aW + ab
        sample_id = np.argmax(score.flatten())
        sampled.append(int(sample_id))
    return sampled


@pytest.mark.parametrize("cls", ALL)
def test_generate_is_the_books_greedy_loop(backend, cls):
    model = make(cls, seed=8)
    spread(model, seed=9, scale=1.0)
    weights = [host(p) for p in model.params]
    xs, _ = data(10, n=6)
    seen = set()
    for row in range(6):
        q = xs[row : row + 1]
        got = model.generate(xpnn.asarray(q), 3, 6)
        want = book_generate(weights, cls is PeekySeq2seq, q, 3, 6)
        assert got == want and all(type(i) is int for i in got)
        seen.update(got)
    assert len(seen) > 1  # not a constant answer
    # A NumPy question with the model's start id as a NumPy int, as the book passes them.
    assert model.generate(xs[:1] if backend.name != "array_api_strict" else xpnn.asarray(xs[:1]),
                          np.int64(3), 6) == book_generate(weights, cls is PeekySeq2seq,
                                                           xs[:1], 3, 6)  # fmt: skip


@pytest.mark.parametrize("cls", ALL)
def test_batched_generate_is_n_single_generates(backend, cls):
    model = make(cls, seed=11, dtype="float32")
    spread(model, seed=12, scale=1.0)
    xs, _ = data(13, n=5, t_in=7)
    batched = model.generate(xpnn.asarray(xs), 2, 4)
    assert isinstance(batched, list) and len(batched) == 5
    singles = [model.generate(xpnn.asarray(xs[i : i + 1]), 2, 4) for i in range(5)]
    assert batched == singles
    ids = model.generate_ids(xpnn.asarray(xs), 2, 4)
    assert tuple(ids.shape) == (5, 4) and xpnn.backend_of(ids) == backend
    assert ids.dtype == backend.xp.int64 and np.asarray(xpnn.to_numpy(ids)).tolist() == batched


# ---------------------------------------------------------------- saving


@pytest.mark.parametrize("cls", ALL)
def test_save_and_load_round_trip(backend, tmp_path, cls):
    model = make(cls, seed=5)
    spread(model)
    path = save(model, tmp_path / "m.npz")
    with np.load(path) as f:
        assert "encoder.embed_W" in f.files and "decoder.affine_b" in f.files
    loaded = load(path)
    assert type(loaded) is cls and loaded.config == model.config == {
        "vocab_size": V, "wordvec_size": D, "hidden_size": H}  # fmt: skip
    assert loaded.params[0].dtype == model.params[0].dtype
    for p, q in zip(loaded.params, model.params, strict=True):
        np.testing.assert_array_equal(host(p), host(q))
    xs, ts = (xpnn.asarray(a) for a in data(6))
    want = float(model.forward(xs, ts))
    assert float(loaded.forward(xs, ts)) == pytest.approx(want, rel=1e-12)
    assert loaded.generate(xs, 1, 3) == model.generate(xs, 1, 3)
    assert loaded.decoder.affine.params[0] is loaded.params[8]  # the layers hold the loaded


@pytest.mark.parametrize("cls", ALL)
def test_save_params_load_params_and_the_books_pickle(backend, tmp_path, cls, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, other = make(cls, seed=1), make(cls, seed=2)
    spread(model)
    model.save_params()  # the book's ClassName.pkl, float16
    assert (tmp_path / f"{cls.__name__}.pkl").exists()
    other.load_params()
    half = [host(p).astype(np.float16) for p in model.params]
    for p, q in zip(other.params, half, strict=True):
        np.testing.assert_array_equal(host(p), q.astype(np.float64))
    # The book's BaseModel.save_params: a pickle of the params list in float16.
    third = make(cls, seed=3)
    with open(tmp_path / "book.pkl", "wb") as f:
        pickle.dump(half, f)
    third.load_params("book.pkl")
    for p, q in zip(third.params, half, strict=True):
        np.testing.assert_array_equal(host(p), q.astype(np.float64))


def test_config_refusals():
    good = {"vocab_size": 7, "wordvec_size": 4, "hidden_size": 5}
    assert PeekySeq2seq.array_shapes(good)["decoder.lstm_Wx"] == (9, 20)
    assert Seq2seq.array_shapes(good)["decoder.lstm_Wx"] == (4, 20)
    with pytest.raises(ValueError, match="exactly the keys"):
        Seq2seq.array_shapes({**good, "seed": 1})
    with pytest.raises(ValueError, match="'hidden_size' must be a positive int"):
        Seq2seq.array_shapes({**good, "hidden_size": 0})
    with pytest.raises(ValueError, match="positive int"):
        Seq2seq(7, 0, 3)


# ---------------------------------------------------------------- refusals


def snapshot(model):
    return [host(p) for p in model.params], [host(g) for g in model.grads]


@pytest.mark.parametrize("cls", ALL)
def test_refusals_leave_the_model_unchanged(backend, cls):
    model = make(cls, seed=6)
    spread(model)
    xs, ts = data(7)
    model.forward(xpnn.asarray(xs), xpnn.asarray(ts))
    model.backward()
    before = snapshot(model)
    hs, cache = model.encoder.hs, model.softmax.cache
    bad = [
        (ValueError, "same rows", xs, ts[:1]),
        (ValueError, r"T >= 2", xs, ts[:, :1]),
        (ValueError, r"shape \(N, T\)", xs[:, :, None], ts),
        (ValueError, r"shape \(N, T\)", xs[:0], ts[:0]),
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
        assert model.encoder.hs is hs and model.softmax.cache is cache
    gen_bad = [
        (ValueError, "start_id", xs, V, 3),
        (TypeError, "start_id", xs, 1.0, 3),
        (ValueError, "sample_size", xs, 1, 0),
        (ValueError, r"shape \(N, T\)", xs[0], 1, 3),
    ]
    if reads_ids(backend):
        gen_bad.append((ValueError, "0..6", xs + V, 1, 3))
    for error, match, x, start, size in gen_bad:
        with pytest.raises(error, match=match):
            model.generate(xpnn.asarray(x), start, size)
        assert model.encoder.hs is hs
    after = snapshot(model)
    for a, b in zip(before[0] + before[1], after[0] + after[1], strict=True):
        np.testing.assert_array_equal(a, b)
    # A target the loss ignores (-1) is taken, as TimeSoftmaxWithLoss takes it.
    t = ts.copy()
    t[0, -1] = -1
    assert math.isfinite(float(model.forward(xpnn.asarray(xs), xpnn.asarray(t))))


def test_backward_before_forward_is_refused():
    with pytest.raises(RuntimeError, match="forward pass first"):
        Seq2seq(V, D, H, seed=0).backward()


# ---------------------------------------------------------------- evaluation

CHARS = {0: "_", 1: "0", 2: "1", 3: "2", 4: "+", 5: " ", 6: "3"}


@pytest.mark.parametrize("cls", ALL)
def test_eval_seq2seq_is_the_books(backend, cls, capsys, monkeypatch):
    model = make(cls, seed=14)
    spread(model, seed=15, scale=1.0)
    xs, ts = data(16, n=4)
    ts[:, 0] = 0  # the start id '_'
    guess = model.generate(xpnn.asarray(xs[:1]), 0, T_OUT - 1)
    right = ts[:1].copy()
    right[0, 1:] = guess
    assert eval_seq2seq(model, xpnn.asarray(xs[:1]), xpnn.asarray(right), CHARS) == 1
    assert capsys.readouterr().out == ""
    wrong = right.copy()
    wrong[0, 1] = (wrong[0, 1] + 1) % V
    q = "".join(CHARS[i] for i in xs[0])
    g = "".join(CHARS[i] for i in guess)
    assert eval_seq2seq(model, xpnn.asarray(xs[:1]), wrong, CHARS, verbose=True) == 0
    t = "".join(CHARS[i] for i in wrong[0, 1:])
    assert capsys.readouterr().out == f"Q {q}\nT {t}\n\033[91m☒\033[0m {g}\n---\n"
    assert eval_seq2seq(model, xpnn.asarray(xs[:1]), right, CHARS, True, is_reverse=True) == 1
    assert capsys.readouterr().out == f"Q {q[::-1]}\nT {g}\n\033[92m☑\033[0m {g}\n---\n"
    monkeypatch.setattr(seq2seq, "os", SimpleNamespace(name="nt"))  # the book's Windows marks
    eval_seq2seq(model, xpnn.asarray(xs[:1]), right, CHARS, verbose=True)
    assert capsys.readouterr().out.endswith(f"O {g}\n---\n")
    assert xpnn.util.eval_seq2seq is eval_seq2seq


@pytest.mark.parametrize("cls", ALL)
def test_eval_seq2seq_batch_is_the_mean_of_eval_seq2seq(backend, cls):
    model = make(cls, seed=17, dtype="float32")
    spread(model, seed=18, scale=1.0)
    xs, ts = data(19, n=11)
    ts[:, 0] = 0
    answers = model.generate(xpnn.asarray(xs), 0, T_OUT - 1)
    for i in range(0, 11, 2):  # about half answered right
        ts[i, 1:] = answers[i]
    want = sum(
        eval_seq2seq(model, xpnn.asarray(xs[i : i + 1]), ts[i : i + 1], CHARS) for i in range(11)
    )
    assert want >= 6
    for batch_size in (1, 4, 11, 1000):
        got = eval_seq2seq_batch(
            model, xpnn.asarray(xs), xpnn.asarray(ts), 0, batch_size=batch_size
        )
        assert got == want / 11
    with pytest.raises(ValueError, match="same rows"):
        eval_seq2seq_batch(model, xpnn.asarray(xs), xpnn.asarray(ts[:3]), 0)
    with pytest.raises(ValueError, match="batch_size"):
        eval_seq2seq_batch(model, xpnn.asarray(xs), xpnn.asarray(ts), 0, batch_size=0)


# ---------------------------------------------------------------- training


def test_the_trainer_fits_it_with_clipping(backend):
    """Integer questions train through ``Trainer.fit`` (Adam, ``max_grad``) and learn."""
    model = PeekySeq2seq(V, 8, 16, seed=20)
    rng = np.random.default_rng(21)
    xs = rng.integers(1, V, size=(64, 4))
    ts = np.concatenate([np.zeros((64, 1), dtype=xs.dtype), xs[:, ::-1]], axis=1)  # reverse
    x, t = xpnn.asarray(xs), xpnn.asarray(ts)
    first = float(model.forward(x, t))
    trainer = xpnn.Trainer(model, Adam(lr=0.02))
    trainer.fit(x, t, max_epoch=15, batch_size=16, max_grad=5.0, verbose=False, progress=False)
    assert float(model.forward(x, t)) < 0.5 * first

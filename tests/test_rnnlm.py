"""Vol. 2 ch. 5-6's ``SimpleRnnlm``, ``Rnnlm``, ``BetterRnnlm`` and ``eval_perplexity``
on every backend: shapes, central differences (float64; BetterRnnlm's tied weight
and held dropout masks), training, saving and the book's perplexity."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from _model_oracles import check_model_gradients, host

import xpnn
from xpnn.io import load, save
from xpnn.models import MODELS, BetterRnnlm, Rnnlm, SimpleRnnlm
from xpnn.models.rnnlm import eval_perplexity
from xpnn.optimizers import SGD

V, D, H, N, T = 7, 4, 3, 2, 3


def make(cls, seed=0, dtype="float64", dropout_ratio=0.5):
    if cls is BetterRnnlm:  # weight tying: wordvec_size == hidden_size
        return BetterRnnlm(V, D, D, dropout_ratio, seed=seed, dtype=dtype)
    return cls(V, D, H, seed=seed, dtype=dtype)


def spread(model, seed=1):
    """Weights of scale ~0.5, so every gradient is far from zero."""
    rng = np.random.default_rng(seed)
    model.params = [
        xpnn.asarray(rng.standard_normal(tuple(p.shape)) * 0.5, dtype=p.dtype) for p in model.params
    ]


def ids(seed=0, n=N, t=T):
    rng = np.random.default_rng(seed)
    return xpnn.asarray(rng.integers(0, V, size=(n, t))), xpnn.asarray(rng.integers(0, V, (n, t)))


ALL = [SimpleRnnlm, Rnnlm, BetterRnnlm]


# ---------------------------------------------------------------- shapes and lists


@pytest.mark.parametrize("cls", ALL)
def test_shapes_params_and_grads(backend, cls):
    model = make(cls, dtype="float32")
    xs, ts = ids()
    scores = model.predict(xs)
    assert tuple(scores.shape) == (N, T, V) and scores.dtype == backend.xp.float32
    loss = model.forward(xs, ts)
    assert tuple(loss.shape) == ()
    assert model.backward() is None
    shapes = [tuple(p.shape) for p in model.params]
    assert shapes == [tuple(g.shape) for g in model.grads]
    assert next(iter(model.named_arrays().values())) is model.params[0]
    assert model.layers[0].params[0] is model.params[0]  # the embedding holds embed_W
    if cls is BetterRnnlm:
        g = 4 * D
        assert shapes == [(V, D), (D, g), (D, g), (g,), (D, g), (D, g), (g,), (V,)]
        # Tied: the affine computes with embed_W.T, which is listed once.
        np.testing.assert_array_equal(host(model.layers[-1].params[0]), host(model.params[0]).T)
        assert model.layers[-1].params[1] is model.params[7]
        assert model.lstm_layers == [model.layers[2], model.layers[4]]
    else:
        g = 4 * H if cls is Rnnlm else H
        assert shapes == [(V, D), (D, g), (H, g), (g,), (H, V), (V,)]
        assert all(
            a is b
            for a, b in zip(model.grads, [g for ly in model.layers for g in ly.grads], strict=True)
        )
    assert MODELS[cls.__name__] is cls


def test_the_book_init_and_seed(backend):
    a, b = Rnnlm(50, 30, 20, seed=3), Rnnlm(50, 30, 20, seed=3)
    for p, q in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(host(p), host(q))
    embed, wx, _, bias, aw, ab = (host(p) for p in a.params)
    assert a.params[0].dtype == backend.xp.float32
    assert 0.005 < embed.std() < 0.02  # randn / 100
    assert 0.1 < wx.std() * math.sqrt(30) < 2 and 0.1 < aw.std() * math.sqrt(20) < 2
    assert not bias.any() and not ab.any()


def test_state_carries_over_until_reset(backend):
    model = make(Rnnlm)
    spread(model)
    xs, ts = ids()
    first = float(model.forward(xs, ts))
    second = float(model.forward(xs, ts))  # starts from the first pass's h, c
    assert first != second
    model.reset_state()
    assert float(model.forward(xs, ts)) == pytest.approx(first, rel=1e-12)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("cls", [SimpleRnnlm, Rnnlm])
def test_full_backward_matches_central_differences(backend, cls):
    model = make(cls)
    spread(model)
    check_model_gradients(model, *ids(2), reset_state=True)


def test_better_rnnlm_tied_gradient_without_dropout(backend):
    model = make(BetterRnnlm)
    spread(model)
    check_model_gradients(model, *ids(3), reset_state=True, train_flg=False)


def test_better_rnnlm_tied_gradient_with_held_dropout_masks(backend):
    model = make(BetterRnnlm, dropout_ratio=0.4)
    spread(model)
    xs, ts = ids(4)
    model.forward(xs, ts, train_flg=True)  # draws the three masks
    masks = [host(layer.mask) for layer in model.drop_layers]
    assert all((m == 0).any() for m in masks)  # some units are dropped
    for layer in model.drop_layers:
        layer.hold_mask = True
    check_model_gradients(model, xs, ts, reset_state=True, train_flg=True)
    for layer, m in zip(model.drop_layers, masks, strict=True):
        np.testing.assert_array_equal(host(layer.mask), m)


def test_the_tied_gradient_is_the_sum_of_both_uses(backend):
    model = make(BetterRnnlm)
    spread(model)
    xs, ts = ids(5)
    model.forward(xs, ts, train_flg=False)
    model.backward()
    embed_part = host(model.layers[0].grads[0])
    affine_part = host(model.layers[-1].grads[0])
    assert np.abs(affine_part).max() > 0
    # grads[0] is the embedding layer's array, with the affine's transposed added.
    assert model.grads[0] is model.layers[0].grads[0]
    dout = model.loss_layer.backward()  # the layers' backward alone: no tying added
    for layer in reversed(model.layers):
        dout = layer.backward(dout)
    np.testing.assert_allclose(embed_part, host(model.grads[0]) + affine_part.T, atol=1e-12)


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("cls", ALL)
def test_sgd_steps_lower_the_loss_on_a_repeating_sequence(backend, cls):
    model = make(cls, dtype="float32", dropout_ratio=0.1)
    spread(model)
    corpus = np.arange(40) % V
    xs = xpnn.asarray(corpus[:-1].reshape(3, 13))
    ts = xpnn.asarray(corpus[1:].reshape(3, 13))
    opt = SGD(lr=2.0)
    losses = []
    for _ in range(60):
        model.reset_state()
        losses.append(float(model.forward(xs, ts)))
        model.backward()
        opt.update(model.params, model.grads)
    assert losses[-1] < 0.8 * losses[0], losses


# ---------------------------------------------------------------- saving


@pytest.mark.parametrize("cls", ALL)
def test_save_and_load_round_trip(backend, tmp_path, cls):
    model = make(cls, seed=5)
    spread(model)
    loaded = load(save(model, tmp_path / "m.npz"))
    assert type(loaded) is cls and loaded.config == model.config
    assert loaded.params[0].dtype == model.params[0].dtype
    for p, q in zip(loaded.params, model.params, strict=True):
        np.testing.assert_array_equal(host(p), host(q))
    xs, ts = ids(6)
    model.reset_state()
    kw = {"train_flg": True} if cls is BetterRnnlm else {}
    want = float(model.forward(xs, ts, **kw))  # BetterRnnlm: the same seeded masks
    assert float(loaded.forward(xs, ts, **kw)) == pytest.approx(want, rel=1e-12)
    assert loaded.layers[0].params[0] is loaded.params[0]


@pytest.mark.parametrize("cls", ALL)
def test_save_params_and_load_params(backend, tmp_path, cls, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, other = make(cls, seed=1), make(cls, seed=2)
    spread(model)
    path = model.save_params()  # the book's ClassName.pkl, float16
    assert (tmp_path / f"{cls.__name__}.pkl").exists(), path
    other.load_params()
    for p, q in zip(other.params, model.params, strict=True):
        np.testing.assert_array_equal(host(p), host(q).astype(np.float16).astype(np.float64))
    # The tied layer sees the loaded weight.
    xs, ts = ids(7)
    other.reset_state()
    model.params = [xpnn.asarray(host(p), dtype=p.dtype) for p in other.params]
    model.reset_state()
    kw = {"train_flg": False} if cls is BetterRnnlm else {}
    want = float(model.forward(xs, ts, **kw))
    assert float(other.forward(xs, ts, **kw)) == pytest.approx(want, rel=1e-12)


def test_config_refusals():
    good = {"vocab_size": 7, "wordvec_size": 4, "hidden_size": 4}
    assert Rnnlm.array_shapes(good)["lstm_Wx"] == (4, 16)
    with pytest.raises(ValueError, match="exactly the keys"):
        Rnnlm.array_shapes({**good, "extra": 1})
    with pytest.raises(ValueError, match="'hidden_size' must be a positive int"):
        SimpleRnnlm.array_shapes({**good, "hidden_size": 0})
    better = {**good, "dropout_ratio": 0.5, "seed": 1}
    assert BetterRnnlm.array_shapes(better)["embed_W"] == (7, 4)
    with pytest.raises(ValueError, match="wordvec_size == hidden_size"):
        BetterRnnlm.array_shapes({**better, "hidden_size": 3})
    with pytest.raises(ValueError, match="dropout_ratio"):
        BetterRnnlm.array_shapes({**better, "dropout_ratio": 1.0})
    with pytest.raises(ValueError, match="seed"):
        BetterRnnlm.array_shapes({**better, "seed": -1})
    with pytest.raises(ValueError, match="exactly the keys"):
        BetterRnnlm.array_shapes(good)
    with pytest.raises(ValueError, match="wordvec_size == hidden_size"):
        BetterRnnlm(7, 4, 3)
    with pytest.raises(ValueError, match="positive int"):
        Rnnlm(7, 0, 3)


def test_a_file_with_a_bad_config_is_refused(tmp_path):
    path = save(make(Rnnlm), tmp_path / "m.npz")
    with np.load(path) as data:
        arrays = dict(data)
    meta = json.loads(str(arrays["__xpnn__"]))
    meta["config"]["hidden_size"] = 5
    arrays["__xpnn__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(xpnn.io.ModelFileError):
        load(tmp_path / "bad.npz")


# ---------------------------------------------------------------- eval_perplexity


def book_perplexity(model, corpus, batch_size, time_size, **kw):
    """The book's loops, on the host, one forward per batch."""
    corpus_size = len(corpus)
    total = 0.0
    max_iters = (corpus_size - 1) // (batch_size * time_size)
    jump = (corpus_size - 1) // batch_size
    for iters in range(max_iters):
        xs = np.zeros((batch_size, time_size), dtype=np.int64)
        ts = np.zeros((batch_size, time_size), dtype=np.int64)
        offsets = [iters * time_size + i * jump for i in range(batch_size)]
        for t in range(time_size):
            for i, offset in enumerate(offsets):
                xs[i, t] = corpus[(offset + t) % corpus_size]
                ts[i, t] = corpus[(offset + t + 1) % corpus_size]
        total += float(model.forward(xpnn.asarray(xs), xpnn.asarray(ts), **kw))
    return math.exp(total / max_iters), max_iters


@pytest.mark.parametrize("cls", ALL)
def test_eval_perplexity_is_the_books(backend, cls):
    corpus = np.random.default_rng(8).integers(0, V, size=41)
    model = make(cls, seed=9)
    spread(model)
    kw = {"train_flg": False} if cls is BetterRnnlm else {}
    want, iters = book_perplexity(model, corpus, 3, 4, **kw)
    assert iters == 3
    model.reset_state()
    got = eval_perplexity(model, xpnn.asarray(corpus), 3, 4, verbose=False)
    assert got == pytest.approx(want, rel=1e-10)
    assert xpnn.util.eval_perplexity is eval_perplexity
    model.reset_state()
    assert eval_perplexity(model, corpus.tolist(), 3, 4, verbose=False) == pytest.approx(want)
    with pytest.raises(ValueError, match="more than"):
        eval_perplexity(model, corpus[:12], 3, 4, verbose=False)


# ---------------------------------------------------------------- the book's own pickles


def book_pickle(path, arrays):
    """What the book's ``BaseModel.save_params`` writes: a pickle of its ``params``
    list, each array ``astype(np.float16)``."""
    params = [np.asarray(p).astype(np.float16) for p in arrays]
    with open(path, "wb") as f:
        pickle.dump(params, f)
    return params


def book_better_list(model):
    """The book's BetterRnnlm ``params``: the layers' lists, the tied weight twice
    (the affine's ``embed_W.T``, a view of the same memory, before ``affine_b``)."""
    p = [host(a).astype(np.float32) for a in model.params]
    return [p[0], *p[1:7], p[0].T, p[7]]


@pytest.mark.parametrize("cls", [Rnnlm, SimpleRnnlm])
def test_a_book_pickle_loads_in_the_books_order(backend, tmp_path, cls):
    book = make(cls, seed=3)
    spread(book)
    saved = book_pickle(tmp_path / f"{cls.__name__}.pkl", [host(p) for p in book.params])
    model = make(cls, seed=4)
    model.load_params(tmp_path / f"{cls.__name__}.pkl")
    for p, s in zip(model.params, saved, strict=True):
        assert p.dtype == backend.xp.float64
        np.testing.assert_array_equal(host(p), s.astype(np.float64))
    book.params = [xpnn.asarray(s.astype(np.float64)) for s in saved]
    xs, ts = ids(8)
    book.reset_state()
    assert float(model.forward(xs, ts)) == pytest.approx(float(book.forward(xs, ts)), rel=1e-12)


def test_the_books_better_rnnlm_pickle_holds_the_tied_weight_twice(backend, tmp_path):
    book = make(BetterRnnlm, seed=3)
    spread(book)
    path = tmp_path / "BetterRnnlm.pkl"
    saved = book_pickle(path, book_better_list(book))
    assert len(saved) == 9 and saved[7].shape == (D, V)
    model = make(BetterRnnlm, seed=4)
    model.load_params(path)
    want = [saved[i] for i in (0, 1, 2, 3, 4, 5, 6, 8)]
    for p, s in zip(model.params, want, strict=True):
        np.testing.assert_array_equal(host(p), s.astype(np.float64))
    # The tied layer computes with the loaded weight.
    book.params = [xpnn.asarray(s.astype(np.float64)) for s in want]
    xs, ts = ids(9)
    got = float(model.forward(xs, ts, train_flg=False))
    assert got == pytest.approx(float(book.forward(xs, ts, train_flg=False)), rel=1e-12)
    # xpnn's own order, the weight once (8 arrays), loads too.
    other = make(BetterRnnlm, seed=5)
    book_pickle(tmp_path / "eight.pkl", want)
    other.load_params(tmp_path / "eight.pkl")
    np.testing.assert_array_equal(host(other.params[0]), host(model.params[0]))
    assert BetterRnnlm.book_aliases == {7: 0} and not Rnnlm.book_aliases


def test_a_book_list_whose_repeat_is_not_the_tied_weight_is_refused(backend, tmp_path):
    model = make(BetterRnnlm, seed=4)
    before = [host(p) for p in model.params]
    good = book_better_list(make(BetterRnnlm, seed=3))
    changed = [a.copy() for a in good]
    changed[7][1, 2] += 0.5
    wide = [*good[:7], np.zeros((D, V + 1), dtype=np.float32), good[8]]
    cases = {
        "changed.pkl": (changed, r"array 7 must be array 0 transposed .*their values differ"),
        "wide.pkl": (wide, r"array 7 must be array 0 transposed .*\(4, 8\)"),
        "ten.pkl": (
            [*good, good[8]],
            r"holds 10 arrays, BetterRnnlm has 8 \(9 in the book's list\)",
        ),
        "seven.pkl": (good[:7], "holds 7 arrays, BetterRnnlm has 8"),
    }
    for name, (arrays, match) in cases.items():
        book_pickle(tmp_path / name, arrays)
        with pytest.raises(xpnn.io.ModelFileError, match=match) as info:
            model.load_params(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    for p, b in zip(model.params, before, strict=True):
        np.testing.assert_array_equal(host(p), b)  # nothing changed
    rnnlm = make(Rnnlm)
    book_pickle(tmp_path / "r7.pkl", [host(p) for p in rnnlm.params] + [np.zeros(3)])
    with pytest.raises(xpnn.io.ModelFileError, match=r"holds 7 arrays, Rnnlm has 6$"):
        rnnlm.load_params(tmp_path / "r7.pkl")

"""Vol. 2 ch. 4's negative sampling and CBOW/SkipGram on every backend.

The sampler's draws (statistics against the book's sequential sampling
without replacement, the same ids on every backend), NegativeSamplingLoss
and the models against numerical gradients and PyTorch autograd with the
negative samples held (the sampler's ``draws`` set back before each forward
pass), training, saving and refused inputs.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import xpnn
from xpnn.gradient import numerical_gradient
from xpnn.layers import NegativeSamplingLoss, UnigramSampler
from xpnn.models import CBOW, MODELS, SkipGram

CLASSES = [CBOW, SkipGram]
IDS = ["cbow", "skipgram"]
TEXT = (
    "You say goodbye and I say hello. The cat sat on the mat and the dog sat on the log. "
    "I say the cat and the dog say hello."
)

#: A corpus of 7 words with unequal counts: word i occurs COUNTS[i] times.
COUNTS = [5, 1, 3, 8, 2, 1, 4]
#: Its ids, shuffled once.
SMALL = np.random.default_rng(0).permutation(np.repeat(np.arange(7), COUNTS))


def host(a) -> np.ndarray:
    return np.array(xpnn.to_numpy(a), dtype=np.float64, copy=True)


def ids(a) -> np.ndarray:
    return np.asarray(xpnn.to_numpy(a)).copy()


def corpus(values=SMALL):
    return xpnn.asarray(np.asarray(values), dtype="int64")


def book_words():
    from xpnn.util import create_contexts_target, preprocess

    c, word_to_id, _ = preprocess(TEXT)
    contexts, target = create_contexts_target(c, window_size=1)
    return c, len(word_to_id), contexts, target


def rel_error(a, b) -> float:
    a, b = host(a), host(b)
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-12)
    return float(np.max(np.abs(a - b))) / scale


# ------------------------------------------------------------ the sampler


def test_sampler_probabilities_and_shapes(backend, xp):
    s = UnigramSampler(corpus(), 0.75, 3, seed=1)
    assert s.vocab_size == 7 and s.sample_size == 3 and s.draws == 0
    p = np.asarray(COUNTS, dtype=np.float64) ** 0.75
    np.testing.assert_allclose(host(s.word_p), p / p.sum(), rtol=1e-12)
    np.testing.assert_array_equal(ids(s.counts), COUNTS)
    target = corpus([0, 3, 6, 1])
    sample = s.get_negative_sample(target)
    assert tuple(sample.shape) == (4, 3) and sample.dtype == xp.int64
    assert xpnn.backend_of(sample) == xpnn.backend_of(target)
    assert s.draws == 1


def test_sampler_rows_are_distinct_and_never_the_target(backend):
    s = UnigramSampler(corpus(), 0.75, 5, seed=2)
    t = np.arange(300) % 7
    got = ids(s.get_negative_sample(corpus(t)))
    assert all(len(set(row)) == 5 for row in got)
    assert not (got == t[:, None]).any()
    assert got.min() >= 0 and got.max() < 7


def _inclusion(p: np.ndarray, target: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact first-draw and inclusion probabilities of sequential sampling without replacement."""
    q = p.copy()
    q[target] = 0
    q /= q.sum()
    first, incl = q.copy(), np.zeros_like(q)
    words = [i for i in range(len(p)) if i != target]
    for seq in itertools.permutations(words, k):
        prob, left = 1.0, 1.0
        for w in seq:
            prob *= q[w] / left
            left -= q[w]
        incl[list(seq)] += prob
    return first, incl


def test_sampler_is_distributed_as_the_books_sequential_sampling(backend):
    s = UnigramSampler(corpus(), 0.75, 3, seed=3)
    n, target = 20000, 3
    got = ids(s.get_negative_sample(corpus(np.full(n, target))))
    p = host(s.word_p)
    first, incl = _inclusion(p, target, 3)
    seen_first = np.bincount(got[:, 0], minlength=7) / n
    seen = np.bincount(got.ravel(), minlength=7) / n
    tol = 5 * np.sqrt(0.25 / n)  # five standard deviations at worst
    np.testing.assert_allclose(seen_first, first, atol=tol)
    np.testing.assert_allclose(seen, incl, atol=tol)


def test_sampler_draws_the_same_ids_on_every_backend(backend):
    t = np.arange(50) % 7
    s = UnigramSampler(corpus(), 0.75, 4, seed=11)
    got = [ids(s.get_negative_sample(corpus(t))) for _ in range(2)]
    with xpnn.use_backend("numpy"):
        ref = UnigramSampler(corpus(), 0.75, 4, seed=11)
        want = [ids(ref.get_negative_sample(corpus(t))) for _ in range(2)]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(got[0], got[1])  # each draw is new
    s.draws = 0  # what a checkpoint's resume does: the same draws again
    np.testing.assert_array_equal(ids(s.get_negative_sample(corpus(t))), want[0])
    other = UnigramSampler(corpus(), 0.75, 4, seed=12)
    assert not np.array_equal(ids(other.get_negative_sample(corpus(t))), want[0])


def test_words_absent_from_the_corpus_are_never_drawn(backend):
    s = UnigramSampler(corpus([0, 1, 2, 4, 0, 1]), 1.0, 2, seed=0, vocab_size=6)
    got = ids(s.get_negative_sample(corpus(np.zeros(500, int))))
    assert not np.isin(got, [0, 3, 5]).any()
    assert host(s.word_p)[3] == 0


def test_sampler_refusals_change_nothing(backend):
    with pytest.raises(ValueError, match="at least 8 distinct words"):
        UnigramSampler(corpus(), 0.75, 7)
    with pytest.raises(ValueError, match="sample_size must be a positive int"):
        UnigramSampler(corpus(), 0.75, 0)
    with pytest.raises(TypeError, match="integer word ids"):
        UnigramSampler(xpnn.asarray(np.ones(5), dtype="float32"), 0.75, 2)
    with pytest.raises(ValueError, match="pass the vocabulary's size"):
        UnigramSampler(corpus(), 0.75, 2, vocab_size=5)
    with pytest.raises(ValueError, match="power must be"):
        UnigramSampler(corpus(), -1.0, 2)
    s = UnigramSampler(corpus(), 0.75, 2, seed=0)
    with pytest.raises(TypeError, match="integer word ids"):
        s.get_negative_sample(xpnn.asarray(np.zeros(3), dtype="float32"))
    with pytest.raises(ValueError, match="1-D"):
        s.get_negative_sample(corpus(np.zeros((2, 2), int)))
    assert s.draws == 0


# ------------------------------------------------------------ the loss


def _loss_case(sample_size=3, n=5, d=4):
    W = xpnn.default_rng(0).standard_normal((7, d), dtype="float64")
    h = xpnn.default_rng(1).standard_normal((n, d), dtype="float64")
    t = corpus(np.arange(n) % 7)
    return NegativeSamplingLoss(W, corpus(), sample_size=sample_size, seed=4), W, h, t


def _held(model_or_loss, sampler, *args):
    """Forward with the negative samples of draw 0 (the sampler set back first)."""
    sampler.draws = 0
    return model_or_loss.forward(*args)


def test_loss_backprop_equals_numerical_gradient(backend):
    loss, W, h, t = _loss_case()
    assert loss.params == [W] and len(loss.grads) == 1
    assert all(layer.params[0] is W for layer in loss.embed_dot_layers)
    _held(loss, loss.sampler, h, t)
    dh = host(loss.backward())
    dW = host(loss.grads[0])
    # One gradient, shared: each EmbeddingDot adds its rows into it.
    assert all(layer.grads[0] is loss.grads[0] for layer in loss.embed_dot_layers)
    num_W = numerical_gradient(lambda _: _held(loss, loss.sampler, h, t), W)
    num_h = numerical_gradient(lambda _: _held(loss, loss.sampler, h, t), h)
    assert rel_error(dW, num_W) <= 1e-5  # the book drops its 1e-7 in backward
    assert rel_error(dh, num_h) <= 1e-5


def test_loss_matches_torch_autograd(backend):
    torch = pytest.importorskip("torch")
    loss, W, h, t = _loss_case()
    value = float(host(_held(loss, loss.sampler, h, t)))
    neg = ids(loss.negative_sample)
    dh = host(loss.backward(2.0))
    dW = host(loss.grads[0])
    Wt = torch.tensor(host(W), requires_grad=True)
    ht = torch.tensor(host(h), requires_grad=True)
    tt, nt = torch.tensor(ids(t)), torch.tensor(neg)
    pos = (Wt[tt] * ht).sum(1)
    negs = (Wt[nt] * ht[:, None, :]).sum(2)
    # The book's loss keeps its 1e-7 inside the log; its backward is the exact one without it.
    with_eps = -torch.log(torch.sigmoid(pos) + 1e-7).mean() - sum(
        torch.log(1 - torch.sigmoid(negs[:, i]) + 1e-7).mean() for i in range(3)
    )
    exact = (
        -torch.nn.functional.logsigmoid(pos).mean()
        - torch.nn.functional.logsigmoid(-negs).mean(0).sum()
    )
    (2.0 * exact).backward()
    assert value == pytest.approx(with_eps.item(), rel=1e-12)
    np.testing.assert_allclose(dW, Wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh, ht.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_loss_refused_input_changes_nothing(backend):
    loss, _, h, t = _loss_case()
    with pytest.raises(ValueError, match=r"target \(N,\)"):
        loss.forward(h, t[:3])
    with pytest.raises(TypeError, match="integer target ids"):
        loss.forward(h, xpnn.asarray(np.zeros(5), dtype="float64"))
    with pytest.raises(RuntimeError, match="forward pass first"):
        loss.backward()
    assert loss.sampler.draws == 0 and loss.negative_sample is None


# ------------------------------------------------------------ the models


def _model(cls, dtype="float32", hidden=5, seed=0, **kw):
    c, vocab, contexts, target = book_words()
    return cls(vocab, hidden, 1, c, seed=seed, dtype=dtype, **kw), contexts, target


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_model_shapes_and_shared_weights(backend, xp, cls):
    model, contexts, target = _model(cls)
    W_in, W_out = model.params
    assert model.word_vecs is W_in and W_in.dtype == xp.float32
    assert tuple(W_in.shape) == tuple(W_out.shape) == (model.vocab_size, 5)
    if cls is CBOW:
        assert all(layer.params[0] is W_in for layer in model.in_layers)
        assert model.ns_loss.params[0] is W_out and model.grads[1] is model.ns_loss.grads[0]
    else:
        assert model.in_layer.params[0] is W_in and model.grads[0] is model.in_layer.grads[0]
        assert all(layer.params[0] is W_out for layer in model.loss_layers)
        assert all(layer.sampler is model.sampler for layer in model.loss_layers)
    loss = model.forward(contexts, target)
    assert tuple(loss.shape) == () and loss.dtype == xp.float32
    assert model.backward() is None
    assert MODELS[cls.__name__] is cls


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_model_backprop_equals_numerical_gradient(backend, cls):
    model, contexts, target = _model(cls, dtype="float64", hidden=3, seed=1, sample_size=2)
    for p in model.params:
        p[...] = p * 50
    contexts, target = contexts[:6, ...], target[:6]
    _held(model, model.sampler, contexts, target)
    model.backward()
    grads = [host(g) for g in model.grads]
    for p, g in zip(model.params, grads, strict=True):
        numeric = numerical_gradient(lambda _: _held(model, model.sampler, contexts, target), p)
        assert rel_error(g, numeric) <= 1e-5  # the book drops its 1e-7 in backward


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_model_matches_torch_autograd(backend, cls):
    torch = pytest.importorskip("torch")
    model, contexts, target = _model(cls, dtype="float64", hidden=3, seed=2, sample_size=2)
    for p in model.params:
        p[...] = p * 50
    value = float(host(model.forward(contexts, target)))
    losses = [model.ns_loss] if cls is CBOW else model.loss_layers
    negs = [torch.tensor(ids(layer.negative_sample)) for layer in losses]
    model.backward()
    W_in, W_out = (torch.tensor(host(p), requires_grad=True) for p in model.params)
    c, t = torch.tensor(ids(contexts)), torch.tensor(ids(target))

    def ns(h, words, neg):
        pos = (W_out[words] * h).sum(1)
        sc = (W_out[neg] * h[:, None, :]).sum(2)
        ls = torch.nn.functional.logsigmoid
        eps = (
            -torch.log(torch.sigmoid(pos) + 1e-7).mean()
            - torch.log(1 - torch.sigmoid(sc) + 1e-7).mean(0).sum()
        )
        return eps, -ls(pos).mean() - ls(-sc).mean(0).sum()

    if cls is CBOW:
        with_eps, exact = ns(W_in[c].mean(1), t, negs[0])
    else:
        pairs = [ns(W_in[t], c[:, i], negs[i]) for i in range(2)]
        with_eps, exact = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    exact.backward()
    assert value == pytest.approx(with_eps.item(), rel=1e-12)
    for got, ref in zip(model.grads, (W_in.grad, W_out.grad), strict=True):
        np.testing.assert_allclose(host(got), ref.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_trainer_fit_with_integer_words_lowers_the_loss(backend, cls):
    model, contexts, target = _model(cls, seed=0)
    trainer = xpnn.Trainer(model, xpnn.Adam(lr=0.05))
    fit = {"max_epoch": 30, "batch_size": 5, "verbose": False, "progress": False}
    trainer.fit(contexts, target, eval_interval=1, **fit)
    first, last = np.mean(trainer.loss_list[:5]), np.mean(trainer.loss_list[-5:])
    assert last < 0.6 * first, trainer.loss_list


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_save_and_load_round_trip(backend, tmp_path, cls):
    model, contexts, target = _model(cls, seed=3)
    loss = host(_held(model, model.sampler, contexts, target))
    path = xpnn.io.save(model, tmp_path / "w2v.npz")
    loaded = xpnn.io.load(path)
    assert type(loaded) is cls and loaded.config == model.config
    for a, b in zip(loaded.params, model.params, strict=True):
        np.testing.assert_array_equal(host(a), host(b))
    np.testing.assert_array_equal(host(loaded.sampler.word_p), host(model.sampler.word_p))
    # The same sampler (seed, counts): draw 0 gives the same loss.
    assert np.array_equal(host(_held(loaded, loaded.sampler, contexts, target)), loss)


@pytest.mark.parametrize(
    "change",
    [
        {"word_counts": [1, 2]},
        {"power": -1},
        {"seed": -1},
        {"window_size": 0},
        {"sample_size": 40},
    ],
    ids=["counts", "power", "seed", "window", "sample"],
)
def test_bad_configs_are_refused(backend, change):
    model, _, _ = _model(CBOW)
    config = {**model.config, **change}
    with pytest.raises(ValueError, match="CBOW config"):
        CBOW.array_shapes(config)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_model_refused_input_changes_nothing(backend, cls):
    model, contexts, target = _model(cls)
    loss = host(_held(model, model.sampler, contexts, target))
    model.backward()
    grads = [host(g) for g in model.grads]
    draws = model.sampler.draws
    bad = [
        (contexts[:, :1], target, ValueError, r"contexts of shape \(N, 2\)"),
        (contexts, target[:3], ValueError, r"target of shape \(N,\)"),
        (xpnn.asarray(host(contexts), dtype="float32"), target, TypeError, "integer word ids"),
        (contexts + 100, target, ValueError, "contexts"),
        (ids(contexts).tolist(), target, TypeError, "contexts must be an array"),
    ]
    for c, t, error, match in bad:
        if match == "contexts" and backend.spec.startswith("array_api_strict"):
            continue  # values are not read on a simulated device
        with pytest.raises(error, match=match):
            model.forward(c, t)
    assert model.sampler.draws == draws
    model.backward()
    for g, want in zip(model.grads, grads, strict=True):
        np.testing.assert_array_equal(host(g), want)
    assert np.array_equal(host(_held(model, model.sampler, contexts, target)), loss)


def test_backward_before_forward_is_refused(backend):
    for cls in CLASSES:
        model, _, _ = _model(cls)
        with pytest.raises(RuntimeError, match="forward pass first"):
            model.backward()


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_an_interrupted_fit_resumes_with_the_same_negative_samples(backend, tmp_path, cls):
    """A checkpoint records the sampler's seed and draws, as Dropout's."""
    from xpnn.training.callbacks import Callback

    class Interrupt(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 1:
                raise KeyboardInterrupt

    path = tmp_path / "w2v.ckpt.npz"
    run = {"batch_size": 5, "verbose": False, "progress": False, "checkpoint": path}
    model, contexts, target = _model(cls, seed=0)
    with pytest.raises(KeyboardInterrupt):
        xpnn.Trainer(model, xpnn.Adam()).fit(contexts, target, 4, callbacks=[Interrupt()], **run)
    assert model.sampler.draws > 0
    resumed, _, _ = _model(cls, seed=0)
    resumed.sampler.draws = 1234  # restored from the file, whatever it was
    xpnn.Trainer(resumed, xpnn.Adam()).fit(contexts, target, 4, resume=path, **run)
    whole, _, _ = _model(cls, seed=0)
    xpnn.Trainer(whole, xpnn.Adam()).fit(contexts, target, 4, **{**run, "checkpoint": None})
    assert resumed.sampler.draws == whole.sampler.draws
    for a, b in zip(resumed.params, whole.params, strict=True):
        np.testing.assert_array_equal(host(a), host(b))


def test_the_books_cbow_params_pkl_reads_back_without_running_code(backend, tmp_path, capsys):
    """ch04/train.py pickles word_vecs (float16), word_to_id and id_to_word; eval.py reads them."""
    import pickle

    from xpnn.io import load_book_pickle
    from xpnn.util import most_similar, preprocess

    c, word_to_id, id_to_word = preprocess(TEXT)
    model = CBOW(len(word_to_id), 6, 1, c, seed=0)
    params = {
        "word_vecs": xpnn.to_numpy(model.word_vecs).astype(np.float16),
        "word_to_id": word_to_id,
        "id_to_word": id_to_word,
    }
    path = tmp_path / "cbow_params.pkl"
    with open(path, "wb") as f:
        pickle.dump(params, f, -1)  # as the book's train.py
    got = load_book_pickle(path)
    assert got["word_to_id"] == word_to_id and got["id_to_word"] == id_to_word
    assert got["word_vecs"].dtype == np.float16
    np.testing.assert_array_equal(got["word_vecs"], params["word_vecs"])
    most_similar("say", got["word_to_id"], got["id_to_word"], got["word_vecs"], top=3)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["", "[query] say"]
    assert len([line for line in lines if line.startswith(" ")]) == 3

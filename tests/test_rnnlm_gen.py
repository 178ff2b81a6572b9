"""Vol. 2 ch. 7's ``RnnlmGen`` and ``BetterRnnlmGen`` on every backend: the book's
loop and draws, the same ids for the same seed everywhere, skipped ids, the state
kept and restored, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.models import MODELS, BetterRnnlmGen, Rnnlm, RnnlmGen

V, D = 13, 6
GENS = [RnnlmGen, BetterRnnlmGen]


def host(a) -> np.ndarray:
    return np.array(xpnn.to_numpy(a), dtype=np.float64, copy=True)


def make(cls, scale=1.5):
    """A float64 model whose next-word distributions are far from uniform."""
    if cls is BetterRnnlmGen:
        model = BetterRnnlmGen(V, D, D, 0.5, seed=2, dtype="float64")
    else:
        model = RnnlmGen(V, D, D, seed=2, dtype="float64")
    rng = np.random.default_rng(4)
    model.params = [
        xpnn.asarray(rng.standard_normal(tuple(p.shape)) * scale, dtype=p.dtype)
        for p in model.params
    ]
    return model


def book_generate(model, start_id, skip_ids=None, sample_size=100, seed=0):
    """The book's ``RnnlmGen.generate`` (ch07/rnnlm_gen.py), its draw by NumPy's
    ``choice(len(p), size=1, p=p)`` from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    word_ids = [start_id]
    x = start_id
    while len(word_ids) < sample_size:
        score = host(model.predict(xpnn.asarray(np.array(x).reshape(1, 1))))
        e = np.exp(score.flatten() - score.max())
        p = e / e.sum()
        sampled = rng.choice(len(p), size=1, p=p)
        if (skip_ids is None) or (sampled not in skip_ids):
            x = sampled
            word_ids.append(int(x[0]))
    return word_ids


@pytest.mark.parametrize("cls", GENS)
def test_generate_is_the_books_loop_and_draw(backend, cls):
    model = make(cls)
    want = book_generate(model, 3, skip_ids=[0, 5], sample_size=60, seed=7)
    model.reset_state()
    got = model.generate(3, skip_ids=[0, 5], sample_size=60, seed=7)
    assert got == want
    assert all(type(i) is int for i in got)
    assert len(set(got)) > 3  # a real draw, not one word


@pytest.mark.parametrize("cls", GENS)
def test_the_same_seed_gives_the_same_ids_on_every_backend(backend, cls):
    got = make(cls).generate(1, [2], 80, seed=11)
    with xpnn.use_backend("numpy"):
        want = make(cls).generate(1, [2], 80, seed=11)
    assert got == want
    assert make(cls).generate(1, [2], 80, seed=12) != got  # the seed matters


def test_a_generator_goes_on_and_the_global_seed_reproduces(backend):
    model = make(RnnlmGen)
    rng = xpnn.random.default_rng(5)
    first = model.generate(4, sample_size=30, seed=rng)
    second = model.generate(4, sample_size=30, seed=rng)
    model.reset_state()
    rng = xpnn.random.default_rng(5)
    assert model.generate(4, sample_size=30, seed=rng) == first
    assert model.generate(4, sample_size=30, seed=rng) == second
    saved = xpnn.random.get_seed()
    try:
        runs = []
        for _ in range(2):
            xpnn.random.seed(21)
            model.reset_state()
            runs.append(model.generate(4, sample_size=30))
        assert runs[0] == runs[1]
    finally:
        xpnn.random.seed(saved)


@pytest.mark.parametrize("cls", GENS)
def test_skip_ids_are_never_generated(backend, cls):
    model = make(cls)
    free = model.generate(6, sample_size=150, seed=1)
    counts = np.bincount(free[1:], minlength=V)
    skip = [int(i) for i in np.argsort(-counts, kind="stable")[:3]]  # the likeliest words
    assert all(counts[i] > 0 for i in skip)
    model.reset_state()
    got = model.generate(6, skip_ids=skip, sample_size=100, seed=1)
    assert len(got) == 100 and not set(got[1:]) & set(skip)
    model.reset_state()  # the start word itself may be a skipped one, as in the book
    assert model.generate(skip[0], skip_ids=skip, sample_size=5, seed=1)[0] == skip[0]
    model.reset_state()  # any iterable of ids: a tuple, a NumPy array
    assert model.generate(6, skip_ids=tuple(skip), sample_size=30, seed=1) == got[:30]
    model.reset_state()
    assert model.generate(6, skip_ids=np.array(skip), sample_size=30, seed=1) == got[:30]


@pytest.mark.parametrize("cls", GENS)
def test_get_state_and_set_state_continue_identically(backend, cls):
    model = make(cls)
    for word in (1, 4, 7):  # a prompt, as generate_better_text.py feeds one
        model.predict(xpnn.asarray(np.array([[word]])))
    state = model.get_state()
    first = model.generate(7, sample_size=40, seed=9)
    moved = model.get_state()
    pairs = state if cls is BetterRnnlmGen else [state]
    moved_pairs = moved if cls is BetterRnnlmGen else [moved]
    for (h, c), (h2, c2) in zip(pairs, moved_pairs, strict=True):
        assert tuple(h.shape) == tuple(c.shape) == (1, D)
        assert not np.array_equal(host(h), host(h2)) and not np.array_equal(host(c), host(c2))
    model.set_state(state)
    assert model.generate(7, sample_size=40, seed=9) == first
    model.set_state(state)  # set_state copies: the kept state is still the prompt's
    assert model.generate(7, sample_size=40, seed=9) == first
    model.reset_state()
    assert model.get_state() == ([(None, None)] * 2 if cls is BetterRnnlmGen else (None, None))


@pytest.mark.parametrize("size", [1, 2, 57])
def test_sample_size_is_honoured(backend, size):
    got = make(RnnlmGen).generate(9, sample_size=size, seed=0)
    assert len(got) == size and got[0] == 9
    assert len(make(BetterRnnlmGen).generate(9, seed=0)) == 100  # the book's default


def test_bad_arguments_are_refused_before_anything_changes(backend):
    model = make(RnnlmGen)
    model.predict(xpnn.asarray(np.array([[1]])))
    h, c = model.get_state()
    for bad in (-1, V, 2.0, True, "you", None):
        with pytest.raises((TypeError, ValueError), match="start_id"):
            model.generate(bad)
    with pytest.raises(ValueError, match="skip_ids entry 13"):
        model.generate(0, skip_ids=[1, V])
    with pytest.raises(TypeError, match="skip_ids"):
        model.generate(0, skip_ids="N")
    with pytest.raises(ValueError, match="nothing is left"):
        model.generate(0, skip_ids=range(V))
    for bad in (0, -3):
        with pytest.raises(ValueError, match="sample_size"):
            model.generate(0, sample_size=bad)
    with pytest.raises(TypeError, match="sample_size"):
        model.generate(0, sample_size=10.0)
    with pytest.raises(ValueError, match="seed"):
        model.generate(0, seed=-1)
    np.testing.assert_array_equal(host(model.get_state()[0]), host(h))
    np.testing.assert_array_equal(host(model.get_state()[1]), host(c))
    # A state of a training batch (N rows) does not fit one sequence.
    model.reset_state()
    model.predict(xpnn.asarray(np.zeros((2, 3), dtype=np.int64)))
    with pytest.raises(ValueError, match="2 rows"):
        model.generate(0)


def test_set_state_refusals_change_nothing(backend, xp):
    model = make(BetterRnnlmGen)
    model.predict(xpnn.asarray(np.array([[1]])))
    kept = model.get_state()
    h = kept[0][0]
    bad_states = {
        "pairs": [kept[0]],
        "pair": [kept[0], (h,)],
        r"shape \(N, 6\)": [kept[0], (xp.reshape(h, (6, 1)), h)],
        "dtype": [kept[0], (xp.astype(h, xp.float32), h)],
        "differ in shape": [kept[0], (h, xp.concat([h, h], axis=0))],
        "array or None": [kept[0], (h, [[0.0] * D])],
    }
    for match, state in bad_states.items():
        with pytest.raises((TypeError, ValueError), match=match):
            model.set_state(state)
    for (h1, c1), (h2, c2) in zip(model.get_state(), kept, strict=True):
        np.testing.assert_array_equal(host(h1), host(h2))
        np.testing.assert_array_equal(host(c1), host(c2))
    with pytest.raises(TypeError, match="pair"):
        make(RnnlmGen).set_state(h)


def test_the_gen_models_are_the_books_models(tmp_path):
    assert issubclass(RnnlmGen, Rnnlm) and issubclass(BetterRnnlmGen, xpnn.models.BetterRnnlm)
    assert MODELS["RnnlmGen"] is RnnlmGen and MODELS["BetterRnnlmGen"] is BetterRnnlmGen
    assert {"RnnlmGen", "BetterRnnlmGen"} <= set(xpnn.models.__all__)
    model = make(RnnlmGen)
    loaded = xpnn.io.load(xpnn.io.save(model, tmp_path / "gen.npz"))
    assert type(loaded) is RnnlmGen
    assert loaded.generate(2, sample_size=20, seed=3) == model.generate(2, sample_size=20, seed=3)

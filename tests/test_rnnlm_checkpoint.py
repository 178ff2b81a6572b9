"""``RnnlmTrainer`` runs through the Trainer's parts: checkpoints and a bit-exact
resume (hidden states, position, Dropout draws), the learning-rate schedule of
the book's ``train_better_rnnlm.py``, the guard and mixed precision."""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnn
from xpnn.io import ModelFileError
from xpnn.models import BetterRnnlm, Rnnlm, SimpleRnnlm
from xpnn.models.rnnlm import eval_perplexity
from xpnn.optimizers import SGD, Adam
from xpnn.training import PerplexitySchedule, RnnlmTrainer

V = 11
FIT = {"max_epoch": 3, "batch_size": 3, "time_size": 4, "max_grad": 0.5, "eval_interval": 2}


def corpus(n=121, seed=3):
    """Ids with some structure (a noisy cycle), so that training lowers the loss."""
    rng = np.random.default_rng(seed)
    ids = (np.arange(n) + (rng.random(n) < 0.2) * rng.integers(0, V, n)) % V
    return xpnn.asarray(ids[:-1]), xpnn.asarray(ids[1:])


def make(cls, seed=0, dtype="float64"):
    if cls is BetterRnnlm:
        return BetterRnnlm(V, 6, 6, 0.5, seed=seed, dtype=dtype)
    return cls(V, 5, 6, seed=seed, dtype=dtype)


def host(a):
    return np.array(xpnn.to_numpy(a), copy=True)


def snapshot(model):
    """Parameters, hidden states and Dropout draws, on the host."""
    arrays = {f"p{i}": host(p) for i, p in enumerate(model.params)}
    for i, layer in enumerate(model.layers):
        for name in ("h", "c"):
            value = getattr(layer, name, None)
            if value is not None:
                arrays[f"layers.{i}.{name}"] = host(value)
        if hasattr(layer, "draws"):
            arrays[f"layers.{i}.draws"] = np.array([layer.seed, layer.draws])
    return arrays


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


class StopAfter(xpnn.Callback):
    """Presses Ctrl-C after the ``at``-th iteration of the run."""

    def __init__(self, at):
        self.at, self.done = at, 0

    def on_batch_end(self, state, loss):
        self.done += 1
        if self.done == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("cls", [SimpleRnnlm, Rnnlm, BetterRnnlm], ids=lambda c: c.__name__)
@pytest.mark.parametrize("opt", [SGD, Adam], ids=["SGD", "Adam"])
@pytest.mark.parametrize("at", [4, 10, 19], ids=lambda a: f"ctrl-c-after-{a}")
def test_resume_ends_bit_for_bit_like_an_uninterrupted_run(backend, tmp_path, capsys, cls, opt, at):
    xs, ts = corpus()  # 120 words: 10 iterations an epoch
    model = make(cls)
    whole = RnnlmTrainer(model, opt(lr=0.1)).fit(xs, ts, **FIT)
    expected = snapshot(model)
    assert any(k.endswith(".h") for k in expected)  # the hidden state is part of the run

    ckpt = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        RnnlmTrainer(make(cls), opt(lr=0.1)).fit(
            xs, ts, checkpoint=ckpt, checkpoint_every=3, callbacks=[StopAfter(at)], **FIT
        )
    # Other weights and no hidden state: everything must come from the file.
    model2 = make(cls, seed=5)
    resumed = RnnlmTrainer(model2, opt(lr=0.1)).fit(xs, ts, resume=ckpt, **FIT)
    assert_same(snapshot(model2), expected)
    assert resumed.ppl_list == whole.ppl_list
    assert resumed.loss_list == whole.loss_list
    assert resumed.time_idx == whole.time_idx == 3 * 10 * 4


def book_loop(model, optimizer, xs, ts, val, epochs):
    """The book's ch06/train_better_rnnlm.py loop, re-typed on xpnn's trainer."""
    trainer = RnnlmTrainer(model, optimizer)
    best_ppl, lrs, ppls = float("inf"), [], []
    fit = {k: v for k, v in FIT.items() if k != "max_epoch"}
    for _ in range(epochs):
        trainer.fit(xs, ts, max_epoch=1, **fit)
        model.reset_state()
        ppl = eval_perplexity(model, val)
        ppls.append(ppl)
        if best_ppl > ppl:
            best_ppl = ppl
        else:
            optimizer.lr /= 4.0
        lrs.append(optimizer.lr)
        model.reset_state()
    return ppls, lrs


def test_schedule_is_the_books_script(backend, capsys):
    xs, ts = corpus()
    val = corpus(401, seed=8)[0]
    model = make(Rnnlm)
    ppls, lrs = book_loop(model, SGD(lr=8.0), xs, ts, val, 4)
    assert lrs[-1] < 8.0, "the test needs a run whose rate is lowered"
    expected = snapshot(model)

    model2 = make(Rnnlm)
    optimizer = SGD(lr=8.0)
    trainer = RnnlmTrainer(model2, optimizer)
    trainer.fit(xs, ts, **{**FIT, "max_epoch": 4}, validation_data=val, lr_decay=4.0)
    assert_same(snapshot(model2), expected)
    assert trainer.val_ppl_list == ppls
    assert optimizer.lr == lrs[-1]
    out = capsys.readouterr().out
    assert out.count("valid perplexity: ") == 4  # the book's line, once an epoch
    assert out.count("-" * 50) == 4


def test_schedule_uses_eval_perplexity_settings():
    schedule = PerplexitySchedule(np.arange(30) % V, batch_size=2, time_size=4)
    with pytest.raises(ValueError, match="lr_decay"):
        PerplexitySchedule(np.arange(30), lr_decay=1.0)
    with pytest.raises(ValueError, match="at least 351 words"):
        PerplexitySchedule(xpnn.asarray(np.arange(40) % V)).check(make(Rnnlm))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        PerplexitySchedule(xpnn.asarray(np.arange(400)), time_size=4).check(make(Rnnlm))
    schedule.check(make(Rnnlm))
    assert schedule.corpus.shape == (30,)


def test_resume_with_a_lowered_rate_says_which_rate(backend, tmp_path, capsys):
    xs, ts = corpus()
    val = corpus(401, seed=8)[0]
    model = make(Rnnlm)
    opt = SGD(lr=8.0)
    fit = {**FIT, "max_epoch": 5, "validation_data": val}
    RnnlmTrainer(model, opt).fit(xs, ts, **fit)
    expected, lowered = snapshot(model), opt.lr
    assert lowered < 8.0

    ckpt = tmp_path / "run.npz"
    stop = StopAfter(46)  # in the fifth epoch: the rate went down after the fourth
    opt1 = SGD(lr=8.0)
    with pytest.raises(KeyboardInterrupt):
        RnnlmTrainer(make(Rnnlm), opt1).fit(
            xs, ts, checkpoint=ckpt, checkpoint_every=3, callbacks=[stop], **fit
        )
    model2 = make(Rnnlm, seed=4)
    before = snapshot(model2)
    with pytest.raises(ModelFileError, match=re.escape(f"SGD(lr={opt1.lr!r})")):
        RnnlmTrainer(model2, SGD(lr=8.0)).fit(xs, ts, resume=ckpt, **fit)
    assert_same(snapshot(model2), before)  # refused: nothing changed
    trainer = RnnlmTrainer(model2, SGD(lr=opt1.lr)).fit(xs, ts, resume=ckpt, **fit)
    assert_same(snapshot(model2), expected)
    assert len(trainer.val_ppl_list) == 5


def test_resume_refuses_another_time_size_and_damaged_hidden_states(backend, tmp_path, capsys):
    xs, ts = corpus()
    ckpt = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        RnnlmTrainer(make(Rnnlm), SGD(lr=0.1)).fit(
            xs, ts, checkpoint=ckpt, checkpoint_every=2, callbacks=[StopAfter(5)], **FIT
        )
    fit = FIT
    model = make(Rnnlm, seed=2)
    before = snapshot(model)
    with pytest.raises(ModelFileError, match="time_size=4, this fit has time_size=5"):
        RnnlmTrainer(model, SGD(lr=0.1)).fit(xs, ts, resume=ckpt, **{**fit, "time_size": 5})
    with pytest.raises(ModelFileError, match="batch_size"):
        RnnlmTrainer(model, SGD(lr=0.1)).fit(xs, ts, resume=ckpt, **{**fit, "batch_size": 2})
    assert_same(snapshot(model), before)

    with np.load(ckpt) as f:
        files = {k: f[k] for k in f.files}
    hidden = [k for k in files if "hidden/" in k]
    assert sorted(k.rsplit(".", 1)[-1] for k in hidden) == ["c", "h"]
    for damage in ("shape", "only-h"):
        bad = dict(files)
        key = next(k for k in hidden if k.endswith(".h"))
        if damage == "shape":
            bad[key] = bad[key][:1]
        else:
            del bad[next(k for k in hidden if k.endswith(".c"))]
        path = tmp_path / f"bad-{damage}.npz"
        np.savez(path, **bad)
        with pytest.raises(ModelFileError, match=r"hidden|wrong shapes"):
            RnnlmTrainer(model, SGD(lr=0.1)).fit(xs, ts, resume=path, **fit)
        assert_same(snapshot(model), before)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's log(0) on the way
def test_guard_stops_a_diverging_run(backend, capsys):
    xs, ts = corpus()
    trainer = RnnlmTrainer(make(Rnnlm), SGD(lr=1e30))
    with pytest.raises(FloatingPointError, match=r"loss became|diverged"):
        trainer.fit(xs, ts, **FIT)


def test_ids_outside_the_vocabulary_are_refused(backend, capsys):
    xs, ts = corpus()
    model = make(Rnnlm)
    before = snapshot(model)
    big = xpnn.asarray(host(xs) + V)
    with pytest.raises(ValueError, match=r"xs holds word ids from \d+ to \d+, outside"):
        RnnlmTrainer(model, SGD(lr=0.1)).fit(big, ts, **FIT)
    assert_same(snapshot(model), before)


@pytest.mark.parametrize("cls", [Rnnlm, BetterRnnlm], ids=lambda c: c.__name__)
def test_mixed16_trains_like_float32_and_resumes(backend, tmp_path, capsys, cls):
    if backend.name == "array_api_strict":
        pytest.skip("the Array API standard has no float16 (its refusal: test_mixed_precision)")
    xs, ts = corpus()
    ref = RnnlmTrainer(make(cls, dtype="float32"), SGD(lr=0.1)).fit(xs, ts, **FIT)
    model = make(cls, dtype="float32")
    mixed = RnnlmTrainer(model, SGD(lr=0.1)).fit(xs, ts, precision="mixed16", **FIT)
    np.testing.assert_allclose(mixed.ppl_list, ref.ppl_list, rtol=2e-2)
    states = [layer.h for layer in model.layers if getattr(layer, "h", None) is not None]
    assert states and all(xpnn.to_numpy(h).dtype == np.float32 for h in states)
    expected = snapshot(model)

    ckpt = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        RnnlmTrainer(make(cls, dtype="float32"), SGD(lr=0.1)).fit(
            xs, ts, precision="mixed16", checkpoint=ckpt, callbacks=[StopAfter(13)], **FIT
        )
    model2 = make(cls, seed=3, dtype="float32")
    RnnlmTrainer(model2, SGD(lr=0.1)).fit(xs, ts, precision="mixed16", resume=ckpt, **FIT)
    assert_same(snapshot(model2), expected)

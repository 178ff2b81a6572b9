"""Vol. 2 ch. 5-6's ``RnnlmTrainer`` on every backend: the book's batches, the
printed lines, perplexity as exp(mean loss), clipping, refusals and the plot."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import xpnn
from xpnn.models import BetterRnnlm, SimpleRnnlm
from xpnn.optimizers import SGD
from xpnn.training import RnnlmTrainer

V = 7
LINE = re.compile(
    r"^\| epoch (\d+) \|  iter (\d+) / (\d+) \| time (\d+)\[s\] \| perplexity (\d+\.\d\d)$"
)


def host(a) -> np.ndarray:
    return np.array(xpnn.to_numpy(a), copy=True)


def corpus(n=141, seed=None):
    """A repeating corpus 0 1 2 ... 6 0 1 ... (or random ids with a seed)."""
    if seed is None:
        ids = np.arange(n) % V
    else:
        ids = np.random.default_rng(seed).integers(0, V, size=n)
    return xpnn.asarray(ids[:-1]), xpnn.asarray(ids[1:])


def book_get_batch(x, t, batch_size, time_size, time_idx):
    """The book's ``RnnlmTrainer.get_batch`` (common/trainer.py), re-typed."""
    batch_x = np.empty((batch_size, time_size), dtype="i")
    batch_t = np.empty((batch_size, time_size), dtype="i")
    data_size = len(x)
    jump = data_size // batch_size
    offsets = [i * jump for i in range(batch_size)]
    for time in range(time_size):
        for i, offset in enumerate(offsets):
            batch_x[i, time] = x[(offset + time_idx) % data_size]
            batch_t[i, time] = t[(offset + time_idx) % data_size]
        time_idx += 1
    return batch_x, batch_t, time_idx


def model(seed=0, cls=SimpleRnnlm):
    if cls is BetterRnnlm:
        return BetterRnnlm(V, 6, 6, 0.5, seed=seed, dtype="float64")
    return cls(V, 5, 6, seed=seed, dtype="float64")


class Recording:
    """An optimizer that records the global gradient norm it is given."""

    def __init__(self, inner):
        self.inner, self.norms = inner, []

    def update(self, params, grads):
        self.norms.append(math.sqrt(sum(float(np.sum(host(g) ** 2)) for g in grads)))
        self.inner.update(params, grads)


# ------------------------------------------------------------------ batches


@pytest.mark.parametrize(
    "data_size,batch_size,time_size,calls",
    [(20, 3, 4, 5), (7, 2, 3, 6), (35, 5, 7, 3), (10, 1, 10, 3), (23, 4, 5, 9)],
)
def test_get_batch_is_the_books(backend, data_size, batch_size, time_size, calls):
    rng = np.random.default_rng(data_size)
    x_np = rng.integers(0, 100, size=data_size)
    t_np = rng.integers(0, 100, size=data_size)
    x, t = xpnn.asarray(x_np), xpnn.asarray(t_np)
    trainer = RnnlmTrainer(model(), SGD(lr=0.1))
    time_idx = 0
    for _ in range(calls):  # several calls: the offsets wrap around the corpus
        bx, bt = trainer.get_batch(x, t, batch_size, time_size)
        ex, et, time_idx = book_get_batch(x_np, t_np, batch_size, time_size, time_idx)
        assert type(bx) is type(x) and xpnn.device_of(bx) == xpnn.device_of(x)
        assert tuple(bx.shape) == (batch_size, time_size)
        np.testing.assert_array_equal(host(bx), ex)
        np.testing.assert_array_equal(host(bt), et)
        assert trainer.time_idx == time_idx


# ------------------------------------------------------------------ training


def test_fit_lowers_perplexity_and_prints_the_books_lines(backend, capsys):
    xs, ts = corpus()
    trainer = RnnlmTrainer(model(), SGD(lr=0.1))
    assert trainer.fit(xs, ts, max_epoch=30, batch_size=4, time_size=5, eval_interval=3) is trainer
    lines = capsys.readouterr().out.splitlines()
    max_iters = 140 // (4 * 5)  # 7: records at iterations 0, 3, 6 of each epoch
    assert len(lines) == 30 * 3 == len(trainer.ppl_list)
    got = [LINE.match(line) for line in lines]
    assert all(got), lines[:3]
    assert [(int(m[1]), int(m[2]), int(m[3])) for m in got[:4]] == [
        (1, 1, max_iters),
        (1, 4, max_iters),
        (1, 7, max_iters),
        (2, 1, max_iters),
    ]
    assert [float(m[5]) for m in got] == [float(f"{p:.2f}") for p in trainer.ppl_list]
    assert trainer.current_epoch == 30 and trainer.eval_interval == 3
    assert trainer.ppl_list[0] > 5.0  # untrained: about V
    assert trainer.ppl_list[-1] < 0.5 * trainer.ppl_list[0]


def test_perplexity_is_exp_of_the_mean_loss_of_each_interval(backend, capsys):
    xs, ts = corpus(seed=3)
    trainer = RnnlmTrainer(model(seed=5), SGD(lr=0.1))
    trainer.fit(xs, ts, max_epoch=2, batch_size=3, time_size=4, eval_interval=4)
    capsys.readouterr()
    # Replay with a twin: the book's batches (NumPy), the same model and steps.
    twin, opt = model(seed=5), SGD(lr=0.1)
    x_np, t_np = host(xs), host(ts)
    max_iters = 140 // 12
    losses, time_idx, expected = [], 0, []
    for _ in range(2):
        for i in range(max_iters):
            bx, bt, time_idx = book_get_batch(x_np, t_np, 3, 4, time_idx)
            loss = twin.forward(
                xpnn.asarray(bx.astype(np.int64)), xpnn.asarray(bt.astype(np.int64))
            )
            twin.backward()
            opt.update(twin.params, twin.grads)
            losses.append(float(host(loss)))
            if i % 4 == 0:
                expected.append(math.exp(np.mean(losses)))
                losses = []
    assert len(expected) == len(trainer.ppl_list) == 6
    np.testing.assert_allclose(trainer.ppl_list, expected, rtol=1e-10)
    for a, b in zip(trainer.model.params, twin.params, strict=True):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-10, atol=1e-12)


def test_eval_interval_none_records_nothing(backend, capsys):
    xs, ts = corpus()
    trainer = RnnlmTrainer(model(), SGD(lr=0.1))
    trainer.fit(xs, ts, max_epoch=1, batch_size=2, time_size=5, eval_interval=3)
    assert trainer.ppl_list and capsys.readouterr().out
    # A new fit starts a new curve, as the book's; current_epoch goes on.
    trainer.fit(xs, ts, max_epoch=1, batch_size=2, time_size=5, eval_interval=None)
    assert capsys.readouterr().out == "" and trainer.ppl_list == []
    assert trainer.current_epoch == 2


def test_max_grad_clips(backend, capsys):
    xs, ts = corpus(seed=1)
    free = Recording(SGD(lr=0.1))
    RnnlmTrainer(model(), free).fit(xs, ts, max_epoch=1, batch_size=2, time_size=5)
    max_grad = 0.05
    assert max(free.norms) > 2 * max_grad  # without clipping the norms exceed it
    clipped = Recording(SGD(lr=0.1))
    RnnlmTrainer(model(), clipped).fit(
        xs, ts, max_epoch=1, batch_size=2, time_size=5, max_grad=max_grad
    )
    assert len(clipped.norms) == 14
    assert all(n <= max_grad + 1e-9 for n in clipped.norms), clipped.norms
    capsys.readouterr()


def test_better_rnnlm_tied_weights_train(backend, capsys):
    xs, ts = corpus()
    trainer = RnnlmTrainer(model(cls=BetterRnnlm), SGD(lr=0.5))
    trainer.fit(xs, ts, max_epoch=3, batch_size=2, time_size=5, max_grad=5.0, eval_interval=5)
    assert trainer.ppl_list and all(math.isfinite(p) for p in trainer.ppl_list)
    assert LINE.match(capsys.readouterr().out.splitlines()[0])


# ------------------------------------------------------------------ refusals


def test_refusals_change_nothing(backend, capsys):
    xs, ts = corpus()
    trainer = RnnlmTrainer(model(), SGD(lr=0.1))
    trainer.fit(xs, ts, max_epoch=1, batch_size=2, time_size=5, eval_interval=3)
    capsys.readouterr()
    before = [host(p) for p in trainer.model.params]
    state = (list(trainer.ppl_list), trainer.current_epoch, trainer.time_idx, trainer.eval_interval)
    floats = xpnn.asarray(np.zeros(140))
    two_d = xpnn.asarray(np.zeros((10, 14), dtype=np.int64))
    short = xpnn.asarray(np.zeros(139, dtype=np.int64))
    bad = [
        (ValueError, "xs", dict(xs=floats)),
        (ValueError, "ts", dict(ts=floats)),
        (ValueError, "xs", dict(xs=two_d)),
        (ValueError, "xs and ts", dict(ts=short)),
        (TypeError, "xs", dict(xs=list(range(140)))),
        (ValueError, "max_epoch", dict(max_epoch=0)),
        (ValueError, "batch_size", dict(batch_size=2.0)),
        (ValueError, "batch_size", dict(batch_size=True)),
        (ValueError, "time_size", dict(time_size=-1)),
        (ValueError, "eval_interval", dict(eval_interval=0)),
        (ValueError, "max_grad", dict(max_grad=0.0)),
        (ValueError, "max_grad", dict(max_grad=float("nan"))),
        (ValueError, "batch_size \\* time_size", dict(batch_size=20, time_size=8)),
    ]
    for error, name, change in bad:
        args = dict(xs=xs, ts=ts, max_epoch=1, batch_size=2, time_size=5, eval_interval=3)
        args.update(change)
        with pytest.raises(error, match=name):
            trainer.fit(**args)
    assert capsys.readouterr().out == ""
    state_after = (trainer.ppl_list, trainer.current_epoch, trainer.time_idx, trainer.eval_interval)
    assert state_after == state
    for a, b in zip(before, trainer.model.params, strict=True):
        np.testing.assert_array_equal(a, host(b))


def test_refuses_a_model_or_optimizer_without_the_methods():
    with pytest.raises(TypeError, match="model"):
        RnnlmTrainer(object(), SGD())
    with pytest.raises(TypeError, match="optimizer"):
        RnnlmTrainer(model(), object())


def test_exported():
    assert xpnn.RnnlmTrainer is RnnlmTrainer
    assert "RnnlmTrainer" in xpnn.__all__ and "RnnlmTrainer" in xpnn.training.__all__


def test_plot_writes_the_curve(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    trainer = RnnlmTrainer(model(), SGD(lr=0.1))
    with pytest.raises(ValueError, match="fit"):
        trainer.plot(path=tmp_path / "none.png")
    xs, ts = corpus()
    trainer.fit(xs, ts, max_epoch=2, batch_size=2, time_size=5, eval_interval=2)
    out = trainer.plot(ylim=(0, 10), path=tmp_path / "ppl.png")
    assert out is not None and out.stat().st_size > 0
    capsys.readouterr()

"""Trainer.fit's events and its parts (Guard, Evaluator, Reporter, Checkpointer), each alone."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from test_checkpoint import Interrupt

import xpnn
from xpnn.datasets import load_spiral
from xpnn.io import read_checkpoint
from xpnn.optimizers import SGD, Momentum
from xpnn.training.callbacks import (
    EVENTS,
    Callback,
    CallbackList,
    Evaluator,
    FitState,
    Guard,
    Reporter,
)
from xpnn.training.checkpointer import Checkpointer, fingerprint

FIT = {"max_epoch": 2, "batch_size": 30, "eval_interval": 5, "progress": False, "verbose": False}


class Log(Callback):
    """Writes down every event with what the trainer and the state hold then."""

    def __init__(self):
        self.events = []

    def on_fit_start(self, state):
        self.events.append(("fit_start", state.epoch, state.start_iter))

    def on_batch_end(self, state, loss):
        # The loss may live in a buffer the next iteration reuses: read it now.
        value = float(xpnn.to_numpy(loss))
        self.events.append(("batch_end", state.epoch, state.iteration, loss.ndim, value))

    def on_record(self, state, avg_loss):
        self.events.append(("record", state.iteration, avg_loss, len(state.trainer.loss_list)))

    def on_epoch_end(self, state):
        trainer = state.trainer
        self.events.append(("epoch_end", trainer.current_epoch, len(trainer.test_acc_list)))

    def on_fit_end(self, state):
        self.events.append(("fit_end", state.error))

    def kinds(self):
        return [e[0] for e in self.events]


def spiral_trainer(opt=None, seed=0):
    return xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 6, 3, seed=seed), opt or SGD(lr=1.0))


def a_state(trainer, x, t, **kw):
    """A FitState as fit makes it, for parts tested alone."""
    settings = {
        "classes": 3,
        "data_size": x.shape[0],
        "batch_size": 30,
        "max_epoch": 2,
        "max_grad": None,
        "eval_interval": 5,
        "max_iters": x.shape[0] // 30,
    }
    settings.update(kw)
    rng = xpnn.default_rng(0, backend=xpnn.backend_of(x))
    return FitState(trainer=trainer, x=x, t=t, xp=xpnn.get_namespace(x), rng=rng, **settings)


# ------------------------------------------------------------------ events


def test_events_come_in_the_loops_order(backend):
    x, t = load_spiral()  # 300 samples: 10 iterations an epoch, records at 0 and 5 (the book's)
    log = Log()
    trainer = spiral_trainer()
    trainer.fit(x, t, validation_data=(x, t), callbacks=[log], **FIT)
    kinds = log.kinds()
    epoch = ["record", "batch_end"] + ["batch_end"] * 4 + ["record", "batch_end"]
    epoch += ["batch_end"] * 4 + ["epoch_end"]
    assert kinds == ["fit_start", *epoch, *epoch, "fit_end"]
    records = [e for e in log.events if e[0] == "record"]
    # on_record sees the average before it joins loss_list, and it is what joins.
    assert [r[3] for r in records] == [0, 1, 2, 3]
    assert [r[2] for r in records] == trainer.loss_list
    # The accuracies of an epoch are recorded before user callbacks hear of its end.
    assert [e[1:] for e in log.events if e[0] == "epoch_end"] == [(1, 1), (2, 2)]
    assert log.events[-1] == ("fit_end", None)
    # on_batch_end gets the batch loss as a 0-d array of the backend, not a float.
    batches = [e for e in log.events if e[0] == "batch_end"]
    assert all(e[3] == 0 for e in batches)
    # The first record is the first batch's loss, the next the mean of the five after it.
    assert records[0][2] == pytest.approx(batches[0][4], rel=1e-5)
    assert records[1][2] == pytest.approx(np.mean([e[4] for e in batches[1:6]]), rel=1e-5)
    # Losses after an epoch's last record join the next epoch's first record.
    assert records[2][2] == pytest.approx(np.mean([e[4] for e in batches[6:11]]), rel=1e-5)


def test_on_fit_end_sees_the_exception_that_stops_the_run(backend):
    class Stop(Callback):
        def on_record(self, state, avg_loss):
            raise RuntimeError("enough")

    log = Log()
    x, t = load_spiral()
    trainer = spiral_trainer()
    with pytest.raises(RuntimeError, match="enough"):
        trainer.fit(x, t, callbacks=[Stop(), log], **FIT)
    # Stop raised at the first record (iteration 0), before log heard of it or of that
    # batch's end.
    assert log.kinds() == ["fit_start", "fit_end"]
    assert isinstance(log.events[-1][1], RuntimeError)
    assert trainer.loss_list == []  # the refused record did not join


def test_a_callback_that_changes_the_learning_rate(backend):
    class FreezeAfterFirstEpoch(Callback):
        def on_epoch_end(self, state):
            if state.trainer.current_epoch == 1:
                state.trainer.optimizer.lr = 0.0
                self.after_one = [np.array(xpnn.to_numpy(p)) for p in state.trainer.model.params]

    freeze = FreezeAfterFirstEpoch()
    x, t = load_spiral()
    trainer = spiral_trainer()
    trainer.fit(x, t, callbacks=[freeze], **{**FIT, "max_epoch": 3})
    after = [xpnn.to_numpy(p) for p in trainer.model.params]
    for a, b in zip(after, freeze.after_one, strict=True):
        np.testing.assert_array_equal(a, b)  # lr 0: epochs 2 and 3 moved nothing
    assert not np.array_equal(freeze.after_one[0], xpnn.to_numpy(spiral_trainer().model.params[0]))


def test_callbacks_see_a_resumed_run_where_it_goes_on(backend, tmp_path):
    x, t = load_spiral()
    path = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 6, 3, seed=0), Interrupt(SGD(lr=1.0), 14)).fit(
            x, t, checkpoint=path, checkpoint_every=2, **FIT
        )
    log = Log()
    trainer = spiral_trainer()
    trainer.fit(x, t, resume=path, callbacks=[log], **FIT)
    assert log.events[0] == ("fit_start", 1, 2)  # epoch 2 (0-based 1), iteration 3
    assert log.kinds().count("batch_end") == 8


def test_callbacks_must_be_callbacks(backend):
    x, t = load_spiral()
    trainer = spiral_trainer()
    before = [np.array(xpnn.to_numpy(p)) for p in trainer.model.params]
    for bad in (Log(), [Log(), print], "Log"):
        with pytest.raises(TypeError, match="callbacks must be"):
            trainer.fit(x, t, callbacks=bad, **FIT)
    after = [xpnn.to_numpy(p) for p in trainer.model.params]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert trainer.loss_list == [] and trainer.current_epoch == 0


def test_an_event_nobody_overrides_is_not_called():
    class OnlyEpochs(Callback):
        def on_epoch_end(self, state):
            pass

    events = CallbackList([None, OnlyEpochs()], [Log()])
    assert len(events._hooks["on_epoch_end"]) == 2
    assert len(events._hooks["on_batch_end"]) == 1  # Log's only
    assert set(events._hooks) == set(EVENTS)
    assert CallbackList([OnlyEpochs()])._hooks["on_batch_end"] == ()


# ------------------------------------------------------------------- guard


def test_the_guard_alone(backend):
    x, t = load_spiral()
    state = a_state(spiral_trainer(), x, t)
    state.initial_loss = 1.0
    with pytest.raises(ValueError, match="on_nan"):
        Guard("skip")
    with pytest.raises(FloatingPointError, match="loss became nan in epoch 1, by iteration 1"):
        Guard().on_record(state, math.nan)
    with pytest.warns(RuntimeWarning, match="loss became inf") as caught:
        Guard("warn").on_record(state, math.inf)
    assert caught[0].filename == __file__  # the warning points here, not into xpnn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Guard("ignore").on_record(state, math.nan)

    guard = Guard()
    limit = guard.divergence_limit(state)
    assert limit == pytest.approx(10 * math.log(3))
    guard.on_record(state, limit * 2)
    guard.on_record(state, limit * 2)
    assert state.high_loss_records == 2
    guard.on_record(state, 1.0)  # a dip starts the count again
    assert state.high_loss_records == 0
    state.last_checkpoint, state.last_position = "run.npz", "the end of epoch 1"
    for _ in range(2):
        guard.on_record(state, limit * 2)
    with pytest.raises(FloatingPointError, match=r"diverged.*last complete checkpoint is run\.npz"):
        guard.on_record(state, limit * 2)


def test_the_guard_refuses_checkpoints_that_are_not_finite(backend):
    x, t = load_spiral()
    trainer = spiral_trainer()
    state = a_state(trainer, x, t)
    assert Guard().checkpoint_ok(state, "c.npz", "the end of epoch 1", False)
    trainer.model.params[0][...] = float("nan")
    with pytest.raises(FloatingPointError, match=r"c\.npz was not written; this fit wrote no"):
        Guard().checkpoint_ok(state, "c.npz", "the end of epoch 1", False)
    guard = Guard("warn")
    with pytest.warns(RuntimeWarning, match="skipped silently"):
        assert not guard.checkpoint_ok(state, "c.npz", "the end of epoch 1", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once a run
        assert not guard.checkpoint_ok(state, "c.npz", "the end of epoch 2", False)
        assert not Guard("ignore").checkpoint_ok(state, "c.npz", "the end of epoch 2", False)


# -------------------------------------------------------- evaluator, reporter


def test_the_evaluator_alone(backend):
    x, t = load_spiral()
    trainer = spiral_trainer()
    state = a_state(trainer, x, t)
    Evaluator(x[:60, ...], t[:60, ...]).on_epoch_end(state)
    model = trainer.model
    assert trainer.train_acc_list == [float(xpnn.to_numpy(model.accuracy(x, t)))]
    want = float(xpnn.to_numpy(model.accuracy(x[:60, ...], t[:60, ...])))
    assert trainer.test_acc_list == [want]


def test_the_reporter_alone(backend, capsys):
    x, t = load_spiral()
    trainer = spiral_trainer()
    state = a_state(trainer, x, t, validation_data=(x, t))
    reporter = Reporter(verbose=True, progress=False)
    reporter.on_fit_start(state)
    state.iteration = 4
    reporter.on_record(state, 1.23456)
    trainer.current_epoch = 1
    trainer.train_acc_list, trainer.test_acc_list = [0.5], [0.25]
    reporter.on_epoch_end(state)
    state.error = KeyboardInterrupt()
    reporter.on_fit_end(state)
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "| epoch 1 |  iter 5 / 10 | time 0[s] | loss 1.23",
        "| epoch 1 | train acc, test acc | 0.5000, 0.2500",
    ]
    assert err.startswith("xpnn: training interrupted in epoch 1, iteration 4; no checkpoint")
    quiet = Reporter(verbose=False, progress=False)
    quiet.on_fit_start(state)
    quiet.on_record(state, 1.0)
    quiet.on_epoch_end(state)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------- checkpointer


def test_the_checkpointer_alone(backend, tmp_path):
    x, t = load_spiral()
    trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 6, 3, seed=0), Momentum(lr=0.1))
    state = a_state(trainer, x, t)
    with pytest.raises(ValueError, match="checkpoint_every must be a positive int"):
        Checkpointer(tmp_path / "c.npz", every=0)
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ValueError, match="checkpoint"):
        Checkpointer(tmp_path / "dir.npz")
    keeper = Checkpointer(tmp_path / "c.npz", every=4)
    keeper.on_fit_start(state)  # alone (as in callbacks=[...]) it fingerprints the data itself
    assert keeper.data == fingerprint(x, t)
    state.epoch_rng = state.rng.get_state()
    state.add_loss(trainer.model.forward(x, t))  # as after a first iteration
    for i in range(3):
        state.iteration = i
        keeper.on_batch_end(state, None)
    assert not (tmp_path / "c.npz").exists()  # every 4 iterations
    state.iteration = 3
    keeper.on_batch_end(state, None)
    assert state.last_checkpoint == str(tmp_path / "c.npz")
    assert state.last_position == "epoch 1, iteration 4"
    progress, _ = read_checkpoint(tmp_path / "c.npz", trainer.model, trainer.optimizer)
    assert (progress["epoch"], progress["next_iter"], progress["data"]) == (0, 4, keeper.data)
    keeper.on_epoch_end(state)
    progress, _ = read_checkpoint(tmp_path / "c.npz", trainer.model, trainer.optimizer)
    assert (progress["epoch"], progress["next_iter"]) == (1, 0)
    assert state.last_position == "the end of epoch 1"


def test_a_checkpointer_in_callbacks_writes_a_resumable_run(backend, tmp_path):
    x, t = load_spiral()
    path = tmp_path / "c.npz"
    whole = spiral_trainer().fit(x, t, **FIT)
    with pytest.raises(KeyboardInterrupt):
        xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 6, 3, seed=0), Interrupt(SGD(lr=1.0), 16)).fit(
            x, t, callbacks=[Checkpointer(path, every=3)], **FIT
        )
    resumed = spiral_trainer(seed=5).fit(x, t, resume=path, **FIT)
    np.testing.assert_allclose(resumed.loss_list, whole.loss_list, rtol=1e-5)


# -------------------------------------------------------------- cuda graph


class FakeGraph:
    """A stand-in for CudaGraph on the CPU: a "launch" calls the recorded function."""

    records = 0

    def __init__(self, like):
        self.fn = None

    def run_eagerly(self, fn):
        return fn()

    def record(self, fn):
        FakeGraph.records += 1
        self.fn = fn
        self.out = xpnn.get_namespace(fn()).zeros(())  # CUDA records without running
        return self.out

    def launch(self):
        self.out[...] = self.fn()


@pytest.mark.parametrize("with_callback", [False, True])
def test_the_graph_is_recorded_again_when_a_callback_changes_a_hyper_parameter(
    monkeypatch, with_callback
):
    import types

    import xpnn.training.graph_step

    cupy = types.SimpleNamespace(name="cupy", spec="cupy:0")
    monkeypatch.setattr(xpnn.training.graph_step, "backend_of", lambda x: cupy)
    monkeypatch.setattr(xpnn.training.graph_step, "CudaGraph", FakeGraph)
    FakeGraph.records = 0

    class Schedule(Callback):
        def on_epoch_end(self, state):
            if state.trainer.current_epoch == 1:
                state.trainer.optimizer.lr = 0.5  # the graph holds 1.0 as a number
            else:
                state.trainer.optimizer.lr = 0.5  # unchanged: no new recording

    x, t = load_spiral()
    trainer = spiral_trainer()
    callbacks = [Schedule()] if with_callback else []
    trainer.fit(x, t, cuda_graph=True, callbacks=callbacks, **{**FIT, "max_epoch": 3})
    assert FakeGraph.records == (2 if with_callback else 1)

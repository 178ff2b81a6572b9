"""A refused resume changes nothing; checkpoints are never written non-finite;
divergence is detected.

Every refusal is checked the same way: a trainer that has trained (so its
model, optimizer state and curves hold values of their own) is asked to resume
a checkpoint that does not fit; the call must raise ModelFileError naming what
does not fit, and leave the parameters, the optimizer state and the trainer's
lists bit for bit as they were.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from test_checkpoint import Interrupt  # the same Ctrl-C wrapper
from test_trainer import count_reads

import xpnn
from xpnn.datasets import load_spiral
from xpnn.io import ModelFileError, read_checkpoint
from xpnn.optimizers import SGD, Adam, Momentum
from xpnn.training.resume import _loss_records

FIT = {
    "max_epoch": 3,
    "batch_size": 30,
    "eval_interval": 3,
    "seed": 7,
    "progress": False,
    "verbose": False,
}


class Poison:
    """Wraps an optimizer and writes NaN into the first parameter after update ``at``."""

    def __init__(self, optimizer, at):
        self.inner, self.at, self.calls = optimizer, at, 0

    def update(self, params, grads):
        self.inner.update(params, grads)
        self.calls += 1
        if self.calls == self.at:
            first = params[next(iter(params))] if isinstance(params, dict) else params[0]
            first[...] = float("nan")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def values(container):
    return list(container.values()) if isinstance(container, dict) else list(container)


def snapshot(trainer):
    """Host copies of everything a refused resume must leave alone."""
    opt = trainer.optimizer

    def host(a):
        h = np.array(xpnn.to_numpy(a), copy=True)
        return h.dtype.str, h.shape, h.tobytes()  # bit for bit

    return {
        "params": [host(p) for p in values(trainer.model.params)],
        "state": {
            name: None
            if getattr(opt, name) is None
            else [host(a) for a in values(getattr(opt, name))]
            for name in opt._state_names
        },
        "hyper": opt.state_dict()["hyperparams"],
        "iter": opt.iter,
        "lists": (
            list(trainer.loss_list),
            list(trainer.train_acc_list),
            list(trainer.test_acc_list),
        ),
        "current_epoch": trainer.current_epoch,
        "eval_interval": trainer.eval_interval,
    }


def interrupted_checkpoint(path, opt_cls=Momentum, x=None, t=None, at=15, **fit):
    """A checkpoint of a run stopped at update ``at`` (epoch 2, iteration 4 for 15)."""
    if x is None:
        x, t = load_spiral()
    net = xpnn.LayeredTwoLayerNet(2, 6, 3, seed=0)
    trainer = xpnn.Trainer(net, Interrupt(opt_cls(lr=0.1), at))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(x, t, checkpoint=path, checkpoint_every=4, **{**FIT, **fit})
    return path


def trained(opt=None, dtype=None):
    """A trainer with values of its own: one epoch of another run, with validation."""
    x, t = load_spiral(dtype=dtype)
    net = xpnn.LayeredTwoLayerNet(2, 6, 3, seed=3, dtype=dtype)
    trainer = xpnn.Trainer(net, opt or Momentum(lr=0.1))
    trainer.fit(x, t, validation_data=(x, t), **{**FIT, "max_epoch": 1, "seed": 1})
    return trainer


def assert_refused_without_change(trainer, match, x, t, **fit):
    before = snapshot(trainer)
    with pytest.raises(ModelFileError, match=match):
        trainer.fit(x, t, **{**FIT, **fit})
    after = snapshot(trainer)
    assert after == before


@pytest.fixture
def ckpt(backend, tmp_path):
    return interrupted_checkpoint(tmp_path / "run.npz")


# ----------------------------------------------------------- run settings


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"batch_size": 20}, "batch_size=30, this fit has batch_size=20"),
        ({"max_epoch": 4}, "max_epoch=3, this fit has max_epoch=4"),
        ({"max_grad": 5.0}, "max_grad=None, this fit has max_grad=5.0"),
        ({"eval_interval": 5}, "eval_interval=3, this fit has eval_interval=5"),
    ],
    ids=["batch_size", "max_epoch", "max_grad", "eval_interval"],
)
def test_other_settings_are_refused_before_anything_changes(ckpt, change, match):
    x, t = load_spiral()
    assert_refused_without_change(trained(), match, x, t, resume=ckpt, **change)


def test_changed_max_grad_is_refused_both_ways(backend, tmp_path):
    path = interrupted_checkpoint(tmp_path / "c.npz", max_grad=5.0)
    x, t = load_spiral()
    for max_grad, shown in ((None, "None"), (2.5, "2.5")):
        assert_refused_without_change(
            trained(),
            f"max_grad=5.0, this fit has max_grad={shown}",
            x,
            t,
            resume=path,
            max_grad=max_grad,
        )
    # The same value, given as an int, is the same setting.
    xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 6, 3), Momentum(lr=0.1)).fit(
        x, t, resume=path, **{**FIT, "max_grad": 5}
    )


def test_an_eval_interval_clipped_to_the_epoch_is_the_same_setting(backend, tmp_path):
    # 10 iterations an epoch: eval_interval 20 and 15 both record every 10.
    path = interrupted_checkpoint(tmp_path / "c.npz", eval_interval=20)
    x, t = load_spiral()
    trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 6, 3), Momentum(lr=0.1))
    trainer.fit(x, t, resume=path, **{**FIT, "eval_interval": 15})
    assert trainer.current_epoch == 3 and len(trainer.loss_list) == 3


# ------------------------------------------------------------------- data


def _permuted(a, seed=0):
    perm = np.random.default_rng(seed).permutation(a.shape[0])
    return xpnn.asarray(xpnn.to_numpy(a)[perm])


@pytest.mark.parametrize(
    "case", ["fewer-rows", "other-seed", "permuted-rows", "shuffled-labels", "float64-x"]
)
def test_other_data_are_refused(ckpt, case):
    x, t = load_spiral()
    if case == "fewer-rows":
        x, t = x[:240, ...], t[:240, ...]
        match = "data_size=300, this fit has data_size=240"
    elif case == "other-seed":
        x, t = load_spiral(seed=1)
        match = r"other data: x has the checkpoint's shape and dtype but other values"
    elif case == "permuted-rows":
        x, t = _permuted(x), _permuted(t)
        match = r"x has the .* other values .*; t has the .* other values"
    elif case == "shuffled-labels":
        t = _permuted(t)
        match = r"other data: t has the checkpoint's shape and dtype but other values"
    else:
        x = xpnn.asarray(xpnn.to_numpy(x).astype(np.float64))
        match = "x is float64, the checkpoint's was float32"
    assert_refused_without_change(trained(), match, x, t, resume=ckpt)


def test_validation_data_are_not_part_of_the_fingerprint(ckpt):
    x, t = load_spiral()
    xv, tv = load_spiral(seed=5)
    trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 6, 3), Momentum(lr=0.1))
    trainer.fit(x, t, resume=ckpt, validation_data=(xv, tv), **FIT)
    assert trainer.current_epoch == 3


def test_fingerprint_is_the_same_on_every_backend(backend, tmp_path):
    """A checkpoint written on numpy resumes here: the data hash does not depend on the backend."""
    with xpnn.use_backend("numpy"):
        path = interrupted_checkpoint(tmp_path / "c.npz")
    x, t = load_spiral()
    trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 6, 3), Momentum(lr=0.1))
    trainer.fit(x, t, resume=path, **FIT)
    assert trainer.current_epoch == 3


# ------------------------------------------------------- model, optimizer


def test_other_hyper_parameters_are_refused(ckpt):
    x, t = load_spiral()
    assert_refused_without_change(
        trained(Momentum(lr=0.5)),
        r"written with Momentum lr=0.1, this optimizer has lr=0.5; "
        r"create it as Momentum\(lr=0.1, momentum=0.9\)",
        x,
        t,
        resume=ckpt,
    )
    assert_refused_without_change(
        trained(Momentum(lr=0.1, momentum=0.5)),
        "written with Momentum momentum=0.9, this optimizer has momentum=0.5",
        x,
        t,
        resume=ckpt,
    )


def test_a_float64_model_refuses_a_float32_checkpoint(ckpt):
    x, t = load_spiral(dtype="float64")
    assert_refused_without_change(
        trained(dtype="float64"),
        r"model/params.0 is float32 in the checkpoint, float64 in this model; "
        r"create the LayeredTwoLayerNet with dtype='float32'",
        x,
        t,
        resume=ckpt,
    )


def test_other_optimizer_and_model_are_refused(ckpt):
    x, t = load_spiral()
    assert_refused_without_change(
        trained(Adam(lr=0.1)), "optimizer Momentum, not Adam", x, t, resume=ckpt
    )
    other = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 4, 3, seed=3), Momentum(lr=0.1))
    other.fit(x, t, **{**FIT, "max_epoch": 1})
    assert_refused_without_change(other, "wrong shapes", x, t, resume=ckpt)


# -------------------------------------------------------- crafted files


def rewrite(path, edit_meta=None, edit_arrays=None):
    """Change a checkpoint's JSON metadata or arrays, as a damaged or crafted file would."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("__xpnn__")))
    if edit_meta is not None:
        edit_meta(meta)
    if edit_arrays is not None:
        edit_arrays(arrays)
    np.savez(path, __xpnn__=np.array(json.dumps(meta)), **arrays)


def _set(key, value):
    def edit(meta):
        meta["progress"][key] = value

    return edit


def _rng(**changes):
    def edit(meta):
        state = meta["progress"]["rng"]
        for key, value in changes.items():
            if key in ("state", "inc"):
                state["state"][key] = value
            elif value is None:
                del state[key]
            else:
                state[key] = value

    return edit


def _drop(key):
    return lambda meta: meta["progress"].pop(key)


def _meta(key, value):
    def edit(meta):
        if value is None:
            del meta[key]
        else:
            meta[key] = value

    return edit


def _opt(key, value):
    def edit(meta):
        meta["optimizer"][key] = value

    return edit


def _array(name, fn):
    def edit(arrays):
        arrays[name] = fn(arrays[name])

    return edit


def _nan(a):
    a = a.copy()
    a.flat[0] = np.nan
    return a


# At epoch 2 (index 1), iteration 4 of 10, with eval_interval 3: records at iterations
# 0, 3, 6, 9 of each epoch (the book's), so loss_count 0 and 4 + 2 records.
META_CASES = {
    "negative-epoch": (_set("epoch", -1), "'epoch' must be an int >= 0"),
    "epoch-past-the-end": (_set("epoch", 4), r"'epoch' must be at most max_epoch \(3\)"),
    "iteration-past-the-end": (_set("next_iter", 10), "'next_iter' must be from 0 to 9"),
    "negative-count": (_set("loss_count", -1), "'loss_count' must be an int >= 0"),
    "inconsistent-count": (_set("loss_count", 2), "'loss_count' must be 0 at epoch 1"),
    "float-count": (_set("loss_count", 1.0), "'loss_count' must be an int"),
    "bool-count": (_set("high_loss_records", True), "'high_loss_records' must be an int"),
    "string-epoch": (_set("current_epoch", "2"), "'current_epoch' must be an int"),
    "current-epoch-behind": (_set("current_epoch", 0), "'current_epoch' must be at least"),
    "curve-not-a-list": (_set("loss_list", "1.0"), "'loss_list' must be a list of floats"),
    "curve-of-strings": (_set("loss_list", ["1.0"] * 4), "'loss_list' must be a list of floats"),
    "curve-of-ints": (_set("loss_list", [1] * 4), "'loss_list' must be a list of floats"),
    "curve-too-short": (_set("loss_list", [1.0]), "'loss_list' has 1 records, this run made 6"),
    "accuracy-above-1": (_set("train_acc_list", [2.0]), "'train_acc_list' must be a list of"),
    "accuracies-of-unequal-length": (
        _set("test_acc_list", [0.5]),
        "'test_acc_list' must be as long as train_acc_list",
    ),
    "rng-not-a-dict": (_set("rng", [1, 2]), "'rng' must be a PCG64 state"),
    "rng-other-generator": (_rng(bit_generator="MT19937"), "'rng' must be a PCG64 state"),
    "rng-negative": (_rng(state=-1), "'rng' must be a PCG64 state"),
    "rng-even-increment": (_rng(inc=2), "'rng' must be a PCG64 state"),
    "rng-float": (_rng(state=5.5), "'rng' must be a PCG64 state"),
    "rng-missing-key": (_rng(uinteger=None), "'rng' must be a PCG64 state"),
    "max-grad-string": (_set("max_grad", "5"), "'max_grad' must be null or a positive number"),
    "data-size-zero": (_set("data_size", 0), "'data_size' must be a positive int"),
    "fingerprint-malformed": (_set("data", {"x": 1}), "'data' must be the fingerprint"),
    "missing-field": (_drop("epoch"), r"progress fields missing \['epoch'\]"),
    "unknown-field": (_set("junk", 1), r"unknown \['junk'\]"),
    "progress-not-a-dict": (_meta("progress", [1]), "'progress' must be a JSON object"),
    "optimizer-missing": (_meta("optimizer", None), "'optimizer' must be a JSON object"),
    "layout-missing": (_meta("optimizer_layout", None), "'optimizer_layout' must be a JSON"),
    "other-format": (_meta("format", 2), "checkpoint format 2, but this xpnn reads format 1"),
    "negative-optimizer-iter": (_opt("iter", -1), "the optimizer's 'iter' must be an int >= 0"),
    "hyper-parameter-string": (
        _opt("hyperparams", {"lr": "0.1", "momentum": 0.9}),
        "hyper-parameters must be numbers",
    ),
    "layout-of-another-model": (
        lambda meta: meta["optimizer_layout"].__setitem__("v", ["list", 3]),
        r"optimizer state 'v' is stored as \['list', 3\]",
    ),
}
ARRAY_CASES = {
    "nan-weight": (_array("model/params.0", _nan), "model/params.0 holds NaN or infinite"),
    "nan-velocity": (_array("opt/v/1", _nan), "opt/v/1 holds NaN or infinite"),
    "velocity-shape": (_array("opt/v/1", lambda a: a[:-1]), r"wrong shapes: opt/v/1 \(5,\)"),
    "velocity-dtype": (
        _array("opt/v/2", lambda a: a.astype(np.float64)),
        "opt/v/2 is float64 in the checkpoint, float32 in this model",
    ),
    "integer-weight": (
        _array("model/params.3", lambda a: a.astype(np.int64)),
        "model/params.3 has dtype int64, not float",
    ),
    "nan-loss-sum": (_array("extra/total_loss", _nan), "extra/total_loss is nan"),
    "loss-sum-not-0-d": (
        _array("extra/total_loss", lambda a: np.stack([a, a])),
        "extra/total_loss must be a 0-d float array",
    ),
    "stray-array": (lambda arrays: arrays.__setitem__("junk", np.zeros(2)), r"unexpected arrays"),
    "stray-optimizer-array": (
        lambda arrays: arrays.__setitem__("opt/v/9", np.zeros(2, np.float32)),
        r"unexpected optimizer arrays \['opt/v/9'\]",
    ),
    "missing-optimizer-array": (lambda arrays: arrays.pop("opt/v/0"), "opt/v/0 is missing"),
    "missing-extra": (lambda arrays: arrays.pop("extra/initial_loss"), "extra arrays"),
}


@pytest.mark.parametrize("case", list(META_CASES) + list(ARRAY_CASES))
def test_crafted_checkpoints_are_refused_before_anything_changes(ckpt, case):
    if case in META_CASES:
        edit, match = META_CASES[case]
        rewrite(ckpt, edit_meta=edit)
    else:
        edit, match = ARRAY_CASES[case]
        rewrite(ckpt, edit_arrays=edit)
    x, t = load_spiral()
    assert_refused_without_change(trained(), match, x, t, resume=ckpt)


def test_untouched_rewrite_still_resumes(ckpt):
    """The crafted-file cases above fail for their edit, not for the rewrite."""
    rewrite(ckpt, edit_meta=lambda meta: None)
    x, t = load_spiral()
    trainer = trained()
    trainer.fit(x, t, resume=ckpt, **FIT)
    assert trainer.current_epoch == 3


def test_a_loss_sum_without_losses_is_refused(backend, tmp_path):
    # With eval_interval 1 every loss is recorded at once: nothing is ever summed.
    path = interrupted_checkpoint(tmp_path / "c.npz", at=12, eval_interval=1)
    rewrite(path, edit_arrays=_array("extra/total_loss", lambda a: a + 3.0))
    x, t = load_spiral()
    assert_refused_without_change(
        trained(), "extra/total_loss is 3.0 with loss_count 0", x, t, resume=path, eval_interval=1
    )


def test_read_checkpoint_refuses_before_loading(backend, tmp_path):
    """The public reader checks the whole file before it loads anything."""
    path = interrupted_checkpoint(tmp_path / "c.npz")
    rewrite(path, edit_arrays=_array("opt/v/3", _nan))  # the last array read
    trainer = trained()
    before = snapshot(trainer)
    with pytest.raises(ModelFileError, match="opt/v/3 holds NaN"):
        read_checkpoint(path, trainer.model, trainer.optimizer)
    assert snapshot(trainer) == before


# ------------------------------------------------------ checkpoint guard


def _run_state(path):
    """Position and finiteness of what a checkpoint holds."""
    net, opt = xpnn.LayeredTwoLayerNet(2, 6, 3), Momentum(lr=0.1)
    progress, _ = read_checkpoint(path, net, opt)
    finite = all(np.isfinite(xpnn.to_numpy(p)).all() for p in net.params)
    return (progress["epoch"], progress["next_iter"]), finite


def _poisoned_fit(path, at, on_nan, **fit):
    x, t = load_spiral()
    net = xpnn.LayeredTwoLayerNet(2, 6, 3, seed=0)
    trainer = xpnn.Trainer(net, Poison(Momentum(lr=0.1), at))
    settings = {**FIT, "eval_interval": 10, **fit}
    return trainer.fit(x, t, checkpoint=path, checkpoint_every=2, on_nan=on_nan, **settings)


def test_a_nan_between_loss_checks_never_replaces_the_last_good_checkpoint(backend, tmp_path):
    path = tmp_path / "run.npz"
    # NaN after update 13 (epoch 2, iteration 3); losses are read at iteration 10 only.
    with pytest.raises(
        FloatingPointError,
        match=r"NaN or infinite at epoch 2, iteration 4: the checkpoint .*run.npz was not "
        r"written; the last complete checkpoint is .*run.npz \(epoch 2, iteration 2\)",
    ):
        _poisoned_fit(path, 13, "raise")
    assert _run_state(path) == ((1, 2), True)
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]


@pytest.mark.parametrize("on_nan", ["warn", "ignore"])
def test_the_checkpoint_guard_holds_in_every_mode(backend, tmp_path, on_nan):
    path = tmp_path / "run.npz"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _poisoned_fit(path, 13, on_nan)
    assert trainer.current_epoch == 3  # training went on
    assert _run_state(path) == ((1, 2), True)  # but the file kept the last good state
    skipped = [w for w in caught if "was not written" in str(w.message)]
    assert len(skipped) == (1 if on_nan == "warn" else 0)  # once, not at every checkpoint
    assert all(issubclass(w.category, RuntimeWarning) for w in caught)


def test_the_guard_says_when_no_checkpoint_was_written(backend, tmp_path):
    with pytest.raises(FloatingPointError, match="this fit wrote no checkpoint yet"):
        _poisoned_fit(tmp_path / "run.npz", 1, "raise")
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_write_reads_the_device_once(backend, tmp_path, monkeypatch):
    reads = count_reads(monkeypatch)  # in xpnn.training.trainer and the modules of its parts
    x, t = load_spiral()
    trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 6, 3), Momentum(lr=0.1))
    trainer.fit(x, t, checkpoint=tmp_path / "c.npz", **{**FIT, "eval_interval": 10})
    # 2 for the data fingerprint (once per fit), 1 per loss record, 1 per checkpoint.
    assert len(reads) == 2 + 3 + 3


# ------------------------------------------------------------- divergence


class Scripted:
    """A chapter-4-style model whose loss follows a script, one value an iteration."""

    output_size = 3

    def __init__(self, script, start=0):
        self.script, self.calls = script, start
        self.params = {"W": xpnn.zeros((2, 3))}

    def gradient(self, x, t):
        xp = xpnn.get_namespace(x)
        return {"W": xp.zeros_like(self.params["W"])}

    def loss(self, x, t):
        value = self.script[self.calls]
        self.calls += 1
        xp = xpnn.get_namespace(x)
        return xp.asarray(value, dtype=x.dtype, device=xpnn.device_of(x))

    def predict(self, x):
        return x @ self.params["W"]


def _scripted_fit(script, on_nan="raise", start=0, **fit):
    x = xpnn.zeros((len(script), 2))
    t = xpnn.asarray(np.zeros(len(script), dtype=np.int64))
    trainer = xpnn.Trainer(Scripted(script, start), SGD(lr=0.1))
    settings = {"max_epoch": 1, "batch_size": 1, "eval_interval": 1, "seed": 0}
    settings.update(progress=False, verbose=False, on_nan=on_nan, **fit)
    return trainer, trainer.fit(x, t, **settings)


def test_divergence_needs_three_records_in_a_row_far_above_the_untrained_loss(backend):
    limit = 10 * math.log(3)  # the first loss (1.0) and 1 are below ln 3
    high, low = limit * 1.01, limit * 0.99
    # Two high records, a dip, two more: no divergence.
    _, trainer = _scripted_fit([1.0, high, high, low, high, high, 1.0])
    assert len(trainer.loss_list) == 7
    with pytest.raises(FloatingPointError, match=r"diverged: .* above 10.99 .* 3 times in a row"):
        _scripted_fit([1.0, high, high, high, 1.0])


def test_the_untrained_loss_is_the_first_batch_loss_when_larger(backend):
    # A model that starts at loss 100 (large initial weights) has a limit of 1000.
    _, trainer = _scripted_fit([100.0, 900.0, 900.0, 900.0, 1.0])
    assert trainer.loss_list[-1] == 1.0
    with pytest.raises(FloatingPointError, match="above 1000"):
        _scripted_fit([100.0, 1001.0, 1001.0, 1001.0])


def test_divergence_warn_and_ignore(backend):
    script = [1.0] + [50.0] * 6
    with pytest.warns(RuntimeWarning, match="diverged") as caught:
        _, trainer = _scripted_fit(script, on_nan="warn")
    assert len([w for w in caught if "diverged" in str(w.message)]) == 1
    assert len(trainer.loss_list) == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _scripted_fit(script, on_nan="ignore")


def test_the_divergence_count_survives_a_resume(backend, tmp_path):
    high = 50.0
    script = [1.0, high, high, high]
    path = tmp_path / "c.npz"
    x = xpnn.zeros((4, 2))
    t = xpnn.asarray(np.zeros(4, dtype=np.int64))
    model = Scripted(script)
    fit = {"max_epoch": 1, "batch_size": 1, "eval_interval": 1, "progress": False}
    fit["verbose"] = False
    with pytest.raises(KeyboardInterrupt):
        xpnn.Trainer(model, Interrupt(SGD(lr=0.1), 4)).fit(
            x, t, checkpoint=path, checkpoint_every=1, **fit
        )
    # Two high records were made before Ctrl-C; the resumed run's first is the third.
    resumed = xpnn.Trainer(Scripted(script, start=3), SGD(lr=0.1))
    with pytest.raises(FloatingPointError, match="3 times in a row"):
        resumed.fit(x, t, resume=path, **fit)


def test_a_huge_learning_rate_diverges_on_every_backend(backend):
    x, t = load_spiral()
    trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 10, 3, seed=0), SGD(lr=1e6))
    with pytest.raises(
        FloatingPointError, match=r"diverged.*smaller learning rate \(it is 1e\+06\)"
    ):
        trainer.fit(x, t, max_epoch=30, batch_size=30, eval_interval=10, progress=False)


@pytest.mark.parametrize("kind", ["symlink", "folder", "under-a-file", "fifo"])
def test_a_checkpoint_path_that_cannot_be_written_fails_before_training(tmp_path, kind):
    import os

    target = tmp_path / "run.npz"
    if kind == "symlink":
        (tmp_path / "real.npz").write_bytes(b"")
        target.symlink_to(tmp_path / "real.npz")
    elif kind == "folder":
        target.mkdir()
    elif kind == "under-a-file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "run.npz"
    else:
        os.mkfifo(target)
    x, t = load_spiral()
    net = xpnn.LayeredTwoLayerNet(2, 6, 3, seed=0)
    before = [np.array(xpnn.to_numpy(p)) for p in net.params]
    with pytest.raises(ValueError, match="checkpoint"):
        xpnn.Trainer(net, SGD(lr=1.0)).fit(
            x, t, max_epoch=1, batch_size=30, checkpoint=target, progress=False, verbose=False
        )
    after = [np.array(xpnn.to_numpy(p)) for p in net.params]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("max_iters", [1, 2, 7, 10])
@pytest.mark.parametrize("interval", [1, 3, 5, 10])
def test_the_loss_count_and_records_of_a_position_are_the_loops(max_iters, interval):
    """What resume expects at (epoch, next_iter) is what fit's loop has counted there."""
    interval = min(interval, max_iters)  # as fit clamps it
    count = records = 0
    for epoch in range(3):
        for i in range(max_iters):
            assert _loss_records(epoch, i, max_iters, interval) == (count, records)
            count += 1
            if i % interval == 0:  # the book's record
                count, records = 0, records + 1
    assert _loss_records(3, 0, max_iters, interval) == (count, records)

"""Checkpoints and exact resume, interrupts, NaN policy, and fit's input checks."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.datasets import load_spiral
from xpnn.io import ModelFileError
from xpnn.optimizers import SGD, Adam, Momentum

FIT = {
    "max_epoch": 4,
    "batch_size": 30,
    "eval_interval": 3,
    "seed": 7,
    "progress": False,
    "verbose": False,
}


def host_params(net):
    return [xpnn.to_numpy(p) for p in net.params]


def make(opt_cls, seed=0):
    lr = 1.0 if opt_cls is SGD else 0.05
    return xpnn.LayeredTwoLayerNet(2, 6, 3, seed=seed), opt_cls(lr=lr)


class Interrupt:
    """Wraps an optimizer and presses Ctrl-C at its ``at``-th update."""

    def __init__(self, optimizer, at):
        self.inner, self.at, self.calls = optimizer, at, 0

    def update(self, params, grads):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        self.inner.update(params, grads)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("opt_cls", [SGD, Adam], ids=["SGD", "Adam"])
@pytest.mark.parametrize("at", [5, 10, 11, 24, 37], ids=lambda a: f"ctrl-c-at-update-{a}")
def test_resume_ends_exactly_like_an_uninterrupted_run(backend, tmp_path, capsys, opt_cls, at):
    x, t = load_spiral()
    xv, tv = x[:60, ...], t[:60, ...]
    net, opt = make(opt_cls)
    whole = xpnn.Trainer(net, opt).fit(x, t, validation_data=(xv, tv), **FIT)
    expected = host_params(net)

    ckpt = tmp_path / "run.npz"
    net1, opt1 = make(opt_cls)
    trainer1 = xpnn.Trainer(net1, Interrupt(opt1, at))
    with pytest.raises(KeyboardInterrupt):
        trainer1.fit(x, t, validation_data=(xv, tv), checkpoint=ckpt, checkpoint_every=4, **FIT)
    message = capsys.readouterr().err
    assert "training interrupted" in message and str(ckpt) in message
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]  # nothing half-written

    net2, opt2 = make(opt_cls, seed=99)  # other weights: all must come from the file
    resumed = xpnn.Trainer(net2, opt2).fit(
        x, t, validation_data=(xv, tv), resume=ckpt, checkpoint=ckpt, **FIT
    )
    exact = backend.name == "numpy"
    for got, want in zip(host_params(net2), expected, strict=True):
        if exact:
            np.testing.assert_array_equal(got, want)  # bit for bit
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if exact:
        assert resumed.loss_list == whole.loss_list
    else:
        np.testing.assert_allclose(resumed.loss_list, whole.loss_list, rtol=1e-5)
    assert resumed.test_acc_list == pytest.approx(whole.test_acc_list)
    assert resumed.current_epoch == whole.current_epoch == 4


def test_interrupt_before_any_checkpoint_says_so(tmp_path, capsys):
    x, t = load_spiral()
    net, opt = make(SGD)
    with pytest.raises(KeyboardInterrupt):
        xpnn.Trainer(net, Interrupt(opt, 2)).fit(x, t, checkpoint=tmp_path / "c.npz", **FIT)
    assert "no checkpoint was written yet" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    x, t = load_spiral()
    ckpt = tmp_path / "c.npz"
    net, opt = make(SGD)
    xpnn.Trainer(net, opt).fit(x, t, checkpoint=ckpt, **{**FIT, "max_epoch": 1})
    before = ckpt.read_bytes()

    def dies_half_way(file, **arrays):
        file.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        xpnn.Trainer(*make(SGD)).fit(x, t, checkpoint=ckpt, **FIT)
    assert ckpt.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


def test_resume_refuses_another_run(tmp_path):
    x, t = load_spiral()
    ckpt = tmp_path / "c.npz"
    xpnn.Trainer(*make(SGD)).fit(x, t, checkpoint=ckpt, **{**FIT, "max_epoch": 1})
    with pytest.raises(ModelFileError, match="batch_size=30, this fit has batch_size=20"):
        xpnn.Trainer(*make(SGD)).fit(x, t, resume=ckpt, **{**FIT, "batch_size": 20})
    with pytest.raises(ModelFileError, match="optimizer SGD, not Adam"):
        xpnn.Trainer(*make(Adam)).fit(x, t, resume=ckpt, **FIT)
    other = xpnn.TwoLayerNet(2, 6, 3)
    with pytest.raises(ModelFileError, match="LayeredTwoLayerNet, cannot resume a TwoLayerNet"):
        xpnn.Trainer(other, SGD()).fit(x, t, resume=ckpt, **FIT)
    small = xpnn.LayeredTwoLayerNet(2, 4, 3)
    with pytest.raises(ModelFileError, match="wrong shapes"):
        xpnn.Trainer(small, SGD(lr=1.0)).fit(x, t, resume=ckpt, **FIT)
    xpnn.io.save(small, tmp_path / "model.npz")
    with pytest.raises(ModelFileError, match="not a training checkpoint"):
        xpnn.Trainer(*make(SGD)).fit(x, t, resume=tmp_path / "model.npz", **FIT)


def test_checkpoint_moves_between_backends(backend, tmp_path):
    """A run checkpointed on numpy resumes on the backend under test."""
    with xpnn.use_backend("numpy"):
        x, t = load_spiral()
        net, opt = make(Adam)
        xpnn.Trainer(net, opt).fit(x, t, checkpoint=tmp_path / "c.npz", **{**FIT, "max_epoch": 2})
    xb, tb = load_spiral()
    net2, opt2 = make(Adam, seed=5)
    xpnn.Trainer(net2, opt2).fit(xb, tb, resume=tmp_path / "c.npz", **{**FIT, "max_epoch": 2})
    for got, want in zip(host_params(net2), host_params(net), strict=True):
        np.testing.assert_array_equal(got, want)  # nothing left to run: exactly the saved state
    assert xpnn.device_of(opt2.m[0]) == backend.device


def _nan_data():
    xh = np.zeros((60, 2), dtype=np.float32)  # the models' default dtype
    xh[5, 0] = np.nan
    return xpnn.asarray(xh), xpnn.asarray(np.zeros(60, dtype=np.int64))


def test_nan_policy(backend):
    x, t = _nan_data()
    fit = {
        "max_epoch": 2,
        "batch_size": 10,
        "eval_interval": 1,  # each loss recorded: the NaN batch is caught in epoch 1
        "progress": False,
        "verbose": False,
    }
    with pytest.raises(FloatingPointError, match=r"epoch 1, by iteration \d.*smaller learning"):
        xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 3, 3), SGD()).fit(x, t, **fit)
    with pytest.warns(RuntimeWarning, match="became nan"):
        trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 3, 3), SGD()).fit(
            x, t, on_nan="warn", **fit
        )
    assert len(trainer.loss_list) == 12
    trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 3, 3), SGD()).fit(
        x, t, on_nan="ignore", **fit
    )
    assert np.isnan(trainer.loss_list[-1])
    with pytest.raises(ValueError, match="on_nan"):
        xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 3, 3), SGD()).fit(x, t, on_nan="skip", **fit)


@pytest.mark.parametrize(
    ("x", "t", "error", "match"),
    [
        (
            np.zeros((6, 2)),
            np.array([0, 1, 2, 3, 0, 1]),
            ValueError,
            r"labels from 0 to 3, outside 0\.\.2",
        ),
        (np.zeros((6, 2)), np.array([0, -1, 2, 0, 0, 1]), ValueError, "labels from -1"),
        (np.zeros((6, 5)), np.zeros(6, dtype=np.int64), ValueError, "5 features .* expects 2"),
        (np.zeros((6, 2)), np.zeros((6, 4)), ValueError, "4 classes .* has 3 outputs"),
        (
            np.zeros((6, 2)),
            np.zeros((5,), dtype=np.int64),
            ValueError,
            r"6 samples .* shape \(5,\)",
        ),
        (np.zeros(6), np.zeros(6, dtype=np.int64), ValueError, "must be 2-D"),
        (
            np.zeros((6, 2), dtype=np.int64),
            np.zeros(6, dtype=np.int64),
            TypeError,
            "floating point",
        ),
        (np.zeros((6, 2)), np.zeros(6), TypeError, "integer labels"),
    ],
    ids=[
        "label-too-big",
        "label-negative",
        "features",
        "one-hot-classes",
        "lengths",
        "1-d-x",
        "int-x",
        "float-labels",
    ],
)
def test_fit_names_what_is_wrong(backend, x, t, error, match):
    dtype = None if x.dtype.kind == "f" else "int64"
    trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 3, 3), SGD())
    with pytest.raises(error, match=match):
        trainer.fit(xpnn.asarray(x, dtype=dtype), xpnn.asarray(t), batch_size=2, progress=False)


def test_fit_refuses_data_on_another_backend_than_the_model(backend):
    other = "numpy" if backend.name != "numpy" else "array_api_strict:device1"
    with xpnn.use_backend(other):
        net = xpnn.LayeredTwoLayerNet(2, 3, 3)
    x, t = load_spiral()
    with pytest.raises(xpnn.BackendMismatchError):
        xpnn.Trainer(net, SGD()).fit(x, t, progress=False)


# ------------------------------------------- BatchNormalization and Dropout


def bn_dropout_net(seed=0, dropout_seed=5, dtype="float32", dropout=True):
    """Affine, BatchNormalization, Relu, [Dropout,] Affine: built by hand, on the active backend."""
    from xpnn.layers import Affine, BatchNormalization, Dropout, Relu, SoftmaxWithLoss

    rng = np.random.default_rng(seed)

    def arr(a):
        return xpnn.asarray(a, dtype=dtype)

    layers = [
        Affine(arr(rng.normal(0, 0.5, (2, 16))), arr(np.zeros(16))),
        BatchNormalization(arr(np.ones(16)), arr(np.zeros(16)), momentum=0.8),
        Relu(),
        *([Dropout(0.3, seed=dropout_seed)] if dropout else []),
        Affine(arr(rng.normal(0, 0.5, (16, 3))), arr(np.zeros(3))),
    ]
    return xpnn.LayeredNet(layers, SoftmaxWithLoss(), input_size=2)


class StopAfter(xpnn.Callback):
    """Presses Ctrl-C after the ``at``-th iteration of the run."""

    def __init__(self, at):
        self.at, self.done = at, 0

    def on_batch_end(self, state, loss):
        self.done += 1
        if self.done == self.at:
            raise KeyboardInterrupt


def host_arrays(net):
    """Parameters and running statistics by name (host copies)."""
    return {k: np.array(xpnn.to_numpy(a)) for k, a in net.named_arrays().items()}


BN_FIT = {**FIT, "max_epoch": 3}


@pytest.mark.parametrize("opt_cls", [Momentum, Adam], ids=["Momentum", "Adam"])
@pytest.mark.parametrize("at", [6, 14, 23], ids=lambda a: f"ctrl-c-after-iteration-{a}")
def test_resume_with_batchnorm_and_dropout_ends_like_an_uninterrupted_run(
    backend, tmp_path, opt_cls, at
):
    x, t = load_spiral()
    xv, tv = x[::5, ...], t[::5, ...]
    net = bn_dropout_net()
    whole = xpnn.Trainer(net, opt_cls(lr=0.05)).fit(x, t, validation_data=(xv, tv), **BN_FIT)
    expected = host_arrays(net)
    assert net.layers[3].draws == 30  # a mask an iteration
    assert np.abs(expected["layers.1.running_var"]).sum() > 0  # the statistics moved

    ckpt = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        xpnn.Trainer(bn_dropout_net(), opt_cls(lr=0.05)).fit(
            x,
            t,
            validation_data=(xv, tv),
            checkpoint=ckpt,
            checkpoint_every=4,
            callbacks=[StopAfter(at)],
            **BN_FIT,
        )
    # Other weights, zero statistics and another Dropout seed: all must come from the file.
    net2 = bn_dropout_net(seed=9, dropout_seed=77)
    resumed = xpnn.Trainer(net2, opt_cls(lr=0.05)).fit(
        x, t, validation_data=(xv, tv), resume=ckpt, checkpoint=ckpt, **BN_FIT
    )
    assert (net2.layers[3].seed, net2.layers[3].draws) == (5, 30)
    got = host_arrays(net2)
    assert sorted(got) == sorted(expected)
    for key, want in expected.items():
        if backend.name == "numpy":
            np.testing.assert_array_equal(got[key], want, err_msg=key)  # bit for bit
        else:
            np.testing.assert_allclose(got[key], want, rtol=1e-5, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(resumed.loss_list, whole.loss_list, rtol=1e-5)
    assert resumed.test_acc_list == pytest.approx(whole.test_acc_list)


def test_a_checkpoint_holds_the_running_statistics_and_the_dropout_draws(backend, tmp_path):
    import json

    x, t = load_spiral()
    net = bn_dropout_net()
    ckpt = tmp_path / "run.npz"
    xpnn.Trainer(net, Momentum(lr=0.05)).fit(x, t, checkpoint=ckpt, **{**FIT, "max_epoch": 2})
    with np.load(ckpt) as data:
        meta = json.loads(str(data["__xpnn__"]))
        for name in ("running_mean", "running_var"):
            np.testing.assert_array_equal(
                data[f"extra/state/layers.1.{name}"], xpnn.to_numpy(getattr(net.layers[1], name))
            )
    assert meta["progress"]["dropout"] == [{"seed": 5, "draws": 20}]


def _bn_checkpoint(tmp_path, dropout=True):
    x, t = load_spiral()
    ckpt = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        xpnn.Trainer(bn_dropout_net(dropout=dropout), Momentum(lr=0.05)).fit(
            x, t, checkpoint=ckpt, checkpoint_every=4, callbacks=[StopAfter(6)], **BN_FIT
        )
    return ckpt, x, t


def _without(key):
    return lambda arrays: arrays.pop(key)


def _nan_at(key):
    def edit(arrays):
        arrays[key] = arrays[key].copy()
        arrays[key][0] = np.nan

    return edit


def _negative_at(key):
    def edit(arrays):
        arrays[key] = arrays[key].copy()
        arrays[key][1] = -1.0

    return edit


def _dropout_field(value):
    def edit(meta):
        meta["progress"]["dropout"] = value

    return edit


BN_CASES = {
    "missing-running-mean": (
        None,
        _without("extra/state/layers.1.running_mean"),
        "extra arrays .* expected",
    ),
    "nan-running-var": (
        None,
        _nan_at("extra/state/layers.1.running_var"),
        "extra/state/layers.1.running_var holds NaN",
    ),
    "negative-running-var": (
        None,
        _negative_at("extra/state/layers.1.running_var"),
        r"running_var.*1 negative value",
    ),
    "float64-running-var": (
        None,
        lambda arrays: arrays.__setitem__(
            "extra/state/layers.1.running_var",
            arrays["extra/state/layers.1.running_var"].astype(np.float64),
        ),
        "running_var is float64 in the checkpoint, float32 in this model",
    ),
    "dropout-not-a-list": (_dropout_field({"seed": 5}), None, "'dropout' must be a list"),
    "negative-draws": (
        _dropout_field([{"seed": 5, "draws": -1}]),
        None,
        "'dropout' must be a list",
    ),
    "float-seed": (_dropout_field([{"seed": 5.0, "draws": 3}]), None, "'dropout' must be"),
    "two-dropouts": (
        _dropout_field([{"seed": 5, "draws": 3}] * 2),
        None,
        "records 2 Dropout layers, this LayeredNet has 1",
    ),
    "no-dropout-field": (
        lambda meta: meta["progress"].pop("dropout"),
        None,
        "records 0 Dropout layers, this LayeredNet has 1",
    ),
}


@pytest.mark.parametrize("case", list(BN_CASES))
def test_damaged_layer_state_is_refused_before_anything_changes(tmp_path, case):
    from test_resume_guard import rewrite

    ckpt, x, t = _bn_checkpoint(tmp_path)
    edit_meta, edit_arrays, match = BN_CASES[case]
    rewrite(ckpt, edit_meta=edit_meta, edit_arrays=edit_arrays)
    net = bn_dropout_net(seed=3, dropout_seed=8)
    before = host_arrays(net)
    opt = Momentum(lr=0.05)
    with pytest.raises(ModelFileError, match=match):
        xpnn.Trainer(net, opt).fit(x, t, resume=ckpt, **BN_FIT)
    for key, a in host_arrays(net).items():
        np.testing.assert_array_equal(a, before[key], err_msg=key)
    assert (net.layers[3].seed, net.layers[3].draws, opt.v) == (8, 0, None)


def test_a_checkpoint_without_the_dropout_field_resumes_a_model_without_dropout(tmp_path):
    from test_resume_guard import rewrite

    ckpt, x, t = _bn_checkpoint(tmp_path, dropout=False)
    rewrite(ckpt, edit_meta=lambda meta: meta["progress"].pop("dropout"))  # as written before
    trainer = xpnn.Trainer(bn_dropout_net(dropout=False), Momentum(lr=0.05))
    trainer.fit(x, t, resume=ckpt, **BN_FIT)
    assert trainer.current_epoch == 3
    # A model with a Dropout layer more is another run.
    (tmp_path / "2").mkdir()
    ckpt2, _, _ = _bn_checkpoint(tmp_path / "2")
    with pytest.raises(ModelFileError, match="records 1 Dropout layers, this LayeredNet has 0"):
        xpnn.Trainer(bn_dropout_net(dropout=False), Momentum(lr=0.05)).fit(
            x, t, resume=ckpt2, **BN_FIT
        )


def test_running_statistics_that_are_not_finite_are_never_checkpointed(tmp_path):
    class PoisonStatistics(xpnn.Callback):
        def on_batch_end(self, state, loss):
            if state.iteration == 5:
                stats = state.trainer.model.layers[1].running_var
                stats[...] = stats * float("nan")

    x, t = load_spiral()
    ckpt = tmp_path / "run.npz"
    with pytest.raises(FloatingPointError, match=r"not written; the last complete .*iteration 4"):
        xpnn.Trainer(bn_dropout_net(), Momentum(lr=0.05)).fit(
            x, t, checkpoint=ckpt, checkpoint_every=4, callbacks=[PoisonStatistics()], **BN_FIT
        )
    with np.load(ckpt) as data:  # the one of iteration 4, before the poison
        assert np.isfinite(data["extra/state/layers.1.running_var"]).all()

"""Checkpoints and exact resume, interrupts, NaN policy, and fit's input checks."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.datasets import load_spiral
from xpnn.io import ModelFileError
from xpnn.optimizers import SGD, Adam

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
        "eval_interval": 6,
        "progress": False,
        "verbose": False,
    }
    with pytest.raises(FloatingPointError, match=r"epoch 1, by iteration 6.*smaller learning"):
        xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 3, 3), SGD()).fit(x, t, **fit)
    with pytest.warns(RuntimeWarning, match="became nan"):
        trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 3, 3), SGD()).fit(
            x, t, on_nan="warn", **fit
        )
    assert len(trainer.loss_list) == 2
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

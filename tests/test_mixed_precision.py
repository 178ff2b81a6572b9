"""Mixed-precision training (issue 14, item 3): float32 master weights, half
forward/backward, dynamic loss scaling on the device, resumable bit for bit.

Backends without float16 (array_api_strict: the standard has none) run the same
code with float32 compute under float64 master weights, which also proves that
a mixed step reads nothing from the device (device1 refuses implicit reads).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_resume_guard import rewrite

import xpnn
from xpnn.io import ModelFileError
from xpnn.optimizers import SGD, Adam, Momentum
from xpnn.training.precision import LossScaler, MixedPrecision

HALF = {"numpy", "cupy", "torch"}


def compute_and_master(backend):
    """The compute dtype to test on this backend, and its master dtype."""
    return ("float16", "float32") if backend.name in HALF else ("float32", "float64")


def small_problem(master, n=64, d=12, h=8, c=4, seed=0):
    rng = xpnn.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n, d), dtype=master)
    t = rng.integers(0, c, (n,))
    net = xpnn.TwoLayerNet(d, h, c, weight_init_std=0.3, seed=seed, dtype=master)
    return net, x, t


def host(arrays):
    return [xpnn.to_numpy(a).copy() for a in arrays]


def optimizer_state(opt):
    arrays = []
    for name in opt._state_names:
        state = getattr(opt, name)
        if state is not None:
            arrays += list(state.values()) if isinstance(state, dict) else list(state)
    return host(arrays)


def test_float16_compute_is_refused_clearly_where_the_library_has_none(backend):
    net, x, t = small_problem("float32")
    before = host(net.params.values())
    trainer = xpnn.Trainer(net, SGD(lr=0.1))
    if backend.name in HALF:
        trainer.fit(
            x, t, max_epoch=1, batch_size=16, verbose=False, progress=False, precision="mixed16"
        )
        assert trainer.loss_list and np.isfinite(trainer.loss_list).all()
        return
    with pytest.raises(ValueError, match="Array API standard defines float32 and float64"):
        trainer.fit(
            x, t, max_epoch=1, batch_size=16, verbose=False, progress=False, precision="mixed16"
        )
    for a, b in zip(before, host(net.params.values()), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_mixed_step_matches_the_float32_gradients(backend):
    # One SGD step of the mixed model against backprop in the master dtype:
    # the update divided by lr is the gradient, within the compute dtype's rounding.
    compute, master = compute_and_master(backend)
    net, x, t = small_problem(master)
    reference, _, _ = small_problem(master)
    reference.forward(x, t)
    reference.backward()
    expected = host(reference.grads.values())
    lr = 0.5
    before = host(net.params.values())
    mp = MixedPrecision(compute)
    mp.bind(net, SGD(lr=lr))
    loss = mp.step(x, t, None)
    assert xpnn.to_numpy(loss).dtype == np.float32 or compute == "float32"
    after = host(net.params.values())
    tol = 2e-2 if compute == "float16" else 1e-5  # float16: 11 bits; float32 vs float64
    for b, a, g in zip(before, after, expected, strict=True):
        got = (b.astype(np.float64) - a) / lr
        assert np.linalg.norm(got - g) <= tol * np.linalg.norm(g)


@pytest.mark.parametrize("opt_cls", [SGD, Momentum, Adam], ids=["SGD", "Momentum", "Adam"])
@pytest.mark.parametrize("first", [False, True], ids=["after-a-step", "first-step"])
def test_a_step_with_non_finite_gradients_changes_nothing(backend, opt_cls, first):
    compute, master = compute_and_master(backend)
    net, x, t = small_problem(master)
    opt = opt_cls(lr=0.1)
    mp = MixedPrecision(compute, scaler=LossScaler(init_scale=2.0**10))
    mp.bind(net, opt)
    if not first:
        mp.step(x[:16, ...], t[:16], None)
    params, states = host(net.params.values()), optimizer_state(opt)
    scale = mp.scaler.state_dict()
    # A NaN input makes every gradient NaN: the update must be skipped, on the device.
    bad = xpnn.to_numpy(x[:16, ...]).copy()
    bad[3, 2] = np.nan
    mp.step(xpnn.asarray(bad, dtype=master), t[:16], None)
    for a, b in zip(params, host(net.params.values()), strict=True):
        np.testing.assert_array_equal(a, b)
    now = optimizer_state(opt)
    if first:  # made by the skipped update: as they start, zero
        assert (opt_cls is SGD) == (not now)  # SGD keeps no state
        assert all((s == 0).all() for s in now)
    else:
        for a, b in zip(states, now, strict=True):
            np.testing.assert_array_equal(a, b)
    after = mp.scaler.state_dict()
    assert after == {"scale": scale["scale"] / 2, "growth_tracker": 0, "skipped": 1}
    # ... and the next good step trains again.
    mp.step(x[16:32, ...], t[16:32], None)
    assert any(
        not np.array_equal(a, b) for a, b in zip(params, host(net.params.values()), strict=True)
    )


def test_the_scale_grows_after_growth_interval_clean_steps_and_not_past_float32(backend):
    xp = backend.xp
    scaler = LossScaler(init_scale=2.0**126, growth_interval=3)
    scaler.start(xp, backend.device)
    ok, bad = xp.asarray(True, device=backend.device), xp.asarray(False, device=backend.device)
    seen = []
    for finite in (ok, ok, ok, ok, ok, ok, bad, ok, ok, ok):
        scaler.update(finite)
        seen.append(scaler.state_dict())
    scales = [s["scale"] for s in seen]
    trackers = [s["growth_tracker"] for s in seen]
    # 2**127 is the last power of two below float32's max: 2**128 overflows, so it stays.
    assert scales == [2.0**126] * 2 + [2.0**127] * 3 + [2.0**127] + [2.0**126] * 3 + [2.0**127]
    assert trackers == [1, 2, 0, 1, 2, 0, 0, 1, 2, 0]
    assert seen[-1]["skipped"] == 1


def test_the_scaler_follows_torch_gradscaler_step_by_step():
    torch = pytest.importorskip("torch")
    pattern = [1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    kwargs = {
        "init_scale": 2.0**16,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 3,
    }
    reference = torch.amp.GradScaler("cpu", **kwargs)
    reference.scale(torch.ones(()))  # makes its scale, lazily, as a first loss would
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1)
    with xpnn.use_backend("torch:cpu"):
        ours = LossScaler(**kwargs)
        ours.start(xpnn.get_backend().xp, xpnn.get_backend().device)
        for finite in pattern:
            g = torch.full((3,), 0.25 if finite else float("inf"))
            p.grad = g * reference.get_scale()
            reference.step(opt)
            reference.update()
            out = [torch.zeros(3)]
            ok = ours.unscale([g * ours.state_dict()["scale"]], out)
            ours.update(ok)
            assert bool(ok) == bool(finite)
            assert ours.state_dict()["scale"] == reference.get_scale()
            assert ours.state_dict()["growth_tracker"] == reference._growth_tracker.item()


class StopAt(xpnn.Callback):
    """Presses Ctrl-C after the ``at``-th iteration of the run."""

    def __init__(self, at):
        self.at, self.done = at, 0

    def on_batch_end(self, state, loss):
        self.done += 1
        if self.done == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("opt_cls", [SGD, Adam], ids=["SGD", "Adam"])
def test_resume_restores_the_scaler_bit_for_bit(backend, tmp_path, capsys, opt_cls):
    compute, master = compute_and_master(backend)

    def run(callbacks=(), **kw):
        net, x, t = small_problem(master, n=96)
        # A tiny growth interval and a large start make the scale move both ways.
        mp = MixedPrecision(compute, scaler=LossScaler(init_scale=2.0**20, growth_interval=4))
        trainer = xpnn.Trainer(net, opt_cls(lr=0.05))
        trainer.fit(
            x,
            t,
            max_epoch=4,
            batch_size=16,
            eval_interval=2,
            verbose=False,
            progress=False,
            precision=mp,
            callbacks=callbacks,
            **kw,
        )
        return net, trainer, mp

    net1, trainer1, mp1 = run()
    path = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        run(callbacks=[StopAt(9)], checkpoint=path, checkpoint_every=2)
    net2, trainer2, mp2 = run(checkpoint=path, resume=path)
    assert mp2.scaler.state_dict() == mp1.scaler.state_dict()
    assert trainer2.loss_list == trainer1.loss_list
    for a, b in zip(host(net1.params.values()), host(net2.params.values()), strict=True):
        np.testing.assert_array_equal(a, b)
    meta = json.loads(str(np.load(path)["__xpnn__"]))
    assert meta["progress"]["precision"]["dtype"] == compute
    assert meta["progress"]["scaler"] == mp1.scaler.state_dict()


def _checkpoint(tmp_path, precision):
    net, x, t = small_problem("float32")
    path = tmp_path / "run.npz"
    xpnn.Trainer(net, SGD(lr=0.1)).fit(
        x,
        t,
        max_epoch=2,
        batch_size=16,
        verbose=False,
        progress=False,
        precision=precision,
        checkpoint=path,
    )
    return path, x, t


@pytest.mark.parametrize(
    ("written", "resumed", "match"),
    [
        ("mixed16", None, "precision"),
        (None, "mixed16", "precision"),
        ("mixed16", MixedPrecision("float16", scaler=LossScaler(growth_interval=10)), "precision"),
    ],
)
def test_resume_refuses_another_precision(tmp_path, written, resumed, match):
    path, x, t = _checkpoint(tmp_path, written)
    net, _, _ = small_problem("float32")
    before = host(net.params.values())
    with pytest.raises(ModelFileError, match=match):
        xpnn.Trainer(net, SGD(lr=0.1)).fit(
            x,
            t,
            max_epoch=2,
            batch_size=16,
            verbose=False,
            progress=False,
            precision=resumed,
            resume=path,
        )
    for a, b in zip(before, host(net.params.values()), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "scaler",
    [
        None,
        {"scale": -1.0, "growth_tracker": 0, "skipped": 0},
        {"scale": 0.1, "growth_tracker": 0, "skipped": 0},  # not a float32 value
        {"scale": 1024.0, "growth_tracker": 2000, "skipped": 0},
        {"scale": 1024.0, "growth_tracker": 0, "skipped": True},
        {"scale": 1024.0, "growth_tracker": 0},
        "1024",
    ],
)
def test_a_damaged_scaler_state_is_refused(tmp_path, scaler):
    path, x, t = _checkpoint(tmp_path, "mixed16")

    def edit(meta):
        meta["progress"]["scaler"] = scaler

    rewrite(path, edit_meta=edit)
    net, _, _ = small_problem("float32")
    with pytest.raises(ModelFileError, match="scaler"):
        xpnn.Trainer(net, SGD(lr=0.1)).fit(
            x,
            t,
            max_epoch=2,
            batch_size=16,
            verbose=False,
            progress=False,
            precision="mixed16",
            resume=path,
        )


def test_a_checkpoint_from_before_mixed_precision_still_resumes(tmp_path):
    path, x, t = _checkpoint(tmp_path, None)

    def edit(meta):
        del meta["progress"]["precision"], meta["progress"]["scaler"]

    rewrite(path, edit_meta=edit)
    net, _, _ = small_problem("float32")
    trainer = xpnn.Trainer(net, SGD(lr=0.1))
    trainer.fit(x, t, max_epoch=2, batch_size=16, verbose=False, progress=False, resume=path)
    assert trainer.current_epoch == 2 and len(trainer.loss_list) == 2 * 4 // 4


class Chapter4Model:
    """A chapter-4 model (loss and gradient), not made of layers."""

    def __init__(self):
        self.inner = xpnn.TwoLayerNet(12, 8, 4, seed=0)
        self.params = self.inner.params

    def loss(self, x, t):
        return self.inner.loss(x, t)

    def gradient(self, x, t):
        return self.inner.gradient(x, t)


class Plain:
    """An optimizer that is not one of xpnn.optimizers."""

    def update(self, params, grads):
        pass


@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        ("chapter-4 model", TypeError, "made of layers"),
        ("foreign optimizer", TypeError, "xpnn.optimizers"),
        ("float16 master", ValueError, "master weights"),
        ("cuda graph", ValueError, "cuda_graph"),
        ("unknown name", ValueError, "precision must be"),
        ("bfloat16 on numpy", ValueError, "numpy has no bfloat16"),
        ("bad scaler", ValueError, "growth_interval"),
    ],
)
def test_refusals_come_before_anything_changes(case, error, match):
    net, x, t = small_problem("float32")
    model, opt, precision, kw = net, SGD(lr=0.1), "mixed16", {}
    if case == "chapter-4 model":
        model = Chapter4Model()
    elif case == "foreign optimizer":
        opt = Plain()
    elif case == "float16 master":
        model = xpnn.TwoLayerNet(12, 8, 4, seed=0, dtype="float16")
        x = xpnn.asarray(xpnn.to_numpy(x), dtype="float16")
    elif case == "cuda graph":
        kw = {"cuda_graph": True}
    elif case == "unknown name":
        precision = "half"
    elif case == "bfloat16 on numpy":
        precision = "mixed_bf16"
    before = host(model.params.values())
    with pytest.raises(error, match=match):
        if case == "bad scaler":
            precision = MixedPrecision("float16", scaler=LossScaler(growth_interval=0))
        xpnn.Trainer(model, opt).fit(
            x,
            t,
            max_epoch=1,
            batch_size=16,
            verbose=False,
            progress=False,
            precision=precision,
            **kw,
        )
    for a, b in zip(before, host(model.params.values()), strict=True):
        np.testing.assert_array_equal(a, b)


def _mnist_accuracy(precision, epochs=4):
    (x, t), (x_test, t_test) = xpnn.datasets.load_mnist5k()
    net = xpnn.TwoLayerNet(784, 50, 10, seed=0)
    mp = xpnn.training.precision.mixed_precision(precision)
    xpnn.Trainer(net, SGD(lr=1.0)).fit(
        x, t, max_epoch=epochs, batch_size=100, verbose=False, progress=False, precision=mp
    )
    return float(xpnn.to_numpy(net.accuracy(x_test, t_test))), mp


@pytest.mark.parametrize("precision", ["mixed16", "mixed_bf16"])
def test_mnist5k_mixed_precision_matches_float32_within_half_a_point(precision):
    pytest.importorskip("torch")
    with xpnn.use_backend("torch:cpu"):
        reference, _ = _mnist_accuracy(None)
        accuracy, mp = _mnist_accuracy(precision)
    assert reference > 0.8  # a trained net, not chance
    assert abs(accuracy - reference) <= 0.005
    if precision == "mixed16":
        assert mp.scaler.state_dict()["skipped"] < 5
    else:
        assert mp.scaler is None


def test_mixed16_gradients_agree_with_torch_autocast():
    # PyTorch's own AMP on the same net and batch: autocast float16 forward,
    # GradScaler backward. Both are float16 computations of the same float32
    # gradient: they agree to float16 rounding, not bit for bit.
    torch = pytest.importorskip("torch")
    with xpnn.use_backend("torch:cpu"):
        net, x, t = small_problem("float32", n=32)
        W1, b1, W2, b2 = (p.clone().requires_grad_(True) for p in net.params.values())
        with torch.autocast("cpu", dtype=torch.float16):
            h = torch.sigmoid(x @ W1 + b1)  # the book's TwoLayerNet: Affine, Sigmoid, Affine
            scores = h @ W2 + b2
        loss = torch.nn.functional.cross_entropy(scores.float(), t)
        scaler = torch.amp.GradScaler("cpu")
        scaler.scale(loss).backward()
        inv = 1.0 / scaler.get_scale()
        expected = [p.grad.numpy() * inv for p in (W1, b1, W2, b2)]
        mp = MixedPrecision("float16")
        mp.bind(net, SGD(lr=1.0))
        ours_loss = mp.step(x, t, None)
        assert abs(float(ours_loss) - loss.item()) <= 1e-2 * loss.item()
        for g, e in zip(mp._grads, expected, strict=True):
            g = g.numpy()
            assert np.linalg.norm(g - e) <= 2e-2 * np.linalg.norm(e)


def test_a_second_fit_goes_on_with_the_scaler_of_the_first(backend):
    compute, master = compute_and_master(backend)
    net, x, t = small_problem(master)
    mp = MixedPrecision(compute, scaler=LossScaler(init_scale=2.0**4, growth_interval=2))
    trainer = xpnn.Trainer(net, SGD(lr=0.1))
    fit = {"batch_size": 16, "verbose": False, "progress": False, "precision": mp}
    trainer.fit(x, t, max_epoch=1, **fit)
    first = mp.scaler.state_dict()
    assert first["scale"] == 2.0**6  # 4 clean steps, growing every 2
    trainer.fit(x, t, max_epoch=1, **fit)
    assert mp.scaler.state_dict()["scale"] == 2.0**8


# ------------------------------------------- BatchNormalization and Dropout


def _bn_fit(net, precision=None, **kw):
    from xpnn.datasets import load_spiral

    x, t = load_spiral()
    x = xpnn.asarray(xpnn.to_numpy(x), dtype=_dtype_of(net))
    trainer = xpnn.Trainer(net, Momentum(lr=0.05))
    trainer.fit(
        x,
        t,
        max_epoch=3,
        batch_size=30,
        eval_interval=5,
        seed=2,
        verbose=False,
        progress=False,
        precision=precision,
        **kw,
    )
    return trainer, x, t


def _dtype_of(net):
    return xpnn.to_numpy(net.params[0]).dtype.name


def test_the_master_follows_the_twins_running_statistics_and_dropout(backend):
    from test_checkpoint import bn_dropout_net

    compute, master = compute_and_master(backend)
    net = bn_dropout_net(dtype=master)
    mp = MixedPrecision(compute)
    _, x, _ = _bn_fit(net, mp)
    assert mp.twin.layers[1].running_mean is net.layers[1].running_mean  # no copies
    assert net.layers[3].draws == 30 and mp.twin.layers[3].draws == 30
    # The same training with the twin's dtype all along: the same masks, nearly the same
    # statistics (the weights differ by the compute dtype's rounding).
    reference = bn_dropout_net(dtype=compute)
    _bn_fit(reference)
    tol = 5e-2 if compute == "float16" else 1e-4
    for name in ("running_mean", "running_var"):
        got = xpnn.to_numpy(getattr(net.layers[1], name))
        want = xpnn.to_numpy(getattr(reference.layers[1], name)).astype(np.float64)
        assert got.dtype.name == master and np.abs(got).sum() > 0
        assert np.linalg.norm(got - want) <= tol * np.linalg.norm(want), name
    # The master predicts with them (test mode: the running statistics).
    ours = np.argmax(xpnn.to_numpy(net.predict(x)), axis=1)
    x_compute = xpnn.asarray(xpnn.to_numpy(x), dtype=compute)
    theirs = np.argmax(xpnn.to_numpy(reference.predict(x_compute)), axis=1)
    assert np.mean(ours == theirs) >= 0.95


def test_resume_with_dropout_under_mixed_precision_is_exact(backend, tmp_path):
    from test_checkpoint import bn_dropout_net

    compute, master = compute_and_master(backend)
    whole, _, _ = _bn_fit(bn_dropout_net(dtype=master), MixedPrecision(compute))
    path = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        _bn_fit(
            bn_dropout_net(dtype=master),
            MixedPrecision(compute),
            checkpoint=path,
            checkpoint_every=4,
            callbacks=[StopAt(14)],
        )
    net = bn_dropout_net(seed=4, dropout_seed=11, dtype=master)
    resumed, _, _ = _bn_fit(net, MixedPrecision(compute), resume=path)
    assert resumed.loss_list == whole.loss_list
    for (key, a), b in zip(
        net.named_arrays().items(), whole.model.named_arrays().values(), strict=True
    ):
        np.testing.assert_array_equal(xpnn.to_numpy(a), xpnn.to_numpy(b), err_msg=key)
    assert net.layers[3].draws == 30


def test_a_skipped_step_keeps_the_running_statistics(backend):
    from test_checkpoint import bn_dropout_net

    compute, master = compute_and_master(backend)
    net = bn_dropout_net(dtype=master)
    mp = MixedPrecision(compute, scaler=LossScaler(init_scale=2.0**10))
    mp.bind(net, SGD(lr=0.1))
    x = xpnn.asarray(np.random.default_rng(0).normal(size=(16, 2)), dtype=master)
    t = xpnn.asarray(np.arange(16) % 3)
    mp.step(x, t, None)
    stats = host([net.layers[1].running_mean, net.layers[1].running_var])
    bad = xpnn.to_numpy(x).copy()
    bad[3, 1] = np.nan
    mp.step(xpnn.asarray(bad, dtype=master), t, None)
    assert mp.scaler.state_dict()["skipped"] == 1
    now = host([net.layers[1].running_mean, net.layers[1].running_var])
    for a, b in zip(stats, now, strict=True):
        np.testing.assert_array_equal(a, b)
    mp.step(x, t, None)  # a good step updates them again
    assert not np.array_equal(stats[0], xpnn.to_numpy(net.layers[1].running_mean))

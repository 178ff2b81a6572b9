"""The Trainer: the book's spiral result, both model styles, no hidden syncs."""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest

import xpnn
import xpnn.training.callbacks
import xpnn.training.checkpointer
import xpnn.training.trainer
from xpnn.datasets.spiral import load_spiral
from xpnn.optimizers import SGD
from xpnn.training.trainer import clip_grads


def host(a):
    return xpnn.to_numpy(a)


#: The modules of Trainer.fit and its parts: each reads the device through its own to_numpy.
FIT_MODULES = (xpnn.training.trainer, xpnn.training.callbacks, xpnn.training.checkpointer)


def count_reads(monkeypatch):
    """A list that gets an entry at each device read of Trainer.fit and its parts."""
    reads = []
    real = xpnn.to_numpy
    for module in FIT_MODULES:
        monkeypatch.setattr(module, "to_numpy", lambda a: reads.append(1) or real(a))
    return reads


def test_spiral_reproduces_the_book(backend):
    """Vol. 2 ch. 1: hidden 10, SGD lr 1.0, 300 epochs, batch 30."""
    x, t = load_spiral()
    net = xpnn.LayeredTwoLayerNet(2, 10, 3, seed=0)
    trainer = xpnn.Trainer(net, SGD(lr=1.0))
    trainer.fit(x, t, max_epoch=300, batch_size=30, eval_interval=10, progress=False, verbose=False)
    assert len(trainer.loss_list) == 300  # 10 iterations an epoch, one record each
    assert trainer.loss_list[0] > 1.0  # starts near log(3)
    assert trainer.loss_list[-1] <= 0.2  # the book reaches about 0.11
    assert float(host(net.accuracy(x, t))) >= 0.9  # the book: about 0.97


def test_spiral_data_is_the_books(backend, xp):
    x, t = load_spiral()
    assert tuple(x.shape) == (300, 2) and tuple(t.shape) == (300, 3)
    assert x.dtype == xp.float32 and t.dtype == xp.int64
    # The book's algorithm, point by point, with its global-seed calls replaced
    # by a private RandomState (same numbers).
    rs = np.random.RandomState(1984)
    expected = np.zeros((300, 2))
    for j in range(3):
        for i in range(100):
            rate = i / 100
            theta = j * 4.0 + 4.0 * rate + rs.randn() * 0.2
            expected[100 * j + i] = [rate * np.sin(theta), rate * np.cos(theta)]
    np.testing.assert_allclose(host(x), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(host(t), np.repeat(np.eye(3, dtype=np.int64), 100, axis=0))


def test_spiral_leaves_the_global_random_state_alone():
    before = np.random.get_state()[1].copy()  # noqa: NPY002 - the global state is the point
    load_spiral()
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    with pytest.raises(ValueError, match="n_per_class"):
        load_spiral(n_per_class=0)


def _blobs(n=90, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n // 3)
    centers = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    x = centers[labels] + rng.normal(scale=0.4, size=(n, 3))
    return x.astype(np.float32), labels  # float32: the models' default dtype


def test_chapter4_model_with_validation_curves(backend):
    xh, th = _blobs()
    x, t = xpnn.asarray(xh), xpnn.asarray(th)
    xv, tv = (xpnn.asarray(a) for a in _blobs(30, seed=1))
    net = xpnn.TwoLayerNet(3, 8, 3, weight_init_std=0.5, seed=0)
    trainer = xpnn.Trainer(net, SGD(lr=0.5))
    trainer.fit(
        x,
        t,
        max_epoch=40,
        batch_size=15,
        eval_interval=3,
        validation_data=(xv, tv),
        progress=False,
        verbose=False,
    )
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == 40
    assert len(trainer.loss_list) == 40 * 2
    assert trainer.loss_list[-1] < 0.5 * trainer.loss_list[0]
    assert trainer.test_acc_list[-1] >= 0.9 and trainer.train_acc_list[-1] >= 0.9
    assert trainer.train_acc_list[-1] == pytest.approx(float(host(net.accuracy(x, t))))


class _BareModel:
    """A chapter-4-style model without a loss layer: loss() and gradient() only."""

    def __init__(self):
        self.inner = xpnn.TwoLayerNet(3, 4, 3, weight_init_std=0.5, seed=1)
        self.params = self.inner.params
        self.loss_calls = 0

    def loss(self, x, t):
        self.loss_calls += 1
        return self.inner.loss(x, t)

    def gradient(self, x, t):
        return self.inner.gradient(x, t)

    def predict(self, x):
        return self.inner.predict(x)


def test_model_without_accuracy_or_loss_layer(backend):
    xh, th = _blobs()
    x, t = xpnn.asarray(xh), xpnn.asarray(th)
    model = _BareModel()
    trainer = xpnn.Trainer(model, SGD(lr=0.5))
    trainer.fit(
        x,
        t,
        max_epoch=5,
        batch_size=30,
        eval_interval=3,
        validation_data=(x, t),
        progress=False,
        verbose=False,
    )
    assert model.loss_calls == 5 * 3  # one loss() per iteration
    assert trainer.train_acc_list[-1] == pytest.approx(float(host(model.inner.accuracy(x, t))))


def _train_50_steps(spec, dtype):
    with xpnn.use_backend(spec, dtype=dtype):
        x, t = load_spiral()
        net = xpnn.LayeredTwoLayerNet(2, 10, 3, seed=3)
        xpnn.Trainer(net, SGD(lr=1.0)).fit(
            x,
            t,
            max_epoch=5,
            batch_size=30,
            eval_interval=10,
            seed=11,
            progress=False,
            verbose=False,
        )
    return [host(p) for p in net.params]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_same_seed_same_training_on_every_backend(backend, dtype):
    """50 steps on this backend and on numpy end with the same parameters."""
    got = _train_50_steps(backend.spec, dtype)
    want = _train_50_steps("numpy", dtype)
    tol = 1e-10 if dtype == "float64" else 1e-4
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_shuffling_follows_the_seed(backend):
    def run(seed):
        x, t = load_spiral()
        net = xpnn.LayeredTwoLayerNet(2, 5, 3, seed=0)
        xpnn.Trainer(net, SGD(lr=1.0)).fit(
            x, t, max_epoch=2, batch_size=30, seed=seed, progress=False, verbose=False
        )
        return host(net.params[0])

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_loss_is_read_only_at_eval_intervals(backend, monkeypatch):
    reads = count_reads(monkeypatch)
    x, t = load_spiral()
    net = xpnn.LayeredTwoLayerNet(2, 5, 3, seed=0)
    xpnn.Trainer(net, SGD(lr=1.0)).fit(
        x, t, max_epoch=3, batch_size=30, eval_interval=5, progress=False, verbose=False
    )
    assert len(reads) == 3 * 2  # 10 iterations an epoch, a read every 5


def test_book_progress_lines(backend, capsys):
    x, t = load_spiral()
    net = xpnn.LayeredTwoLayerNet(2, 5, 3, seed=0)
    xpnn.Trainer(net, SGD(lr=1.0)).fit(
        x, t, max_epoch=2, batch_size=30, eval_interval=10, progress=False
    )
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"\| epoch 1 \|  iter 1 / 10 \| time \d+\[s\] \| loss \d+\.\d\d", lines[0])
    assert lines[1].startswith("| epoch 2 |")
    assert err == ""


def test_progress_bar_only_where_someone_watches(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    x, t = load_spiral()

    def fit(**kwargs):
        net = xpnn.LayeredTwoLayerNet(2, 5, 3, seed=0)
        xpnn.Trainer(net, SGD(lr=1.0)).fit(
            x, t, max_epoch=1, batch_size=30, verbose=False, **kwargs
        )
        return capsys.readouterr().err

    assert fit() == ""  # stderr is no terminal under pytest: a bar would be noise in a log
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert "/10 [" in fit()  # in a notebook kernel the bar is shown
    assert fit(progress=False) == ""


def test_clip_grads(backend, xp):
    g = [xpnn.asarray([3.0, 0.0], dtype="float64"), xpnn.asarray([[0.0], [4.0]], dtype="float64")]
    clip_grads(g, 1.0)  # global norm 5 -> 1
    np.testing.assert_allclose(host(g[0]), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(host(g[1]), [[0.0], [0.8]], rtol=1e-6)
    small = {"a": xpnn.asarray([0.3, 0.4], dtype="float64")}
    clip_grads(small, 1.0)  # norm 0.5: untouched
    np.testing.assert_array_equal(host(small["a"]), [0.3, 0.4])
    g32 = [xpnn.asarray([30.0, 40.0])]
    clip_grads(g32, 5.0)
    assert g32[0].dtype == xp.float32
    np.testing.assert_allclose(host(g32[0]), [3.0, 4.0], rtol=1e-5)


def test_fit_with_max_grad_clips(backend):
    x, t = load_spiral()
    net = xpnn.LayeredTwoLayerNet(2, 10, 3, seed=0)
    trainer = xpnn.Trainer(net, SGD(lr=1.0))
    trainer.fit(x, t, max_epoch=20, batch_size=30, max_grad=0.01, progress=False, verbose=False)
    # With a tiny step size the loss barely moves from log(3).
    assert trainer.loss_list[-1] > 1.0


def test_nan_loss_stops_training_with_advice(backend):
    xh = np.zeros((60, 2), dtype=np.float32)  # the models' default dtype
    xh[5, 0] = np.nan
    x, t = xpnn.asarray(xh), xpnn.asarray(np.zeros(60, dtype=np.int64))
    trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 3, 3, seed=0), SGD(lr=0.1))
    with pytest.raises(FloatingPointError, match=r"epoch 1.*smaller learning rate"):
        trainer.fit(
            x, t, max_epoch=3, batch_size=10, eval_interval=1, progress=False, verbose=False
        )


def test_fit_errors(backend):
    x, t = load_spiral()
    net = xpnn.LayeredTwoLayerNet(2, 3, 3, seed=0)
    trainer = xpnn.Trainer(net, SGD())
    with pytest.raises(ValueError, match=r"300 samples .* t has shape \(299, 3\)"):
        trainer.fit(x, t[:299, ...], progress=False)
    with pytest.raises(ValueError, match="batch_size 301"):
        trainer.fit(x, t, batch_size=301, progress=False)
    with pytest.raises(ValueError, match="max_epoch"):
        trainer.fit(x, t, max_epoch=0, progress=False)
    with pytest.raises(ValueError, match="max_grad"):
        trainer.fit(x, t, max_grad=-1.0, progress=False)
    other = "numpy" if backend.name != "numpy" else "array_api_strict:device1"
    with xpnn.use_backend(other):
        xv, tv = load_spiral()
    with pytest.raises(xpnn.BackendMismatchError):
        trainer.fit(x, t, validation_data=(xv, tv), progress=False)
    with pytest.raises(TypeError, match="not a model"):
        xpnn.Trainer(object(), SGD())
    with pytest.raises(TypeError, match="update"):
        xpnn.Trainer(net, object())
    with pytest.raises(ValueError, match="fit"):
        trainer.plot("unused.png")


def test_plot_writes_the_figure(tmp_path):
    x, t = load_spiral()
    net = xpnn.TwoLayerNet(2, 5, 3, seed=0)
    trainer = xpnn.Trainer(net, SGD(lr=1.0))
    trainer.fit(x, t, max_epoch=3, batch_size=30, eval_interval=5, progress=False, verbose=False)
    assert trainer.plot(tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    trainer.fit(
        x,
        t,
        max_epoch=2,
        batch_size=30,
        eval_interval=5,
        validation_data=(x, t),
        progress=False,
        verbose=False,
    )
    assert trainer.plot(tmp_path / "both.svg").read_text().lstrip().startswith("<")


def _trained(validation=False):
    x, t = load_spiral()
    trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 5, 3, seed=0), SGD(lr=1.0))
    extra = {"validation_data": (x, t)} if validation else {}
    return trainer.fit(x, t, max_epoch=3, batch_size=30, progress=False, verbose=False, **extra)


def test_plot_without_a_path_writes_a_new_file_when_nothing_can_show(tmp_path, monkeypatch, capsys):
    import matplotlib

    monkeypatch.setattr(matplotlib, "get_backend", lambda: "agg")
    monkeypatch.chdir(tmp_path)
    trainer = _trained()
    first = trainer.plot()
    assert first == tmp_path / "xpnn_training.png"
    assert f"written to {first}" in capsys.readouterr().out
    content = first.read_bytes()
    assert content[:4] == b"\x89PNG"
    second = trainer.plot(ylim=(0, 2))
    assert second == tmp_path / "xpnn_training-2.png"  # the first is never overwritten
    assert first.read_bytes() == content and second.read_bytes()[:4] == b"\x89PNG"
    assert f"written to {second}" in capsys.readouterr().out


@pytest.mark.parametrize("validation", [False, True], ids=["loss", "loss-and-accuracy"])
def test_plot_shows_the_figure_where_it_can(tmp_path, monkeypatch, validation):
    import matplotlib
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(matplotlib, "get_backend", lambda: "module://matplotlib_inline")
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    monkeypatch.chdir(tmp_path)
    try:
        assert _trained(validation).plot(ylim=(0.5, 1.5)) is None
        assert len(shown) == 1
        axes = shown[0].axes
        assert len(axes) == (2 if validation else 1)
        assert axes[0].get_ylim() == (0.5, 1.5)  # the loss axis
        assert list(tmp_path.iterdir()) == []
    finally:
        plt.close("all")


def test_plot_ylim_on_a_file_and_bad_ylim(tmp_path, monkeypatch):
    import xpnn.plot

    figures = []
    real = xpnn.plot._save
    monkeypatch.setattr(xpnn.plot, "_save", lambda fig, out: figures.append(fig) or real(fig, out))
    trainer = _trained(validation=True)
    assert trainer.plot(tmp_path / "c.png", (0.25, 2.0)) == tmp_path / "c.png"
    assert figures[0].axes[0].get_ylim() == (0.25, 2.0)
    assert figures[0].axes[1].get_ylim() == (0.0, 1.0)  # accuracy keeps its range
    for bad in [(2.0, 1.0), (0.0,), "ab"]:
        with pytest.raises(ValueError, match="ylim"):
            trainer.plot(tmp_path / "d.png", ylim=bad)
    assert not (tmp_path / "d.png").exists()


def test_plot_without_display_in_a_fresh_process(tmp_path):
    """matplotlib's own backend choice (Agg, no display) leads to a file."""
    import os
    import subprocess

    code = (
        "import xpnn\n"
        "from xpnn.datasets import load_spiral\n"
        "x, t = load_spiral()\n"
        "tr = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 5, 3), xpnn.SGD(lr=1.0))\n"
        "tr.fit(x, t, max_epoch=2, batch_size=30, progress=False, verbose=False)\n"
        "print(tr.plot())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "Agg"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == str(tmp_path / "xpnn_training.png")
    assert (tmp_path / "xpnn_training.png").read_bytes()[:4] == b"\x89PNG"


def test_cuda_graph_needs_cupy_data(backend):
    if backend.name == "cupy":
        pytest.skip("CuPy runs CUDA graphs: tests/test_gpu.py")
    x, t = load_spiral()
    trainer = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 10, 3, seed=0), xpnn.SGD(lr=1.0))
    before = [np.array(xpnn.to_numpy(p)) for p in trainer.model.params]
    with pytest.raises(ValueError, match="cuda_graph=True needs the data on CuPy"):
        trainer.fit(
            x, t, max_epoch=1, batch_size=30, progress=False, verbose=False, cuda_graph=True
        )
    for p, b in zip(trainer.model.params, before, strict=True):  # nothing was trained
        np.testing.assert_array_equal(xpnn.to_numpy(p), b)


# ------------------------------------------------------------- empty data


def _untouched_net_and_trainer():
    """A net with running statistics and Dropout draws, and a trainer with Adam (state, iter)."""
    net = xpnn.MultiLayerNetExtend(2, [5], 3, use_dropout=True, use_batchnorm=True, seed=0)
    return net, xpnn.Trainer(net, xpnn.Adam(lr=0.01))


def _snapshot(net, trainer):
    """Everything a refused fit must leave as it was: the model's arrays (on the host), its
    Dropout layers' draw counts (their random state), the optimizer's, the trainer's curves."""
    arrays = {k: np.array(host(a)) for k, a in net.named_arrays().items()}
    draws = [layer.draws for layer in net.layers if isinstance(layer, xpnn.layers.Dropout)]
    optimizer = trainer.optimizer
    return {
        "arrays": arrays,
        "draws": draws,
        "optimizer": (optimizer.iter, optimizer.m, optimizer.v),
        "trainer": (trainer.loss_list, trainer.train_acc_list, trainer.current_epoch),
    }


def _assert_unchanged(before, after):
    assert before.keys() == after.keys()
    for key, value in before["arrays"].items():
        np.testing.assert_array_equal(after["arrays"][key], value, err_msg=key)
    assert after["draws"] == before["draws"]
    assert after["optimizer"] == (0, None, None)  # no update, no state made
    assert after["trainer"] == before["trainer"] == ([], [], 0)


def _empty_cases(xp):
    x, t = load_spiral()
    labels = xp.argmax(t, axis=1)
    return {
        "no rows, integer labels": (x[:0, ...], labels[:0]),
        "no rows, one-hot labels": (x[:0, ...], t[:0, ...]),
        "rows but no labels": (x[:5, ...], labels[:0]),
    }


@pytest.mark.parametrize(
    "case", ["no rows, integer labels", "no rows, one-hot labels", "rows but no labels"]
)
def test_fit_refuses_an_empty_data_set_before_anything_changes(backend, xp, case):
    x, t = _empty_cases(xp)[case]
    net, trainer = _untouched_net_and_trainer()
    before = _snapshot(net, trainer)
    with pytest.raises(ValueError, match="the data set is empty") as info:
        trainer.fit(x, t, max_epoch=1, batch_size=1, progress=False, verbose=False)
    assert f"x has shape {tuple(x.shape)}" in str(info.value)
    assert f"t has shape {tuple(t.shape)}" in str(info.value)
    _assert_unchanged(before, _snapshot(net, trainer))


@pytest.mark.parametrize("one_hot", [False, True])
def test_fit_refuses_empty_validation_data_before_anything_changes(backend, xp, one_hot):
    x, t = load_spiral()
    labels = t if one_hot else xp.argmax(t, axis=1)
    net, trainer = _untouched_net_and_trainer()
    before = _snapshot(net, trainer)
    with pytest.raises(ValueError, match="the data set is empty") as info:
        trainer.fit(
            x,
            labels,
            max_epoch=1,
            batch_size=30,
            validation_data=(x[:0, ...], labels[:0, ...]),
            progress=False,
            verbose=False,
        )
    assert "x_test has shape (0, 2)" in str(info.value)
    _assert_unchanged(before, _snapshot(net, trainer))


@pytest.mark.parametrize("empty", ["train", "test"])
def test_book_form_refuses_an_empty_data_set_before_train(backend, xp, empty):
    x, t = load_spiral()
    labels = xp.argmax(t, axis=1)
    data = [x[:200, ...], labels[:200], x[200:, ...], labels[200:]]
    at = 0 if empty == "train" else 2
    data[at], data[at + 1] = data[at][:0, ...], data[at + 1][:0]
    net = xpnn.MultiLayerNetExtend(2, [5], 3, use_dropout=True, use_batchnorm=True, seed=0)
    arrays = {k: np.array(host(a)) for k, a in net.named_arrays().items()}
    with pytest.raises(ValueError, match="the data set is empty") as info:
        xpnn.Trainer(net, *data, epochs=1, mini_batch_size=10, verbose=False).train()
    assert "(0, 2)" in str(info.value)
    for key, value in arrays.items():
        np.testing.assert_array_equal(host(net.named_arrays()[key]), value, err_msg=key)


def test_accuracy_at_is_checked_before_anything_trains(backend):
    x, t = load_spiral()
    net = xpnn.LayeredTwoLayerNet(2, 3, 3, seed=0)
    before = [np.array(xpnn.to_numpy(p)) for p in net.params]
    trainer = xpnn.Trainer(net, SGD())
    for validation in (None, (x, t)):
        with pytest.raises(ValueError, match="accuracy_at must be one of 'epoch_end'"):
            trainer.fit(x, t, validation_data=validation, accuracy_at="end", progress=False)
    assert all(np.array_equal(a, xpnn.to_numpy(p)) for a, p in zip(before, net.params, strict=True))
    assert trainer.loss_list == [] and trainer.current_epoch == 0
    # Both settings measure once an epoch; "first_iteration" before the epoch's training.
    fit = {"max_epoch": 30, "batch_size": 30, "progress": False, "verbose": False}
    late = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 10, 3, seed=0), SGD(lr=1.0))
    early = xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 10, 3, seed=0), SGD(lr=1.0))
    late.fit(x, t, validation_data=(x, t), **fit)
    early.fit(x, t, validation_data=(x, t), accuracy_at="first_iteration", **fit)
    assert len(late.test_acc_list) == len(early.test_acc_list) == 30
    assert late.test_acc_list[-1] == float(xpnn.to_numpy(late.model.accuracy(x, t)))
    assert early.test_acc_list != late.test_acc_list


def _epoch_orders(trainer):
    """The order of each epoch the trainer shuffles (host copies), as it shuffles them."""
    orders, shuffle = [], trainer._shuffle

    def spy(state):
        order = shuffle(state)
        orders.append(np.array(xpnn.to_numpy(order), copy=True))
        return order

    trainer._shuffle = spy
    return orders


def test_a_loop_of_one_epoch_fits_shuffles_each_epoch_anew(backend):
    """The book's ch. 7-8 scripts call fit(max_epoch=1) once an epoch: each call goes on
    with the trainer's generator, as the book's np.random does, unless a seed is given."""
    x, t = load_spiral()
    quiet = {"batch_size": 30, "verbose": False, "progress": False}

    def trainer():
        return xpnn.Trainer(xpnn.LayeredTwoLayerNet(2, 4, 3, seed=0), xpnn.SGD(lr=0.1))

    whole = trainer()
    in_one = _epoch_orders(whole)
    whole.fit(x, t, max_epoch=2, **quiet)
    loop = trainer()
    in_loop = _epoch_orders(loop)
    for _ in range(2):
        loop.fit(x, t, max_epoch=1, **quiet)
    again = trainer()
    seeded = _epoch_orders(again)
    for _ in range(2):
        again.fit(x, t, max_epoch=1, seed=0, **quiet)

    assert not np.array_equal(in_loop[0], in_loop[1])  # the second epoch is shuffled anew
    for a, b in zip(in_loop, in_one, strict=True):  # as one fit of two epochs
        assert np.array_equal(a, b)
    for a, b in zip(whole.model.params, loop.model.params, strict=True):
        assert np.array_equal(xpnn.to_numpy(a), xpnn.to_numpy(b))
    assert np.array_equal(seeded[0], seeded[1])  # an explicit seed starts over
    with pytest.raises(ValueError, match="seed must be an int, None or 'continue'"):
        trainer().fit(x, t, seed="again", **quiet)

"""The ``xpnn`` command: info, train, gradcheck, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import xpnn
import xpnn.cli as cli
from xpnn.cli import main
from xpnn.datasets import load_mnist5k


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_lists_backends(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0
    assert "numpy              yes" in out
    assert "array_api_strict   yes" in out
    assert "cupy:0" in out and "active backend: numpy:cpu" in out


def test_info_json(capsys):
    code, out, _ = run(capsys, "info", "--json")
    data = json.loads(out)
    assert code == 0 and data["xpnn"] == xpnn.__version__
    assert data["backends"]["numpy"] is None
    assert set(data["backends"]) == {
        "numpy",
        "array_api_strict",
        "torch:cpu",
        "torch:cuda",
        "cupy:0",
    }


def test_console_script_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "xpnn", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"xpnn {xpnn.__version__}"


def test_train_spiral_defaults_reach_the_books_result(capsys, tmp_path):
    plot, saved = tmp_path / "spiral.png", tmp_path / "spiral.npz"
    code, out, _ = run(capsys, "train", "--plot", str(plot), "--save", str(saved))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("xpnn train: spiral (300 samples) on numpy:cpu, float32")
    assert "| epoch 1 |  iter 1 / 10 |" in out
    loss = float(out.split("final loss")[1].split()[0])
    accuracy = float(out.split("train accuracy")[1].split()[0])
    assert loss <= 0.2 and accuracy >= 0.9  # the book: about 0.11 and 0.97
    assert plot.read_bytes()[:4] == b"\x89PNG"
    net = xpnn.io.load(saved)
    assert isinstance(net, xpnn.LayeredTwoLayerNet)


def test_train_quiet_prints_only_the_result(capsys):
    code, out, err = run(capsys, "train", "--quiet", "--epochs", "20")
    assert code == 0
    assert out.count("\n") == 1 and out.startswith("final loss")
    assert err == ""


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_train_other_optimizers(capsys, optimizer):
    lr = "0.1" if optimizer == "momentum" else "0.01"
    code, out, _ = run(
        capsys, "train", "--quiet", "--epochs", "100", "--optimizer", optimizer, "--lr", lr
    )
    assert code == 0
    assert float(out.split("final loss")[1].split()[0]) < 0.9  # well below log(3)


def test_train_mnist_reports_test_accuracy(capsys, mnist_dir, tmp_path):
    code, out, _ = run(
        capsys,
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        str(mnist_dir),
        "--iters",
        "200",
        "--batch-size",
        "20",
        "--lr",
        "0.5",
        "--plot",
        str(tmp_path / "m.png"),
    )
    assert code == 0
    assert "| epoch 1 | train acc, test acc |" in out
    assert float(out.split("test accuracy")[1].split()[0]) >= 0.9
    assert (tmp_path / "m.png").exists()


def test_train_on_another_backend(capsys, backend):
    code, out, _ = run(capsys, "train", "--quiet", "--epochs", "5", "--backend", backend.spec)
    assert code == 0 and out.startswith("final loss")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "-1"], "--lr: must be a positive number"),
        (["--epochs", "0"], "--epochs: must be positive"),
        (["--batch-size", "x"], "not an integer"),
        (["--dataset", "cifar"], "invalid choice"),
        (["--epochs", "2", "--iters", "3"], "not allowed with"),
        (["--max-grad", "0"], "--max-grad: must be a positive number"),
    ],
)
def test_train_bad_options_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as err:
        main(["train", *argv])
    assert err.value.code == 2
    stderr = capsys.readouterr().err
    assert message in stderr and stderr.count("\n") == 1


def test_train_runtime_errors_are_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(xpnn.backend.selection, "_cache", {})
    code, _, err = run(capsys, "train", "--backend", "cupy")
    assert code == 2 and "not installed" in err and err.count("\n") == 1
    code, _, err = run(
        capsys, "train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--no-download"
    )
    assert code == 2 and "train-images-idx3-ubyte.gz" in err
    code, _, err = run(capsys, "train", "--batch-size", "1000")
    assert code == 2 and "larger than the data set" in err
    code, _, err = run(capsys, "train", "--cuda-graph")
    assert code == 2 and "--cuda-graph needs --backend cupy, not numpy" in err


@pytest.mark.parametrize(
    ("lr", "what"),
    [("1e6", "the training diverged"), ("1e38", "the training loss became nan")],
    ids=["diverges", "nan"],
)
def test_train_that_fails_numerically_exits_3_with_advice(capsys, lr, what):
    """`xpnn train --lr 1e6` once ended with loss 1.4e6, accuracy 0.33 and exit 0."""
    with np.errstate(all="ignore"):  # NumPy's own overflow warnings are not the point
        code, out, err = run(capsys, "train", "--quiet", "--lr", lr)
    assert code == 3
    assert "final loss" not in out
    lines = [line for line in err.splitlines() if line.startswith("xpnn train: error:")]
    assert len(lines) == 1 and what in lines[0]
    assert f"a --lr below {float(lr):g}, or --max-grad 5" in lines[0]


def test_train_max_grad_clips(capsys):
    code, out, _ = run(capsys, "train", "--epochs", "5", "--max-grad", "0.01")
    assert code == 0
    assert "gradients clipped to norm 0.01" in out.splitlines()[0]
    # Steps of norm 0.01 barely move the loss from log(3) (the default run reaches 0.9).
    assert float(out.split("final loss")[1].split()[0]) > 1.0
    code, _, err = run(capsys, "train", "--quiet", "--lr", "1e6", "--max-grad", "50")
    assert code == 3 and "a --max-grad below 50" in err


def test_gradcheck_passes(capsys, backend):
    code, out, _ = run(capsys, "gradcheck", "--backend", backend.spec)
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["W1"], ["b2"])]
    assert len(rows) == 2
    assert all(float(row[-1]) <= 1e-6 for row in rows)
    assert "OK" in out


def test_gradcheck_fails_beyond_tolerance(capsys, monkeypatch):
    # A broken backprop (gradient scaled by 1.01) must be caught.
    real = xpnn.TwoLayerNet.gradient

    def broken(self, x, t):
        grads = real(self, x, t)
        for g in grads.values():
            g *= 1.01
        return grads

    monkeypatch.setattr(xpnn.TwoLayerNet, "gradient", broken)
    code, out, _ = run(capsys, "gradcheck")
    assert code == 1 and "FAILED" in out
    assert np.isclose(
        float(out.split("largest relative difference")[1].split()[0]), 0.0099, rtol=0.05
    )


def test_train_mixed_precision_on_every_backend(capsys, backend):
    argv = ["train", "--quiet", "--epochs", "20", "--backend", backend.spec]
    if backend.name == "array_api_strict":  # the standard has no float16: one clear line
        code, _, err = run(capsys, *argv, "--precision", "mixed16")
        assert code == 2 and err.count("\n") == 1
        assert "--precision mixed16: float16 on array_api_strict" in err
        assert "Array API standard" in err
        return
    code, out, _ = run(capsys, *argv, "--precision", "mixed16")
    assert code == 0 and out.startswith("final loss")
    code, out, _ = run(capsys, *argv, "--dtype", "float16")
    assert code == 0 and out.startswith("final loss")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--precision", "mixed16", "--dtype", "float64"], "drop --dtype float64"),
        (["--precision", "mixed_bf16"], "--precision mixed_bf16: bfloat16 on numpy:cpu"),
        (["--dtype", "bfloat16"], "numpy has no bfloat16"),
        (["--precision", "mixed16", "--cuda-graph"], "--cuda-graph"),
    ],
)
def test_train_precision_refusals_are_one_line_before_any_data(capsys, argv, message):
    code, _, err = run(capsys, "train", "--backend", "numpy", *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_train_saves_float16_parameters_the_books_way(capsys, tmp_path):
    full, half = tmp_path / "net32.npz", tmp_path / "net16.npz"
    code, out, _ = run(capsys, "train", "--quiet", "--epochs", "5", "--save", str(full))
    assert code == 0
    code, out, _ = run(
        capsys, "train", "--quiet", "--epochs", "5", "--save", str(half), "--save-dtype", "float16"
    )
    assert code == 0 and "(float16)" in out
    a, b = xpnn.io.load(full), xpnn.io.load(half)
    # Two bytes fewer per parameter; the headers and the metadata are the same size.
    count = sum(int(np.prod(p.shape)) for p in a.params)
    assert full.stat().st_size - half.stat().st_size == 2 * count
    assert b.params[0].dtype == a.params[0].dtype == np.float32
    for p, q in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(np.asarray(p, np.float16).astype(np.float32), q)
    code, _, err = run(capsys, "train", "--save-dtype", "float16")
    assert code == 2 and "add --save FILE" in err


# ------------------------------------------------------- the conv nets (--model)

CONV_QUICK = ["--dataset", "mnist5k", "--epochs", "1", "--train-size", "200", "--eval-samples"]


@pytest.mark.parametrize(
    ("model", "cls", "hidden"),
    [("simpleconvnet", "SimpleConvNet", 100), ("deepconvnet", "DeepConvNet", 50)],
)
def test_train_conv_model_quick_run_saves_and_plots(capsys, tmp_path, model, cls, hidden):
    saved, plot = tmp_path / f"{model}.npz", tmp_path / f"{model}.png"
    code, out, _ = run(
        capsys,
        "train",
        "--model",
        model,
        *CONV_QUICK,
        "100",
        "--save",
        str(saved),
        "--plot",
        str(plot),
    )
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith("xpnn train: mnist5k (200 samples) on numpy:cpu, float32, ")
    assert f"{cls}(hidden={hidden}), adam lr=0.001, batch 100, 1 epochs x 2 iterations" in first
    assert "| epoch 1 | train acc, test acc |" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    net = xpnn.io.load(saved)
    assert type(net).__name__ == cls and net.hidden_size == hidden
    assert net.input_dim == (1, 28, 28) and net.output_size == 10
    # The final line's accuracies are on all samples (not the 100 of each epoch):
    # the saved net gives them again on the same data.
    (x, t), (x_test, t_test) = load_mnist5k(flatten=False, dtype=net.params["W1"].dtype)
    test_acc = float(out.split("test accuracy")[1].split()[0])
    train_acc = float(out.split("train accuracy")[1].split()[0])
    assert net.accuracy(x_test, t_test) == pytest.approx(test_acc, abs=5e-5)
    assert net.accuracy(x[:200, ...], t[:200, ...]) == pytest.approx(train_acc, abs=5e-5)


def _record_fit(monkeypatch):
    """Make Trainer.fit record its trainer and arguments, then stop the run (exit 130)."""
    seen = {}

    def fit(self, x, t, **kwargs):
        seen.update(kwargs, trainer=self, x_shape=tuple(x.shape))
        raise KeyboardInterrupt

    monkeypatch.setattr(xpnn.Trainer, "fit", fit)
    return seen


@pytest.mark.parametrize(("model", "hidden"), [("simpleconvnet", 100), ("deepconvnet", 50)])
def test_train_conv_defaults_are_the_books(capsys, monkeypatch, model, hidden):
    """ch07/train_convnet.py, ch08/train_deepnet.py: Adam 0.001, batch 100, 20 epochs, 1000."""
    seen = _record_fit(monkeypatch)
    code, out, _ = run(capsys, "train", "--model", model, "--dataset", "mnist5k")
    assert code == 130
    assert f"(hidden={hidden}), adam lr=0.001, batch 100, 20 epochs x 40 iterations" in out
    assert seen["max_epoch"] == 20 and seen["batch_size"] == 100
    assert seen["eval_samples"] == 1000 and seen["x_shape"] == (4000, 1, 28, 28)
    trainer = seen["trainer"]
    assert isinstance(trainer.optimizer, xpnn.optimizers.Adam) and trainer.optimizer.lr == 0.001
    assert trainer.model.hidden_size == hidden
    # Explicit options win over the book's defaults.
    argv = ["--optimizer", "sgd", "--lr", "0.05", "--batch-size", "50", "--iters", "100"]
    code, out, _ = run(capsys, "train", "--model", model, "--dataset", "mnist5k", *argv)
    assert code == 130 and "sgd lr=0.05, batch 50, 2 epochs x 80 iterations" in out
    code, out, _ = run(
        capsys, "train", "--model", model, "--dataset", "mnist5k", "--eval-samples", "300"
    )
    assert code == 130 and seen["eval_samples"] == 300


def test_train_two_layer_defaults_unchanged_and_iters_counts_on_the_spiral(capsys, monkeypatch):
    seen = _record_fit(monkeypatch)
    code, out, _ = run(capsys, "train", "--dataset", "mnist5k")
    assert code == 130 and seen["x_shape"] == (4000, 784) and seen["eval_samples"] is None
    assert "TwoLayerNet(hidden=50), sgd lr=0.1, batch 100, 250 epochs x 40 iterations" in out
    # --iters on the spiral once trained the default 300 epochs: 20 iterations are 2 epochs.
    code, out, _ = run(capsys, "train", "--iters", "20")
    assert code == 130 and seen["max_epoch"] == 2


def test_train_conv_on_a_data_dir_and_another_backend(capsys, mnist_dir, backend):
    code, out, _ = run(
        capsys,
        "train",
        "--model",
        "simpleconvnet",
        "--dataset",
        "mnist",
        "--data-dir",
        str(mnist_dir),
        "--backend",
        backend.spec,
        "--batch-size",
        "20",
        "--epochs",
        "3",
        "--lr",
        "0.01",
    )
    assert code == 0
    assert "mnist (200 samples)" in out and "3 epochs x 10 iterations" in out
    # 10 noisy prototypes: far above chance (0.1) after 30 steps.
    assert float(out.split("test accuracy")[1].split()[0]) >= 0.5


@pytest.fixture
def no_data(monkeypatch):
    """Loading data or training fails the test: refusals must come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the data were loaded before the options were checked")

    monkeypatch.setattr(xpnn.cli.train, "_load_data", forbidden)
    monkeypatch.setattr(xpnn.Trainer, "fit", forbidden)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "simpleconvnet"], "--model simpleconvnet takes images (N, 1, 28, 28)"),
        (["--model", "deepconvnet", "--dataset", "spiral"], "use --dataset mnist5k or mnist"),
        (["--eval-samples", "10"], "--dataset spiral has none"),
        (["--dataset", "mnist5k", "--train-size", "5000"], "--train-size 5000 is larger"),
        (
            ["--dataset", "mnist5k", "--model", "simpleconvnet", "--train-size", "50"],
            "--batch-size 100 is larger than --train-size 50",
        ),
        (
            ["--dataset", "mnist5k", "--model", "simpleconvnet", "--cuda-graph"],
            "--cuda-graph cannot replay --optimizer adam updates",
        ),
        (
            [
                "--dataset",
                "mnist5k",
                "--model",
                "deepconvnet",
                "--optimizer",
                "sgd",
                "--cuda-graph",
            ],
            "its Dropout masks",
        ),
        (["--model", "resnet"], "invalid choice"),
        (["--train-size", "0"], "--train-size: must be positive"),
    ],
)
def test_train_conv_refusals_are_one_line_before_any_data(capsys, no_data, argv, message):
    try:
        code, _, err = run(capsys, "train", *argv)
    except SystemExit as exc:  # argparse's own refusals
        code, err = exc.code, capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_conv_run_larger_than_memory_is_refused_before_loading(capsys, monkeypatch, no_data):
    # 60 MiB: the two-layer net's run fits, SimpleConvNet's (its im2col columns) does not.
    monkeypatch.setattr(cli.memory, "memory_available", lambda backend: (60 * 2**20, "here"))
    small = cli.estimate_memory(784, 50, 10, 100, optimizer="adam", n_train=4000, n_test=1000)
    conv = cli.memory.estimate_conv_memory(
        "simpleconvnet", (1, 28, 28), 100, 10, 100, n_train=4000, n_test=1000
    )
    assert small["total"] < 60 * 2**20 < conv["total"]
    code, _, err = run(capsys, "train", "--dataset", "mnist5k", "--model", "simpleconvnet")
    assert code == 2 and err.count("\n") == 1
    assert "this run needs about" in err and "available here" in err
    assert "choose a smaller --batch-size, --hidden or --optimizer sgd" in err
    code, _, err = run(
        capsys,
        "train",
        "--dataset",
        "mnist5k",
        "--model",
        "simpleconvnet",
        "--hidden",
        "1000000000",
    )
    assert code == 2 and "TiB" in err and "--hidden" in err and err.count("\n") == 1
    code, _, err = run(
        capsys, "train", "--dataset", "mnist", "--model", "deepconvnet", "--dtype", "float64"
    )
    assert code == 2 and "--dtype float32" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("model", "cls", "hidden"),
    [("simpleconvnet", "SimpleConvNet", 100), ("deepconvnet", "DeepConvNet", 50)],
)
def test_conv_memory_estimate_counts_the_model_and_bounds_a_step(model, cls, hidden):
    import tracemalloc

    batch = 20
    # No data: the training step is the activations' larger part (not the accuracy pass).
    parts = cli.memory.estimate_conv_memory(model, (1, 28, 28), hidden, 10, batch, optimizer="sgd")
    data = cli.memory.estimate_conv_memory(
        model, (1, 28, 28), hidden, 10, batch, n_train=4000, n_test=1000
    )["data"]
    with xpnn.use_backend("numpy"):
        net = getattr(xpnn, cls)(hidden_size=hidden, seed=0)
        params = sum(int(np.prod(p.shape)) for p in net.params.values())
        assert parts["parameters"] == parts["gradients"] == 4 * params
        assert data == 5000 * (784 + 10) * 4 and parts["optimizer state"] == 0
        rng = np.random.default_rng(0)
        x = xpnn.asarray(rng.random((batch, 1, 28, 28), dtype=np.float32))
        t = xpnn.asarray(rng.integers(0, 10, batch))
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            net.gradient(x, t)  # the first step makes the layers' buffers
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
    # NumPy reports its arrays to tracemalloc: the estimate holds the step, within 2x.
    step = parts["activations"] + parts["gradients"]
    assert peak <= step <= 2 * peak


def test_conv_layers_refuses_images_too_small():
    with pytest.raises(
        ValueError, match=r"--model deepconvnet on 1x3x3 images: DeepConvNet: the 2x2 pool"
    ):
        cli.memory.conv_layers("deepconvnet", (1, 3, 3), 50, 10)
    with pytest.raises(ValueError, match=r"simpleconvnet on 1x4x4 images: .* 5 is larger"):
        cli.memory.conv_layers("simpleconvnet", (1, 4, 4), 100, 10)

"""The ``xpnn`` command: info, train, gradcheck, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import xpnn
from xpnn.cli import main


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
    assert "| epoch 1 |  iter 10 / 10 |" in out
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

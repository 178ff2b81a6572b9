"""The example scripts run, print what the book prints, and agree across backends."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import xpnn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_neuralnet_learns_and_reports(mnist_dir, tmp_path, capsys):
    example = load_example("train_neuralnet")
    plot = tmp_path / "curves.png"
    args = ["--data-dir", str(mnist_dir), "--iters", "150", "--batch-size", "20", "--lr", "0.5"]
    assert example.main([*args, "--backend", "numpy", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "epoch   0 | train acc, test acc |" in out
    final = float(out.split("final test accuracy")[1].split()[0])
    assert final >= 0.9  # ten well-separated prototypes
    assert "wall time" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_neuralnet_same_curve_on_every_backend(backend, mnist_dir):
    example = load_example("train_neuralnet")
    args = example.parse_args(
        ["--data-dir", str(mnist_dir), "--iters", "30", "--batch-size", "20", "--dtype", "float64"]
    )
    with xpnn.use_backend(backend.spec, dtype="float64"):
        curves = example.train(args)
    with xpnn.use_backend("numpy", dtype="float64"):
        reference = example.train(args)
    assert curves["train_acc"] == reference["train_acc"]
    assert curves["test_acc"] == reference["test_acc"]
    np.testing.assert_allclose(curves["loss"], reference["loss"], rtol=1e-10)


@pytest.mark.parametrize("bad", [["--iters", "0"], ["--hidden", "-1"], ["--dtype", "int8"]])
def test_train_neuralnet_bad_options(bad, mnist_dir, capsys):
    example = load_example("train_neuralnet")
    with pytest.raises(SystemExit) as err:
        example.main(["--data-dir", str(mnist_dir), *bad])
    assert err.value.code == 2
    assert "error" in capsys.readouterr().err


def test_train_neuralnet_missing_data_dir(tmp_path):
    example = load_example("train_neuralnet")
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz"):
        example.main(["--data-dir", str(tmp_path), "--backend", "numpy"])

"""The example scripts run, print what the book prints, write figures, agree across backends.

Every test runs in its own temporary folder (``_in_tmp_path``): an example
writes its figure into the current folder unless told otherwise, and the
tests check those default files, never leaving one in the repository.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Run each test in its tmp_path: the examples' default figures land there."""
    monkeypatch.chdir(tmp_path)


def load_example(name: str):
    # Examples import their siblings, as the book's scripts do (python puts
    # a script's folder on sys.path when it runs it).
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would: dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_train_neuralnet_learns_and_reports(mnist_dir, tmp_path, capsys):
    example = load_example("train_neuralnet")
    args = ["--data-dir", str(mnist_dir), "--iters", "150", "--batch-size", "20", "--lr", "0.5"]
    assert example.main([*args, "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "epoch   0 | train acc, test acc |" in out
    final = float(out.split("final test accuracy")[1].split()[0])
    assert final >= 0.9  # ten well-separated prototypes
    assert "wall time" in out
    assert "figure written to train_neuralnet.png" in out
    assert_png(tmp_path / "train_neuralnet.png")


def test_train_neuralnet_plot_is_another_name_for_out():
    example = load_example("train_neuralnet")
    assert example.parse_args(["--plot", "curves.svg"]).out == "curves.svg"


@pytest.mark.parametrize(
    "bad",
    [
        ["--iters", "0"],
        ["--hidden", "-1"],
        ["--dtype", "int8"],
        ["--out", "curves.txt"],
        ["--out", "."],
    ],
)
def test_train_neuralnet_bad_options(bad, mnist_dir, tmp_path, capsys):
    example = load_example("train_neuralnet")
    with pytest.raises(SystemExit) as err:
        example.main(["--data-dir", str(mnist_dir), *bad])
    assert err.value.code == 2
    assert "error" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))  # refused before training: nothing written


def test_train_neuralnet_missing_data_dir(tmp_path):
    example = load_example("train_neuralnet")
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz"):
        example.main(["--data-dir", str(tmp_path), "--backend", "numpy"])


# --------------------------------------------------------------------------
# The chapter-4 and vol. 2 ch. 1 examples: each main() runs with tiny sizes on
# every backend here, prints the book's numbers and writes a PNG.
# --------------------------------------------------------------------------

#: Every example script and the test(s) that run its main().
SMOKE_TESTED = {
    "train_neuralnet": "test_train_neuralnet_learns_and_reports",
    "gradient_1d": "test_gradient_1d_prints_the_books_slopes",
    "gradient_2d": "test_gradient_2d_prints_the_books_gradients",
    "gradient_method": "test_gradient_method_reaches_the_books_minimum",
    "gradient_simplenet": "test_gradient_simplenet_book_weights",
    "train_spiral": "test_train_spiral_prints_progress_and_figures",
    "train_gpu": "test_train_gpu_prints_the_table",
    "train_numerical": "test_train_numerical_trains_and_reports",
}


def run_main(name: str, argv: list[str], capsys) -> list[str]:
    """Run an example's main(argv), check it succeeded; returns its stdout lines."""
    assert load_example(name).main(argv) == 0
    return capsys.readouterr().out.splitlines()


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def numbers(line: str) -> np.ndarray:
    """The numbers of a printed NumPy array line such as '[[ 0.2  -0.3]'."""
    return np.array(line.replace("[", " ").replace("]", " ").split(), dtype=float)


def test_every_example_has_a_smoke_test():
    assert {p.stem for p in EXAMPLES.glob("*.py")} == set(SMOKE_TESTED)
    for test in SMOKE_TESTED.values():
        assert callable(globals()[test])


#: The figures each example writes into the current folder by default; the
#: smoke tests run them so and check each file.
DEFAULT_FIGURES = {
    "gradient_1d": ["gradient_1d.png"],
    "gradient_2d": ["gradient_2d.png"],
    "gradient_method": ["gradient_method.png"],
    "gradient_simplenet": ["gradient_simplenet.png"],
    "train_neuralnet": ["train_neuralnet.png"],
    "train_numerical": ["train_numerical.png"],
    "train_spiral": ["spiral_loss.png", "spiral_boundary.png"],
    "train_gpu": ["train_gpu.png"],
}


def test_every_example_writes_a_figure_by_default():
    assert set(DEFAULT_FIGURES) == set(SMOKE_TESTED)
    for name, figures in DEFAULT_FIGURES.items():
        args = load_example(name).parse_args([])
        if name == "train_spiral":
            written = [f"{args.out_prefix}loss.png", f"{args.out_prefix}boundary.png"]
        else:
            written = [args.out]
        assert written == figures, name


def assert_figures(name: str, folder: Path, lines: list[str]) -> None:
    """The example's default figures are PNG files in ``folder``, and it said so."""
    for figure in DEFAULT_FIGURES[name]:
        assert_png(folder / figure)
        assert any(figure in line for line in lines if "written to" in line), figure


def test_gradient_1d_prints_the_books_slopes(backend, tmp_path, capsys):
    lines = run_main("gradient_1d", ["--backend", backend.spec], capsys)
    assert lines[:2] == ["0.1999999999990898", "0.2999999999986347"]  # as in the book
    assert_figures("gradient_1d", tmp_path, lines)


def test_gradient_2d_prints_the_books_gradients(backend, tmp_path, capsys):
    lines = run_main("gradient_2d", ["--backend", backend.spec], capsys)
    assert lines[:3] == ["[6. 8.]", "[0. 4.]", "[6. 0.]"]
    assert_figures("gradient_2d", tmp_path, lines)


def test_gradient_2d_gradients_of_a_batch_stay_on_the_backend(backend):
    example = load_example("gradient_2d")
    points = np.random.default_rng(0).uniform(-2, 2, size=(7, 2))
    grads = example.gradients_at(xpnn.asarray(points, dtype="float64"))
    assert xpnn.backend_of(grads).spec == backend.spec
    np.testing.assert_allclose(xpnn.to_numpy(grads), 2 * points, rtol=1e-7)


def test_gradient_method_reaches_the_books_minimum(backend, tmp_path, capsys):
    lines = run_main("gradient_method", ["--backend", backend.spec], capsys)
    np.testing.assert_allclose(numbers(lines[0]), [-6.11110793e-10, 8.14814391e-10], rtol=1e-8)
    assert_figures("gradient_method", tmp_path, lines)


def test_gradient_method_out_names_the_figure(tmp_path, capsys):
    out = tmp_path / "figures" / "path.svg"
    lines = run_main("gradient_method", ["--backend", "numpy", "--out", str(out)], capsys)
    assert out.read_bytes().lstrip().startswith(b"<?xml")
    assert lines[-1] == f"figure written to {out}"


@pytest.mark.parametrize(
    ("lr", "book"),
    [("10", [-2.58983747e13, -1.29524862e12]), ("1e-10", [-2.99999994, 3.99999992])],
)
def test_gradient_method_bad_learning_rates_as_in_the_book(lr, book, tmp_path, capsys):
    argv = ["--backend", "numpy", "--lr", lr, "--out", str(tmp_path / "p.png")]
    lines = run_main("gradient_method", argv, capsys)
    np.testing.assert_allclose(numbers(lines[0]), book, rtol=1e-8)


def test_gradient_simplenet_book_weights(backend, tmp_path, capsys):
    lines = run_main("gradient_simplenet", ["--backend", backend.spec, "--book-weights"], capsys)
    assert_figures("gradient_simplenet", tmp_path, lines)
    w, p, cls, loss, dw = lines[:2], lines[2], lines[3], lines[4], lines[5:7]
    assert w == [
        "[[0.47355232 0.9977393  0.84668094]",
        " [0.85557411 0.03563661 0.69422093]]",
    ]
    np.testing.assert_allclose(numbers(p), [1.05414809, 0.63071653, 1.1328074], atol=1e-8)
    assert cls == "2"
    # The book prints 0.92806853663411326 and dW without the 1e-7 inside
    # the log that its cross_entropy_error (and xpnn) adds: 2.5e-7 apart.
    assert loss.startswith("0.928068")
    assert float(loss) == pytest.approx(0.92806853663411326, abs=3e-7)
    book_dw = [[0.21924763, 0.14356247, -0.36281009], [0.32887144, 0.2153437, -0.54421514]]
    np.testing.assert_allclose(numbers(" ".join(dw)).reshape(2, 3), book_dw, atol=2e-7)


def test_gradient_simplenet_random_weights_give_the_analytic_gradient(tmp_path, capsys):
    out = tmp_path / "dW.png"
    lines = run_main(
        "gradient_simplenet", ["--backend", "numpy", "--seed", "3", "--out", str(out)], capsys
    )
    assert_png(out)
    w = numbers(" ".join(lines[:2])).reshape(2, 3)
    x = np.array([0.6, 0.9])
    y = np.exp(x @ w) / np.exp(x @ w).sum()
    # d(-log(y2 + 1e-7))/dW = outer(x, y - t) * y2 / (y2 + 1e-7)
    expected = np.outer(x, y - [0, 0, 1]) * y[2] / (y[2] + 1e-7)
    np.testing.assert_allclose(numbers(" ".join(lines[5:7])).reshape(2, 3), expected, atol=1e-7)


SPIRAL_TINY = ["--epochs", "2", "--hidden", "5", "--grid-step", "0.05"]


def test_train_spiral_prints_progress_and_figures(backend, tmp_path, capsys):
    lines = run_main("train_spiral", [*SPIRAL_TINY, "--backend", backend.spec], capsys)
    assert re.fullmatch(r"\| epoch 1 \|  iter 10 / 10 \| time \d+\[s\] \| loss 1\.\d\d", lines[0])
    assert lines[1].startswith("| epoch 2 |  iter 10 / 10 |")
    assert lines[2].startswith("accuracy on the training data")
    assert_figures("train_spiral", tmp_path, lines)


def test_train_spiral_out_prefix(tmp_path, capsys):
    prefix = tmp_path / "runs" / "a_"
    run_main(
        "train_spiral", [*SPIRAL_TINY, "--backend", "numpy", "--out-prefix", str(prefix)], capsys
    )
    assert_png(tmp_path / "runs" / "a_loss.png")
    assert_png(tmp_path / "runs" / "a_boundary.png")


def test_train_spiral_same_losses_on_every_backend(backend):
    example = load_example("train_spiral")
    args = example.parse_args([*SPIRAL_TINY, "--dtype", "float64"])
    with xpnn.use_backend(backend.spec, dtype="float64"):
        trainer, _, _ = example.train(args)
    with xpnn.use_backend("numpy", dtype="float64"):
        reference, _, _ = example.train(args)
    np.testing.assert_allclose(trainer.loss_list, reference.loss_list, rtol=1e-10)


def test_plot_decision_boundary_predicts_in_chunks_on_the_backend(backend, tmp_path):
    from xpnn.plot import plot_decision_boundary

    x = xpnn.asarray([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]])
    t = xpnn.asarray([0, 1, 2])
    w = xpnn.asarray([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]])
    sizes = []

    def predict(points):
        assert xpnn.backend_of(points).spec == backend.spec  # the model's device
        assert points.dtype == x.dtype
        sizes.append(points.shape[0])
        return points @ w

    out = plot_decision_boundary(predict, x, t, tmp_path / "b.png", h=0.1, chunk_size=100)
    assert max(sizes) == 100
    assert sum(sizes) == 22 * 22  # [-1.1, 1.1) in steps of 0.1, on each axis
    assert_png(out)


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "cuda-graph"])
def test_train_gpu_prints_the_table(backend, tmp_path, capsys, graph):
    if graph and backend.name != "cupy":
        pytest.skip("CUDA graphs run on CuPy")
    argv = ["--backend", backend.spec, "--epochs", "2", "--hidden", "5"]
    lines = run_main("train_gpu", argv + ["--cuda-graph"] * graph, capsys)
    header = next(i for i, line in enumerate(lines) if line.startswith("backend"))
    assert lines[header].split() == "backend wall time final loss train acc speed-up".split()
    numpy_row, chosen_row = lines[header + 1].split(), lines[header + 2].split()
    assert numpy_row[0] == "numpy:cpu" and numpy_row[-1] == "1.00x"
    assert chosen_row[0] == backend.spec
    # The same seed: the same training on both (float32, so nearly equal).
    assert float(chosen_row[3]) == pytest.approx(float(numpy_row[3]), abs=2e-4)
    assert_figures("train_gpu", tmp_path, lines)


def test_train_gpu_on_mnist(mnist_dir, tmp_path, capsys):
    argv = ["--backend", "numpy", "--dataset", "mnist", "--data-dir", str(mnist_dir)]
    out = tmp_path / "mnist.pdf"
    argv += ["--epochs", "1", "--batch-size", "20", "--out", str(out)]
    lines = run_main("train_gpu", argv, capsys)
    assert any("test acc" in line for line in lines)
    assert out.read_bytes()[:5] == b"%PDF-"


def test_train_gpu_refuses_a_bad_figure_name_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        load_example("train_gpu").main(["--backend", "numpy", "--out", "timing.jpg"])
    assert err.value.code == 2
    assert "--out timing.jpg" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_train_gpu_without_cupy_says_why_and_does_not_fall_back(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    # The opened-backend cache: xpnn.backend.selection's (a module, or the package's).
    monkeypatch.setattr(getattr(xpnn.backend, "selection", xpnn.backend), "_cache", {})
    assert load_example("train_gpu").main(["--backend", "cupy", "--epochs", "1"]) != 0
    captured = capsys.readouterr()
    assert "'cupy:0' is unavailable" in captured.err
    assert "not installed" in captured.err and "To fix:" in captured.err
    assert "numpy" not in captured.out  # nothing was trained instead
    assert not (tmp_path / "train_gpu.png").exists()


def test_train_gpu_cuda_graph_needs_cupy(tmp_path, capsys):
    assert load_example("train_gpu").main(["--backend", "numpy", "--cuda-graph"]) != 0
    captured = capsys.readouterr()
    assert "cuda_graph=True needs the data on CuPy" in captured.err
    assert "backend" not in captured.out  # no table: nothing was timed
    assert not (tmp_path / "train_gpu.png").exists()


def test_train_numerical_trains_and_reports(mnist_dir, tmp_path, capsys):
    """examples/train_numerical.py on the tiny MNIST look-alike of conftest."""
    example = load_example("train_numerical")
    argv = ["--data-dir", str(mnist_dir), "--iters", "100", "--batch-size", "20", "--lr", "0.5"]
    assert example.main([*argv, "--backend", "numpy", "--hidden", "10"]) == 0
    out = capsys.readouterr().out
    assert "epoch   0 | train acc, test acc |" in out
    assert "float64" in out and "numerical gradients" in out
    assert "textbook loop (estimate):" in out
    final = float(out.split("final test accuracy")[1].split()[0])
    assert final >= 0.5  # ten well-separated prototypes; chance is 0.1
    assert_figures("train_numerical", tmp_path, out.splitlines())
    for bad in (["--iters", "0"], ["--out", "curves.gif"]):
        with pytest.raises(SystemExit):
            example.main(["--data-dir", str(mnist_dir), *bad])


@pytest.mark.parametrize(
    ("name", "argv", "rtol"),
    [
        ("train_neuralnet", ["--iters", "30", "--batch-size", "20", "--dtype", "float64"], 1e-10),
        ("train_numerical", ["--iters", "12", "--batch-size", "10", "--hidden", "6"], 1e-9),
    ],
)
def test_training_examples_give_the_same_curve_on_every_backend(
    backend, mnist_dir, name, argv, rtol
):
    example = load_example(name)
    args = example.parse_args(["--data-dir", str(mnist_dir), *argv])
    with xpnn.use_backend(backend.spec, dtype="float64"):
        curves = example.train(args)
    with xpnn.use_backend("numpy", dtype="float64"):
        reference = example.train(args)
    assert curves["train_acc"] == reference["train_acc"]
    assert curves["test_acc"] == reference["test_acc"]
    np.testing.assert_allclose(curves["loss"], reference["loss"], rtol=rtol)

"""The example scripts run, print what the book prints, write figures, agree across backends.

Every test runs in its own temporary folder (``_in_tmp_path``): an example
writes its figure into the current folder unless told otherwise, and the
tests check those default files, never leaving one in the repository.
"""

from __future__ import annotations

import importlib.util
import pickle
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
    "optimizer_compare_mnist": "test_optimizer_compare_mnist_sgd_is_the_slowest",
    "weight_init_compare": "test_weight_init_compare_std_001_does_not_learn_he_is_fastest",
    "batch_norm_test": "test_batch_norm_test_bn_learns_where_the_plain_net_stalls",
    "overfit_weight_decay": "test_overfit_weight_decay_runs_both_lambdas",
    "overfit_dropout": "test_overfit_dropout_runs_the_books_trainer",
    "train_convnet": "test_train_convnet_prints_the_books_lines_and_learns",
    "misclassified_mnist": "test_misclassified_mnist_trains_and_shows_the_wrong_digits",
    "count_based_vectors": "test_count_based_vectors_prints_the_books_matrices_and_neighbours",
    "train_simple_cbow": "test_train_simple_cbow_learns_and_prints_each_words_vector",
    "train_word2vec": "test_train_word2vec_trains_and_asks_the_books_questions",
    "generate_text": "test_generate_text_trains_then_writes_the_books_text",
    "train_seq2seq": "test_train_seq2seq_prints_the_books_lines",
    "train_attention": "test_train_attention_prints_the_books_lines_and_saves",
    "visualize_attention": "test_visualize_attention_draws_the_maps_of_a_saved_model",
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
    # _ch6.py is no example: the chapter-6 examples share it (as the book's common/).
    assert {p.stem for p in EXAMPLES.glob("*.py") if p.stem[0] != "_"} == set(SMOKE_TESTED)
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
    "optimizer_compare_mnist": ["optimizer_compare_mnist.png"],
    "weight_init_compare": ["weight_init_compare.png"],
    "batch_norm_test": ["batch_norm_test.png"],
    "overfit_weight_decay": ["overfit_weight_decay.png"],
    "overfit_dropout": ["overfit_dropout.png"],
    "train_convnet": [
        "train_convnet.png",
        "train_convnet_filters_before.png",
        "train_convnet_filters_after.png",
    ],
    "misclassified_mnist": ["misclassified_mnist.png"],
    "count_based_vectors": ["count_based_vectors.png"],
    "train_simple_cbow": ["simple_cbow_loss.png", "simple_cbow.png"],
    "train_word2vec": ["word2vec_loss.png", "word2vec.png"],
    "generate_text": ["generate_text.png"],
    "train_seq2seq": ["train_seq2seq.png"],
    "train_attention": ["train_attention.png"],
    "visualize_attention": ["attention_map.png"],
}


def test_every_example_writes_a_figure_by_default():
    assert set(DEFAULT_FIGURES) == set(SMOKE_TESTED)
    for name, figures in DEFAULT_FIGURES.items():
        args = load_example(name).parse_args([])
        if name == "train_spiral":
            written = [f"{args.out_prefix}loss.png", f"{args.out_prefix}boundary.png"]
        elif name == "train_convnet":
            written = [args.out, args.filters_before, args.filters_after]
        elif hasattr(args, "vectors_out"):
            written = [args.out, args.vectors_out]
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
    assert re.fullmatch(r"\| epoch 1 \|  iter 1 / 10 \| time \d+\[s\] \| loss 1\.\d\d", lines[0])
    assert lines[1].startswith("| epoch 2 |  iter 1 / 10 |")
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


# --------------------------------------------------------------------------
# Chapter 6: the five experiments, each with --quick on the MNIST sample
# shipped with xpnn (seconds), checking the book's lines, the figure and,
# where a short run shows it, the book's qualitative result.
# --------------------------------------------------------------------------


def final_losses(lines: list[str]) -> dict[str, float]:
    """The 'KEY: last X, mean of the last N Y' lines after '=== final': KEY -> Y."""
    start = next(i for i, line in enumerate(lines) if line.startswith("=========== final"))
    means = {}
    for line in lines[start + 1 :]:
        m = re.fullmatch(r"(\S+): last (\S+), mean of the last \d+ (\S+)", line)
        if m is None:
            break
        means[m[1]] = float(m[3])
    return means


def test_optimizer_compare_mnist_sgd_is_the_slowest(tmp_path, capsys):
    lines = run_main("optimizer_compare_mnist", ["--backend", "numpy", "--quick"], capsys)
    assert lines[0].startswith("backend numpy:cpu, float32, MultiLayerNet(784, [100] * 4, 10)")
    for i in (0, 100):  # the book's lines, every 100 iterations
        at = lines.index(f"===========iteration:{i}===========")
        printed = [line.split(":") for line in lines[at + 1 : at + 5]]
        assert [key for key, _ in printed] == ["SGD", "Momentum", "AdaGrad", "Adam"]
        if i == 0:  # after one step the loss is still near ln 10
            assert all(1.5 < float(loss) < 4.0 for _, loss in printed)
    means = final_losses(lines)
    assert list(means) == ["SGD", "Momentum", "AdaGrad", "Adam"]
    assert means["SGD"] > 2 * max(means["Momentum"], means["AdaGrad"], means["Adam"])
    assert_figures("optimizer_compare_mnist", tmp_path, lines)


def test_weight_init_compare_std_001_does_not_learn_he_is_fastest(tmp_path, capsys):
    lines = run_main("weight_init_compare", ["--backend", "numpy", "--quick"], capsys)
    at = lines.index("===========iteration:100===========")
    assert [line.split(":")[0] for line in lines[at + 1 : at + 4]] == ["std=0.01", "Xavier", "He"]
    means = final_losses(lines)
    assert means["std=0.01"] == pytest.approx(np.log(10), abs=0.01)  # it learns nothing
    assert means["He"] < means["Xavier"] - 0.3 < means["std=0.01"] - 0.3
    assert_figures("weight_init_compare", tmp_path, lines)


# At W = 1 the plain net's scores overflow (as in the book's run): NumPy warns.
@pytest.mark.filterwarnings("ignore:.*encountered in matmul:RuntimeWarning")
def test_batch_norm_test_bn_learns_where_the_plain_net_stalls(tmp_path, capsys):
    lines = run_main("batch_norm_test", ["--backend", "numpy", "--quick"], capsys)
    assert [line for line in lines if line.startswith("=====")] == [
        f"============== {i}/3 ==============" for i in (1, 2, 3)
    ]
    epochs = [line for line in lines if line.startswith("epoch:")]
    assert len(epochs) == 3 * 4
    assert all(re.fullmatch(r"epoch:\d \| [\d.]+ - [\d.]+", line) for line in epochs)
    at = lines.index("final train accuracy | weight scale | without BN | with BN")
    rows = [[float(v) for v in line.split("|")[1:]] for line in lines[at + 1 : at + 4]]
    assert [w for w, _, _ in rows] == pytest.approx([1.0, 0.01, 1e-4])
    _, plain, bn = rows[1]  # w = 0.01: the plain net's signal fades, BN's does not
    assert plain < 0.2 and bn > plain + 0.2
    assert lines[at + 4].startswith("with BN higher at ")
    assert_figures("batch_norm_test", tmp_path, lines)


def test_overfit_weight_decay_runs_both_lambdas(tmp_path, capsys):
    lines = run_main("overfit_weight_decay", ["--backend", "numpy", "--quick"], capsys)
    heads = [i for i, line in enumerate(lines) if line.startswith("==============")]
    assert [lines[i] for i in heads] == [
        "============== weight_decay_lambda = 0 ==============",
        "============== weight_decay_lambda = 0.1 ==============",
    ]
    for start in heads:
        epochs = lines[start + 1 : start + 21]
        assert [line.split(",")[0] for line in epochs] == [f"epoch:{i}" for i in range(20)]
        assert all(re.fullmatch(r"epoch:\d+, train acc:[\d.]+, test acc:[\d.]+", e) for e in epochs)
    at = lines.index("weight_decay_lambda | final train acc | final test acc | gap")
    rows = [[float(v) for v in line.split("|")] for line in lines[at + 1 : at + 3]]
    assert [lam for lam, *_ in rows] == [0.0, 0.1]
    for _, train_acc, test_acc, gap in rows:
        assert gap == pytest.approx(train_acc - test_acc, abs=2e-4)
    assert rows[0][1] > rows[0][2] + 0.1  # 100 images learnt better than the test set
    assert_figures("overfit_weight_decay", tmp_path, lines)


def test_overfit_dropout_runs_the_books_trainer(tmp_path, capsys):
    lines = run_main("overfit_dropout", ["--backend", "numpy", "--quick"], capsys)
    epochs = [line for line in lines if line.startswith("=== epoch:")]
    assert len(epochs) == 2 * 20  # the book's Trainer's lines, both runs
    assert epochs[0].startswith("=== epoch:1, train acc:") and epochs[-1].endswith(" ===")
    assert sum(line.startswith("train loss:") for line in lines) == 2 * 20 * 2
    assert lines.count("=============== Final Test Accuracy ===============") == 2
    at = lines.index("run             | final train acc | final test acc | gap")
    plain, dropout = (line.split("|") for line in lines[at + 1 : at + 3])
    assert plain[0].strip() == "without Dropout" and dropout[0].strip() == "Dropout 0.2"
    # Dropping a fifth of the activations slows learning the training set by heart.
    assert float(dropout[1]) < float(plain[1])
    assert_figures("overfit_dropout", tmp_path, lines)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("optimizer_compare_mnist", ["--iters", "0"]),
        ("weight_init_compare", ["--out", "loss.jpg"]),
        ("batch_norm_test", ["--scales", "-2"]),
        ("overfit_weight_decay", ["--weight-decay-lambda", "-0.1"]),
        ("overfit_dropout", ["--dropout-ratio", "1"]),
        ("overfit_dropout", ["--seed", "-1"]),
    ],
)
def test_chapter6_examples_refuse_bad_options_before_training(name, bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        load_example(name).main(["--backend", "numpy", *bad])
    assert err.value.code == 2
    assert bad[0] in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


#: Tiny runs of the chapter-6 examples' train(), float64.
CH6_TINY = {
    "optimizer_compare_mnist": "--iters 4 --batch-size 8".split(),
    "weight_init_compare": "--iters 4 --batch-size 8".split(),
    "batch_norm_test": "--scales 2 --epochs 2 --train-size 40 --batch-size 20".split(),
    "overfit_weight_decay": "--epochs 3 --train-size 40 --batch-size 20".split(),
    "overfit_dropout": "--epochs 3 --train-size 40 --batch-size 20 --quiet".split(),
}


def ch6_curves(name: str, result) -> dict:
    """The numbers an example's train() returned, as plain lists."""
    if name == "overfit_dropout":  # label -> Trainer
        return {
            label: [*t.train_loss_list, *t.train_acc_list, *t.test_acc_list]
            for label, t in result.items()
        }
    return result


@pytest.mark.parametrize("name", sorted(CH6_TINY))
def test_chapter6_examples_give_the_same_numbers_on_every_backend(backend, name, capsys):
    """The same seed: the same weights, mini-batches and Dropout masks on every backend."""
    # overfit_dropout in float32: the book's Trainer.train() refuses NumPy's float64
    # scalar losses (reported); float32 sums differ in the last bits across backends.
    float32 = name == "overfit_dropout"
    dtype, rtol, atol = ("float32", 1e-4, 2e-3) if float32 else ("float64", 1e-9, 0)
    example = load_example(name)
    args = example.parse_args([*CH6_TINY[name], "--dtype", dtype])
    with xpnn.use_backend(backend.spec, dtype=dtype):
        curves = ch6_curves(name, example.train(args))
    with xpnn.use_backend("numpy", dtype=dtype):
        reference = ch6_curves(name, example.train(args))
    assert list(curves) == list(reference)
    for key in reference:
        np.testing.assert_allclose(
            np.asarray(curves[key], dtype=float),
            np.asarray(reference[key], dtype=float),
            rtol=rtol,
            atol=atol,
        )


def test_chapter6_examples_read_a_data_dir(mnist_dir, tmp_path, capsys):
    """--data-dir: the four IDX files of a folder instead of the sample shipped with xpnn."""
    out = tmp_path / "decay.svg"
    argv = ["--backend", "numpy", "--quick", "--data-dir", str(mnist_dir), "--out", str(out)]
    lines = run_main("overfit_weight_decay", argv, capsys)
    assert f"data: 200 training and 50 test images from {mnist_dir}" in lines
    assert lines[-1] == f"figure written to {out}"
    assert out.read_bytes().lstrip().startswith(b"<?xml")


# --------------------------------------------------------------------------
# The chapter-7 and 8 examples: SimpleConvNet's filters, DeepConvNet's mistakes
# --------------------------------------------------------------------------


def test_train_convnet_prints_the_books_lines_and_learns(tmp_path, capsys):
    lines = run_main("train_convnet", ["--backend", "numpy", "--quick"], capsys)
    assert lines[1].startswith("backend numpy:cpu, float32, SimpleConvNet(30 filters 5x5")
    assert lines[1].endswith("500 training images, batch 100, 2 epochs")
    # The book's Trainer lines: a loss per iteration, the accuracies once an epoch.
    assert sum(line.startswith("train loss:") for line in lines) == 2 * 5
    epochs = [line for line in lines if line.startswith("=== epoch:")]
    assert [e.split(",")[0] for e in epochs] == ["=== epoch:1", "=== epoch:2"]
    at = lines.index("=============== Final Test Accuracy ===============")
    test_acc = float(lines[at + 1].removeprefix("test acc:"))
    assert test_acc > 0.15  # chance is 0.1: 10 Adam steps already learn something
    summary = next(line for line in lines if line.startswith("final train acc"))
    assert summary.endswith(f"final test acc {test_acc:.4f} (all 1000)")
    assert_figures("train_convnet", tmp_path, lines)


def test_train_convnet_filters_before_and_after(tmp_path):
    """The first layer's 30 filters: drawn 30 panels, grey, no ticks; training changed them."""
    from xpnn.models.convnet import SimpleConvNet
    from xpnn.plot import filters_figure

    example = load_example("train_convnet")
    args = example.parse_args("--epochs 1 --train-size 200 --quiet --no-progress".split())
    with xpnn.use_backend("numpy", dtype="float32"):
        trainer, before = example.train(args, example.load_images(args))
        fresh = SimpleConvNet(weight_init_std=0.01, seed=args.seed, dtype="float32")
    after = trainer.network.params["W1"]
    assert before.shape == after.shape == (30, 1, 5, 5)
    np.testing.assert_array_equal(before, fresh.params["W1"])  # kept before the updates
    assert not np.allclose(before, after)
    for filters in (before, after):
        fig = filters_figure(filters)
        assert len(fig.axes) == 30
        for ax, w in zip(fig.axes, filters, strict=True):
            (image,) = ax.get_images()
            np.testing.assert_allclose(image.get_array(), w[0])
            assert image.get_cmap().name == "gray_r"
            assert not ax.get_xticks().size and not ax.get_yticks().size


def test_train_convnet_same_accuracies_on_every_backend(backend, mnist_dir, capsys):
    argv = "--epochs 2 --batch-size 50 --quiet --no-progress --seed 3".split()
    argv += ["--data-dir", str(mnist_dir)]
    example = load_example("train_convnet")
    args = example.parse_args(argv)
    with xpnn.use_backend(backend.spec, dtype="float32"):
        trainer, _ = example.train(args, example.load_images(args))
    with xpnn.use_backend("numpy", dtype="float32"):
        reference, _ = example.train(args, example.load_images(args))
    np.testing.assert_allclose(
        trainer.train_loss_list, reference.train_loss_list, rtol=1e-4, atol=2e-3
    )
    np.testing.assert_allclose(trainer.test_acc_list, reference.test_acc_list, atol=0.021)


def mis_pairs(lines: list[str]) -> tuple[float, dict]:
    """The test accuracy and the book's ``{view index: (label, inference)}`` printed."""
    import ast

    at = lines.index("calculating test accuracy ... ")
    acc = float(lines[at + 1].removeprefix("test accuracy:"))
    assert lines[at + 2 : at + 4] == [
        "======= misclassified result =======",
        "{view index: (label, inference), ...}",
    ]
    return acc, ast.literal_eval(lines[at + 4])


def check_pairs(acc: float, pairs: dict, n_test: int) -> None:
    assert list(pairs) == list(range(1, len(pairs) + 1))
    assert len(pairs) == min(20, round((1 - acc) * n_test))
    assert all(label != inference for label, inference in pairs.values())


def test_misclassified_mnist_trains_and_shows_the_wrong_digits(tmp_path, capsys, monkeypatch):
    from xpnn.plot import misclassified_figure

    example = load_example("misclassified_mnist")
    figures = []

    def spy(*args, **kwargs):
        figures.append(misclassified_figure(*args, **kwargs))
        return figures[-1]

    monkeypatch.setattr(example, "misclassified_figure", spy)
    assert example.main(["--backend", "numpy", "--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("backend numpy:cpu, float32, DeepConvNet, Adam lr 0.001")
    assert sum(line.startswith("train loss:") for line in lines) == 5  # 500 images, batch 100
    acc, pairs = mis_pairs(lines)
    check_pairs(acc, pairs, 200)
    (fig,) = figures
    assert len(fig.axes) == len(pairs)  # one panel per misclassified digit shown
    for ax, (label, inference) in zip(fig.axes, pairs.values(), strict=True):
        assert ax.get_title() == f"{inference} (true {label})"
    assert_figures("misclassified_mnist", tmp_path, lines)


def test_misclassified_mnist_loads_a_saved_model(tmp_path, capsys):
    from xpnn.datasets import load_mnist5k
    from xpnn.io import save
    from xpnn.models.convnet import DeepConvNet

    with xpnn.use_backend("numpy"):
        net = DeepConvNet(seed=5, dtype="float64")
        save(net, tmp_path / "deep.npz")
        _, (x_test, t_test) = load_mnist5k(flatten=False, dtype="float64")
        expected = net.accuracy(x_test[:150], t_test[:150])
    argv = ["--backend", "numpy", "--dtype", "float64", "--model", str(tmp_path / "deep.npz")]
    argv += ["--test-size", "150"]
    lines = run_main("misclassified_mnist", argv, capsys)
    assert f"loaded DeepConvNet from {tmp_path / 'deep.npz'}" in lines
    assert not any(line.startswith(("train loss:", "=== epoch")) for line in lines)
    acc, pairs = mis_pairs(lines)
    assert acc == pytest.approx(float(expected), abs=1e-9)
    check_pairs(acc, pairs, 150)
    assert_png(tmp_path / "misclassified_mnist.png")


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("train_convnet", ["--filters-after", "filters.jpg"]),
        ("train_convnet", ["--epochs", "0"]),
        ("misclassified_mnist", ["--model", "no-such-model.npz"]),
        ("misclassified_mnist", ["--test-size", "-5"]),
    ],
)
def test_convnet_examples_refuse_bad_options_before_training(name, bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        load_example(name).main(["--backend", "numpy", *bad])
    assert err.value.code == 2
    assert bad[0] in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_convnet_figures_check_their_input(tmp_path):
    from xpnn.plot import filters_figure, misclassified_figure, plot_filters, plot_misclassified

    with pytest.raises(ValueError, match=r"\(FN, C, FH, FW\)"):
        filters_figure(np.zeros((30, 5, 5)))
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf"):
        plot_filters(np.zeros((3, 1, 5, 5)), tmp_path / "filters.jpg")
    images, labels = np.zeros((4, 784)), np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match="N=4"):
        misclassified_figure(images, labels, np.array([0, 1, 2]))
    fig = misclassified_figure(images, labels, labels)  # all right: said, no panels
    assert not fig.axes and "all 4 images classified right" in fig.texts[0].get_text()
    scores = np.eye(4)[[0, 2, 2, 1]]  # predicted 0, 2, 2, 1: images 1 and 3 wrong
    fig = misclassified_figure(images, labels, scores, max_view=1)
    assert [ax.get_title() for ax in fig.axes] == ["2 (true 1)"]
    assert_png(plot_misclassified(images, labels, scores, tmp_path / "wrong.png"))
    assert not list(tmp_path.glob("*.jpg"))


def test_misclassified_mnist_classifies_on_every_backend(backend):
    """The batched test loop (batches of 100 and a rest) gives the same classes everywhere."""
    from xpnn.models.convnet import DeepConvNet

    example = load_example("misclassified_mnist")
    host = np.random.default_rng(0).random((130, 1, 28, 28))
    predicted = {}
    for spec in (backend.spec, "numpy"):
        with xpnn.use_backend(spec):
            net = DeepConvNet(seed=2, dtype="float64")
            predicted[spec] = example.classify(net, xpnn.asarray(host, dtype="float64"))
            scores = xpnn.to_numpy(net.predict(xpnn.asarray(host, dtype="float64")))
    assert predicted[backend.spec].shape == (130,)
    np.testing.assert_array_equal(predicted[backend.spec], predicted["numpy"])
    np.testing.assert_array_equal(predicted["numpy"], scores.argmax(axis=1))


def test_count_based_vectors_prints_the_books_matrices_and_neighbours(backend, tmp_path, capsys):
    lines = run_main("count_based_vectors", ["--words", "3000", "--backend", backend.spec], capsys)
    # count_method_small.py's C[0], W[0] (the book prints [0. 1.807 0. ...]) and U[0].
    np.testing.assert_array_equal(numbers(lines[0]), [0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(numbers(lines[1]), [0, 1.807, 0, 0, 0, 0, 0], atol=5e-4)
    corpus_line = next(i for i, line in enumerate(lines) if line.startswith("english: "))
    assert len(numbers(" ".join(lines[2:corpus_line]))) == 7  # U[0] (NumPy may wrap it)
    assert lines[corpus_line].startswith("english: 3000 words, vocabulary ")
    assert "[query] you" in lines and "toyota is not found" in lines
    you = lines.index("[query] you")
    assert all(re.fullmatch(r" \S+: -?\d\.\d+(e-\d+)?", line) for line in lines[you + 1 : you + 6])
    assert_figures("count_based_vectors", tmp_path, lines)


def test_train_simple_cbow_learns_and_prints_each_words_vector(backend, tmp_path, capsys):
    lines = run_main("train_simple_cbow", ["--epochs", "300", "--backend", backend.spec], capsys)
    losses = [float(line.rsplit("loss", 1)[1]) for line in lines if "| loss" in line]
    assert len(losses) == 300 and losses[0] > 1.9 and np.mean(losses[-20:]) < 1.5
    words = [line.split(" ", 1)[0] for line in lines if line[:1].isalpha() or line[:1] == "."]
    assert words[:7] == ["you", "say", "goodbye", "and", "i", "hello", "."]
    assert all(len(numbers(line.split(" ", 1)[1])) == 5 for line in lines[300:307])
    assert_figures("train_simple_cbow", tmp_path, lines)


def test_train_word2vec_trains_and_asks_the_books_questions(backend, tmp_path, capsys):
    argv = ["--epochs", "1", "--train-size", "300", "--save", "cbow.npz"]
    lines = run_main("train_word2vec", [*argv, "--backend", backend.spec], capsys)
    assert lines[0].startswith("| epoch 1 |  iter 1 / 3 |")
    for line in ("[query] you", "[query] year", "toyota is not found"):
        assert line in lines
    assert "[analogy] king:man = queen:?" in lines
    assert any(line == "model written to cbow.npz" for line in lines)
    assert xpnn.io.load("cbow.npz").word_vecs.shape == (10000, 100)
    assert_figures("train_word2vec", tmp_path, lines)


def generated_words(lines: list[str]) -> list[str]:
    """The words of the text printed between the two rules (``<eos>`` back from '.' + newline)."""
    rules = [i for i, line in enumerate(lines) if line == "-" * 50]
    text = "\n".join(lines[rules[0] + 1 : rules[1]])
    return text.replace(".\n", " <eos> ").split()


def test_generate_text_trains_then_writes_the_books_text(backend, tmp_path, capsys):
    small = ["--words", "2000", "--batch-size", "5", "--time-size", "10", "--hidden", "16"]
    argv = [*small, "--sample-size", "40", "--backend", backend.spec]
    lines = run_main("generate_text", argv, capsys)
    assert lines[0].startswith("| epoch 1 |  iter 1 / 40 |")
    assert lines[1].startswith("| epoch 1 |  iter 21 / 40 |")
    words = generated_words(lines)
    vocab = xpnn.datasets.english.load_vocab()[0]
    assert len(words) == 40 and words[0] == "you" and set(words) <= set(vocab)
    assert "<unk>" in vocab and "<unk>" not in words  # the book's skipped words
    assert_figures("generate_text", tmp_path, lines)
    # The book's weight file (a pickle of float16 arrays) instead of training.
    model = xpnn.models.RnnlmGen(len(vocab), 16, 16, seed=1)
    with open("Rnnlm.pkl", "wb") as f:
        pickle.dump([np.asarray(xpnn.to_numpy(p)).astype(np.float16) for p in model.params], f)
    lines = run_main("generate_text", [*argv, "--load", "Rnnlm.pkl", "--start", "the"], capsys)
    assert not any("| epoch" in line or "figure" in line for line in lines)
    words = generated_words(lines)
    assert len(words) == 40 and words[0] == "the"
    assert load_example("generate_text").main(["--start", "zzyzx", "--load", "Rnnlm.pkl"]) == 2
    assert "not in the vocabulary" in capsys.readouterr().err


@pytest.mark.parametrize(("model", "reverse"), [("seq2seq", False), ("peeky", True)])
def test_train_seq2seq_prints_the_books_lines(backend, tmp_path, capsys, model, reverse):
    import json

    from xpnn.datasets import sequence

    argv = ["--quick", "--model", model, "--json", "acc.json", "--backend", backend.spec]
    lines = run_main("train_seq2seq", argv + (["--reverse"] if reverse else []), capsys)
    accs = [float(line[8:-1]) for line in lines if line.startswith("val acc ")]
    assert len(accs) == 2 and all(line.endswith("%") for line in lines if "val acc" in line)
    assert lines[0].startswith("| epoch 1 |  iter 1 / 15 |")  # 2,000 questions, batch 128
    # The book's first 10 answers of each epoch, the question shown unreversed.
    questions = [line[2:] for line in lines if line.startswith("Q ")]
    assert len(questions) == 20 and sum(line == "---" for line in lines) == 20
    _, (x_test, _) = sequence.load_data("addition.txt")
    id_to_char = sequence.get_vocab()[1]
    first = "".join(id_to_char[int(i)] for i in np.asarray(xpnn.to_numpy(x_test[0, ...])))
    assert questions[0] == first == questions[10]
    assert sum(("\u2611" in line) or ("\u2612" in line) for line in lines) == 20
    saved = json.loads((tmp_path / "acc.json").read_text())
    assert (saved["model"], saved["reverse"]) == (model, reverse)
    assert [float(f"{a * 100:.3f}") for a in saved["acc_list"]] == accs
    assert_figures("train_seq2seq", tmp_path, lines)


def test_train_attention_prints_the_books_lines_and_saves(backend, tmp_path, capsys):
    import json

    from xpnn.datasets import sequence

    argv = ["--quick", "--json", "acc.json", "--save", "attn.npz", "--backend", backend.spec]
    lines = run_main("train_attention", argv, capsys)
    accs = [float(line[8:-1]) for line in lines if line.startswith("val acc ")]
    assert len(accs) == 1 and all(line.endswith("%") for line in lines if "val acc" in line)
    assert lines[0].startswith("| epoch 1 |  iter 1 / 7 |")  # 1,000 dates, batch 128
    # The book's first 10 answers, the question shown unreversed (the model reads it reversed).
    questions = [line[2:] for line in lines if line.startswith("Q ")]
    assert len(questions) == 10 and sum(line == "---" for line in lines) == 10
    _, (x_test, _) = sequence.load_data("date.txt")
    id_to_char = sequence.get_vocab()[1]
    first = "".join(id_to_char[int(i)] for i in np.asarray(xpnn.to_numpy(x_test[0, ...])))
    assert questions[0] == first
    saved = json.loads((tmp_path / "acc.json").read_text())
    assert (saved["model"], saved["epochs"], saved["hidden_size"]) == ("attention", 1, 32)
    assert [float(f"{a * 100:.3f}") for a in saved["acc_list"]] == accs
    assert len(saved["epoch_seconds"]) == 1 and saved["epoch_seconds"][0] > 0
    model = xpnn.io.load(tmp_path / "attn.npz")
    assert type(model).__name__ == "AttentionSeq2seq" and model.hidden_size == 32
    assert any("attn.npz" in line for line in lines if "written to" in line)
    assert_figures("train_attention", tmp_path, lines)


def test_visualize_attention_draws_the_maps_of_a_saved_model(backend, tmp_path, capsys):
    from xpnn.datasets import sequence
    from xpnn.models import AttentionSeq2seq

    (_, _), (x_test, t_test) = sequence.load_data("date.txt")
    vocab = len(sequence.get_vocab()[0])
    xpnn.io.save(AttentionSeq2seq(vocab, 16, 8, seed=3), tmp_path / "m.npz")
    argv = ["--load", "m.npz", "--dates", "2", "--backend", backend.spec]
    lines = run_main("visualize_attention", argv, capsys)
    # The book's draws: np.random.seed(1984); np.random.randint(0, len(x_test)) per date.
    rng = np.random.RandomState(1984)
    id_to_char = sequence.get_vocab()[1]
    x_host, t_host = np.asarray(xpnn.to_numpy(x_test)), np.asarray(xpnn.to_numpy(t_test))
    for line in lines[:2]:
        i = rng.randint(0, x_host.shape[0])
        question = "".join(id_to_char[int(c)] for c in x_host[i]).strip()
        answer = "".join(id_to_char[int(c)] for c in t_host[i, 1:])
        assert line.startswith(f"{question!r}: {answer} (model: ")
    assert len(lines) == 3
    assert_figures("visualize_attention", tmp_path, lines)


def test_visualize_attention_trains_a_small_model_without_load(tmp_path, capsys):
    lines = run_main("visualize_attention", ["--dates", "1", "--plot", "one.svg"], capsys)
    assert len(lines) == 2 and lines[1] == "figure written to one.svg"
    assert (tmp_path / "one.svg").read_bytes().lstrip().startswith(b"<?xml")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--load", "missing.npz"], "--load missing.npz: no such file"),
        (["--dates", "0"], "--dates must be from 1 to 20"),
        (["--plot", "map.txt"], "the extension must be"),
    ],
)
def test_visualize_attention_refuses_before_drawing(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        load_example("visualize_attention").main(argv)
    assert message in capsys.readouterr().err
    assert not (tmp_path / "attention_map.png").exists()


def test_visualize_attention_refuses_another_model(tmp_path):
    from xpnn.models import Seq2seq

    xpnn.io.save(Seq2seq(59, 16, 8), tmp_path / "s.npz")
    with pytest.raises(SystemExit, match="holds a Seq2seq, not an AttentionSeq2seq"):
        load_example("visualize_attention").main(["--load", "s.npz"])
    assert not (tmp_path / "attention_map.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--save", "model.pkl"], "xpnn.io.save writes .npz files"),
        (["--plot", "acc.txt"], "the extension must be"),
        (["--epochs", "0"], "--epochs must be positive"),
    ],
)
def test_train_attention_refuses_bad_options_before_training(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        load_example("train_attention").main(argv)
    assert message in capsys.readouterr().err

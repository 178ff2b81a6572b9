"""Draw the figures of the documentation into docs/figures/ with xpnn itself.

Run from the repository root (any backend gives the same figures, up to
float32 rounding)::

    python docs/make_figures.py
    python docs/make_figures.py --backend torch --mnist-dir PATH/TO/MNIST

The MNIST figure uses the mnist5k sample shipped with xpnn unless --mnist-dir
names another folder with the four MNIST IDX files; the word-vector figures use
the English corpus shipped with xpnn (xpnn.datasets.english), and so does the
perplexity curve of vol. 2 ch. 6's Rnnlm. Everything is seeded, so a rerun
draws the same pictures. The accuracy curves of vol. 2 ch. 7-8 come from
runs too long for this script (minutes to an hour each): it draws them from
the accuracies those runs wrote, kept in docs/figures/ch7_ch8_accuracy.json
with the command of each.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import xpnn
from xpnn.datasets import english, load_mnist, load_spiral
from xpnn.datasets.mnist import MNIST5K_DIR
from xpnn.gradient import gradient_descent, numerical_gradient
from xpnn.linalg import svd
from xpnn.models import Rnnlm
from xpnn.models.word2vec_simple import SimpleCBOW
from xpnn.optimizers import SGD, Adam
from xpnn.plot import (
    plot_decision_boundary,
    plot_descent_path,
    plot_gradient_field,
    plot_tangents,
    plot_word_vectors,
)
from xpnn.training import RnnlmTrainer
from xpnn.util import convert_one_hot, create_co_matrix, create_contexts_target, ppmi, preprocess

HERE = Path(__file__).resolve().parent
# The sample that ships inside the package (xpnn.datasets.load_mnist5k).
MNIST_CANDIDATES = (Path(MNIST5K_DIR),)


def function_1(x):
    """The book's 0.01 x^2 + 0.1 x (section 4.3.2)."""
    return 0.01 * x**2 + 0.1 * x


def function_2(x):
    """The book's x0^2 + x1^2 (section 4.3.3), for one point x = (x0, x1)."""
    return x[0] ** 2 + x[1] ** 2


def grad_function_2(points):
    """Numerical gradients of function_2 at each row of an (N, 2) host array."""
    x = xpnn.asarray(points, dtype="float64")
    xp = xpnn.get_namespace(x)
    # numerical_gradient perturbs one row in place and restores it.
    return xp.stack([numerical_gradient(function_2, x[i, ...]) for i in range(x.shape[0])])


def chapter4(out: Path) -> list[Path]:
    """Numerical differentiation, the gradient field and gradient descent."""
    written = [plot_tangents(function_1, [5.0, 10.0], out / "gradient_1d.png")]
    written.append(plot_gradient_field(grad_function_2, out / "gradient_2d.png"))
    init_x = xpnn.asarray([-3.0, 4.0], dtype="float64")
    _, path = gradient_descent(function_2, init_x, lr=0.1, step_num=20, return_path=True)
    contour = lambda p: p[:, 0] ** 2 + p[:, 1] ** 2  # noqa: E731 - host (N, 2) -> (N,)
    written.append(plot_descent_path(path, out / "gradient_method.png", f=contour))
    return written


def spiral(out: Path) -> list[Path]:
    """Vol. 2 ch. 1: the two-layer net trained on the spiral, and what it learned."""
    x, t = load_spiral()
    model = xpnn.LayeredTwoLayerNet(2, 10, 3, seed=0)
    trainer = xpnn.Trainer(model, SGD(lr=1.0))
    trainer.fit(x, t, max_epoch=300, batch_size=30, eval_interval=10, progress=False, verbose=False)
    return [
        trainer.plot(out / "spiral_loss.png"),
        plot_decision_boundary(model.predict, x, t, out / "spiral_boundary.png"),
    ]


def words(out: Path) -> list[Path]:
    """Vol. 2 ch. 2-4: count-based vectors, SimpleCBOW's loss, CBOW's frequent words."""
    corpus, word_to_id, id_to_word = preprocess("You say goodbye and I say hello.")
    vocab_size = len(word_to_id)
    U, _, _ = svd(ppmi(create_co_matrix(corpus, vocab_size, window_size=1)))
    written = [
        plot_word_vectors(U[:, :2], id_to_word, out / "ch2_count_based.png", title="PPMI + SVD")
    ]

    # ch03/train.py: window 1, hidden 5, batch 3, Adam, 1,000 epochs.
    contexts, target = create_contexts_target(corpus, window_size=1)
    contexts = convert_one_hot(contexts, vocab_size)
    target = convert_one_hot(target, vocab_size)
    trainer = xpnn.Trainer(SimpleCBOW(vocab_size, 5, seed=0), Adam())
    trainer.fit(contexts, target, 1000, 3, seed=0, progress=False, verbose=False)
    written.append(trainer.plot(out / "ch3_simple_cbow.png"))

    # ch04/train.py's CBOW (window 5, hidden 100, batch 100), briefly: one epoch over
    # the first 200,000 contexts of the English corpus, Adam at lr 0.005.
    corpus, word_to_id, id_to_word = english.load_data("train")
    vocab_size = len(word_to_id)
    contexts, target = create_contexts_target(corpus, window_size=5)
    n = 200_000
    model = xpnn.CBOW(vocab_size, 100, 5, corpus, seed=0)
    trainer = xpnn.Trainer(model, Adam(lr=0.005))
    trainer.fit(contexts[:n, :], target[:n], 1, 100, seed=0, progress=False, verbose=False)
    counts = np.bincount(xpnn.to_numpy(corpus), minlength=vocab_size)  # host: to choose
    frequent = [id_to_word[int(i)] for i in np.argsort(-counts, kind="stable")[:60]]
    title = "CBOW on the English corpus (200,000 contexts, 1 epoch)"
    written.append(
        plot_word_vectors(model.word_vecs, id_to_word, out / "ch4_word2vec.png", frequent, title)
    )
    return written


def rnnlm(out: Path) -> list[Path]:
    """Vol. 2 ch. 6: Rnnlm's training perplexity, train_rnnlm.py's settings, briefly.

    The book's batch 20, 35 steps, hidden 100, SGD at learning rate 20 and clipping
    at 0.25, on the first 100,000 words of the English corpus for 2 epochs (the book:
    the whole Penn Treebank for 4), as docs/notebooks/vol2_chapter6.ipynb runs it.
    """
    corpus, word_to_id, _ = english.load_data("train")
    part = corpus[:100_001]
    trainer = RnnlmTrainer(Rnnlm(len(word_to_id), 100, 100, seed=0), SGD(lr=20.0))
    trainer.fit(part[:-1], part[1:], 2, 20, 35, max_grad=0.25, eval_interval=20)
    return [trainer.plot(ylim=(0, 1000), path=out / "ch6_rnnlm_perplexity.png")]


def seq2seq_accuracy(out: Path, runs_file: Path = HERE / "figures" / "ch7_ch8_accuracy.json"):
    """Vol. 2 ch. 7-8: validation accuracy per epoch of the four models, as the book's figures.

    Seq2seq, Seq2seq with reversed questions and PeekySeq2seq (reversed) on the
    additions, 25 epochs; AttentionSeq2seq on the dates, 10 epochs. One colour
    per model: the seed-0 run drawn with markers, the other seeds as thin lines.
    """
    from matplotlib.figure import Figure

    runs = json.loads(runs_file.read_text())["runs"]
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    colours = {}
    for run in runs:
        label = f"{run['label']} ({run['data']})"
        colour = colours.setdefault(label, f"C{len(colours)}")
        epochs = range(1, len(run["acc_list"]) + 1)
        if run["seed"] == 0:
            ax.plot(epochs, run["acc_list"], marker="o", markersize=3, color=colour, label=label)
        else:
            ax.plot(epochs, run["acc_list"], color=colour, linewidth=0.8, alpha=0.6)
    ax.set_xlabel("epochs")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.05, 1.05)
    ax.plot([], [], color="grey", linewidth=0.8, alpha=0.6, label="thin lines: other seeds")
    ax.legend(loc="upper left", bbox_to_anchor=(0.4, 0.84), fontsize="small")
    path = out / "ch7_ch8_accuracy.png"
    fig.savefig(path)
    return [path]


def mnist(out: Path, data_dir: Path) -> list[Path]:
    """Ch. 4.5: TwoLayerNet on MNIST, mini-batch SGD, loss and accuracy curves."""
    (x_train, t_train), (x_test, t_test) = load_mnist(data_dir=data_dir, download=False)
    net = xpnn.TwoLayerNet(784, 50, 10, seed=0)
    trainer = xpnn.Trainer(net, SGD(lr=0.1))
    trainer.fit(
        x_train,
        t_train,
        max_epoch=30,
        batch_size=100,
        eval_interval=1,
        validation_data=(x_test, t_test),
        progress=False,
        verbose=False,
    )
    print(
        f"mnist: {x_train.shape[0]} training images, final train/test accuracy "
        f"{trainer.train_acc_list[-1]:.3f} / {trainer.test_acc_list[-1]:.3f}"
    )
    return [trainer.plot(out / "mnist_curves.png")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="numpy", help="numpy (default), torch, cupy, ...")
    parser.add_argument("--out", type=Path, default=HERE / "figures", help="output folder")
    parser.add_argument("--mnist-dir", type=Path, help="folder with the four MNIST IDX files")
    args = parser.parse_args(argv)

    xpnn.set_backend(args.backend)
    written = chapter4(args.out) + spiral(args.out) + words(args.out) + rnnlm(args.out)
    written += seq2seq_accuracy(args.out)
    candidates = (args.mnist_dir,) if args.mnist_dir else MNIST_CANDIDATES
    data_dir = next((d for d in candidates if d.is_dir()), None)
    if data_dir is None:
        print("mnist: no local MNIST copy found; mnist_curves.png skipped", file=sys.stderr)
    else:
        written += mnist(args.out, data_dir)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

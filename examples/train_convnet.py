"""Train the book's SimpleConvNet on MNIST and draw its first layer's filters (ch. 7).

The book's ``ch07/train_convnet.py`` and ``ch07/visualize_filter.py`` in one
script: ``SimpleConvNet(input_dim=(1, 28, 28), conv_param={'filter_num': 30,
'filter_size': 5, 'pad': 0, 'stride': 1}, hidden_size=100, output_size=10,
weight_init_std=0.01)`` (Convolution - ReLU - Pooling - Affine - ReLU - Affine,
:mod:`xpnn.models.convnet`) trained with the book's ``Trainer`` (Adam, lr 0.001,
mini-batches of 100, the accuracies of each epoch on the first 1,000 training
and test images) for 20 epochs. The Trainer prints the book's lines; a progress
bar shows how far a long run is. ``Trainer`` here is ``xpnn.Trainer`` in the
book's form: its ``train()`` runs ``fit`` (one permutation of the training
images an epoch, where the book draws each batch with replacement).

Three figures: the accuracy curves (the book's figure 7-16 kind), and the 30
5x5 filters of the first layer before training (random noise) and after it
(the book's figure 7-24: edge and blob detectors). The data are the MNIST
sample shipped with xpnn (4,000 training and 1,000 test images) unless
``--data-dir`` names the full MNIST::

    python examples/train_convnet.py                      # 20 epochs, a few minutes
    python examples/train_convnet.py --epochs 5 --backend cupy --save convnet.npz
    python examples/train_convnet.py --quick              # seconds
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import _ch6
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import xpnn
from xpnn import Trainer
from xpnn.io import save
from xpnn.models.convnet import SimpleConvNet
from xpnn.plot import filters_figure, show_or_save

#: The book's sizes, and those of --quick.
FULL = {"epochs": 20, "train_size": 60000, "batch_size": 100}
QUICK = {"epochs": 2, "train_size": 500, "batch_size": 100}

LEARNING_RATE = 0.001
EVALUATE_SAMPLES = 1000  # the book's evaluate_sample_num_per_epoch


def parse_args(argv: list[str] | None = None):
    p = _ch6.parser(__doc__, "train_convnet.png")
    p.add_argument("--epochs", type=int, help="epochs (default: 20; --quick: 2)")
    p.add_argument(
        "--train-size",
        type=int,
        help="training images used, at most all of them (default: all; --quick: 500)",
    )
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: 100)")
    p.add_argument(
        "--filters-before",
        metavar="FILE",
        default="train_convnet_filters_before.png",
        help="the first layer's filters before training (default: %(default)s)",
    )
    p.add_argument(
        "--filters-after",
        metavar="FILE",
        default="train_convnet_filters_after.png",
        help="the first layer's filters after training (default: %(default)s)",
    )
    p.add_argument(
        "--save", metavar="FILE", help="save the trained network (xpnn.io.save, .npz) there"
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="not the Trainer's lines (a loss per iteration): only the summary",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (none with --quick either)"
    )
    args = _ch6.finish(p, argv, FULL, QUICK)
    for option in ("filters_before", "filters_after"):
        name = getattr(args, option)
        flag = "--" + option.replace("_", "-")
        if Path(name).suffix.lower() not in _ch6.FORMATS:
            p.error(f"{flag} {name}: the extension must be .png, .svg or .pdf")
        if Path(name).is_dir():
            p.error(f"{flag} {name} is a folder; give a file name")
    if args.save is not None and Path(args.save).is_dir():
        p.error(f"--save {args.save} is a folder; give a file name")
    return args


def load_images(args):
    """MNIST as the book's ``load_mnist(flatten=False)``: ``(N, 1, 28, 28)`` images."""
    (x_train, t_train), (x_test, t_test) = _ch6.load_data(args)
    xp = xpnn.get_namespace(x_train)
    n = min(args.train_size, x_train.shape[0])  # strict arrays refuse a slice past the end
    x_train, t_train = xp.reshape(x_train[:n, ...], (-1, 1, 28, 28)), t_train[:n, ...]
    x_test = xp.reshape(x_test, (-1, 1, 28, 28))
    return (x_train, t_train), (x_test, t_test)


def train(args, data) -> tuple[Trainer, object]:
    """The book's script; returns the trained Trainer and the first filters before training."""
    (x_train, t_train), (x_test, t_test) = data
    network = SimpleConvNet(
        input_dim=(1, 28, 28),
        conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},
        hidden_size=100,
        output_size=10,
        weight_init_std=0.01,
        seed=args.seed,
        dtype=args.dtype,
    )
    xp = xpnn.get_namespace(network.params["W1"])
    before = xp.asarray(network.params["W1"], copy=True)  # the params are updated in place
    trainer = Trainer(
        network,
        x_train,
        t_train,
        x_test,
        t_test,
        epochs=args.epochs,
        mini_batch_size=args.batch_size,
        optimizer="Adam",
        optimizer_param={"lr": LEARNING_RATE},
        evaluate_sample_num_per_epoch=min(EVALUATE_SAMPLES, x_train.shape[0], x_test.shape[0]),
        verbose=not args.quiet,
    )
    trainer.train(seed=args.seed + 1, progress=not (args.quick or args.no_progress))
    return trainer, before


def write(fig, path: str) -> None:
    out = show_or_save(fig, Path(path))
    print(f"figure written to {out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with _ch6.backend(args):
        data = load_images(args)
        n_train = data[0][0].shape[0]
        print(
            f"backend {xpnn.get_backend().spec}, {args.dtype}, SimpleConvNet(30 filters 5x5, "
            f"hidden 100), Adam lr {LEARNING_RATE}, {n_train} training images, "
            f"batch {args.batch_size}, {args.epochs} epochs"
        )
        start = time.perf_counter()
        trainer, before = train(args, data)
        wall = time.perf_counter() - start
        network = trainer.network
        if args.save:
            saved = save(network, args.save)
            print(f"Saved Network Parameters! ({saved})")
        after = network.params["W1"]
        write(filters_figure(before, title="filters before training"), args.filters_before)
        write(filters_figure(after, title="filters after training"), args.filters_after)
    print(
        f"final train acc {trainer.train_acc_list[-1]:.4f} "
        f"(first {trainer.evaluate_sample_num_per_epoch}), "
        f"final test acc {trainer.final_test_acc:.4f} (all {data[1][0].shape[0]})"
    )
    per_iter = wall / trainer.max_iter * 1000
    print(f"wall time {wall:.1f} s ({per_iter:.0f} ms per iteration, evaluations included)")
    _ch6.save(accuracy_figure(trainer.train_acc_list, trainer.test_acc_list), args)
    return 0


def accuracy_figure(train_acc, test_acc) -> Figure:
    """The book's curves: train and test accuracy after each epoch (figure 7-16 kind)."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    epochs = np.arange(1, len(train_acc) + 1)
    ax.plot(epochs, train_acc, marker="o", label="train", markevery=2)
    ax.plot(epochs, test_acc, marker="s", label="test", markevery=2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epochs", ylabel="accuracy", ylim=(0, 1.0), title="SimpleConvNet")
    ax.legend(loc="lower right")
    return fig


if __name__ == "__main__":
    sys.exit(main())

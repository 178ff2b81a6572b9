"""Overfitting on 300 images, and Dropout against it (ch. 6.4.3, figure 6-23).

The book's ``ch06/overfit_dropout.py``: a MultiLayerNetExtend(784, [100] * 6,
10) with ReLU and a Dropout layer (ratio 0.2) after each hidden activation,
trained with the book's ``Trainer`` (SGD, lr 0.01, mini-batches of 100) on only
the first 300 training images for 301 epochs; the Trainer prints each
iteration's loss and the train and test accuracy once an epoch. The book runs it
with ``use_dropout = True`` and ``False``; this script runs both, from the
same weights (``--dropout-ratio 0`` runs only the plain net). ``Trainer`` here
is ``xpnn.Trainer`` in the book's form: its ``train()`` runs ``fit`` (one
permutation of the 300 images an epoch, where the book draws each batch with
replacement). The data are the MNIST sample shipped with xpnn unless
``--data-dir`` names the full MNIST::

    python examples/overfit_dropout.py              # writes overfit_dropout.png
    python examples/overfit_dropout.py --dropout-ratio 0.15 --backend cupy

Dropout keeps the net from learning the 300 images by heart: the gap between
train and test accuracy narrows.
"""

from __future__ import annotations

import sys
import time

import _ch6

import xpnn
from xpnn import Trainer
from xpnn.models.multilayer import MultiLayerNetExtend

#: The book's sizes, and those of --quick.
FULL = {"epochs": 301, "train_size": 300, "batch_size": 100}
QUICK = {"epochs": 20, "train_size": 100, "batch_size": 50}

LEARNING_RATE = 0.01


def parse_args(argv: list[str] | None = None):
    p = _ch6.parser(__doc__, "overfit_dropout.png")
    p.add_argument(
        "--dropout-ratio",
        type=float,
        default=0.2,
        help="Dropout's ratio; a plain net is trained too (default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, help="epochs (default: 301; --quick: 20)")
    p.add_argument(
        "--train-size", type=int, help="training images used (default: 300; --quick: 100)"
    )
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: 100; --quick: 50)")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="not the Trainer's lines (a loss per iteration): only the summary",
    )
    args = _ch6.finish(p, argv, FULL, QUICK)
    if not 0 <= args.dropout_ratio < 1:
        p.error(f"--dropout-ratio must be in [0, 1), got {args.dropout_ratio}")
    return args


def train_one(args, data, use_dropout: bool) -> Trainer:
    """The book's script for one setting; returns the trained Trainer."""
    (x_train, t_train), (x_test, t_test) = data
    network = MultiLayerNetExtend(
        input_size=784,
        hidden_size_list=[100, 100, 100, 100, 100, 100],
        output_size=10,
        use_dropout=use_dropout,
        dropout_ration=args.dropout_ratio if use_dropout else 0.5,
        seed=args.seed,
        dtype=args.dtype,
    )
    trainer = Trainer(
        network,
        x_train,
        t_train,
        x_test,
        t_test,
        epochs=args.epochs,
        mini_batch_size=args.batch_size,
        optimizer="sgd",
        optimizer_param={"lr": LEARNING_RATE},
        verbose=not args.quiet,
    )
    trainer.train(seed=args.seed + 1)
    return trainer


def train(args) -> dict[str, Trainer]:
    """Run the plain net and the one with Dropout: label -> trained Trainer."""
    (x_train, t_train), test = _ch6.load_data(args)
    data = ((x_train[: args.train_size, ...], t_train[: args.train_size, ...]), test)
    runs = {"without Dropout": False}
    if args.dropout_ratio > 0:
        runs[f"Dropout {args.dropout_ratio:g}"] = True
    results = {}
    for label, use_dropout in runs.items():
        print(f"============== {label} ==============")
        results[label] = train_one(args, data, use_dropout)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with _ch6.backend(args):
        print(
            f"backend {xpnn.get_backend().spec}, {args.dtype}, MultiLayerNetExtend(784, "
            f"[100] * 6, 10), SGD lr {LEARNING_RATE}, {args.train_size} training images, "
            f"batch {args.batch_size}, {args.epochs} epochs"
        )
        start = time.perf_counter()
        results = train(args)
        wall = time.perf_counter() - start
    print("run             | final train acc | final test acc | gap")
    for label, trainer in results.items():
        train_acc, test_acc = trainer.train_acc_list[-1], trainer.test_acc_list[-1]
        print(f"{label:15} | {train_acc:15.4f} | {test_acc:14.4f} | {train_acc - test_acc:.4f}")
    print(f"wall time {wall:.1f} s")
    panels = [(label, t.train_acc_list, t.test_acc_list) for label, t in results.items()]
    _ch6.save(_ch6.accuracy_figure(panels), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

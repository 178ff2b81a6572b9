"""Overfitting on 300 images, and weight decay against it (ch. 6.4.1-6.4.2, figures 6-20, 6-21).

The book's ``ch06/overfit_weight_decay.py``: a MultiLayerNet(784, [100] * 6,
10) with ReLU, trained by SGD (lr 0.01) on random mini-batches of 100 drawn from
only the first 300 training images for 201 epochs, its train and test accuracy
printed once an epoch (``epoch:N, train acc:..., test acc:...``). The book runs
it twice, editing ``weight_decay_lambda``: 0 (figure 6-20) and 0.1 (figure
6-21); this script runs each value of ``--weight-decay-lambda`` in turn, from
the same weights and on the same mini-batches. The data are the MNIST sample
shipped with xpnn unless ``--data-dir`` names the full MNIST::

    python examples/overfit_weight_decay.py         # writes overfit_weight_decay.png
    python examples/overfit_weight_decay.py --weight-decay-lambda 0.1 --backend cupy

Without decay the net learns the 300 images by heart (train accuracy 1.0) and
the test accuracy stays far below; the penalty 0.5 * lambda * sum(W ** 2)
narrows that gap.
"""

from __future__ import annotations

import sys
import time

import _ch6

import xpnn
from xpnn.models.multilayer import MultiLayerNet
from xpnn.optimizers import SGD

#: The book's sizes, and those of --quick.
FULL = {"epochs": 201, "train_size": 300, "batch_size": 100}
QUICK = {"epochs": 20, "train_size": 100, "batch_size": 50}

LEARNING_RATE = 0.01


def parse_args(argv: list[str] | None = None):
    p = _ch6.parser(__doc__, "overfit_weight_decay.png")
    p.add_argument(
        "--weight-decay-lambda",
        type=float,
        nargs="+",
        default=[0.0, 0.1],
        metavar="LAMBDA",
        help="the runs' decay strengths (default: 0 0.1, the book's two runs)",
    )
    p.add_argument("--epochs", type=int, help="epochs (default: 201; --quick: 20)")
    p.add_argument(
        "--train-size", type=int, help="training images used (default: 300; --quick: 100)"
    )
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: 100; --quick: 50)")
    args = _ch6.finish(p, argv, FULL, QUICK)
    if any(not lam >= 0 for lam in args.weight_decay_lambda):
        p.error(f"--weight-decay-lambda must be >= 0, got {args.weight_decay_lambda}")
    return args


def train_one(args, data, weight_decay_lambda: float) -> tuple[list[float], list[float]]:
    """The book's loop for one lambda; returns the train and test accuracy per epoch."""
    (x_train, t_train), (x_test, t_test) = data
    network = MultiLayerNet(
        input_size=784,
        hidden_size_list=[100, 100, 100, 100, 100, 100],
        output_size=10,
        weight_decay_lambda=weight_decay_lambda,
        seed=args.seed,
        dtype=args.dtype,
    )
    optimizer = SGD(lr=LEARNING_RATE)

    train_acc_list: list[float] = []
    test_acc_list: list[float] = []
    train_size = x_train.shape[0]
    iter_per_epoch = max(train_size // args.batch_size, 1)
    batches = _ch6.batches(xpnn.default_rng(args.seed + 1), x_train, t_train, args.batch_size)
    epoch_cnt = 0
    # The book's loop stops at the epoch-th record: (epochs - 1) epochs and one iteration.
    for i in range((args.epochs - 1) * iter_per_epoch + 1):
        x_batch, t_batch = next(batches)
        grads = network.gradient(x_batch, t_batch)
        optimizer.update(network.params, grads)

        if i % iter_per_epoch == 0:
            train_acc = _ch6.to_float(network.accuracy(x_train, t_train))
            test_acc = _ch6.to_float(network.accuracy(x_test, t_test))
            train_acc_list.append(train_acc)
            test_acc_list.append(test_acc)
            print(
                "epoch:" + str(epoch_cnt) + ", train acc:" + str(train_acc)
                + ", test acc:" + str(test_acc)
            )  # fmt: skip
            epoch_cnt += 1
    return train_acc_list, test_acc_list


def train(args) -> dict[float, tuple[list[float], list[float]]]:
    """Run every lambda on the active backend: lambda -> (train, test) accuracies per epoch."""
    (x_train, t_train), test = _ch6.load_data(args)
    data = ((x_train[: args.train_size, ...], t_train[: args.train_size, ...]), test)
    results = {}
    for lam in args.weight_decay_lambda:
        print(f"============== weight_decay_lambda = {lam:g} ==============")
        results[lam] = train_one(args, data, lam)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with _ch6.backend(args):
        print(
            f"backend {xpnn.get_backend().spec}, {args.dtype}, MultiLayerNet(784, [100] * 6, 10), "
            f"SGD lr {LEARNING_RATE}, {args.train_size} training images, batch "
            f"{args.batch_size}, {args.epochs} epochs"
        )
        start = time.perf_counter()
        results = train(args)
        wall = time.perf_counter() - start
    print("weight_decay_lambda | final train acc | final test acc | gap")
    for lam, (train_acc, test_acc) in results.items():
        gap = train_acc[-1] - test_acc[-1]
        print(f"{lam:19g} | {train_acc[-1]:15.4f} | {test_acc[-1]:14.4f} | {gap:.4f}")
    print(f"wall time {wall:.1f} s")
    panels = [(f"weight decay lambda = {lam:g}", *curves) for lam, curves in results.items()]
    _ch6.save(_ch6.accuracy_figure(panels), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Batch Normalization against none, across weight scales (ch. 6.3.2, figure 6-19).

The book's ``ch06/batch_norm_test.py``: for each of 16 weight scales from 1 down
to 1e-4 (``np.logspace(0, -4, 16)``), two MultiLayerNetExtend(784, [100] * 5,
10) with ReLU start from the same weights, one with a BatchNormalization layer
after each hidden Affine and one without; both are trained by SGD (lr 0.01) on
the same random mini-batches of 100 from the first 1,000 training images, and
their accuracy on those 1,000 images is printed once an epoch for 20 epochs
(``epoch:N | without BN - with BN``). The data are the MNIST sample shipped with
xpnn unless ``--data-dir`` names the full MNIST::

    python examples/batch_norm_test.py              # writes batch_norm_test.png
    python examples/batch_norm_test.py --scales 4 --backend cupy

With Batch Normalization the net learns, and learns fast, at nearly every
scale; without it, it stalls when the weights are too large or too small.
"""

from __future__ import annotations

import math
import sys
import time

import _ch6
import numpy as np
from matplotlib.figure import Figure

import xpnn
from xpnn.models.multilayer import MultiLayerNetExtend
from xpnn.optimizers import SGD

#: The book's sizes, and those of --quick.
FULL = {"scales": 16, "epochs": 20, "train_size": 1000, "batch_size": 100}
QUICK = {"scales": 3, "epochs": 4, "train_size": 200, "batch_size": 50}

LEARNING_RATE = 0.01


def parse_args(argv: list[str] | None = None):
    p = _ch6.parser(__doc__, "batch_norm_test.png")
    p.add_argument(
        "--scales",
        type=int,
        help="weight scales, np.logspace(0, -4, SCALES) (default: 16; --quick: 3)",
    )
    p.add_argument("--epochs", type=int, help="epochs per scale (default: 20; --quick: 4)")
    p.add_argument(
        "--train-size", type=int, help="training images used (default: 1000; --quick: 200)"
    )
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: 100; --quick: 50)")
    return _ch6.finish(p, argv, FULL, QUICK)


def weight_scales(n: int) -> list[float]:
    """The book's ``np.logspace(0, -4, num=n)``: from 1 down to 1e-4."""
    return [float(w) for w in np.logspace(0, -4, num=n)]


def train_pair(args, x_train, t_train, weight_init_std: float) -> tuple[list[float], list[float]]:
    """Train the plain and the batch-normalised net; returns their accuracies per epoch."""
    sizes = {"input_size": 784, "hidden_size_list": [100] * 5, "output_size": 10}
    common = {"weight_init_std": weight_init_std, "seed": args.seed, "dtype": args.dtype}
    bn_network = MultiLayerNetExtend(**sizes, **common, use_batchnorm=True)
    network = MultiLayerNetExtend(**sizes, **common)
    optimizer = SGD(lr=LEARNING_RATE)

    train_acc_list: list[float] = []
    bn_train_acc_list: list[float] = []
    train_size = x_train.shape[0]
    iter_per_epoch = max(train_size // args.batch_size, 1)
    batches = _ch6.batches(xpnn.default_rng(args.seed + 1), x_train, t_train, args.batch_size)
    epoch_cnt = 0
    # The book's loop stops at the epoch-th record: (epochs - 1) epochs and one iteration.
    for i in range((args.epochs - 1) * iter_per_epoch + 1):
        x_batch, t_batch = next(batches)
        for _network in (bn_network, network):
            grads = _network.gradient(x_batch, t_batch)
            optimizer.update(_network.params, grads)

        if i % iter_per_epoch == 0:
            train_acc = _ch6.to_float(network.accuracy(x_train, t_train))
            bn_train_acc = _ch6.to_float(bn_network.accuracy(x_train, t_train))
            train_acc_list.append(train_acc)
            bn_train_acc_list.append(bn_train_acc)
            print("epoch:" + str(epoch_cnt) + " | " + str(train_acc) + " - " + str(bn_train_acc))
            epoch_cnt += 1
    return train_acc_list, bn_train_acc_list


def train(args) -> dict[float, tuple[list[float], list[float]]]:
    """Run the experiment on the active backend: scale -> (plain, BN) accuracies per epoch."""
    (x_train, t_train), _ = _ch6.load_data(args)
    x_train, t_train = x_train[: args.train_size, ...], t_train[: args.train_size, ...]
    results = {}
    scales = weight_scales(args.scales)
    for i, w in enumerate(scales):
        print("============== " + str(i + 1) + "/" + str(len(scales)) + " ==============")
        results[w] = train_pair(args, x_train, t_train, w)
    return results


def draw(results: dict[float, tuple[list[float], list[float]]]) -> Figure:
    """One panel per weight scale: train accuracy with BN (solid) and without (dashed)."""
    n = len(results)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.0 * cols, 2.5 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True)).ravel()
    for ax, (w, (acc, bn_acc)) in zip(axes, results.items(), strict=False):
        x = np.arange(len(acc))
        ax.plot(x, bn_acc, label="Batch Normalization")
        ax.plot(x, acc, linestyle="--", label="Normal (without BatchNorm)")
        ax.set(ylim=(0, 1.0), title=f"W: {w:.3g}")
    for ax in axes[n:]:
        ax.set_axis_off()
    for ax in axes[::cols]:
        ax.set_ylabel("accuracy")
    for ax in axes[(rows - 1) * cols :]:
        ax.set_xlabel("epochs")
    axes[n - 1].legend(loc="lower right", fontsize="small")
    return fig


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with _ch6.backend(args):
        print(
            f"backend {xpnn.get_backend().spec}, {args.dtype}, MultiLayerNetExtend(784, "
            f"[100] * 5, 10), SGD lr {LEARNING_RATE}, {args.train_size} training images, "
            f"batch {args.batch_size}, {args.epochs} epochs per scale"
        )
        start = time.perf_counter()
        results = train(args)
        wall = time.perf_counter() - start
    print("final train accuracy | weight scale | without BN | with BN")
    for w, (acc, bn_acc) in results.items():
        print(f"                     | {w:12.3g} | {acc[-1]:10.3f} | {bn_acc[-1]:7.3f}")
    better = sum(bn_acc[-1] > acc[-1] for acc, bn_acc in results.values())
    print(f"with BN higher at {better} of {len(results)} scales")
    print(f"wall time {wall:.1f} s")
    _ch6.save(draw(results), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

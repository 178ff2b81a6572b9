"""Train the book's TwoLayerNet on MNIST with mini-batch SGD (ch. 4.5).

The book's experiment: TwoLayerNet(784, 50, 10), batch 100, learning rate 0.1,
10,000 iterations of random mini-batches, train/test accuracy once per epoch.
The data are the four gzip'd IDX files of MNIST (or a sample in that format)
in ``--data-dir``, by default the 5,000-digit MNIST sample shipped with xpnn
(``xpnn.datasets.load_mnist5k``); run it on any backend::

    python examples/train_neuralnet.py                  # writes train_neuralnet.png
    python examples/train_neuralnet.py --data-dir DIR --backend cupy --out mnist.svg

The same ``--seed`` gives the same initial weights and the same mini-batches on
every backend. Nothing is read back from the device inside an iteration: the
per-iteration losses stay on the device until the end, and accuracies are read
once per epoch. The figure is the loss per iteration beside the train and test
accuracies (the book's figure 4-12).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import xpnn
from xpnn.datasets import load_mnist5k, load_mnist_dir
from xpnn.plot import plot_training


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-dir",
        help="folder with the four MNIST IDX .gz files "
        "(default: the 5,000-digit sample shipped with xpnn)",
    )
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="float precision (default: %(default)s)",
    )
    p.add_argument("--iters", type=int, default=10_000, help="iterations (default: %(default)s)")
    p.add_argument(
        "--batch-size", type=int, default=100, help="mini-batch size (default: %(default)s)"
    )
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=50, help="hidden units (default: %(default)s)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of weights and mini-batches (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        "--plot",
        metavar="FILE",
        default="train_neuralnet.png",
        help="figure of the loss and accuracies, .png, .svg or .pdf (default: %(default)s)",
    )
    args = p.parse_args(argv)
    for name in ("iters", "batch_size", "hidden"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    # Before training, not after.
    if Path(args.out).suffix.lower() not in (".png", ".svg", ".pdf"):
        p.error(f"--out {args.out}: the extension must be .png, .svg or .pdf")
    if Path(args.out).is_dir():
        p.error(f"--out {args.out} is a folder; give a file name")
    return args


def train(args: argparse.Namespace) -> dict[str, list[float]]:
    """Run the experiment on the active backend; returns the recorded curves."""
    if args.data_dir is None:  # the sample shipped with xpnn, checksummed
        (x_train, t_train), (x_test, t_test) = load_mnist5k(dtype=args.dtype)
    else:
        (x_train, t_train), (x_test, t_test) = load_mnist_dir(args.data_dir, dtype=args.dtype)
    xp = xpnn.get_namespace(x_train)
    train_size = x_train.shape[0]
    net = xpnn.TwoLayerNet(784, args.hidden, 10, seed=args.seed, dtype=args.dtype)
    rng = xpnn.default_rng(args.seed + 1)
    iter_per_epoch = max(train_size // args.batch_size, 1)

    losses = []  # 0-d device arrays; read once at the end
    curves: dict[str, list[float]] = {"train_acc": [], "test_acc": []}
    for i in range(args.iters):
        idx = rng.choice(train_size, args.batch_size)  # with replacement, as the book
        x_batch = xp.take(x_train, idx, axis=0)
        t_batch = xp.take(t_train, idx, axis=0)
        grads = net.gradient(x_batch, t_batch)
        for key in net.KEYS:  # SGD, in place
            net.params[key] -= args.lr * grads[key]
        losses.append(net.loss_layer.loss)
        if i % iter_per_epoch == 0 or i == args.iters - 1:
            train_acc = float(xpnn.to_numpy(net.accuracy(x_train, t_train)))
            test_acc = float(xpnn.to_numpy(net.accuracy(x_test, t_test)))
            curves["train_acc"].append(train_acc)
            curves["test_acc"].append(test_acc)
            label = f"epoch {i // iter_per_epoch:3d}" if i % iter_per_epoch == 0 else "end      "
            print(f"{label} | train acc, test acc | {train_acc:.4f}, {test_acc:.4f}")
    curves["loss"] = [float(v) for v in xpnn.to_numpy(xp.stack(losses))]
    return curves


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.backend:
        xpnn.set_backend(args.backend, dtype=args.dtype)
    backend = xpnn.get_backend()
    print(
        f"backend {backend.spec}, {args.dtype}, TwoLayerNet(784, {args.hidden}, 10), "
        f"batch {args.batch_size}, lr {args.lr}, {args.iters} iterations"
    )
    start = time.perf_counter()
    curves = train(args)
    wall = time.perf_counter() - start
    if not all(math.isfinite(v) for v in curves["loss"]):
        print("the loss became non-finite: try a smaller --lr", file=sys.stderr)
        return 1
    print(f"final loss {curves['loss'][-1]:.4f}")
    print(f"final test accuracy {curves['test_acc'][-1]:.4f}")
    print(f"wall time {wall:.1f} s")
    out = plot_training(curves["loss"], curves["train_acc"], curves["test_acc"], args.out)
    print(f"figure written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

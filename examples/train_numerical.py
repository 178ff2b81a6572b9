"""Train the book's TwoLayerNet on MNIST with *numerical* gradients (ch. 4.5).

The book's ``train_neuralnet.py`` with ``grad = network.numerical_gradient(
x_batch, t_batch)``: TwoLayerNet(784, 50, 10), batch 100, learning rate 0.1,
train/test accuracy once per epoch. The book's element-by-element loop runs
the whole network twice per parameter (79,520 forward passes per iteration),
so the book warns it is far too slow to train with; here the same central
differences come from :func:`xpnn.gradient.two_layer_numerical_gradient`,
which evaluates only what each perturbation changes::

    python examples/train_numerical.py        # the MNIST sample; writes train_numerical.png
    python examples/train_numerical.py --data-dir DIR --backend cupy --iters 1000

Everything is float64 (a central difference with h = 1e-4 in float32 is mostly
rounding noise). At the end it prints the wall time, and an estimate of what
the textbook loop would have taken for the same run, extrapolated from timing
that loop on the first layer's bias and the second layer's weights of one
mini-batch. The figure is the loss per iteration beside the train and test
accuracies (the book's figure 4-12).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import xpnn
from xpnn.datasets import load_mnist5k, load_mnist_dir
from xpnn.gradient import numerical_gradient, two_layer_numerical_gradient
from xpnn.plot import plot_training

DTYPE = "float64"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-dir",
        help="folder with the four MNIST IDX .gz files "
        "(default: the 5,000-digit sample shipped with xpnn)",
    )
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument(
        "--iters", type=int, default=200, help="iterations (default: %(default)s; book: 10000)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=100,
        help="mini-batch size (default: %(default)s, as the book)",
    )
    p.add_argument(
        "--lr", type=float, default=0.1, help="learning rate (default: %(default)s, as the book)"
    )
    p.add_argument(
        "--hidden", type=int, default=50, help="hidden units (default: %(default)s, as the book)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of weights and mini-batches (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        default="train_numerical.png",
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


def numerical_grads(net: xpnn.TwoLayerNet, x: Any, t: Any) -> dict[str, Any]:
    """``net.numerical_gradient(x, t)``, the fast way."""
    return two_layer_numerical_gradient(*(net.params[k] for k in net.KEYS), x, t)


def textbook_seconds_per_element(net: xpnn.TwoLayerNet, x: Any, t: Any) -> tuple[float, int]:
    """Time the book's loop (whole network twice per element) on b1 and W2.

    Returns the seconds per parameter element and how many were timed. The
    loop restores every element, so the network is unchanged.
    """
    xp = xpnn.get_namespace(x)
    loss = lambda _: net.loss(x, t)  # noqa: E731 - the book's idiom
    numerical_gradient(loss, net.params["b2"])  # warm-up
    keys = ("b1", "W2")
    start = time.perf_counter()
    grads = [numerical_gradient(loss, net.params[k]) for k in keys]
    float(xpnn.to_numpy(xp.sum(grads[-1])))  # wait for the device
    count = sum(math.prod(net.params[k].shape) for k in keys)
    return (time.perf_counter() - start) / count, count


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run the experiment on the active backend; returns curves and timings."""
    if args.data_dir is None:  # the sample shipped with xpnn, checksummed
        (x_train, t_train), (x_test, t_test) = load_mnist5k(dtype=DTYPE)
    else:
        (x_train, t_train), (x_test, t_test) = load_mnist_dir(args.data_dir, dtype=DTYPE)
    xp = xpnn.get_namespace(x_train)
    train_size = x_train.shape[0]
    net = xpnn.TwoLayerNet(784, args.hidden, 10, seed=args.seed, dtype=DTYPE)
    rng = xpnn.default_rng(args.seed + 1)
    iter_per_epoch = max(train_size // args.batch_size, 1)

    losses = []  # 0-d device arrays; read once at the end
    curves: dict[str, Any] = {"train_acc": [], "test_acc": []}
    grad_seconds, per_element, timed = 0.0, 0.0, 0
    for i in range(args.iters):
        idx = rng.choice(train_size, args.batch_size)  # with replacement, as the book
        x_batch = xp.take(x_train, idx, axis=0)
        t_batch = xp.take(t_train, idx, axis=0)
        if i == 0:
            per_element, timed = textbook_seconds_per_element(net, x_batch, t_batch)
        start = time.perf_counter()
        grads = numerical_grads(net, x_batch, t_batch)
        grad_seconds += time.perf_counter() - start  # device work may run on: see wall time
        for key in net.KEYS:  # SGD, in place
            net.params[key] -= args.lr * grads[key]
        losses.append(net.forward(x_batch, t_batch))  # on the device (loss() reads it)
        if i % iter_per_epoch == 0 or i == args.iters - 1:
            train_acc = float(xpnn.to_numpy(net.accuracy(x_train, t_train)))
            test_acc = float(xpnn.to_numpy(net.accuracy(x_test, t_test)))
            curves["train_acc"].append(train_acc)
            curves["test_acc"].append(test_acc)
            label = f"epoch {i // iter_per_epoch:3d}" if i % iter_per_epoch == 0 else "end      "
            print(f"{label} | train acc, test acc | {train_acc:.4f}, {test_acc:.4f}", flush=True)
    curves["loss"] = [float(v) for v in xpnn.to_numpy(xp.stack(losses))]
    elements = sum(math.prod(p.shape) for p in net.params.values())
    curves["timing"] = {
        "grad_seconds": grad_seconds,
        "textbook_seconds_per_element": per_element,
        "textbook_elements_timed": timed,
        "elements": elements,
    }
    return curves


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.backend:
        xpnn.set_backend(args.backend, dtype=DTYPE)
    backend = xpnn.get_backend()
    print(
        f"backend {backend.spec}, {DTYPE}, TwoLayerNet(784, {args.hidden}, 10), "
        f"batch {args.batch_size}, lr {args.lr}, {args.iters} iterations, numerical gradients"
    )
    start = time.perf_counter()
    curves = train(args)
    wall = time.perf_counter() - start
    if not all(math.isfinite(v) for v in curves["loss"]):
        print("the loss became non-finite: try a smaller --lr", file=sys.stderr)
        return 1
    timing = curves["timing"]
    per_iter = timing["textbook_seconds_per_element"] * timing["elements"]
    print(f"final loss {curves['loss'][-1]:.4f}")
    print(f"final test accuracy {curves['test_acc'][-1]:.4f}")
    grad_seconds = timing["grad_seconds"]
    print(
        f"wall time {wall:.1f} s, of which numerical gradients {grad_seconds:.1f} s "
        f"({grad_seconds / args.iters:.3f} s per iteration)"
    )
    print(
        f"textbook loop (estimate): {per_iter:.1f} s per iteration, "
        f"{_duration(per_iter * args.iters)} for {args.iters} iterations "
        f"(timed on {timing['textbook_elements_timed']} of the {timing['elements']} "
        "parameter elements of the first mini-batch, extrapolated)"
    )
    out = plot_training(curves["loss"], curves["train_acc"], curves["test_acc"], args.out)
    print(f"figure written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

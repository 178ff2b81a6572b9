"""What the chapter-6 examples share: options, data, mini-batches, host reads, figures.

Not an example itself (hence the underscore): optimizer_compare_mnist.py,
weight_init_compare.py, batch_norm_test.py, overfit_weight_decay.py and
overfit_dropout.py import it, as the book's scripts import ``common/``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

import xpnn
from xpnn.datasets import load_mnist5k, load_mnist_dir
from xpnn.plot import show_or_save
from xpnn.util import smooth_curve  # the book's common/util.py

#: Figure formats the examples write (the extension chooses).
FORMATS = (".png", ".svg", ".pdf")


def parser(doc: str, out: str) -> argparse.ArgumentParser:
    """The options every chapter-6 example has; ``out`` is the default figure file."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
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
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the weights, mini-batches and dropout masks (default: %(default)s)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a short run (seconds) with the sizes of QUICK, for tests and a first look",
    )
    p.add_argument(
        "--out",
        "--plot",
        metavar="FILE",
        default=out,
        help="the figure, .png, .svg or .pdf (default: %(default)s)",
    )
    return p


def finish(
    p: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    full: Mapping[str, Any],
    quick: Mapping[str, Any],
) -> argparse.Namespace:
    """Parse, fill the sizes not given (``quick`` with --quick, else ``full``), check them.

    Every option of ``full`` must have been added with ``default=None``; its
    value must be positive. The figure name is checked here, before training.
    """
    args = p.parse_args(argv)
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in full:
        values = getattr(args, name)
        for v in values if isinstance(values, list) else [values]:
            if not v > 0:
                p.error(f"--{name.replace('_', '-')} must be positive, got {v}")
    if args.seed < 0:
        p.error(f"--seed must be non-negative, got {args.seed}")
    if Path(args.out).suffix.lower() not in FORMATS:
        p.error(f"--out {args.out}: the extension must be .png, .svg or .pdf")
    if Path(args.out).is_dir():
        p.error(f"--out {args.out} is a folder; give a file name")
    return args


def backend(args: argparse.Namespace) -> contextlib.AbstractContextManager[Any]:
    """The backend of ``--backend`` (and ``--dtype``) for a ``with`` block."""
    if args.backend:
        return xpnn.use_backend(args.backend, dtype=args.dtype)
    return contextlib.nullcontext()


def load_data(args: argparse.Namespace) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """MNIST as the book's ``load_mnist(normalize=True)``: ``(N, 784)`` floats, int labels.

    The sample shipped with xpnn (checksummed) unless ``--data-dir`` names a
    folder of the four IDX files; prints a line saying which and how many.
    """
    if args.data_dir is None:
        data = load_mnist5k(dtype=args.dtype)
        where = "the MNIST sample shipped with xpnn"
    else:
        data = load_mnist_dir(args.data_dir, dtype=args.dtype)
        where = args.data_dir
    (x_train, _), (x_test, _) = data
    print(f"data: {x_train.shape[0]} training and {x_test.shape[0]} test images from {where}")
    return data


def batches(rng: xpnn.Generator, x: Any, t: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
    """Endless random mini-batches drawn with replacement, as the book's ``np.random.choice``.

    The indices come from ``rng`` (the same on every backend for a seed); the
    rows are gathered on the device with ``xp.take``.
    """
    xp = xpnn.get_namespace(x)
    train_size = x.shape[0]
    while True:
        batch_mask = rng.choice(train_size, batch_size)
        yield xp.take(x, batch_mask, axis=0), xp.take(t, batch_mask, axis=0)


def _shortest(value: np.generic) -> float:
    # The shortest decimal that gives this float32 back: a float32 accuracy
    # 0.13 prints as 0.13 (as the book's float64 does), not 0.12999999523162842.
    return float(str(value))


def to_float(value: Any) -> float:
    """One device number (a 0-d array) on the host, as its shortest decimal."""
    return _shortest(np.asarray(xpnn.to_numpy(value))[()])


def to_floats(values: Sequence[Any]) -> list[float]:
    """Many 0-d device arrays on the host in one copy, as their shortest decimals."""
    if not values:
        return []
    if isinstance(values[0], np.generic):  # NumPy's reductions give scalars, not 0-d arrays
        return [_shortest(v) for v in values]
    xp = xpnn.get_namespace(values[0])
    return [_shortest(v) for v in xpnn.to_numpy(xp.stack(list(values)))]


def print_final_losses(losses: Mapping[str, Sequence[float]], window: int) -> None:
    """The last loss of each run and the mean of its last ``window`` (the noise averaged)."""
    iters = len(next(iter(losses.values())))
    print(f"=========== final (iteration {iters - 1}) ===========")
    for key, loss in losses.items():
        tail = loss[-window:]
        print(
            f"{key}: last {loss[-1]:.6g}, mean of the last {len(tail)} {sum(tail) / len(tail):.6g}"
        )


def loss_figure(
    losses: Mapping[str, Sequence[float]], markers: Mapping[str, str], ylim: float, title: str
) -> Figure:
    """Smoothed training losses per iteration, one line per run (figures 6-9 and 6-15)."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    for key, loss in losses.items():
        x = np.arange(len(loss))
        ax.plot(x, smooth_curve(loss), marker=markers[key], markevery=100, label=key)
    ax.set(xlabel="iterations", ylabel="loss", ylim=(0, ylim), title=title)
    ax.legend()
    return fig


def accuracy_figure(panels: Sequence[tuple[str, Sequence[float], Sequence[float]]]) -> Figure:
    """Train and test accuracy per epoch, one panel per run (figures 6-20 to 6-23)."""
    fig = Figure(figsize=(5.2 * len(panels), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    for ax, (title, train_acc, test_acc) in zip(axes, panels, strict=True):
        x = np.arange(len(train_acc))
        ax.plot(x, train_acc, marker="o", label="train", markevery=10)
        ax.plot(x, test_acc, marker="s", label="test", markevery=10)
        ax.set(xlabel="epochs", ylim=(0, 1.0), title=title)
        ax.legend(loc="lower right")
    axes[0].set_ylabel("accuracy")
    return fig


def save(fig: Figure, args: argparse.Namespace) -> Path | None:
    """Write the figure to ``--out`` and say so."""
    out = show_or_save(fig, Path(args.out))
    print(f"figure written to {out}")
    return out

"""Time the same training on a chosen backend (a GPU) and on NumPy (vol. 2, ch. 1.5).

The training of train_spiral.py (or, with ``--dataset mnist``, a
LayeredTwoLayerNet(784, 50, 10) on MNIST) runs twice from the same seed, once
on ``--backend`` and once on NumPy, and a table compares wall time, final
loss, accuracy and the speed-up over NumPy. The figure shows both loss curves
(they should lie on top of each other) beside the wall times::

    python examples/train_gpu.py --backend cupy               # writes train_gpu.png
    python examples/train_gpu.py --backend torch:cuda --dataset mnist --epochs 5
    python examples/train_gpu.py --backend cupy --cuda-graph   # one graph launch per iteration

Small problems are faster on the CPU: the spiral net multiplies 30x2 by 2x10
matrices, far too little work to hide the cost of launching GPU kernels (on
an H100 CuPy took about 6 times as long as NumPy). Big matrices are where a
GPU pays off: ``--dataset mnist --hidden 2000 --batch-size 1000 --lr 0.01``
ran about 30 times faster there (on the 5,000-image sample: 100 steps, a
timing, too few to train such a net far). A backend that cannot run here is
an error with its reason and fix: this script never falls back.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

import xpnn
from xpnn.datasets import load_mnist5k, load_mnist_dir, load_spiral
from xpnn.plot import show_or_save

#: Iterations per recorded loss (Trainer.fit's eval_interval).
EVAL_INTERVAL = 10

#: The book's settings for each data set (spiral: vol. 2 ch. 1; MNIST: vol. 1 ch. 4).
DEFAULTS = {
    "spiral": {"epochs": 300, "batch_size": 30, "hidden": 10, "lr": 1.0},
    "mnist": {"epochs": 10, "batch_size": 100, "hidden": 50, "lr": 0.1},
}


@dataclasses.dataclass
class Result:
    """One backend's run."""

    backend: str
    wall_s: float
    loss: float  # on the whole training set, after training
    accuracy: float  # training set (spiral) or test set (MNIST)
    loss_list: list[float]  # Trainer.loss_list: the mean loss of every EVAL_INTERVAL iterations


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--backend",
        default=None,
        help="the backend to time: cupy, torch:cuda, ... (default: active)",
    )
    p.add_argument(
        "--dataset",
        default="spiral",
        choices=sorted(DEFAULTS),
        help="the data (default: %(default)s)",
    )
    p.add_argument(
        "--data-dir",
        help="--dataset mnist: folder with the four MNIST IDX files "
        "(default: the 5,000-digit sample shipped with xpnn)",
    )
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="float precision (default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, help="epochs (default: spiral 300, mnist 10)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: spiral 30, mnist 100)")
    p.add_argument("--hidden", type=int, help="hidden units (default: spiral 10, mnist 50)")
    p.add_argument("--lr", type=float, help="SGD learning rate (default: spiral 1.0, mnist 0.1)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of weights and mini-batches (default: %(default)s)",
    )
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="CuPy: replay each iteration as a recorded CUDA graph (Trainer.fit(cuda_graph=True))",
    )
    p.add_argument(
        "--no-warmup",
        action="store_true",
        help="also time the first kernel launches (CuPy compiles each kernel on first use)",
    )
    p.add_argument(
        "--out",
        default="train_gpu.png",
        help="figure of the loss curves and wall times, .png, .svg or .pdf (default: %(default)s)",
    )
    args = p.parse_args(argv)
    for name, value in DEFAULTS[args.dataset].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("epochs", "batch_size", "hidden"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.data_dir is not None and args.dataset != "mnist":
        p.error("--data-dir applies only to --dataset mnist")
    # Before training, not after.
    if Path(args.out).suffix.lower() not in (".png", ".svg", ".pdf"):
        p.error(f"--out {args.out}: the extension must be .png, .svg or .pdf")
    if Path(args.out).is_dir():
        p.error(f"--out {args.out} is a folder; give a file name")
    return args


def load(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, int]:
    """The data on the active backend: ``(x, t, x_eval, t_eval, classes)``."""
    if args.dataset == "mnist":
        if args.data_dir is None:  # the sample shipped with xpnn, checksummed
            (x, t), (x_eval, t_eval) = load_mnist5k(dtype=args.dtype)
        else:
            (x, t), (x_eval, t_eval) = load_mnist_dir(args.data_dir, dtype=args.dtype)
        return x, t, x_eval, t_eval, 10
    x, t = load_spiral(dtype=args.dtype)
    return x, t, x, t, t.shape[1]  # the spiral has no test set


def run(spec: str, args: argparse.Namespace, cuda_graph: bool = False) -> Result:
    """Train on backend ``spec`` and time it (replaying CUDA graphs if ``cuda_graph``).

    Raises:
        xpnn.BackendUnavailableError: ``spec`` cannot run here.
        ValueError: ``cuda_graph`` on a backend other than CuPy.
    """
    with xpnn.use_backend(spec, dtype=args.dtype) as backend:
        x, t, x_eval, t_eval, classes = load(args)

        def new_trainer() -> xpnn.Trainer:
            model = xpnn.LayeredTwoLayerNet(x.shape[1], args.hidden, classes, seed=args.seed)
            return xpnn.Trainer(model, xpnn.SGD(lr=args.lr))

        def fit(trainer: xpnn.Trainer, x: Any, t: Any, epochs: int) -> None:
            trainer.fit(
                x,
                t,
                max_epoch=epochs,
                batch_size=args.batch_size,
                eval_interval=EVAL_INTERVAL,
                seed=args.seed,
                progress=False,
                verbose=False,
                cuda_graph=cuda_graph,
            )

        if not args.no_warmup:
            # Two mini-batches on a throw-away model: the first use of each
            # kernel (CuPy compiles them, cuBLAS picks algorithms) is not
            # what a longer training costs.
            fit(new_trainer(), x[: 2 * args.batch_size, ...], t[: 2 * args.batch_size, ...], 1)
        trainer = new_trainer()
        start = time.perf_counter()
        fit(trainer, x, t, args.epochs)
        # GPU kernels run asynchronously but in order: reading the last
        # mini-batch's loss waits for all of the training to finish.
        xpnn.to_numpy(trainer.model.loss_layer.loss)
        wall = time.perf_counter() - start
        loss = float(xpnn.to_numpy(trainer.model.forward(x, t)))
        accuracy = float(xpnn.to_numpy(trainer.model.accuracy(x_eval, t_eval)))
    return Result(backend.spec, wall, loss, accuracy, list(trainer.loss_list))


def print_table(results: list[Result], accuracy_of: str) -> None:
    """The runs, the first (NumPy) as the reference of the speed-up."""
    print(f"{'backend':<26}{'wall time':>11}{'final loss':>12}{accuracy_of:>11}{'speed-up':>10}")
    for r in results:
        speedup = results[0].wall_s / r.wall_s
        print(
            f"{r.backend:<26}{r.wall_s:>9.3f} s{r.loss:>12.4f}{r.accuracy:>11.4f}{speedup:>9.2f}x"
        )


def draw(results: list[Result], title: str) -> Figure:
    """The loss curves of the runs (one on top of the other) beside their wall times."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_loss, ax_time = fig.subplots(1, 2)
    for r, style in zip(results, ("-", "--"), strict=False):
        ax_loss.plot(r.loss_list, style, label=r.backend)
    ax_loss.set(xlabel=f"iterations (x{EVAL_INTERVAL})", ylabel="loss", title=title)
    ax_loss.legend()
    names = [r.backend for r in results]
    bars = ax_time.barh(names, [r.wall_s for r in results], color=["C0", "C1"][: len(results)])
    ax_time.bar_label(bars, labels=[f"{r.wall_s:.3f} s" for r in results], padding=3)
    ax_time.invert_yaxis()  # the table's order, NumPy first
    ax_time.margins(x=0.2)
    ax_time.set(xlabel="wall time (s)", title="training time")
    return fig


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        spec = args.backend or xpnn.get_backend().spec
        # The chosen backend first: if it cannot run, say so before any work.
        chosen = run(spec, args, cuda_graph=args.cuda_graph)
    except (xpnn.BackendUnavailableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.dataset}: LayeredTwoLayerNet, {args.hidden} hidden units, SGD lr {args.lr}, "
        f"{args.epochs} epochs of mini-batches of {args.batch_size}, {args.dtype}"
    )
    if chosen.backend == "numpy:cpu":
        print("(the backend timed is numpy itself: choose one with --backend cupy or torch:cuda)")
    results = [run("numpy", args), chosen]
    print_table(results, "test acc" if args.dataset == "mnist" else "train acc")
    title = f"{args.dataset}, {args.epochs} epochs"
    out = show_or_save(draw(results, title), Path(args.out))
    print(f"figure written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the two-layer net on the spiral data set with the Trainer (vol. 2, ch. 1.4).

The book's experiment: 300 points on three spiral arms, TwoLayerNet(2, 10, 3)
(here LayeredTwoLayerNet), SGD with learning rate 1.0, 300 epochs of
mini-batches of 30, the average loss printed every 10 iterations. Then the
loss curve (figure 1-32) and the classes the net predicts over the plane
(figure 1-33)::

    python examples/train_spiral.py                      # spiral_loss.png, spiral_boundary.png
    python examples/train_spiral.py --backend cupy --hidden 30 --out-prefix runs/gpu_

The same ``--seed`` gives the same initial weights and mini-batches on every
backend.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import xpnn
from xpnn.datasets import load_spiral
from xpnn.plot import plot_decision_boundary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="float precision (default: %(default)s)",
    )
    p.add_argument(
        "--epochs", type=int, default=300, help="epochs (default: %(default)s, as the book)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=30,
        help="mini-batch size (default: %(default)s, as the book)",
    )
    p.add_argument(
        "--hidden", type=int, default=10, help="hidden units (default: %(default)s, as the book)"
    )
    p.add_argument(
        "--lr", type=float, default=1.0, help="learning rate (default: %(default)s, as the book)"
    )
    p.add_argument(
        "--eval-interval",
        type=int,
        default=10,
        help="iterations per loss line (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of weights and mini-batches (default: %(default)s)",
    )
    p.add_argument(
        "--grid-step",
        type=float,
        default=0.001,
        help="spacing of the decision-boundary grid (default: %(default)s, as the book)",
    )
    p.add_argument(
        "--out-prefix",
        default="spiral_",
        help="the figures go to PREFIXloss.png and PREFIXboundary.png (default: %(default)s)",
    )
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "hidden", "eval_interval"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def train(args: argparse.Namespace) -> tuple[xpnn.Trainer, object, object]:
    """Train on the active backend, printing the book's lines; returns (trainer, x, t)."""
    x, t = load_spiral(dtype=args.dtype)
    model = xpnn.LayeredTwoLayerNet(2, args.hidden, 3, seed=args.seed, dtype=args.dtype)
    trainer = xpnn.Trainer(model, xpnn.SGD(lr=args.lr))
    trainer.fit(
        x,
        t,
        max_epoch=args.epochs,
        batch_size=args.batch_size,
        eval_interval=args.eval_interval,
        seed=args.seed,
        # A bar only on a terminal: in logs it would be a line per refresh.
        progress=sys.stderr.isatty(),
    )
    return trainer, x, t


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with xpnn.use_backend(args.backend) if args.backend else contextlib.nullcontext():
        trainer, x, t = train(args)
        accuracy = float(xpnn.to_numpy(trainer.model.accuracy(x, t)))
        print(f"accuracy on the training data {accuracy:.4f}")
        loss_png = trainer.plot(f"{args.out_prefix}loss.png")
        boundary_png = plot_decision_boundary(
            trainer.model.predict, x, t, f"{args.out_prefix}boundary.png", h=args.grid_step
        )
    print(f"figures written to {loss_png} and {boundary_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

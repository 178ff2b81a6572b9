"""Gradient descent on the book's function_2 from (-3, 4) (ch. 4.4.1).

With learning rate 0.1 and 100 steps the book reaches about
[-6.1e-10 8.1e-10], nearly the minimum (0, 0). It also shows what a bad
learning rate does: 10 diverges (about [-2.58983747e+13 -1.29524862e+12]),
1e-10 hardly moves ([-2.99999994 3.99999992]). The figure is the path
(figure 4-10)::

    python examples/gradient_method.py                   # writes gradient_method.png
    python examples/gradient_method.py --lr 10
    python examples/gradient_method.py --lr 1e-10 --steps 100 --backend cupy

Runs in float64 on the chosen backend, as the book's np.array([-3.0, 4.0]).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

# The script beside this one (Python puts a script's folder on sys.path); the
# book's gradient_method.py imports from its gradient_2d.py too.
from gradient_2d import function_2

import xpnn
from xpnn.gradient import gradient_descent
from xpnn.plot import plot_descent_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument(
        "--lr",
        type=float,
        default=0.1,
        help="learning rate (default: %(default)s; book: 0.1, 10, 1e-10)",
    )
    p.add_argument("--steps", type=int, default=100, help="steps (default: %(default)s; book: 100)")
    p.add_argument(
        "--init",
        type=float,
        nargs=2,
        default=[-3.0, 4.0],
        metavar=("X0", "X1"),
        help="starting point (default: %(default)s; book: -3 4)",
    )
    p.add_argument(
        "--out",
        default="gradient_method.png",
        help="figure file, .png, .svg or .pdf (default: %(default)s)",
    )
    args = p.parse_args(argv)
    if args.steps <= 0:
        p.error("--steps must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with xpnn.use_backend(args.backend) if args.backend else contextlib.nullcontext():
        init_x = xpnn.asarray(args.init, dtype="float64")
        x, path = gradient_descent(
            function_2, init_x, lr=args.lr, step_num=args.steps, return_path=True
        )
        print(xpnn.to_numpy(x))
        plot_descent_path(path, args.out, f=function_2)
    print(f"figure written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

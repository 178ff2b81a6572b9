"""Numerical differentiation of the book's function_1 and its tangents (ch. 4.3.2-4.3.3).

f(x) = 0.01 x^2 + 0.1 x. The book prints the central differences at x = 5
and x = 10 (0.1999999999990898 and 0.2999999999986347; the exact slopes are
0.2 and 0.3) and draws f with its tangent lines (figure 4-7)::

    python examples/gradient_1d.py                       # writes gradient_1d.png
    python examples/gradient_1d.py --at 2 15 --out tangents.svg
    python examples/gradient_1d.py --backend cupy        # the curve computed on the GPU
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

import xpnn
from xpnn.gradient import numerical_diff
from xpnn.plot import plot_tangents


def function_1(x: Any) -> Any:
    """The book's f(x) = 0.01 x^2 + 0.1 x, for a number or an array of any backend."""
    return 0.01 * x**2 + 0.1 * x


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument(
        "--at",
        type=float,
        nargs="+",
        default=[5.0, 10.0],
        help="points (default: %(default)s; book: 5 10)",
    )
    p.add_argument(
        "--out",
        default="gradient_1d.png",
        help="figure file, .png, .svg or .pdf (default: %(default)s)",
    )
    return p.parse_args(argv)


def slopes(points: list[float]) -> list[float]:
    """numerical_diff of function_1 at each point.

    Plain Python floats, as in the book: the printed digits (the rounding
    error of h = 1e-4) are those of float64 arithmetic, on every backend.
    """
    return [numerical_diff(function_1, x) for x in points]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for slope in slopes(args.at):
        print(slope)
    with xpnn.use_backend(args.backend) if args.backend else contextlib.nullcontext():
        # The figure's curve is evaluated on the backend: the host grid goes
        # there in float64 and plot_tangents brings the values back.
        plot_tangents(lambda x: function_1(xpnn.asarray(x, dtype="float64")), args.at, args.out)
    print(f"figure written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Gradients of the book's function_2 by central differences (ch. 4.4).

f(x0, x1) = x0^2 + x1^2. The book prints its numerical gradient at (3, 4),
(0, 2) and (3, 0) -- [6. 8.], [0. 4.] and [6. 0.] -- and draws the arrows of
minus the gradient over the plane (figure 4-9): they all point at the minimum::

    python examples/gradient_2d.py                       # writes gradient_2d.png
    python examples/gradient_2d.py --backend cupy --out field.svg

The points live on the chosen backend in float64; numbers come to the host
(xpnn.to_numpy) only to be printed or drawn.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

import xpnn
from xpnn.gradient import numerical_gradient
from xpnn.plot import plot_gradient_field

#: The points of the book's examples.
BOOK_POINTS = ([3.0, 4.0], [0.0, 2.0], [3.0, 0.0])


def function_2(x: Any) -> Any:
    """The book's x0^2 + x1^2: of a point ``(2,)`` -> 0-d, of each row of ``(N, 2)`` -> ``(N,)``."""
    xp = xpnn.get_namespace(x)
    return xp.sum(x**2, axis=-1)


def gradients_at(points: Any) -> Any:
    """The numerical gradient of function_2 at each row of ``points`` ``(N, 2)``.

    The book's trick: the points are independent, so the derivative of
    sum_i f(p_i) with respect to p_i is the gradient of f at p_i, and one
    numerical_gradient over the whole array gives all N gradients, on the
    array's backend.
    """
    xp = xpnn.get_namespace(points)
    return numerical_gradient(lambda p: xp.sum(function_2(p)), points)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument(
        "--out",
        default="gradient_2d.png",
        help="figure file, .png, .svg or .pdf (default: %(default)s)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with xpnn.use_backend(args.backend) if args.backend else contextlib.nullcontext():
        for point in BOOK_POINTS:
            # float64, as the book's np.array([3.0, 4.0]): h = 1e-4 is too
            # small a step for float32.
            x = xpnn.asarray(point, dtype="float64")
            print(xpnn.to_numpy(numerical_gradient(function_2, x)))
        plot_gradient_field(lambda p: gradients_at(xpnn.asarray(p, dtype="float64")), args.out)
    print(f"figure written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

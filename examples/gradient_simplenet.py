"""The gradient of a network's loss with respect to its weights (ch. 4.4.2).

The book's simpleNet: one 2x3 weight matrix W, input x = [0.6, 0.9], label
t = [0, 0, 1]. It prints W, the scores, the predicted class, the loss and
dW = the numerical gradient of the loss with respect to W::

    python examples/gradient_simplenet.py --book-weights     # the book's W and numbers
    python examples/gradient_simplenet.py --seed 3 --backend cupy

The book's W is random; ``--book-weights`` uses the W the book printed, so
the numbers can be compared with the book's. They agree to about 1e-7, not
to every digit: the book's printed W is rounded to 8 decimals, and its
printed loss (0.92806853663411326) and dW were evidently computed without
the 1e-7 that its own cross_entropy_error adds inside the log (xpnn, like
the book's code, adds it): the loss comes out 0.9280682857864075.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import xpnn
from xpnn.gradient import numerical_gradient

#: The W the book printed (its simpleNet draws W at random).
BOOK_W = [[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument("--book-weights", action="store_true", help="use the W printed in the book")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the random W (default: %(default)s)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with xpnn.use_backend(args.backend) if args.backend else contextlib.nullcontext():
        # float64 throughout: the central difference with h = 1e-4 needs it.
        net = xpnn.SimpleNet(seed=args.seed, dtype="float64")
        if args.book_weights:
            net.W = xpnn.asarray(BOOK_W, dtype="float64")
        xp = xpnn.get_namespace(net.W)
        print(xpnn.to_numpy(net.W))

        x = xpnn.asarray([0.6, 0.9], dtype="float64")
        p = net.predict(x)
        print(xpnn.to_numpy(p))
        print(int(xpnn.to_numpy(xp.argmax(p))))

        t = xpnn.asarray([0, 0, 1])
        print(float(xpnn.to_numpy(net.loss(x, t))))

        # The book's idiom: f ignores its argument; numerical_gradient moves
        # net.W in place and the loss reads it through the net.
        f = lambda w: net.loss(x, t)  # noqa: E731
        dW = numerical_gradient(f, net.W)
        print(xpnn.to_numpy(dW))
    return 0


if __name__ == "__main__":
    sys.exit(main())

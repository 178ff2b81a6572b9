"""The gradient of a network's loss with respect to its weights (ch. 4.4.2).

The book's simpleNet: one 2x3 weight matrix W, input x = [0.6, 0.9], label
t = [0, 0, 1]. It prints W, the scores, the predicted class, the loss and
dW = the numerical gradient of the loss with respect to W. The figure shows
the softmax probabilities of the three classes beside dW as a heat map::

    python examples/gradient_simplenet.py                    # writes gradient_simplenet.png
    python examples/gradient_simplenet.py --book-weights     # the book's W and numbers
    python examples/gradient_simplenet.py --seed 3 --backend cupy --out simplenet.svg

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
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import xpnn
from xpnn.functions import softmax
from xpnn.gradient import numerical_gradient
from xpnn.plot import show_or_save

#: The W the book printed (its simpleNet draws W at random).
BOOK_W = [[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument("--book-weights", action="store_true", help="use the W printed in the book")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the random W (default: %(default)s)"
    )
    p.add_argument(
        "--out",
        default="gradient_simplenet.png",
        help="figure file, .png, .svg or .pdf (default: %(default)s)",
    )
    return p.parse_args(argv)


def draw(probs: np.ndarray, label: int, loss: float, dW: np.ndarray) -> Figure:
    """The class probabilities as bars (the label's in another colour) and dW as a heat map."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_p, ax_w = fig.subplots(1, 2)
    classes = np.arange(probs.size)
    ax_p.bar(classes, probs, color=["C2" if c == label else "C0" for c in classes])
    ax_p.set(xticks=classes, xlabel="class", ylabel="softmax probability", ylim=(0, 1))
    ax_p.set_title(f"label: class {label}, loss {loss:.4f}")
    limit = float(np.abs(dW).max()) or 1.0  # a diverging scale centred on 0
    image = ax_w.imshow(dW, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (i, j), value in np.ndenumerate(dW):
        dark = abs(value) > 0.6 * limit
        ax_w.text(j, i, f"{value:+.3f}", ha="center", va="center", color="w" if dark else "k")
    ax_w.set(xticks=range(dW.shape[1]), yticks=range(dW.shape[0]))
    ax_w.set(xlabel="W column (class)", ylabel="W row (input)")
    ax_w.set_title("dW: W -= lr * dW raises the label's score")
    fig.colorbar(image, ax=ax_w)
    return fig


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

        probs = xpnn.to_numpy(softmax(p))
        label = int(xpnn.to_numpy(xp.argmax(t)))
        loss = float(xpnn.to_numpy(net.loss(x, t)))
    out = show_or_save(draw(probs, label, loss, xpnn.to_numpy(dW)), Path(args.out))
    print(f"figure written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

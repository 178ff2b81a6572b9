"""Compare SGD, Momentum, AdaGrad and Adam on MNIST (ch. 6.1.8, the book's figure 6-9).

The book's ``ch06/optimizer_compare_mnist.py``: four MultiLayerNet(784, [100,
100, 100, 100], 10) (ReLU, He initialisation), one per optimizer with its
default hyper-parameters, trained on the same random mini-batches of 128 for
2,000 iterations; the loss of each batch after the update is recorded and
printed every 100 iterations. The four nets start from the same weights
(``--seed``); the data are the MNIST sample shipped with xpnn unless
``--data-dir`` names the full MNIST::

    python examples/optimizer_compare_mnist.py     # writes optimizer_compare_mnist.png
    python examples/optimizer_compare_mnist.py --backend cupy --iters 500

SGD is the slowest; Momentum, AdaGrad and Adam drive the loss down much faster.
"""

from __future__ import annotations

import sys
import time

import _ch6

import xpnn
from xpnn.models.multilayer import MultiLayerNet
from xpnn.optimizers import SGD, AdaGrad, Adam, Momentum

#: The book's sizes, and those of --quick.
FULL = {"iters": 2000, "batch_size": 128}
QUICK = {"iters": 150, "batch_size": 32}

#: Iterations between printed losses (the book's).
PRINT_EVERY = 100

MARKERS = {"SGD": "o", "Momentum": "x", "AdaGrad": "s", "Adam": "D"}


def parse_args(argv: list[str] | None = None):
    p = _ch6.parser(__doc__, "optimizer_compare_mnist.png")
    p.add_argument("--iters", type=int, help="iterations (default: 2000; --quick: 150)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: 128; --quick: 32)")
    return _ch6.finish(p, argv, FULL, QUICK)


def train(args) -> dict[str, list[float]]:
    """Run the experiment on the active backend; returns each optimizer's batch losses."""
    (x_train, t_train), _ = _ch6.load_data(args)
    optimizers = {"SGD": SGD(), "Momentum": Momentum(), "AdaGrad": AdaGrad(), "Adam": Adam()}
    networks = {}
    train_loss: dict[str, list] = {}
    for key in optimizers:
        networks[key] = MultiLayerNet(
            input_size=784,
            hidden_size_list=[100, 100, 100, 100],
            output_size=10,
            seed=args.seed,
            dtype=args.dtype,
        )
        train_loss[key] = []  # 0-d device arrays: all read at the end

    batches = _ch6.batches(xpnn.default_rng(args.seed + 1), x_train, t_train, args.batch_size)
    for i in range(args.iters):
        x_batch, t_batch = next(batches)
        for key in optimizers:
            grads = networks[key].gradient(x_batch, t_batch)
            optimizers[key].update(networks[key].params, grads)
            # The book's loss() in test mode, left on the device (loss() reads it).
            loss = networks[key].forward(x_batch, t_batch, train_flg=False)
            train_loss[key].append(loss)

        if i % PRINT_EVERY == 0:
            print("===========" + "iteration:" + str(i) + "===========")
            for key in optimizers:
                print(key + ":" + str(_ch6.to_float(train_loss[key][-1])))
    return {key: _ch6.to_floats(losses) for key, losses in train_loss.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with _ch6.backend(args):
        print(
            f"backend {xpnn.get_backend().spec}, {args.dtype}, MultiLayerNet(784, [100] * 4, 10), "
            f"batch {args.batch_size}, {args.iters} iterations"
        )
        start = time.perf_counter()
        losses = train(args)
        wall = time.perf_counter() - start
    _ch6.print_final_losses(losses, PRINT_EVERY)
    print(f"wall time {wall:.1f} s")
    title = "optimizers on MNIST: MultiLayerNet(784, [100] * 4, 10)"
    _ch6.save(_ch6.loss_figure(losses, MARKERS, 1.0, title), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

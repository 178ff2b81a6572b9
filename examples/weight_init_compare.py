"""Compare weight initialisations: std 0.01, Xavier and He (ch. 6.2.4, figure 6-15).

The book's ``ch06/weight_init_compare.py``: three MultiLayerNet(784, [100,
100, 100, 100], 10) with ReLU, whose weights are drawn with standard deviation
0.01, Xavier's sqrt(1/n) (``'sigmoid'``) and He's sqrt(2/n) (``'relu'``),
trained by SGD (lr 0.01) on the same random mini-batches of 128 for 2,000
iterations; the loss of each batch after the update is printed every 100
iterations. The three nets draw the same standard normal numbers (``--seed``),
scaled differently; the data are the MNIST sample shipped with xpnn unless
``--data-dir`` names the full MNIST::

    python examples/weight_init_compare.py          # writes weight_init_compare.png
    python examples/weight_init_compare.py --backend torch:cuda

With std 0.01 the signal vanishes through the layers and the net does not learn
(the loss stays at ln 10 = 2.30); He's initialisation learns fastest with ReLU.
"""

from __future__ import annotations

import sys
import time

import _ch6

import xpnn
from xpnn.models.multilayer import MultiLayerNet
from xpnn.optimizers import SGD

#: The book's sizes, and those of --quick.
FULL = {"iters": 2000, "batch_size": 128}
QUICK = {"iters": 150, "batch_size": 32}

#: Iterations between printed losses (the book's).
PRINT_EVERY = 100

#: The book's runs: name -> weight_init_std.
WEIGHT_INIT_TYPES = {"std=0.01": 0.01, "Xavier": "sigmoid", "He": "relu"}

MARKERS = {"std=0.01": "o", "Xavier": "s", "He": "D"}


def parse_args(argv: list[str] | None = None):
    p = _ch6.parser(__doc__, "weight_init_compare.png")
    p.add_argument("--iters", type=int, help="iterations (default: 2000; --quick: 150)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: 128; --quick: 32)")
    return _ch6.finish(p, argv, FULL, QUICK)


def train(args) -> dict[str, list[float]]:
    """Run the experiment on the active backend; returns each initialisation's batch losses."""
    (x_train, t_train), _ = _ch6.load_data(args)
    optimizer = SGD(lr=0.01)
    networks = {}
    train_loss: dict[str, list] = {}
    for key, weight_type in WEIGHT_INIT_TYPES.items():
        networks[key] = MultiLayerNet(
            input_size=784,
            hidden_size_list=[100, 100, 100, 100],
            output_size=10,
            weight_init_std=weight_type,
            seed=args.seed,
            dtype=args.dtype,
        )
        train_loss[key] = []  # 0-d device arrays: all read at the end

    batches = _ch6.batches(xpnn.default_rng(args.seed + 1), x_train, t_train, args.batch_size)
    for i in range(args.iters):
        x_batch, t_batch = next(batches)
        for key in WEIGHT_INIT_TYPES:
            grads = networks[key].gradient(x_batch, t_batch)
            optimizer.update(networks[key].params, grads)
            # The book's loss() in test mode, left on the device (loss() reads it).
            loss = networks[key].forward(x_batch, t_batch, train_flg=False)
            train_loss[key].append(loss)

        if i % PRINT_EVERY == 0:
            print("===========" + "iteration:" + str(i) + "===========")
            for key in WEIGHT_INIT_TYPES:
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
    title = "weight initialisation: MultiLayerNet(784, [100] * 4, 10), ReLU, SGD"
    _ch6.save(_ch6.loss_figure(losses, MARKERS, 2.5, title), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The test digits DeepConvNet gets wrong, with what it took them for (ch. 8).

The book's ``ch08/misclassified_mnist.py``: the book's chapter-8 ``DeepConvNet``
(3x3 convolutions 16-16-pool-32-32-pool-64-64-pool, Affine 50, Dropout 0.5,
Affine 10, He's initial weights; :mod:`xpnn.models.convnet`) classifies the test
images in batches of 100 (test mode: no Dropout), prints the test accuracy and
the first 20 misclassified digits as ``{view index: (label, inference)}``, and
draws them. The book loads weights it trained for hours; xpnn ships none, so
this script trains the net here for a few epochs (the book's
``train_deepnet.py`` settings: Adam, lr 0.001, mini-batches of 100, with the
book's ``Trainer`` form of ``xpnn.Trainer``), or loads a model saved with
``xpnn.io.save`` (``--model FILE``, e.g. from ``--save`` of an earlier run or
``xpnn train --model deepconvnet``). The data are the MNIST sample shipped with
xpnn (4,000 training and 1,000 test images) unless ``--data-dir`` names the
full MNIST::

    python examples/misclassified_mnist.py                   # 3 epochs, a few minutes
    python examples/misclassified_mnist.py --epochs 10 --save deep.npz --backend cupy
    python examples/misclassified_mnist.py --model deep.npz  # no training
    python examples/misclassified_mnist.py --quick           # seconds
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import _ch6
import numpy as np

import xpnn
from xpnn import Trainer
from xpnn.io import load, save
from xpnn.models.convnet import DeepConvNet
from xpnn.plot import misclassified_figure

#: A short training run of the book's net (the book trains 20 epochs on all of
#: MNIST), and the sizes of --quick.
FULL = {"epochs": 3, "train_size": 60000, "batch_size": 100, "test_size": 10000}
QUICK = {"epochs": 1, "train_size": 500, "batch_size": 100, "test_size": 200}

LEARNING_RATE = 0.001
EVALUATE_SAMPLES = 1000  # the book's evaluate_sample_num_per_epoch
MAX_VIEW = 20  # the book's max_view
BATCH = 100  # the book's batch_size of the test loop


def parse_args(argv: list[str] | None = None):
    p = _ch6.parser(__doc__, "misclassified_mnist.png")
    p.add_argument("--epochs", type=int, help="epochs of training (default: 3; --quick: 1)")
    p.add_argument(
        "--train-size",
        type=int,
        help="training images used, at most all of them (default: all; --quick: 500)",
    )
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: 100)")
    p.add_argument(
        "--test-size",
        type=int,
        help="test images classified, at most all of them (default: all; --quick: 200)",
    )
    p.add_argument(
        "--model",
        metavar="FILE",
        help="classify with this saved model (xpnn.io.save, .npz) instead of training one",
    )
    p.add_argument(
        "--save", metavar="FILE", help="save the trained network (xpnn.io.save, .npz) there"
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="not the Trainer's lines (a loss per iteration): only the results",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (none with --quick either)"
    )
    args = _ch6.finish(p, argv, FULL, QUICK)
    if args.model is not None and not Path(args.model).is_file():
        p.error(f"--model {args.model}: no such file")
    if args.model is not None and args.save is not None:
        p.error("--save saves a network trained here; with --model nothing is trained")
    if args.save is not None and Path(args.save).is_dir():
        p.error(f"--save {args.save} is a folder; give a file name")
    return args


def load_images(args):
    """MNIST as the book's ``load_mnist(flatten=False)``: ``(N, 1, 28, 28)`` images."""
    (x_train, t_train), (x_test, t_test) = _ch6.load_data(args)
    xp = xpnn.get_namespace(x_train)
    n = min(args.train_size, x_train.shape[0])  # strict arrays refuse a slice past the end
    x_train, t_train = xp.reshape(x_train[:n, ...], (-1, 1, 28, 28)), t_train[:n, ...]
    m = min(args.test_size, x_test.shape[0])
    x_test, t_test = xp.reshape(x_test[:m, ...], (-1, 1, 28, 28)), t_test[:m, ...]
    return (x_train, t_train), (x_test, t_test)


def train(args, data) -> DeepConvNet:
    """The book's ``train_deepnet.py``, shortened: returns the trained net."""
    (x_train, t_train), (x_test, t_test) = data
    network = DeepConvNet(seed=args.seed, dtype=args.dtype)
    trainer = Trainer(
        network,
        x_train,
        t_train,
        x_test,
        t_test,
        epochs=args.epochs,
        mini_batch_size=args.batch_size,
        optimizer="Adam",
        optimizer_param={"lr": LEARNING_RATE},
        evaluate_sample_num_per_epoch=min(EVALUATE_SAMPLES, x_train.shape[0], x_test.shape[0]),
        verbose=not args.quiet,
    )
    trainer.train(seed=args.seed + 1, progress=not (args.quick or args.no_progress))
    return network


def classify(network, x_test) -> np.ndarray:
    """The predicted class of each test image, in batches of 100, test mode; on the host."""
    xp = xpnn.get_namespace(x_test)
    predicted = []
    n = x_test.shape[0]
    for start in range(0, n, BATCH):
        stop = min(start + BATCH, n)  # strict arrays refuse a slice past the end
        y = network.predict(x_test[start:stop, ...], train_flg=False)
        predicted.append(xp.argmax(y, axis=1))
    return xpnn.to_numpy(xp.concat(predicted))  # one host read


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with _ch6.backend(args):
        (train_data, (x_test, t_test)) = data = load_images(args)
        if args.model:
            network = load(args.model)
            print(f"loaded {type(network).__name__} from {args.model}")
            xp = xpnn.get_namespace(x_test)
            x_test = xp.astype(x_test, network.params["W1"].dtype)
        else:
            print(
                f"backend {xpnn.get_backend().spec}, {args.dtype}, DeepConvNet, Adam lr "
                f"{LEARNING_RATE}, {train_data[0].shape[0]} training images, "
                f"batch {args.batch_size}, {args.epochs} epochs"
            )
            start = time.perf_counter()
            network = train(args, data)
            print(f"trained in {time.perf_counter() - start:.1f} s")
            if args.save:
                print(f"Saved Network Parameters! ({save(network, args.save)})")
        print("calculating test accuracy ... ")
        classified_ids = classify(network, x_test)
        labels = xpnn.to_numpy(t_test)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    acc = float(np.mean(classified_ids == labels))
    print("test accuracy:" + str(acc))
    wrong = np.flatnonzero(classified_ids != labels)[:MAX_VIEW]
    mis_pairs = {k + 1: (int(labels[i]), int(classified_ids[i])) for k, i in enumerate(wrong)}
    print("======= misclassified result =======")
    print("{view index: (label, inference), ...}")
    print(mis_pairs)
    fig = misclassified_figure(xpnn.to_numpy(x_test), labels, classified_ids, max_view=MAX_VIEW)
    _ch6.save(fig, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

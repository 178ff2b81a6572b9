"""The ``xpnn`` command line.

* ``xpnn info``: which backends can run here, with versions and GPUs.
* ``xpnn train``: train the book's networks (spiral by default, or MNIST) on
  any backend, print progress and the final accuracy, plot and save.
* ``xpnn gradcheck``: compare backpropagation with numerical gradients.

Bad option values end with a one-line error and exit status 2. Training that
fails numerically (a NaN or infinite loss, or a loss that diverges far above
the untrained one: see ``Trainer.fit``'s ``on_nan``) ends with a one-line error
and advice (a smaller ``--lr``, ``--max-grad``) and exit status 3.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

#: Exit status of ``xpnn train`` when training diverged or the loss became NaN.
EXIT_DIVERGED = 3


def _format_info(data: dict[str, Any]) -> str:
    lines = [
        f"xpnn {data['xpnn']} on Python {data['python']} ({data['platform']})",
        "",
        "packages:",
    ]
    for name, version in data["packages"].items():
        lines.append(f"  {name:<18} {version or 'not installed'}")
    lines += ["", "backends (probed by allocating an array):"]
    for spec, reason in data["backends"].items():
        mark = "yes" if reason is None else f"no  ({reason})"
        lines.append(f"  {spec:<18} {mark}")
    lines += ["", f"active backend: {data['active']}"]
    if data["gpus"]:
        lines += ["", "GPUs:"]
        for gpu in data["gpus"]:
            total = gpu["memory_total_bytes"] / 2**30
            free = gpu["memory_free_bytes"] / 2**30
            lines.append(f"  {gpu['index']}: {gpu['name']}, {total:.1f} GiB ({free:.1f} GiB free)")
    else:
        lines += ["", "GPUs: none usable"]
    return "\n".join(lines)


def _cmd_info(args: argparse.Namespace) -> int:
    from xpnn.backend import info

    data = info()
    print(json.dumps(data, indent=2) if args.json else _format_info(data))
    return 0


# ------------------------------------------------------------------- train

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")

#: The book's settings: vol. 2 ch. 1 for the spiral, vol. 1 ch. 4 for MNIST.
DATASET_DEFAULTS = {
    "spiral": {"hidden": 10, "lr": 1.0, "batch_size": 30, "epochs": 300, "eval_interval": 10},
    "mnist": {"hidden": 50, "lr": 0.1, "batch_size": 100, "iters": 10_000, "eval_interval": 100},
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _make_optimizer(name: str, lr: float) -> Any:
    import xpnn.optimizers as opt

    classes = {
        "sgd": opt.SGD,
        "momentum": opt.Momentum,
        "nesterov": opt.Nesterov,
        "adagrad": opt.AdaGrad,
        "rmsprop": opt.RMSprop,
        "adam": opt.Adam,
    }
    return classes[name](lr=lr)


def _load_data(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, int]:
    """(x_train, t_train, x_test, t_test, classes) on the active backend."""
    if args.dataset == "spiral":
        from xpnn.datasets import load_spiral

        x, t = load_spiral(dtype=args.dtype)
        return x, t, None, None, 3
    from xpnn.datasets import load_mnist

    (x, t), (x_test, t_test) = load_mnist(
        data_dir=args.data_dir,
        download=not args.no_download,
        dtype=args.dtype,
        progress=not args.quiet,
    )
    return x, t, x_test, t_test, 10


def _cmd_train(args: argparse.Namespace) -> int:
    import xpnn

    defaults = DATASET_DEFAULTS[args.dataset]
    for key, value in defaults.items():
        if getattr(args, key, None) is None and key != "iters":
            setattr(args, key, value)
    if args.backend:
        xpnn.set_backend(args.backend, dtype=args.dtype)
    backend = xpnn.get_backend()
    if args.cuda_graph and backend.name != "cupy":  # before loading (maybe downloading) data
        raise ValueError(f"--cuda-graph needs --backend cupy, not {backend.spec}")
    x, t, x_test, t_test, classes = _load_data(args)
    n = x.shape[0]
    if args.batch_size > n:
        raise ValueError(f"--batch-size {args.batch_size} is larger than the data set ({n})")
    iters_per_epoch = n // args.batch_size
    if args.epochs is None:  # MNIST is counted in iterations, as in ch. 4
        iters = args.iters or defaults.get("iters", iters_per_epoch)
        args.epochs = max(1, math.ceil(iters / iters_per_epoch))
    if args.dataset == "spiral":
        model = xpnn.LayeredTwoLayerNet(2, args.hidden, classes, seed=args.seed, dtype=args.dtype)
    else:
        model = xpnn.TwoLayerNet(x.shape[1], args.hidden, classes, seed=args.seed, dtype=args.dtype)
    optimizer = _make_optimizer(args.optimizer, args.lr)
    say = (lambda *a, **k: None) if args.quiet else print
    say(
        f"xpnn train: {args.dataset} ({n} samples) on {backend.spec}, {args.dtype}, "
        f"{type(model).__name__}(hidden={args.hidden}), {args.optimizer} lr={args.lr}, "
        f"batch {args.batch_size}, {args.epochs} epochs x {iters_per_epoch} iterations"
        + (f", gradients clipped to norm {args.max_grad}" if args.max_grad else "")
    )
    trainer = xpnn.Trainer(model, optimizer)
    start = time.perf_counter()
    validation = (x_test, t_test) if x_test is not None else None
    trainer.fit(
        x,
        t,
        max_epoch=args.epochs,
        batch_size=args.batch_size,
        max_grad=args.max_grad,
        eval_interval=args.eval_interval,
        validation_data=validation,
        seed=args.seed,
        progress=not args.quiet,
        verbose=not args.quiet,
        cuda_graph=args.cuda_graph,
    )
    wall = time.perf_counter() - start
    train_acc = float(xpnn.to_numpy(model.accuracy(x, t)))
    summary = f"final loss {trainer.loss_list[-1]:.4f} | train accuracy {train_acc:.4f}"
    if validation is not None:
        summary += f" | test accuracy {trainer.test_acc_list[-1]:.4f}"
    print(f"{summary} | {wall:.1f} s")
    if args.plot:
        print(f"figure: {trainer.plot(args.plot)}")
    if args.save:
        from xpnn.io import save

        print(f"parameters: {save(model, args.save)}")
    return 0


# --------------------------------------------------------------- gradcheck


def _cmd_gradcheck(args: argparse.Namespace) -> int:
    import numpy as np

    import xpnn

    if args.backend:
        xpnn.set_backend(args.backend)
    # Numerical gradients need float64: in float32 the central difference
    # with h = 1e-4 loses most of its digits.
    with xpnn.use_backend(xpnn.get_backend().spec, dtype="float64"):
        net = xpnn.TwoLayerNet(
            args.input_size, args.hidden, args.classes, weight_init_std=1.0, seed=args.seed
        )
        rng = xpnn.default_rng(args.seed + 1)
        x = rng.standard_normal((args.batch, args.input_size))
        t = rng.integers(0, args.classes, size=args.batch)
        numeric = {k: xpnn.to_numpy(v) for k, v in net.numerical_gradient(x, t).items()}
        backprop = {k: xpnn.to_numpy(v) for k, v in net.gradient(x, t).items()}
    print(
        f"gradcheck on {xpnn.get_backend().spec}, float64: TwoLayerNet("
        f"{args.input_size}, {args.hidden}, {args.classes}), batch {args.batch}"
    )
    print(f"{'param':<6} {'shape':<10} {'max abs diff':>14} {'rel diff':>10}")
    worst = 0.0
    for key in net.KEYS:
        a, b = backprop[key], numeric[key]
        diff = float(np.max(np.abs(a - b)))
        rel = diff / max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-12)
        worst = max(worst, rel)
        print(f"{key:<6} {a.shape!s:<10} {diff:>14.3e} {rel:>10.2e}")
    ok = worst <= args.tol
    print(
        f"{'OK' if ok else 'FAILED'}: largest relative difference {worst:.2e} "
        f"({'<=' if ok else '>'} tolerance {args.tol:g})"
    )
    return 0 if ok else 1


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line, not the whole usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_bench(args: argparse.Namespace) -> int:
    from xpnn.bench import CASES
    from xpnn.bench import main as bench_main

    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        raise ValueError(f"unknown case {unknown[0]!r}; valid: {', '.join(CASES)}")
    return bench_main(args.cases or None, json_path=args.json)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xpnn`` command."""
    from xpnn import __version__

    parser = _Parser(
        prog="xpnn",
        description="Neural networks of 'Deep Learning from Scratch' on CPU or GPU.",
    )
    parser.add_argument("--version", action="version", version=f"xpnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p_info = sub.add_parser("info", help="backends that can run here, versions, GPUs")
    p_info.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_info.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "train",
        help="train the book's two-layer net (spiral or MNIST)",
        description="Train the book's two-layer network. Defaults are the book's: "
        "spiral (vol. 2 ch. 1): hidden 10, SGD lr 1.0, batch 30, 300 epochs; "
        "mnist (vol. 1 ch. 4): 784-50-10, lr 0.1, batch 100, 10,000 iterations.",
    )
    p.add_argument("--dataset", choices=tuple(DATASET_DEFAULTS), default="spiral")
    p.add_argument(
        "--backend", help="numpy, cupy, cupy:1, torch:cuda, ... (default: XPNN_BACKEND, else numpy)"
    )
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--hidden", type=_positive_int, help="hidden units")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    p.add_argument("--lr", type=_positive_float, help="learning rate")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_int, help="epochs")
    length.add_argument("--iters", type=_positive_int, help="iterations (rounded up to epochs)")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--eval-interval", type=_positive_int, help="iterations between loss reports")
    p.add_argument(
        "--max-grad", type=_positive_float, help="clip the global gradient norm to this (e.g. 5)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights and shuffling")
    p.add_argument(
        "--data-dir", help="folder with the four MNIST .gz files (or where to download them)"
    )
    p.add_argument("--no-download", action="store_true", help="never download MNIST")
    p.add_argument("--plot", metavar="FILE", help="write the loss/accuracy figure")
    p.add_argument("--save", metavar="FILE", help="write the trained parameters (.npz)")
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="CuPy only: replay each iteration as a recorded CUDA graph (much faster on a GPU)",
    )
    p.set_defaults(func=_cmd_train)

    g = sub.add_parser("gradcheck", help="numerical vs backprop gradients of TwoLayerNet")
    g.add_argument("--backend", help="backend spec (default: XPNN_BACKEND, else numpy)")
    g.add_argument("--input-size", type=_positive_int, default=6)
    g.add_argument("--hidden", type=_positive_int, default=5)
    g.add_argument("--classes", type=_positive_int, default=3)
    g.add_argument("--batch", type=_positive_int, default=4)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--tol", type=_positive_float, default=1e-6, help="largest allowed relative difference"
    )
    g.set_defaults(func=_cmd_gradcheck)

    from xpnn.bench import CASES

    b = sub.add_parser("bench", help="benchmarks against the textbook code and PyTorch")
    b.add_argument(
        "cases", nargs="*", metavar="CASE", help=f"cases to run (default: all): {', '.join(CASES)}"
    )
    b.add_argument(
        "--json",
        default="bench.json",
        metavar="FILE",
        help="where to write the results (default: bench.json)",
    )
    b.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xpnn`` command; returns the exit status."""
    from xpnn.backend import BackendMismatchError, BackendUnavailableError
    from xpnn.datasets import DownloadError, IDXFormatError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FloatingPointError as exc:
        # Not a usage error: the run itself failed, and its options are the fix.
        advice = ""
        if args.command == "train":
            clip = f"a --max-grad below {args.max_grad:g}" if args.max_grad else "--max-grad 5"
            advice = f"; with xpnn train: a --lr below {args.lr:g}, or {clip}"
        print(f"xpnn {args.command}: error: {exc}{advice}", file=sys.stderr)
        return EXIT_DIVERGED
    except (
        BackendUnavailableError,
        DownloadError,
        IDXFormatError,
        FileNotFoundError,
        BackendMismatchError,
        ValueError,
    ) as exc:
        # Expected failures get one line, not a traceback.
        print(f"xpnn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xpnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

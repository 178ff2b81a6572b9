"""The ``xpnn`` command line.

* ``xpnn info``: which backends can run here, with versions and GPUs.
* ``xpnn train``: train the book's networks (spiral by default, the MNIST
  sample shipped with xpnn, or the full MNIST) on any backend, print progress
  and the final accuracy, save and plot.
* ``xpnn gradcheck``: compare backpropagation with numerical gradients.
* ``xpnn bench``: benchmarks against the textbook code and PyTorch.

Bad option values end with a one-line error and exit status 2, and so does
every file problem: ``xpnn train`` checks its output paths (``--plot``,
``--save``), ``--data-dir`` and the memory the run needs (:func:`estimate_memory`)
before it loads data or trains, and ``xpnn bench`` its ``--json`` before it
runs. At the end the model is written before the figure; if a write fails
anyway, one line says what failed and what was written (exit status 2).
Training that fails numerically (a NaN or infinite loss, or a loss that
diverges far above the untrained one: see ``Trainer.fit``'s ``on_nan``) ends
with a one-line error and advice (a smaller ``--lr``, ``--max-grad``) and exit
status 3.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xpnn.io import check_output_path

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

#: The book's settings: vol. 2 ch. 1 for the spiral, vol. 1 ch. 4 for MNIST
#: (and for its 5,000-digit sample shipped with xpnn).
DATASET_DEFAULTS = {
    "spiral": {"hidden": 10, "lr": 1.0, "batch_size": 30, "epochs": 300, "eval_interval": 10},
    "mnist5k": {"hidden": 50, "lr": 0.1, "batch_size": 100, "iters": 10_000, "eval_interval": 100},
    "mnist": {"hidden": 50, "lr": 0.1, "batch_size": 100, "iters": 10_000, "eval_interval": 100},
}

#: ``(train samples, test samples, input size, classes)`` of each data set
#: (for ``mnist``, the official files; a ``--data-dir`` may hold others).
DATASET_SHAPES = {
    "spiral": (300, 0, 2, 3),
    "mnist5k": (4000, 1000, 784, 10),
    "mnist": (60_000, 10_000, 784, 10),
}

#: Image formats of ``--plot`` (matplotlib picks the writer from the extension).
PLOT_FORMATS = (".png", ".svg", ".pdf")

#: Arrays of the optimizer's state per parameter array.
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2}

_SAMPLE_HINT = "or use --dataset mnist5k, the 5,000-digit MNIST sample shipped with xpnn"


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


# Checking paths before any work ------------------------------------------


def _check_train_paths(args: argparse.Namespace) -> None:
    """Every path of ``xpnn train``, checked before anything is loaded or trained."""
    if args.dataset != "mnist":
        for option, given in (
            ("--data-dir", args.data_dir is not None),
            ("--download", args.download),
            ("--no-download", args.no_download),
        ):
            if given:
                why = "it ships with xpnn" if args.dataset == "mnist5k" else "it is generated"
                raise ValueError(
                    f"{option} applies only to --dataset mnist, not {args.dataset} ({why})"
                )
    if args.plot is not None:
        check_output_path(args.plot, "--plot", PLOT_FORMATS, example="loss.png")
    if args.save is not None:
        check_output_path(args.save, "--save", example="net.npz", links=False)
    if args.plot and args.save and os.path.realpath(args.plot) == os.path.realpath(args.save):
        raise ValueError(f"--plot and --save name the same file ({args.save}); give two names")
    if args.data_dir is not None:
        _check_data_dir(args)
    elif args.dataset == "mnist":
        from xpnn.datasets.mnist import mnist_data_dir

        _check_cache(mnist_data_dir(), args.no_download)


def _check_data_dir(args: argparse.Namespace) -> None:
    """``--data-dir`` must be an existing folder; it holds MNIST or ``--download`` fills it."""
    from xpnn.datasets.mnist import FILES, _missing_files, mnist_data_dir

    directory = Path(args.data_dir).expanduser()
    if not args.data_dir or not directory.exists():
        raise ValueError(
            f"--data-dir {args.data_dir or repr('')} does not exist; check the path, or create the "
            "folder (mkdir) and add --download to download MNIST into it, or omit --data-dir "
            f"to use the cache folder {mnist_data_dir()}, {_SAMPLE_HINT}"
        )
    if not directory.is_dir():
        raise ValueError(
            f"--data-dir {args.data_dir} is a file, not a folder; give the folder that holds "
            f"the four MNIST files ({', '.join(FILES.values())})"
        )
    missing = _missing_files(directory)
    if not missing:
        return
    if not args.download:
        raise ValueError(
            f"--data-dir {args.data_dir} lacks {_count(missing)} MNIST files: "
            f"{', '.join(missing)}; add --download to download them into it (about 11 MB, "
            f"checked against the official SHA-256), copy them there, {_SAMPLE_HINT}"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"--data-dir {args.data_dir}: cannot download into it (permission denied)")


def _count(missing: Sequence[str]) -> str:
    return "all four" if len(missing) == 4 else f"{len(missing)} of the four"


def _check_cache(directory: Path, no_download: bool) -> None:
    """Without ``--data-dir``: the cache folder holds MNIST, or it can be downloaded there."""
    from xpnn.datasets.download import MIRRORS_ENV
    from xpnn.datasets.mnist import DATA_DIR_ENV, _missing_files

    missing = _missing_files(directory)
    if not missing:
        return
    if no_download:
        raise ValueError(
            f"MNIST is not in the cache folder {directory} (missing: {', '.join(missing)}) "
            "and --no-download forbids downloading it; drop --no-download to download it "
            "there (about 11 MB, checked against the official SHA-256), give --data-dir with "
            f"a folder that holds the files, {_SAMPLE_HINT}"
        )
    ancestor = directory.absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        problem = "is a file" if not ancestor.is_dir() else "is not writable"
        raise ValueError(
            f"cannot download MNIST into the cache folder {directory}: {ancestor} {problem}; "
            f"set {DATA_DIR_ENV} to a writable folder, or give --data-dir "
            f"(downloads honour {MIRRORS_ENV}), {_SAMPLE_HINT}"
        )


# Memory --------------------------------------------------------------------


def estimate_memory(
    input_size: int,
    hidden: int,
    classes: int,
    batch_size: int,
    *,
    optimizer: str = "sgd",
    dtype: str = "float32",
    n_train: int = 0,
    n_test: int = 0,
) -> dict[str, int]:
    """The bytes a two-layer net and its training run need, before allocating any.

    With ``P = input_size * hidden + hidden + hidden * classes + classes``
    parameters and ``b`` bytes per float (4 for float32, 8 for float64):

    * parameters, gradients: ``P * b`` each;
    * optimizer state: ``k * P * b``, ``k`` = 0 (sgd), 1 (momentum,
      nesterov, adagrad, rmsprop), 2 (adam);
    * initialization: ``max(input_size * hidden, hidden * classes) * 8``, the
      float64 normal draws of the largest weight on the host;
    * activations: the larger of one training step,
      ``batch_size * (2 * input_size + 4 * hidden + 4 * classes) * b``
      (each layer's input, output and gradient), and an accuracy pass over a
      whole split, ``max(n_train, n_test) * (2 * hidden + 2 * classes) * b``;
    * data: ``(n_train + n_test) * (input_size + classes) * b`` (images and
      one-hot-sized labels).

    An estimate, not a bound: the array library's own overhead is not
    counted.

    Returns:
        Bytes by part (``"parameters"``, ``"gradients"``,
        ``"optimizer state"``, ``"initialization"``, ``"activations"``,
        ``"data"``) and their ``"total"``.
    """
    item = {"float32": 4, "float64": 8}[dtype]
    params = input_size * hidden + hidden + hidden * classes + classes
    step = batch_size * (2 * input_size + 4 * hidden + 4 * classes)
    evaluation = max(n_train, n_test) * (2 * hidden + 2 * classes)
    parts = {
        "parameters": params * item,
        "gradients": params * item,
        "optimizer state": OPTIMIZER_STATE[optimizer] * params * item,
        "initialization": max(input_size * hidden, hidden * classes) * 8,
        "activations": max(step, evaluation) * item,
        "data": (n_train + n_test) * (input_size + classes) * item,
    }
    parts["total"] = sum(parts.values())
    return parts


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def host_memory_available() -> tuple[int | None, str]:
    """Bytes of host memory available now, and where the number comes from.

    ``MemAvailable`` of ``/proc/meminfo`` (else ``os.sysconf``'s available
    pages), lowered to what a cgroup v2 memory limit leaves
    (``/sys/fs/cgroup/memory.max`` less ``memory.current``). ``None`` when
    the system says nothing.
    """
    available, source = None, ""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available, source = int(line.split()[1]) * 1024, "MemAvailable"
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            source = "available physical pages"
        except (AttributeError, OSError, ValueError):
            return None, "unknown"
    limit = _read_int("/sys/fs/cgroup/memory.max")  # "max" (no limit) reads as None
    used = _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None and limit - used < available:
        available, source = max(limit - used, 0), "the cgroup memory limit"
    return available, f"on the host ({source})"


def memory_available(backend: Any) -> tuple[int | None, str]:
    """Bytes free where ``backend`` allocates (its GPU, else the host), and where."""
    if not backend.is_gpu:
        return host_memory_available()
    try:
        if backend.name == "cupy":
            import cupy

            with backend.device:
                free, _ = cupy.cuda.runtime.memGetInfo()
            free += cupy.get_default_memory_pool().free_bytes()  # cached, reusable
        else:
            import torch

            free, _ = torch.cuda.mem_get_info(backend.device)
            free += torch.cuda.memory_reserved(backend.device) - torch.cuda.memory_allocated(
                backend.device
            )
    except Exception as exc:  # whatever fails, there is no number: said so
        return None, f"unknown on {backend.spec} ({exc})"
    return int(free), f"free on {backend.spec}"


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def check_memory(
    parts: dict[str, int], available: int | None, where: str, fix: str = "a smaller model"
) -> None:
    """Refuse a run whose estimate (:func:`estimate_memory`) exceeds ``available``.

    Args:
        parts: The estimate.
        available: Bytes available (no check if None: the system did not say).
        where: Where they are available, for the message.
        fix: What makes the run smaller, for the message.

    Raises:
        MemoryError: One line: the estimate by part, what is available, and
            the fix.
    """
    if available is None or parts["total"] <= available:
        return
    detail = ", ".join(f"{k} {_size(v)}" for k, v in parts.items() if k != "total" and v)
    raise MemoryError(
        f"this run needs about {_size(parts['total'])} ({detail}), but only "
        f"{_size(available)} is available {where}; choose {fix}"
    )


# Running -------------------------------------------------------------------


def _load_data(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, int]:
    """(x_train, t_train, x_test, t_test, classes) on the active backend."""
    if args.dataset == "spiral":
        from xpnn.datasets import load_spiral

        x, t = load_spiral(dtype=args.dtype)
        return x, t, None, None, 3
    if args.dataset == "mnist5k":
        from xpnn.datasets import load_mnist5k

        (x, t), (x_test, t_test) = load_mnist5k(dtype=args.dtype)
        return x, t, x_test, t_test, 10
    from xpnn.datasets import DownloadError, load_mnist
    from xpnn.datasets.mnist import mnist_data_dir

    directory = mnist_data_dir(args.data_dir)
    try:
        (x, t), (x_test, t_test) = load_mnist(
            data_dir=directory,
            download=not args.no_download,
            dtype=args.dtype,
            progress=not args.quiet,
        )
    except DownloadError as exc:  # the hint, in the command line's words
        exc.hint = (
            f"Put the four files in {directory} by hand, give --data-dir with a folder that "
            f"holds them, list mirrors you can reach in XPNN_MNIST_MIRRORS, {_SAMPLE_HINT}."
        )
        raise
    return x, t, x_test, t_test, 10


def _write_results(args: argparse.Namespace, model: Any, trainer: Any) -> int:
    """Write the model, then the figure; a failure is one line and exit 2, the rest kept."""
    saved, failures = None, []
    if args.save:
        from xpnn.io import save

        try:
            saved = save(model, args.save)
            print(f"parameters: {saved}")
        except (OSError, ValueError) as exc:
            failures.append(f"--save {args.save}: {exc}")
    if args.plot:
        try:
            print(f"figure: {trainer.plot(args.plot)}")
        except (OSError, ValueError) as exc:
            failures.append(f"--plot {args.plot}: {exc}")
    if not failures:
        return 0
    kept = (
        f"the parameters were saved to {saved}"
        if saved
        else "the trained parameters were not saved"
        if args.save
        else "nothing else was to be written"
    )
    print(
        f"xpnn train: error: training finished, but writing failed: {'; '.join(failures)}; {kept}",
        file=sys.stderr,
    )
    return 2


def _cmd_train(args: argparse.Namespace) -> int:
    import xpnn

    defaults = DATASET_DEFAULTS[args.dataset]
    for key, value in defaults.items():
        if getattr(args, key, None) is None and key != "iters":
            setattr(args, key, value)
    _check_train_paths(args)  # before any backend, download or training
    if args.backend:
        xpnn.set_backend(args.backend, dtype=args.dtype)
    backend = xpnn.get_backend()
    if args.cuda_graph and backend.name != "cupy":  # before loading (maybe downloading) data
        raise ValueError(f"--cuda-graph needs --backend cupy, not {backend.spec}")
    n_train, n_test, input_size, classes = DATASET_SHAPES[args.dataset]
    if args.data_dir is not None:  # unknown until read: count the model and a batch only
        n_train = n_test = 0
    elif args.batch_size > n_train:
        raise ValueError(f"--batch-size {args.batch_size} is larger than the data set ({n_train})")
    available, where = memory_available(backend)

    def check(n: int, n_test: int) -> None:
        parts = estimate_memory(
            input_size,
            args.hidden,
            classes,
            args.batch_size,
            optimizer=args.optimizer,
            dtype=args.dtype,
            n_train=n,
            n_test=n_test,
        )
        fixes = ["a smaller --hidden", "--batch-size"]
        if args.dtype != "float32":
            fixes.append("--dtype float32")
        if OPTIMIZER_STATE[args.optimizer]:
            fixes.append("--optimizer sgd")
        check_memory(parts, available, where, f"{', '.join(fixes[:-1])} or {fixes[-1]}")

    check(n_train, n_test)  # before loading (maybe downloading) data
    params = input_size * args.hidden + args.hidden + args.hidden * classes + classes
    most = getattr(xpnn.io, "MAX_ELEMENTS", None)  # what xpnn.io.save writes and load reads
    if args.save and most is not None and params > most:
        raise ValueError(
            f"--save: a model of {params} parameters is more than xpnn.io saves ({most}); "
            "choose a smaller --hidden"
        )
    x, t, x_test, t_test, classes = _load_data(args)
    n = x.shape[0]
    if args.batch_size > n:
        raise ValueError(f"--batch-size {args.batch_size} is larger than the data set ({n})")
    if args.data_dir is not None:
        check(n, 0 if x_test is None else x_test.shape[0])
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
    return _write_results(args, model, trainer)


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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: ...)`` after each option that has a default value.

    Options without one (None: chosen at run time, per data set; False: a
    flag) keep their help as written, where the help says what happens.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action) or ""


def _cmd_bench(args: argparse.Namespace) -> int:
    from xpnn.bench import CASES
    from xpnn.bench import main as bench_main

    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        raise ValueError(f"unknown case {unknown[0]!r}; valid: {', '.join(CASES)}")
    if args.json:  # before the benchmarks run, not after
        check_output_path(args.json, "--json", example="bench.json")
    return bench_main(args.cases or None, json_path=args.json)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xpnn`` command."""
    from xpnn import __version__

    parser = _Parser(
        prog="xpnn",
        description="Neural networks of 'Deep Learning from Scratch' on CPU or GPU.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"xpnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p_info = sub.add_parser(
        "info", help="backends that can run here, versions, GPUs", formatter_class=_HelpFormatter
    )
    p_info.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_info.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "train",
        help="train the book's two-layer net (spiral or MNIST)",
        description="Train the book's two-layer network. Defaults are the book's: "
        "spiral (vol. 2 ch. 1): hidden 10, SGD lr 1.0, batch 30, 300 epochs; "
        "mnist5k and mnist (vol. 1 ch. 4): 784-50-10, lr 0.1, batch 100, 10,000 iterations. "
        "mnist5k is the 5,000-digit MNIST sample shipped with xpnn (no network); mnist is the "
        "full MNIST, read from --data-dir or downloaded once into a cache folder. Every output "
        "path is checked before training; file errors end with one line and exit status 2.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "--dataset",
        choices=tuple(DATASET_DEFAULTS),
        default="spiral",
        help="spiral (generated), mnist5k (4,000 + 1,000 digits shipped with xpnn) "
        "or mnist (the full 60,000 + 10,000, downloaded)",
    )
    p.add_argument(
        "--backend", help="numpy, cupy, cupy:1, torch:cuda, ... (default: XPNN_BACKEND, else numpy)"
    )
    p.add_argument(
        "--dtype", choices=("float32", "float64"), default="float32", help="float precision"
    )
    p.add_argument(
        "--hidden", type=_positive_int, help="hidden units (default: 10 spiral, 50 MNIST)"
    )
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="update rule")
    p.add_argument(
        "--lr", type=_positive_float, help="learning rate (default: 1.0 spiral, 0.1 MNIST)"
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs", type=_positive_int, help="epochs (default: 300 spiral; MNIST: see --iters)"
    )
    length.add_argument(
        "--iters",
        type=_positive_int,
        help="iterations, rounded up to whole epochs (default: 10000 MNIST; spiral: see --epochs)",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, help="mini-batch size (default: 30 spiral, 100 MNIST)"
    )
    p.add_argument(
        "--eval-interval",
        type=_positive_int,
        help="iterations between loss reports (default: 10 spiral, 100 MNIST)",
    )
    p.add_argument(
        "--max-grad",
        type=_positive_float,
        help="clip the global gradient norm to this, e.g. 5 (default: no clipping)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights and shuffling")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="--dataset mnist: an existing folder with the four MNIST .gz files; nothing is "
        "downloaded into it without --download (default: the cache folder, $XPNN_DATA_DIR/mnist "
        "or ~/.cache/xpnn/mnist, where missing files are downloaded)",
    )
    fetch = p.add_mutually_exclusive_group()
    fetch.add_argument(
        "--download",
        action="store_true",
        help="--dataset mnist: download the missing files into --data-dir",
    )
    fetch.add_argument(
        "--no-download",
        action="store_true",
        help="--dataset mnist: never download, not even into the cache folder",
    )
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="write the loss/accuracy figure (.png, .svg or .pdf; written after --save)",
    )
    p.add_argument("--save", metavar="FILE", help="write the trained parameters (.npz)")
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="CuPy only: replay each iteration as a recorded CUDA graph (much faster on a GPU)",
    )
    p.set_defaults(func=_cmd_train)

    g = sub.add_parser(
        "gradcheck",
        help="numerical vs backprop gradients of TwoLayerNet",
        description="Compare the backpropagation gradients of a small TwoLayerNet with "
        "numerical ones (central differences, float64) on random data; exit status 1 when "
        "they differ by more than --tol.",
        formatter_class=_HelpFormatter,
    )
    g.add_argument("--backend", help="backend spec (default: XPNN_BACKEND, else numpy)")
    g.add_argument("--input-size", type=_positive_int, default=6, help="inputs of the net")
    g.add_argument("--hidden", type=_positive_int, default=5, help="hidden units")
    g.add_argument("--classes", type=_positive_int, default=3, help="output classes")
    g.add_argument("--batch", type=_positive_int, default=4, help="random samples")
    g.add_argument("--seed", type=int, default=0, help="seed of the weights and the data")
    g.add_argument(
        "--tol", type=_positive_float, default=1e-6, help="largest allowed relative difference"
    )
    g.set_defaults(func=_cmd_gradcheck)

    from xpnn.bench import CASES

    b = sub.add_parser(
        "bench",
        help="benchmarks against the textbook code and PyTorch",
        formatter_class=_HelpFormatter,
    )
    b.add_argument(
        "cases", nargs="*", metavar="CASE", help=f"cases to run (default: all): {', '.join(CASES)}"
    )
    b.add_argument(
        "--json",
        default="bench.json",
        metavar="FILE",
        help="where to write the results (checked before the benchmarks run)",
    )
    b.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xpnn`` command; returns the exit status."""
    from xpnn.backend import BackendMismatchError, BackendUnavailableError
    from xpnn.datasets import DownloadError, IDXFormatError
    from xpnn.io import ModelFileError

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
    except MemoryError as exc:  # an estimate refused, or an allocation failed
        print(f"xpnn {args.command}: error: {exc or 'out of memory'}", file=sys.stderr)
        return 2
    except (
        BackendUnavailableError,
        DownloadError,
        IDXFormatError,
        ModelFileError,
        OSError,
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

"""``xpnn search``: the book's random hyper-parameter search, on Dask distributed.

Runs :func:`xpnn.search.random_search` with the book's settings (learning
rate 10^U(-6, -2), weight decay 10^U(-8, -4), ``MultiLayerNet(784, [100] *
6, 10)``, 500 training samples of which 20 % are held out, 50 epochs, SGD) on
an embedded Dask cluster, a scheduler's cluster (``--scheduler``) or one
worker per GPU (``--gpus``), then prints the ranking and the timing and draws
the best trials' curves (``--plot``). Finished trials go to ``--results`` as
they end: the same command again resumes the search.

Every option and path is checked before the cluster starts, and so are the
``--results`` file (one of another search, or not a results file at all, is
refused and left as it is), the ``--scheduler`` address (reached within a
few seconds, or refused) and the memory a trial needs (``xpnn train``'s
estimate); problems are one line and exit status 2. A trial that fails on
the cluster ends the search with one line and exit status 1 (the finished
trials are kept); Ctrl-C with exit status 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from xpnn.cli.paths import PLOT_FORMATS
from xpnn.io import check_output_path

#: The ``--model`` of the book.
DEFAULT_MODEL = "MultiLayerNet"

#: ``--threads`` without it: 1 thread per trial. The embedded cluster runs one
#: worker per core already (Dask's nanny starts its workers with 1 BLAS thread
#: too), so more threads per trial would only compete for the same cores.
DEFAULT_THREADS = 1


def parse_hidden(text: str) -> list[int]:
    """``"100,100,100"`` or ``"6x100"`` -> ``[100, 100, 100]`` (argparse type of ``--hidden``)."""
    text = text.strip()
    try:
        if "x" in text:
            count, _, size = text.partition("x")
            sizes = [int(size)] * int(count)
        else:
            sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a list of layer sizes: {text!r} (e.g. 100,100,100 or 6x100)"
        ) from None
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


def _hidden_text(sizes: list[int]) -> str:
    """``[100, 100, 100]``, or ``[100] * 6`` for many equal sizes (a first line, not a page)."""
    if len(sizes) > 3 and len(set(sizes)) == 1:
        return f"[{sizes[0]}] * {len(sizes)}"
    text = str(sizes)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(sizes)} layers)]"


def _check(args: argparse.Namespace) -> None:
    """The options that depend on each other, and the paths, before any work."""
    if args.scheduler is not None and (args.workers is not None or args.gpus):
        raise ValueError(
            "--workers and --gpus start an embedded cluster; --scheduler runs on an existing one: "
            "drop one of them"
        )
    if args.dataset != "mnist" and args.data_dir is not None:
        raise ValueError(f"--data-dir applies only to --dataset mnist, not {args.dataset}")
    if args.results:
        check_output_path(args.results, "--results", example="search.jsonl", links=False)
    if args.plot:
        check_output_path(args.plot, "--plot", PLOT_FORMATS, example="search.png")
    if args.results and args.plot and os.path.realpath(args.results) == os.path.realpath(args.plot):
        raise ValueError(f"--results and --plot name the same file ({args.plot}); give two names")


def _finished(path: str | None) -> str:
    """``"N finished trials are in FILE"`` for the messages after a failure."""
    if not path or not os.path.exists(path):
        return "no trial finished"
    with open(path, "rb") as f:
        lines = sum(1 for line in f if line.endswith(b"\n"))
    return (
        f"{max(lines - 1, 0)} finished trial(s) are kept in {path}: run the same command to resume"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``xpnn search`` with the parsed ``args``; returns the exit status."""
    from xpnn.search import TrialError, random_search

    _check(args)
    say: Any = (lambda *a, **k: None) if args.quiet else print
    model_kwargs = {"input_size": 784, "hidden_size_list": args.hidden, "output_size": 10}
    say(
        f"xpnn search: {args.trials} trials, {args.dataset} (first {args.train_size} samples, "
        f"20 % held out), {args.model}(784, {_hidden_text(args.hidden)}, 10), {args.optimizer}, "
        f"{args.epochs} epochs, batch {args.batch_size}, seed {args.seed}"
        + (f", results {args.results}" if args.results else "")
    )
    try:
        result = random_search(
            trials=args.trials,
            seed=args.seed,
            epochs=args.epochs,
            batch_size=args.batch_size,
            dataset=args.dataset,
            data_dir=args.data_dir,
            train_size=args.train_size,
            model=args.model,
            model_kwargs=model_kwargs,
            optimizer=args.optimizer,
            backend=args.backend,
            dtype=args.dtype,
            workers=args.workers,
            scheduler=args.scheduler,
            gpus=args.gpus,
            results=args.results or None,
            progress=not args.quiet,
            threads=args.threads or DEFAULT_THREADS,
        )
    except ImportError as exc:  # Dask (or dask-cuda) missing: what to install, in one line
        print(f"xpnn search: error: {exc}", file=sys.stderr)
        return 2
    except TrialError as exc:
        print(f"xpnn search: error: {exc}; {_finished(args.results)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"xpnn search: interrupted; {_finished(args.results)}", file=sys.stderr)
        return 130
    if result.ran and len(result.ran) < len(result.records):
        say(f"resumed: {len(result.records) - len(result.ran)} trial(s) read from {args.results}")
    print("=========== Hyper-Parameter Optimization Result ===========")
    print(result.table(top=args.top))
    print(result.timing_summary())
    if args.plot:
        try:
            print(f"figure: {result.plot(args.plot)}")
        except (OSError, ValueError) as exc:
            print(
                f"xpnn search: error: the search finished, but --plot {args.plot} failed: {exc}"
                + (f"; the trials are in {args.results}" if args.results else ""),
                file=sys.stderr,
            )
            return 2
    return 0

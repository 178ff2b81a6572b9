"""The ``xpnn`` command line.

* ``xpnn info``: which backends can run here, with versions and GPUs.
* ``xpnn train``: train the book's networks (spiral by default, the MNIST
  sample shipped with xpnn, or the full MNIST) on any backend, print progress
  and the final accuracy, save and plot.
* ``xpnn gradcheck``: compare backpropagation with numerical gradients.
* ``xpnn search``: the book's random hyper-parameter search on Dask
  distributed (an embedded cluster, a scheduler's, or one worker per GPU),
  resumable from its results file.
* ``xpnn bench``: benchmarks against the textbook code and PyTorch.

Bad option values end with a one-line error and exit status 2, and so does
every file problem: ``xpnn train`` checks its output paths (``--plot``,
``--save``, ``--checkpoint``), ``--data-dir`` and the memory the run needs
(:func:`estimate_memory`) before it loads data or trains, and ``xpnn bench``
its ``--json`` before it runs. At the end the model is written before the figure; if a write fails
anyway, one line says what failed and what was written (exit status 2).
``xpnn train --checkpoint FILE`` keeps the run's state in FILE; after Ctrl-C
(exit status 130, the last line says how to go on) or a ``kill -9``, the same
command with ``--resume`` added continues it, and ends with the parameters of
an uninterrupted run. A missing folder of an output file (``--save``,
``--plot``, ``--checkpoint``) is created, and a line on stderr says so.
``xpnn train``, ``search`` and ``bench`` take ``--threads N``: the CPU
libraries (NumPy's BLAS, OpenMP, PyTorch) use at most N threads for the whole
command (:func:`xpnn.backend.threads.limit_threads`; ``search`` passes N to
each trial on its worker). Without it: 1 on a machine with 2 CPUs or fewer,
else ``min(4, CPUs)`` (:func:`~xpnn.backend.threads.default_threads`); 1
per worker for ``search``, whose cluster already runs a worker per core.
Training that fails numerically (a NaN or infinite loss, or a loss that
diverges far above the untrained one: see ``Trainer.fit``'s ``on_nan``) ends
with a one-line error and advice (a smaller ``--lr``, ``--max-grad``) and exit
status 3.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from xpnn.backend.threads import default_threads

# Re-exported: the names the single-module ``xpnn.cli`` had (tests and
# scripts use them as ``xpnn.cli.estimate_memory`` and so on).
from xpnn.cli.memory import (  # noqa: F401
    OPTIMIZER_STATE,
    check_memory,
    estimate_memory,
    host_memory_available,
    memory_available,
)
from xpnn.cli.parser import build_parser
from xpnn.cli.paths import PLOT_FORMATS  # noqa: F401
from xpnn.cli.train import DATASET_DEFAULTS, DATASET_SHAPES, OPTIMIZERS  # noqa: F401

__all__ = ["main"]

#: Exit status of ``xpnn train`` when training diverged or the loss became NaN.
EXIT_DIVERGED = 3


def thread_limit(args: Any) -> int | None:
    """The ``--threads`` a command runs with: given, or its default; None for commands without."""
    if not hasattr(args, "threads"):
        return None
    if args.threads is not None:
        return args.threads
    if args.command == "search":
        from xpnn.cli.search import DEFAULT_THREADS

        return DEFAULT_THREADS
    return default_threads()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xpnn`` command; returns the exit status."""
    from xpnn.backend import BackendMismatchError, BackendUnavailableError
    from xpnn.backend.threads import limit_threads
    from xpnn.datasets import DownloadError, IDXFormatError
    from xpnn.io import ModelFileError

    parser = build_parser()
    args = parser.parse_args(argv)
    threads = thread_limit(args)
    try:
        if threads is None:
            return args.func(args)
        with limit_threads(threads):
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
        print(f"xpnn {args.command}: interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130


def _resume_hint(args: Any) -> str:
    """How to go on after Ctrl-C: ``xpnn train --checkpoint FILE`` continues with ``--resume``."""
    checkpoint = getattr(args, "checkpoint", None)
    if args.command != "train" or checkpoint is None:
        return ""
    if not os.path.isfile(checkpoint):
        return (
            f"; no checkpoint was written yet to {checkpoint}: run the same command to start again"
        )
    return (
        f"; {checkpoint} keeps the run: run the same command with --resume to continue it"
        if not args.resume
        else f"; {checkpoint} keeps the run: run the same command again to continue it"
    )

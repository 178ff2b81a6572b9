"""The argument parser of the ``xpnn`` command: its options and the command table.

Each subcommand's parser names the function that runs it (``func``): the
``run`` of :mod:`~xpnn.cli.info`, :mod:`~xpnn.cli.train`,
:mod:`~xpnn.cli.gradcheck`, :mod:`~xpnn.cli.search` or :mod:`~xpnn.cli.bench`.
"""

from __future__ import annotations

import argparse
import math

from xpnn.backend.threads import default_threads
from xpnn.cli import bench, gradcheck, info, search, train
from xpnn.cli.train import DATASET_CHOICES, MODEL_CHOICES, OPTIMIZERS


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _threads(text: str) -> int:
    """argparse type of ``--threads``: a positive whole number."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a whole number of threads: {text!r} (give e.g. --threads 1)"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be 1 or more threads, got {value} (give e.g. --threads 1)"
        )
    return value


def _add_threads(parser: argparse.ArgumentParser, default: str) -> None:
    """The ``--threads`` option of ``parser``; ``default`` says what applies without it."""
    parser.add_argument(
        "--threads",
        type=_threads,
        metavar="N",
        help="threads of the CPU libraries (NumPy's BLAS, OpenMP, PyTorch) for the whole "
        f"command; default: {default}",
    )


#: What ``--threads`` is without it, in ``--help``'s words
#: (:func:`xpnn.backend.threads.default_threads`).
THREADS_DEFAULT_HELP = (
    "1 on a machine with 2 CPUs or fewer, else min(4, CPUs) (here: {n}): with 1-2 cores, more "
    "BLAS threads compete with the Python loop and with other programs (on a busy 2-core "
    "machine 2 threads ran 3-8x slower than 1); with more cores, up to 4 speed up the conv "
    "nets' larger products and leave the other cores free"
)


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
    p_info.set_defaults(func=info.run)

    p = sub.add_parser(
        "train",
        help="train the book's two-layer net (spiral or MNIST), conv nets (MNIST) or word "
        "vectors (CBOW, skip-gram), language models (Rnnlm, BetterRnnlm) or seq2seq models",
        description="Train the book's two-layer network, or its convolutional networks "
        "(--model simpleconvnet, deepconvnet). Defaults are the book's: "
        "spiral (vol. 2 ch. 1): hidden 10, SGD lr 1.0, batch 30, 300 epochs; "
        "mnist5k and mnist (vol. 1 ch. 4): 784-50-10, lr 0.1, batch 100, 10,000 iterations; "
        "SimpleConvNet (vol. 1 ch. 7) and DeepConvNet (ch. 8) on mnist5k or mnist: Adam lr "
        "0.001, batch 100, 20 epochs, each epoch's accuracies on 1,000 samples; "
        "CBOW and SkipGram (vol. 2 ch. 4) on the English corpus shipped with xpnn (english) "
        "or PTB: window 5, hidden 100, Adam lr 0.001, batch 100, 10 epochs, then the nearest "
        "words and analogies of the book's eval.py; "
        "Rnnlm and BetterRnnlm (vol. 2 ch. 6) on english or ptb: SGD lr 20, gradients clipped "
        "to 0.25, batch 20 x 35 steps; Rnnlm hidden 100, 4 epochs; BetterRnnlm hidden 650, "
        "dropout 0.5, 40 epochs, lr / 4 when the validation perplexity stalls; then the test "
        "perplexity. "
        "Seq2seq and PeekySeq2seq (vol. 2 ch. 7) on addition: wordvec 16, hidden 128, Adam lr "
        "0.001, batch 128, 25 epochs, gradients clipped to 5.0, questions reversed with "
        "--reverse; the val acc of all test questions after each epoch. AttentionSeq2seq "
        "(vol. 2 ch. 8, --model attention) on date: hidden 256, 10 epochs, questions always "
        "reversed. "
        "mnist5k is the 5,000-digit MNIST sample shipped with xpnn (no network); mnist is the "
        "full MNIST, read from --data-dir or downloaded once into a cache folder. Every output "
        "path is checked before training (a missing folder of --save, --plot or --checkpoint "
        "is created, and a line on stderr says so); file errors end with one line and exit "
        "status 2. With --checkpoint FILE an interrupted run (Ctrl-C, kill) goes on where "
        "FILE left it: repeat the command with --resume.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "--dataset",
        choices=DATASET_CHOICES,
        help="spiral (generated), mnist5k (4,000 + 1,000 digits shipped with xpnn) or mnist "
        "(the full 60,000 + 10,000, downloaded) (default: spiral); for --model cbow, "
        "skipgram, rnnlm and betterrnnlm: english (English text shipped with xpnn; their "
        "default) or ptb (the Penn Treebank, downloaded); for --model seq2seq, peeky and "
        "attention: addition (the default of the first two) or date (attention's), generated "
        "in the book's format",
    )
    p.add_argument(
        "--model",
        choices=MODEL_CHOICES,
        default="twolayernet",
        help="the book's two-layer net, SimpleConvNet (conv 30 5x5 - pool - 100 - 10, ch. 7) or "
        "DeepConvNet (six 3x3 convs, three pools, 50 - 10 with dropout, ch. 8); the conv nets "
        "take MNIST images (N, 1, 28, 28); cbow or skipgram: vol. 2 ch. 4's word2vec with "
        "negative sampling; rnnlm or betterrnnlm: vol. 2 ch. 6's LSTM language models; seq2seq "
        "or peeky: vol. 2 ch. 7's Seq2seq and PeekySeq2seq (addition, the val acc of each "
        "epoch); attention: ch. 8's AttentionSeq2seq (dates)",
    )
    p.add_argument(
        "--reverse",
        action="store_true",
        help="--model seq2seq or peeky: reverse the questions (the book's is_reverse; "
        "--model attention always does)",
    )
    p.add_argument(
        "--window",
        type=_positive_int,
        help="--model cbow or skipgram: context words on each side of the target (default: 5)",
    )
    p.add_argument(
        "--time-size",
        type=_positive_int,
        metavar="T",
        help="--model rnnlm or betterrnnlm: time steps of truncated BPTT (default: 35)",
    )
    p.add_argument(
        "--backend", help="numpy, cupy, cupy:1, torch:cuda, ... (default: XPNN_BACKEND, else numpy)"
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "float64", "float16", "bfloat16"),
        default="float32",
        help="float precision of the model and data (float16: numpy, cupy, torch; bfloat16: "
        "torch; NumPy computes float16 without BLAS, far slower than float32)",
    )
    p.add_argument(
        "--precision",
        choices=("mixed16", "mixed_bf16"),
        help="mixed-precision training of the float32 model: forward and backward in float16 "
        "with dynamic loss scaling (mixed16), or in bfloat16 (mixed_bf16, torch); for GPUs",
    )
    p.add_argument(
        "--hidden",
        type=_positive_int,
        help="hidden units (default: 10 spiral, 50 MNIST); --model simpleconvnet: 100, "
        "deepconvnet: 50 (the units of their hidden Affine layer)",
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        help="update rule (default: sgd; adam for the conv nets, as the book)",
    )
    p.add_argument(
        "--lr",
        type=_positive_float,
        help="learning rate (default: 1.0 spiral, 0.1 MNIST, 0.001 the conv nets)",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs",
        type=_positive_int,
        help="epochs (default: 300 spiral, 20 the conv nets; two-layer net on MNIST: see --iters)",
    )
    length.add_argument(
        "--iters",
        type=_positive_int,
        help="iterations, rounded up to whole epochs (default: 10000 for the two-layer net on "
        "MNIST; otherwise see --epochs)",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, help="mini-batch size (default: 30 spiral, 100 MNIST)"
    )
    p.add_argument(
        "--train-size",
        type=_positive_int,
        metavar="N",
        help="train on the first N training samples only, e.g. for a quick try (default: all; "
        "the test samples are all used)",
    )
    p.add_argument(
        "--eval-samples",
        type=_positive_int,
        metavar="N",
        help="measure each epoch's train and test accuracy on the first N samples of each (the "
        "book's evaluate_sample_num_per_epoch; default: all, 1000 for the conv nets as the "
        "book); the final line's accuracies are on all of them",
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
    p.add_argument(
        "--save-dtype",
        choices=("float16", "float32", "float64"),
        help="store the saved parameters in this dtype (float16 halves the file, as the "
        "book's save_params does; loading gives back the model's dtype)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="keep the run's state in FILE (.npz, replaced atomically) at the end of every "
        "epoch and every --checkpoint-every iterations, so that a run stopped by Ctrl-C, kill "
        "or a crash goes on with --resume; FILE must not exist yet, unless --resume",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        metavar="N",
        help="also write --checkpoint after iterations N, 2N, ... of each epoch (default: only "
        "at the end of each epoch, i.e. every epoch's worth of iterations: 10 on the spiral, "
        "40 on mnist5k, 600 on mnist with all samples and the default --batch-size)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in --checkpoint FILE (it must exist): repeat the "
        "interrupted command with --resume added; the run ends as an uninterrupted one would, "
        "bit for bit",
    )
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="CuPy only: replay each iteration as a recorded CUDA graph (much faster on a GPU)",
    )
    _add_threads(p, THREADS_DEFAULT_HELP.format(n=default_threads()))
    p.set_defaults(func=train.run)

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
    g.set_defaults(func=gradcheck.run)

    _add_search(sub)

    from xpnn.bench import CASES, DEFAULT_CASES

    b = sub.add_parser(
        "bench",
        help="benchmarks against the textbook code and PyTorch",
        formatter_class=_HelpFormatter,
    )
    extra = [c for c in CASES if c not in DEFAULT_CASES]
    b.add_argument(
        "cases",
        nargs="*",
        metavar="CASE",
        help=f"cases to run: {', '.join(CASES)} (default: {', '.join(DEFAULT_CASES)}; "
        f"{', '.join(extra)} takes minutes: ask for it)",
    )
    b.add_argument(
        "--json",
        default="bench.json",
        metavar="FILE",
        help="where to write the results (checked before the benchmarks run)",
    )
    _add_threads(
        b,
        THREADS_DEFAULT_HELP.format(n=default_threads())
        + "; every candidate runs with the same limit, and the report records it",
    )
    b.set_defaults(func=bench.run)
    return parser


def _add_search(sub: argparse._SubParsersAction) -> None:
    """The ``xpnn search`` subcommand (:mod:`xpnn.cli.search`)."""
    s = sub.add_parser(
        "search",
        help="the book's random hyper-parameter search, on Dask distributed",
        description="The book's random search (vol. 1, 6.5): learning rate 10^U(-6, -2) and "
        "weight decay 10^U(-8, -4) for MultiLayerNet(784, [100]*6, 10) trained with SGD on "
        "the first 500 training samples (20 % held out for validation). Trials run on an "
        "embedded Dask LocalCluster (one worker per core), on --scheduler's cluster, or one "
        "worker per GPU (--gpus); each is seeded from (--seed, trial number), so the results "
        "do not depend on the workers. Finished trials are appended to --results: the same "
        'command again resumes the search. Needs pip install "xpnn[search]".',
        formatter_class=_HelpFormatter,
    )
    s.add_argument(
        "--trials",
        type=_positive_int,
        default=100,
        help="trials of the search (at most 10,000,000: each finished one is kept in memory "
        "and in --results)",
    )
    s.add_argument(
        "--workers",
        type=_positive_int,
        help="worker processes of the embedded cluster (default: one per core, or per GPU)",
    )
    s.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="run on the cluster of this Dask scheduler, tcp://host:8786 or host:8786 "
        "(reached within 3 s, or refused in one line)",
    )
    s.add_argument(
        "--gpus",
        action="store_true",
        help="embedded cluster of one worker per GPU, each pinned to its device (dask-cuda; "
        'pip install "xpnn[search-cuda]"); backend cupy unless --backend torch:cuda',
    )
    s.add_argument(
        "--seed", type=_non_negative_int, default=0, help="seed of the trials and of the split"
    )
    s.add_argument("--epochs", type=_positive_int, default=50, help="epochs of each trial")
    s.add_argument("--batch-size", type=_positive_int, default=100, help="mini-batch size")
    s.add_argument(
        "--train-size",
        type=_positive_int,
        default=500,
        help="use the first this many training samples (20 %% of them held out for validation)",
    )
    s.add_argument(
        "--hidden",
        type=search.parse_hidden,
        default=[100] * 6,
        metavar="SIZES",
        help="hidden layer sizes, e.g. 100,100,100 or 6x100",
    )
    s.add_argument(
        "--model",
        default=search.DEFAULT_MODEL,
        help="model class: MultiLayerNet, MultiLayerNetExtend, or package.module:Class taking "
        "(input_size, hidden_size_list, output_size, weight_decay_lambda, seed=, dtype=)",
    )
    s.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="update rule")
    s.add_argument(
        "--dataset",
        choices=("mnist5k", "mnist"),
        default="mnist5k",
        help="mnist5k (the sample shipped with xpnn) or mnist (the full MNIST, already "
        "downloaded: workers never download)",
    )
    s.add_argument("--data-dir", metavar="DIR", help="--dataset mnist: the folder of its files")
    s.add_argument(
        "--backend", help="backend of each trial: numpy, torch:cpu, cupy... (default: numpy)"
    )
    s.add_argument(
        "--dtype",
        choices=("float32", "float64", "float16", "bfloat16"),
        default="float32",
        help="float precision of the models and data",
    )
    s.add_argument(
        "--results",
        metavar="FILE",
        default="xpnn_search.jsonl",
        help="append each finished trial to this JSON-lines file and resume the search it "
        "holds ('' for none)",
    )
    s.add_argument(
        "--plot", metavar="FILE", help="draw the best trials' curves (.png, .svg or .pdf)"
    )
    s.add_argument("--top", type=_positive_int, default=20, help="lines of the ranking to print")
    s.add_argument("--quiet", action="store_true", help="no progress bar and no first line")
    _add_threads(
        s,
        f"{search.DEFAULT_THREADS} in each worker (the embedded cluster already runs one worker "
        "per core, so more threads per trial would only compete for them; Dask gives its "
        "workers 1 too), and in this process",
    )
    s.set_defaults(func=search.run)

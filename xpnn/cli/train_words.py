"""``xpnn train --model cbow|skipgram``: vol. 2 ch. 4's word2vec, then its nearest words.

What the book's ``ch04/train.py`` and ``ch04/eval.py`` do, as one command:
the corpus's contexts and targets (``create_contexts_target``), ``CBOW`` or
``SkipGram`` with negative sampling trained by ``Trainer.fit`` (Adam, the
book's settings: window 5, hidden 100, batch 100, 10 epochs), then the
nearest words of ``eval.py``'s queries and its analogies, printed as the
book prints them (a word the corpus lacks is said so, as the book's
``most_similar`` says).

Corpora: ``--dataset english`` (the default: the English text shipped with
xpnn, :mod:`xpnn.datasets.english`, no network) or ``--dataset ptb`` (the
Penn Treebank of the book, read from ``--data-dir`` or downloaded once into
the cache, :mod:`xpnn.datasets.ptb`). ``--save`` writes the model with
:func:`xpnn.io.save` (its config keeps the word counts; the vocabulary is
the data set's, built again by its ``load_data``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from xpnn.cli.memory import ITEM_BYTES, OPTIMIZER_STATE, check_memory

#: ``--model`` names of vol. 2 ch. 4's word2vec models, and their classes.
WORD_MODELS = {"cbow": "CBOW", "skipgram": "SkipGram"}

#: The corpora a word model trains on.
WORD_DATASETS = ("english", "ptb")

#: ``ch04/train.py``'s settings (its ``Trainer.fit`` reports every 20 iterations).
WORD_DEFAULTS: dict[str, Any] = {
    "hidden": 100,
    "window": 5,
    "optimizer": "adam",
    "lr": 0.001,
    "batch_size": 100,
    "epochs": 10,
    "eval_interval": 20,
}

#: ``ch04/eval.py``'s queries and analogies (``a : b = c : ?``).
QUERIES = ("you", "year", "car", "toyota")
ANALOGIES = (
    ("king", "man", "queen"),
    ("take", "took", "go"),
    ("car", "cars", "child"),
    ("good", "better", "bad"),
)

#: Options of the classifiers that a word model does not take, and why.
_NOT_FOR_WORDS = {
    "eval_samples": "a word model has no accuracy to measure",
    "precision": "mixed precision is not built for the embedding layers yet",
    "cuda_graph": "a recorded graph would replay the same negative samples",
}


def check_corpus_options(
    args: argparse.Namespace, refused: dict[str, str], defaults: dict[str, Any]
) -> None:
    """What a model trained on a text corpus checks first, before any data.

    --dataset (english by default, or ptb), the options in ``refused`` (option
    -> why it does not apply), the download options that only PTB takes; then
    ``defaults`` fill the options not given (--iters replacing --epochs).
    """
    if args.dataset is None:
        args.dataset = "english"
    if args.dataset not in WORD_DATASETS:
        raise ValueError(
            f"--model {args.model} trains on a text corpus, not --dataset {args.dataset}: "
            f"use --dataset english (shipped with xpnn) or ptb"
        )
    refuse_options(args, refused)
    if args.dataset == "english":
        for option in ("data_dir", "download", "no_download"):
            if getattr(args, option, None):
                flag = "--" + option.replace("_", "-")
                raise ValueError(
                    f"{flag} applies to --dataset ptb (or mnist), not english: it ships with xpnn"
                )
    fill_defaults(args, defaults)


def refuse_options(args: argparse.Namespace, refused: dict[str, str]) -> None:
    """Refuse each option of ``refused`` (option -> why it does not apply) that was given."""
    for option, why in refused.items():
        if getattr(args, option, None):
            flag = "--" + option.replace("_", "-")
            raise ValueError(f"{flag} does not apply to --model {args.model}: {why}; drop it")


def fill_defaults(args: argparse.Namespace, defaults: dict[str, Any]) -> None:
    """Give the options not given their ``defaults``; --iters replaces --epochs."""
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.iters is not None:
        args.epochs = None  # --iters sets the length, rounded up to whole epochs


def check_word_options(args: argparse.Namespace) -> None:
    """Fill the book's defaults and refuse what a word model cannot take, before any data."""
    check_corpus_options(args, _NOT_FOR_WORDS, WORD_DEFAULTS)
    if args.dtype in ("float16", "bfloat16"):
        raise ValueError(
            f"--dtype {args.dtype}: word2vec's Adam over 10,000-word tables needs float32 or "
            "float64 here; drop --dtype"
        )


def estimate_word_memory(args: argparse.Namespace, vocab: int, words: int) -> dict[str, int]:
    """Bytes a word2vec run needs: tables, gradients, optimizer state, contexts and a batch."""
    item = ITEM_BYTES[args.dtype]
    table = 2 * vocab * args.hidden * item  # W_in and W_out
    windows = max(words - 2 * args.window, 0)
    parts = {
        "parameters": table,
        "gradients": table,
        "optimizer state": OPTIMIZER_STATE[args.optimizer] * table,
        "data": 8 * (words + windows * (2 * args.window + 1)),
        "batch": 8 * args.batch_size * (2 * args.window + 7) * args.hidden,
    }
    return {**parts, "total": sum(parts.values())}


def load_corpus(args: argparse.Namespace) -> tuple[Any, dict[str, int], dict[int, str]]:
    """``(corpus, word_to_id, id_to_word)`` of --dataset's training split."""
    if args.dataset == "english":
        from xpnn.datasets import english

        return english.load_data("train")
    from xpnn.datasets import ptb

    return ptb.load_data(
        "train", args.data_dir, download=not args.no_download, progress=not args.quiet
    )


def show_neighbours(model: Any, word_to_id: dict[str, int], id_to_word: dict[int, str]) -> None:
    """``eval.py``: the nearest words of its queries, then its analogies, as the book prints."""
    from xpnn.text import analogy, most_similar

    for query in QUERIES:
        most_similar(query, word_to_id, id_to_word, model.word_vecs, top=5)
    print("-" * 50)
    for a, b, c in ANALOGIES:
        analogy(a, b, c, word_to_id, id_to_word, model.word_vecs)


def run_words(args: argparse.Namespace, backend: Any, write_results: Any) -> int:
    """Train --model cbow or skipgram; ``write_results(args, model, trainer)`` writes the files."""
    import math

    import xpnn
    from xpnn.cli import memory
    from xpnn.cli.paths import make_output_folders, train_outputs
    from xpnn.optimizers import OPTIMIZERS
    from xpnn.text import create_contexts_target

    available, where = memory.memory_available(backend)
    corpus, word_to_id, id_to_word = load_corpus(args)
    vocab, words = len(word_to_id), int(corpus.shape[0])
    if words <= 2 * args.window:
        raise ValueError(
            f"--window {args.window} needs more than {2 * args.window} words, the corpus has "
            f"{words}"
        )
    n = words - 2 * args.window  # the windows create_contexts_target makes
    if args.train_size is not None:
        if args.train_size > n:
            raise ValueError(
                f"--train-size {args.train_size} is larger than the corpus's {n} windows"
            )
        n = args.train_size
    if args.batch_size > n:
        raise ValueError(f"--batch-size {args.batch_size} is larger than the {n} windows")
    per_epoch = n // args.batch_size
    parts = estimate_word_memory(args, vocab, words)
    check_memory(parts, available, where, "a smaller --hidden, --batch-size or --optimizer sgd")
    contexts, target = create_contexts_target(corpus, window_size=args.window)
    contexts, target = contexts[:n, ...], target[:n]
    if args.epochs is None:
        args.epochs = max(1, math.ceil(args.iters / per_epoch))
    cls = getattr(xpnn, WORD_MODELS[args.model])
    model = cls(vocab, args.hidden, args.window, corpus, seed=args.seed, dtype=args.dtype)
    optimizer = OPTIMIZERS[args.optimizer](lr=args.lr)
    say = (lambda *a, **k: None) if args.quiet else print
    say(
        f"xpnn train: {args.dataset} ({words} words, vocabulary {vocab}) on {backend.spec}, "
        f"{args.dtype}, {type(model).__name__}(hidden={args.hidden}, window={args.window}), "
        f"{args.optimizer} lr={args.lr}, batch {args.batch_size}, {args.epochs} epochs x "
        f"{per_epoch} iterations"
        + (f", gradients clipped to norm {args.max_grad}" if args.max_grad else "")
    )
    make_output_folders("train", train_outputs(args))
    trainer = xpnn.Trainer(model, optimizer)
    start = time.perf_counter()
    trainer.fit(
        contexts,
        target,
        max_epoch=args.epochs,
        batch_size=args.batch_size,
        max_grad=args.max_grad,
        eval_interval=args.eval_interval,
        seed=args.seed,
        progress=not args.quiet,
        verbose=not args.quiet,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.checkpoint if args.resume else None,
    )
    wall = time.perf_counter() - start
    if not args.quiet:
        show_neighbours(model, word_to_id, id_to_word)
    print(f"final loss {trainer.loss_list[-1]:.4f} | {wall:.1f} s")
    return write_results(args, model, trainer)

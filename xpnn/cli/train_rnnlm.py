"""``xpnn train --model rnnlm|betterrnnlm``: vol. 2 ch. 6's language models, as the book runs them.

What the book's ``ch06/train_rnnlm.py`` and ``ch06/train_better_rnnlm.py``
do, as one command: the corpus's training split (``xs = corpus[:-1]``, ``ts
= corpus[1:]``), :class:`xpnn.models.Rnnlm` or :class:`xpnn.models.BetterRnnlm`
trained by :class:`xpnn.training.RnnlmTrainer` with the book's settings (SGD
lr 20, gradients clipped to norm 0.25, batch 20, 35 time steps; Rnnlm:
hidden 100, 4 epochs; BetterRnnlm: hidden 650, dropout 0.5, 40 epochs with
the validation perplexity after each and the learning rate divided by 4 when
it does not improve), then the test perplexity, printed as the book prints
it. The models' word vectors are as wide as their hidden state (``--hidden``),
as in the book's scripts.

Corpora: ``--dataset english`` (the default: the English text shipped with
xpnn, no network) or ``--dataset ptb`` (downloaded once). ``--checkpoint``
and ``--resume`` continue an interrupted run bit for bit (hidden states and
position included); a BetterRnnlm run whose schedule lowered the learning
rate resumes at the checkpoint's rate.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from xpnn.cli.memory import ITEM_BYTES, check_memory
from xpnn.cli.train_words import check_corpus_options

#: ``--model`` names of vol. 2 ch. 6's language models, and their classes.
RNN_MODELS = {"rnnlm": "Rnnlm", "betterrnnlm": "BetterRnnlm"}

#: The book's scripts' settings (``ch06/train_rnnlm.py``, ``train_better_rnnlm.py``).
RNN_DEFAULTS: dict[str, dict[str, Any]] = {
    "rnnlm": {"hidden": 100, "epochs": 4},
    "betterrnnlm": {"hidden": 650, "epochs": 40},
}
_COMMON = {
    "optimizer": "sgd",
    "lr": 20.0,
    "batch_size": 20,
    "time_size": 35,
    "max_grad": 0.25,
    "eval_interval": 20,
}

#: Options of the other models that a language model does not take, and why.
_NOT_FOR_RNN = {
    "eval_samples": "a language model has no accuracy to measure (it reports perplexity)",
    "cuda_graph": "RnnlmTrainer does not record CUDA graphs yet",
    "window": "--window is the context of --model cbow or skipgram",
}


def check_rnn_options(args: argparse.Namespace) -> None:
    """Fill the book's defaults and refuse what a language model cannot take, before any data."""
    check_corpus_options(args, _NOT_FOR_RNN, {**_COMMON, **RNN_DEFAULTS[args.model]})
    if args.dtype in ("float16", "bfloat16"):
        raise ValueError(
            f"--dtype {args.dtype}: train the language models in float32 (use --precision "
            "mixed16 for half-precision steps); drop --dtype"
        )


def estimate_rnn_memory(args: argparse.Namespace, vocab: int, words: int) -> dict[str, int]:
    """Bytes a language model's run needs: weights, gradients, the scores of a batch, data."""
    item, h = ITEM_BYTES[args.dtype], args.hidden
    layers = 2 if args.model == "betterrnnlm" else 1
    weights = (vocab * h * (1 if args.model == "betterrnnlm" else 2) + layers * 8 * h * h) * item
    rows = args.batch_size * args.time_size
    parts = {
        "parameters": weights,
        "gradients": weights,
        "optimizer state": 0 if args.optimizer == "sgd" else 2 * weights,
        "data": 8 * 2 * words,
        "batch": 3 * rows * vocab * item + 12 * layers * rows * h * item,
    }
    return {**parts, "total": sum(parts.values())}


def load_split(args: argparse.Namespace, split: str) -> tuple[Any, dict[str, int], dict[int, str]]:
    """``(corpus, word_to_id, id_to_word)`` of --dataset's ``split``."""
    if args.dataset == "english":
        from xpnn.datasets import english

        return english.load_data(split)
    from xpnn.datasets import ptb

    return ptb.load_data(
        split, args.data_dir, download=not args.no_download, progress=not args.quiet
    )


def checkpoint_lr(path: Any) -> float | None:
    """The learning rate a checkpoint's optimizer had, or None (no file, unreadable).

    Reads the metadata only; the resume checks the whole file later.
    """
    from xpnn.io import ModelFileError
    from xpnn.io.checkpoints import CHECKPOINT_META_CHARS, _NpzFile

    try:
        with _NpzFile(Path(path), CHECKPOINT_META_CHARS) as npz:
            lr = npz.meta["optimizer"]["hyperparams"]["lr"]
    except (OSError, ModelFileError, KeyError, TypeError, ValueError):
        return None
    ok = isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr < math.inf
    return float(lr) if ok else None


def run_rnnlm(args: argparse.Namespace, backend: Any, write_results: Any) -> int:
    """Train --model rnnlm or betterrnnlm; ``write_results(args, model, trainer)`` writes files."""
    import xpnn
    from xpnn.cli import memory
    from xpnn.cli.paths import make_output_folders, train_outputs
    from xpnn.models.rnnlm import eval_perplexity
    from xpnn.optimizers import OPTIMIZERS

    available, where = memory.memory_available(backend)
    corpus, word_to_id, _ = load_split(args, "train")
    vocab, words = len(word_to_id), int(corpus.shape[0])
    if args.train_size is not None:
        if args.train_size > words:
            raise ValueError(
                f"--train-size {args.train_size} is larger than the corpus's {words} words"
            )
        corpus, words = corpus[: args.train_size], args.train_size
    per_iter = args.batch_size * args.time_size
    if per_iter > words - 1:
        raise ValueError(
            f"--batch-size {args.batch_size} x --time-size {args.time_size} = {per_iter} words "
            f"a batch, more than the {words - 1} the corpus gives: use smaller ones"
        )
    per_epoch = (words - 1) // per_iter
    check_memory(
        estimate_rnn_memory(args, vocab, words), available, where, "a smaller --hidden or batch"
    )
    if args.epochs is None:
        args.epochs = max(1, math.ceil(args.iters / per_epoch))
    better = args.model == "betterrnnlm"
    cls = getattr(xpnn, RNN_MODELS[args.model])
    # The book's scripts: word vectors as wide as the hidden state; BetterRnnlm's dropout 0.5.
    model = cls(vocab, args.hidden, args.hidden, seed=args.seed, dtype=args.dtype)
    lr = args.lr
    if args.resume and better:
        stored = checkpoint_lr(args.checkpoint)
        if stored is not None and stored != lr:
            print(f"xpnn train: resuming at the checkpoint's learning rate {stored:g} (was {lr:g})")
            lr = stored
    optimizer = OPTIMIZERS[args.optimizer](lr=lr)
    say = (lambda *a, **k: None) if args.quiet else print
    say(
        f"xpnn train: {args.dataset} ({words} words, vocabulary {vocab}) on {backend.spec}, "
        f"{args.dtype}, {type(model).__name__}(hidden={args.hidden}), {args.optimizer} "
        f"lr={lr:g}, batch {args.batch_size} x {args.time_size} steps, {args.epochs} epochs x "
        f"{per_epoch} iterations, gradients clipped to norm {args.max_grad}"
        + (", validation perplexity after each epoch (lr / 4 when it stalls)" if better else "")
        + (f", {args.precision}" if args.precision else "")
    )
    make_output_folders("train", train_outputs(args))
    val = load_split(args, "val")[0] if better else None
    trainer = xpnn.training.RnnlmTrainer(model, optimizer)
    start = time.perf_counter()
    trainer.fit(
        corpus[:-1],
        corpus[1:],
        max_epoch=args.epochs,
        batch_size=args.batch_size,
        time_size=args.time_size,
        max_grad=args.max_grad,
        eval_interval=args.eval_interval,
        validation_data=val,
        progress=not args.quiet,
        verbose=not args.quiet,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.checkpoint if args.resume else None,
        precision=args.precision,
    )
    wall = time.perf_counter() - start
    model.reset_state()
    test = eval_perplexity(model, load_split(args, "test")[0], verbose=not args.quiet)
    say("test perplexity: ", test)
    last = trainer.ppl_list[-1] if trainer.ppl_list else math.nan
    print(f"final perplexity {last:.2f} | test perplexity {test:.2f} | {wall:.1f} s")
    return write_results(args, model, trainer)

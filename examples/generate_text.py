"""Train a small RNN language model for a short while, then let it write (vol. 2, ch. 7).

The book's ``ch07/generate_text.py`` loads the ``Rnnlm`` that
``ch06/train_rnnlm.py`` trained on PTB for about an hour and prints 100
words generated from "you". Here a small ``Rnnlm`` is first trained on the
start of the English corpus shipped with xpnn, as ``train_rnnlm.py`` trains
(``RnnlmTrainer``, SGD with lr 20, gradients clipped to 0.25, 35 steps of
truncated BPTT) but for seconds, not an hour; then ``RnnlmGen`` generates
100 words from "you", skipping the book's ``'N'``, ``'<unk>'``, ``'$'``
where the vocabulary has them, and ``<eos>`` ends a line as in the book.
The perplexity curve is written as a figure::

    python examples/generate_text.py
    python examples/generate_text.py --words 300000 --epochs 2 --backend torch
    python examples/generate_text.py --dataset ptb --load Rnnlm.pkl   # the book's weights

A few seconds of training give text with the corpus's words and some of
its short phrases; the book's hour on PTB gives lines that read almost as
English. The same ``--seed`` gives the same weights, batches and draws on
every backend.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import xpnn
from xpnn.models import RnnlmGen
from xpnn.optimizers import SGD
from xpnn.training import RnnlmTrainer

#: The words the book skips (ch07/generate_text.py); those the vocabulary has are skipped.
SKIP_WORDS = ["N", "<unk>", "$"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument(
        "--dataset",
        choices=["english", "ptb"],
        default="english",
        help="english: shipped with xpnn; ptb: downloaded once (default: %(default)s)",
    )
    p.add_argument(
        "--words",
        type=int,
        default=50000,
        help="train on the corpus's first N words (default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=1, help="epochs (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=100, help="wordvec and hidden size (default: 100)")
    p.add_argument("--batch-size", type=int, default=20, help="rows per batch (default: 20)")
    p.add_argument("--time-size", type=int, default=35, help="BPTT steps (default: 35)")
    p.add_argument("--start", default="you", help="the first word (default: %(default)s)")
    p.add_argument("--sample-size", type=int, default=100, help="words to generate (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and draws (default: 0)")
    p.add_argument(
        "--load",
        default=None,
        help="skip training: load these weights (the book's Rnnlm.pkl, or save_params's file)",
    )
    p.add_argument(
        "--out", default="generate_text.png", help="perplexity figure (default: %(default)s)"
    )
    args = p.parse_args(argv)
    for name in ("words", "epochs", "hidden", "batch_size", "time_size", "sample_size"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.seed < 0:
        p.error("--seed must be 0 or more")
    return args


def load(dataset: str):
    if dataset == "english":
        from xpnn.datasets import english as source
    else:
        from xpnn.datasets import ptb as source
    return source.load_data("train")


def as_text(word_ids: list[int], id_to_word: dict[int, str]) -> str:
    """The book's text: the words joined by spaces, each ``<eos>`` a full stop and a new line."""
    return " ".join(id_to_word[i] for i in word_ids).replace(" <eos>", ".\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with xpnn.use_backend(args.backend) if args.backend else contextlib.nullcontext():
        corpus, word_to_id, id_to_word = load(args.dataset)
        if args.start not in word_to_id:
            print(f"error: the start word {args.start!r} is not in the vocabulary", file=sys.stderr)
            return 2
        model = RnnlmGen(len(word_to_id), args.hidden, args.hidden, seed=args.seed)
        figure = None
        if args.load:
            model.load_params(args.load)
        else:
            corpus = corpus[: args.words + 1]
            xs, ts = corpus[:-1], corpus[1:]
            trainer = RnnlmTrainer(model, SGD(lr=20.0))
            trainer.fit(xs, ts, args.epochs, args.batch_size, args.time_size, max_grad=0.25)
            figure = trainer.plot(path=args.out)

        skip_ids = [word_to_id[w] for w in SKIP_WORDS if w in word_to_id]
        model.reset_state()
        word_ids = model.generate(
            word_to_id[args.start], skip_ids, args.sample_size, seed=args.seed
        )
    print("-" * 50)
    print(as_text(word_ids, id_to_word))
    print("-" * 50)
    if figure is not None:
        print(f"figure written to {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

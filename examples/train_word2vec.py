"""Train CBOW (or skip-gram) with negative sampling, then ask for neighbours (vol. 2, ch. 4).

The book's ``ch04/train.py`` then ``eval.py``: window 5, hidden 100, batch
100, 10 epochs of Adam over a corpus's contexts and targets, the loss every
20 iterations; then the five nearest words of "you", "year", "car" and
"toyota" and the analogies king : man = queen : ?, take : took = go : ?,
car : cars = child : ?, good : better = bad : ? (a word the corpus lacks is
said so). The figures: the loss curve, and the 100 most frequent words on the
plane of their vectors' first two principal axes::

    python examples/train_word2vec.py                     # the English corpus shipped, CBOW
    python examples/train_word2vec.py --skip-gram --dataset ptb --backend cupy
    python examples/train_word2vec.py --epochs 1 --save cbow.npz

On PTB the book prints, after 10 epochs of CBOW: you -> we, i, your, they,
anybody; year -> month, week, ...; king : man = queen : woman among the top
five. The same ``--seed`` gives the same weights, mini-batches and negative
samples on every backend.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import numpy as np

import xpnn
from xpnn import CBOW, SkipGram
from xpnn.plot import plot_word_vectors
from xpnn.util import analogy, create_contexts_target, most_similar


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument("--skip-gram", action="store_true", help="train SkipGram instead of CBOW")
    p.add_argument(
        "--dataset",
        choices=["english", "ptb"],
        default="english",
        help="english: shipped with xpnn; ptb: downloaded once (default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=10, help="epochs (default: %(default)s)")
    p.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="train on the first N contexts only, for a quick try (default: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights, batches and samples")
    p.add_argument("--save", default=None, help="write the trained model (.npz)")
    p.add_argument("--out", default="word2vec_loss.png", help="loss figure (default: %(default)s)")
    p.add_argument(
        "--vectors-out", default="word2vec.png", help="words figure (default: %(default)s)"
    )
    args = p.parse_args(argv)
    for name in ("epochs",) + (("train_size",) if args.train_size is not None else ()):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def load(dataset: str):
    if dataset == "english":
        from xpnn.datasets import english as source
    else:
        from xpnn.datasets import ptb as source
    return source.load_data("train")


def evaluate(word_vecs, word_to_id, id_to_word) -> None:
    """eval.py: the queries' nearest words, then the analogies."""
    for query in ["you", "year", "car", "toyota"]:
        most_similar(query, word_to_id, id_to_word, word_vecs, top=5)
    print("-" * 50)
    analogy("king", "man", "queen", word_to_id, id_to_word, word_vecs)
    analogy("take", "took", "go", word_to_id, id_to_word, word_vecs)
    analogy("car", "cars", "child", word_to_id, id_to_word, word_vecs)
    analogy("good", "better", "bad", word_to_id, id_to_word, word_vecs)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    window_size, hidden_size, batch_size = 5, 100, 100
    with xpnn.use_backend(args.backend) if args.backend else contextlib.nullcontext():
        corpus, word_to_id, id_to_word = load(args.dataset)
        vocab_size = len(word_to_id)
        contexts, target = create_contexts_target(corpus, window_size)
        if args.train_size is not None:
            contexts, target = contexts[: args.train_size, :], target[: args.train_size]

        cls = SkipGram if args.skip_gram else CBOW
        model = cls(vocab_size, hidden_size, window_size, corpus, seed=args.seed)
        trainer = xpnn.Trainer(model, xpnn.Adam())
        trainer.fit(contexts, target, args.epochs, batch_size, seed=args.seed, progress=False)
        loss_png = trainer.plot(args.out)

        word_vecs = model.word_vecs
        evaluate(word_vecs, word_to_id, id_to_word)
        counts = np.bincount(xpnn.to_numpy(corpus), minlength=vocab_size)  # host: to choose
        frequent = [id_to_word[int(i)] for i in np.argsort(-counts, kind="stable")[:100]]
        words_png = plot_word_vectors(word_vecs, id_to_word, args.vectors_out, words=frequent)
        if args.save:
            print(f"model written to {xpnn.io.save(model, args.save)}")
    print(f"figures written to {loss_png} and {words_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

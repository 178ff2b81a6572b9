"""Train the simple CBOW of vol. 2, ch. 3 on "You say goodbye and I say hello.".

The book's ``ch03/train.py``: window 1, hidden 5, batch 3, 1,000 epochs of
Adam on the one-hot contexts and targets, a loss line each epoch (it falls
from 1.95 to below 1: 0.35 at epoch 1,000 in one run of the book's own code,
0.34 here; each line is one or two batches of 3 words, so the curve is
noisy), then each word's vector. The figures: the loss
curve and the words on the plane of their vectors' first two principal axes::

    python examples/train_simple_cbow.py                 # simple_cbow_loss.png, simple_cbow.png
    python examples/train_simple_cbow.py --skip-gram --backend torch

The same ``--seed`` gives the same weights and mini-batches on every backend.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import numpy as np

import xpnn
from xpnn.models.word2vec_simple import SimpleCBOW, SimpleSkipGram
from xpnn.plot import plot_word_vectors
from xpnn.util import convert_one_hot, create_contexts_target, preprocess


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument("--skip-gram", action="store_true", help="train SimpleSkipGram instead")
    p.add_argument(
        "--epochs", type=int, default=1000, help="epochs (default: %(default)s, as the book)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights and mini-batches")
    p.add_argument(
        "--out", default="simple_cbow_loss.png", help="loss figure (default: %(default)s)"
    )
    p.add_argument(
        "--vectors-out", default="simple_cbow.png", help="words figure (default: %(default)s)"
    )
    args = p.parse_args(argv)
    if args.epochs <= 0:
        p.error("--epochs must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    window_size, hidden_size, batch_size = 1, 5, 3
    with xpnn.use_backend(args.backend) if args.backend else contextlib.nullcontext():
        text = "You say goodbye and I say hello."
        corpus, word_to_id, id_to_word = preprocess(text)
        vocab_size = len(word_to_id)
        contexts, target = create_contexts_target(corpus, window_size)
        target = convert_one_hot(target, vocab_size)
        contexts = convert_one_hot(contexts, vocab_size)

        cls = SimpleSkipGram if args.skip_gram else SimpleCBOW
        model = cls(vocab_size, hidden_size, seed=args.seed)
        trainer = xpnn.Trainer(model, xpnn.Adam())
        trainer.fit(contexts, target, args.epochs, batch_size, seed=args.seed, progress=False)
        loss_png = trainer.plot(args.out)

        word_vecs = model.word_vecs
        with np.printoptions(precision=5):
            for word_id, word in id_to_word.items():
                print(word, xpnn.to_numpy(word_vecs[word_id, :]))
        words_png = plot_word_vectors(word_vecs, id_to_word, args.vectors_out, title=cls.__name__)
    print(f"figures written to {loss_png} and {words_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

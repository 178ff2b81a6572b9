"""Word vectors by counting (vol. 2, ch. 2): co-occurrence, PPMI, SVD, nearest words.

The book's ``ch02/count_method_small.py`` on "You say goodbye and I say
hello." (its figure 2-11: the words on the plane of the SVD's first two
axes), then ``count_method_big.py`` on a real corpus: the co-occurrence
matrix (window 2), PPMI, a randomized SVD to 100 dimensions, and the five
nearest words of the book's queries::

    python examples/count_based_vectors.py                  # the English corpus shipped
    python examples/count_based_vectors.py --dataset ptb    # PTB, downloaded once
    python examples/count_based_vectors.py --words 100000 --backend torch

Everything stays on the backend's device; the SVDs are the backend's own
(:mod:`xpnn.linalg`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import numpy as np

import xpnn
from xpnn.linalg import randomized_svd, svd
from xpnn.plot import plot_word_vectors
from xpnn.util import create_co_matrix, most_similar, ppmi, preprocess

QUERIES = ["you", "year", "car", "toyota"]


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
        default=None,
        help="use the first N words of the corpus only (default: all)",
    )
    p.add_argument("--window", type=int, default=2, help="window size (default: %(default)s)")
    p.add_argument("--dims", type=int, default=100, help="word vector size (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random_state of the randomized SVD")
    p.add_argument(
        "--out",
        default="count_based_vectors.png",
        help="the small corpus's words on the plane (default: %(default)s)",
    )
    args = p.parse_args(argv)
    for name in ("window", "dims") + (("words",) if args.words is not None else ()):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be positive")
    return args


def small(out: str) -> str:
    """count_method_small.py: C, W and U of the book's sentence, and its figure."""
    corpus, _, id_to_word = preprocess("You say goodbye and I say hello.")
    C = create_co_matrix(corpus, len(id_to_word), window_size=1)
    W = ppmi(C)
    U, _, _ = svd(W)  # the book's U, S, V = np.linalg.svd(W)
    with np.printoptions(precision=3):
        print(xpnn.to_numpy(C[0, :]))  # the book's C[0]: one index per axis, for every backend
        print(xpnn.to_numpy(W[0, :]))
        print(xpnn.to_numpy(U[0, :]))
    return str(plot_word_vectors(U[:, :2], id_to_word, out, title="PPMI + SVD"))


def load(args: argparse.Namespace):
    """The corpus of --dataset, cut to --words (and its vocabulary to the words left)."""
    if args.dataset == "english":
        from xpnn.datasets import english as source
    else:
        from xpnn.datasets import ptb as source
    corpus, word_to_id, id_to_word = source.load_data("train")
    if args.words is None:
        return corpus, word_to_id, id_to_word
    ids = xpnn.to_numpy(corpus)[: args.words]  # host-side: renumber the words left
    kept, new_ids = np.unique(ids, return_inverse=True)
    id_to_word = {i: id_to_word[int(old)] for i, old in enumerate(kept)}
    word_to_id = {w: i for i, w in id_to_word.items()}
    return xpnn.asarray(new_ids.astype(np.int64)), word_to_id, id_to_word


def big(args: argparse.Namespace) -> None:
    """count_method_big.py: co-occurrence, PPMI, randomized SVD, the queries' neighbours."""
    corpus, word_to_id, id_to_word = load(args)
    vocab_size = len(word_to_id)
    print(f"{args.dataset}: {corpus.shape[0]} words, vocabulary {vocab_size}")
    print("counting  co-occurrence ...")
    C = create_co_matrix(corpus, vocab_size, args.window)
    print("calculating PPMI ...")
    W = ppmi(C, verbose=True)
    print("calculating SVD ...")
    dims = min(args.dims, vocab_size)
    U, _, _ = randomized_svd(W, n_components=dims, n_iter=5, random_state=args.seed)
    word_vecs = U[:, :dims]
    for query in QUERIES:
        most_similar(query, word_to_id, id_to_word, word_vecs, top=5)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with xpnn.use_backend(args.backend) if args.backend else contextlib.nullcontext():
        figure = small(args.out)
        big(args)
    print(f"figure written to {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

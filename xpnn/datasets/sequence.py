"""The toy sequences of vol. 2, ch. 7-8 (the book's ``dataset/sequence.py``), generated.

The book reads two text files, one question-answer pair a line: the question
padded with spaces to a fixed width, then ``_`` and the answer, also padded.

* ``addition.txt``: 50,000 sums of two integers in ``[0, 999]``
  (``16+75  _91  ``): questions 7 characters, answers 5 with the ``_``, a
  vocabulary of 13 characters (digits, ``+``, space, ``_``).
* ``date.txt``: 50,000 dates between 1970-01-01 and 2017-07-24 written the
  ways people write them (``september 27, 1994``, ``8/23/08``,
  ``TUESDAY, SEPTEMBER 25, 1984``), each mapped to ``_YYYY-MM-DD``:
  questions 29 characters, answers 11, a vocabulary of 59 characters.

xpnn does not carry the book's files: :func:`generate_lines` makes data sets
of the same format, size, widths and character set, deterministically (a
fixed seed of its own, no global random state, no network) in well under a
second, once per process. The additions follow the recipe the book's file
shows (that of Keras' ``addition_rnn`` example): each number has 1 to 3
random digits, and a pair already drawn in either order is drawn again. The
dates are uniform over the range: a quarter ``m/d/yy``, a quarter
``Weekday, Month d, yyyy``, half ``Month d, yyyy`` (the month written in
full or in three letters); the words in title case, lower case or capitals
(2:1:1). The lines are not the book's, so its exact accuracies and its
character ids differ; the models' sizes do not.

:func:`load_data` then does what the book's does: the vocabulary in order of
first appearance, the ids, the book's shuffle (``seed=1984``) and its split
(the last tenth is the test set). ``load_data(path=...)`` reads the book's
own files, or any file of that format, instead; so does every ``load_data``
call while the environment variable ``XPNN_SEQUENCE_DIR`` names a folder
holding them (the book's ``dataset`` folder), so that a ported script and the
book's weight files (``AttentionSeq2seq.pkl``) meet the book's own lines and
character ids without a changed line.

Generation and reading are host-side (NumPy); the ids reach the backend only
through :func:`xpnn.backend.asarray`.
"""

from __future__ import annotations

import datetime
import functools
import operator
import os
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.backend import asarray
from xpnn.random import fresh_seed

__all__ = [
    "ANSWER_WIDTH",
    "MAX_FILE_BYTES",
    "NUM_LINES",
    "QUESTION_WIDTH",
    "SEQUENCE_DIR_ENV",
    "SequenceFormatError",
    "char_to_id",
    "generate_lines",
    "get_vocab",
    "id_to_char",
    "load_data",
]

#: The lines of each generated data set (the book's files have as many).
NUM_LINES = 50_000

#: The width of the question of each data set, padded with spaces (the book's).
QUESTION_WIDTH = {"addition.txt": 7, "date.txt": 29}

#: The width of the answer of each data set, ``_`` included, padded with spaces.
ANSWER_WIDTH = {"addition.txt": 5, "date.txt": 11}

#: The largest file ``load_data(path=...)`` reads (the book's date.txt has 2 MB).
MAX_FILE_BYTES = 64 << 20

#: The environment variable naming a folder of the book's files (its
#: ``dataset`` folder): :func:`load_data` without ``path`` reads from it.
SEQUENCE_DIR_ENV = "XPNN_SEQUENCE_DIR"

#: The book's vocabulary, module-level as in the book: filled by
#: :func:`load_data` in order of first appearance, and growing across calls
#: (load ``date.txt`` after ``addition.txt`` and the dates' characters get the
#: ids after the 13 of the additions, as in the book).
char_to_id: dict[str, int] = {}


class _IdToChar(dict):
    """A dict of ids to characters that also takes an id held in a 0-d array.

    The book's scripts look characters up by the elements of the id arrays
    (``[id_to_char[c] for c in x_train[0]]``). A NumPy integer hashes as the
    int it holds; a PyTorch 0-d tensor hashes by identity and an
    array-api-strict array not at all, so a plain dict would miss or refuse
    them. Such a key is retried as ``operator.index(key)`` (the script's
    explicit read of one id); a key that is no integer fails as in a dict.
    """

    def __getitem__(self, key: Any) -> str:
        try:
            return super().__getitem__(key)
        except (KeyError, TypeError):
            if isinstance(key, (int, float, str)):
                raise
            try:
                index = operator.index(key)
            except TypeError:
                raise KeyError(key) from None
            return super().__getitem__(index)


#: The inverse of :data:`char_to_id`; its lookups also take 0-d integer arrays.
id_to_char: dict[int, str] = _IdToChar()

# Fixed seeds of the generators: the data sets are part of the package's
# behaviour, so they must not depend on any global seed.
_SEEDS = {"addition.txt": 20_160_501, "date.txt": 20_170_724}

# English names written out, not strftime's %A/%B: those follow the locale.
_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_FIRST_DAY = datetime.date(1970, 1, 1)
_LAST_DAY = datetime.date(2017, 7, 24)  # the book's file's range


class SequenceFormatError(ValueError):
    """A file cannot be read as a sequence data set (size, encoding or line layout).

    Attributes:
        path: The file at fault.
        problem: What is wrong with it (with the line number where there is
            one), and what to do.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _check_name(file_name: Any) -> str:
    if file_name not in QUESTION_WIDTH:
        raise ValueError(
            f"file_name must be 'addition.txt' or 'date.txt' (generated by xpnn), got "
            f"{file_name!r}; to read a file of your own in the book's format, pass "
            "path='/path/to/file.txt'"
        )
    return file_name


def _addition_lines(rng: np.random.Generator) -> list[str]:
    lines: list[str] = []
    seen: set[tuple[int, int]] = set()
    while len(lines) < NUM_LINES:
        # Keras' recipe, drawn in blocks: 1 to 3 digits, each 0-9, read as an
        # int (so "07" is 7 and small numbers are common).
        lengths = rng.integers(1, 4, size=(65_536, 2))
        digits = rng.integers(0, 10, size=(65_536, 2, 3))
        place = lengths[..., None] - 1 - np.arange(3)
        numbers = np.where(place >= 0, digits * 10 ** np.maximum(place, 0), 0).sum(axis=-1)
        for a, b in numbers.tolist():
            key = (a, b) if a <= b else (b, a)
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"{a}+{b}".ljust(7) + "_" + str(a + b).ljust(4))
            if len(lines) == NUM_LINES:
                break
    return lines


def _date_lines(rng: np.random.Generator) -> list[str]:
    span = (_LAST_DAY - _FIRST_DAY).days
    days = rng.integers(0, span + 1, size=NUM_LINES).tolist()
    kinds = rng.integers(0, 4, size=NUM_LINES).tolist()  # 0: m/d/yy, 1: weekday, 2-3: month
    cases = rng.integers(0, 4, size=NUM_LINES).tolist()  # 0: lower, 1: upper, 2-3: title
    short = rng.integers(0, 2, size=NUM_LINES).tolist()  # month in three letters
    first = _FIRST_DAY.toordinal()
    lines = []
    for day, kind, case, abbr in zip(days, kinds, cases, short, strict=True):
        d = datetime.date.fromordinal(first + day)
        if kind == 0:
            q = f"{d.month}/{d.day}/{d.year % 100:02d}"
        else:
            month = _MONTHS[d.month - 1]
            if kind == 1:
                q = f"{_WEEKDAYS[d.weekday()]}, {month} {d.day}, {d.year}"
            else:
                q = f"{month[:3] if abbr else month} {d.day}, {d.year}"
            q = q.lower() if case == 0 else q.upper() if case == 1 else q
        lines.append(q.ljust(29) + "_" + d.isoformat())
    return lines


@functools.cache
def _generated(file_name: str) -> tuple[str, ...]:
    rng = np.random.default_rng(_SEEDS[file_name])
    make = _addition_lines if file_name == "addition.txt" else _date_lines
    return tuple(make(rng))


def generate_lines(file_name: str = "addition.txt") -> list[str]:
    """The lines of a generated data set, as the book's file holds them (no newlines).

    The same lines on every call, in every process and on every machine:
    the generator has a fixed seed of its own (:func:`xpnn.random.seed` and
    NumPy's global state play no part). Made once per process, then cached.

    Args:
        file_name: ``'addition.txt'`` or ``'date.txt'``.

    Returns:
        :data:`NUM_LINES` strings, each the question padded to
        :data:`QUESTION_WIDTH` then the ``_`` and the answer padded to
        :data:`ANSWER_WIDTH` (12 characters a line for the additions, 40 for
        the dates). A new list each call.

    Raises:
        ValueError: ``file_name`` is neither of the two.
    """
    return list(_generated(_check_name(file_name)))


def _read_lines(path: Path) -> list[str]:
    """The lines of a file in the book's format, checked: one ``_`` each, at one column."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file; pass path= the book's dataset/addition.txt or date.txt "
            "(or its folder), or leave path out to use the data xpnn generates"
        )
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SequenceFormatError(
            path,
            f"{size} bytes, more than the {MAX_FILE_BYTES} a sequence file may have "
            "(the book's date.txt has 2,050,000): pass the right file",
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SequenceFormatError(
            path, f"not UTF-8 text (byte {e.start}): pass a text file in the book's format"
        ) from None
    # The book opens the file in text mode: \r\n and \r end lines too.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline ending the last line
    if not lines:
        raise SequenceFormatError(path, "the file is empty: pass a file of question_answer lines")
    fix = (
        "every line must be the question padded with spaces to one width, one '_', then the "
        "answer padded to one width, as in the book's addition.txt ('16+75  _91  ')"
    )
    column, width = lines[0].find("_"), len(lines[0])
    if column < 1 or width - column < 2:
        raise SequenceFormatError(
            path, f"line 1 ({lines[0]!r}) has no question, '_' or answer; {fix}"
        )
    for number, line in enumerate(lines, 1):
        if len(line) != width or line.count("_") != 1 or line[column] != "_":
            raise SequenceFormatError(
                path,
                f"line {number} ({line!r}) does not match line 1 ({len(line)} characters, "
                f"'_' at {line.find('_')}; line 1 has {width}, '_' at {column}); {fix}",
            )
    return lines


def _update_vocab(lines: list[str]) -> None:
    # The book calls _update_vocab(q) then _update_vocab(a) line by line: the
    # characters of the lines in reading order, first appearance first.
    for char in dict.fromkeys("".join(lines)):
        if char not in char_to_id:
            new_id = len(char_to_id)
            char_to_id[char] = new_id
            id_to_char[new_id] = char


def _to_ids(strings: list[str]) -> np.ndarray:
    """``(len(strings), width)`` int64 ids of equal-length strings, via the code points."""
    codes = np.frombuffer("".join(strings).encode("utf-32-le"), dtype=np.uint32)
    unique, inverse = np.unique(codes, return_inverse=True)
    table = np.array([char_to_id[chr(c)] for c in unique.tolist()], dtype=np.int64)
    return table[inverse].reshape(len(strings), -1)


def _check_seed(seed: Any) -> None:
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32
    ):
        raise ValueError(f"seed must be None or an int in [0, 2**32), got {seed!r}")


def _shuffle_order(n: int, seed: int | None) -> np.ndarray:
    # RandomState(seed).shuffle draws what the book's numpy.random.seed(seed)
    # then numpy.random.shuffle did (the legacy Mersenne Twister), so the
    # same lines come out in the book's order; NumPy's global state is left
    # alone. Without a seed, xpnn's global seed (if set) or fresh entropy.
    rs = np.random.RandomState(fresh_seed() % 2**32 if seed is None else int(seed))
    indices = np.arange(n)
    rs.shuffle(indices)
    return indices


def load_data(
    file_name: str = "addition.txt",
    seed: int | None = 1984,
    *,
    path: str | os.PathLike[str] | None = None,
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """The book's ``sequence.load_data``: a sequence data set as ids, shuffled and split.

    Each line is cut at its ``_``: the question before it, the answer (with
    the ``_``, which the decoder reads as its start symbol) after it. The
    characters enter the vocabulary (:func:`get_vocab`) in order of first
    appearance, reading each question then its answer, line by line; the
    vocabulary keeps growing across calls, as the book's does. The rows are
    shuffled as the book shuffles them (``numpy.random.seed(seed)`` then
    ``numpy.random.shuffle``, with a private generator here) and the last
    ``len(x) // 10`` rows become the test set.

    Differences from the book: the ids are int64 arrays of the active
    backend (the book's are NumPy ``int`` arrays); the data are generated
    (:func:`generate_lines`) unless ``path`` is given, so the characters'
    ids differ from the book's though the vocabulary's size does not; an
    unknown ``file_name`` or a missing file raises (the book prints
    ``No file`` and returns None); NumPy's global random state is neither
    read nor changed (the book's call seeds it).

    Args:
        file_name: ``'addition.txt'`` or ``'date.txt'``: which data set to
            generate; with ``path`` a folder, the name of the file in it.
        seed: The shuffle's seed (the book's 1984 gives the book's order of
            the same lines), an int in ``[0, 2**32)``. ``None`` does not
            reseed in the book; here it takes xpnn's global seed's next value
            (:func:`xpnn.random.seed`) if one is set, else fresh entropy.
        path: A file in the book's format to read instead of generating (the
            book's ``dataset/addition.txt`` or ``date.txt``, or your own), or
            a folder holding ``file_name``. The file may have at most
            :data:`MAX_FILE_BYTES`, must be UTF-8, and every line must be as
            long as the first with exactly one ``_``, at the first line's
            column. Without it, the folder in the environment variable
            ``XPNN_SEQUENCE_DIR`` (:data:`SEQUENCE_DIR_ENV`) when that is set
            and not empty, else the generated data.

    Returns:
        ``(x_train, t_train), (x_test, t_test)``: int64 ids on the active
        backend. For the generated additions ``x_train`` is ``(45000, 7)``,
        ``t_train`` ``(45000, 5)``, the test arrays ``(5000, 7)`` and
        ``(5000, 5)``; for the dates the widths are 29 and 11.

    Raises:
        ValueError: ``file_name`` is not one of the two (without a folder
            ``path``), or ``seed`` is not None or an int in ``[0, 2**32)``.
            Checked before anything is read or generated.
        FileNotFoundError: ``path`` (or ``file_name`` in the folder
            ``path``, or in ``XPNN_SEQUENCE_DIR``) does not exist.
        SequenceFormatError: The file is too large, not UTF-8, empty, or a
            line's length or ``_`` differs from the first line's; the message
            names the file and the line, and the layout expected.
    """
    env_dir = os.environ.get(SEQUENCE_DIR_ENV, "") if path is None else ""
    if path is None and not env_dir:
        _check_name(file_name)
    _check_seed(seed)
    if path is None and not env_dir:
        lines = list(_generated(file_name))
    else:
        source = Path(path if path is not None else env_dir)
        if env_dir and not source.is_dir():
            raise FileNotFoundError(
                f"{SEQUENCE_DIR_ENV}={env_dir}: no such folder; set it to the folder holding "
                f"the book's {file_name} (its dataset folder), or unset it to use the "
                "generated data"
            )
        if source.is_dir():
            if not isinstance(file_name, str) or not file_name:
                raise ValueError(
                    f"file_name must name a file in the folder {source}, got {file_name!r}"
                )
            source = source / file_name
        if env_dir and not source.is_file():
            raise FileNotFoundError(
                f"{source}: no such file in {SEQUENCE_DIR_ENV}={env_dir}; put the book's "
                f"{file_name} there, or unset {SEQUENCE_DIR_ENV} to use the generated data"
            )
        lines = _read_lines(source)
    # Every line is checked before the vocabulary changes.
    column = lines[0].index("_")
    _update_vocab(lines)
    x = _to_ids([line[:column] for line in lines])
    t = _to_ids([line[column:] for line in lines])
    indices = _shuffle_order(len(x), seed)
    x, t = x[indices], t[indices]
    split_at = len(x) - len(x) // 10  # 10% for validation, as the book
    return (asarray(x[:split_at]), asarray(t[:split_at])), (
        asarray(x[split_at:]),
        asarray(t[split_at:]),
    )


def get_vocab() -> tuple[dict[str, int], dict[int, str]]:
    """The book's ``get_vocab``: ``(char_to_id, id_to_char)`` of the data loaded so far.

    The module's own dicts (:data:`char_to_id`, :data:`id_to_char`), not
    copies, as in the book: empty before the first :func:`load_data`, and
    growing with each file loaded.
    """
    return char_to_id, id_to_char

"""The toy sequences of vol. 2, ch. 7-8: ``xpnn.datasets.sequence`` (the book's ``sequence.py``).

The data are generated: these tests check that the generation is
deterministic (in a fresh process too), that every line is right (each sum
adds up; each date question, parsed back with :mod:`datetime`, is its
answer), that the lines have the book's widths and character sets, and that
``load_data`` gives what the book's algorithm, re-typed here, gives on the
same lines: vocabulary, ids, shuffle and split. ``path=`` reads small files
written in the book's format, and refuses broken ones before it changes the
vocabulary.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import xpnn
from xpnn.datasets import SequenceFormatError, load_sequence, sequence

NAMES = ("addition.txt", "date.txt")
MONTHS = (
    "January February March April May June July August September October November December"
).split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()


@pytest.fixture(autouse=True)
def fresh_vocab(monkeypatch):
    """An empty module vocabulary for each test, the old one put back afterwards.

    ``XPNN_SEQUENCE_DIR`` is unset: the tests that want it set it.
    """
    monkeypatch.delenv(sequence.SEQUENCE_DIR_ENV, raising=False)
    saved = dict(sequence.char_to_id), dict(sequence.id_to_char)
    sequence.char_to_id.clear()
    sequence.id_to_char.clear()
    yield
    sequence.char_to_id.clear()
    sequence.id_to_char.clear()
    sequence.char_to_id.update(saved[0])
    sequence.id_to_char.update(saved[1])


def book_load_lines(lines: list[str], seed: int = 1984):
    """The book's ``load_data`` (vol. 2, dataset/sequence.py) re-typed, on lines given here.

    The book reads ``line[:idx]`` and ``line[idx:-1]`` of lines ending in
    ``\\n``; these lines have none, so the answer is ``line[idx:]``. NumPy's
    global state is saved and put back around the book's seeding.
    """
    char_to_id, id_to_char = {}, {}

    def update_vocab(txt):
        for char in list(txt):
            if char not in char_to_id:
                tmp_id = len(char_to_id)
                char_to_id[char] = tmp_id
                id_to_char[tmp_id] = char

    questions, answers = [], []
    for line in lines:
        idx = line.find("_")
        questions.append(line[:idx])
        answers.append(line[idx:])
    for q, a in zip(questions, answers, strict=True):
        update_vocab(q)
        update_vocab(a)
    x = np.zeros((len(questions), len(questions[0])), dtype=int)
    t = np.zeros((len(questions), len(answers[0])), dtype=int)
    for i, sentence in enumerate(questions):
        x[i] = [char_to_id[c] for c in list(sentence)]
    for i, sentence in enumerate(answers):
        t[i] = [char_to_id[c] for c in list(sentence)]
    state = np.random.get_state()  # noqa: NPY002
    try:
        indices = np.arange(len(x))
        np.random.seed(seed)  # noqa: NPY002
        np.random.shuffle(indices)  # noqa: NPY002
    finally:
        np.random.set_state(state)  # noqa: NPY002
    x, t = x[indices], t[indices]
    split_at = len(x) - len(x) // 10
    return ((x[:split_at], t[:split_at]), (x[split_at:], t[split_at:])), char_to_id, id_to_char


def parse_date_question(q: str) -> datetime.date:
    """The date a question of date.txt means, read with datetime (English names, any case)."""
    q = q.rstrip()
    if "/" in q:
        month, day, year = (int(p) for p in q.split("/"))
        assert 0 <= year <= 99 and "0" not in (q[0], q.split("/")[1][0]), q
        return datetime.date(1900 + year if year >= 70 else 2000 + year, month, day)
    words = q.split(", ", 1)
    if len(words) == 2 and words[0].title() in WEEKDAYS:
        weekday, rest = words
        d = parse_date_question(rest)
        assert weekday.title() == WEEKDAYS[d.weekday()], q
        return d
    # strptime matches month names case-insensitively; %B and %b read full and short names.
    fmt = "%B %d, %Y" if q.split()[0].title() in MONTHS else "%b %d, %Y"
    assert q.split()[0].title() in MONTHS or q.split()[0].title() in (m[:3] for m in MONTHS), q
    return datetime.datetime.strptime(q, fmt).date()


# ------------------------------------------------------------- generation


def test_generation_is_deterministic_and_fast():
    for name in NAMES:
        t0 = time.perf_counter()
        again = list(sequence._generated.__wrapped__(name))  # bypass the process cache
        seconds = time.perf_counter() - t0
        assert again == sequence.generate_lines(name)
        # The brief: well under a second or two; 5 s leaves room for a loaded CI machine.
        assert seconds < 5.0, f"generating {name} took {seconds:.2f} s"
    # A new list each call: changing it does not change the cache.
    lines = sequence.generate_lines("addition.txt")
    lines[0] = "changed"
    assert sequence.generate_lines("addition.txt")[0] != "changed"


def test_generation_ignores_global_seeds_across_processes():
    code = (
        "import hashlib, sys, numpy as np, xpnn\n"
        "np.random.seed(int(sys.argv[1])); xpnn.random.seed(int(sys.argv[1]))\n"
        "from xpnn.datasets import sequence\n"
        "for n in ('addition.txt', 'date.txt'):\n"
        "    print(hashlib.sha256('\\n'.join(sequence.generate_lines(n)).encode()).hexdigest())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XPNN_SEED"}
    here = [
        hashlib.sha256("\n".join(sequence.generate_lines(n)).encode()).hexdigest() for n in NAMES
    ]
    for global_seed in ("0", "7"):
        out = subprocess.run(
            [sys.executable, "-c", code, global_seed],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=120,
        ).stdout.split()
        assert out == here


@pytest.mark.parametrize(
    ("name", "q_width", "a_width", "vocab"), [("addition.txt", 7, 5, 13), ("date.txt", 29, 11, 59)]
)
def test_lines_have_the_books_layout(name, q_width, a_width, vocab):
    lines = sequence.generate_lines(name)
    assert len(lines) == sequence.NUM_LINES == 50_000
    assert sequence.QUESTION_WIDTH[name] == q_width and sequence.ANSWER_WIDTH[name] == a_width
    for line in lines:
        assert len(line) == q_width + a_width and line.count("_") == 1 and line[q_width] == "_"
        assert line[0] != " " and line[q_width + 1] != " "  # left-justified
    # The book's vocabulary sizes (13 and 59 characters).
    assert len(set("".join(lines))) == vocab


def test_every_addition_is_right():
    pairs = set()
    for line in sequence.generate_lines("addition.txt"):
        q, a = line.split("_")
        m = re.fullmatch(r"(0|[1-9][0-9]{0,2})\+(0|[1-9][0-9]{0,2}) *", q)
        assert m, line
        x, y = int(m.group(1)), int(m.group(2))
        assert re.fullmatch(r"[0-9]+ *", a) and int(a) == x + y, line
        pairs.add((min(x, y), max(x, y)))
    # As in the book's file: no pair twice, in either order.
    assert len(pairs) == 50_000
    # Small and large numbers both occur (1 to 3 digits, as the book's file).
    lengths = {len(str(p)) for pair in pairs for p in pair}
    assert lengths == {1, 2, 3}


def test_every_date_answer_is_its_question():
    kinds = set()
    for line in sequence.generate_lines("date.txt"):
        q, a = line[:29], line[29:]
        d = datetime.date.fromisoformat(a[1:])
        assert a == "_" + d.isoformat()
        assert datetime.date(1970, 1, 1) <= d <= datetime.date(2017, 7, 24), line
        assert parse_date_question(q) == d, line
        shape = "numeric" if "/" in q else "weekday" if q.count(",") == 2 else "month"
        case = "lower" if q.islower() else "upper" if q.isupper() else "title"
        kinds.add((shape, "" if shape == "numeric" else case))
    # Every form of the book's file occurs.
    assert kinds == {("numeric", "")} | {
        (s, c) for s in ("weekday", "month") for c in ("lower", "upper", "title")
    }


# ------------------------------------------------------------- load_data


@pytest.mark.parametrize("name", NAMES)
def test_load_data_is_the_books_algorithm(backend, name):
    (x_train, t_train), (x_test, t_test) = sequence.load_data(name)
    q, a = sequence.QUESTION_WIDTH[name], sequence.ANSWER_WIDTH[name]
    assert tuple(x_train.shape) == (45_000, q) and tuple(t_train.shape) == (45_000, a)
    assert tuple(x_test.shape) == (5_000, q) and tuple(t_test.shape) == (5_000, a)
    for arr in (x_train, t_train, x_test, t_test):
        assert xpnn.backend_of(arr).spec == backend.spec
        assert arr.dtype == backend.xp.int64
    ((bx, bt), (bxt, btt)), book_c2i, book_i2c = book_load_lines(sequence.generate_lines(name))
    for ours, book in ((x_train, bx), (t_train, bt), (x_test, bxt), (t_test, btt)):
        np.testing.assert_array_equal(xpnn.to_numpy(ours), book)
    char_to_id, id_to_char = sequence.get_vocab()
    assert char_to_id == book_c2i and id_to_char == book_i2c
    assert list(char_to_id) == list(book_c2i)  # first-appearance order


def test_get_vocab_decodes_the_questions(backend):
    (x_train, t_train), (x_test, t_test) = sequence.load_data("date.txt", seed=3)
    char_to_id, id_to_char = sequence.get_vocab()
    assert sequence.get_vocab()[0] is char_to_id  # the module's dicts, as the book's
    assert {id_to_char[i]: i for i in id_to_char} == char_to_id
    lines = sequence.generate_lines("date.txt")
    x = np.concatenate([xpnn.to_numpy(x_train), xpnn.to_numpy(x_test)])
    t = np.concatenate([xpnn.to_numpy(t_train), xpnn.to_numpy(t_test)])
    decoded = [
        "".join(id_to_char[int(i)] for i in xr) + "".join(id_to_char[int(i)] for i in tr)
        for xr, tr in zip(x, t, strict=True)
    ]
    order = np.random.RandomState(3).permutation(len(lines))
    assert decoded == [lines[i] for i in order]


def test_vocab_grows_across_calls_as_the_books():
    sequence.load_data("addition.txt")
    first = dict(sequence.char_to_id)
    assert len(first) == 13
    (x, _), _ = sequence.load_data("date.txt")
    both = set("".join(sequence.generate_lines("addition.txt"))) | set(
        "".join(sequence.generate_lines("date.txt"))
    )
    assert len(sequence.char_to_id) == len(both)
    assert {c: sequence.char_to_id[c] for c in first} == first  # old ids kept
    assert int(xpnn.to_numpy(x).max()) < len(both)


def test_seed_none_leaves_numpy_alone_and_follows_xpnn_seed():
    state = np.random.get_state()  # noqa: NPY002
    sequence.load_data("addition.txt")
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2] == after[2]
    saved = xpnn.random.get_seed()
    try:
        xpnn.random.seed(11)
        (a, _), _ = sequence.load_data("addition.txt", seed=None)
        xpnn.random.seed(11)
        (b, _), _ = sequence.load_data("addition.txt", seed=None)
        (c, _), _ = sequence.load_data("addition.txt", seed=None)
    finally:
        xpnn.random.seed(saved)
    np.testing.assert_array_equal(xpnn.to_numpy(a), xpnn.to_numpy(b))
    assert not np.array_equal(xpnn.to_numpy(a), xpnn.to_numpy(c))


# ------------------------------------------------------------- path=

SMALL = ["16+75  _91  ", "52+607 _659 ", "75+22  _97  ", "8+1    _9   ", "0+0    _0   "] * 3


def test_path_reads_a_file_in_the_books_format(backend, tmp_path):
    file = tmp_path / "addition.txt"
    file.write_text("".join(line + "\n" for line in SMALL))
    (x_train, t_train), (x_test, t_test) = sequence.load_data(path=file)
    ((bx, bt), (bxt, btt)), book_c2i, _ = book_load_lines(SMALL)
    for ours, book in ((x_train, bx), (t_train, bt), (x_test, bxt), (t_test, btt)):
        np.testing.assert_array_equal(xpnn.to_numpy(ours), book)
    assert tuple(x_test.shape) == (1, 7) and tuple(t_train.shape) == (14, 5)
    assert sequence.get_vocab()[0] == book_c2i
    # A folder and a name; \r\n line ends and no final newline read the same.
    other = tmp_path / "mine.txt"
    other.write_bytes("\r\n".join(SMALL).encode())
    (x2, _), (_, t2) = load_sequence("mine.txt", path=tmp_path)
    np.testing.assert_array_equal(xpnn.to_numpy(x2), bx)
    np.testing.assert_array_equal(xpnn.to_numpy(t2), btt)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("16+75  _91  \n52+607 _659\n", "line 2"),  # ragged
        ("16+75  _91  \n52+607 _659 \n\n", "line 3"),  # a blank line
        ("16+75  _91  \n52+60_ _659 \n", "line 2"),  # two '_'
        ("16+75  _91  \n52+607  659_\n", "line 2"),  # '_' elsewhere
        ("16+75   91  \n", "line 1"),  # no '_'
        ("_16+75  91  \n", "line 1"),  # no question
        ("", "empty"),
    ],
)
def test_path_refuses_broken_files_before_changing_anything(backend, tmp_path, content, needle):
    sequence.load_data("addition.txt")
    before = dict(sequence.char_to_id)
    file = tmp_path / "bad.txt"
    file.write_text(content)
    with pytest.raises(SequenceFormatError, match=needle) as info:
        sequence.load_data(path=file)
    assert info.value.path == str(file) and str(file) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert sequence.char_to_id == before


def test_path_refuses_missing_large_and_binary_files(backend, tmp_path, monkeypatch):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match=r"nope\.txt.*path="):
        sequence.load_data(path=missing)
    with pytest.raises(FileNotFoundError, match=r"date\.txt"):
        sequence.load_data("date.txt", path=tmp_path)  # a folder without the file
    with pytest.raises(ValueError, match="file_name must name a file"):
        sequence.load_data(None, path=tmp_path)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe+1 _2\n")
    with pytest.raises(SequenceFormatError, match="UTF-8"):
        sequence.load_data(path=binary)
    big = tmp_path / "big.txt"
    big.write_text("".join(line + "\n" for line in SMALL))
    monkeypatch.setattr(sequence, "MAX_FILE_BYTES", 20)
    with pytest.raises(SequenceFormatError, match="more than the 20"):
        sequence.load_data(path=big)
    assert sequence.char_to_id == {}


def test_sequence_dir_env_reads_the_books_files(backend, tmp_path, monkeypatch):
    # A port changes no line: XPNN_SEQUENCE_DIR makes load_data('addition.txt')
    # read the book's file, so its weight files meet the book's character ids.
    (tmp_path / "addition.txt").write_text("".join(line + "\n" for line in SMALL))
    monkeypatch.setenv(sequence.SEQUENCE_DIR_ENV, str(tmp_path))
    (x_train, t_train), (x_test, t_test) = sequence.load_data("addition.txt")
    ((bx, bt), (bxt, btt)), book_c2i, _ = book_load_lines(SMALL)
    for ours, book in ((x_train, bx), (t_train, bt), (x_test, bxt), (t_test, btt)):
        np.testing.assert_array_equal(xpnn.to_numpy(ours), book)
    assert sequence.get_vocab()[0] == book_c2i
    # path= still wins over the variable.
    other = tmp_path / "other"
    other.mkdir()
    (other / "addition.txt").write_text("1+2    _3    \n" * 10)
    (x2, _), _ = sequence.load_data("addition.txt", path=other)
    assert tuple(x2.shape) == (9, 7)


def test_sequence_dir_env_refuses_a_missing_folder_or_file(tmp_path, monkeypatch):
    monkeypatch.setenv(sequence.SEQUENCE_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"XPNN_SEQUENCE_DIR=.*nowhere.*unset it"):
        sequence.load_data("addition.txt")
    monkeypatch.setenv(sequence.SEQUENCE_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"date\.txt.*XPNN_SEQUENCE_DIR.*unset"):
        sequence.load_data("date.txt")
    assert sequence.char_to_id == {} and sequence.id_to_char == {}
    # An empty value is unset: the generated data.
    monkeypatch.setenv(sequence.SEQUENCE_DIR_ENV, "")
    (x, _), _ = sequence.load_data("addition.txt")
    assert tuple(x.shape) == (45000, 7)


def test_id_to_char_takes_ids_held_in_arrays(backend):
    # The book's show_addition_dataset.py: [id_to_char[c] for c in x_train[0]].
    # A PyTorch 0-d tensor hashes by identity, so a plain dict would miss it.
    (x_train, _), _ = sequence.load_data("addition.txt")
    char_to_id, id_to_char = sequence.get_vocab()
    host = xpnn.to_numpy(x_train)
    row = [x_train[0, j] for j in range(int(x_train.shape[1]))]
    assert "".join(id_to_char[c] for c in row) == "".join(id_to_char[int(i)] for i in host[0])
    assert [char_to_id[id_to_char[c]] for c in row] == [int(i) for i in host[0]]
    for wrong in (99, "7", 0.5, len(char_to_id), xpnn.asarray(len(char_to_id))):
        with pytest.raises(KeyError):
            id_to_char[wrong]
    with pytest.raises(KeyError):
        id_to_char[xpnn.asarray(0.0)]  # a float array is no id


@pytest.mark.parametrize("name", ["ptb.txt", "addition", "", None, "ADDITION.TXT"])
def test_unknown_names_are_refused_not_none(name):
    with pytest.raises(ValueError, match=r"'addition\.txt' or 'date\.txt'.*path="):
        sequence.load_data(name)
    with pytest.raises(ValueError, match="path="):
        sequence.generate_lines(name)
    assert sequence.char_to_id == {}


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "1984"])
def test_bad_seeds_are_refused_first(seed):
    with pytest.raises(ValueError, match="seed"):
        sequence.load_data("addition.txt", seed=seed)
    assert sequence.char_to_id == {}

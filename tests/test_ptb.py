"""The Penn Treebank loader (``xpnn.datasets.ptb``, the book's ``dataset/ptb.py``).

No test reaches the internet: the mirrors are a local HTTP server on
127.0.0.1 serving three tiny fake PTB files, whose MD5s replace the published
ones (the ``official`` fixture); an autouse fixture points the default mirrors
at a closed port and the data folder into ``tmp_path`` in case a test forgets.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from conftest import refused_url
from test_download import Mirror  # the same local server (good, wrong, stall...)

import xpnn
from xpnn.datasets import DownloadError, PTBFormatError, load_ptb, ptb
from xpnn.datasets import download as dl

TIMEOUT = 3.0  # seconds: the bound on every network wait in these tests

# Fake files in PTB's layout: every line starts and ends with a space.
TEXTS = {
    "ptb.train.txt": " the cat sat on the mat \n a dog <unk> ran \n the dog sat N \n",
    "ptb.valid.txt": " a cat ran \n the <unk> mat \n",
    "ptb.test.txt": " dog on N \n",
}
BLOBS = {name: text.encode("utf-8") for name, text in TEXTS.items()}
DEFAULT_MIRRORS = ptb.PTB_MIRRORS  # taken before any fixture replaces them
SPLIT_FILES = {"train": "ptb.train.txt", "val": "ptb.valid.txt", "test": "ptb.test.txt"}


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def book_load_data(train_text: str, split_text: str):
    """The book's algorithm (vol. 2, dataset/ptb.py), written out as reference."""
    word_to_id, id_to_word = {}, {}
    words = train_text.replace("\n", "<eos>").strip().split()
    for word in words:
        if word not in word_to_id:
            tmp_id = len(word_to_id)
            word_to_id[word] = tmp_id
            id_to_word[tmp_id] = word
    words = split_text.replace("\n", "<eos>").strip().split()
    corpus = np.array([word_to_id[w] for w in words])
    return corpus, word_to_id, id_to_word


# ------------------------------------------------------ the local mirror


@pytest.fixture
def mirror():
    m = Mirror(BLOBS)
    yield m
    m.close()


@pytest.fixture(autouse=True)
def _offline(offline, monkeypatch):
    """Offline (conftest.offline), and PTB's default mirrors refuse too."""
    monkeypatch.setattr(ptb, "PTB_MIRRORS", (refused_url(),))
    monkeypatch.delenv(ptb.MIRRORS_ENV, raising=False)


@pytest.fixture
def official(monkeypatch):
    """Make the fake files the "official" PTB files."""
    monkeypatch.setattr(ptb, "PTB_MD5", {name: md5(b) for name, b in BLOBS.items()})


def load(data_type, data_dir, *mirrors, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("timeout", TIMEOUT)
    return ptb.load_data(data_type, data_dir, mirrors=list(mirrors), **kwargs)


# -------------------------------------------------------------- the table


def test_published_md5_and_book_names():
    # torchtext's PennTreebank (torchtext/datasets/penntreebank.py), written
    # out again so that a typo in the module cannot agree with itself.
    assert ptb.PTB_MD5 == {
        "ptb.train.txt": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
        "ptb.valid.txt": "aa0affc06ff7c36e977d7cd49e3839bf",
        "ptb.test.txt": "8b80168b89c18661a38ef683c0dc3721",
    }
    assert ptb.key_file == {
        "train": "ptb.train.txt",
        "test": "ptb.test.txt",
        "valid": "ptb.valid.txt",
    }
    assert ptb.url_base == "https://raw.githubusercontent.com/tomsercu/lstm/master/data/"
    assert set(ptb.PTB_MAX_BYTES) == set(ptb.PTB_MD5)


def test_default_mirrors_start_with_the_books_source():
    assert DEFAULT_MIRRORS[0] == ptb.url_base
    assert all(m.startswith("https://") for m in DEFAULT_MIRRORS)


# ------------------------------------------------------------ the loader


@pytest.mark.parametrize("data_type", ["train", "val", "test"])
def test_matches_the_books_algorithm(backend, mirror, official, tmp_path, data_type):
    corpus, word_to_id, id_to_word = load(data_type, tmp_path, mirror.base("good"))
    want = book_load_data(TEXTS["ptb.train.txt"], TEXTS[SPLIT_FILES[data_type]])
    assert corpus.dtype == backend.xp.int64
    assert tuple(corpus.shape) == want[0].shape
    np.testing.assert_array_equal(xpnn.to_numpy(corpus), want[0])
    assert word_to_id == want[1]
    assert id_to_word == want[2]
    assert " ".join(word_to_id) == "the cat sat on mat <eos> a dog <unk> ran N"


def test_every_split_has_the_training_vocabulary(mirror, official, tmp_path):
    _, w_train, i_train = load("train", tmp_path, mirror.base("good"))
    for data_type in ("val", "valid", "test"):
        _, w, i = load(data_type, tmp_path, mirror.base("good"))
        assert (w, i) == (w_train, i_train)
    assert ptb.load_vocab(tmp_path, download=False) == (w_train, i_train)


def test_downloads_into_the_data_folder_once(mirror, official, tmp_path, monkeypatch):
    root = tmp_path / "root"
    monkeypatch.setenv("XPNN_DATA_DIR", str(root))
    monkeypatch.setenv(ptb.MIRRORS_ENV, mirror.base("good"))
    assert ptb.ptb_data_dir() == root / "ptb"
    load_ptb("val", progress=False)  # the train file (vocabulary) and the split's
    assert sorted(mirror.requests) == ["/good/ptb.train.txt", "/good/ptb.valid.txt"]
    assert sorted(os.listdir(root / "ptb")) == ["ptb.train.txt", "ptb.valid.txt"]
    load_ptb("val", progress=False)
    load_ptb("train", progress=False)
    assert len(mirror.requests) == 2  # nothing asked for again
    load_ptb("test", progress=False)
    assert mirror.requests[2:] == ["/good/ptb.test.txt"]


def test_corrupt_download_is_refused_and_not_kept(mirror, official, tmp_path, monkeypatch):
    with pytest.raises(DownloadError) as err:
        load("train", tmp_path, mirror.base("wrong"))
    [(url, why)] = err.value.failures
    assert url.endswith("/wrong/ptb.train.txt")
    assert "MD5 mismatch: got " in why
    assert f"expected {md5(BLOBS['ptb.train.txt'])}" in why
    assert os.listdir(tmp_path) == []  # neither the file nor a .part
    # The official MD5 of the real file refuses the fake one as well.
    real = dict(ptb.PTB_MD5, **{"ptb.train.txt": "f26c4b92c5fdc7b3f8c7cdcb991d8420"})
    monkeypatch.setattr(ptb, "PTB_MD5", real)
    with pytest.raises(DownloadError, match="MD5 mismatch"):
        load("train", tmp_path, mirror.base("good"))
    assert os.listdir(tmp_path) == []


def test_oversized_download_is_refused(mirror, official, tmp_path, monkeypatch):
    monkeypatch.setattr(ptb, "PTB_MAX_BYTES", dict(ptb.PTB_MAX_BYTES, **{"ptb.train.txt": 10}))
    with pytest.raises(DownloadError, match="more than the expected 10"):
        load("train", tmp_path, mirror.base("good"))
    assert os.listdir(tmp_path) == []


def test_unreachable_first_mirror_falls_back_to_the_second(mirror, official, tmp_path):
    corpus, _, _ = load("test", tmp_path, refused_url(), mirror.base("good"))
    assert len(corpus) == 4
    assert sorted(mirror.requests) == ["/good/ptb.test.txt", "/good/ptb.train.txt"]


def test_stalling_first_mirror_falls_back_to_the_second(mirror, official, tmp_path):
    corpus, _, _ = load("train", tmp_path, mirror.base("stall"), mirror.base("good"), timeout=0.5)
    assert len(corpus) == 17
    assert mirror.requests == ["/stall/ptb.train.txt", "/good/ptb.train.txt"]


def test_every_mirror_failing_says_what_to_do(mirror, official, tmp_path):
    with pytest.raises(DownloadError) as err:
        load("val", tmp_path, refused_url(), mirror.base("missing"))
    text = str(err.value)
    assert "HTTP 404" in text and "ptb.train.txt" in text
    for part in ("ptb.valid.txt", str(tmp_path), ptb.MIRRORS_ENV, "english as ptb"):
        assert part in text


def test_offline_error_names_files_folder_and_the_missing_corpus(mirror, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load("test", tmp_path / "none", mirror.base("good"), download=False)
    text = str(err.value)
    for part in ("ptb.train.txt", "ptb.test.txt", str(tmp_path / "none"), "download=False"):
        assert part in text
    assert "from xpnn.datasets import english as ptb" in text
    assert mirror.requests == []
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("data_type", ["training", "VAL", "", None, 0, ["train"]])
def test_bad_data_type_is_refused_before_any_download(mirror, tmp_path, data_type):
    with pytest.raises(ValueError, match="data_type must be 'train', 'val'"):
        load(data_type, tmp_path / "d", mirror.base("good"))
    assert mirror.requests == []
    assert not (tmp_path / "d").exists()


# --------------------------------------------------- files already there


def test_files_already_there_are_used_as_they_are(mirror, tmp_path):
    (tmp_path / "ptb.train.txt").write_text("x y\nz x\n", encoding="utf-8")
    corpus, word_to_id, _ = load("train", tmp_path, mirror.base("good"))
    assert mirror.requests == []  # not checked against the published MD5
    # Lines without PTB's spaces: <eos> is still a word of its own.
    assert word_to_id == {"x": 0, "y": 1, "<eos>": 2, "z": 3}
    np.testing.assert_array_equal(xpnn.to_numpy(corpus), [0, 1, 2, 3, 0, 2])


def test_text_that_is_not_utf8_is_refused(tmp_path):
    (tmp_path / "ptb.train.txt").write_bytes(b" caf\xe9 \n")
    with pytest.raises(PTBFormatError) as err:
        ptb.load_data("train", tmp_path, download=False)
    assert str(tmp_path / "ptb.train.txt") in str(err.value)
    assert "not UTF-8" in str(err.value) and "delete it" in str(err.value)


def test_a_file_too_large_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(ptb, "MAX_TEXT_BYTES", 8)
    (tmp_path / "ptb.train.txt").write_bytes(BLOBS["ptb.train.txt"])
    with pytest.raises(PTBFormatError, match="more than the 8 a PTB text file may have"):
        ptb.load_data("train", tmp_path, download=False)


def test_a_word_missing_from_the_training_vocabulary_is_named(tmp_path):
    (tmp_path / "ptb.train.txt").write_text(" a b \n", encoding="utf-8")
    (tmp_path / "ptb.test.txt").write_text(" a zebra \n", encoding="utf-8")
    with pytest.raises(PTBFormatError) as err:
        ptb.load_data("test", tmp_path, download=False)
    assert "'zebra'" in str(err.value) and str(tmp_path / "ptb.test.txt") in str(err.value)


# ------------------------------------------------ download()'s MD5 check


def test_download_checks_md5(mirror, tmp_path):
    data = BLOBS["ptb.test.txt"]
    base = mirror.base("good")
    path = dl.download("ptb.test.txt", tmp_path, base, None, progress=False, md5=md5(data))
    assert path.read_bytes() == data
    # Both given: both checked.
    with pytest.raises(DownloadError, match="MD5 mismatch"):
        dl.download(
            "ptb.test.txt",
            tmp_path / "b",
            base,
            hashlib.sha256(data).hexdigest(),
            progress=False,
            md5="0" * 32,
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "a checksum is needed"),
        ({"md5": "abc"}, "md5 must be 32 hex digits"),
        ({"md5": "g" * 32}, "md5 must be 32 hex digits"),
    ],
)
def test_download_refuses_bad_md5_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        dl.download("f.txt", tmp_path, "http://127.0.0.1:9/", None, progress=False, **kwargs)
    assert os.listdir(tmp_path) == []


def test_resolve_mirrors_for_another_data_set():
    env = {ptb.MIRRORS_ENV: "http://a/x", dl.MIRRORS_ENV: "http://m/"}
    kwargs = {"env_var": ptb.MIRRORS_ENV, "default": ("https://d/",)}
    assert dl.resolve_mirrors(None, environ=env, **kwargs) == ("http://a/x/",)
    assert dl.resolve_mirrors(None, environ={}, **kwargs) == ("https://d/",)
    assert dl.resolve_mirrors("http://c/", environ=env, **kwargs) == ("http://c/",)
    with pytest.raises(ValueError, match=ptb.MIRRORS_ENV):
        dl.resolve_mirrors(None, environ={ptb.MIRRORS_ENV: "ftp://x/"}, **kwargs)


def test_the_books_module_names_exist(tmp_path, monkeypatch):
    """dataset/ptb.py's public names: url_base, key_file, save_file, vocab_file, dataset_dir."""
    assert ptb.url_base.startswith("https://") and ptb.key_file["valid"] == "ptb.valid.txt"
    assert ptb.save_file["train"] == "ptb.train.npy" and ptb.vocab_file == "ptb.vocab.pkl"
    monkeypatch.setenv("XPNN_DATA_DIR", str(tmp_path))
    assert ptb.dataset_dir == str(ptb.ptb_data_dir()) and ptb.dataset_dir.startswith(str(tmp_path))
    with pytest.raises(AttributeError, match="no attribute 'datasetdir'"):
        ptb.datasetdir  # noqa: B018

"""``xpnn train --model cbow|skipgram``: vol. 2 ch. 4's train.py and eval.py as one command.

A small PTB-format folder stands in for the corpus (``--dataset ptb
--data-dir``); the shipped English corpus is trained for a few iterations.
Refused options end with one line and exit status 2 before any data is read.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.cli import main, train_words


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every test here is offline (see conftest.offline)."""


@pytest.fixture
def ptb_dir(tmp_path):
    """A PTB-format training file: Zipf-distributed words, some of the book's queries."""
    rng = np.random.default_rng(0)
    words = ["you", "year", "king", "man", "queen", "car"] + [f"w{i}" for i in range(194)]
    p = 1.0 / np.arange(1, len(words) + 1)
    lines = [" ".join(rng.choice(words, size=12, p=p / p.sum())) for _ in range(400)]
    folder = tmp_path / "ptb"
    folder.mkdir()
    (folder / "ptb.train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("model", ["cbow", "skipgram"])
def test_trains_prints_the_neighbours_and_saves(capsys, tmp_path, ptb_dir, model):
    save = tmp_path / "out" / f"{model}.npz"
    argv = ["train", "--model", model, "--dataset", "ptb", "--data-dir", ptb_dir]
    code, out, err = run(capsys, *argv, "--epochs", 2, "--eval-interval", 10, "--save", save)
    assert code == 0, err
    assert f"{train_words.WORD_MODELS[model]}(hidden=100, window=5)" in out
    losses = [float(line.rsplit("loss", 1)[1]) for line in out.splitlines() if "| loss" in line]
    assert len(losses) >= 4 and losses[-1] < losses[0]
    assert "\n[query] you\n" in out and "toyota is not found" in out
    assert "[analogy] king:man = queen:?" in out
    assert out.rstrip().splitlines()[-1] == f"parameters: {save}"
    loaded = xpnn.io.load(save)
    assert type(loaded).__name__ == train_words.WORD_MODELS[model]
    assert tuple(loaded.word_vecs.shape) == (201, 100)
    # The same command, the same seed: the same vectors.
    again = tmp_path / "again.npz"
    code, _, _ = run(capsys, *argv, "--epochs", 2, "--eval-interval", 10, "--save", again)
    np.testing.assert_array_equal(
        xpnn.to_numpy(xpnn.io.load(again).word_vecs), xpnn.to_numpy(loaded.word_vecs)
    )


def test_the_shipped_corpus_trains_offline(capsys):
    code, out, err = run(
        capsys, "train", "--model", "cbow", "--iters", 3, "--train-size", 300, "--quiet"
    )
    assert code == 0, err
    assert out.startswith("final loss ") and "[query]" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "mnist5k"], "trains on a text corpus, not --dataset mnist5k"),
        (["--eval-samples", "10"], "--eval-samples does not apply to --model cbow"),
        (["--precision", "mixed16"], "--precision does not apply"),
        (["--cuda-graph"], "--cuda-graph does not apply"),
        (["--dtype", "float16"], "--dtype float16"),
        (["--data-dir", "."], "--data-dir applies to --dataset ptb (or mnist), not english"),
        (["--dataset", "ptb", "--data-dir", "{missing}"], "does not exist"),
        (["--dataset", "ptb", "--data-dir", "{empty}"], "lacks PTB's ptb.train.txt"),
        (["--batch-size", "10000000"], "--batch-size 10000000 is larger than"),
        (["--train-size", "10000000"], "--train-size 10000000 is larger than"),
    ],
)
def test_refusals_are_one_line_and_create_nothing(capsys, tmp_path, argv, message):
    (tmp_path / "empty").mkdir()
    argv = [a.format(missing=tmp_path / "nope", empty=tmp_path / "empty") for a in argv]
    save = tmp_path / "new" / "m.npz"
    code, _, err = run(capsys, "train", "--model", "cbow", *argv, "--save", save)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not save.parent.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "english"], "--dataset english is a text corpus for --model cbow"),
        (["--window", "2"], "--window is the context of --model cbow or skipgram"),
    ],
)
def test_word_options_are_refused_for_the_classifiers(capsys, argv, message):
    code, _, err = run(capsys, "train", *argv)
    assert code == 2 and message in err

"""``xpnn train --model rnnlm|betterrnnlm``: vol. 2 ch. 6's train_rnnlm.py and
train_better_rnnlm.py as one command, offline, with checkpoints and refusals."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.cli import main, train_rnnlm

SMALL = ["--hidden", 8, "--batch-size", 4, "--time-size", 5, "--eval-interval", 5]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every test here is offline (see conftest.offline)."""


@pytest.fixture
def ptb_dir(tmp_path):
    """PTB-format train, val and test files of a small Zipf-distributed vocabulary."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    p = 1.0 / np.arange(1, len(words) + 1)
    folder = tmp_path / "ptb"
    folder.mkdir()
    for split, n in (("train", 300), ("valid", 60), ("test", 60)):
        lines = [" ".join(rng.choice(words, size=10, p=p / p.sum())) for _ in range(n)]
        (folder / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("model", ["rnnlm", "betterrnnlm"])
def test_trains_prints_the_books_lines_and_saves(capsys, tmp_path, ptb_dir, model):
    save = tmp_path / "lm.npz"
    code, out, err = run(
        capsys,
        "train",
        "--model",
        model,
        "--dataset",
        "ptb",
        "--data-dir",
        ptb_dir,
        "--epochs",
        2,
        *SMALL,
        "--save",
        save,
    )
    assert code == 0, err
    name = train_rnnlm.RNN_MODELS[model]
    assert f"{name}(hidden=8)" in out and "batch 4 x 5 steps, 2 epochs" in out
    assert "| epoch 2 |  iter 1 / " in out and "| perplexity " in out
    assert out.count("valid perplexity: ") == (2 if model == "betterrnnlm" else 0)
    assert "test perplexity: " in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("parameters: ")
    final = next(line for line in out.splitlines() if line.startswith("final perplexity "))
    assert float(final.split("|")[1].split()[-1]) < 60  # test perplexity below the vocabulary's
    loaded = xpnn.io.load(save)
    assert type(loaded).__name__ == name and loaded.hidden_size == 8


def test_resume_goes_on_at_the_checkpoints_rate(capsys, tmp_path, ptb_dir):
    ckpt = tmp_path / "run.npz"
    argv = ["train", "--model", "betterrnnlm", "--dataset", "ptb", "--data-dir", ptb_dir]
    argv += [*SMALL, "--lr", 50, "--epochs", 3, "--checkpoint", ckpt]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    final = next(line for line in out.splitlines() if line.startswith("final perplexity "))
    stored = train_rnnlm.checkpoint_lr(ckpt)
    assert stored is not None and stored < 50, "the test needs a run whose rate is lowered"
    code, out, err = run(capsys, *argv, "--resume")
    assert code == 0, err
    assert f"resuming at the checkpoint's learning rate {stored:g} (was 50)" in out
    again = next(line for line in out.splitlines() if line.startswith("final perplexity "))
    assert again.split("|")[:2] == final.split("|")[:2]  # the same run, to the digit


def test_the_shipped_corpus_trains_offline(capsys):
    code, out, err = run(
        capsys, "train", "--model", "rnnlm", "--train-size", 2000, "--iters", 2, *SMALL, "--quiet"
    )
    assert code == 0, err
    assert out.startswith("final perplexity ") and len(out.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "mnist5k"], "trains on a text corpus, not --dataset mnist5k"),
        (["--eval-samples", "10"], "--eval-samples does not apply to --model rnnlm"),
        (["--cuda-graph"], "--cuda-graph does not apply"),
        (["--window", "2"], "--window does not apply"),
        (["--dtype", "float16"], "--dtype float16"),
        (["--data-dir", "."], "--data-dir applies to --dataset ptb (or mnist), not english"),
        (["--train-size", "100000000"], "--train-size 100000000 is larger than"),
        (["--batch-size", "100000", "--time-size", "100"], "more than the"),
    ],
)
def test_refusals_are_one_line_and_create_nothing(capsys, tmp_path, argv, message):
    save = tmp_path / "new" / "m.npz"
    code, _, err = run(capsys, "train", "--model", "rnnlm", *argv, "--save", save)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not save.parent.exists()


@pytest.mark.parametrize("model", ["twolayernet", "cbow"])
def test_time_size_is_refused_for_other_models(capsys, model):
    code, _, err = run(capsys, "train", "--model", model, "--time-size", 5)
    assert code == 2 and "--time-size is the BPTT length of --model rnnlm" in err

"""``xpnn train --model seq2seq|peeky [--reverse]``: vol. 2 ch. 7's train_seq2seq.py as one
command, offline (generated addition data), on every backend, with its refusals."""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnn
from xpnn.cli import main, train_seq2seq
from xpnn.datasets import sequence
from xpnn.models.seq2seq import eval_seq2seq_batch

SMALL = ["--train-size", 640, "--hidden", 16, "--batch-size", 32, "--lr", 0.01]
SMALL += ["--eval-interval", 5]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every test here is offline (see conftest.offline)."""


def losses(out: str) -> list[float]:
    return [float(m) for m in re.findall(r"\| loss ([0-9.]+)", out)]


@pytest.mark.parametrize(("model", "reverse"), [("seq2seq", False), ("peeky", True)])
def test_trains_prints_the_books_lines_and_saves(capsys, tmp_path, backend, model, reverse):
    save = tmp_path / "s2s.npz"
    argv = ["train", "--model", model, "--epochs", 3, *SMALL, "--save", save]
    argv += ["--backend", backend.spec] + (["--reverse"] if reverse else [])
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    name = train_seq2seq.SEQ2SEQ_MODELS[model].cls
    assert f"{name}(wordvec=16, hidden=16)" in out and "3 epochs x 20 iterations" in out
    assert ("reversed" in out.splitlines()[0]) == reverse
    accs = [float(a) for a in re.findall(r"^val acc ([0-9.]+)%$", out, re.M)]
    assert len(accs) == 3 and all(0 <= a <= 100 for a in accs)
    final = next(line for line in out.splitlines() if line.startswith("final val acc "))
    assert float(final.split()[3].rstrip("%")) == accs[-1]
    loss = losses(out)
    assert loss[-1] < loss[0] - 0.3  # it learns: from ln(13) = 2.56 towards the answers' digits
    # The saved model answers the test questions as the run counted them.
    loaded = xpnn.io.load(save)
    assert type(loaded).__name__ == name and loaded.hidden_size == 16
    with xpnn.use_backend(backend.spec):
        _, (x_test, t_test) = sequence.load_data("addition.txt")
        if reverse:
            x_test = xpnn.backend.get_namespace(x_test).flip(x_test, axis=1)
        loaded = xpnn.io.load(save)
        acc = eval_seq2seq_batch(loaded, x_test, t_test, int(t_test[0, 0]))
    assert f"{acc * 100:.3f}" == f"{accs[-1]:.3f}"


def test_reverse_changes_what_the_model_sees(capsys, tmp_path):
    models = []
    for extra in ([], ["--reverse"]):
        save = tmp_path / f"m{len(models)}.npz"
        argv = ["train", "--model", "seq2seq", "--iters", 3, *SMALL, "--save", save, *extra]
        code, _, err = run(capsys, *argv)
        assert code == 0, err
        models.append([np.asarray(xpnn.to_numpy(p)) for p in xpnn.io.load(save).params])
    # The same initial weights and batches (--seed), but reversed questions train another model.
    assert len(models[0]) == len(models[1])
    assert any(not np.array_equal(a, b) for a, b in zip(models[0], models[1], strict=True))


def test_quiet_prints_the_final_line_only(capsys):
    code, out, err = run(capsys, "train", "--model", "peeky", "--iters", 2, *SMALL, "--quiet")
    assert code == 0, err
    assert re.fullmatch(r"final val acc [0-9.]+% \| [0-9.]+ s\n", out), out


def test_the_books_defaults():
    args = argparse_args("--model", "seq2seq")
    train_seq2seq.check_seq2seq_options(args)
    assert (args.dataset, args.hidden, args.epochs, args.batch_size) == ("addition", 128, 25, 128)
    assert (args.optimizer, args.lr, args.max_grad) == ("adam", 0.001, 5.0)


def argparse_args(*argv):
    from xpnn.cli.parser import build_parser

    return build_parser().parse_args(["train", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "mnist5k"], "trains on a sequence data set, not --dataset mnist5k"),
        (["--dataset", "english"], "trains on a sequence data set, not --dataset english"),
        (["--eval-samples", "10"], "--eval-samples does not apply to --model seq2seq"),
        (["--window", "2"], "--window does not apply"),
        (["--time-size", "5"], "--time-size does not apply"),
        (["--cuda-graph"], "--cuda-graph does not apply"),
        (["--checkpoint", "c.npz"], "--checkpoint does not apply"),
        (["--data-dir", "."], "--data-dir does not apply"),
        (["--dtype", "float16"], "--dtype float16"),
        (["--train-size", "100000000"], "--train-size 100000000 is larger than"),
        (["--batch-size", "100000"], "more than the"),
    ],
)
def test_refusals_are_one_line_and_create_nothing(capsys, tmp_path, argv, message):
    save = tmp_path / "new" / "m.npz"
    code, _, err = run(capsys, "train", "--model", "seq2seq", *argv, "--save", save)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not save.parent.exists()


@pytest.mark.parametrize("model", ["twolayernet", "cbow", "rnnlm"])
def test_reverse_and_the_sequence_data_are_refused_for_other_models(capsys, tmp_path, model):
    save = tmp_path / "new" / "m.npz"
    code, _, err = run(capsys, "train", "--model", model, "--reverse", "--save", save)
    assert code == 2 and "--reverse reverses the questions of --model seq2seq" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "train", "--model", model, "--dataset", "addition", "--save", save)
    assert code == 2 and "--dataset addition" in err and len(err.strip().splitlines()) == 1, err
    assert not save.parent.exists()


# ---------------------------------------------------------------- --model attention (ch. 8)


def test_attention_trains_on_reversed_dates_and_saves(capsys, tmp_path, backend):
    save = tmp_path / "attn.npz"
    argv = ["train", "--model", "attention", "--train-size", 256, "--epochs", 1, "--hidden", 16]
    argv += ["--batch-size", 64, "--eval-interval", 1, "--save", save, "--backend", backend.spec]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("xpnn train: date (256 questions, 5000 for validation,")
    assert "reversed" in first and "AttentionSeq2seq(wordvec=16, hidden=16)" in first
    assert "1 epochs x 4 iterations" in first
    accs = [float(a) for a in re.findall(r"^val acc ([0-9.]+)%$", out, re.M)]
    assert len(accs) == 1 and 0 <= accs[0] <= 100
    loss = losses(out)
    assert len(loss) == 4 and loss[-1] < loss[0]  # from ln(59) = 4.08, four steps of Adam
    # The saved model counts the reversed test dates as the run counted them.
    with xpnn.use_backend(backend.spec):
        _, (x_test, t_test) = sequence.load_data("date.txt")
        loaded = xpnn.io.load(save)
        assert type(loaded).__name__ == "AttentionSeq2seq" and loaded.hidden_size == 16
        flipped = xpnn.backend.get_namespace(x_test).flip(x_test, axis=1)
        acc = eval_seq2seq_batch(loaded, flipped, t_test, int(t_test[0, 0]))
    assert f"{acc * 100:.3f}" == f"{accs[0]:.3f}"


def test_attention_trains_on_the_reversed_questions(capsys, monkeypatch):
    seen = []
    fit = xpnn.Trainer.fit

    def spy(self, x, t, **kwargs):
        seen.append((np.asarray(xpnn.to_numpy(x)), np.asarray(xpnn.to_numpy(t))))
        return fit(self, x, t, **kwargs)

    monkeypatch.setattr(xpnn.Trainer, "fit", spy)
    argv = ["train", "--model", "attention", "--train-size", 64, "--iters", 1, "--hidden", 8]
    code, _, err = run(capsys, *argv, "--batch-size", 64, "--quiet")
    assert code == 0, err
    (x_train, t_train), _ = sequence.load_data("date.txt")
    x_train, t_train = np.asarray(xpnn.to_numpy(x_train)), np.asarray(xpnn.to_numpy(t_train))
    [(x, t)] = seen
    assert np.array_equal(x, x_train[:64, ::-1]) and not np.array_equal(x, x_train[:64])
    assert np.array_equal(t, t_train[:64])


def test_attention_takes_the_books_ch08_settings():
    args = argparse_args("--model", "attention")
    train_seq2seq.check_seq2seq_options(args)
    assert (args.dataset, args.hidden, args.epochs, args.batch_size) == ("date", 256, 10, 128)
    assert (args.optimizer, args.lr, args.max_grad, args.reverse) == ("adam", 0.001, 5.0, True)
    spec = train_seq2seq.SEQ2SEQ_MODELS["attention"]
    assert (spec.module, spec.cls, spec.always_reversed) == (
        "xpnn.models.attention_seq2seq",
        "AttentionSeq2seq",
        True,
    )
    assert not train_seq2seq.SEQ2SEQ_MODELS["seq2seq"].always_reversed


def test_attention_refuses_reverse_in_one_line(capsys, tmp_path):
    save = tmp_path / "new" / "m.npz"
    code, _, err = run(capsys, "train", "--model", "attention", "--reverse", "--save", save)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--reverse: --model attention always reads its questions reversed" in err
    assert not save.parent.exists()


def test_sequence_dir_env_trains_on_the_books_file_and_says_so(capsys, tmp_path, monkeypatch):
    # XPNN_SEQUENCE_DIR (the book's dataset folder) reaches the command too, and
    # its first line names where the questions came from.
    lines = [f"{a}+{b}".ljust(7) + "_" + str(a + b).ljust(4) for a in range(20) for b in range(10)]
    (tmp_path / "addition.txt").write_text("".join(line + "\n" for line in lines))
    monkeypatch.setenv(sequence.SEQUENCE_DIR_ENV, str(tmp_path))
    argv = ["train", "--model", "seq2seq", "--epochs", 1, "--hidden", 8, "--batch-size", 20]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    first = out.splitlines()[0]
    assert (
        f"addition (180 questions, 20 for validation, read from XPNN_SEQUENCE_DIR={tmp_path}"
        in first
    )
    assert "1 epochs x 9 iterations" in first

"""Output files in a folder that does not exist yet: created, and said so.

``xpnn train`` creates the missing folder of ``--save``, ``--plot`` and
``--checkpoint`` (as ``xpnn.io.save``, ``Trainer.fit(checkpoint=...)`` and
the figures do in a program), but not silently: one line on stderr names each
folder it created, even with ``--quiet``, so a mistyped folder shows. It
creates them only once every check has passed: a refused run leaves no
folder behind (``--data-dir``, an input, must exist: ``tests/test_cli_paths.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import xpnn
from xpnn.cli import main
from xpnn.io import check_output_path
from xpnn.io.npz import missing_folder


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def created(folder: Path, option: str, path: Path) -> str:
    return f"xpnn train: created the folder {folder} for {option} {path} (it did not exist)"


@pytest.mark.parametrize(
    ("option", "name"), [("--save", "net.npz"), ("--plot", "loss.svg"), ("--checkpoint", "r.npz")]
)
def test_train_creates_a_missing_folder_and_says_so(capsys, tmp_path, option, name):
    target = tmp_path / "runs" / "a" / name
    code, out, err = run(capsys, "train", "--quiet", "--epochs", "2", option, target)
    assert code == 0, err
    assert err.splitlines() == [created(tmp_path / "runs", option, target)]
    assert out.startswith("final loss")
    assert target.is_file()
    if option == "--save":
        assert isinstance(xpnn.io.load(target), xpnn.LayeredTwoLayerNet)


def test_one_line_per_folder_created(capsys, tmp_path):
    save, plot = tmp_path / "new" / "net.npz", tmp_path / "new" / "loss.png"
    checkpoint = tmp_path / "other" / "deep" / "run.npz"
    argv = ["--save", save, "--plot", plot, "--checkpoint", checkpoint]
    code, _, err = run(capsys, "train", "--quiet", "--epochs", "2", *argv)
    assert code == 0, err
    assert err.splitlines() == [
        created(tmp_path / "new", "--plot", plot),  # --save's folder is then there
        created(tmp_path / "other", "--checkpoint", checkpoint),
    ]
    assert save.is_file() and plot.is_file() and checkpoint.is_file()


def test_existing_folders_say_nothing(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--quiet", "--epochs", "2", "--save", tmp_path / "n.npz")
    assert code == 0 and err == ""


def test_a_relative_path_names_the_folder_as_given(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "train", "--quiet", "--epochs", "2", "--save", "out/x/net.npz")
    assert code == 0
    assert err == "xpnn train: created the folder out for --save out/x/net.npz (it did not exist)\n"
    assert (tmp_path / "out" / "x" / "net.npz").is_file()


def test_a_refused_run_creates_no_folder(capsys, tmp_path):
    """The folders are made after every check: a refusal (here the memory) leaves none."""
    code, _, err = run(
        capsys, "train", "--hidden", "2000000000", "--save", tmp_path / "new" / "net.npz"
    )
    assert code == 2 and "this run needs about" in err
    assert list(tmp_path.iterdir()) == []


def test_a_refused_checkpoint_creates_no_folder(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", "--resume", "--checkpoint", tmp_path / "new" / "run.npz",
        "--plot", tmp_path / "figs" / "loss.png",
    )  # fmt: skip
    assert code == 2 and "does not exist" in err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------- the check all commands share


def test_missing_folder_names_the_first_folder_a_write_creates(tmp_path):
    (tmp_path / "file").write_text("x")
    assert missing_folder(tmp_path / "net.npz") is None
    assert missing_folder(tmp_path / "a" / "b" / "net.npz") == tmp_path / "a"
    assert missing_folder("a/b/net.npz") == Path("a")
    assert missing_folder(tmp_path / "file" / "net.npz") is None  # refused, not created


@pytest.mark.parametrize(
    ("option", "name"), [("--results", "s.jsonl"), ("--plot", "s.png"), ("--json", "bench.json")]
)
def test_check_output_path_allows_a_missing_folder_and_creates_nothing(tmp_path, option, name):
    """The check of every command (search --results/--plot, bench --json): the writer creates."""
    target = tmp_path / "new" / "dir" / name
    assert check_output_path(str(target), option) == target
    assert list(tmp_path.iterdir()) == []


def test_the_library_creates_missing_folders_too(tmp_path):
    net = xpnn.LayeredTwoLayerNet(2, 4, 3, seed=0)
    saved = xpnn.io.save(net, tmp_path / "models" / "net.npz")
    assert saved.is_file()
    x, t = xpnn.datasets.load_spiral()
    trainer = xpnn.Trainer(net, xpnn.optimizers.SGD(lr=1.0))
    checkpoint = tmp_path / "runs" / "run.npz"
    trainer.fit(
        x, t, max_epoch=1, batch_size=30, checkpoint=checkpoint, progress=False, verbose=False
    )
    assert checkpoint.is_file()


def test_bench_creates_the_folder_of_json_and_says_so(capsys, tmp_path, monkeypatch):
    """The benchmarks run for minutes: their --json folder exists before they start."""
    import xpnn.bench

    seen = []

    def fake_main(cases, json_path, threads):  # the folder must be there when the cases run
        seen.append(Path(json_path).parent.is_dir())
        Path(json_path).write_text("{}")
        return 0

    monkeypatch.setattr(xpnn.bench, "main", fake_main)
    target = tmp_path / "results" / "today" / "bench.json"
    code, _, err = run(capsys, "bench", "--json", target, "step")
    assert code == 0, err
    assert seen == [True]
    assert err.splitlines() == [
        f"xpnn bench: created the folder {tmp_path / 'results'} for --json {target} "
        "(it did not exist)"
    ]

"""``xpnn train`` and ``xpnn bench`` check their paths (and memory) before any work.

Every case ends with one line on stderr and exit status 2, and the check runs
before any data is loaded or anything is trained: the tests make loading the
data (or running the benchmarks) fail loudly. Nothing reaches the internet:
mirrors are a refused local port or a local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import sys
import threading
from pathlib import Path

import pytest

import xpnn
import xpnn.cli as cli
from xpnn.cli import main
from xpnn.datasets import download as dl
from xpnn.datasets.mnist import FILES

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every test here is offline (see conftest.offline)."""


@pytest.fixture
def no_work(monkeypatch):
    """Loading data or training fails the test: the checks must come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the data were loaded before the paths were checked")

    monkeypatch.setattr(cli.train, "_load_data", forbidden)
    monkeypatch.setattr(xpnn.Trainer, "fit", forbidden)


@pytest.fixture
def places(tmp_path):
    """A regular file and an empty folder to misuse."""
    (tmp_path / "file.txt").write_text("not a folder\n")
    (tmp_path / "folder").mkdir()
    return tmp_path


def one_line_error(code: int, err: str, command: str = "train") -> str:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"xpnn {command}: error: "), err
    return err


# ------------------------------------------------------------ output paths


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--plot", "out.txt2"], "--plot out.txt2: the extension must be one of .png, .svg, .pdf"),
        (["--plot", "{d}/file.txt/loss.png"], "file.txt is a file, not a folder"),
        (["--plot", "{d}/file.txt/a/b/loss.png"], "file.txt is a file, not a folder"),
        (["--plot", "{d}/folder"], "is a folder; give a file name, e.g. "),
        (["--save", "{d}/folder"], "is a folder; give a file name, e.g. "),
        (["--save", "{d}/file.txt/net.npz"], "file.txt is a file, not a folder"),
        (["--save", ""], "--save: the file name is empty"),
        (["--plot", "{d}/x.png", "--save", "{d}/x.png"], "name the same file"),
        (["--dataset", "mnist", "--data-dir", "{d}/file.txt"], "is a file, not a folder"),
        (["--data-dir", "{d}/folder"], "applies only to --dataset mnist or ptb, not spiral"),
        (["--dataset", "mnist5k", "--no-download"], "--no-download applies only to --dataset"),
        (["--dataset", "mnist5k", "--download"], "--download applies only to --dataset mnist"),
    ],
)
def test_bad_paths_fail_before_any_work(capsys, places, no_work, argv, message):
    argv = [a.format(d=places) for a in argv]
    code, out, err = run(capsys, "train", *argv)
    assert message in one_line_error(code, err)
    assert out == ""
    assert sorted(p.name for p in places.iterdir()) == ["file.txt", "folder"]  # nothing made


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="no /dev/null here")
def test_save_onto_a_device_is_refused(capsys, no_work):
    code, _, err = run(capsys, "train", "--save", "/dev/null")
    assert "/dev/null exists and is not a regular file" in one_line_error(code, err)


@pytest.mark.skipif(AS_ROOT or sys.platform == "win32", reason="root may write anywhere")
@pytest.mark.parametrize("option", ["--plot", "--save"])
def test_unwritable_folder_is_refused(capsys, tmp_path, no_work, option):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        name = "x.png" if option == "--plot" else "x.npz"
        code, _, err = run(capsys, "train", option, locked / name)
        assert "permission denied" in one_line_error(code, err)
        code, _, err = run(capsys, "train", option, locked / "new" / name)
        assert f"cannot create folders in {locked}" in one_line_error(code, err)
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("option", ["--plot", "--save"])
def test_folder_the_system_says_is_unwritable_is_refused(
    capsys, tmp_path, monkeypatch, no_work, option
):
    """The same check as above, runnable as root: os.access says no for one folder."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real(p, mode))
    name = "x.png" if option == "--plot" else "x.npz"
    code, _, err = run(capsys, "train", option, locked / name)
    assert f"cannot write in {locked} (permission denied)" in one_line_error(code, err)


@pytest.mark.skipif(AS_ROOT or sys.platform == "win32", reason="root may write anywhere")
def test_read_only_file_is_refused(capsys, tmp_path, no_work):
    target = tmp_path / "old.png"
    target.write_bytes(b"keep me")
    target.chmod(0o400)
    code, _, err = run(capsys, "train", "--plot", target)
    assert "the file exists and is not writable" in one_line_error(code, err)
    assert target.read_bytes() == b"keep me"


def test_save_through_a_link_is_refused(capsys, tmp_path, no_work):
    """xpnn.io.save replaces files, never links: said before training, not after."""
    real = tmp_path / "real.npz"
    real.write_bytes(b"precious")
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    code, _, err = run(capsys, "train", "--save", link)
    assert "is a symbolic link" in one_line_error(code, err)
    assert real.read_bytes() == b"precious"


def test_model_too_large_to_save_is_refused_before_training(capsys, tmp_path, monkeypatch, no_work):
    monkeypatch.setattr(xpnn.io, "MAX_ELEMENTS", 50)  # the spiral net has 63 parameters
    code, _, err = run(capsys, "train", "--save", tmp_path / "net.npz")
    assert "a model of 63 parameters is more than xpnn.io saves (50)" in one_line_error(code, err)


def test_missing_parent_folders_are_created(capsys, tmp_path):
    plot, saved = tmp_path / "a" / "b" / "loss.svg", tmp_path / "c" / "net.npz"
    code, out, _ = run(capsys, "train", "--quiet", "--epochs", "2", "--plot", plot, "--save", saved)
    assert code == 0
    assert plot.read_bytes().lstrip().startswith(b"<?xml")
    assert isinstance(xpnn.io.load(saved), xpnn.LayeredTwoLayerNet)
    # The model is written first, then the figure.
    assert out.index("parameters:") < out.index("figure:")


def test_bench_json_is_checked_before_the_benchmarks(capsys, places, monkeypatch):
    import xpnn.bench

    def forbidden(*args, **kwargs):
        raise AssertionError("the benchmarks ran before --json was checked")

    monkeypatch.setattr(xpnn.bench, "run", forbidden)
    for target, message in (
        (places / "file.txt" / "bench.json", "file.txt is a file, not a folder"),
        (places / "folder", "is a folder; give a file name, e.g. "),
    ):
        code, _, err = run(capsys, "bench", "--json", target)
        assert message in one_line_error(code, err, "bench")


# -------------------------------------------------- failures while writing


def test_a_failing_figure_keeps_the_saved_model(capsys, tmp_path, monkeypatch):
    """Once the figure failed first and the trained model was never written."""

    def disk_full(self, path=None, ylim=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xpnn.Trainer, "plot", disk_full)
    saved = tmp_path / "net.npz"
    code, out, err = run(
        capsys, "train", "--quiet", "--epochs", "2", "--save", saved, "--plot", tmp_path / "l.png"
    )
    assert code == 2
    assert out.startswith("final loss") and f"parameters: {saved}" in out
    line = one_line_error(code, err)
    assert "No space left on device" in line
    assert f"the parameters were saved to {saved}" in line
    assert isinstance(xpnn.io.load(saved), xpnn.LayeredTwoLayerNet)


def test_a_failing_save_still_writes_the_figure(capsys, tmp_path, monkeypatch):
    import xpnn.io

    def disk_full(model, path, dtype=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xpnn.io, "save", disk_full)
    plot = tmp_path / "l.png"
    code, _, err = run(
        capsys, "train", "--quiet", "--epochs", "2", "--save", tmp_path / "n.npz", "--plot", plot
    )
    line = one_line_error(code, err)
    assert "--save" in line and "the trained parameters were not saved" in line
    assert plot.read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------- --data-dir


def test_missing_data_dir_is_not_created(capsys, tmp_path, no_work):
    """`--data-dir /nonexistent/mnist` once created the folder and downloaded into it."""
    wrong = tmp_path / "nonexistent" / "mnist"
    code, _, err = run(capsys, "train", "--dataset", "mnist", "--data-dir", wrong)
    line = one_line_error(code, err)
    assert f"--data-dir {wrong} does not exist" in line
    assert "--download" in line and "omit --data-dir" in line and "--dataset mnist5k" in line
    assert "data_dir=" not in line and "download=False" not in line
    assert not (tmp_path / "nonexistent").exists()


def test_data_dir_without_the_files_lists_them_once(capsys, tmp_path, no_work):
    (tmp_path / FILES["train_label"]).write_bytes(b"there")
    code, _, err = run(capsys, "train", "--dataset", "mnist", "--data-dir", tmp_path)
    line = one_line_error(code, err)
    assert "lacks 3 of the four MNIST files" in line
    for key, name in FILES.items():
        assert line.count(name) == (0 if key == "train_label" else 1)
    assert "add --download" in line and "--dataset mnist5k" in line
    assert "data_dir=" not in line and "download=False" not in line


def test_empty_cache_with_no_download_speaks_the_cli(capsys, tmp_path, no_work):
    code, _, err = run(capsys, "train", "--dataset", "mnist", "--no-download")
    line = one_line_error(code, err)
    assert str(tmp_path / "xpnn-data" / "mnist") in line
    assert all(line.count(name) == 1 for name in FILES.values())
    assert "drop --no-download" in line and "--data-dir" in line and "--dataset mnist5k" in line
    assert "download=False" not in line


@pytest.fixture
def served(mnist_dir, monkeypatch):
    """A local HTTP mirror serving the tiny MNIST of ``mnist_dir`` as the official files."""
    blobs = {name: (mnist_dir / name).read_bytes() for name in FILES.values()}
    monkeypatch.setattr(
        dl, "MNIST_SHA256", {n: hashlib.sha256(b).hexdigest() for n, b in blobs.items()}
    )
    monkeypatch.setattr(dl, "MNIST_SIZES", {n: len(b) for n, b in blobs.items()})
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    handler = functools.partial(Handler, directory=str(mnist_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    monkeypatch.setenv(dl.MIRRORS_ENV, f"http://127.0.0.1:{server.server_address[1]}/")
    yield requests
    server.shutdown()
    server.server_close()
    thread.join(3)


TRAIN_FAST = ["--quiet", "--iters", "20", "--batch-size", "20"]


def test_data_dir_is_downloaded_into_only_with_download(capsys, tmp_path, served):
    target = tmp_path / "mine"
    target.mkdir()
    code, _, err = run(capsys, "train", "--dataset", "mnist", "--data-dir", target, *TRAIN_FAST)
    assert "add --download" in one_line_error(code, err)
    assert served == [] and list(target.iterdir()) == []
    code, out, err = run(
        capsys, "train", "--dataset", "mnist", "--data-dir", target, "--download", *TRAIN_FAST
    )
    assert code == 0, err
    assert out.startswith("final loss") and "test accuracy" in out
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES.values())
    assert len(served) == 4


def test_default_cache_is_where_downloads_go(capsys, tmp_path, served):
    code, out, err = run(capsys, "train", "--dataset", "mnist", *TRAIN_FAST)
    assert code == 0 and out.startswith("final loss"), err
    cache = tmp_path / "xpnn-data" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILES.values())
    assert len(served) == 4


def test_cache_under_a_file_is_refused_before_downloading(capsys, tmp_path, monkeypatch, served):
    (tmp_path / "file.txt").write_text("x")
    monkeypatch.setenv("XPNN_DATA_DIR", str(tmp_path / "file.txt" / "data"))
    code, _, err = run(capsys, "train", "--dataset", "mnist", *TRAIN_FAST)
    line = one_line_error(code, err)
    assert "cannot download MNIST into the cache folder" in line and "XPNN_DATA_DIR" in line
    assert served == []


def test_failed_download_hint_speaks_the_cli(capsys):
    code, _, err = run(capsys, "train", "--dataset", "mnist", *TRAIN_FAST)
    assert code == 2
    assert "could not download" in err and "--data-dir" in err and "--dataset mnist5k" in err
    assert "load_mnist(" not in err


# ------------------------------------------------------------------ memory


def test_estimate_memory_by_hand():
    parts = cli.estimate_memory(
        784, 50, 10, 100, optimizer="adam", dtype="float64", n_train=4000, n_test=1000
    )
    params = 784 * 50 + 50 + 50 * 10 + 10  # 39,760
    assert parts["parameters"] == parts["gradients"] == params * 8
    assert parts["optimizer state"] == 2 * params * 8
    assert parts["initialization"] == 784 * 50 * 8
    # The accuracy pass over 4,000 rows outweighs a step of 100.
    assert parts["activations"] == max(100 * (2 * 784 + 200 + 40), 4000 * (100 + 20)) * 8
    assert parts["data"] == 5000 * 794 * 8
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    sgd32 = cli.estimate_memory(784, 50, 10, 100)
    assert sgd32["optimizer state"] == 0 and sgd32["parameters"] == params * 4
    assert sgd32["data"] == 0 and sgd32["activations"] == 100 * (2 * 784 + 200 + 40) * 4


def test_check_memory():
    parts = cli.estimate_memory(784, 50, 10, 100)
    cli.check_memory(parts, parts["total"], "here")  # exactly enough
    cli.check_memory(parts, None, "nowhere")  # unknown: no refusal
    with pytest.raises(MemoryError, match=r"needs about .* but only 1\.0 KiB is available here"):
        cli.check_memory(parts, 1024, "here")


def test_host_memory_is_known_here():
    available, where = cli.host_memory_available()
    if sys.platform.startswith("linux"):
        assert available is not None and available > 2**20 and "host" in where


@pytest.mark.parametrize("dataset", ["spiral", "mnist5k", "mnist"])
def test_huge_hidden_is_refused_before_allocating(capsys, no_work, dataset):
    """`--hidden 2000000000` once ended in a MemoryError traceback."""
    code, _, err = run(capsys, "train", "--dataset", dataset, "--hidden", "2000000000")
    line = one_line_error(code, err)
    assert "this run needs about" in line and "TiB" in line and "smaller --hidden" in line


def test_run_larger_than_memory_is_refused(capsys, monkeypatch, no_work):
    monkeypatch.setattr(cli.memory, "memory_available", lambda backend: (10_000, "in this test"))
    code, _, err = run(capsys, "train", "--optimizer", "adam", "--dtype", "float64")
    line = one_line_error(code, err)
    assert "is available in this test" in line
    assert "--dtype float32" in line and "--optimizer sgd" in line


def test_unknown_memory_is_not_a_refusal(capsys, monkeypatch):
    monkeypatch.setattr(cli.memory, "memory_available", lambda backend: (None, "unknown"))
    code, out, _ = run(capsys, "train", "--quiet", "--epochs", "2")
    assert code == 0 and out.startswith("final loss")


def test_allocation_failure_is_one_line(capsys, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 6.4 TiB")

    monkeypatch.setattr(xpnn.Trainer, "fit", out_of_memory)
    code, _, err = run(capsys, "train", "--quiet")
    assert "Unable to allocate 6.4 TiB" in one_line_error(code, err)


# -------------------------------------------------------------------- help


def _subparsers():
    import argparse

    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("command", ["info", "train", "gradcheck", "bench"])
def test_every_option_has_help(command):
    import argparse

    for action in _subparsers()[command]._actions:
        if action.help is not argparse.SUPPRESS:
            assert action.help, f"xpnn {command} {action.option_strings} has no help"


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["gradcheck", "--help"])
    out = capsys.readouterr().out
    assert "inputs of the net (default: 6)" in out
    assert "seed of the weights and the data (default: 0)" in out  # 0, not left out as False
    assert "largest allowed relative difference (default: 1e-06)" in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: spiral)" in out and "(default: float32)" in out
    assert "(default: None)" not in out and "(default: False)" not in out
    assert "(default: 10 spiral, 50 MNIST)" in out

"""``xpnn train --checkpoint FILE [--checkpoint-every N] [--resume]``: a stopped run goes on.

A run interrupted by Ctrl-C (SIGINT) or ``kill -9`` (SIGKILL) and then
repeated with ``--resume`` ends with the parameters of an uninterrupted run,
bit for bit: the tests ``--save`` both and compare every array of the two
files. The signal tests run ``python -m xpnn train`` as a subprocess and send
the signal only once the checkpoint exists and the run has printed many more
progress lines after it (one line per iteration), and they check afterwards
that the run was stopped between its first checkpoint and its end. The other
models and data sets are interrupted in-process, by a ``KeyboardInterrupt``
raised between two checkpoints. The refusals come before any work.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import xpnn
import xpnn.cli as cli
from xpnn.cli import main
from xpnn.training.reporter import Reporter

posix_signals = pytest.mark.skipif(
    sys.platform == "win32", reason="SIGKILL and a SIGINT to one process are POSIX"
)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("xpnn train: error: "), err
    return err


def assert_same_arrays(a: Path, b: Path) -> None:
    """Every array of the two ``.npz`` files (the metadata too) equal bit for bit."""
    with np.load(a, allow_pickle=False) as fa, np.load(b, allow_pickle=False) as fb:
        assert sorted(fa.files) == sorted(fb.files)
        for name in fa.files:
            x, y = fa[name], fb[name]
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert x.tobytes() == y.tobytes(), f"{name} differs"


def result(out: str) -> str:
    """The final line without its time: loss and accuracies, as printed."""
    line = next(x for x in out.splitlines() if x.startswith("final loss"))
    return line.rsplit("|", 1)[0]


def position(checkpoint: Path) -> tuple[int, int]:
    """(epoch, next iteration) a checkpoint continues from (read from its metadata)."""
    with np.load(checkpoint, allow_pickle=False) as f:
        progress = json.loads(str(f["__xpnn__"]))["progress"]
    return progress["epoch"], progress["next_iter"]


# ----------------------------------------------------- Ctrl-C and kill -9

#: The spiral: 10 iterations an epoch, 2,000 in all, one printed line each;
#: about 3 s with a checkpoint every 3 iterations, under 0.5 s without.
ITERS_PER_EPOCH, EPOCHS = 10, 200
SPIRAL = ["train", "--epochs", EPOCHS, "--eval-interval", "1", "--seed", "3"]
LINE = re.compile(r"^\| epoch (\d+) \|  iter (\d+) / 10 \|")
#: Progress lines to see after the first checkpoint before the signal.
LINES_AFTER = 40


def xpnn_command(*argv) -> list[str]:
    return [sys.executable, "-m", "xpnn", *(str(a) for a in argv)]


def environment() -> dict[str, str]:
    """This test's xpnn (not another installed one), each progress line as it is printed."""
    here = str(Path(xpnn.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def iteration(line: str) -> int | None:
    """The iterations done when a progress line was printed (None: another line)."""
    match = LINE.match(line)
    return None if match is None else (int(match[1]) - 1) * ITERS_PER_EPOCH + int(match[2])


def as_a_shell_starts_it() -> None:
    """In the child, before exec: SIGINT at its default and not blocked, as a shell
    starts a command. A child inherits both from this process, where a library
    loaded by an earlier test may have blocked or ignored SIGINT (seen once per
    fresh clone, in the first full run: the run never saw the signal and finished)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def signal_state() -> str:
    """This process's ignored and blocked signal masks (Linux), for failure messages."""
    try:
        with open("/proc/self/status") as f:
            return " ".join(x.strip() for x in f if x.startswith(("SigBlk", "SigIgn")))
    except OSError:
        return "unknown"


def interrupt(argv: list, cwd: Path, checkpoint: Path, sig: int) -> tuple[int, list[str], str]:
    """Start ``xpnn train``; send ``sig`` once it has gone well past its first checkpoint.

    Reads the progress lines as they come; once ``checkpoint`` exists, waits
    for LINES_AFTER more lines, then signals. Returns the exit status, the
    lines printed and stderr. Fails if the run ends (or stalls) first.
    """
    proc = subprocess.Popen(
        xpnn_command(*argv),
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_a_shell_starts_it,
    )
    # Bounded: a reader far ahead of this thread (a loaded machine) blocks, the pipe
    # fills and the run waits for us, so it cannot finish before the signal is sent.
    lines: queue.Queue[str | None] = queue.Queue(maxsize=100)

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # stderr too is read as it comes (the progress bar writes there): a full pipe
    # would stop the run in the middle of a write.
    errors: list[str] = []
    err_reader = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    err_reader.start()
    seen, first, deadline = [], None, time.monotonic() + 60
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no progress for 60 s; printed so far: {seen[-3:]}")
            if line is None:
                pytest.fail(f"the run ended before the signal: {seen[-3:]}, {errors[-3:]}")
            seen.append(line)
            done = iteration(line)
            if done is None:
                continue
            if first is None and checkpoint.exists():
                first = done
            if first is not None and done >= first + LINES_AFTER:
                break
        proc.send_signal(sig)
        # The rest of its lines, read while it stops: it may print on its way out,
        # and a full pipe would keep it from exiting.
        while (line := lines.get(timeout=60)) is not None:
            seen.append(line)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    err_reader.join(10)
    proc.stderr.close()
    return code, seen, "".join(errors)


@posix_signals
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, sig):
    checkpoint, resumed, whole = tmp_path / "run.npz", tmp_path / "resumed.npz", tmp_path / "w.npz"
    argv = [*SPIRAL, "--checkpoint", checkpoint, "--checkpoint-every", "3", "--save", resumed]

    code, lines, err = interrupt(argv, tmp_path, checkpoint, sig)

    total = EPOCHS * ITERS_PER_EPOCH
    printed = [n for n in map(iteration, lines) if n is not None]
    epoch, next_iter = position(checkpoint)
    saved_at = epoch * ITERS_PER_EPOCH + next_iter
    # Stopped mid-run: after the first checkpoint, well before the end,
    # with the checkpoint (taken every 3 iterations) at most where it stopped.
    ended = [line for line in lines if line.startswith("final loss")]
    assert not ended and not resumed.exists(), (
        f"ran on after the signal; stderr: {err[-800:]}; test process: {signal_state()}"
    )
    assert 0 < saved_at <= printed[-1] < total
    assert printed[-1] >= LINES_AFTER
    if sig == signal.SIGINT:
        assert code == 130, err
        last = err.strip().splitlines()[-1]
        assert last == (
            f"xpnn train: interrupted; {checkpoint} keeps the run: run the same command with "
            "--resume to continue it"
        )
    else:
        assert code == -signal.SIGKILL

    done = subprocess.run(
        xpnn_command(*argv, "--resume"),
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"resuming the run saved in {checkpoint}" in done.stdout
    again = [n for n in map(iteration, done.stdout.splitlines()) if n is not None]
    assert again[0] == saved_at + 1 and again[-1] == total  # went on, did not start again
    assert position(checkpoint) == (EPOCHS, 0)

    reference = subprocess.run(
        xpnn_command(*SPIRAL, "--save", whole),
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert reference.returncode == 0, reference.stderr
    assert_same_arrays(resumed, whole)
    assert result(done.stdout) == result(reference.stdout)


# ------------------------------------------- every model, every data set

#: (iterations an epoch, options): a few short epochs of each model on each data set.
RUNS = {
    "spiral": (10, ["--dataset", "spiral", "--epochs", "6", "--optimizer", "momentum"]),
    "mnist5k": (
        10,
        ["--dataset", "mnist5k", "--train-size", "200", "--batch-size", "20", "--iters", "40"],
    ),
    "mnist5k-simpleconvnet": (5, [
        "--dataset", "mnist5k", "--model", "simpleconvnet", "--train-size", "100",
        "--batch-size", "20", "--epochs", "3", "--hidden", "10", "--eval-samples", "50",
    ]),
    "mnist5k-deepconvnet": (5, [
        "--dataset", "mnist5k", "--model", "deepconvnet", "--train-size", "100",
        "--batch-size", "20", "--epochs", "2", "--hidden", "10", "--eval-samples", "50",
    ]),
    "mnist": (
        5, ["--dataset", "mnist", "--train-size", "100", "--batch-size", "20", "--epochs", "3"]
    ),
    "mnist-simpleconvnet": (10, [
        "--dataset", "mnist", "--model", "simpleconvnet", "--batch-size", "20", "--epochs", "2",
        "--hidden", "10",
    ]),
}  # fmt: skip
#: The runs stop after this many iterations, and write a checkpoint every EVERY.
STOP, EVERY = 7, 4


@pytest.fixture
def stop_at(monkeypatch):
    """``stop_at(n)``: the next run raises KeyboardInterrupt after its n-th iteration."""
    real = Reporter.on_batch_end
    left = {"n": None}

    def on_batch_end(self, state, loss):
        real(self, state, loss)
        if left["n"] is not None:
            left["n"] -= 1
            if left["n"] == 0:
                left["n"] = None
                raise KeyboardInterrupt

    monkeypatch.setattr(Reporter, "on_batch_end", on_batch_end)
    return lambda n: left.update(n=n)


@pytest.mark.parametrize("name", list(RUNS))
def test_every_model_and_data_set_resumes_bit_for_bit(
    capsys, tmp_path, offline, mnist_dir, stop_at, name
):
    per_epoch, options = RUNS[name]
    argv = ["train", "--quiet", *options]
    if options[1] == "mnist":  # the tiny MNIST of the fixture
        argv += ["--data-dir", mnist_dir]
    checkpoint, resumed, whole = tmp_path / "run.npz", tmp_path / "r.npz", tmp_path / "w.npz"
    keep = ["--checkpoint", checkpoint, "--checkpoint-every", EVERY, "--save", resumed]
    # The last checkpoint before the stop: every EVERY iterations of an epoch and at its end.
    last = max(n for n in range(1, STOP) if n % per_epoch % EVERY == 0)

    stop_at(STOP)
    code, out, err = run(capsys, *argv, *keep)
    assert code == 130 and "final loss" not in out, err
    assert position(checkpoint) == divmod(last, per_epoch)  # behind the stop: redone
    assert "run the same command with --resume to continue it" in err.splitlines()[-1]

    code, out, err = run(capsys, *argv, *keep, "--resume")
    assert code == 0, err
    code, reference, err = run(capsys, *argv, "--save", whole)
    assert code == 0, err
    assert_same_arrays(resumed, whole)
    assert result(out) == result(reference)


def test_a_resumed_run_interrupted_again_goes_on(capsys, tmp_path, stop_at):
    checkpoint, resumed, whole = tmp_path / "run.npz", tmp_path / "r.npz", tmp_path / "w.npz"
    argv = ["train", "--quiet", "--epochs", "5", "--seed", "1"]
    keep = ["--checkpoint", checkpoint, "--save", resumed]  # each epoch's end
    stop_at(13)
    assert run(capsys, *argv, *keep)[0] == 130
    assert position(checkpoint) == (1, 0)
    stop_at(15)  # iteration 25 of the run
    code, _, err = run(capsys, *argv, *keep, "--resume")
    assert code == 130 and position(checkpoint) == (2, 0)
    assert err.splitlines()[-1].endswith("run the same command again to continue it")
    assert run(capsys, *argv, *keep, "--resume")[0] == 0
    assert run(capsys, *argv, "--save", whole)[0] == 0
    assert_same_arrays(resumed, whole)


def test_interrupted_before_the_first_checkpoint(capsys, tmp_path, stop_at):
    checkpoint = tmp_path / "run.npz"
    stop_at(3)
    code, _, err = run(capsys, "train", "--quiet", "--epochs", "3", "--checkpoint", checkpoint)
    assert code == 130 and not checkpoint.exists()
    assert err.splitlines()[-1] == (
        f"xpnn train: interrupted; no checkpoint was written yet to {checkpoint}: run the same "
        "command to start again"
    )


def test_resuming_a_finished_run_writes_its_result_again(capsys, tmp_path):
    checkpoint, first, second = tmp_path / "run.npz", tmp_path / "a.npz", tmp_path / "b.npz"
    argv = ["train", "--quiet", "--epochs", "4", "--checkpoint", checkpoint]
    code, out, _ = run(capsys, *argv, "--save", first)
    assert code == 0
    code, again, _ = run(capsys, *argv, "--save", second, "--resume")
    assert code == 0 and result(again) == result(out)
    assert_same_arrays(first, second)


# -------------------------------------------------------------- refusals


@pytest.fixture
def no_work(monkeypatch):
    """Loading data or training fails the test: the checks must come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the data were loaded before the options were checked")

    monkeypatch.setattr(cli.train, "_load_data", forbidden)
    monkeypatch.setattr(xpnn.Trainer, "fit", forbidden)


def test_resume_without_the_checkpoint_file_is_refused(capsys, tmp_path, no_work):
    missing = tmp_path / "run.npz"
    code, out, err = run(capsys, "train", "--checkpoint", missing, "--resume")
    line = one_line_error(code, err)
    assert f"--resume: the checkpoint {missing} does not exist" in line
    assert "drop --resume to start a new run" in line
    assert out == "" and list(tmp_path.iterdir()) == []


def test_an_existing_checkpoint_is_not_overwritten_without_resume(capsys, tmp_path, no_work):
    checkpoint = tmp_path / "run.npz"
    checkpoint.write_bytes(b"an earlier run")
    code, out, err = run(capsys, "train", "--checkpoint", checkpoint)
    line = one_line_error(code, err)
    assert f"--checkpoint {checkpoint} exists: pass --resume to continue its run" in line
    assert f"remove it (rm {checkpoint}) to start a new one" in line
    assert out == "" and checkpoint.read_bytes() == b"an earlier run"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--checkpoint-every", "0"], "argument --checkpoint-every: must be positive, got 0"),
        (["--checkpoint-every", "-3"], "argument --checkpoint-every: must be positive, got -3"),
        (["--checkpoint-every", "x"], "argument --checkpoint-every: not an integer: 'x'"),
    ],
)
def test_bad_checkpoint_every_is_refused(capsys, tmp_path, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--checkpoint", str(tmp_path / "run.npz"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resume"], "--resume continues the run saved in a checkpoint: add --checkpoint FILE"),
        (["--checkpoint-every", "5"], "--checkpoint-every 5 sets how often --checkpoint is"),
        (["--checkpoint", ""], "--checkpoint: the file name is empty"),
        (["--checkpoint", "{d}"], "is a folder; give a file name, e.g. "),
        (["--checkpoint", "{d}/x.npz", "--save", "{d}/x.npz"], "--save and --checkpoint name"),
        (["--checkpoint", "{d}/x.png", "--plot", "{d}/x.png"], "--plot and --checkpoint name"),
        (["--checkpoint", "{d}/file/run.npz"], "file is a file, not a folder"),
    ],
)
def test_checkpoint_options_are_checked_before_any_work(capsys, tmp_path, no_work, argv, message):
    (tmp_path / "file").write_text("x")
    argv = [a.format(d=tmp_path) for a in argv]
    code, out, err = run(capsys, "train", *argv)
    assert message in one_line_error(code, err)
    assert out == "" and [p.name for p in tmp_path.iterdir()] == ["file"]


def test_a_checkpoint_link_is_refused(capsys, tmp_path, no_work):
    real = tmp_path / "real.npz"
    real.write_bytes(b"precious")
    (tmp_path / "link.npz").symlink_to(real)
    for resume in ([], ["--resume"]):
        code, _, err = run(capsys, "train", "--checkpoint", tmp_path / "link.npz", *resume)
        assert "is a symbolic link" in one_line_error(code, err)
    assert real.read_bytes() == b"precious"


def test_resume_with_other_options_is_refused_and_keeps_the_checkpoint(capsys, tmp_path):
    checkpoint = tmp_path / "run.npz"
    code, _, _ = run(capsys, "train", "--quiet", "--epochs", "3", "--checkpoint", checkpoint)
    assert code == 0
    before = checkpoint.read_bytes()
    for other, setting in (
        (["--epochs", "4"], "max_epoch=3, this fit has max_epoch=4"),
        (["--epochs", "3", "--batch-size", "20"], "batch_size=30, this fit has batch_size=20"),
        (["--epochs", "3", "--lr", "0.5"], "lr=1.0, this optimizer has lr=0.5"),
    ):
        code, _, err = run(
            capsys, "train", "--quiet", *other, "--checkpoint", checkpoint, "--resume"
        )
        assert setting in one_line_error(code, err)
    assert checkpoint.read_bytes() == before


def test_resume_of_a_file_that_is_no_checkpoint_is_refused(capsys, tmp_path):
    model = tmp_path / "net.npz"
    assert run(capsys, "train", "--quiet", "--epochs", "2", "--save", model)[0] == 0
    before = model.read_bytes()
    code, _, err = run(
        capsys, "train", "--quiet", "--epochs", "2", "--checkpoint", model, "--resume"
    )
    one_line_error(code, err)
    assert model.read_bytes() == before


def test_help_names_the_options_and_the_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--checkpoint FILE" in out and "--checkpoint-every N" in out and "--resume" in out
    assert "(default: only at the end of each epoch, i.e. every epoch's worth of iterations" in out
    assert "repeat the interrupted command with --resume added" in out

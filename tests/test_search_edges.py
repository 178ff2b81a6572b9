"""xpnn search at its edges: foreign results files, huge trial counts, bad schedulers, memory.

Each case fails fast here, before any cluster where it can: a file that is
not a results file is refused and left byte for byte as it was; two lines of
one trial are refused with both line numbers; ``trials`` above
``MAX_TRIALS`` is refused at once, and below it trials are sent out as
workers free up (memory does not grow with their number); a scheduler
address of the wrong form, or one that does not answer, is one line within
seconds; a trial too large for its workers' memory is refused as ``xpnn
train`` refuses it. Calls that used to hang run under :func:`deadline`, so
that a regression fails instead of eating the machine. The cluster is
tests/test_search.py's LocalCluster of 2 workers (its ``client`` fixture).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings

import pytest

import xpnn.search as search
import xpnn.search.cluster as search_cluster
from xpnn.search import Choice, ResultsFileError, TrialError, random_search

distributed = pytest.importorskip("distributed")

import test_search  # noqa: E402  (tests/ is on sys.path: pytest's rootdir insertion)
from test_search import SMALL, _search_faults  # noqa: E402

#: tests/test_search.py's fixture: a LocalCluster of 2 worker processes for this module.
client = test_search.client

#: The trials a search takes (xpnn.search.MAX_TRIALS; its value where it is missing).
MAX_TRIALS = getattr(search, "MAX_TRIALS", 10**7)
#: Seconds to reach a scheduler (xpnn.search.cluster.CONNECT_TIMEOUT).
CONNECT_TIMEOUT = getattr(search_cluster, "CONNECT_TIMEOUT", 3.0)


class Overrun(BaseException):
    """A call ran past its deadline (a BaseException: no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def deadline(seconds: float):
    """Interrupt the block (in the main thread) after ``seconds``: a hang fails the test."""

    def expire(signum, frame):
        raise Overrun(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def no_cluster(monkeypatch):
    """Fail if a search starts (or connects to) a cluster."""

    def refuse(**_):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(search_cluster, "connect", refuse)


def _free_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(argv, capfd, seconds):
    """``xpnn search ARGV``'s exit status, stderr and seconds (run here, under a deadline)."""
    from xpnn.cli import main

    start = time.perf_counter()
    with deadline(seconds):
        status = main(["search", "--quiet", *argv])
        gc.collect()  # a client left half-made closes now (it used to hang here, 60 s)
    took = time.perf_counter() - start
    return status, capfd.readouterr().err.strip(), took


def _one_line(err: str) -> None:
    assert err.count("\n") == 0 and "Traceback" not in err, err


# --------------------------------------------------------------------------
# 1. --results naming a file that is not a results file
# --------------------------------------------------------------------------

FOREIGN = {
    "one line, no newline": b"my notes",
    "one line": b"my notes\n",
    "a blank line": b"\n",
    "a start of JSON": b'{"xpn',
    "other JSON lines": b'{"trial": 0, "params": {}, "val_acc": 0.5}\n',
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
}


@pytest.mark.parametrize("content", FOREIGN.values(), ids=FOREIGN.keys())
def test_a_file_that_is_not_a_results_file_is_refused_and_left_untouched(
    no_cluster, tmp_path, content
):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    os.utime(path, (1_500_000_000, 1_500_000_000))
    with warnings.catch_warnings(), pytest.raises(ResultsFileError) as info:
        warnings.simplefilter("error")  # refused, not "a cut line, ignored"
        random_search(**SMALL, results=path)
    message = str(info.value)
    assert str(path) in message and "not a results file" in message
    assert "another results file" in message and "delete" in message  # the two fixes
    assert "\n" not in message
    assert path.read_bytes() == content
    assert path.stat().st_mtime == 1_500_000_000


def test_cli_refuses_a_one_line_file_in_one_line_and_keeps_it(no_cluster, capfd, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my notes")  # no newline: it used to be taken for a cut header
    os.utime(path, (1_500_000_000, 1_500_000_000))
    status, err, _ = _cli(["--trials", "1", "--results", str(path)], capfd, 60)
    assert status == 2
    _one_line(err)
    assert str(path) in err and "delete" in err
    assert path.read_bytes() == b"my notes" and path.stat().st_mtime == 1_500_000_000


def test_an_empty_file_and_a_cut_header_start_a_new_search(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"")
    assert search.results.read_results(path, {"seed": 0}) == ({}, None)
    path.write_bytes(b'{"xpnn_search":1,"xpnn":"0.1')  # a search stopped writing its header
    with pytest.warns(RuntimeWarning, match="cut short"):
        assert search.results.read_results(path, {"seed": 0}) == ({}, 0)


# --------------------------------------------------------------------------
# 5. Two lines of the same trial
# --------------------------------------------------------------------------


def test_a_results_file_another_search_writes_is_refused_before_any_cluster(no_cluster, tmp_path):
    from xpnn.search.results import ResultsWriter

    path = tmp_path / "r.jsonl"
    with ResultsWriter(path, {"seed": 0}), pytest.raises(ResultsFileError, match="being written"):
        random_search(**SMALL, results=path)


def test_two_lines_of_one_trial_are_refused_with_both_line_numbers(tmp_path):
    from xpnn.search.results import ResultsWriter, read_results

    path = tmp_path / "r.jsonl"
    with ResultsWriter(path, {"seed": 0}) as writer:
        for trial, score in ((1, 0.5), (0, 0.25), (1, 0.75)):  # lines 2, 3 and 4
            writer.write({"trial": trial, "params": {}, "val_acc": score})
    before = path.read_bytes()
    with pytest.raises(ResultsFileError) as info:
        read_results(path, {"seed": 0})
    message = str(info.value)
    assert str(path) in message and "trial 1" in message
    assert "line 2" in message and "line 4" in message and "delete one" in message
    assert path.read_bytes() == before


# --------------------------------------------------------------------------
# 2. --trials 10**12
# --------------------------------------------------------------------------


def test_more_trials_than_max_trials_are_refused_at_once(no_cluster):
    start = time.perf_counter()
    with deadline(5), pytest.raises(ValueError, match="more than the"):
        random_search(**{**SMALL, "trials": 10**12})
    assert time.perf_counter() - start < 2


def test_cli_refuses_10_to_the_12_trials_in_one_line(no_cluster, capfd):
    status, err, took = _cli(["--trials", str(10**12), "--results", ""], capfd, 5)
    assert status == 2 and took < 2
    _one_line(err)
    assert f"{MAX_TRIALS:,}" in err


def test_trials_are_sent_out_as_workers_free_up(client, tmp_path):
    """MAX_TRIALS trials: the first starts at once, memory stays small, few are ever sent out."""
    stop = functools.partial(_search_faults.stop_at, marker_dir=str(tmp_path), stop=3)
    tracemalloc.start()
    start = time.time()
    try:
        with deadline(30), pytest.raises(TrialError, match="the test stops the search here"):
            random_search(
                **{**SMALL, "trials": MAX_TRIALS}, client=client, trial_fn=stop, retries=0
            )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    took = time.time() - start
    started = {p.name: float(p.read_text()) for p in tmp_path.glob("started-*")}
    assert "started-0" in started and started["started-0"] - start < 10
    assert peak < 100 * 2**20, f"tracemalloc peak {peak / 2**20:.0f} MiB"
    assert len(started) <= 16, sorted(started)  # a window of 2 per worker thread, refilled
    assert took < 30


# --------------------------------------------------------------------------
# 3. An unreachable or malformed scheduler
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["garbage", "tcp://host", "host:0", "host:99999", "http://h:8786", "a b:1", ":1"]
)
def test_a_scheduler_address_of_the_wrong_form_is_refused_before_any_cluster(no_cluster, address):
    with deadline(10), pytest.raises(ValueError, match="tcp://HOST:PORT"):
        random_search(**SMALL, scheduler=address)


def test_scheduler_addresses_of_the_right_form():
    check = search_cluster.check_address
    assert check("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert check("localhost:8786") == "tcp://localhost:8786"
    assert check("[::1]:8786") == "tcp://[::1]:8786"
    assert check("tls://sched.example.org:8786") == "tls://sched.example.org:8786"


@pytest.mark.parametrize("case", ["garbage", "refused port"])
def test_cli_bad_scheduler_fails_in_one_line_within_seconds(capfd, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    address = "garbage" if case == "garbage" else f"tcp://127.0.0.1:{_free_port()}"
    argv = ["--trials", "1", "--results", "r.jsonl", "--scheduler", address]
    status, err, took = _cli(argv, capfd, 30)
    assert status != 0 and took < 5, (status, took)
    _one_line(err)
    assert address in err and "tcp://10.0.0.5:8786" in err  # the address and the form
    assert not (tmp_path / "r.jsonl").exists()  # refused before the results file is written


@pytest.mark.parametrize("case", ["garbage", "refused port"])
def test_cli_bad_scheduler_whole_process_prints_one_line(tmp_path, case):
    """The whole command, to its exit: a half-made client once hung there 60 s, then a traceback."""
    address = "garbage" if case == "garbage" else f"127.0.0.1:{_free_port()}"
    argv = ["search", "--quiet", "--results", "", "--scheduler", address]
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "xpnn.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    took = time.perf_counter() - start  # with the interpreter's start and Dask's import
    err = run.stderr.strip()
    assert run.returncode == 2, err
    _one_line(err)
    assert address in err and took < 15, (took, err)


def test_a_port_that_accepts_and_stays_silent_is_refused_within_the_timeout():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        held: list[socket.socket] = []

        def accept() -> None:
            with contextlib.suppress(OSError):
                while True:
                    held.append(server.accept()[0])

        threading.Thread(target=accept, daemon=True).start()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        start = time.perf_counter()
        with deadline(60), pytest.raises(OSError, match="no Dask scheduler answered") as info:
            with search_cluster.connect(scheduler=address):
                pass
        assert time.perf_counter() - start < CONNECT_TIMEOUT + 2
        assert address in str(info.value)
        for conn in held:
            conn.close()


def test_a_running_scheduler_is_reached_by_its_address(client):
    result = random_search(**{**SMALL, "trials": 2}, scheduler=client.scheduler.address)
    assert [r["trial"] for r in result.records] == [0, 1]
    assert result.timing["where"].startswith("the cluster of tcp://")


# --------------------------------------------------------------------------
# 4. The memory of a trial, checked before any is sent out
# --------------------------------------------------------------------------


def test_cli_refuses_a_net_too_large_as_xpnn_train_does(no_cluster, capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, err, took = _cli(["--hidden", "100000x100000", "--results", ""], capfd, 60)
    assert status == 2 and took < 2, (status, took, err)
    _one_line(err)
    assert "this run needs about" in err and "is available" in err
    assert "choose smaller hidden layers (--hidden" in err


def test_the_estimate_is_xpnn_trains_for_one_hidden_layer():
    from xpnn.cli.memory import estimate_memory
    from xpnn.search.trial import estimate_trial_memory

    settings = {
        "model": "TwoLayerNet",
        "model_kwargs": {"input_size": 784, "hidden_size": 50, "output_size": 10},
        "fit_kwargs": {"max_epoch": 1, "batch_size": 100},
        "train_size": 500,
        "validation": 0.2,
        "optimizer": "adam",
        "dtype": None,
    }
    parts = estimate_trial_memory(settings, {})
    assert parts == estimate_memory(784, 50, 10, 100, optimizer="adam", n_train=400, n_test=100)
    many = {
        **settings,
        "model": "MultiLayerNet",
        "model_kwargs": {"input_size": 784, "hidden_size_list": [50, 50], "output_size": 10},
    }
    assert estimate_trial_memory(many, {})["total"] > parts["total"]
    own = {"input_size": 784, "hidden_size_list": [50], "output_size": 10}  # as the CLI gives
    own_class = {**settings, "model": "_search_faults:TinyNet", "model_kwargs": own}
    assert estimate_trial_memory(own_class, {}) is None  # not known: not refused


def test_a_searched_size_is_checked_at_its_largest(no_cluster, monkeypatch):
    from xpnn.cli import memory

    monkeypatch.setattr(memory, "memory_available", lambda backend: (2**30, "on the host (test)"))
    space = {**SMALL["space"], "model.hidden_size": Choice([8, 10**7])}
    with deadline(30), pytest.raises(MemoryError, match=r"1\.0 GiB is available on the host"):
        random_search(**{**SMALL, "space": space})


def test_a_net_too_large_for_the_workers_is_refused_before_any_trial(client, tmp_path):
    sent, results = [], tmp_path / "r.jsonl"
    real = client.submit
    client.submit = lambda *a, **k: sent.append(a) or real(*a, **k)
    huge = {"input_size": 784, "hidden_size": 10**9, "output_size": 10}
    start = time.perf_counter()
    try:
        with deadline(60), pytest.raises(MemoryError, match=r"of worker tcp://.*choose smaller"):
            random_search(**{**SMALL, "model_kwargs": huge}, client=client, results=results)
    finally:
        del client.submit
    assert not sent and time.perf_counter() - start < 10
    assert not results.exists()  # nothing written either

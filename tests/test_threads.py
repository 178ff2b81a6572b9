"""``--threads N``: the CPU libraries' thread limit of ``xpnn train``, ``search`` and ``bench``.

The limit (xpnn.backend.threads) is checked where it acts: threadpoolctl's
view of the loaded BLAS, the environment, a stand-in for PyTorch; and inside
the commands, during the run (a patched training step, a trial on a Dask
worker, the bench report).
"""

from __future__ import annotations

import json
import os
import sys
import types

import pytest
from threadpoolctl import threadpool_info

import xpnn
from xpnn import bench, cli
from xpnn.backend import threads


def pools() -> set[int]:
    """The thread counts of the BLAS and OpenMP libraries loaded in this process."""
    return {int(p["num_threads"]) for p in threadpool_info()}


# --------------------------------------------------------------------------
# The default and the check
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("cpus", "expected"), [(1, 1), (2, 1), (3, 3), (4, 4), (8, 4), (64, 4)])
def test_the_default_is_one_thread_on_two_cpus_or_fewer_else_at_most_four(cpus, expected):
    assert threads.default_threads(cpus) == expected


def test_the_default_follows_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 6)
    assert threads.default_threads() == 4
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    assert threads.default_threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_a_thread_count_is_a_positive_int(bad):
    with pytest.raises(ValueError, match=r"threads must be a positive whole number"):
        threads.check_threads(bad)


# --------------------------------------------------------------------------
# limit_threads
# --------------------------------------------------------------------------


def test_the_limit_holds_inside_the_block_and_is_undone_after(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = pools()
    with threads.limit_threads(1) as n:
        assert n == 1 and threads.current_limit() == 1
        assert pools() == {1}
        assert all(os.environ[name] == "1" for name in threads.THREAD_ENV)
        assert threads.environment_before(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")) == {
            "OPENBLAS_NUM_THREADS": "7",
            "OMP_NUM_THREADS": None,
        }
    assert threads.current_limit() is None
    assert pools() == before
    assert os.environ["OPENBLAS_NUM_THREADS"] == "7" and "OMP_NUM_THREADS" not in os.environ


def test_blocks_nest_the_innermost_wins_and_the_outer_comes_back():
    with threads.limit_threads(1):
        with threads.limit_threads(2):
            assert pools() == {2} and os.environ["OMP_NUM_THREADS"] == "2"
        assert pools() == {1} and os.environ["OMP_NUM_THREADS"] == "1"
        assert threads.current_limit() == 1


def test_without_a_number_the_default_applies(monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    with threads.limit_threads() as n:
        assert n == 1 and pools() == {1}


def test_pytorch_is_limited_when_imported_and_set_back_after(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(get_num_threads=lambda: 8, set_num_threads=calls.append)
    monkeypatch.setitem(sys.modules, "torch", fake)
    with threads.limit_threads(2):
        assert calls == [2]
    assert calls == [2, 8]


def test_a_pytorch_imported_inside_the_block_is_reached_by_refresh(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    calls = []
    with threads.limit_threads(1):
        fake = types.SimpleNamespace(get_num_threads=lambda: 1, set_num_threads=calls.append)
        monkeypatch.setitem(sys.modules, "torch", fake)  # "import torch" by the backend
        threads.refresh()
        assert calls == [1]


def test_the_module_never_imports_pytorch():
    code = (
        "import sys; from xpnn.backend.threads import limit_threads\n"
        "with limit_threads(1): pass\n"
        "print('torch' in sys.modules)"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "search", "bench"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be 1 or more threads, got 0"),
        ("-2", "must be 1 or more"),
        ("two", "not a whole"),
    ],
)
def test_a_bad_threads_value_is_one_line_naming_the_option(capsys, command, value, message):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--threads", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "argument --threads:" in err and message in err and "--threads 1" in err


@pytest.mark.parametrize("command", ["train", "search", "bench"])
def test_help_states_the_default_and_why(capsys, command):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--threads N" in out
    if command == "search":
        assert "default: 1 in each worker" in out
    else:
        assert "1 on a machine with 2 CPUs or fewer, else min(4, CPUs)" in out
        assert f"(here: {threads.default_threads()})" in out


def _seen_during_fit(monkeypatch) -> list[dict]:
    """Record the thread pools and the environment in every ``Trainer.fit``."""
    seen: list[dict] = []
    fit = xpnn.Trainer.fit

    def spy(self, *args, **kwargs):
        seen.append({"pools": pools(), "omp": os.environ.get("OMP_NUM_THREADS")})
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(xpnn.Trainer, "fit", spy)
    return seen


def test_train_runs_under_the_limit_given(monkeypatch, capsys):
    seen = _seen_during_fit(monkeypatch)
    before = pools()
    assert cli.main(["train", "--epochs", "1", "--quiet", "--threads", "2"]) == 0
    assert seen == [{"pools": {2}, "omp": "2"}]
    assert pools() == before  # and nothing is left limited after the command


def test_train_without_threads_runs_under_the_default(monkeypatch, capsys):
    monkeypatch.setattr(threads, "available_cpus", lambda: 3)  # default: min(4, 3) = 3
    seen = _seen_during_fit(monkeypatch)
    assert cli.main(["train", "--epochs", "1", "--quiet"]) == 0
    assert seen == [{"pools": {3}, "omp": "3"}]


def test_bench_records_the_limit_given_in_the_json_and_the_header(monkeypatch, tmp_path, capsys):
    seen = []
    monkeypatch.setattr(bench, "CASES", {"tiny": lambda: seen.append(pools()) or {"x": 0.5}})
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "tiny", "--json", str(out), "--threads", "2"]) == 0
    assert seen == [{2}]
    header = capsys.readouterr().out.splitlines()[1]
    default = threads.default_threads()
    assert header.startswith(f"threads: limit 2 (--threads; the default here is {default}, for ")
    machine = json.loads(out.read_text())["machine"]
    assert machine["thread_limit"] == {
        "limit": 2,
        "requested": 2,
        "default": default,
        "cpus": threads.available_cpus(),
    }
    assert {p["num_threads"] for p in machine["threads"]["threadpools"]} == {2}


@pytest.mark.parametrize("case", ["conv", "precision"])
def test_bench_conv_and_precision_record_the_default_picked(monkeypatch, tmp_path, capsys, case):
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    seen = []
    monkeypatch.setitem(bench.CASES, case, lambda: seen.append(pools()) or {"unit": "s"})
    monkeypatch.setattr(bench, f"format_{case}", lambda result: ["  (table)"])
    out = tmp_path / "bench.json"
    assert cli.main(["bench", case, "--json", str(out)]) == 0
    assert seen == [{1}]
    header = capsys.readouterr().out.splitlines()[1]
    assert header.startswith("threads: limit 1 (not given, the default; the default here is 1, ")
    limit = json.loads(out.read_text())["machine"]["thread_limit"]
    assert limit == {"limit": 1, "requested": None, "default": 1, "cpus": 2}


def test_the_bench_memory_subprocess_inherits_the_limit(monkeypatch):
    seen = {}

    def run(cmd, **kwargs):
        seen["env"] = kwargs.get("env") or dict(os.environ)
        return types.SimpleNamespace(stdout="1 2 3")

    monkeypatch.setattr(bench, "subprocess", types.SimpleNamespace(run=run))
    monkeypatch.setattr(bench, "CASES", {"memory": bench.bench_memory})
    bench.run(["memory"], threads=2)
    assert seen["env"]["OPENBLAS_NUM_THREADS"] == "2" and seen["env"]["OMP_NUM_THREADS"] == "2"


# --------------------------------------------------------------------------
# The search: each trial, on its worker
# --------------------------------------------------------------------------


def test_search_passes_threads_to_the_search_default_one(monkeypatch, tmp_path, capsys):
    import xpnn.search

    seen = []

    def fake_search(**kwargs):
        seen.append((kwargs["threads"], pools()))
        raise KeyboardInterrupt  # stop there: the arguments are what is checked

    monkeypatch.setattr(xpnn.search, "random_search", fake_search)
    base = ["search", "--quiet", "--results", "", "--trials", "1"]
    assert cli.main(base) == 130
    assert cli.main([*base, "--threads", "2"]) == 130
    assert seen == [(1, {1}), (2, {2})]


def test_run_trial_limits_the_threads_during_the_trial_only():
    from xpnn.search import run_trial

    def trial_fn(trial):
        return {"val_acc": 0.5, "pools": sorted(pools())}

    trial = xpnn.search.Trial(0, {}, 0, 0, {})
    before = pools()
    assert run_trial(trial_fn, trial, 2)["pools"] == [2]
    assert pools() == before
    assert run_trial(trial_fn, trial)["pools"] == sorted(before)  # None: as the worker has it


def test_random_search_refuses_a_bad_threads_before_any_cluster():
    from xpnn.search import random_search

    with pytest.raises(ValueError, match="threads must be a positive whole number"):
        random_search(trials=1, threads=0, scheduler="tcp://127.0.0.1:1")


def test_each_trial_runs_under_the_limit_on_its_dask_worker():
    pytest.importorskip("distributed")
    from xpnn.search import random_search

    def trial_fn(trial):  # local: cloudpickle sends it by value to the worker
        import os

        from threadpoolctl import threadpool_info

        return {
            "val_acc": 0.5,
            "pid": os.getpid(),
            "pools": sorted({int(p["num_threads"]) for p in threadpool_info()}),
        }

    result = random_search(trials=2, workers=1, threads=2, trial_fn=trial_fn, progress=False)
    assert [r["pools"] for r in result.records] == [[2], [2]]
    assert result.records[0]["pid"] != os.getpid()  # on the worker, not here


def test_pytorch_gets_its_thread_count_back_after_the_limit():
    # PyTorch's pool is OpenMP's: limiting OpenMP first made PyTorch report the
    # new count, which was then "restored" (found with PyTorch installed).
    torch = pytest.importorskip("torch")
    before, omp_before = torch.get_num_threads(), pools()
    limit = 2 if before != 2 else 3
    with threads.limit_threads(limit):
        assert torch.get_num_threads() == limit
    assert torch.get_num_threads() == before
    assert pools() == omp_before

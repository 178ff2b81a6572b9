"""xpnn.search and ``xpnn search``: the random search on Dask distributed.

The searches here are tiny (4 trials of a 784-8-10 net, 2 epochs of 3
batches) so that the whole file runs in well under a minute on 2 cores; the
cluster is a LocalCluster of 2 worker processes shared by the module (and
embedded clusters where the search starts its own).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import xpnn.search as search
import xpnn.search.cluster as search_cluster
from xpnn.search import (
    Choice,
    IntUniform,
    LogUniform,
    ResultsFileError,
    TrialError,
    Uniform,
    random_search,
    sample_params,
    trial_seeds,
)

distributed = pytest.importorskip("distributed")

import _search_faults  # noqa: E402  (tests/ is on sys.path: pytest's rootdir insertion)
import cloudpickle  # noqa: E402

# The workers get the test's trial functions by value: they need not import this folder.
cloudpickle.register_pickle_by_value(_search_faults)

TESTS = str(Path(__file__).resolve().parent)

SPACE = {"optimizer.lr": LogUniform(1e-2, 1.0), "model.weight_init_std": LogUniform(1e-3, 1e-1)}
SMALL = {
    "space": SPACE,
    "trials": 4,
    "epochs": 2,
    "batch_size": 50,
    "train_size": 200,
    "model": "TwoLayerNet",
    "model_kwargs": {"input_size": 784, "hidden_size": 8, "output_size": 10},
    "progress": False,
}


def _table(result: search.SearchResult) -> list[dict]:
    """The records without their timings (the only thing allowed to differ)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in result.records]


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes (1 thread each), shared by the module."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    )
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def reference(client, tmp_path_factory):
    """The small search run once on the 2 workers, with its results file."""
    path = tmp_path_factory.mktemp("reference") / "results.jsonl"
    return random_search(**SMALL, client=client, results=path), path


# --------------------------------------------------------------------------
# Spaces and seeds (no cluster)
# --------------------------------------------------------------------------


def test_trial_values_depend_on_seed_and_trial_only():
    a = sample_params(SPACE, 0, 3)
    reordered = dict(reversed(list(SPACE.items())))
    assert sample_params(reordered, 0, 3) == a
    assert sample_params(SPACE, 0, 4) != a
    assert sample_params(SPACE, 1, 3) != a
    assert trial_seeds(0, 3)[1:] == trial_seeds(0, 3)[1:] != trial_seeds(0, 4)[1:]
    # The book's ranges: 10^U(-6, -2) and 10^U(-8, -4).
    for k in range(200):
        values = sample_params(search.DEFAULT_SPACE, 7, k)
        assert 1e-6 <= values["optimizer.lr"] < 1e-2
        assert 1e-8 <= values["model.weight_decay_lambda"] < 1e-4
    drawn = [sample_params({"fit.batch_size": Choice([25, 50])}, 0, k) for k in range(50)]
    assert {d["fit.batch_size"] for d in drawn} == {25, 50}
    ints = {sample_params({"x.n": IntUniform(1, 3)}, 0, k)["x.n"] for k in range(60)}
    assert ints == {1, 2, 3}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LogUniform(0, 1), "low > 0"),
        (lambda: Uniform(2, 1), "low < high"),
        (lambda: IntUniform(1.5, 3), "must be an int"),
        (lambda: Choice([]), "non-empty"),
        (lambda: Choice([object()]), "JSON-able"),
    ],
)
def test_bad_distributions_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"space": {"lr": LogUniform(1e-3, 1)}}, "'target.argument'"),
        ({"space": {"optimizer.lr": 0.1}}, "must be a distribution"),
        ({"space": {"model.no_such_arg": Uniform(0, 1)}}, "no_such_arg"),
        ({"space": {"fit.seed": IntUniform(0, 3)}}, "sets fit's seed"),
        ({"trials": 0}, "trials must be a positive int"),
        ({"validation": 0.001}, "holds out 0"),
        ({"batch_size": 500}, "more than the 160 training samples"),
        ({"model": "NoSuchNet"}, "unknown model 'NoSuchNet'"),
        ({"optimizer": "nadam"}, "unknown optimizer 'nadam'"),
        ({"workers": 2, "scheduler": "tcp://127.0.0.1:1"}, "drop them"),
    ],
)
def test_bad_arguments_are_refused_before_any_cluster(monkeypatch, kwargs, message):
    def no_cluster(**_):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(search_cluster, "connect", no_cluster)
    with pytest.raises(ValueError, match=message):
        random_search(**{**SMALL, **kwargs})


def test_run_trial_checks_what_the_trial_function_returns():
    from xpnn.search.trial import run_trial

    trial = search.Trial(3, {"x.a": 1}, 0, 0, {})
    record = run_trial(lambda t: {"val_acc": 0.5, "curve": (1, 2)}, trial)
    assert record["trial"] == 3 and record["params"] == {"x.a": 1}
    assert record["curve"] == [1, 2]  # as the results file gives it back
    assert record["seconds"] >= 0
    for bad, message in [
        ({"score": 1.0}, "with 'val_acc'"),
        ({"val_acc": float("nan")}, "finite number or None"),
        ({"val_acc": 0.5, "extra": object()}, "JSON-able"),
        ({"val_acc": 0.5, "seconds": 1.0}, "may not hold"),
    ]:
        with pytest.raises(TypeError, match=message):
            run_trial(lambda t, bad=bad: bad, trial)


def test_a_file_with_only_a_cut_header_starts_afresh(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"xpnn_search": 1, "sett')
    with pytest.warns(RuntimeWarning, match="cut short"):
        assert search.results.read_results(path, {"seed": 0}) == ({}, 0)
    path.write_text("")
    assert search.results.read_results(path, {"seed": 0}) == ({}, None)
    path.write_text("hello\n")
    with pytest.raises(ResultsFileError, match="not a results file of xpnn search"):
        search.results.read_results(path, {"seed": 0})


# --------------------------------------------------------------------------
# On the cluster
# --------------------------------------------------------------------------


def test_one_worker_and_two_workers_give_the_same_table(reference):
    two, _ = reference
    assert two.timing["workers"] == 2
    assert [r["trial"] for r in two.records] == [0, 1, 2, 3]
    curves = [r["val_acc_list"] for r in two.records]
    assert all(len(c) == 2 for c in curves)  # one validation accuracy per epoch
    assert len({json.dumps(c) for c in curves}) > 1  # the trials differ
    one = random_search(**SMALL, workers=1)  # an embedded LocalCluster of 1 worker
    assert one.timing["workers"] == 1
    assert one.timing["where"] == "embedded LocalCluster"
    assert _table(one) == _table(two)  # exact floats
    assert one.ranked()[0]["val_acc"] == max(r["val_acc"] for r in one.records)
    assert one.table().startswith("Best-1(val acc:")
    assert "lr:" in one.table() and "weight_init_std:" in one.table()


def test_a_killed_worker_has_its_trial_rerun_elsewhere(client, reference, tmp_path):
    fault = functools.partial(_search_faults.die_once, marker_dir=str(tmp_path), number=1)
    result = random_search(**SMALL, client=client, trial_fn=fault)
    assert (tmp_path / "died-1").exists()  # the worker did die in trial 1
    assert _table(result) == _table(reference[0])
    # The cluster got its worker back.
    client.wait_for_workers(2, timeout=30)


def test_a_trial_that_raises_is_retried_or_ends_the_search_keeping_the_rest(
    client, reference, tmp_path
):
    retried = functools.partial(_search_faults.fail_once, marker_dir=str(tmp_path), number=1)
    result = random_search(**SMALL, client=client, trial_fn=retried)  # retries=2
    assert (tmp_path / "failed-1").exists()
    assert _table(result) == _table(reference[0])

    markers = tmp_path / "no-retries"
    markers.mkdir()
    fails = functools.partial(_search_faults.fail_once, marker_dir=str(markers), number=1)
    path = tmp_path / "r.jsonl"
    with pytest.raises(TrialError, match=r"trial 1 failed .*a passing failure"):
        random_search(**SMALL, client=client, trial_fn=fails, results=path, retries=0)
    kept = [json.loads(line)["trial"] for line in path.read_text().splitlines()[1:]]
    assert 1 not in kept
    again = random_search(**SMALL, client=client, trial_fn=fails, results=path)
    assert 1 in again.ran and not set(again.ran) & set(kept)
    assert _table(again) == _table(reference[0])


def test_resume_after_a_shorter_search_runs_only_the_missing_trials(client, reference, tmp_path):
    path = tmp_path / "r.jsonl"
    first = random_search(**{**SMALL, "trials": 2}, client=client, results=path)
    assert first.ran == [0, 1]
    second = random_search(**SMALL, client=client, results=path)
    assert second.ran == [2, 3]
    assert _table(second) == _table(reference[0])
    again = random_search(**SMALL, client=client, results=path)  # nothing left: no cluster
    assert again.ran == [] and again.timing == {}
    assert _table(again) == _table(reference[0])
    assert len(path.read_text().splitlines()) == 1 + 4  # header + one line per trial


def test_resume_after_an_interruption(client, reference, tmp_path):
    lines = reference[1].read_text().splitlines(keepends=True)
    path = tmp_path / "r.jsonl"
    path.write_text(lines[0] + lines[2] + lines[4])  # header, then two trials finished
    done = sorted(json.loads(line)["trial"] for line in (lines[2], lines[4]))
    result = random_search(**SMALL, client=client, results=path)
    assert result.ran == sorted({0, 1, 2, 3} - set(done))
    assert _table(result) == _table(reference[0])


def test_a_cut_last_line_is_ignored_with_a_warning_and_rerun(client, reference, tmp_path):
    text = reference[1].read_text()
    path = tmp_path / "r.jsonl"
    path.write_text(text[: len(text) - 40])  # the last record cut mid-write
    last = json.loads(text.splitlines()[-1])["trial"]
    with pytest.warns(RuntimeWarning, match="cut short"):
        result = random_search(**SMALL, client=client, results=path)
    assert result.ran == [last]
    assert _table(result) == _table(reference[0])
    records = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert sorted(r["trial"] for r in records) == [0, 1, 2, 3]  # the cut line is gone


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"seed": 1}, "seed is 0 there but 1 here"),
        ({"space": {**SPACE, "optimizer.lr": LogUniform(1e-3, 1.0)}}, "space is"),
        ({"train_size": 300}, "train_size is 200 there but 300 here"),
        ({"epochs": 3}, "fit_kwargs is"),
    ],
)
def test_a_file_of_another_search_is_refused_before_any_cluster(
    monkeypatch, reference, change, named
):
    def no_cluster(**_):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(search_cluster, "connect", no_cluster)
    path = reference[1]
    before = path.read_bytes()
    with pytest.raises(ResultsFileError, match=named) as info:
        random_search(**{**SMALL, **change}, results=path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before


def test_a_damaged_line_before_the_last_is_refused(reference, tmp_path):
    lines = reference[1].read_text().splitlines(keepends=True)
    path = tmp_path / "r.jsonl"
    path.write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    with pytest.raises(ResultsFileError, match="line 2 is damaged"):
        random_search(**SMALL, results=path)


def test_a_trial_that_diverges_is_a_result_ranked_last(client):
    space = {"optimizer.lr": LogUniform(1e4, 1e5)}
    result = random_search(**{**SMALL, "space": space, "trials": 1, "epochs": 5}, client=client)
    (record,) = result.records
    assert record["val_acc"] is None and "error" in record
    assert "diverged" in result.table()


def test_the_default_model_is_the_books_multilayer_net(client):
    pytest.importorskip("xpnn.models.multilayer")
    result = random_search(
        trials=2,
        epochs=1,
        train_size=200,
        batch_size=50,
        model_kwargs={"input_size": 784, "hidden_size_list": [8, 8], "output_size": 10},
        client=client,
        progress=False,
    )
    assert set(result.records[0]["params"]) == {"optimizer.lr", "model.weight_decay_lambda"}
    assert "weight decay:" in result.table()


# --------------------------------------------------------------------------
# Without Dask
# --------------------------------------------------------------------------


def test_without_dask_import_works_and_the_search_says_what_to_install(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None\n"
        "sys.modules['dask'] = None\n"
        "import xpnn, xpnn.search, xpnn.cli\n"
        "from xpnn.search import random_search, LogUniform\n"
        "try:\n"
        "    random_search({'optimizer.lr': LogUniform(0.01, 1)}, 1, model='TwoLayerNet',\n"
        "        model_kwargs={'input_size': 784, 'hidden_size': 8, 'output_size': 10})\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert 'pip install "xpnn[search]"' in out.stdout, out.stdout + out.stderr


def test_missing_dask_is_an_import_error_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)
    path = tmp_path / "r.jsonl"
    with pytest.raises(ImportError, match=r'pip install "xpnn\[search\]"'):
        random_search(**SMALL, results=path)
    assert not path.exists()  # nothing written


def test_gpus_without_dask_cuda_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_cuda", None)
    with pytest.raises(ImportError, match=r'pip install "xpnn\[search-cuda\]"'):
        random_search(**SMALL, gpus=True)


# --------------------------------------------------------------------------
# The figure and the command line
# --------------------------------------------------------------------------


def test_plot_search_draws_the_best_trials(reference, tmp_path):
    from xpnn.plot import plot_search, search_figure

    result = reference[0]
    fig = search_figure(result)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title().startswith("Best-1")
    # Solid validation curve, dashed training curve, as the book draws them.
    assert [line.get_linestyle() for line in fig.axes[0].lines] == ["-", "--"]
    many = [dict(result.records[0], trial=k) for k in range(30)]
    assert len(search_figure(many).axes) == 20  # the book's 20 panels, 5 per row
    assert plot_search(result, tmp_path / "s.svg").stat().st_size > 0
    with pytest.raises(ValueError, match="no validation curve"):
        search_figure([{"trial": 0, "val_acc": 0.5}])


def test_cli_search_runs_resumes_and_plots(capsys, monkeypatch, tmp_path):
    from xpnn.cli import main

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    results, plot = tmp_path / "r.jsonl", tmp_path / "s.png"
    argv = [
        "search", "--trials", "3", "--workers", "2", "--epochs", "1", "--hidden", "8",
        "--train-size", "200", "--batch-size", "50", "--model", "_search_faults:TinyNet",
        "--results", str(results), "--plot", str(plot), "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("Best-") == 3 and "lr:" in out and "weight decay:" in out
    assert "3 trials on 2 worker(s)" in out and "overhead" in out
    assert plot.stat().st_size > 0
    assert main(argv) == 0  # resumed: nothing to run
    assert "no trials ran" in capsys.readouterr().out
    assert main([*argv[:-3], "--seed", "5", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(results) in err and "seed is 0 there but 5 here" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--trials", "0"], "--trials: must be positive"),
        (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "drop one of them"),
        (["--plot", "out.txt"], "--plot out.txt: the extension"),
        (["--hidden", "10,x"], "not a list of layer sizes"),
        (["--data-dir", "."], "--data-dir applies only to --dataset mnist"),
    ],
)
def test_cli_search_bad_options_are_one_line(capsys, argv, message):
    from xpnn.cli import main

    parse_error = argv[0] in ("--trials", "--hidden")  # argparse's: exit status 2 too
    with pytest.raises(SystemExit, match="2") if parse_error else contextlib.nullcontext():
        assert main(["search", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0


def test_every_search_option_has_help_and_its_default(capsys):
    import argparse

    from xpnn.cli import build_parser, main

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert "search" in sub.choices
    for action in sub.choices["search"]._actions:
        assert action.help, f"xpnn search {action.option_strings} has no help"
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "in --results) (default: 100)" in out and "at most 10,000,000" in out
    assert "epochs of each trial (default: 50)" in out
    assert "(default: None)" not in out and "(default: False)" not in out

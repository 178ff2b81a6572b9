"""Hyper-parameter search on Dask distributed: the book's random search as a general tool.

The book's search (vol. 1, 6.5, ``hyperparameter_optimization.py``) trains
``MultiLayerNet(784, [100] * 6, 10)`` with SGD for 50 epochs on 400 MNIST
training samples, 100 trials of a learning rate drawn from 10^U(-6, -2) and a
weight decay from 10^U(-8, -4), scored on 100 held-out samples::

    from xpnn.search import random_search

    result = random_search(trials=100, results="search.jsonl")
    print(result.table())            # Best-1 (val acc:0.83) | lr:0.0081, weight decay:3.2e-07 ...
    print(result.timing_summary())
    result.plot("search.png")        # the 20 best trials' curves

Any model, optimizer or ``fit`` argument may be searched: the space's keys
name them (``"optimizer.lr"``, ``"model.weight_decay_lambda"``,
``"fit.batch_size"``), its values are distributions (:class:`LogUniform`,
:class:`Uniform`, :class:`IntUniform`, :class:`Choice`).

The trials run on Dask distributed: on an embedded ``LocalCluster`` (one
worker process per core; ``workers=`` to choose; ``gpus=True`` for one
worker per GPU with dask-cuda), on a running scheduler (``scheduler=
"tcp://host:8786"``) or through your ``client=``. Workers load the data
themselves; each trial is seeded from (search seed, trial number), so the
results are the same whatever the number of workers and the order they run
in. Trials are sent out as workers free up (a few per worker thread at a
time), so a search of any number of trials starts at once and holds only
those in flight. A worker that dies mid-trial has its trial run again elsewhere. With
``results=FILE`` every finished trial is appended to that file at once, and
running the same search again resumes it.

Importing this module does not import Dask; a search that needs it says to
``pip install "xpnn[search]"``. In a script, call :func:`random_search`
under ``if __name__ == "__main__":``: the embedded cluster's worker
processes import the script again.
"""

from __future__ import annotations

import json
import numbers
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xpnn.search.memory import check_memory_here, check_memory_on_workers, largest_trial
from xpnn.search.results import ResultsFileError, ResultsWriter, check_writable, read_results
from xpnn.search.space import (
    DEFAULT_SPACE,
    TARGETS,
    Choice,
    Distribution,
    IntUniform,
    LogUniform,
    Uniform,
    check_space,
    describe_space,
    sample_params,
    trial_seeds,
)
from xpnn.search.trial import (
    DATASET_SIZES,
    FIT_RESERVED,
    Trial,
    check_call,
    resolve_model,
    resolve_optimizer,
    run_trial,
    train_trial,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_KWARGS",
    "DEFAULT_SPACE",
    "Choice",
    "Distribution",
    "IntUniform",
    "LogUniform",
    "MAX_TRIALS",
    "ResultsFileError",
    "SearchResult",
    "Trial",
    "TrialError",
    "Uniform",
    "random_search",
    "sample_params",
    "train_trial",
    "trial_seeds",
]

#: The book's network of the search (``multi_layer_net.MultiLayerNet``).
DEFAULT_MODEL = "MultiLayerNet"
#: Its sizes: 784 inputs, six hidden layers of 100, 10 classes.
DEFAULT_MODEL_KWARGS: dict[str, Any] = {
    "input_size": 784,
    "hidden_size_list": [100] * 6,
    "output_size": 10,
}

#: The most trials a search takes. Trials are sent out lazily (:data:`IN_FLIGHT_PER_THREAD`
#: per worker thread), so their number costs nothing up front; but the search keeps every
#: finished trial's record (its values, its accuracy curves, its seconds: 1 KB or more) in
#: memory for its ranking and result, and the results file a line of it: 10**7 trials are
#: 10 GB or more of each. Run a larger search as several, each with its own seed and file.
MAX_TRIALS = 10**7

#: Trials sent out per worker thread at a time: one running, the others waiting on the
#: worker so that it never idles between trials; the next is sent when one finishes. With
#: 300 trials of 1 ms on 2 workers, 2 took 1.74 s, 4 1.51 s, 8 1.59 s, all at once 1.42 s.
IN_FLIGHT_PER_THREAD = 4

#: How the table names the book's two hyper-parameters (others: their last part).
LABELS = {"optimizer.lr": "lr", "model.weight_decay_lambda": "weight decay"}


class TrialError(RuntimeError):
    """A trial failed on the cluster (after its retries); finished trials are kept."""


# --------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------


def _display_order(item: tuple[str, Any]) -> tuple[int, str]:
    """Optimizer values first, then model, fit, others: the book's ``lr:..., weight decay:...``."""
    head = item[0].partition(".")[0]
    order = ("optimizer", "model", "fit")
    return (order.index(head) if head in order else len(order), item[0])


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value)


@dataclass
class SearchResult:
    """The trials of a search, with its ranking, table, figure and timing.

    Attributes:
        records: One dict per finished trial, by trial number: ``trial``,
            ``params``, ``val_acc`` (the last validation accuracy, None for
            a diverged trial), ``val_acc_list`` and ``train_acc_list`` (per
            epoch), ``seconds`` (on its worker), and what the trial function
            adds (``backend``, ``error``).
        settings: The search's settings (the results file's header).
        ran: The trial numbers run by this call (the others were read back
            from the results file).
        timing: ``wall_s`` (first submission to last result), ``trial_s``
            (the trials' summed seconds on their workers), ``workers``,
            ``trials`` (run by this call), ``overhead_per_trial_s`` (``(wall_s
            * workers - trial_s) / trials``: scheduling, transfers and idle
            workers, per trial), ``startup_s`` (connecting or starting the
            cluster), ``where``. Empty when nothing ran.
        results: The results file, if any.
    """

    records: list[dict[str, Any]]
    settings: dict[str, Any]
    ran: list[int] = field(default_factory=list)
    timing: dict[str, Any] = field(default_factory=dict)
    results: Path | None = None

    def ranked(self) -> list[dict[str, Any]]:
        """The records, best validation accuracy first (diverged trials last; ties by number)."""
        return sorted(
            self.records,
            key=lambda r: (r["val_acc"] is None, -(r["val_acc"] or 0.0), r["trial"]),
        )

    @property
    def best(self) -> dict[str, Any]:
        """The best trial's record."""
        if not self.records:
            raise ValueError("no finished trials")
        return self.ranked()[0]

    def table(self, top: int | None = None) -> str:
        """The book's ranking: ``Best-1(val acc:0.83) | lr:0.0081, weight decay:3.2e-07``.

        Args:
            top: Only the best ``top`` trials (all if None).

        Returns:
            One line per trial, best first, each ending with its trial number.
        """
        lines = []
        for rank, record in enumerate(self.ranked()[:top], start=1):
            score = "diverged" if record["val_acc"] is None else f"{record['val_acc']:.4g}"
            values = ", ".join(
                f"{LABELS.get(k, k.rpartition('.')[2])}:{_format(v)}"
                for k, v in sorted(record["params"].items(), key=_display_order)
            )
            lines.append(f"Best-{rank}(val acc:{score}) | {values} | trial {record['trial']}")
        return "\n".join(lines)

    def timing_summary(self) -> str:
        """Wall time, summed trial time, workers and scheduling overhead per trial, one line."""
        t = self.timing
        if not t:
            return f"no trials ran: all {len(self.records)} were read from {self.results}"
        return (
            f"{t['trials']} trials on {t['workers']} worker(s) ({t['where']}): wall "
            f"{t['wall_s']:.1f} s, trials {t['trial_s']:.1f} s summed, overhead "
            f"{t['overhead_per_trial_s']:.3f} s per trial "
            f"((wall x workers - trials) / trials); cluster start {t['startup_s']:.1f} s"
        )

    def plot(
        self, path: str | os.PathLike[str] | None = None, *, top: int = 20, cols: int = 5
    ) -> Path | None:
        """The book's figure: the best trials' validation (solid) and training (dashed) curves.

        Args:
            path: Write it here (``.png``, ``.svg``, ``.pdf``); without it,
                show it, or write ``xpnn_search.png`` (see
                :func:`xpnn.plot.show_or_save`).
            top: Panels (the best ``top`` trials, at most 20 as the book).
            cols: Panels per row (5 as the book).

        Returns:
            The file written, or None when shown.
        """
        from xpnn.plot import _output_path, can_show, search_figure, show_or_save

        if path is not None:
            _output_path(path)
        fig = search_figure(self.ranked(), top=top, cols=cols, pyplot=path is None and can_show())
        return show_or_save(fig, path, default="xpnn_search.png")


# --------------------------------------------------------------------------
# Checking the arguments
# --------------------------------------------------------------------------


def _positive_int(value: Any, name: str, *, zero: bool = False) -> int:
    low = 0 if zero else 1
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        what = "a non-negative" if zero else "a positive"
        raise ValueError(f"{name} must be {what} int, got {value!r}")
    return int(value)


def _json_dict(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name} must be a dict of argument names to values, got {value!r}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must hold JSON-able values (numbers, strings, lists: a results file "
            f"records them), got {value!r}"
        ) from None


def _function_name(fn: Callable[..., Any]) -> str:
    inner = getattr(fn, "func", fn)  # functools.partial
    return f"{getattr(inner, '__module__', '?')}:{getattr(inner, '__qualname__', repr(inner))}"


def _check_backend(backend: str | None, gpus: bool, local: bool) -> str | None:
    if backend is not None and (not isinstance(backend, str) or not backend):
        raise ValueError(f"backend must be a spec such as 'numpy' or 'cupy', got {backend!r}")
    if gpus:
        backend = backend or "cupy"
        name, _, device = backend.partition(":")
        if name not in ("cupy", "torch") or (name == "torch" and device != "cuda"):
            raise ValueError(
                f"gpus=True (--gpus) runs a GPU backend on each worker: 'cupy' or 'torch:cuda', "
                f"not {backend!r}"
            )
        if name == "cupy" and device not in ("", "0"):
            raise ValueError(
                f"backend {backend!r}: with gpus=True each worker sees only its own GPU (as "
                "device 0): name the backend without a device ('cupy')"
            )
    elif backend is not None and local:
        import xpnn

        with xpnn.use_backend(backend):  # the workers are on this machine: it must open here
            pass
    return backend


def _settings(
    *,
    space: Mapping[str, Distribution],
    seed: int,
    epochs: int,
    batch_size: int,
    dataset: str,
    data_dir: str | os.PathLike[str] | None,
    train_size: int,
    validation: float,
    model: str,
    model_kwargs: Mapping[str, Any] | None,
    optimizer: str,
    optimizer_kwargs: Mapping[str, Any] | None,
    fit_kwargs: Mapping[str, Any] | None,
    backend: str | None,
    dtype: str | None,
    trial_fn: Callable[..., Any],
) -> dict[str, Any]:
    """The search's JSON-able settings (the results file's header), checked."""
    seed = _positive_int(seed, "seed", zero=True)
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    train_size = _positive_int(train_size, "train_size")
    if dataset not in DATASET_SIZES:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASET_SIZES)}")
    if dataset != "mnist" and data_dir is not None:
        raise ValueError(f"data_dir is for dataset 'mnist', not {dataset!r}")
    if train_size > DATASET_SIZES[dataset]:
        raise ValueError(
            f"train_size {train_size} is more than {dataset}'s {DATASET_SIZES[dataset]} "
            "training samples"
        )
    if isinstance(validation, bool) or not isinstance(validation, numbers.Real):
        raise ValueError(f"validation must be a fraction such as 0.2, got {validation!r}")
    n_val = int(train_size * validation)
    if not (0 < validation < 1) or n_val < 1:
        raise ValueError(
            f"validation {validation!r} of {train_size} samples holds out {n_val}: give a "
            "fraction between 0 and 1 that holds out at least one sample"
        )
    if dtype is not None and dtype not in ("float16", "bfloat16", "float32", "float64"):
        raise ValueError(f"dtype must be float32, float64, float16 or bfloat16, got {dtype!r}")
    fit = _json_dict(fit_kwargs, "fit_kwargs")
    for key in ("max_epoch", "batch_size"):
        if key in fit:
            raise ValueError(f"fit_kwargs may not hold {key!r}: give epochs= and batch_size=")
    bad = sorted(set(FIT_RESERVED) & ({*fit} | {k[4:] for k in space if k.startswith("fit.")}))
    if bad:
        raise ValueError(f"the search sets fit's {', '.join(bad)} itself: remove them")
    if "fit.batch_size" not in space and batch_size > train_size - n_val:
        raise ValueError(
            f"batch_size {batch_size} is more than the {train_size - n_val} training samples "
            f"(train_size {train_size} less {n_val} held out)"
        )
    return {
        "seed": seed,
        "space": describe_space(space),
        "trial_fn": _function_name(trial_fn),
        "dataset": dataset,
        "data_dir": None if data_dir is None else os.fspath(Path(data_dir).resolve()),
        "train_size": train_size,
        "validation": float(validation),
        "model": model,
        "model_kwargs": _json_dict(
            DEFAULT_MODEL_KWARGS if model_kwargs is None else model_kwargs, "model_kwargs"
        ),
        "optimizer": optimizer,
        "optimizer_kwargs": _json_dict(optimizer_kwargs, "optimizer_kwargs"),
        "fit_kwargs": {"max_epoch": epochs, "batch_size": batch_size, **fit},
        "backend": backend,
        "dtype": dtype,
    }


def _check_default_trial(settings: dict[str, Any], space: Mapping[str, Distribution]) -> None:
    """Check the model, optimizer and fit arguments bind (no training, no cluster)."""
    from xpnn.training.trainer import Trainer

    trial = Trial(0, sample_params(space, settings["seed"], 0), 0, 0, settings)
    values = trial.targets()
    model_cls = resolve_model(settings["model"])
    check_call(
        model_cls,
        {**settings["model_kwargs"], **values["model"], "seed": 0, "dtype": settings["dtype"]},
        f"model {settings['model']}",
    )
    optimizer_cls = resolve_optimizer(settings["optimizer"])
    check_call(
        optimizer_cls,
        {**settings["optimizer_kwargs"], **values["optimizer"]},
        f"optimizer {settings['optimizer']}",
    )
    fit_args = {"self": None, "x": None, "t": None, **settings["fit_kwargs"], **values["fit"]}
    check_call(Trainer.fit, fit_args, "Trainer.fit")


def _check_local_data(settings: dict[str, Any]) -> None:
    """The workers are on this machine: check their data is here."""
    if settings["dataset"] == "mnist5k":
        from xpnn.datasets.mnist import check_mnist5k

        check_mnist5k()
    else:
        from xpnn.datasets.mnist import _missing_files, mnist_data_dir

        directory = mnist_data_dir(settings["data_dir"])
        missing = _missing_files(directory)
        if missing:
            raise FileNotFoundError(
                f"MNIST files missing in {directory}: {', '.join(missing)}; the search's workers "
                "never download: run xpnn.datasets.load_mnist() (or xpnn train --dataset mnist) "
                "once first, or give data_dir with the four files"
            )


# --------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------


def random_search(
    space: Mapping[str, Distribution] | None = None,
    trials: int = 100,
    *,
    seed: int = 0,
    epochs: int = 50,
    batch_size: int = 100,
    dataset: str = "mnist5k",
    data_dir: str | os.PathLike[str] | None = None,
    train_size: int = 500,
    validation: float = 0.2,
    model: str = DEFAULT_MODEL,
    model_kwargs: Mapping[str, Any] | None = None,
    optimizer: str = "sgd",
    optimizer_kwargs: Mapping[str, Any] | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
    backend: str | None = None,
    dtype: str | None = None,
    workers: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    gpus: bool = False,
    results: str | os.PathLike[str] | None = None,
    retries: int = 2,
    progress: bool = True,
    trial_fn: Callable[[Trial], Mapping[str, Any]] | None = None,
    threads: int | None = None,
) -> SearchResult:
    """Run the book's random search (or any random search) on Dask distributed.

    Trial ``k`` draws its values, its model seed and its shuffling seed
    from ``(seed, k)`` (:func:`trial_seeds`), so the results depend on the
    settings only, never on the workers. Everything (arguments, the model
    and optimizer arguments, the data on this machine for an embedded
    cluster, the results file) is checked before the cluster starts.

    Args:
        space: ``{"target.name": distribution}``; targets ``model``,
            ``optimizer``, ``fit`` (:data:`DEFAULT_SPACE`, the book's, if
            None). A value drawn for a key replaces the same argument of
            ``model_kwargs``, ``optimizer_kwargs`` and ``fit_kwargs``.
        trials: Trials of the search (100, as the book).
        seed: The search's seed (also shuffles the held-out split).
        epochs: ``fit``'s ``max_epoch`` (50, as the book).
        batch_size: ``fit``'s ``batch_size`` (100).
        dataset: ``"mnist5k"`` (the sample shipped with xpnn, no network)
            or ``"mnist"`` (the full MNIST, read from ``data_dir`` or the
            cache folder; the workers never download).
        data_dir: The folder of ``"mnist"``'s files.
        train_size: The first ``train_size`` training samples are used (500).
        validation: Fraction held out for validation (0.2: 100 of 500,
            leaving 400 to train on), after shuffling with ``seed``.
        model: Class name (:data:`xpnn.models.MODELS`, :mod:`xpnn.models.multilayer`)
            or ``"package.module:Class"``; built with ``model_kwargs``,
            ``seed=`` and ``dtype=``.
        model_kwargs: JSON-able keyword arguments of the model
            (:data:`DEFAULT_MODEL_KWARGS`, the book's sizes, if None).
        optimizer: ``"sgd"``, ``"momentum"``, ``"adagrad"``, ``"adam"``...
        optimizer_kwargs: JSON-able keyword arguments of the optimizer.
        fit_kwargs: More JSON-able arguments of :meth:`xpnn.Trainer.fit`
            (``max_grad``, ``precision``...).
        backend: Backend spec each trial runs on (``"numpy"``, ``"cupy"``...;
            default: the workers' ``XPNN_BACKEND``, else numpy).
        dtype: Float dtype of the model and data (the backend's default,
            float32, if None).
        workers: Workers of the embedded cluster (one per core, or one per
            GPU with ``gpus``, if None).
        client: Run on this ``distributed.Client`` (not closed).
        scheduler: Run on the cluster of this scheduler address
            (``"tcp://host:8786"``).
        gpus: The embedded cluster is dask-cuda's ``LocalCUDACluster``: one
            worker per GPU, each pinned to its device; backend ``"cupy"``
            unless given.
        results: Append every finished trial to this JSON-lines file, and
            resume the search it holds (see :mod:`xpnn.search.results`).
        retries: Times a trial that raised is run again (a trial whose
            worker died is run again by the scheduler, up to Dask's
            ``distributed.scheduler.allowed-failures``).
        progress: Show a progress bar over the trials.
        trial_fn: Your objective instead of :func:`train_trial`:
            ``trial_fn(trial: Trial) -> {"val_acc": score or None, ...}``
            (higher is better; more JSON-able entries are kept, and
            ``val_acc_list``/``train_acc_list`` are drawn by :meth:`SearchResult.plot`).
            It runs on the workers, so it must be importable there (or
            pickled by value: ``cloudpickle.register_pickle_by_value``).
            The space's keys may then be any names.
        threads: Each trial limits its worker's CPU libraries (BLAS, OpenMP,
            PyTorch) to this many threads while it runs
            (:func:`xpnn.backend.threads.limit_threads`; ``xpnn search
            --threads``, 1 there by default); None leaves the workers' own
            settings. Not a setting of the search: the results do not depend
            on it, and a search resumes under another.

    Returns:
        A :class:`SearchResult`: ``records`` of trials ``0 .. trials - 1``,
        ``table()``, ``plot()``, ``timing``.

    Raises:
        ValueError: A bad argument (``trials`` above :data:`MAX_TRIALS`, a
            ``scheduler`` that is not an address), a space key the model,
            optimizer or fit does not take, a workers' xpnn version unlike
            this one.
        MemoryError: A trial of the default trial function needs more
            memory than its workers have (``xpnn train``'s estimate, of the
            largest trial the space can draw), refused before any trial is
            sent out: on this machine before an embedded cluster starts.
        ResultsFileError: ``results`` belongs to another search (the message
            says what differs), is damaged, or is being written by another
            search.
        ImportError: Dask distributed (or dask-cuda for ``gpus``) is not
            installed (the message says what to install).
        OSError: The scheduler cannot be reached (within
            :data:`xpnn.search.cluster.CONNECT_TIMEOUT` seconds), or the file
            written.
        TrialError: A trial failed after its retries (the finished ones are
            in ``results``).
    """
    # 1. Everything is checked before any cluster starts.
    trials = _positive_int(trials, "trials")
    if trials > MAX_TRIALS:
        raise ValueError(
            f"trials={trials} is more than the {MAX_TRIALS:,} a search takes: it keeps every "
            "finished trial's record (1 KB or more) in memory and in its results file; run "
            "several searches of fewer trials, each with its own seed and results file"
        )
    retries = _positive_int(retries, "retries", zero=True)
    given = [n for n, v in (("client", client), ("scheduler", scheduler)) if v is not None]
    if len(given) > 1:
        raise ValueError("give one of client= and scheduler=, not both")
    if given and (workers is not None or gpus):
        raise ValueError(
            f"workers= and gpus= choose the embedded cluster; {given[0]}= runs on an existing "
            "one: drop them"
        )
    if workers is not None:
        workers = _positive_int(workers, "workers")
    if threads is not None:
        from xpnn.backend.threads import check_threads

        threads = check_threads(threads, "threads")
    if scheduler is not None:
        from xpnn.search.cluster import check_address  # no Dask imported

        scheduler = check_address(scheduler)
    space = DEFAULT_SPACE if space is None else space
    check_space(space, targets=TARGETS if trial_fn is None else None)
    if trial_fn is not None and not callable(trial_fn):
        raise ValueError(f"trial_fn must be a function of a Trial, got {trial_fn!r}")
    function = train_trial if trial_fn is None else trial_fn
    local = not given
    backend = _check_backend(backend, gpus, local)
    settings = _settings(
        space=space,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        dataset=dataset,
        data_dir=data_dir,
        train_size=train_size,
        validation=validation,
        model=model,
        model_kwargs=model_kwargs,
        optimizer=optimizer,
        optimizer_kwargs=optimizer_kwargs,
        fit_kwargs=fit_kwargs,
        backend=backend,
        dtype=dtype,
        trial_fn=function,
    )
    trial_memory = None
    if trial_fn is None:
        _check_default_trial(settings, space)
        trial_memory = largest_trial(settings, space)
        if local:
            _check_local_data(settings)
            if not gpus:  # the workers allocate where this machine does
                check_memory_here(settings, trial_memory)
                trial_memory = None

    def params_of(k: int) -> dict[str, Any]:
        return sample_params(space, settings["seed"], k)

    done: dict[int, dict[str, Any]] = {}
    keep = None
    path = None
    if results is not None:
        path = check_writable(results)
        done, keep = read_results(path, settings, params_of)
    finished_before = sum(1 for k in done if k < trials)
    todo = (k for k in range(trials) if k not in done)  # lazy: trials may be many
    outcome = SearchResult([], settings, results=path)
    if finished_before == trials:
        outcome.records = [done[k] for k in range(trials)]
        return outcome

    # 2. The cluster, the file, the trials.
    from xpnn import __version__
    from xpnn.search import cluster

    cluster.import_distributed()
    writer = bar = None
    try:
        start = time.perf_counter()
        with cluster.connect(
            client=client, scheduler=scheduler, workers=workers, gpus=gpus
        ) as conn:
            cluster.check_workers(conn, __version__)
            check_memory_on_workers(conn, settings, trial_memory)
            # The file is written once the cluster is there and checked (its lock was
            # checked before: check_writable), so a search refused so far changes nothing.
            writer = None if path is None else ResultsWriter(path, settings, keep)
            bar = _progress_bar(trials, finished_before, progress)
            began = time.perf_counter()
            outcome.timing["startup_s"] = began - start
            finished = _run(
                conn.client, function, todo, params_of, settings, retries, writer, bar, threads
            )
            wall = time.perf_counter() - began
            done.update(finished)
            trial_s = sum(r["seconds"] for r in finished.values())
            outcome.timing.update(
                wall_s=wall,
                trial_s=trial_s,
                workers=conn.workers,
                trials=len(finished),
                overhead_per_trial_s=(wall * conn.workers - trial_s) / len(finished),
                where=conn.where,
            )
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    outcome.ran = sorted(finished)
    outcome.records = [done[k] for k in range(trials)]
    return outcome


def _run(
    client: Any,
    function: Callable[[Trial], Mapping[str, Any]],
    todo: Iterable[int],
    params_of: Callable[[int], dict[str, Any]],
    settings: dict[str, Any],
    retries: int,
    writer: ResultsWriter | None,
    bar: Any,
    threads: int | None = None,
) -> dict[int, dict[str, Any]]:
    """Send the trials out as workers free up, write each record as it arrives.

    At most :data:`IN_FLIGHT_PER_THREAD` trials per worker thread are on the
    cluster at a time (the threads counted again as trials finish, so workers
    that join are used): ``todo`` is read one trial at a time, and memory does
    not grow with the number of trials. Returns the records by trial number.
    """
    from xpnn.search import cluster

    token = uuid.uuid4().hex[:12]
    in_flight: dict[str, tuple[int, Any]] = {}  # key -> (trial number, future)
    upcoming = iter(todo)

    def submit() -> Any:
        """The next trial's future, or None when every trial is out."""
        k = next(upcoming, None)
        if k is None:
            return None
        _, model_seed, fit_seed = trial_seeds(settings["seed"], k)
        trial = Trial(k, params_of(k), model_seed, fit_seed, settings)
        future = client.submit(
            run_trial,
            function,
            trial,
            threads,
            key=f"xpnn-search-{token}-trial-{k}",
            retries=retries,
            pure=False,
        )
        in_flight[future.key] = (k, future)
        return future

    def window() -> int:
        return IN_FLIGHT_PER_THREAD * cluster.slots(client)

    finished: dict[int, dict[str, Any]] = {}
    try:
        size, checked = window(), time.monotonic()
        queue = cluster.as_completed(client, [])
        while len(in_flight) < size and (future := submit()) is not None:
            queue.add(future)
        for future in queue:
            k = in_flight.pop(future.key)[0]
            try:
                record = future.result()
            except Exception as exc:
                raise TrialError(
                    f"trial {k} failed on the cluster (tried {retries + 1} time(s) or more): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            future.release()
            if writer is not None:
                writer.write(record)
            finished[k] = record
            if bar is not None:
                bar.update(1)
                if record["val_acc"] is not None:
                    bar.set_postfix_str(f"trial {k}: val acc {record['val_acc']:.3f}")
            if time.monotonic() - checked > 1.0:  # workers may have joined or left
                checked, size = time.monotonic(), window()
            while len(in_flight) < size and (future := submit()) is not None:
                queue.add(future)
    finally:
        pending = [f for _, f in in_flight.values() if not f.done()]
        if pending:
            client.cancel(pending)
    return finished


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar over the trials, or None."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="trial", desc="search", dynamic_ncols=True)

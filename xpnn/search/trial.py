"""What runs on a worker: one trial of a search.

A worker receives a :class:`Trial` (its number, its values, its seeds and the
search's JSON-able settings), never arrays: it loads the data itself, once
per worker process (:func:`load_search_data` keeps them), builds the model
and the optimizer by name, and trains with :class:`xpnn.Trainer`.

:func:`train_trial` is the default trial function, the book's: train, with
the held-out samples as validation data, and return the accuracy curves.
A search may be given another ``trial_fn(trial) -> dict`` (any objective):
see :func:`xpnn.search.random_search`. :func:`estimate_trial_memory` counts
the bytes one of its trials needs, as ``xpnn train`` does, so that a search
too large for its workers is refused before any trial is sent out.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import json
import math
import numbers
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DATASET_SIZES",
    "FIT_RESERVED",
    "Trial",
    "check_call",
    "estimate_trial_memory",
    "load_search_data",
    "resolve_model",
    "resolve_optimizer",
    "run_trial",
    "train_trial",
    "worker_memory",
    "worker_version",
]

#: Training samples of each data set a search can load by name.
DATASET_SIZES = {"mnist5k": 4000, "mnist": 60_000}

#: ``fit`` arguments the search sets itself (a space or ``fit_kwargs`` may not).
FIT_RESERVED = ("x", "t", "validation_data", "seed", "verbose", "progress", "checkpoint",
                "checkpoint_every", "resume", "callbacks")  # fmt: skip


@dataclass(frozen=True)
class Trial:
    """One trial, as a worker receives it (small and picklable: no arrays).

    Attributes:
        number: The trial's number (0, 1, ...).
        params: Its values, ``{"target.name": value}`` (see
            :mod:`xpnn.search.space`).
        model_seed: Seed of the model's initial weights.
        fit_seed: Seed of the shuffling in ``fit``.
        settings: The search's settings (JSON-able; the results file's
            header holds the same): ``seed``, ``dataset``, ``data_dir``,
            ``train_size``, ``validation``, ``model``, ``model_kwargs``,
            ``optimizer``, ``optimizer_kwargs``, ``fit_kwargs``, ``backend``,
            ``dtype``, ...
    """

    number: int
    params: dict[str, Any]
    model_seed: int
    fit_seed: int
    settings: dict[str, Any] = field(repr=False)

    def targets(self) -> dict[str, dict[str, Any]]:
        """The values by target: ``{"model": {...}, "optimizer": {...}, "fit": {...}}``."""
        out: dict[str, dict[str, Any]] = {"model": {}, "optimizer": {}, "fit": {}}
        for key, value in self.params.items():
            head, _, name = key.partition(".")
            out.setdefault(head, {})[name] = value
        return out


# --------------------------------------------------------------------------
# Names -> classes
# --------------------------------------------------------------------------


def resolve_model(name: str) -> type:
    """The model class called ``name``.

    Args:
        name: A class of :data:`xpnn.models.MODELS` or of
            :mod:`xpnn.models.multilayer` (``"MultiLayerNet"``, ``"TwoLayerNet"``...),
            or ``"package.module:Class"`` for your own.

    Raises:
        ValueError: No such class.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model must be a class name such as 'MultiLayerNet', got {name!r}")
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"model {name!r}: cannot import it ({exc})") from None
        if not isinstance(cls, type):
            raise ValueError(f"model {name!r} is not a class")
        return cls
    from xpnn.models import MODELS

    known = dict(MODELS)
    try:
        multilayer = importlib.import_module("xpnn.models.multilayer")
    except ImportError:
        multilayer = None
    if multilayer is not None:
        for attr in getattr(multilayer, "__all__", dir(multilayer)):
            value = getattr(multilayer, attr, None)
            if isinstance(value, type) and hasattr(value, "gradient"):
                known.setdefault(attr, value)
    if name not in known:
        raise ValueError(
            f"unknown model {name!r}: choose one of {', '.join(sorted(known))}, "
            "or give 'package.module:Class'"
        )
    return known[name]


def resolve_optimizer(name: str) -> type:
    """The optimizer class called ``name`` (case-insensitive: ``"sgd"``, ``"Adam"``...).

    Raises:
        ValueError: No such optimizer.
    """
    import xpnn.optimizers as opt

    known = {k.lower(): v for k, v in getattr(opt, "OPTIMIZERS", {}).items()}
    for cls in (opt.SGD, opt.Momentum, opt.Nesterov, opt.AdaGrad, opt.RMSprop, opt.Adam):
        known.setdefault(cls.__name__.lower(), cls)
    if not isinstance(name, str) or name.lower() not in known:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(sorted(known))}")
    return known[name.lower()]


def check_call(cls_or_fn: Callable[..., Any], kwargs: Mapping[str, Any], what: str) -> None:
    """Check that ``cls_or_fn(**kwargs)`` binds (names, required arguments), calling nothing.

    Raises:
        ValueError: An unknown or missing argument; the message names ``what``.
    """
    try:
        inspect.signature(cls_or_fn).bind(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{what}: {exc}") from None
    except ValueError:  # no signature to inspect (a builtin): trust it
        pass


# --------------------------------------------------------------------------
# The memory of one trial, counted before any is sent out
# --------------------------------------------------------------------------


def _layer_sizes(settings: Mapping[str, Any], model: Mapping[str, Any]) -> tuple[list[int], bool]:
    """``([input, *hidden, output], batchnorm)`` of the book's fully connected nets, or ``[]``.

    :class:`~xpnn.models.multilayer.MultiLayerNet` (``hidden_size_list``) and
    the two-layer nets (``hidden_size``) only: another class's memory is not
    known here.
    """
    try:
        cls = resolve_model(settings["model"])
        from xpnn.models.multilayer import MultiLayerNet
        from xpnn.models.two_layer import LayeredTwoLayerNet
    except (ImportError, ValueError):
        return [], False
    if issubclass(cls, MultiLayerNet):
        hidden = model.get("hidden_size_list")
    elif issubclass(cls, LayeredTwoLayerNet) and "hidden_size" in model:
        hidden = [model["hidden_size"]]
    else:
        return [], False
    sizes = [model.get("input_size"), *(hidden if isinstance(hidden, list) else [None])]
    sizes.append(model.get("output_size"))
    if any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in sizes):
        return [], False  # the model's own checks say what is wrong, on the worker
    return sizes, bool(model.get("use_batchnorm", False))


def estimate_trial_memory(
    settings: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, int] | None:
    """The bytes one :func:`train_trial` of these values needs, before allocating any.

    ``xpnn train``'s estimate (:func:`xpnn.cli.memory.estimate_memory`), for
    any number of hidden layers: with sizes ``d0`` (input), ``h1 ... hk``
    (hidden) and ``c`` (classes), ``P`` weights and biases, ``b`` bytes per
    float, ``n`` training and ``m`` held-out samples: parameters and
    gradients ``P * b`` each, optimizer state ``k * P * b``, initialization
    the largest weight's float64 draws, activations the larger of a step
    ``batch * (2 * d0 + 4 * sum(h) + 4 * c) * b`` and an accuracy pass
    ``max(n, m) * (2 * sum(h) + 2 * c) * b``, data ``(n + m) * (d0 + c) *
    b`` (with one hidden layer: exactly ``estimate_memory``'s numbers).

    Args:
        settings: The search's settings.
        params: The trial's values (``{"target.name": value}``).

    Returns:
        Bytes by part and their ``"total"``, or None for a model whose
        memory is not known here (a class of your own, a conv net).
    """
    from xpnn.cli.memory import ITEM_BYTES, OPTIMIZER_STATE

    values = Trial(0, dict(params), 0, 0, dict(settings)).targets()
    sizes, batchnorm = _layer_sizes(settings, {**settings["model_kwargs"], **values["model"]})
    fit = {**settings["fit_kwargs"], **values["fit"]}
    batch = fit.get("batch_size")
    if not sizes or isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
        return None
    item = ITEM_BYTES.get(settings.get("dtype") or "float32", 4)
    d0, hidden, c = sizes[0], sizes[1:-1], sizes[-1]
    weights = sum(a * b for a, b in itertools.pairwise(sizes))
    params_n = weights + sum(sizes[1:]) + (2 * sum(hidden) if batchnorm else 0)
    n_val = int(settings["train_size"] * settings["validation"])
    n_train = settings["train_size"] - n_val
    step = batch * (2 * d0 + 4 * sum(hidden) + 4 * c)
    evaluation = max(n_train, n_val) * (2 * sum(hidden) + 2 * c)
    state = OPTIMIZER_STATE.get(str(settings["optimizer"]).lower(), 2)
    parts = {
        "parameters": params_n * item,
        "gradients": params_n * item,
        "optimizer state": state * params_n * item,
        "initialization": max(a * b for a, b in itertools.pairwise(sizes)) * 8,
        "activations": max(step, evaluation) * item,
        "data": (n_train + n_val) * (d0 + c) * item,
    }
    if fit.get("precision") is not None:  # mixed precision: a half twin, half activations
        parts["half-precision copy"] = 2 * params_n * 2
        parts["activations"] = max(step * 2, evaluation * item)
    parts["total"] = sum(parts.values())
    return parts


def worker_memory(spec: str | None) -> tuple[int | None, str]:
    """Bytes free where a trial of backend ``spec`` allocates on this worker, and where.

    ``xpnn train``'s :func:`xpnn.cli.memory.memory_available`; ``(None,
    why)`` when the backend does not open here (the trial says so itself).
    """
    import xpnn
    from xpnn.cli import memory

    try:
        if spec is None:
            backend = xpnn.get_backend()
        else:
            with xpnn.use_backend(spec) as backend:
                pass
        return memory.memory_available(backend)
    except Exception as exc:  # no number: no refusal
        return None, f"unknown ({type(exc).__name__}: {exc})"


# --------------------------------------------------------------------------
# The data, loaded by each worker once
# --------------------------------------------------------------------------

_DATA: dict[tuple[Any, ...], tuple[Any, Any, Any, Any]] = {}


def _host_training_set(dataset: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The training split of a data set as host float32 rows and int64 labels."""
    import xpnn
    from xpnn.backend import to_numpy

    with xpnn.use_backend("numpy"):
        if dataset == "mnist5k":
            from xpnn.datasets import load_mnist5k

            (x, t), _ = load_mnist5k(dtype="float32")
        elif dataset == "mnist":
            from xpnn.datasets import load_mnist

            (x, t), _ = load_mnist(data_dir=data_dir, download=False, dtype="float32")
        else:
            raise ValueError(
                f"unknown dataset {dataset!r}: choose one of {', '.join(DATASET_SIZES)}"
            )
    return np.asarray(to_numpy(x)), np.asarray(to_numpy(t))


def load_search_data(settings: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    """``(x_train, t_train, x_val, t_val)`` of a search, on the settings' backend.

    The first ``train_size`` training samples of ``dataset`` are shuffled
    with the search's seed (on the host, so every worker gets the same
    order) and the first ``int(train_size * validation)`` of them are held
    out for validation, as the book does. Kept per process: a worker loads
    each data set once, however many trials it runs.
    """
    import xpnn

    key = tuple(
        repr(settings.get(k))
        for k in ("dataset", "data_dir", "train_size", "validation", "seed", "backend", "dtype")
    )
    if key in _DATA:
        return _DATA[key]
    x, t = _host_training_set(settings["dataset"], settings.get("data_dir"))
    size = settings["train_size"]
    if size > x.shape[0]:
        raise ValueError(
            f"train_size {size} is more than the {x.shape[0]} training samples of "
            f"{settings['dataset']}"
        )
    order = np.random.default_rng(np.random.SeedSequence(settings["seed"])).permutation(size)
    x, t = x[:size][order], t[:size][order]
    n_val = int(size * settings["validation"])
    spec = settings.get("backend")
    if spec is None:
        backend = xpnn.get_backend()
    else:
        with xpnn.use_backend(spec) as backend:
            pass
    dtype = settings.get("dtype") or backend.float_dtype
    put = [xpnn.asarray(a, dtype=dtype, backend=backend) for a in (x[n_val:], x[:n_val])]
    labels = [xpnn.asarray(a, backend=backend) for a in (t[n_val:], t[:n_val])]
    data = (put[0], labels[0], put[1], labels[1])
    _DATA.clear()  # one data set per worker at a time
    _DATA[key] = data
    return data


# --------------------------------------------------------------------------
# The trial functions
# --------------------------------------------------------------------------


def train_trial(trial: Trial) -> dict[str, Any]:
    """The book's trial: train the model on the search's data; the accuracy curves.

    Builds ``settings["model"]`` with ``model_kwargs``, the ``model.*``
    values, ``seed=trial.model_seed`` and the search's dtype; the optimizer
    with ``optimizer_kwargs`` and the ``optimizer.*`` values; and runs
    ``Trainer.fit(x_train, t_train, **fit_kwargs, **fit.* values,
    validation_data=(x_val, t_val), seed=trial.fit_seed)`` quietly.

    Returns:
        ``{"val_acc": last validation accuracy, "val_acc_list": [...],
        "train_acc_list": [...], "backend": spec}`` (one accuracy per epoch).
        A run that diverges (``FloatingPointError``) is a result too:
        ``val_acc`` None and ``error`` the message.
    """
    import xpnn
    from xpnn.backend.threads import refresh as refresh_threads

    settings = trial.settings
    x, t, x_val, t_val = load_search_data(settings)
    backend = xpnn.backend.backend_of(x)
    refresh_threads()  # run_trial's thread limit reaches a library just loaded (PyTorch)
    values = trial.targets()
    model_cls = resolve_model(settings["model"])
    kwargs = {**settings["model_kwargs"], **values["model"]}
    with xpnn.use_backend(backend.spec):
        model = model_cls(**kwargs, seed=trial.model_seed, dtype=settings.get("dtype"))
    optimizer = resolve_optimizer(settings["optimizer"])(
        **{**settings["optimizer_kwargs"], **values["optimizer"]}
    )
    trainer = xpnn.Trainer(model, optimizer)
    record: dict[str, Any] = {"backend": backend.spec}
    try:
        trainer.fit(
            x,
            t,
            **{**settings["fit_kwargs"], **values["fit"]},
            validation_data=(x_val, t_val),
            seed=trial.fit_seed,
            verbose=False,
            progress=False,
        )
    except FloatingPointError as exc:
        record["error"] = str(exc)
    val, train = (
        [float(a) for a in trainer.test_acc_list],
        [float(a) for a in trainer.train_acc_list],
    )
    record.update(
        val_acc=val[-1] if val and "error" not in record else None,
        val_acc_list=val,
        train_acc_list=train,
    )
    return record


def run_trial(
    trial_fn: Callable[[Trial], Mapping[str, Any]], trial: Trial, threads: int | None = None
) -> dict[str, Any]:
    """Run ``trial_fn(trial)`` on a worker; the results file's record of it.

    Args:
        trial_fn: The trial function.
        trial: The trial.
        threads: Limit the worker's CPU libraries (BLAS, OpenMP, PyTorch) to
            this many threads during the trial
            (:func:`xpnn.backend.threads.limit_threads`); None leaves them as
            the worker has them.

    Returns:
        ``{"trial": number, "params": {...}, **trial_fn's result, "seconds":
        the trial's time on the worker}``, as JSON gives it back (the very
        record a resumed search reads from the results file).

    Raises:
        TypeError: ``trial_fn`` did not return a JSON-able dict with
            ``val_acc`` (a finite number, or None for a failed trial).
    """
    start = time.perf_counter()
    if threads is None:
        result = trial_fn(trial)
    else:
        from xpnn.backend.threads import limit_threads

        with limit_threads(threads):
            result = trial_fn(trial)
    seconds = time.perf_counter() - start
    if not isinstance(result, Mapping) or "val_acc" not in result:
        raise TypeError(
            f"trial_fn must return a dict with 'val_acc' (the score, higher is better), got "
            f"{result!r:.200}"
        )
    score = result["val_acc"]
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score)
    ):
        raise TypeError(f"trial_fn's 'val_acc' must be a finite number or None, got {score!r}")
    reserved = {"trial", "params", "seconds"} & set(result)
    if reserved:
        raise TypeError(f"trial_fn's result may not hold {sorted(reserved)}: the search sets them")
    record = {"trial": trial.number, "params": dict(trial.params), **result, "seconds": seconds}
    try:  # as the results file will hold it (tuples become lists): fresh = resumed
        return json.loads(json.dumps(record, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"trial_fn's result must be JSON-able (Python numbers, strings, lists, dicts; no "
            f"NaN), for the results file: {exc}"
        ) from None


def worker_version() -> str:
    """The xpnn version a worker imports (the search checks it matches the host's)."""
    import xpnn

    return xpnn.__version__

"""What a search's trials need in memory, refused before any trial is sent out.

As ``xpnn train`` refuses a run too large for its device (:mod:`xpnn.cli.memory`,
whose estimate and wording this reuses), :func:`xpnn.search.random_search`
refuses a space whose largest trial does not fit: on this machine for an
embedded cluster, on the worker with the least memory for a scheduler's.
Without it, a trial of ``--hidden 100000x100000`` was sent out, retried three
times and ended in a 74.5 GiB MemoryError after 30 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xpnn.search.space import Choice, Distribution, IntUniform, sample_params
from xpnn.search.trial import estimate_trial_memory

__all__ = ["check_memory_here", "check_memory_on_workers", "largest_trial"]


def largest_trial(
    settings: dict[str, Any], space: Mapping[str, Distribution]
) -> dict[str, int] | None:
    """The largest memory estimate of a trial of this space (:func:`estimate_trial_memory`).

    Trial 0's values, each :class:`IntUniform` at its ``high`` and each
    :class:`Choice` at its largest value (for that estimate): sizes and batch
    sizes only grow the estimate. None for a model whose memory is not known.
    """

    def total(values: dict[str, Any]) -> int:
        parts = estimate_trial_memory(settings, values)
        return -1 if parts is None else parts["total"]

    values = sample_params(space, settings["seed"], 0)
    for key in sorted(space):
        dist = space[key]
        if isinstance(dist, IntUniform):
            values[key] = dist.high
        elif isinstance(dist, Choice):
            values[key] = max(dist.values, key=lambda v, k=key: total({**values, k: v}))
    return estimate_trial_memory(settings, values)


def _memory_fix(settings: dict[str, Any]) -> str:
    """What makes a trial smaller, for the refusal (as ``xpnn train`` words it)."""
    from xpnn.cli.memory import OPTIMIZER_STATE

    fixes = ["smaller hidden layers (--hidden, model_kwargs)", "a smaller --batch-size"]
    if settings["dtype"] not in (None, "float32"):
        fixes.append("--dtype float32")
    if OPTIMIZER_STATE.get(str(settings["optimizer"]).lower()):
        fixes.append("--optimizer sgd")
    return f"{', '.join(fixes[:-1])} or {fixes[-1]}"


def check_memory_here(settings: dict[str, Any], parts: dict[str, int] | None) -> None:
    """Refuse a trial too large for where this machine's workers allocate (as ``xpnn train``)."""
    if parts is None:
        return
    import xpnn
    from xpnn.cli import memory  # via the module: tests replace memory_available

    spec = settings["backend"]
    if spec is None:
        backend = xpnn.get_backend()
    else:
        with xpnn.use_backend(spec) as backend:
            pass
    available, where = memory.memory_available(backend)
    memory.check_memory(parts, available, where, _memory_fix(settings))


def check_memory_on_workers(
    conn: Any, settings: dict[str, Any], parts: dict[str, int] | None
) -> None:
    """Refuse a trial that does not fit on the worker with the least memory, before any is sent."""
    if parts is None:
        return
    from xpnn.cli.memory import check_memory
    from xpnn.search import cluster

    found = cluster.worker_memory(conn, settings["backend"])
    found = {a: v for a, v in found.items() if v[0] is not None}
    if found:
        address, (available, where) = min(found.items(), key=lambda item: item[1][0])
        check_memory(parts, available, f"{where} of worker {address}", _memory_fix(settings))

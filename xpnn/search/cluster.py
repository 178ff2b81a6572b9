"""The Dask side of a search: the only module that imports dask, distributed or dask_cuda.

They are imported inside the functions, so ``import xpnn`` and ``import
xpnn.search`` work without them; a search that needs a cluster says what to
install (``pip install "xpnn[search]"``, or ``"xpnn[search-cuda]"`` for one
worker per GPU).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["Connection", "as_completed", "check_workers", "connect", "import_distributed"]

_INSTALL = 'pip install "xpnn[search]"'
_INSTALL_CUDA = 'pip install "xpnn[search-cuda]"'


def import_distributed() -> Any:
    """``distributed`` (Dask's scheduler and workers), or an ImportError saying what to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "xpnn search runs its trials on Dask distributed, which is not installed here: "
            f"{_INSTALL}"
        ) from exc
    return distributed


def _import_cuda_cluster() -> Any:
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as exc:
        raise ImportError(
            "xpnn search with gpus=True (--gpus) starts one worker per GPU with dask-cuda, "
            f"which is not installed here: {_INSTALL_CUDA}"
        ) from exc
    return LocalCUDACluster


@dataclass
class Connection:
    """A client of the cluster a search runs on.

    Attributes:
        client: The ``distributed.Client``.
        workers: Workers the scheduler had when the search started.
        where: A few words for the summary (``"embedded LocalCluster"``...).
    """

    client: Any
    workers: int
    where: str


def _count_workers(client: Any) -> int:
    return len(client.scheduler_info().get("workers", {}))


@contextmanager
def connect(
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    gpus: bool = False,
    timeout: float = 30.0,
) -> Iterator[Connection]:
    """The cluster of a search, for the duration of a ``with`` block.

    Args:
        client: An existing ``distributed.Client``: used as it is, never closed.
        scheduler: The address of a running scheduler (``"tcp://host:8786"``):
            a client is opened to it and closed at the end.
        workers: Without either: the workers of the embedded cluster
            (default: one per core, or one per GPU with ``gpus``).
        gpus: Embedded cluster of dask-cuda's ``LocalCUDACluster``: one worker
            per GPU, each pinned to its device (``CUDA_VISIBLE_DEVICES``).
        timeout: Seconds to wait for a scheduler and its first worker.

    Raises:
        ImportError: distributed (or dask-cuda, with ``gpus``) is missing.
        OSError: The scheduler cannot be reached, or has no workers.
    """
    distributed = import_distributed()
    if client is not None:
        if not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
        address = client.scheduler.address
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError):
            raise OSError(
                f"the Dask cluster of {address} has no workers (waited {timeout:g} s)"
            ) from None
        yield Connection(client, _count_workers(client), f"the cluster of {address}")
        return
    if scheduler is not None:
        try:
            own = distributed.Client(scheduler, timeout=f"{timeout}s", set_as_default=False)
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            try:
                own.wait_for_workers(1, timeout=timeout)
            except (TimeoutError, OSError):
                raise OSError(
                    f"the Dask scheduler at {scheduler} has no workers (waited {timeout:g} s); "
                    "start some with: dask worker " + scheduler
                ) from None
            yield Connection(own, _count_workers(own), f"the cluster of {scheduler}")
        finally:
            own.close()
        return
    if gpus:
        LocalCUDACluster = _import_cuda_cluster()
        cluster = LocalCUDACluster(
            n_workers=workers, threads_per_worker=1, silence_logs=logging.ERROR
        )
        where = "embedded LocalCUDACluster (one worker per GPU)"
    else:
        cluster = distributed.LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        where = "embedded LocalCluster"
    try:
        own = distributed.Client(cluster, set_as_default=False)
        try:
            own.wait_for_workers(len(cluster.workers), timeout=timeout)
            yield Connection(own, _count_workers(own), where)
        finally:
            own.close()
    finally:
        cluster.close()


def check_workers(connection: Connection, version: str) -> None:
    """Check every worker imports this xpnn version (other code may compute other numbers).

    Raises:
        ValueError: A worker runs another xpnn version.
        ImportError: A worker cannot import xpnn.
    """
    from xpnn.search.trial import worker_version

    found = connection.client.run(worker_version)
    others = {address: v for address, v in found.items() if v != version}
    if others:
        listed = ", ".join(f"{a}: {v}" for a, v in sorted(others.items())[:3])
        raise ValueError(
            f"workers of {connection.where} run another xpnn than this host's {version} "
            f"({listed}); install the same xpnn everywhere"
        )


def as_completed(client: Any, futures: list[Any]) -> Any:
    """``distributed.as_completed`` over ``futures`` of ``client``."""
    return import_distributed().as_completed(futures, loop=client.loop)

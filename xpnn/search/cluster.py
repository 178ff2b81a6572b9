"""The Dask side of a search: the only module that imports dask, distributed or dask_cuda.

They are imported inside the functions, so ``import xpnn`` and ``import
xpnn.search`` work without them; a search that needs a cluster says what to
install (``pip install "xpnn[search]"``, or ``"xpnn[search-cuda]"`` for one
worker per GPU).

A scheduler's address is checked for its form (:func:`check_address`) before
anything starts, and reached within :data:`CONNECT_TIMEOUT` seconds or
refused with one line naming it and the fix.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONNECT_TIMEOUT",
    "Connection",
    "as_completed",
    "check_address",
    "check_workers",
    "connect",
    "import_distributed",
    "slots",
    "worker_memory",
]

#: Seconds to reach a scheduler (``scheduler=``, ``--scheduler``): resolving its host,
#: opening its port and Dask's handshake, all together. A scheduler that answers at all
#: answers well within it; an address that does not (a refused port, a host that drops the
#: packets, a port where no Dask scheduler listens) is refused in this time rather than
#: after Dask's 30 s (or never: a port that accepts and stays silent holds Dask's handshake
#: forever). For a slower link open the ``distributed.Client`` yourself and give ``client=``.
CONNECT_TIMEOUT = 3.0

#: The schemes of a scheduler's address a search connects with (tls: Dask's TLS settings).
_SCHEMES = ("tcp", "tls")
_HOST = re.compile(r"[A-Za-z0-9._-]+")
_IPV6 = set("0123456789abcdefABCDEF:.")
_EXAMPLE = "tcp://HOST:PORT or HOST:PORT (e.g. tcp://10.0.0.5:8786, as dask scheduler prints it)"

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


def _split_address(address: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of ``tcp://host:port``, ``host:port``, ``[ipv6]:port``; or None."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in _SCHEMES:
        return None
    if rest.startswith("["):  # [::1]:8786
        host, bracket, port = rest[1:].partition("]")
        if not (bracket and port.startswith(":") and host and set(host) <= _IPV6):
            return None
        port = port[1:]
    else:
        host, _, port = rest.rpartition(":")
        if not _HOST.fullmatch(host):
            return None
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return scheme, host, int(port)


def check_address(address: Any) -> str:
    """A scheduler's address checked for its form, before anything connects.

    Args:
        address: ``"tcp://host:port"`` (or ``tls://``), ``"host:port"``, or
            ``"[ipv6]:port"``.

    Returns:
        The address with its scheme (``"tcp://host:port"``).

    Raises:
        ValueError: Not such an address (one line: the address, the form,
            an example).
    """
    parts = _split_address(address.strip()) if isinstance(address, str) else None
    if parts is None:
        raise ValueError(
            f"scheduler address {address!r} is not a Dask scheduler's address: give {_EXAMPLE}"
        )
    scheme, host, port = parts
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _reason(exc: BaseException) -> str:
    """A few words for a failed connection (no Dask traceback)."""
    if isinstance(exc, socket.gaierror):
        return f"its host is not known here ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused (nothing listens on that port)"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "no answer"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _open_client(distributed: Any, address: str, timeout: float) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``, within ``timeout`` seconds.

    The host is resolved and its port opened first (a refused port fails at
    once), then Dask's handshake gets what is left of the time. All of it
    runs in a thread that is left behind (a daemon; it closes a client that
    arrives late) when the time is up: Dask's own timeout does not cover a
    port that accepts and stays silent.

    Raises:
        OSError: The scheduler was not reached (one line: the address, why,
            the time waited, the fix).
    """
    deadline = time.monotonic() + timeout
    _, host, port = _split_address(address)  # type: ignore[misc]  # checked before
    box: dict[str, Any] = {}
    lock = threading.Lock()

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
            left = max(deadline - time.monotonic(), 0.1)
            client = distributed.Client(address, timeout=f"{left:.3f}s", set_as_default=False)
        except Exception as exc:
            box["error"] = exc
            return
        with lock:
            late = box.setdefault("given_up", False)
            if not late:
                box["client"] = client
        if late:
            client.close()

    thread = threading.Thread(target=attempt, name="xpnn-search-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    with lock:
        box["given_up"] = "client" not in box
    if "client" in box:
        return box["client"]
    why = _reason(box["error"]) if "error" in box else "no Dask scheduler answered"
    if why == "no answer" or "error" not in box:
        why += f" within {timeout:g} s"
    raise OSError(
        f"cannot reach the Dask scheduler at {address}: {why}; "
        "check the address (dask scheduler prints it, e.g. tcp://10.0.0.5:8786), that the "
        "scheduler runs and that its port is open to this machine"
    )


@contextmanager
def connect(
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    gpus: bool = False,
    timeout: float = 30.0,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> Iterator[Connection]:
    """The cluster of a search, for the duration of a ``with`` block.

    Args:
        client: An existing ``distributed.Client``: used as it is, never closed.
        scheduler: The address of a running scheduler (``"tcp://host:8786"``,
            see :func:`check_address`): a client is opened to it within
            ``connect_timeout`` seconds and closed at the end.
        workers: Without either: the workers of the embedded cluster
            (default: one per core, or one per GPU with ``gpus``).
        gpus: Embedded cluster of dask-cuda's ``LocalCUDACluster``: one worker
            per GPU, each pinned to its device (``CUDA_VISIBLE_DEVICES``).
        timeout: Seconds to wait for the first worker (all of an embedded
            cluster's).
        connect_timeout: Seconds to reach ``scheduler``
            (:data:`CONNECT_TIMEOUT`).

    Raises:
        ImportError: distributed (or dask-cuda, with ``gpus``) is missing.
        ValueError: ``scheduler`` is not an address.
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
        scheduler = check_address(scheduler)
        own = _open_client(distributed, scheduler, connect_timeout)
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


def worker_memory(connection: Connection, spec: str | None) -> dict[str, tuple[int | None, str]]:
    """Memory each worker has where a trial of backend ``spec`` allocates, by worker address.

    Runs :func:`xpnn.search.trial.worker_memory` on every worker (nothing is
    submitted as a task).
    """
    from xpnn.search.trial import worker_memory as on_worker

    return {
        address: (value[0], value[1])
        for address, value in connection.client.run(on_worker, spec).items()
    }


def slots(client: Any) -> int:
    """Threads of the cluster's workers now (trials it runs at once), at least 1."""
    try:
        return max(sum(client.nthreads().values()), 1)
    except Exception:  # a scheduler that went away: the search's next step says so
        return 1


def as_completed(client: Any, futures: list[Any]) -> Any:
    """``distributed.as_completed`` over ``futures`` of ``client`` (more may be ``add``-ed)."""
    return import_distributed().as_completed(futures, loop=client.loop)

"""How many threads the CPU libraries may use: ``xpnn train/search/bench --threads``.

NumPy's BLAS (OpenBLAS, MKL), OpenMP and PyTorch's intra-op pool each start
one thread per core by default. The book's matrices are small (a batch of
100 x 784 times 784 x 50), so extra threads gain little, and on a busy
machine they lose a lot: OpenBLAS's threads spin while they wait for work,
and on a shared 2-core machine two BLAS threads ran the book's RNN code 3 to
8 times slower than one.

:func:`limit_threads` applies a limit for the length of a ``with`` block:

* threadpoolctl's ``threadpool_limits`` for every BLAS and OpenMP library
  loaded in the process (``refresh`` reaches those loaded since);
* ``torch.set_num_threads`` when PyTorch is imported (this module never
  imports it: a PyTorch opened later is limited by :func:`refresh`, which
  :mod:`xpnn.cli` calls once the backend is open, and by the environment);
* the environment variables :data:`THREAD_ENV`, so that libraries loaded
  later and child processes (``xpnn bench``'s memory case) start with the
  limit too.

Everything is put back when the last block ends. Blocks may nest and may
overlap in threads (Dask workers with several threads): the innermost limit
applies, and the state before the first block comes back after the last.

:func:`default_threads` is the limit when none is given: 1 on a machine
with 2 CPUs or fewer, else ``min(4, CPUs)``. With one or two cores the
Python thread that drives the loop already needs one of them, and every
other thread competes with it (and with whatever else runs there); with
more cores, up to 4 threads speed up the conv nets' larger products while
leaving the other cores to everything else (the book's matrices are small).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "THREAD_ENV",
    "available_cpus",
    "check_threads",
    "current_limit",
    "default_threads",
    "environment_before",
    "limit_threads",
    "refresh",
]

#: The environment variables that set the CPU libraries' thread counts when
#: they load: OpenMP (libgomp, PyTorch's intra-op pool), OpenBLAS (NumPy's
#: wheels), MKL, and Apple's Accelerate.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)

#: The most threads :func:`default_threads` picks, however many cores there are.
MAX_DEFAULT_THREADS = 4

_lock = threading.RLock()
_stack: list[int] = []  # the limits of the open blocks, innermost last
_env_saved: dict[str, str | None] = {}
_torch_saved: int | None = None
_limiters: list[Any] = []  # threadpoolctl limiters, to undo in reverse order


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity where known, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_threads(cpus: int | None = None) -> int:
    """The limit used when none is given: 1 on 2 CPUs or fewer, else ``min(4, cpus)``.

    Args:
        cpus: The machine's CPUs (:func:`available_cpus` if None).
    """
    cpus = available_cpus() if cpus is None else cpus
    return 1 if cpus <= 2 else min(MAX_DEFAULT_THREADS, cpus)


def check_threads(value: Any, name: str = "threads") -> int:
    """``value`` as a thread count, or ValueError naming ``name`` and what to give."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{name} must be a positive whole number of threads such as 1 or 4, got {value!r}"
        )
    return value


def current_limit() -> int | None:
    """The limit of the innermost open :func:`limit_threads` block, or None outside one."""
    with _lock:
        return _stack[-1] if _stack else None


def environment_before(names: tuple[str, ...] = THREAD_ENV) -> dict[str, str | None]:
    """The variables ``names`` as they were before the first open block (as they are, outside one).

    Inside a block, :data:`THREAD_ENV` holds the limit: this is what the user had set.
    """
    with _lock:
        return {
            name: _env_saved.get(name) if _stack and name in _env_saved else os.environ.get(name)
            for name in names
        }


def _apply(n: int) -> None:
    """Limit every loaded library (and PyTorch, if imported) to ``n`` threads."""
    global _torch_saved
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads") and _torch_saved is None:
        # Before threadpoolctl: limiting OpenMP changes what PyTorch reports
        # (its pool is OpenMP's), and the count to put back is the one before.
        _torch_saved = int(torch.get_num_threads())
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables still reach what loads later
        pass
    else:
        _limiters.append(threadpool_limits(limits=n))
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(n)


def refresh() -> None:
    """Apply the current limit to libraries loaded since the block began (e.g. PyTorch)."""
    with _lock:
        if _stack:
            _apply(_stack[-1])


@contextmanager
def limit_threads(n: int | None = None) -> Iterator[int]:
    """Limit the CPU libraries to ``n`` threads inside the block (:func:`default_threads` if None).

    Yields:
        The limit in force.

    Raises:
        ValueError: ``n`` is not a positive int.
    """
    global _torch_saved
    n = default_threads() if n is None else check_threads(n)
    with _lock:
        if not _stack:
            _env_saved.clear()
            _env_saved.update({name: os.environ.get(name) for name in THREAD_ENV})
        _stack.append(n)
        for name in THREAD_ENV:
            os.environ[name] = str(n)
        _apply(n)
    try:
        yield n
    finally:
        with _lock:
            _stack.remove(n)  # equal limits are alike: which one goes does not matter
            if _stack:
                outer = _stack[-1]
                if outer != n:
                    for name in THREAD_ENV:
                        os.environ[name] = str(outer)
                    _apply(outer)
            else:
                for name, value in _env_saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                while _limiters:
                    _limiters.pop().restore_original_limits()
                torch = sys.modules.get("torch")
                if _torch_saved is not None and torch is not None:
                    torch.set_num_threads(_torch_saved)
                _torch_saved = None

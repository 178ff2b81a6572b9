"""The memory a ``xpnn train`` run needs, the memory available, and the refusal.

:func:`estimate_memory` counts the bytes of a two-layer net and its training
run before any is allocated, :func:`memory_available` says how many are free
where the backend allocates (:func:`host_memory_available` on the host), and
:func:`check_memory` refuses a run that does not fit with one line.
"""

from __future__ import annotations

import os
from typing import Any

#: Arrays of the optimizer's state per parameter array.
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2}


def estimate_memory(
    input_size: int,
    hidden: int,
    classes: int,
    batch_size: int,
    *,
    optimizer: str = "sgd",
    dtype: str = "float32",
    n_train: int = 0,
    n_test: int = 0,
    precision: str | None = None,
) -> dict[str, int]:
    """The bytes a two-layer net and its training run need, before allocating any.

    With ``P = input_size * hidden + hidden + hidden * classes + classes``
    parameters and ``b`` bytes per float (2 for float16 and bfloat16, 4 for
    float32, 8 for float64):

    * parameters, gradients: ``P * b`` each;
    * optimizer state: ``k * P * b``, ``k`` = 0 (sgd), 1 (momentum,
      nesterov, adagrad, rmsprop), 2 (adam);
    * initialization: ``max(input_size * hidden, hidden * classes) * 8``, the
      float64 normal draws of the largest weight on the host;
    * activations: the larger of one training step,
      ``batch_size * (2 * input_size + 4 * hidden + 4 * classes) * b``
      (each layer's input, output and gradient), and an accuracy pass over a
      whole split, ``max(n_train, n_test) * (2 * hidden + 2 * classes) * b``;
    * data: ``(n_train + n_test) * (input_size + classes) * b`` (images and
      one-hot-sized labels);
    * with ``precision`` ``"mixed16"`` or ``"mixed_bf16"`` (mixed-precision
      training of a float32 model): the half-precision twin's parameters
      and gradients, ``2 * P * 2``, and a training step's activations in
      2-byte floats.

    An estimate, not a bound: the array library's own overhead is not
    counted.

    Returns:
        Bytes by part (``"parameters"``, ``"gradients"``,
        ``"optimizer state"``, ``"initialization"``, ``"activations"``,
        ``"data"``) and their ``"total"``.
    """
    item = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}[dtype]
    params = input_size * hidden + hidden + hidden * classes + classes
    step = batch_size * (2 * input_size + 4 * hidden + 4 * classes)
    evaluation = max(n_train, n_test) * (2 * hidden + 2 * classes)
    parts = {
        "parameters": params * item,
        "gradients": params * item,
        "optimizer state": OPTIMIZER_STATE[optimizer] * params * item,
        "initialization": max(input_size * hidden, hidden * classes) * 8,
        "activations": max(step, evaluation) * item,
        "data": (n_train + n_test) * (input_size + classes) * item,
    }
    if precision is not None:
        parts["half-precision copy"] = 2 * params * 2
        parts["activations"] = max(step * 2, evaluation * item)
    parts["total"] = sum(parts.values())
    return parts


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def host_memory_available() -> tuple[int | None, str]:
    """Bytes of host memory available now, and where the number comes from.

    ``MemAvailable`` of ``/proc/meminfo`` (else ``os.sysconf``'s available
    pages), lowered to what a cgroup v2 memory limit leaves
    (``/sys/fs/cgroup/memory.max`` less ``memory.current``). ``None`` when
    the system says nothing.
    """
    available, source = None, ""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available, source = int(line.split()[1]) * 1024, "MemAvailable"
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            source = "available physical pages"
        except (AttributeError, OSError, ValueError):
            return None, "unknown"
    limit = _read_int("/sys/fs/cgroup/memory.max")  # "max" (no limit) reads as None
    used = _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None and limit - used < available:
        available, source = max(limit - used, 0), "the cgroup memory limit"
    return available, f"on the host ({source})"


def memory_available(backend: Any) -> tuple[int | None, str]:
    """Bytes free where ``backend`` allocates (its GPU, else the host), and where."""
    if not backend.is_gpu:
        return host_memory_available()
    try:
        if backend.name == "cupy":
            import cupy

            with backend.device:
                free, _ = cupy.cuda.runtime.memGetInfo()
            free += cupy.get_default_memory_pool().free_bytes()  # cached, reusable
        else:
            import torch

            free, _ = torch.cuda.mem_get_info(backend.device)
            free += torch.cuda.memory_reserved(backend.device) - torch.cuda.memory_allocated(
                backend.device
            )
    except Exception as exc:  # whatever fails, there is no number: said so
        return None, f"unknown on {backend.spec} ({exc})"
    return int(free), f"free on {backend.spec}"


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def check_memory(
    parts: dict[str, int], available: int | None, where: str, fix: str = "a smaller model"
) -> None:
    """Refuse a run whose estimate (:func:`estimate_memory`) exceeds ``available``.

    Args:
        parts: The estimate.
        available: Bytes available (no check if None: the system did not say).
        where: Where they are available, for the message.
        fix: What makes the run smaller, for the message.

    Raises:
        MemoryError: One line: the estimate by part, what is available, and
            the fix.
    """
    if available is None or parts["total"] <= available:
        return
    detail = ", ".join(f"{k} {_size(v)}" for k, v in parts.items() if k != "total" and v)
    raise MemoryError(
        f"this run needs about {_size(parts['total'])} ({detail}), but only "
        f"{_size(available)} is available {where}; choose {fix}"
    )

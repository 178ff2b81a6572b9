"""What can run here: probing backends and describing the installation.

Owns :func:`backend_status` and :func:`available_backends` (every candidate
backend is opened, which allocates on it), and :func:`info` (versions,
backends, GPUs) behind ``xpnn info``. CuPy and PyTorch are imported only to
ask for the GPUs of a backend that runs.
"""

from __future__ import annotations

import platform
from typing import Any

from xpnn.backend.errors import BackendUnavailableError
from xpnn.backend.selection import _open, get_backend

__all__ = ["available_backends", "backend_status", "info"]

#: Specs probed by :func:`available_backends`, CPU ones first.
CANDIDATES = ("numpy", "array_api_strict", "torch:cpu", "torch:cuda", "cupy:0")


def backend_status() -> dict[str, str | None]:
    """Probe every candidate backend by allocating on it.

    Returns:
        ``{spec: None}`` for a backend that runs, ``{spec: reason}`` for one
        that does not.
    """
    status: dict[str, str | None] = {}
    for spec in CANDIDATES:
        try:
            _open(spec)
        except BackendUnavailableError as exc:
            status[spec] = exc.reason
        else:
            status[spec] = None
    return status


def available_backends() -> list[str]:
    """The backend specs that can actually run here (probed by allocating)."""
    return [spec for spec, reason in backend_status().items() if reason is None]


def _version(module: str) -> str | None:
    """Installed version of an importable package (cupy's dist is cupy-cudaNNx)."""
    from importlib import metadata

    for dist in metadata.packages_distributions().get(module, []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _gpus() -> list[dict[str, Any]]:
    """Name and memory of each CUDA GPU, asked through cupy or torch."""
    gpus: list[dict[str, Any]] = []
    status = backend_status()
    if status["cupy:0"] is None:
        import cupy

        for i in range(cupy.cuda.runtime.getDeviceCount()):
            props = cupy.cuda.runtime.getDeviceProperties(i)
            with cupy.cuda.Device(i):
                free, total = cupy.cuda.runtime.memGetInfo()
            name = props["name"]
            gpus.append(
                {
                    "index": i,
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "memory_total_bytes": int(total),
                    "memory_free_bytes": int(free),
                }
            )
    elif status["torch:cuda"] is None:
        import torch

        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            gpus.append(
                {
                    "index": i,
                    "name": torch.cuda.get_device_name(i),
                    "memory_total_bytes": int(total),
                    "memory_free_bytes": int(free),
                }
            )
    return gpus


def info() -> dict[str, Any]:
    """Describe this installation: versions, backends that run, GPUs.

    Returns:
        A JSON-serialisable dict with keys ``xpnn``, ``python``, ``platform``,
        ``packages`` (name -> version or None), ``backends`` (spec -> None if
        it runs, else the reason), ``active`` (the active backend's spec, or
        the error choosing it) and ``gpus`` (index, name, memory in bytes).
    """
    from xpnn._version import __version__

    try:
        active = get_backend().spec
    except (BackendUnavailableError, ValueError) as exc:
        active = f"error: {exc}"
    return {
        "xpnn": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {
            m: _version(m)
            for m in (
                "numpy",
                "array_api_compat",
                "array_api_strict",
                "cupy",
                "torch",
                "matplotlib",
            )
        },
        "backends": backend_status(),
        "active": active,
        "gpus": _gpus(),
    }

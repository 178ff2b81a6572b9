"""Diagnosing why CuPy cannot run: no driver, no GPU, a driver too old.

Owns turning a CUDA runtime error into a reason and a fix
(:func:`_cuda_reason`), with the probes it uses: the CuPy wheels installed
(:func:`_cupy_distributions`), whether the driver library loads
(:func:`_libcuda_loadable`) and the driver and runtime versions. Tests fake
these probes by patching them on this module.
"""

from __future__ import annotations

import os
from typing import Any

_CUDA_FIX = (
    'install CuPy for your CUDA major version: pip install "xpnn[cuda12]" '
    '(CUDA 12.x) or pip install "xpnn[cuda13]" (CUDA 13.x)'
)

#: The CuPy wheel behind each of xpnn's CUDA extras, by CUDA major version.
_CUPY_EXTRAS = {12: "cupy-cuda12x", 13: "cupy-cuda13x"}


def _cupy_distributions() -> list[str]:
    """The CuPy distributions installed (e.g. ``["cupy-cuda12x"]``)."""
    import importlib.metadata

    found = []
    for name in ("cupy-cuda11x", "cupy-cuda12x", "cupy-cuda13x", "cupy"):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def _libcuda_loadable() -> bool:
    """Whether the NVIDIA driver's library (libcuda / nvcuda.dll) can be loaded."""
    import ctypes

    name = "nvcuda.dll" if os.name == "nt" else "libcuda.so.1"
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def _cuda_version(cupy: Any, query: str) -> int | None:
    """``cupy.cuda.runtime.<query>()`` (e.g. 12040 for CUDA 12.4), or None if it fails."""
    try:
        version = getattr(cupy.cuda.runtime, query)()
    except Exception:  # no runtime, no driver, a fake module: unknown
        return None
    return version if isinstance(version, int) and version >= 0 else None


def _cuda_label(version: int) -> str:
    return f"{version // 1000}.{version % 1000 // 10}"


def _cuda_reason(exc: BaseException, cupy: Any = None) -> tuple[str, str]:
    """Turn a CUDA runtime error into (why, how to fix).

    ``cupy`` (the imported module) lets the driver and runtime versions be
    asked for: a driver version of 0 means no NVIDIA driver at all, one older
    than the runtime CuPy was built for means the driver is too old.
    """
    text = str(exc)
    driver = runtime = None
    if cupy is not None:
        driver = _cuda_version(cupy, "driverGetVersion")
        runtime = _cuda_version(cupy, "runtimeGetVersion")
    dists = _cupy_distributions()
    installed = next((d for d in dists if d in _CUPY_EXTRAS.values()), None)
    if runtime is None and installed is not None:  # e.g. cupy-cuda13x: CUDA 13
        build = next(k for k, v in _CUPY_EXTRAS.items() if v == installed)
        runtime = build * 1000
    no_gpu_fix = (
        "run on a machine with an NVIDIA GPU and its driver installed "
        "(`nvidia-smi` must list the GPU), or choose 'numpy'"
    )
    insufficient = "InsufficientDriver" in text or "driver version is insufficient" in text
    no_driver = driver == 0 or (driver is None and insufficient and not _libcuda_loadable())
    if no_driver:
        return f"no NVIDIA driver/GPU found ({text})", no_gpu_fix
    if "NoDevice" in text or "no CUDA-capable device" in text:
        return "no CUDA device was found", no_gpu_fix
    too_old = driver is not None and runtime is not None and driver // 1000 < runtime // 1000
    if insufficient or too_old:
        current = installed or (dists[0] if dists else None)
        cupy_name = current or "this CuPy build"
        if driver is not None and runtime is not None:
            needs = f"{runtime // 1000}.x" if too_old else _cuda_label(runtime)
            why = (
                f"the NVIDIA driver is too old for this CuPy build: it supports CUDA "
                f"{_cuda_label(driver)}, {cupy_name} needs CUDA {needs} ({text})"
            )
        else:
            why = f"the NVIDIA driver is too old for this CuPy build ({text})"
        fix = "update the NVIDIA driver"
        if runtime is not None:
            fix += f" to one that supports CUDA {runtime // 1000}.x"
        # A CuPy built for an older CUDA helps only if the driver supports it.
        older = [
            major
            for major, dist in _CUPY_EXTRAS.items()
            if dist not in dists
            and (runtime is None or major < runtime // 1000)
            and (driver is None or major <= driver // 1000)
        ]
        if older:
            extra = max(older)
            swap = f"pip uninstall {current} && " if current else ""
            fix += (
                f", or install the CuPy extra for CUDA {extra} instead: "
                f'{swap}pip install "xpnn[cuda{extra}]"'
            )
        elif driver is not None:
            has = _cuda_label(driver)
            fix += f" (xpnn's CuPy extras need CUDA {min(_CUPY_EXTRAS)} or newer; it has {has})"
        return why, fix
    return (
        f"the CUDA driver or runtime failed ({type(exc).__name__}: {text})",
        "check that `nvidia-smi` works and that the installed cupy-cudaXXx matches "
        "the driver's CUDA major version; " + _CUDA_FIX,
    )

"""Opening each library: import it, find the device, allocate once.

Owns the per-library openers behind :func:`xpnn.backend.selection._open`
(importing is not proof that a backend works, so each allocates on its
device) and the device labels of backend specs. A failure becomes a
:class:`BackendUnavailableError` saying why and how to fix it; CUDA failures
are diagnosed by :mod:`xpnn.backend.cuda.errors`. CuPy and PyTorch are
imported here only when their backend is opened.
"""

from __future__ import annotations

import importlib
from typing import Any

from xpnn.backend.cuda.errors import _CUDA_FIX, _cuda_reason
from xpnn.backend.errors import BackendUnavailableError


def _import(module: str, backend: str, fix: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(
            backend, f"the package {module.split('.')[0]!r} is not installed ({exc})", fix
        ) from None


def _open_numpy(device: Any) -> tuple[Any, Any]:
    if device not in (None, "cpu"):
        raise ValueError(f"numpy has one device, 'cpu'; got {device!r}")
    from array_api_compat import numpy as xp

    return xp, "cpu"


def _open_array_api_strict(device: Any) -> tuple[Any, Any]:
    spec = f"array_api_strict:{device}" if device is not None else "array_api_strict"
    xp = _import("array_api_strict", spec, 'pip install "xpnn[test]" (or array-api-strict)')
    devices = xp.__array_namespace_info__().devices()
    if device is None:
        return xp, xp.__array_namespace_info__().default_device()
    if isinstance(device, xp.Device):
        return xp, device
    names = [_device_label("array_api_strict", d) for d in devices]
    for dev, label in zip(devices, names, strict=True):
        if str(device) == label:
            return xp, dev
    raise ValueError(
        f"array_api_strict has no device {device!r}; valid devices: {', '.join(names)}"
    )


def _open_cupy(device: Any) -> tuple[Any, Any]:
    index = 0 if device is None else getattr(device, "id", device)  # a cupy.cuda.Device
    try:
        index = int(str(index).removeprefix("cuda:"))
    except ValueError:
        raise ValueError(f"cupy devices are GPU numbers like 0 or 1, got {device!r}") from None
    spec = f"cupy:{index}"
    cupy = _import("cupy", spec, _CUDA_FIX)
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError and friends: classify, never hide
        why, fix = _cuda_reason(exc, cupy)
        raise BackendUnavailableError(spec, why, fix) from exc
    if count == 0:
        raise BackendUnavailableError(spec, "no CUDA device was found", "choose 'numpy'")
    if not 0 <= index < count:
        raise BackendUnavailableError(
            spec,
            f"there is no GPU {index}; this machine has {count} (0..{count - 1})",
            f"choose a device number below {count}",
        )
    dev = cupy.cuda.Device(index)
    try:
        with dev:  # allocate once: importing is not proof the GPU works
            cupy.zeros(1, dtype=cupy.float32).sum()
            dev.synchronize()
    except Exception as exc:
        why, fix = _cuda_reason(exc, cupy)
        raise BackendUnavailableError(spec, why, fix) from exc
    from array_api_compat import cupy as xp

    return xp, dev


def _open_torch(device: Any) -> tuple[Any, Any]:
    label = "cpu" if device is None else str(device)
    spec = f"torch:{label}"
    torch = _import("torch", spec, "pip install torch (see https://pytorch.org for GPU builds)")
    try:
        dev = torch.device(label)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"torch has no device {label!r}: {exc}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"xpnn supports torch devices 'cpu' and 'cuda[:N]', got {label!r}")
    if dev.type == "cuda":
        if torch.version.cuda is None:
            raise BackendUnavailableError(
                spec,
                f"this PyTorch build ({torch.__version__}) has no CUDA support",
                "install a CUDA build of PyTorch (see https://pytorch.org), or use 'torch:cpu'",
            )
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                spec,
                "PyTorch found no usable CUDA device (no GPU, or a driver problem)",
                "check that `nvidia-smi` works, or use 'torch:cpu'",
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendUnavailableError(
                spec,
                f"there is no GPU {dev.index}; this machine has {torch.cuda.device_count()}",
                "choose a smaller device number",
            )
        if dev.index is None:
            dev = torch.device("cuda", 0)
    try:
        torch.zeros(1, device=dev).sum().item()
    except Exception as exc:
        raise BackendUnavailableError(
            spec,
            f"allocating on {dev} failed ({type(exc).__name__}: {exc})",
            "check that `nvidia-smi` works, or use 'torch:cpu'",
        ) from exc
    from array_api_compat import torch as xp

    return xp, dev


_OPENERS = {
    "numpy": _open_numpy,
    "cupy": _open_cupy,
    "torch": _open_torch,
    "array_api_strict": _open_array_api_strict,
}


def _device_label(name: str, device: Any) -> str:
    if name == "cupy":
        return str(device.id)
    if name == "array_api_strict":
        text = str(device)
        return text.split("'")[1] if "'" in text else text
    return str(device)

"""The only door to the array libraries.

xpnn writes all of its math against an *array namespace* ``xp`` (the Array API
standard). This module is the one place that imports NumPy's, CuPy's, PyTorch's
and array-api-strict's namespaces (through array-api-compat) and decides:

* which namespace and device a math function works on: the one of its inputs
  (:func:`get_namespace`) -- never global state;
* where *new* arrays go (parameters, data sets, random numbers): the active
  backend (:func:`get_backend`), chosen with :func:`set_backend`,
  :func:`use_backend` or the ``XPNN_BACKEND`` environment variable;
* how data crosses between host and device: only through the explicit
  :func:`asarray` and :func:`to_numpy`.

Backend specs are strings ``"name"`` or ``"name:device"``::

    numpy                         the CPU (default)
    cupy, cupy:1                  CUDA GPU 0 / GPU 1
    torch, torch:cpu, torch:cuda  PyTorch on the CPU (default) / CUDA GPU 0
    torch:cuda:1                  PyTorch on CUDA GPU 1
    array_api_strict              the strict reference namespace (CPU_DEVICE)
    array_api_strict:device1      ... on its simulated second device

Asking for a backend that cannot run raises :class:`BackendUnavailableError`
saying why and how to fix it; xpnn never falls back to another backend.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib
import os
import platform
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendMismatchError",
    "BackendUnavailableError",
    "CudaGraph",
    "Ops",
    "asarray",
    "backend_of",
    "device_of",
    "available_backends",
    "backend_status",
    "get_backend",
    "get_namespace",
    "info",
    "ops",
    "resolve_dtype",
    "set_backend",
    "to_numpy",
    "use_backend",
    "zeros",
]

#: Every backend name xpnn knows, in the order it lists them.
BACKEND_NAMES = ("numpy", "cupy", "torch", "array_api_strict")

#: The environment variable read when xpnn is imported.
ENV_VAR = "XPNN_BACKEND"

#: Models and data default to float32: GPUs are many times slower at float64.
DEFAULT_FLOAT_DTYPE = "float32"

_FLOAT_NAMES = ("float32", "float64")

_CUDA_FIX = (
    'install CuPy for your CUDA major version: pip install "xpnn[cuda12]" '
    '(CUDA 12.x) or pip install "xpnn[cuda13]" (CUDA 13.x)'
)


class BackendUnavailableError(RuntimeError):
    """A backend was asked for that cannot run on this machine.

    Attributes:
        backend: The spec that was asked for, e.g. ``"cupy:0"``.
        reason: Why it cannot run (package missing, no CUDA device, ...).
        fix: What to do about it.
    """

    def __init__(self, backend: str, reason: str, fix: str):
        self.backend = backend
        self.reason = reason
        self.fix = fix
        super().__init__(f"backend {backend!r} is unavailable: {reason}. To fix: {fix}.")


class BackendMismatchError(TypeError):
    """Arrays from different backends or devices were combined in one call."""


@dataclasses.dataclass(frozen=True)
class Backend:
    """An array library on one device, where xpnn creates new arrays.

    Attributes:
        name: One of :data:`BACKEND_NAMES`.
        xp: The Array API namespace (array-api-compat's wrapper for numpy,
            cupy and torch; the module itself for array_api_strict).
        device: The device object of that namespace (``"cpu"`` for numpy, a
            ``cupy.cuda.Device``, a ``torch.device``, an
            ``array_api_strict.Device``).
        float_dtype: The default floating dtype of new arrays (a dtype of
            ``xp``; float32 unless asked otherwise).
    """

    name: str
    xp: Any
    device: Any
    float_dtype: Any

    @property
    def spec(self) -> str:
        """The ``"name:device"`` string that selects this backend again."""
        return f"{self.name}:{_device_label(self.name, self.device)}"

    @property
    def is_gpu(self) -> bool:
        """Whether arrays of this backend live on a CUDA GPU."""
        if self.name == "cupy":
            return True
        return self.name == "torch" and self.device.type == "cuda"

    def __repr__(self) -> str:
        return f"Backend({self.spec!r}, float_dtype={_dtype_name(self.float_dtype)})"


# --------------------------------------------------------------------------
# Opening a backend: import, find the device, allocate once to prove it works
# --------------------------------------------------------------------------

_cache: dict[tuple[str, str, str], Backend] = {}
_cache_lock = threading.Lock()


def _parse_spec(name: str, device: Any = None) -> tuple[str, Any]:
    """Split ``"name:device"`` and check the name; returns ``(name, device)``."""
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a string, got {type(name).__name__}")
    raw = name.strip()
    base, sep, rest = raw.partition(":")
    base = base.strip().lower().replace("-", "_")
    if base not in BACKEND_NAMES:
        raise ValueError(
            f"unknown backend {name!r}; valid names are: {', '.join(BACKEND_NAMES)} "
            "(optionally followed by ':device', e.g. 'cupy:1', 'torch:cuda', "
            "'array_api_strict:device1')"
        )
    if sep:
        if device is not None:
            raise ValueError(f"device given twice: in {name!r} and as device={device!r}")
        if not rest:
            raise ValueError(f"empty device in backend spec {name!r}")
        device = rest
    return base, device


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


def _open(name: str, device: Any = None, dtype: Any = None) -> Backend:
    """Open (or take from the cache) the backend ``name`` on ``device``."""
    name, device = _parse_spec(name, device)
    dtype_name = DEFAULT_FLOAT_DTYPE if dtype is None else _dtype_name(dtype)
    if dtype_name not in _FLOAT_NAMES:
        raise ValueError(f"the default float dtype must be one of {_FLOAT_NAMES}, got {dtype!r}")
    key = (name, "" if device is None else str(device), dtype_name)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    xp, dev = _OPENERS[name](device)
    backend = Backend(name, xp, dev, getattr(xp, dtype_name))
    with _cache_lock:
        # "numpy" and "numpy:cpu" are one backend: keep one object for both.
        backend = _cache.setdefault((name, backend.spec, dtype_name), backend)
        _cache[key] = backend
    return backend


# --------------------------------------------------------------------------
# Selecting the active backend
# --------------------------------------------------------------------------

_active: contextvars.ContextVar[Backend | None] = contextvars.ContextVar(
    "xpnn_backend", default=None
)
_default: Backend | None = None
_default_lock = threading.Lock()
# Read once at import; opened lazily so that `import xpnn` never fails and a
# bad value raises at first use, with the reason, every time it is used.
_env_spec: str | None = os.environ.get(ENV_VAR) or None


def get_backend() -> Backend:
    """Return the active backend: where new arrays are created.

    The innermost :func:`use_backend` block wins; otherwise the process-wide
    default set by :func:`set_backend`; otherwise ``XPNN_BACKEND`` as read at
    import; otherwise numpy in float32.

    Raises:
        BackendUnavailableError: ``XPNN_BACKEND`` names a backend that cannot run.
        ValueError: ``XPNN_BACKEND`` names no known backend.
    """
    backend = _active.get()
    if backend is not None:
        return backend
    global _default
    with _default_lock:
        if _default is None:
            if _env_spec is None:
                _default = _open("numpy")
            else:
                try:
                    _default = _open(_env_spec)
                except ValueError as exc:
                    raise ValueError(f"{ENV_VAR}={_env_spec!r}: {exc}") from None
        return _default


def set_backend(name: str, device: Any = None, *, dtype: Any = None) -> Backend:
    """Make a backend the process-wide default for new arrays.

    Inside a :func:`use_backend` block this also changes the active backend
    until that block ends.

    Args:
        name: A backend name or ``"name:device"`` spec (see module docs).
        device: The device, if not given in ``name`` (``1``, ``"cuda:0"``,
            ``"device1"``, or the library's device object).
        dtype: Default float dtype of new arrays, ``"float32"`` (default) or
            ``"float64"``.

    Returns:
        The opened :class:`Backend`.
    """
    global _default
    backend = _open(name, device, dtype)
    with _default_lock:
        _default = backend
    if _active.get() is not None:
        _active.set(backend)
    return backend


@contextlib.contextmanager
def use_backend(name: str, device: Any = None, *, dtype: Any = None) -> Iterator[Backend]:
    """Use a backend for new arrays inside a ``with`` block.

    The choice is local to the current thread / asyncio task (a context
    variable): blocks nest, the previous backend comes back on exit (also on
    an exception), and other threads are not affected.

    Example::

        with xpnn.use_backend("cupy"):
            net = xpnn.TwoLayerNet(784, 50, 10)   # parameters on the GPU
    """
    backend = _open(name, device, dtype)
    token = _active.set(backend)
    try:
        yield backend
    finally:
        _active.reset(token)


def _reset_for_tests(env_spec: str | None = None) -> None:
    """Forget the process default and re-read an ``XPNN_BACKEND`` value."""
    global _default, _env_spec
    with _default_lock:
        _default = None
        _env_spec = env_spec or None


# --------------------------------------------------------------------------
# Following the data
# --------------------------------------------------------------------------

_SCALARS = (bool, int, float, complex)
_COMPAT: dict[str, Any] = {}  # "numpy"/"cupy" -> array_api_compat's wrapper namespace


def _compat(name: str) -> Any:
    xp = _COMPAT.get(name)
    if xp is None:
        xp = _COMPAT[name] = importlib.import_module(f"array_api_compat.{name}")
    return xp


def get_namespace(*arrays: Any) -> Any:
    """Return the Array API namespace of the given arrays.

    Math code calls this on its inputs (Python scalars and ``None`` are
    ignored), so it runs on whatever backend and device the data lives on.

    Raises:
        BackendMismatchError: The arrays come from different libraries or
            live on different devices.
        TypeError: No argument is an array.
    """
    if len(arrays) == 1 and type(arrays[0]) is np.ndarray:  # the hottest path
        return _compat("numpy")
    found = [a for a in arrays if a is not None and not isinstance(a, _SCALARS)]
    if not found:
        raise TypeError("get_namespace() needs at least one array argument")
    # The hot paths of every math call: arrays of one library, checked cheaply.
    kind = type(found[0])
    if all(type(a) is kind for a in found):
        if kind is np.ndarray:  # NumPy has one device
            return _compat("numpy")
        if kind.__module__ == "cupy" and kind.__name__ == "ndarray":
            device = found[0].device
            if all(a.device == device for a in found):
                return _compat("cupy")
    import array_api_compat

    try:
        xp = array_api_compat.array_namespace(*found)
    except TypeError as exc:
        kinds = sorted({f"{type(a).__module__}.{type(a).__qualname__}" for a in found})
        if "Multiple namespaces" in str(exc):
            raise BackendMismatchError(
                f"arrays from different backends were combined: {', '.join(kinds)}; "
                "move them to one backend first with xpnn.asarray()"
            ) from None
        raise TypeError(f"not an array of a supported backend: {', '.join(kinds)}") from None
    if len(found) > 1:
        devices = [array_api_compat.device(a) for a in found]
        if any(d != devices[0] for d in devices[1:]):
            raise BackendMismatchError(
                "arrays on different devices were combined: "
                f"{', '.join(sorted({str(d) for d in devices}))}; "
                "move them to one device first with xpnn.asarray()"
            )
    return xp


class Ops:
    """Element-wise and matrix operations that can write into given outputs.

    NumPy and CuPy functions take ``out=``: layers pass preallocated buffers
    and a training step allocates nothing. Other namespaces (PyTorch,
    array-api-strict) have no ``out=`` in the Array API: there ``buffer()``
    returns None and every operation returns a new array. Either way the same
    operations run in the same order, so the results are bitwise the same.

    Get one with :func:`ops` from an array: ``k = ops(x)``.
    """

    def __init__(self, xp: Any, native: Any, torch: Any = None):
        self.xp = xp
        self.native = native  # numpy or cupy, or None
        self.torch = torch  # the torch module when xp is PyTorch's namespace
        self._aranges: dict[int, Any] = {}  # NumPy only: n -> arange(n), see _arange
        self._isdtype: dict[tuple[type, Any, str], bool] = {}
        # The unsigned integer type of each integer size (NumPy's check_labels).
        self._unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}

    def buffer(self, cache: dict, name: Any, shape: tuple[int, ...], dtype: Any, like: Any) -> Any:
        """A reusable output array kept in ``cache[name]`` (None without ``out=``)."""
        if self.native is None:
            return None
        buf = cache.get(name)
        if buf is not None and buf.shape == shape and buf.dtype == dtype:
            # NumPy has one device; a CuPy array names its GPU in .device.
            if self.native is np or buf.device == like.device:
                return buf
        buf = cache[name] = self.xp.empty(shape, dtype=dtype, device=device_of(like))
        return buf

    def _arange(self, n: int) -> Any:
        """NumPy's ``arange(n)``, made once: row and class numbers of pick() and
        label_difference(), which a step would otherwise make every time."""
        numbers = self._aranges.get(n)
        if numbers is None:
            numbers = self._aranges[n] = np.arange(n)
        return numbers

    def isdtype(self, dtype: Any, kind: str) -> bool:
        """``xp.isdtype(dtype, kind)``, remembered (it is slow for what it does)."""
        key = (type(dtype), dtype, kind)  # the type first: see _dtype_name
        try:
            return self._isdtype[key]
        except (KeyError, TypeError):
            pass
        answer = self._isdtype[key] = self.xp.isdtype(dtype, kind)
        return answer

    # Each operation writes into ``out`` where the library can, else returns a
    # new array (spelled out per operation: this is the hot path of a step).

    def add(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.add(a, b, out=out)
        return a + b

    def subtract(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.subtract(a, b, out=out)
        return a - b

    def multiply(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.multiply(a, b, out=out)
        return a * b

    def divide(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.divide(a, b, out=out)
        return a / b

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            if self.native is not np and _cupy_gemm(a, b, out):
                return out
            return self.native.matmul(a, b, out=out)
        return a @ b

    def exp(self, a: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.exp(a, out=out)
        return self.xp.exp(a)

    def tanh(self, a: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.tanh(a, out=out)
        return self.xp.tanh(a)

    # NumPy's sum and max are add.reduce and maximum.reduce behind a wrapper
    # that costs more than the reduction of a (100, 10) array; call them directly.

    def sum(self, a: Any, axis: int | None, out: Any = None, keepdims: bool = False) -> Any:
        if self.native is np:
            return np.add.reduce(a, axis=axis, out=out, keepdims=keepdims)
        if out is not None and self.native is not None:
            return self.native.sum(a, axis=axis, out=out, keepdims=keepdims)
        return self.xp.sum(a, axis=axis, keepdims=keepdims)

    def max(self, a: Any, axis: int | None, keepdims: bool = False) -> Any:
        if self.native is np:
            return np.maximum.reduce(a, axis=axis, keepdims=keepdims)
        return self.xp.max(a, axis=axis, keepdims=keepdims)

    # Fused element-wise steps. On CuPy each is one kernel (a GPU step is
    # bound by kernel launches); elsewhere the same formula in separate passes.

    def negative(self, a: Any, out: Any = None) -> Any:
        if out is not None and self.native is not None:
            return self.native.negative(a, out=out)
        return -a

    def sigmoid(self, x: Any, out: Any = None) -> Any:
        """The logistic function 1 / (1 + exp(-x)), element-wise, in x's dtype.

        Evaluated as written, in four passes that round at most once each, so
        the result is within a few ulp (relative) wherever it is a normal float,
        tiny values of negative x included (the tanh identity 0.5 * tanh(0.5 x)
        + 0.5 lost them all: sigmoid(-38) was 0 in float64). Below about -88.7
        (float32) or -709.8 (float64), where the true value is subnormal,
        exp(-x) overflows to inf and the result is 0; that overflow is
        intended and raises no warning. NaN stays NaN.
        """
        kernel = self._kernel("sigmoid")
        if kernel is not None and out is not None:
            return kernel(x, out)
        if self.torch is not None:  # no floating-point warnings to silence
            return self._sigmoid_passes(x, out)
        # NumPy (and array-api-strict, which computes with NumPy) would warn of
        # the intended overflow.
        with np.errstate(over="ignore", under="ignore"):
            return self._sigmoid_passes(x, out)

    def _sigmoid_passes(self, x: Any, out: Any) -> Any:
        e = self.exp(self.negative(x, out=out), out=out)
        return self.divide(1.0, self.add(e, 1.0, out=e), out=e)

    def sigmoid_backward(self, y: Any, dout: Any, out: Any = None) -> Any:
        """(1 - y) * y * dout, the sigmoid's backward pass from its output y."""
        kernel = self._kernel("sigmoid_backward")
        if kernel is not None and out is not None:
            return kernel(y, dout, out)
        dx = self.subtract(1.0, y, out=out)
        return self.multiply(self.multiply(dx, y, out=dx), dout, out=dx)

    def scaled_difference(self, a: Any, b: Any, scale: float, out: Any = None) -> Any:
        """(a - b) * scale."""
        kernel = self._kernel("scaled_difference")
        if kernel is not None and out is not None and isinstance(scale, (int, float)):
            return kernel(a, b, a.dtype.type(scale), out)
        return self.multiply(self.subtract(a, b, out=out), scale, out=out)

    def subtract_scaled(self, p: Any, g: Any, lr: float, scratch: Any = None) -> Any:
        """p -= lr * g in place (lr * g goes into ``scratch`` when given)."""
        kernel = self._kernel("subtract_scaled")
        if kernel is not None:
            return kernel(g, p.dtype.type(lr), p)
        p -= self.multiply(g, lr, out=scratch)
        return p

    def check_labels(self, t: Any, num_classes: int, who: str = "labels") -> None:
        """Refuse labels that are not class indices ``0..num_classes-1``.

        The dtype is always checked. The values are read only where that is
        free, in host memory (NumPy, PyTorch on the CPU, array-api-strict on
        its CPU device); on a device (CuPy, PyTorch CUDA, array-api-strict's
        simulated devices) reading them would be a host synchronisation, so
        they are not checked here and the losses turn an invalid label into a
        NaN loss and a NaN gradient row instead. Negative labels are out of
        range everywhere (they do not count from the end).

        Args:
            t: Labels, any shape, integer.
            num_classes: The number of classes C (> 0).
            who: What the labels are, for the message.

        Raises:
            TypeError: ``t`` is not of an integer dtype.
            ValueError: A label read is outside ``0..num_classes-1`` (the
                message names the range found).
        """
        if not self.isdtype(t.dtype, "integral"):
            raise TypeError(
                f"{who} must have an integer dtype (class indices), got {_dtype_name(t.dtype)}"
            )
        if self.native is np:
            # Seen as unsigned, a negative label is huge: one reduction (the
            # ufunc's own, cheaper than max()) says whether all are in range.
            unsigned = t.view(self._unsigned[t.itemsize])
            if t.size == 0 or np.maximum.reduce(unsigned, axis=None) < num_classes:
                return
            found = int(np.minimum.reduce(t, axis=None)), int(np.maximum.reduce(t, axis=None))
        else:
            found = self._label_range(t)
            if found is None or (found[0] >= 0 and found[1] < num_classes):
                return
        lo, hi = found
        why = " (negative labels do not count from the end)" if lo < 0 else ""
        raise ValueError(
            f"{who} must be class indices in 0..{num_classes - 1}, found values in {lo}..{hi}{why}"
        )

    def _label_range(self, t: Any) -> tuple[int, int] | None:
        """``(min(t), max(t))`` of labels off NumPy where reading them is free, else
        None (on a device, where it would be a host sync; also for empty ``t``)."""
        backend = backend_of(t)
        if backend.is_gpu:
            return None
        if backend.name == "array_api_strict" and backend.device != self.xp.Device("CPU_DEVICE"):
            return None  # a simulated device refuses to be read, as a GPU would cost a sync
        if 0 in tuple(t.shape):
            return None
        return int(self.xp.min(t)), int(self.xp.max(t))

    def pick(self, a: Any, t: Any, *, checked: bool = False) -> Any:
        """``a[i, t[i]]`` for every row i: ``(N, C)`` and integer ``(N,)`` -> ``(N,)``.

        Labels must be in ``0..C-1``. On NumPy others raise ValueError (unless
        ``checked``); elsewhere the element picked for an invalid label is NaN,
        as checking on a device would be a host sync (:meth:`check_labels`
        raises where it is free: call it first). An invalid label is never
        used as an index (NumPy would wrap a negative one to another class,
        PyTorch CUDA would assert on the device): it is clamped into range
        and the element it picks replaced.

        Args:
            a: ``(N, C)``, float.
            t: ``(N,)``, integer.
            checked: :meth:`check_labels` already ran on ``t`` (skips a
                second read of the labels on NumPy).
        """
        if self.native is np:
            if not checked:
                self.check_labels(t, a.shape[1])
            return a[self._arange(a.shape[0]), t]  # fancy indexing: a third of take_along_axis
        xp = self.xp
        c = a.shape[1]
        if t.dtype != xp.int64:  # PyTorch's gather takes int64 indices only
            t = xp.astype(t, xp.int64)
        t = xp.reshape(t, (-1, 1))
        valid = (t >= 0) & (t < c)
        index = xp.clip(t, 0, c - 1)  # a valid index for every row: never out of bounds
        if self.torch is not None:
            # torch.take_along_dim reads out of bounds without a word (PyTorch
            # 2.13, CPU), and gather would assert on CUDA: the index is in range.
            picked = self.torch.gather(a, 1, index)
        else:
            picked = xp.take_along_axis(a, index, axis=1)
        return xp.where(valid, picked, float("nan"))[:, 0]

    def softmax_cross_entropy(
        self, x: Any, t: Any, y: Any = None, shifted: Any = None, *, checked: bool = False
    ) -> tuple[Any, Any]:
        """Softmax of scores and their mean cross-entropy against integer labels.

        With ``s = x - max(x)`` per row: ``softmax(x) = exp(s) / sum(exp(s))``
        and the loss of a row is ``log(sum(exp(s))) - s[label]``
        (log-sum-exp: finite for finite scores, unless the loss itself
        exceeds the float range, as for a label whose score is 1e308 below
        the maximum: then it is inf).

        Args:
            x: Scores ``(N, C)``, float, N > 0.
            t: Labels ``(N,)`` in ``0..C-1``, integer.
            y: Output buffer for the softmax ``(N, C)``, or None.
            shifted: Work buffer ``(N, C)`` for ``s``, or None.
            checked: :meth:`check_labels` already ran on ``t``.

        Returns:
            ``(softmax(x), mean loss)``: ``(N, C)`` and a 0-d array, in x's dtype.

        Raises:
            ValueError: ``N`` is 0 (a mean over no samples), or a label is
                out of range where reading labels is free (see
                :meth:`check_labels`). On a device a label out of range makes
                its row's loss NaN, so the mean is NaN (on CuPy both results
                come from one kernel).
        """
        n, c = x.shape
        if n == 0:
            raise ValueError(f"the loss of an empty batch is undefined: scores of shape {(n, c)}")
        if not checked:
            self.check_labels(t, c)
        kernel = self._kernel("softmax_cross_entropy")
        if kernel is not None and y is not None and x.dtype in (np.float32, np.float64):
            return kernel(x, t, y)
        y, s, total = self.softmax_rows(x, y, shifted)
        loss = self.sum(self.xp.log(total[:, 0]) - self.pick(s, t, checked=True), axis=None) / n
        return y, loss

    def softmax_rows(self, x: Any, y: Any = None, shifted: Any = None) -> tuple[Any, Any, Any]:
        """Softmax over the rows of ``x`` ``(N, C)``, keeping what a loss needs.

        Returns:
            ``(softmax(x), s, sum(exp(s)))`` with ``s = x - max(x)`` per row:
            ``(N, C)``, ``(N, C)`` and ``(N, 1)`` (into ``y`` and ``shifted``
            where given).
        """
        s = self.subtract(x, self.max(x, axis=1, keepdims=True), out=shifted)
        e = self.exp(s, out=y)
        total = self.sum(e, axis=1, keepdims=True)
        return self.divide(e, total, out=e), s, total

    def label_difference(self, y: Any, t: Any, scale: Any, out: Any = None) -> Any:
        """``(y - one_hot(t)) * scale``: softmax-with-loss's backward for integer labels.

        ``y`` is ``(N, C)``, ``t`` integer ``(N,)``; the one-hot is not built
        on CuPy (one kernel) and is a boolean comparison on NumPy. A row whose
        label is outside ``0..C-1`` is NaN, as its loss is (see :meth:`pick`),
        except on NumPy: there the forward pass refused such labels, and
        checking again would cost a read of the labels every step.
        """
        kernel = self._kernel("label_difference")
        if kernel is not None and out is not None and isinstance(scale, (int, float)):
            return kernel(y, t, y.shape[1], y.dtype.type(scale), out)
        xp = self.xp
        c = y.shape[1]
        if self.native is np:
            hot = np.equal(t.reshape(-1, 1), self._arange(c))
            return self.multiply(self.subtract(y, hot, out=out), scale, out=out)
        t = xp.reshape(t, (-1, 1))
        classes = xp.arange(c, dtype=t.dtype, device=device_of(t))
        hot = xp.astype(t == classes, y.dtype)  # the Array API does not mix bool and float
        dx = self.multiply(self.subtract(y, hot, out=out), scale, out=out)
        return xp.where((t >= 0) & (t < c), dx, float("nan"))

    def take_rows(self, x: Any, idx: Any, out: Any = None) -> Any:
        """``x``'s rows (or elements, for 1-D ``x``) at ``idx``, into ``out`` if given.

        ``idx`` must hold valid indices (on CuPy they are not checked).
        """
        if out is not None and self.native is not None:
            return self.native.take(x, idx, axis=0, out=out)
        return self.xp.take(x, idx, axis=0)

    def _kernel(self, name: str) -> Any:
        if self.native is None or self.native is np:
            return None
        return _cupy_kernel(name)


_CUPY_KERNELS: dict[str, Any] = {}
_KERNEL_SOURCES = {
    # The formula of Ops.sigmoid: accurate for negative x too, inf -> 0 is intended.
    "sigmoid": ("T x", "T y", "y = (T)1 / ((T)1 + exp(-x))"),
    "sigmoid_backward": ("T y, T dout", "T dx", "dx = ((T)1 - y) * y * dout"),
    "scaled_difference": ("T a, T b, T scale", "T out", "out = (a - b) * scale"),
    "subtract_scaled": ("T g, T lr", "T p", "p -= lr * g"),
}


_KERNEL_SOURCES["label_difference"] = (
    "T y, raw S t, int32 c, T scale",
    "T dx",
    # A row whose label is out of range is NaN, as the loss kernel's row loss:
    # reading the labels on the host to refuse them would be a sync. (NVRTC
    # has no NAN macro; a double quiet NaN converts to a NaN of any T.)
    "const long long label = (long long)t[i / c];"
    "dx = (label < 0 || label >= c) ? (T)__longlong_as_double(0x7ff8000000000000LL)"
    " : (y - (label == i % c ? (T)1 : (T)0)) * scale",
)

# One thread per row: the max, the exponentials, their sum, the softmax and
# the row's loss, where separate array operations would be a dozen launches.
_SOFTMAX_XENT_SOURCE = r"""
__device__ inline float xpnn_exp(float v) { return expf(v); }
__device__ inline double xpnn_exp(double v) { return exp(v); }
__device__ inline float xpnn_log(float v) { return logf(v); }
__device__ inline double xpnn_log(double v) { return log(v); }
__device__ inline float xpnn_nan(float) { return __int_as_float(0x7fc00000); }
__device__ inline double xpnn_nan(double) { return __longlong_as_double(0x7ff8000000000000LL); }

template <typename T>
__device__ void softmax_xent(const T* x, const long long* t, T* y, T* row_loss, int n, int c) {
    int i = blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    const T* xi = x + (long long)i * c;
    T* yi = y + (long long)i * c;
    T m = xi[0];
    for (int j = 1; j < c; ++j) m = xi[j] > m ? xi[j] : m;
    T total = 0;
    for (int j = 0; j < c; ++j) { yi[j] = xpnn_exp(xi[j] - m); total += yi[j]; }
    for (int j = 0; j < c; ++j) yi[j] /= total;
    long long label = t[i];
    row_loss[i] = (label < 0 || label >= c) ? xpnn_nan(m)
                                            : xpnn_log(total) - (xi[label] - m);
}
extern "C" __global__ void softmax_xent_float(
        const float* x, const long long* t, float* y, float* r, int n, int c) {
    softmax_xent<float>(x, t, y, r, n, c);
}
extern "C" __global__ void softmax_xent_double(
        const double* x, const long long* t, double* y, double* r, int n, int c) {
    softmax_xent<double>(x, t, y, r, n, c);
}
"""


class _CupySoftmaxXent:
    """The fused CuPy softmax-with-loss forward of :meth:`Ops.softmax_cross_entropy`."""

    def __init__(self) -> None:
        import cupy

        self.cupy = cupy
        self.module = cupy.RawModule(code=_SOFTMAX_XENT_SOURCE)
        self.rows: dict[tuple[int, Any, int], Any] = {}  # per-row losses, per size and GPU
        self.functions: dict[tuple[int, str], Any] = {}  # (GPU, name) -> loaded kernel

    def __call__(self, x: Any, t: Any, y: Any) -> tuple[Any, Any]:
        cp = self.cupy
        n, c = x.shape
        x = cp.ascontiguousarray(x)
        if t.dtype != cp.int64:
            t = t.astype(cp.int64)
        t = cp.ascontiguousarray(t)
        key = (n, x.dtype, x.device.id)
        rows = self.rows.get(key)
        if rows is None:
            rows = self.rows[key] = cp.empty(n, dtype=x.dtype)
        name = "softmax_xent_float" if x.dtype == cp.float32 else "softmax_xent_double"
        threads = 128
        blocks = (n + threads - 1) // threads
        function = self.functions.get((key[2], name))
        if function is None:  # a module is loaded on each GPU it runs on
            function = self.functions[key[2], name] = self.module.get_function(name)
        function((blocks,), (threads,), (x, t, y, rows, cp.int32(n), cp.int32(c)))
        return y, cp.mean(rows)


class _CublasGemm:
    """``out = a @ b`` for 2-D float32/float64 CuPy arrays, by cuBLAS directly.

    CuPy refuses any cuBLAS call while a stream is being captured into a CUDA
    graph, although cuBLAS supports it; this calls ``cublas<S|D>gemm`` on
    CuPy's own handle and current stream through ctypes, for the layouts the
    layers use (C-ordered arrays and their transposes). Eager and recorded
    steps both use it, so they compute alike.
    """

    def __init__(self, lib: Any):
        import ctypes

        import cupy

        self.cupy = cupy
        vp, i = ctypes.c_void_p, ctypes.c_int
        self.set_stream = lib.cublasSetStream_v2
        self.set_stream.argtypes, self.set_stream.restype = [vp, vp], i
        self.gemm = {}
        for dtype, name, scalar in (
            (np.float32, "cublasSgemm_v2", ctypes.c_float),
            (np.float64, "cublasDgemm_v2", ctypes.c_double),
        ):
            fn = getattr(lib, name)
            fn.argtypes = [vp, i, i, i, i, i, vp, vp, i, vp, i, vp, vp, i]
            fn.restype = i
            one, zero = scalar(1.0), scalar(0.0)
            # Host pointers to alpha = 1 and beta = 0 (kept alive with self).
            self.gemm[np.dtype(dtype)] = (
                fn,
                one,
                zero,
                ctypes.addressof(one),
                ctypes.addressof(zero),
            )

    @staticmethod
    def _layout(x: Any) -> tuple[int, int] | None:
        """(transposed?, leading dimension) of a 2-D array for column-major cuBLAS."""
        rows, cols = x.shape
        s0, s1 = x.strides
        item = x.itemsize
        if s1 == item and s0 % item == 0 and s0 // item >= cols:
            return 0, max(s0 // item, 1)  # row-major: cuBLAS sees x.T untransposed
        if s0 == item and s1 % item == 0 and s1 // item >= rows:
            return 1, max(s1 // item, 1)  # column-major: transpose it
        return None

    def __call__(self, a: Any, b: Any, out: Any) -> bool:
        entry = self.gemm.get(out.dtype)
        if (
            entry is None
            or a.ndim != 2
            or b.ndim != 2
            or out.ndim != 2
            or a.dtype != out.dtype
            or b.dtype != out.dtype
        ):
            return False
        m, k = a.shape
        n = b.shape[1]
        if b.shape[0] != k or out.shape != (m, n) or 0 in (m, n, k):
            return False
        la, lb, lc = self._layout(a), self._layout(b), self._layout(out)
        if la is None or lb is None or lc is None or lc[0] != 0:
            return False
        cp = self.cupy
        if not (a.device.id == b.device.id == out.device.id == cp.cuda.runtime.getDevice()):
            return False
        fn, _, _, one, zero = entry
        handle = cp.cuda.device.get_cublas_handle()
        status = self.set_stream(handle, cp.cuda.get_current_stream().ptr)
        if status == 0:
            # Row-major out = a @ b is column-major out.T = b.T @ a.T.
            status = fn(
                handle, lb[0], la[0], n, m, k, one,
                b.data.ptr, lb[1], a.data.ptr, la[1], zero, out.data.ptr, lc[1],
            )  # fmt: skip
        if status != 0:
            raise RuntimeError(f"cuBLAS gemm failed with status {status}")
        return True


_GEMM: list[Any] = []  # [] before the first try; then [_CublasGemm or None]


def _load_cublas_gemm() -> _CublasGemm | None:
    """The cuBLAS library CuPy itself loaded (its handle only works with it), or None."""
    import ctypes
    import re

    import cupy

    cupy.cuda.device.get_cublas_handle()  # makes CuPy load its cuBLAS
    candidates = []
    try:
        with open("/proc/self/maps") as maps:  # Linux: the very file CuPy loaded
            for line in maps:
                if re.search(r"/libcublas\.so[.0-9]*$", line.strip()):
                    candidates.append(line.split()[-1])
    except OSError:
        pass
    candidates.append(f"libcublas.so.{cupy.cuda.runtime.runtimeGetVersion() // 1000}")
    for name in candidates:
        try:
            return _CublasGemm(ctypes.CDLL(name))
        except (OSError, AttributeError):
            continue
    return None


def _cupy_gemm(a: Any, b: Any, out: Any) -> bool:
    """Run ``out = a @ b`` with :class:`_CublasGemm`; False where it does not apply."""
    if not _GEMM:
        _GEMM.append(_load_cublas_gemm())
    gemm = _GEMM[0]
    return gemm is not None and gemm(a, b, out)


def _cupy_kernel(name: str) -> Any:
    """A CuPy kernel of :class:`Ops`, compiled on first use."""
    kernel = _CUPY_KERNELS.get(name)
    if kernel is None:
        import cupy

        if name == "softmax_cross_entropy":
            kernel = _CupySoftmaxXent()
        else:
            params, outputs, body = _KERNEL_SOURCES[name]
            kernel = cupy.ElementwiseKernel(params, outputs, body, f"xpnn_{name}")
        _CUPY_KERNELS[name] = kernel
    return kernel


class CudaGraph:
    """GPU work recorded once as a CUDA graph and replayed with one launch (CuPy).

    A replay runs the recorded kernels on the memory they were recorded with,
    on the stream current at :meth:`launch`, so it stays ordered with the
    other work there; none of the Python code runs again. That memory must
    stay the graph's: everything allocated in :meth:`run_eagerly` and
    :meth:`record` comes from a memory pool of the graph's own, which nothing
    else allocates from, so arrays freed later (a layer making new buffers
    for another batch size, say) are never handed to anyone else while the
    graph lives. Use::

        graph = CudaGraph(x)
        graph.run_eagerly(step)   # compiles kernels, makes buffers in the graph's pool
        out = graph.record(step)  # records without running; out holds each replay's result
        graph.launch()            # runs the step; again for every later step

    Args:
        like: A CuPy array on the GPU to record on.

    Raises:
        ValueError: ``like`` is not a CuPy array.
    """

    def __init__(self, like: Any):
        if _library(like) != "cupy":
            raise ValueError(
                f"CUDA graphs need CuPy arrays, got {_library(like) or type(like).__name__} "
                'data; put the data on the GPU with xpnn.use_backend("cupy") and xpnn.asarray'
            )
        import cupy

        self._cupy = cupy
        self._device = cupy.cuda.Device(like.device.id)
        with self._device:
            self._pool = cupy.cuda.MemoryPool()
            self._stream = cupy.cuda.Stream(non_blocking=True)
        self._graph: Any = None

    def run_eagerly(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` now, its allocations coming from the graph's pool."""
        with self._device, self._cupy.cuda.using_allocator(self._pool.malloc):
            return fn()

    def record(self, fn: Callable[[], Any]) -> Any:
        """Record the GPU work of ``fn()`` without running it; returns fn's result.

        Raises:
            RuntimeError: ``fn`` did something a graph cannot record, such as
                waiting for the device or copying to the host.
        """
        cupy, stream = self._cupy, self._stream
        with self._device, stream, cupy.cuda.using_allocator(self._pool.malloc):
            stream.begin_capture()
            try:
                result = fn()
            except BaseException as exc:
                try:
                    stream.end_capture()
                except Exception:  # the capture is already broken: report fn's error
                    pass
                if isinstance(exc, Exception) and "captur" in str(exc):
                    raise RuntimeError(
                        "the step could not be recorded as a CUDA graph: it waits for the "
                        f"device or the host ({exc}); train without cuda_graph"
                    ) from exc
                raise
            self._graph = stream.end_capture()
        return result

    def launch(self) -> None:
        """Run the recorded work once more (asynchronously: the host does not wait)."""
        if self._graph is None:
            raise RuntimeError("nothing recorded yet: call record() first")
        with self._device:
            self._graph.launch()


_ops_cache: dict[int, Ops] = {}


def ops(*arrays: Any) -> Ops:
    """The :class:`Ops` for the namespace of ``arrays`` (see get_namespace)."""
    for a in arrays:  # the hot path: all NumPy arrays
        if type(a) is not np.ndarray:
            break
    else:
        k = _ops_cache.get(-1) if arrays else None
        if k is not None:
            return k
    xp = get_namespace(*arrays)
    k = _ops_cache.get(id(xp))
    if k is None:
        import array_api_compat

        native = torch = None
        if array_api_compat.is_numpy_namespace(xp):
            native = np
        elif array_api_compat.is_cupy_namespace(xp):
            import cupy

            native = cupy
        elif array_api_compat.is_torch_namespace(xp):
            import torch
        k = _ops_cache[id(xp)] = Ops(xp, native, torch)
        if native is np:
            _ops_cache[-1] = k
    return k


def backend_of(x: Any) -> Backend:
    """The backend (library and device) an array lives on, default float dtype.

    Raises:
        TypeError: ``x`` is not an array of a backend xpnn knows.
    """
    lib = _library(x)
    if lib is None:
        raise TypeError(f"not an array of a supported backend: {type(x).__name__}")
    return _open(lib, device_of(x))


def device_of(x: Any) -> Any:
    """The device an array lives on (for creating new arrays beside it)."""
    import array_api_compat

    return array_api_compat.device(x)


_DTYPE_NAMES: dict[tuple[type, Any], str] = {}  # dtype -> name (str() of a dtype is slow)
_RESOLVED: dict[tuple[int, type, Any], Any] = {}  # (id(xp), dtype) -> dtype object of xp


def _dtype_name(dtype: Any) -> str:
    """The canonical name ('float32', 'int64', ...) of a dtype of any backend."""
    if isinstance(dtype, str):
        return dtype
    # Keyed with the type first: dtypes of two libraries may hash alike, and
    # array_api_strict warns when its dtypes are compared with NumPy's.
    key = (type(dtype), dtype)
    try:
        return _DTYPE_NAMES[key]
    except (KeyError, TypeError):  # not seen yet, or unhashable
        pass
    name = _dtype_name_uncached(dtype)
    try:
        _DTYPE_NAMES[key] = name
    except TypeError:
        pass
    return name


def _dtype_name_uncached(dtype: Any) -> str:
    text = str(dtype)  # torch.float32, array_api_strict.float32, float32
    if text.startswith(("torch.", "array_api_strict.")):
        return text.rsplit(".", 1)[1]
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}") from None


def resolve_dtype(xp: Any, dtype: Any) -> Any:
    """Return the dtype object of namespace ``xp`` for a dtype given any way.

    Args:
        xp: An array namespace.
        dtype: A name (``"float32"``), a NumPy dtype or type (``np.float64``),
            or a dtype of ``xp`` itself.

    Raises:
        ValueError: ``xp`` has no such dtype (the message lists those it has).
    """
    key = (id(xp), type(dtype), dtype)  # the type first: see _dtype_name
    try:
        return _RESOLVED[key]
    except (KeyError, TypeError):  # not seen yet, or unhashable
        pass
    dtypes = xp.__array_namespace_info__().dtypes()
    name = _dtype_name(dtype)
    if name == "bool_":
        name = "bool"
    if name not in dtypes:
        raise ValueError(f"unknown dtype {dtype!r}; valid dtypes: {', '.join(dtypes)}")
    try:
        _RESOLVED[key] = dtypes[name]
    except TypeError:
        pass
    return dtypes[name]


# --------------------------------------------------------------------------
# Explicit transfers
# --------------------------------------------------------------------------


def _library(a: Any) -> str | None:
    """Which backend library an array belongs to, or None for host data."""
    if type(a) is np.ndarray:  # the hot path
        return "numpy"
    import array_api_compat as c

    if c.is_numpy_array(a):
        return "numpy"
    if c.is_cupy_array(a):
        return "cupy"
    if c.is_torch_array(a):
        return "torch"
    if type(a).__module__.startswith("array_api_strict"):
        return "array_api_strict"
    return None


def to_numpy(a: Any) -> np.ndarray:
    """Copy an array of any backend to host memory as a NumPy array.

    This is the explicit device-to-host transfer (it waits for the device).
    The result of a device array (CuPy, PyTorch, array-api-strict) never
    shares memory with it. NumPy arrays, the numpy backend's included, come
    back as they are, like ``numpy.asarray``: copy one before changing it.
    Python scalars and lists become NumPy arrays.
    """
    lib = _library(a)
    if lib == "cupy":
        return a.get()
    if lib == "torch":
        # .numpy() of a CPU tensor is a view of the tensor: copy it.
        return np.array(a.detach().cpu().numpy(), copy=True)
    if lib == "array_api_strict":
        import array_api_strict

        host = a.to_device(array_api_strict.Device("CPU_DEVICE"))
        return np.from_dlpack(host).copy()
    return np.asarray(a)


def asarray(a: Any, dtype: Any = None, *, backend: Backend | None = None) -> Any:
    """Put data on the active backend and device (or on ``backend``).

    This is the explicit host-to-device transfer. Arrays of another backend
    are brought over through host memory; arrays already there are not copied
    unless the dtype changes.

    Args:
        a: NumPy array, array of any backend, nested lists or a scalar.
        dtype: Target dtype (name, NumPy dtype or a dtype of the backend).
            By default data that has a dtype keeps it, as ``numpy.asarray``,
            ``cupy.asarray`` and ``torch.asarray`` do: a float64 NumPy array
            stays float64 (the book's ``np.array([3.0, 4.0])`` keeps its
            digits). Only untyped data (Python lists and scalars) takes the
            backend's default float dtype (float32 unless chosen otherwise)
            when it holds floats; integers and bools keep theirs.
        backend: Where to put the data; the active backend if omitted.

    Returns:
        An array of ``backend.xp`` on ``backend.device``.
    """
    backend = backend or get_backend()
    xp = backend.xp
    lib = _library(a)
    untyped = lib is None and not isinstance(a, np.generic)  # lists, Python scalars
    if lib is not None and lib != backend.name:
        a = to_numpy(a)
        lib = "numpy"
    if lib is None:
        a = np.asarray(a)
        lib = "numpy"
        if a.dtype.kind not in "biuf":
            raise TypeError(
                f"xpnn.asarray needs numeric data, got NumPy dtype {a.dtype} "
                "(strings, objects, or integers too large for int64?)"
            )
    if dtype is None:
        kind = _dtype_name(a.dtype)
        # Typed data keeps its dtype; untyped floats take the backend's default.
        dtype = backend.float_dtype if untyped and kind.startswith("float") else kind
    target = resolve_dtype(xp, dtype)
    if lib == "numpy" and backend.name != "numpy":
        # Host data going to another library: torch and array_api_strict would
        # wrap the NumPy buffer (so writes would reach the caller's array, or
        # crash on a read-only memory map), and torch refuses negative strides
        # and non-native byte order. Hand them their own contiguous copy.
        native = a.dtype.newbyteorder("=")
        if backend.name in ("torch", "array_api_strict"):
            a = np.array(a, dtype=native, order="C", copy=True)
        else:
            a = np.asarray(a, dtype=native, order="C")
    # Within one library this may share memory with `a`, like numpy.asarray.
    return xp.asarray(a, dtype=target, device=backend.device)


def zeros(shape: int | tuple[int, ...], dtype: Any = None, *, backend: Backend | None = None):
    """A new array of zeros on the active backend (or ``backend``).

    Args:
        shape: The shape.
        dtype: Its dtype; the backend's default float dtype if omitted.
    """
    backend = backend or get_backend()
    dtype = backend.float_dtype if dtype is None else resolve_dtype(backend.xp, dtype)
    return backend.xp.zeros(shape, dtype=dtype, device=backend.device)


# --------------------------------------------------------------------------
# What can run here
# --------------------------------------------------------------------------

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
    from xpnn import __version__

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

"""Backend specs, the :class:`Backend` object, and the active backend.

Owns parsing ``"name:device"`` specs, opening a backend once and caching it
(:func:`_open`; the per-library work is in :mod:`xpnn.backend.openers`), and
the one piece of global state of the backend layer: where new arrays go. That
is the innermost :func:`use_backend` block (a context variable), else the
process default ``_default`` set by :func:`set_backend`, else the
``XPNN_BACKEND`` value ``_env_spec`` read at import. Both live here and only
here; code that must save or reset them uses this module (or
:func:`_reset_for_tests`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from xpnn.backend.dtypes import _dtype_name, resolve_dtype
from xpnn.backend.openers import _OPENERS, _device_label

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "SelectionUnusedWarning",
    "get_backend",
    "note_selection_unused",
    "set_backend",
    "use_backend",
]

#: Every backend name xpnn knows, in the order it lists them.
BACKEND_NAMES = ("numpy", "cupy", "torch", "array_api_strict")

#: The environment variable read when xpnn is imported.
ENV_VAR = "XPNN_BACKEND"
#: The environment variable that sets the default backend's float dtype: a
#: book script ported by its imports runs in the book's float64 with
#: ``XPNN_DTYPE=float64`` (its NumPy float64 data then fits the model's weights).
DTYPE_ENV_VAR = "XPNN_DTYPE"

#: Models and data default to float32: GPUs are many times slower at float64.
DEFAULT_FLOAT_DTYPE = "float32"

_FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")


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
# Opening a backend once per spec and dtype (the library's part: openers.py)
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
    backend = Backend(name, xp, dev, resolve_dtype(xp, dtype_name))  # half floats may be missing
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
_default_source = ""  # what chose it, for messages: "XPNN_BACKEND=torch", "set_backend('torch')"
_default_lock = threading.Lock()
# Read once at import; opened lazily so that `import xpnn` never fails and a
# bad value raises at first use, with the reason, every time it is used.
_env_spec: str | None = os.environ.get(ENV_VAR) or None
_env_dtype: str | None = os.environ.get(DTYPE_ENV_VAR) or None


def get_backend() -> Backend:
    """Return the active backend: where new arrays are created.

    The innermost :func:`use_backend` block wins; otherwise the process-wide
    default set by :func:`set_backend`; otherwise ``XPNN_BACKEND`` as read at
    import; otherwise numpy. Its default float dtype is ``XPNN_DTYPE`` as read
    at import (``float64`` for the book's numerics), else float32; a backend
    chosen with :func:`set_backend` or :func:`use_backend` takes its own
    ``dtype=`` instead.

    Raises:
        BackendUnavailableError: ``XPNN_BACKEND`` names a backend that cannot run.
        ValueError: ``XPNN_BACKEND`` names no known backend, or ``XPNN_DTYPE``
            no float dtype the backend has.
    """
    backend = _active.get()
    if backend is not None:
        return backend
    global _default, _default_source
    with _default_lock:
        if _default is None:
            if _env_dtype is not None and _env_dtype not in _FLOAT_NAMES:
                raise ValueError(
                    f"{DTYPE_ENV_VAR}={_env_dtype!r}: the default float dtype must be one of "
                    f"{_FLOAT_NAMES} (e.g. {DTYPE_ENV_VAR}=float64), or unset it for float32"
                )
            try:
                _default = _open(_env_spec or "numpy", dtype=_env_dtype)
                _default_source = f"{ENV_VAR}={_env_spec}" if _env_spec else "the default"
            except ValueError as exc:
                if _env_spec is None:
                    raise ValueError(f"{DTYPE_ENV_VAR}={_env_dtype!r}: {exc}") from None
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
        dtype: Default float dtype of new arrays, ``"float32"`` (default),
            ``"float64"``, or a half float where the library has it
            (``"float16"``: numpy, cupy, torch; ``"bfloat16"``: torch).

    Returns:
        The opened :class:`Backend`.

    Raises:
        ValueError: An unknown name or device, or a dtype the library has
            not (array_api_strict has no half floats: the Array API
            standard defines none).
    """
    global _default, _default_source
    backend = _open(name, device, dtype)
    with _default_lock:
        _default, _default_source = backend, f"set_backend({name!r})"
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


class SelectionUnusedWarning(UserWarning):
    """A backend was selected for the process, but a computation got NumPy data and ran on NumPy.

    xpnn's math follows the data; the selection only says where *new* arrays
    go. A book script ported by its imports that makes its own data with
    ``np`` therefore computes on NumPy whatever ``XPNN_BACKEND`` says: this
    says so, once per process.
    """


_unused_noted = False


def note_selection_unused(x: Any) -> None:
    """Warn once per process when NumPy data meets a non-NumPy process selection.

    Called by the public math entry points (:mod:`xpnn.functions`,
    :mod:`xpnn.gradient`, the optimizers, every layer's ``forward``) on the
    array they compute on. It warns (:class:`SelectionUnusedWarning`, once)
    when ``x`` is a NumPy array while the process default backend, from
    ``XPNN_BACKEND`` or :func:`set_backend`, is another library and no
    :func:`use_backend` block is active (a block is a deliberate, local
    choice). After the first note, or for any other array, it is one type
    check and one flag read.
    """
    global _unused_noted
    if _unused_noted or type(x) is not np.ndarray or _active.get() is not None:
        return
    if _default is not None:
        chosen, how = _default.name, _default_source
    elif _env_spec is not None:
        chosen, how = _env_spec.partition(":")[0].strip().lower(), f"{ENV_VAR}={_env_spec}"
    else:
        return
    if chosen == "numpy":
        return
    _unused_noted = True
    warnings.warn(
        SelectionUnusedWarning(
            f"xpnn: {how} selected {chosen}, but this call's data is a NumPy array, so it "
            "computes on NumPy (xpnn's math follows the data; the selection decides where new "
            f"arrays go). To compute on {chosen}, make the data with xpnn (xpnn.asarray(x), "
            "xpnn.zeros, load_mnist(), a model's own parameters). Said once."
        ),
        stacklevel=_caller_level(),
    )


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside xpnn: the user's line that called it."""
    frame, level = sys._getframe(2), 2  # the caller of note_selection_unused
    while frame is not None and frame.f_globals.get("__name__", "").startswith("xpnn."):
        frame, level = frame.f_back, level + 1
    return level


def _reset_for_tests(env_spec: str | None = None, env_dtype: str | None = None) -> None:
    """Forget the process default and re-read ``XPNN_BACKEND`` and ``XPNN_DTYPE`` values."""
    global _default, _env_spec, _env_dtype, _unused_noted
    _unused_noted = False
    with _default_lock:
        _default = None
        _env_spec = env_spec or None
        _env_dtype = env_dtype or None

"""The two errors of the backend layer, raised by several of its modules.

:class:`BackendUnavailableError` is raised when a backend is opened
(:mod:`xpnn.backend.openers`), :class:`BackendMismatchError` when arrays of
different backends or devices meet (:mod:`xpnn.backend.namespace`).
"""

from __future__ import annotations

__all__ = ["BackendMismatchError", "BackendUnavailableError"]


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

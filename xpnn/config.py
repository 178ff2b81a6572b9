"""The book's ``common/config.py``: ``GPU``, read and set through xpnn's backend.

Vol. 2's scripts import ``from common import config`` and branch on
``config.GPU``: when it is True their arrays are CuPy's, and they call
``to_gpu`` on data and ``to_cpu`` on results (``word_vecs =
to_cpu(word_vecs)`` before ``word_vecs.astype(np.float16)``). With ``from
xpnn import config`` those branches do the right thing on every backend:

* reading ``config.GPU`` says whether xpnn's active backend keeps its arrays
  outside NumPy (CuPy, PyTorch on any device, array-api-strict): exactly when
  ``to_cpu`` is needed before NumPy code touches them;
* setting ``config.GPU = True`` (the book's switch) selects CuPy on its first
  GPU, as ``xpnn.set_backend("cupy")`` does, and raises the backend's error
  (what is missing and how to install it) where CuPy cannot run, never a
  silent CPU run; ``config.GPU = False`` selects NumPy.

xpnn's own choice of backend (``XPNN_BACKEND``, ``xpnn.set_backend``,
``xpnn.use_backend``) is the usual way; this module only answers scripts
written for the book's switch.
"""

from __future__ import annotations

import sys
import types

from xpnn.backend import get_backend, set_backend

__all__ = ["GPU"]  # noqa: F822 - a property of the module's class


class _Config(types.ModuleType):
    """The module's class: ``GPU`` is computed from, and written to, the backend."""

    @property
    def GPU(self) -> bool:
        return get_backend().name != "numpy"

    @GPU.setter
    def GPU(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"config.GPU is True or False, got {value!r}")
        set_backend("cupy" if value else "numpy")


sys.modules[__name__].__class__ = _Config

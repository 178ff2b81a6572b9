"""The book's ``config.GPU`` switch and ``to_cpu``/``to_gpu``, answered by xpnn's backend.

Vol. 2's ``ch04/train.py`` branches on ``config.GPU`` to move data with
``to_gpu`` and results back with ``to_cpu`` before NumPy code; with ``from
xpnn import config`` and ``from xpnn.util import to_cpu, to_gpu`` those
branches run exactly where the arrays are not NumPy's.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import config
from xpnn.util import to_cpu, to_gpu


def test_gpu_says_whether_arrays_need_to_cpu(backend):
    with xpnn.use_backend(backend.spec):
        assert config.GPU is (backend.name != "numpy")
        x = to_gpu(np.arange(6, dtype=np.float32).reshape(2, 3))
        assert xpnn.backend_of(x) == xpnn.get_backend()
        host = to_cpu(x)
        assert type(host) is np.ndarray and host.dtype == np.float32
        np.testing.assert_array_equal(host, np.arange(6).reshape(2, 3))
        # The book's train.py: word_vecs = to_cpu(word_vecs) if config.GPU, then NumPy's astype.
        word_vecs = to_cpu(x) if config.GPU else x
        assert word_vecs.astype(np.float16).dtype == np.float16


def test_setting_gpu_selects_cupy_or_says_why_not():
    before = xpnn.get_backend()
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(xpnn.BackendUnavailableError, match="cupy"):
            config.GPU = True
        assert xpnn.get_backend() == before  # nothing changed, no silent CPU run
    with pytest.raises(TypeError, match="True or False"):
        config.GPU = 1
    try:
        config.GPU = False
        assert xpnn.get_backend().name == "numpy" and config.GPU is False
    finally:
        xpnn.set_backend(before.spec)

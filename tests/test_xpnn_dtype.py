"""``XPNN_DTYPE``: the default backend's float dtype, for the book's float64 numerics.

A book script ported by its imports makes its own data with NumPy (float64,
e.g. vol. 2's ``np.c_[...]`` grid for the decision boundary) and builds the
book's models without a dtype: with ``XPNN_DTYPE=float64`` the models are
float64 too and the script runs as the book's, unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import xpnn
from xpnn.backend import selection

SCRIPT = """
import numpy as np
import xpnn
net = xpnn.LayeredTwoLayerNet(2, 5, 3, seed=0)
xx, yy = np.meshgrid(np.arange(-1, 1, 0.5), np.arange(-1, 1, 0.5))
X = np.c_[xx.ravel(), yy.ravel()]            # float64, as the book's grid
score = net.predict(xpnn.asarray(X))
print(xpnn.get_backend().spec, net.params[0].dtype, score.dtype, tuple(score.shape))
"""


def _run(env_dtype, backend=None):
    env = {k: v for k, v in os.environ.items() if k not in ("XPNN_DTYPE", "XPNN_BACKEND")}
    if env_dtype is not None:
        env["XPNN_DTYPE"] = env_dtype
    if backend is not None:
        env["XPNN_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("backend", [None, "array_api_strict", "torch:cpu"])
def test_xpnn_dtype_float64_runs_the_books_float64_data_unchanged(backend):
    if backend:
        pytest.importorskip(backend.split(":")[0])
    out = _run("float64", backend)
    assert out.returncode == 0, out.stderr
    spec, w_dtype, score_dtype, shape = out.stdout.split(maxsplit=3)
    assert spec.startswith(backend or "numpy")
    assert "float64" in w_dtype and "float64" in score_dtype
    assert shape.strip() == "(16, 3)"


def test_without_it_a_float64_grid_is_refused_by_a_float32_model():
    out = _run(None)
    assert out.returncode != 0
    assert "float32" in out.stderr and "float64" in out.stderr and "TypeError" in out.stderr


def test_a_bad_value_names_the_variable_at_first_use_not_at_import():
    selection._reset_for_tests(None, "float128")
    with pytest.raises(ValueError, match=r"XPNN_DTYPE='float128'.*XPNN_DTYPE=float64"):
        xpnn.get_backend()
    selection._reset_for_tests(None, "float64")
    assert xpnn.get_backend().float_dtype == xpnn.get_backend().xp.float64
    assert xpnn.zeros(2).dtype == xpnn.get_backend().xp.float64


def test_an_explicit_backend_choice_keeps_its_own_dtype():
    selection._reset_for_tests(None, "float64")
    with xpnn.use_backend("numpy") as b:
        assert b.float_dtype == b.xp.float32  # use_backend(dtype=...) decides there

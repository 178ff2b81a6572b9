"""G8: a backend selected for the process but never used says so, once.

xpnn's math follows the data; ``XPNN_BACKEND``/``set_backend`` only decide where
new arrays go. A book script ported by its imports that makes its data with
``np`` therefore runs on NumPy whatever the selection: the first math call on
NumPy data under a non-NumPy selection warns (``SelectionUnusedWarning``), once.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnn
from xpnn.backend import SelectionUnusedWarning
from xpnn.backend import selection as _selection
from xpnn.functions import cross_entropy_error, softmax
from xpnn.gradient import numerical_gradient
from xpnn.layers import Affine
from xpnn.optimizers import SGD


def _env(spec):
    """As if the process had started with XPNN_BACKEND=spec (nothing opened yet)."""
    _selection._reset_for_tests(env_spec=spec)


def _quiet(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SelectionUnusedWarning)
        return call()


def test_numpy_data_under_another_selected_backend_is_noted_once(monkeypatch):
    _env("array_api_strict")
    x = np.array([[1.0, 2.0, 0.5]])
    with pytest.warns(
        SelectionUnusedWarning, match=r"XPNN_BACKEND=array_api_strict selected"
    ) as seen:
        y = softmax(x)
    assert len(seen) == 1
    assert "xpnn.asarray(x)" in str(seen[0].message)
    assert type(y) is np.ndarray  # it still computes, on NumPy, as the data says
    _quiet(lambda: cross_entropy_error(softmax(x), np.array([1])))  # said once only


@pytest.mark.parametrize(
    "call",
    [
        lambda x: numerical_gradient(lambda w: float(np.sum(w**2)), x),
        lambda x: Affine(np.ones((3, 2)), np.zeros(2)).forward(x),
        lambda x: SGD().update({"W": x}, {"W": np.ones_like(x)}),
    ],
    ids=["numerical_gradient", "layer_forward", "optimizer_update"],
)
def test_every_math_entry_point_notes_it(monkeypatch, call):
    xpnn.set_backend("array_api_strict")
    _selection._unused_noted = False
    with pytest.warns(SelectionUnusedWarning, match=r"set_backend\('array_api_strict'\) selected"):
        call(np.ones((1, 3)))


def test_no_note_where_the_selection_is_used_or_numpy(monkeypatch):
    x = np.array([[1.0, 2.0]])
    _env(None)  # nothing selected: NumPy
    _quiet(lambda: softmax(x))
    _env("numpy")
    _quiet(lambda: softmax(x))
    _env("array_api_strict")
    _quiet(lambda: softmax(xpnn.asarray(x)))  # data made with xpnn: on the selected backend
    with xpnn.use_backend("array_api_strict"):  # a local, deliberate choice
        _quiet(lambda: softmax(x))
    assert not _selection._unused_noted


def test_the_note_names_the_users_line_and_python_numbers_stay_quiet():
    xpnn.set_backend("array_api_strict")
    _selection._unused_noted = False
    _quiet(lambda: SGD().update({"x": 1.0}, {"x": 2.0}))  # host numbers, not NumPy data
    with pytest.warns(SelectionUnusedWarning) as seen:
        Affine(np.ones((3, 2)), np.zeros(2)).forward(np.ones((1, 3)))
    assert seen[0].filename == __file__  # this line, not a line inside xpnn

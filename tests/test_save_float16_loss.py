"""Saving in a narrower dtype says what it loses (issue 23, item 5).

``xpnn.io.save(net, path, dtype="float16")`` stores a nonzero value of
``|x| <= 2**-25`` (about 2.98e-08) as 0 and one below ``2**-14`` (about
6.10e-05) as a subnormal number, with fewer significant bits: one
``PrecisionLossWarning`` names each array and its counts; ``strict=True``
refuses (``PrecisionLossError``, a ValueError) and writes nothing.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import xpnn
from xpnn.io import ModelFileError, PrecisionLossError, PrecisionLossWarning, load, save
from xpnn.io.checks import lost_values
from xpnn.layers import Affine, Relu, SoftmaxWithLoss
from xpnn.models import LayeredNet

F16_FLUSH = 2.0**-25  # half float16's smallest subnormal: the tie rounds to even, 0
F16_NORMAL = 2.0**-14  # float16's smallest normal


def affine_net(w, b, dtype="float32"):
    """A one-layer LayeredNet holding exactly ``w`` (4, 3) and ``b`` (3,)."""
    layer = Affine(xpnn.asarray(np.asarray(w, dtype)), xpnn.asarray(np.asarray(b, dtype)))
    return LayeredNet([layer, Relu()], SoftmaxWithLoss(), 4)


def lossy_values():
    """Values of every kind: 3 that float16 stores as 0, 3 as subnormal, the rest kept."""
    w = np.full((4, 3), 0.5, np.float32)
    w[0] = [1e-9, -2.9e-8, F16_FLUSH]  # flushed; 2**-25 itself is a tie, rounded to 0
    w[1] = [3e-8, -1e-5, F16_NORMAL]  # 3e-8 rounds up to 2**-24 (subnormal), not to 0
    below = np.nextafter(np.float32(F16_NORMAL - F16_FLUSH), np.float32(0))
    w[2] = [F16_NORMAL - F16_FLUSH, below, 0.0]  # a tie up to 2**-14 (normal); subnormal
    return w, np.array([0.0, -0.0, 1e-9], np.float32)


def saved_with_warnings(net, path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        saved = save(net, path, **kwargs)
    return saved, [w for w in caught if issubclass(w.category, PrecisionLossWarning)]


def test_values_float16_stores_as_0_or_subnormal_are_counted_by_name(backend, tmp_path):
    w, b = lossy_values()
    path, caught = saved_with_warnings(affine_net(w, b), tmp_path / "n.npz", dtype="float16")
    assert len(caught) == 1  # one warning for the whole file
    message = str(caught[0].message)
    assert message.startswith("saving as float16 loses values")
    assert "layers.0.W: 3 of 12 flush to 0, 3 become subnormal" in message
    assert "layers.0.b: 1 of 3 flushes to 0" in message
    assert "|x| <= 2.98e-08 as 0" in message and "|x| < 6.10e-05 as subnormal" in message
    assert "dtype='float32'" in message and "strict=True" in message
    assert caught[0].filename == __file__  # points at the caller's save(...)
    # Written all the same, as the counts say.
    loaded = xpnn.to_numpy(xpnn.io._file_arrays(load(path))["layers.0.W"])
    assert np.count_nonzero(loaded == 0) == 3 + 1  # the three flushed, and the 0.0
    np.testing.assert_array_equal(loaded, w.astype(np.float16).astype(np.float32))


def test_the_books_1e_9_saved_as_float16_is_named(tmp_path):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    net.params["b2"][...] = xpnn.asarray(np.array([1e-9, 0.25], np.float32))
    with pytest.warns(PrecisionLossWarning, match=r"b2: 1 of 2 flushes to 0"):
        save(net, tmp_path / "n.npz", dtype="float16")


def test_strict_refuses_before_writing_and_leaves_a_file_as_it_was(backend, tmp_path):
    w, b = lossy_values()
    net = affine_net(w, b)
    with pytest.raises(PrecisionLossError, match=r"strict=True.*layers\.0\.W: 3 of 12") as err:
        save(net, tmp_path / "n.npz", dtype="float16", strict=True)
    assert isinstance(err.value, ValueError) and not isinstance(err.value, ModelFileError)
    assert "nothing was written" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no file, no .part
    before = save(net, tmp_path / "n.npz").read_bytes()  # float32: nothing lost
    with pytest.raises(PrecisionLossError):
        save(net, tmp_path / "n.npz", dtype="float16", strict=True)
    assert (tmp_path / "n.npz").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["n.npz"]


def test_values_float16_holds_exactly_give_no_warning(backend, tmp_path):
    w = np.array([[0.5, -2.0, F16_NORMAL], [65504.0, -65504.0, 1.0 / 3], [0.0, -0.0, 1e-3]] * 2)
    net = affine_net(w[:4], np.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionLossWarning)
        save(net, tmp_path / "a.npz", dtype="float16")  # 1/3 and 1e-3 rounded: normal, kept
        save(net, tmp_path / "b.npz", dtype="float16", strict=True)
        lossy = affine_net(*lossy_values())
        save(lossy, tmp_path / "c.npz")  # stored in its own dtype: nothing lost
        save(lossy, tmp_path / "d.npz", dtype="float64", strict=True)  # wider: nothing lost


def test_float64_stored_as_float32_uses_float32s_boundaries(tmp_path):
    with xpnn.use_backend("numpy", dtype="float64"):
        net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    net.params["W1"][0, :3] = [1e-46, 1e-40, 1e-300]  # 0, subnormal, 0 in float32
    with pytest.warns(PrecisionLossWarning) as caught:
        save(net, tmp_path / "n.npz", dtype="float32")
    message = str(caught[0].message)
    assert "saving as float32 loses values" in message
    assert "W1: 2 of 12 flush to 0, 1 becomes subnormal" in message
    assert "|x| <= 7.01e-46 as 0" in message and "|x| < 1.18e-38 as subnormal" in message


@pytest.mark.parametrize(
    ("host", "store"), [("float32", "float16"), ("float64", "float16"), ("float64", "float32")]
)
def test_the_boundaries_in_the_message_are_numpys_rounding(host, store):
    info = np.finfo(store)
    flush = float(info.smallest_subnormal) / 2
    normal = float(info.smallest_normal) - flush
    edges = [flush, normal, float(info.smallest_subnormal), float(info.smallest_normal)]
    values = [0.0]
    for edge in edges:
        e = np.asarray(edge, host)
        values += [e, np.nextafter(e, np.asarray(0, host)), np.nextafter(e, np.asarray(1, host))]
    a = np.asarray(values + [-v for v in values], host)
    stored = a.astype(store)
    # The message's rule: flushed iff 0 < |x| <= flush; subnormal iff flush < |x| < normal.
    size = np.abs(a)
    assert lost_values(a, stored) == (
        int(np.count_nonzero((size > 0) & (size <= flush))),
        int(np.count_nonzero((size > flush) & (size < normal))),
    )
    assert np.all((stored == 0) == (size <= flush))


def test_a_bfloat16_model_stored_as_float16_is_checked_as_float32(tmp_path):
    torch = pytest.importorskip("torch")
    with xpnn.use_backend("torch:cpu", dtype="bfloat16"):
        net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
        net.params["b1"][...] = torch.tensor([1e-9, 1e-6, 0.5], dtype=torch.bfloat16)
        with pytest.warns(PrecisionLossWarning, match=r"b1: 1 of 3 flushes to 0, 1 becomes"):
            save(net, tmp_path / "n.npz", dtype="float16")
        with warnings.catch_warnings():
            warnings.simplefilter("error", PrecisionLossWarning)
            save(net, tmp_path / "m.npz")  # float32: every bfloat16 value exactly


def test_the_command_line_prints_the_warning(tmp_path):
    saved = tmp_path / "x.npz"
    argv = ["train", "--quiet", "--epochs", "3", "--lr", "0.1", "--hidden", "500"]
    argv += ["--save", str(saved), "--save-dtype", "float16"]
    out = subprocess.run(
        [sys.executable, "-m", "xpnn", *argv], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    # The two-layer net's weights start at 0.01 * N(0, 1): some below 6.1e-05.
    assert "PrecisionLossWarning: saving as float16 loses values" in out.stderr
    assert "become subnormal" in out.stderr and "params.0: " in out.stderr
    assert "(float16)" in out.stdout and saved.exists()

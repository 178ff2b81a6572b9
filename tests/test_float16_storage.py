"""Storing a model in float16, the book's way (vol. 2, section 1.5), on every backend.

``xpnn.io.save(net, path, dtype="float16")`` rounds the arrays on the host and
records the model's own dtype as ``compute_dtype``; ``load`` rebuilds the
model in it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnn
from xpnn.io import ModelFileError, load, save
from xpnn.layers import Affine, Relu, SoftmaxWithLoss
from xpnn.models import LayeredNet

# The book's weights (0.01 * randn) always have some below float16's smallest
# normal number: saving them warns (PrecisionLossWarning, tested in
# tests/test_save_float16_loss.py). Here the size and the accuracy are checked.
pytestmark = pytest.mark.filterwarnings("ignore::xpnn.io.PrecisionLossWarning")


def host_params(model):
    return {
        k: np.array(xpnn.to_numpy(v), copy=True) for k, v in xpnn.io._file_arrays(model).items()
    }


def file_meta(path):
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["__xpnn__"]))


def stored_dtypes(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k].dtype.name for k in data.files if k != "__xpnn__"}


def rewrite_meta(path, **changes):
    """Rewrite a saved file's metadata: ``key=value`` sets, ``key=None`` removes."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["__xpnn__"]))
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    arrays["__xpnn__"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    return path


def has_float16(backend):
    return backend.name != "array_api_strict"


def test_float16_storage_halves_the_file_and_loads_as_float32(backend, tmp_path):
    net = xpnn.TwoLayerNet(784, 50, 10, seed=0)
    assert xpnn.io._file_arrays(net)["W1"].dtype == backend.xp.float32
    wide = save(net, tmp_path / "f32.npz")
    half = save(net, tmp_path / "f16.npz", dtype="float16")
    assert half.stat().st_size / wide.stat().st_size < 0.6
    meta = file_meta(half)
    assert (meta["dtype"], meta["compute_dtype"]) == ("float16", "float32")
    assert set(stored_dtypes(half).values()) == {"float16"}
    assert (file_meta(wide)["dtype"], file_meta(wide)["compute_dtype"]) == ("float32", "float32")

    loaded = load(half)
    original = host_params(net)
    for key, p in xpnn.io._file_arrays(loaded).items():
        assert p.dtype == backend.xp.float32, key
        assert xpnn.backend_of(p) == backend
        expected = original[key].astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(xpnn.to_numpy(p), expected, err_msg=key)
    # Rounded indeed: float16 keeps 11 significant bits, not float32's 24.
    assert not np.array_equal(xpnn.to_numpy(loaded.params["W1"]), original["W1"])


def test_the_books_claim_float16_weights_keep_the_accuracy(tmp_path):
    (x, t), (x_test, t_test) = xpnn.datasets.load_mnist5k()
    net = xpnn.TwoLayerNet(784, 50, 10, seed=0)
    trainer = xpnn.Trainer(net, xpnn.optimizers.SGD(lr=0.5))
    trainer.fit(x, t, max_epoch=10, batch_size=100, verbose=False, progress=False)
    full = float(xpnn.to_numpy(net.accuracy(x_test, t_test)))
    assert full > 0.8  # a trained net, or the comparison says nothing
    loaded = load(save(net, tmp_path / "net.npz", dtype="float16"))
    assert loaded.params["W1"].dtype == np.float32
    half = float(xpnn.to_numpy(loaded.accuracy(x_test, t_test)))
    assert abs(half - full) <= 0.001


@pytest.mark.parametrize("dtype", ["float16", np.float16, np.dtype("float16")])
def test_the_storage_dtype_may_be_a_name_or_a_numpy_dtype(tmp_path, dtype):
    path = save(xpnn.TwoLayerNet(4, 3, 2, seed=0), tmp_path / "n.npz", dtype=dtype)
    assert file_meta(path)["dtype"] == "float16"


def test_storage_wider_than_the_model(tmp_path):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    path = save(net, tmp_path / "n.npz", dtype="float64")
    assert (file_meta(path)["dtype"], file_meta(path)["compute_dtype"]) == ("float64", "float32")
    loaded = load(path)
    assert loaded.params["W1"].dtype == np.float32
    for key, value in host_params(net).items():
        np.testing.assert_array_equal(host_params(loaded)[key], value)


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: xpnn.TwoLayerNet(4, 3, 2, seed=0), "b1"),
        (
            lambda: LayeredNet(
                [Affine(xpnn.zeros((4, 3)), xpnn.zeros(3)), Relu()], SoftmaxWithLoss(), 4
            ),
            "layers.0.W",
        ),
    ],
    ids=["TwoLayerNet", "LayeredNet"],
)
def test_values_beyond_float16_are_refused_by_name_and_nothing_is_written(
    backend, tmp_path, make, key
):
    net = make()
    arrays = xpnn.io._file_arrays(net)
    values = host_params(net)[key]
    values.flat[-1] = -1e5
    arrays[key][...] = xpnn.asarray(values)
    with pytest.raises(ValueError, match=rf"{key} holds values up to 100000 in magnitude") as err:
        save(net, tmp_path / "n.npz", dtype="float16")
    assert "65504" in str(err.value) and "dtype='float32'" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no file, no .part
    # An existing file is left as it was.
    before = save(xpnn.TwoLayerNet(4, 3, 2, seed=1), tmp_path / "n.npz").read_bytes()
    with pytest.raises(ValueError, match=key):
        save(net, tmp_path / "n.npz", dtype="float16")
    assert (tmp_path / "n.npz").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["n.npz"]
    # float32 holds it: saved and loaded exactly.
    loaded = load(save(net, tmp_path / "n.npz", dtype="float32"))
    assert xpnn.to_numpy(xpnn.io._file_arrays(loaded)[key]).flat[-1] == -1e5


def test_the_largest_float16_is_stored_and_beyond_rounding_range_is_refused(tmp_path):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    net.params["W2"][0, 0] = 65504.0
    net.params["W2"][0, 1] = 65519.0  # rounds down to 65504, not to infinity
    net.params["b2"][0] = 1e-9  # underflows to 0: rounding, accepted
    loaded = load(save(net, tmp_path / "n.npz", dtype="float16"))
    w2 = xpnn.to_numpy(loaded.params["W2"])
    assert w2[0, 0] == w2[0, 1] == 65504.0
    assert xpnn.to_numpy(loaded.params["b2"])[0] == 0.0
    net.params["W2"][0, 1] = 65520.0  # the first value float16 rounds to infinity
    with pytest.raises(ValueError, match="W2 holds values up to 65520"):
        save(net, tmp_path / "m.npz", dtype="float16")
    assert not (tmp_path / "m.npz").exists()


def test_float64_values_beyond_float32_are_refused_with_the_fix(tmp_path):
    with xpnn.use_backend("numpy", dtype="float64"):
        net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    net.params["W1"][1, 2] = 1e300
    with pytest.raises(ValueError, match=r"W1 holds values up to 1e\+300.*dtype='float64'"):
        save(net, tmp_path / "n.npz", dtype="float32")
    assert list(tmp_path.iterdir()) == []


def test_nonfinite_values_are_stored_as_in_a_plain_save(tmp_path):
    # save() stores NaN as it is, whatever the storage dtype; load() refuses it.
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    net.params["W1"][0, 0] = np.nan
    net.params["W1"][0, 1] = np.inf
    for dtype in (None, "float16"):
        path = save(net, tmp_path / f"{dtype}.npz", dtype=dtype)
        with pytest.raises(ModelFileError, match="W1 holds NaN or infinite values"):
            load(path)
        w1 = xpnn.to_numpy(load(path, allow_nonfinite=True).params["W1"])
        assert np.isnan(w1[0, 0]) and w1[0, 1] == np.inf


@pytest.mark.parametrize(
    ("dtype", "match"),
    [
        ("bfloat16", "no bfloat16; store in float16 or float32"),
        ("int8", "must be one of float16, float32, float64"),
        ("float8", "must be one of float16, float32, float64"),
        (np.int32, "must be one of float16, float32, float64"),
        (3, "must be one of float16, float32, float64"),
    ],
)
def test_storage_dtypes_that_a_file_cannot_hold_are_refused(tmp_path, dtype, match):
    with pytest.raises(ValueError, match=match):
        save(xpnn.TwoLayerNet(4, 3, 2, seed=0), tmp_path / "n.npz", dtype=dtype)
    assert list(tmp_path.iterdir()) == []


def test_explicit_dtype_wins_over_the_compute_dtype(backend, tmp_path):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    path = save(net, tmp_path / "n.npz", dtype="float16")
    assert load(path, dtype="float64").params["W1"].dtype == backend.xp.float64
    if has_float16(backend):
        loaded = load(path, dtype="float16")
        assert loaded.params["W1"].dtype == backend.xp.float16
        expected = host_params(net)["W1"].astype(np.float16)
        np.testing.assert_array_equal(xpnn.to_numpy(loaded.params["W1"]), expected)
    else:
        with pytest.raises(ValueError, match=r"no float16.*dtype='float32'") as err:
            load(path, dtype="float16")
        assert not isinstance(err.value, ModelFileError)


@pytest.mark.parametrize("bad", ["float8", 3, "object", "int8", ["float32"], False, ""])
def test_a_bad_compute_dtype_is_refused(tmp_path, bad):
    path = save(xpnn.TwoLayerNet(4, 3, 2, seed=0), tmp_path / "n.npz", dtype="float16")
    rewrite_meta(path, compute_dtype=bad)
    with pytest.raises(ModelFileError, match=r"n\.npz: corrupt metadata: compute_dtype") as err:
        load(path)
    assert repr(bad)[:20] in str(err.value)


def test_a_null_compute_dtype_is_refused(tmp_path):
    path = save(xpnn.TwoLayerNet(4, 3, 2, seed=0), tmp_path / "n.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["__xpnn__"]))
    meta["compute_dtype"] = None
    arrays["__xpnn__"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="compute_dtype None"):
        load(path)


def test_a_file_without_compute_dtype_loads_in_its_stored_dtype(backend, tmp_path):
    # Files of xpnn before compute_dtype: loaded as they always were.
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    path = rewrite_meta(save(net, tmp_path / "n.npz", dtype="float16"), compute_dtype=None)
    assert "compute_dtype" not in file_meta(path)
    if has_float16(backend):
        assert load(path).params["W1"].dtype == backend.xp.float16
    else:
        with pytest.raises(ValueError, match=r"holds float16 parameters.*dtype='float32'"):
            load(path)
    old = rewrite_meta(save(net, tmp_path / "o.npz"), compute_dtype=None)
    assert load(old).params["W1"].dtype == backend.xp.float32


def test_a_compute_dtype_the_backend_lacks_says_to_pass_dtype(backend, tmp_path):
    net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    path = rewrite_meta(save(net, tmp_path / "n.npz"), compute_dtype="float16")
    if has_float16(backend):
        assert load(path).params["W1"].dtype == backend.xp.float16
    else:
        with pytest.raises(ValueError, match=r"a float16 model.*dtype='float32'") as err:
            load(path)
        assert not isinstance(err.value, ModelFileError)
        assert load(path, dtype="float32").params["W1"].dtype == backend.xp.float32
    rewrite_meta(path, compute_dtype="bfloat16")
    if backend.name == "torch":
        assert load(path).params["W1"].dtype == backend.xp.bfloat16
    else:
        with pytest.raises(ValueError, match=r"no bfloat16.*dtype='float32'") as err:
            load(path)
        assert not isinstance(err.value, ModelFileError)


def test_a_bfloat16_model_saves_and_loads_as_bfloat16(tmp_path):
    torch = pytest.importorskip("torch")
    with xpnn.use_backend("torch:cpu", dtype="bfloat16"):
        net = xpnn.TwoLayerNet(20, 10, 3, seed=0)
        assert net.params["W1"].dtype == torch.bfloat16
        original = host_params(net)  # float32: every bfloat16 value exactly
        exact = save(net, tmp_path / "exact.npz")  # float32 storage, lossless
        half = save(net, tmp_path / "half.npz", dtype="float16")
        with pytest.raises(ValueError, match="store in float16 or float32"):
            save(net, tmp_path / "bf.npz", dtype="bfloat16")
        for path, stored in ((exact, "float32"), (half, "float16")):
            meta = file_meta(path)
            assert (meta["dtype"], meta["compute_dtype"]) == (stored, "bfloat16")
            assert set(stored_dtypes(path).values()) == {stored}
            for loaded in (load(path), load(path, dtype="bfloat16")):
                assert loaded.params["W1"].dtype == torch.bfloat16
        for key, value in host_params(load(exact)).items():
            np.testing.assert_array_equal(value, original[key], err_msg=key)
        rounded = {
            k: torch.from_numpy(v.astype(np.float16)).bfloat16() for k, v in original.items()
        }
        for key, value in host_params(load(half)).items():
            np.testing.assert_array_equal(value, rounded[key].float().numpy(), err_msg=key)
    # NumPy has no bfloat16: the fix is dtype=.
    with pytest.raises(ValueError, match=r"bfloat16 model.*no bfloat16.*dtype='float32'"):
        load(exact)
    loaded = load(exact, dtype="float32")
    for key, value in host_params(loaded).items():
        np.testing.assert_array_equal(value, original[key], err_msg=key)


def test_load_params_and_a_bfloat16_model(tmp_path):
    # load_params converts on the host too: NumPy has no bfloat16 to convert to.
    torch = pytest.importorskip("torch")
    with xpnn.use_backend("torch:cpu", dtype="bfloat16"):
        net = xpnn.TwoLayerNet(4, 3, 2, seed=0)
    arrays = {k: np.full(v.shape, 1.5, np.float32) for k, v in host_params(net).items()}
    xpnn.io.load_params(net, arrays)
    assert net.params["W1"].dtype == torch.bfloat16
    assert float(net.params["W1"][0, 0]) == 1.5
    overflow = np.float32(float.fromhex("0x1.ffp127"))  # rounds to infinity in bfloat16
    arrays["b1"][0] = np.nextafter(overflow, np.float32(0))  # rounds to its largest value
    xpnn.io.load_params(net, arrays)
    assert float(net.params["b1"][0]) == float(torch.finfo(torch.bfloat16).max)
    arrays["b1"][0] = overflow
    with pytest.raises(
        ModelFileError, match=r"b1 holds values up to 3.4e\+38, beyond the bfloat16"
    ):
        xpnn.io.load_params(net, arrays)

"""Explicit transfers: ``xpnn.asarray`` (host -> backend) and ``xpnn.to_numpy`` (back).

Tests taking the ``backend`` / ``xp`` fixtures run on every backend (see
conftest.py); array_api_strict runs on its simulated "device1", which refuses
``np.asarray`` like a GPU does, so a transfer that is not explicit fails there.
"""

from __future__ import annotations

import math

import array_api_compat
import numpy as np
import pytest

import xpnn
from xpnn import backend as B

DTYPES = ["float32", "float64", "int64", "uint8", "bool"]
SHAPES = [pytest.param((), id="0d"), pytest.param((0, 3), id="empty")]
SHAPES += [pytest.param((7,), id="1d"), pytest.param((3, 4), id="2d")]

# Backends that other backends' arrays come from (skipped where they cannot run).
SOURCE_SPECS = ["numpy", "array_api_strict:device1", "array_api_strict:CPU_DEVICE", "torch:cpu"]


# ------------------------------------------------------------------ helpers


def host_data(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Distinct, exactly representable values of ``dtype``, shaped ``shape``."""
    n = math.prod(shape)
    i = np.arange(n)
    if dtype.startswith("float"):
        values = (i - n / 2) * 0.375 + 1 / 3  # 1/3 differs between float32 and float64
    elif dtype == "int64":
        values = (i - n // 2) * 10**12  # beyond int32
    elif dtype == "uint8":
        values = (i * 37 + 200) % 256  # 200..255 and wraps past 0
    else:
        values = i % 3 == 0
    return np.asarray(values, dtype=dtype).reshape(shape)


def open_or_skip(spec: str) -> xpnn.Backend:
    """Open a backend other than the one under test, or skip if it cannot run here."""
    try:
        return B._open(spec)
    except xpnn.BackendUnavailableError as exc:
        pytest.skip(f"{spec} cannot run here: {exc.reason}")


def assert_on(x, backend: xpnn.Backend) -> None:
    """``x`` is an array of ``backend``'s namespace on ``backend``'s device."""
    assert xpnn.get_namespace(x) is backend.xp
    assert array_api_compat.device(x) == backend.device


def assert_round_trip(x, backend: xpnn.Backend, expected: np.ndarray) -> None:
    """``x`` lives on ``backend`` and comes back to the host equal to ``expected``."""
    assert_on(x, backend)
    back = xpnn.to_numpy(x)
    assert type(back) is np.ndarray
    assert back.dtype == expected.dtype
    assert back.shape == expected.shape
    np.testing.assert_array_equal(back, expected, strict=True)


# --------------------------------------------------------------- round trips


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_keeps_values_dtype_and_shape(backend, xp, dtype, shape):
    host = host_data(dtype, shape)
    # float64 must be asked for; the others keep their dtype by default.
    x = xpnn.asarray(host, dtype="float64" if dtype == "float64" else None)
    assert x.dtype == getattr(xp, dtype)
    assert_round_trip(x, backend, host)


def test_float32_on_request_rounds_float64_data_like_numpy(backend):
    host = host_data("float64", (5,))
    x = xpnn.asarray(host, dtype="float32")
    assert_round_trip(x, backend, host.astype(np.float32))


def test_round_trip_of_a_device_array_made_by_the_backend(backend, xp):
    x = xp.reshape(xp.arange(12, dtype=xp.int64, device=backend.device), (3, 4))
    assert_round_trip(x, backend, np.arange(12, dtype=np.int64).reshape(3, 4))


# ---------------------------------------------------------------- dtype policy


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([0.5, -1.25], id="float-list"),
        pytest.param(0.5, id="float-scalar"),
    ],
)
def test_untyped_float_data_takes_the_backend_float_dtype(backend, xp, data):
    x = xpnn.asarray(data)
    assert x.dtype == backend.float_dtype == xp.float32
    assert_round_trip(x, backend, np.asarray(data, dtype=np.float32))


@pytest.mark.parametrize(
    ("data", "dtype"),
    [
        pytest.param(np.array([0.5, -1.25]), "float64", id="float64-array"),
        pytest.param(np.array([0.5, -1.25], dtype=np.float32), "float32", id="float32-array"),
        pytest.param(np.float64(1 / 3), "float64", id="numpy-float64-scalar"),
        pytest.param(np.float32(0.5), "float32", id="numpy-float32-scalar"),
    ],
)
def test_typed_float_data_keeps_its_dtype(backend, xp, data, dtype):
    # As numpy.asarray, cupy.asarray and torch.asarray: float64 stays float64.
    x = xpnn.asarray(data)
    assert x.dtype == getattr(xp, dtype)
    assert_round_trip(x, backend, np.asarray(data))


def test_float16_data_keeps_its_dtype_where_the_backend_has_it(backend, xp):
    data = np.array([0.5, 65504.0, 2.0**-24], dtype=np.float16)
    if backend.name == "array_api_strict":
        # The standard defines no half floats: say so, and where to find them.
        with pytest.raises(ValueError, match="Array API standard defines float32 and float64"):
            xpnn.asarray(data)
        return
    x = xpnn.asarray(data)
    assert x.dtype == xp.float16
    assert_round_trip(x, backend, data)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_float_dtypes_resolve_where_the_library_has_them(backend, xp, dtype):
    has = {"numpy": ("float16",), "cupy": ("float16",), "torch": ("float16", "bfloat16")}
    if dtype in has.get(backend.name, ()):
        x = xpnn.asarray([0.25, -3.0], dtype=dtype)
        assert x.dtype == getattr(xp, dtype)
        np.testing.assert_array_equal(xpnn.to_numpy(x), [0.25, -3.0])
        assert xpnn.to_numpy(x).dtype == np.dtype("float32" if dtype == "bfloat16" else dtype)
    else:
        with pytest.raises(ValueError, match=f"has no {dtype}.*use the"):
            xpnn.asarray([0.25], dtype=dtype)


@pytest.mark.parametrize(
    ("data", "dtype"),
    [
        pytest.param(np.array([1, -2], dtype=np.int64), "int64", id="int64-array"),
        pytest.param(np.array([1, -2], dtype=np.int32), "int32", id="int32-array"),
        pytest.param(np.array([1, 255], dtype=np.uint8), "uint8", id="uint8-array"),
        pytest.param(np.array([True, False]), "bool", id="bool-array"),
        pytest.param([1, -2], "int64", id="int-list"),
        pytest.param(7, "int64", id="int-scalar"),
        pytest.param(True, "bool", id="bool-scalar"),
    ],
)
def test_integer_and_bool_data_keep_their_dtype(backend, xp, data, dtype):
    x = xpnn.asarray(data)
    assert x.dtype == getattr(xp, dtype)
    assert_round_trip(x, backend, np.asarray(data, dtype=dtype))


# Each way of naming a dtype, as a function of the backend's namespace.
DTYPE_SPELLINGS = {
    "string": lambda xp, name: name,
    "numpy-type": lambda xp, name: getattr(np, name if name != "bool" else "bool_"),
    "numpy-dtype": lambda xp, name: np.dtype(name),
    "backend-dtype": lambda xp, name: getattr(xp, name),
}


@pytest.mark.parametrize("spelling", DTYPE_SPELLINGS)
@pytest.mark.parametrize("name", ["float64", "float32", "int32", "uint8", "bool"])
def test_explicit_dtype_in_any_spelling(backend, xp, spelling, name):
    dtype = DTYPE_SPELLINGS[spelling](xp, name)
    x = xpnn.asarray([0, 1, 2], dtype=dtype)
    assert x.dtype == getattr(xp, name)
    assert_round_trip(x, backend, np.asarray([0, 1, 2], dtype=name))


def test_explicit_dtype_casts_floats_to_ints(backend, xp):
    x = xpnn.asarray([2.0, -3.0], dtype="int64")
    assert_round_trip(x, backend, np.array([2, -3], dtype=np.int64))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([1.5, 2.25], id="float-list"),
        pytest.param(1.5, id="float-scalar"),
    ],
)
def test_float64_backend_makes_float64_by_default(backend, data):
    with xpnn.use_backend(backend.name, backend.device, dtype="float64") as b64:
        assert b64.float_dtype == backend.xp.float64
        x = xpnn.asarray(data)
        ints = xpnn.asarray([1, 2])
    assert x.dtype == backend.xp.float64
    assert ints.dtype == backend.xp.int64
    assert_round_trip(x, backend, np.asarray(data, dtype=np.float64))


def test_float64_backend_keeps_precision_that_float32_loses(backend):
    third = [1 / 3]
    with xpnn.use_backend(backend.name, backend.device, dtype="float64"):
        x64 = xpnn.asarray(third)
    x32 = xpnn.asarray(third)
    assert float(xpnn.to_numpy(x64)[0]) == 1 / 3
    assert float(xpnn.to_numpy(x32)[0]) != 1 / 3


# ---------------------------------------------------------- where data goes


def test_result_lives_on_the_active_backend(backend, xp):
    x = xpnn.asarray(np.ones((2, 2)))
    assert xpnn.get_namespace(x) is xp
    assert array_api_compat.device(x) == backend.device
    assert xpnn.get_backend() == backend


@pytest.mark.parametrize("source_spec", SOURCE_SPECS)
def test_array_of_another_backend_is_transferred(backend, source_spec):
    source = open_or_skip(source_spec)
    host = host_data("float32", (3, 4))
    theirs = xpnn.asarray(host, backend=source)
    assert_on(theirs, source)
    assert_round_trip(xpnn.asarray(theirs), backend, host)


@pytest.mark.parametrize("source_spec", SOURCE_SPECS)
def test_transfer_from_another_backend_keeps_integer_and_bool_dtypes(backend, xp, source_spec):
    source = open_or_skip(source_spec)
    for dtype in ("int64", "uint8", "bool"):
        host = host_data(dtype, (2, 3))
        x = xpnn.asarray(xpnn.asarray(host, backend=source))
        assert x.dtype == getattr(xp, dtype)
        assert_round_trip(x, backend, host)


@pytest.mark.parametrize("target_spec", SOURCE_SPECS)
def test_backend_argument_wins_over_the_active_backend(backend, target_spec):
    target = open_or_skip(target_spec)
    host = host_data("int64", (4,))
    x = xpnn.asarray(host, backend=target)
    assert_round_trip(x, target, host)
    assert xpnn.get_backend() == backend  # nothing was switched


def test_strict_device1_array_moves_to_numpy_and_back():
    device1 = B._open("array_api_strict:device1")
    numpy = B._open("numpy")
    host = host_data("float32", (2, 3))
    on_device1 = xpnn.asarray(host, backend=device1)
    on_numpy = xpnn.asarray(on_device1, backend=numpy)
    assert type(on_numpy) is np.ndarray
    np.testing.assert_array_equal(on_numpy, host, strict=True)
    assert_round_trip(xpnn.asarray(on_numpy, backend=device1), device1, host)


def test_strict_array_moves_between_its_devices():
    cpu = B._open("array_api_strict:CPU_DEVICE")
    device1 = B._open("array_api_strict:device1")
    host = host_data("float64", (3,))
    x = xpnn.asarray(host, dtype="float64", backend=cpu)
    assert_round_trip(xpnn.asarray(x, dtype="float64", backend=device1), device1, host)


def test_float_policy_applies_to_backend_arrays_too(backend, xp):
    # A float64 array of the backend itself stays float64 unless asked.
    x64 = xpnn.asarray(host_data("float64", (3,)), dtype="float64")
    assert x64.dtype == xp.float64
    assert xpnn.asarray(x64).dtype == xp.float64
    assert xpnn.asarray(x64, dtype="float32").dtype == xp.float32
    with xpnn.use_backend(backend.name, backend.device, dtype="float64"):
        x32 = xpnn.asarray(host_data("float32", (3,)))
    assert x32.dtype == xp.float32  # a float64 default does not widen typed data


# Host arrays that are not plain C-contiguous native-endian memory.
HOST_LAYOUTS = {
    "reversed": lambda: np.arange(6.0)[::-1],
    "strided": lambda: np.arange(12.0)[::3],
    "transposed": lambda: np.arange(6.0).reshape(2, 3).T,
    "broadcast": lambda: np.broadcast_to(np.arange(3.0), (2, 3)),
    "read-only": lambda: _read_only(np.arange(4.0)),
    "big-endian": lambda: np.arange(4.0, dtype=">f8"),
}


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("layout", HOST_LAYOUTS)
def test_any_numpy_layout_is_accepted(backend, layout):
    host = HOST_LAYOUTS[layout]()
    for dtype in (None, "float64"):
        x = xpnn.asarray(host, dtype=dtype)
        assert_round_trip(x, backend, host.astype(dtype or host.dtype.newbyteorder("=")))


# ------------------------------------------------------------ memory sharing


def test_only_the_numpy_backend_may_share_memory_with_host_data(backend):
    # asarray: "May share memory with `a` when library, device and dtype
    # already match, like numpy.asarray" -- so not across libraries.
    if backend.name == "numpy":
        pytest.skip("numpy.asarray semantics: the host array itself may come back")
    host = np.zeros(3, dtype=np.float32)
    x = xpnn.asarray(host)
    x[0] = 5.0
    np.testing.assert_array_equal(host, np.zeros(3, dtype=np.float32))


def test_read_only_host_data_is_never_written_through(backend):
    host = _read_only(np.zeros(3, dtype=np.float32))
    x = xpnn.asarray(host)
    try:
        x[0] = 5.0  # numpy refuses (read-only); a device copy may be written
    except ValueError:
        pass
    np.testing.assert_array_equal(host, np.zeros(3, dtype=np.float32))


# ------------------------------------------------------- scalars and lists


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(3, np.array(3, dtype=np.int64), id="int"),
        pytest.param(-2.5, np.array(-2.5, dtype=np.float32), id="float"),
        pytest.param(False, np.array(False), id="bool"),
        pytest.param([[1, 2, 3], [4, 5, 6]], np.arange(1, 7).reshape(2, 3), id="int-lists"),
        pytest.param([[0.5], [1.5]], np.array([[0.5], [1.5]], dtype=np.float32), id="float-lists"),
        pytest.param([[True, False]], np.array([[True, False]]), id="bool-lists"),
        pytest.param([1, 2.5], np.array([1.0, 2.5], dtype=np.float32), id="mixed-list"),
        pytest.param([], np.zeros(0, dtype=np.float32), id="empty-list"),
    ],
)
def test_python_scalars_and_nested_lists(backend, data, expected):
    assert_round_trip(xpnn.asarray(data), backend, expected)


# -------------------------------------------------------------------- errors


@pytest.mark.parametrize("dtype", ["float128", "floot32", "float", "object"])
def test_unknown_dtype_is_a_value_error_listing_valid_dtypes(backend, xp, dtype):
    with pytest.raises(ValueError, match="unknown dtype") as err:
        xpnn.asarray([1.0, 2.0], dtype=dtype)
    message = str(err.value)
    assert repr(dtype) in message
    for name in ("bool", "int64", "uint8", "float32", "float64"):
        assert name in message
    for name in xp.__array_namespace_info__().dtypes():
        assert name in message


@pytest.mark.parametrize("dtype", [3, object(), [np.float32]])
def test_something_that_is_no_dtype_is_a_type_error(backend, dtype):
    with pytest.raises(TypeError, match="not a dtype"):
        xpnn.asarray([1.0], dtype=dtype)


# numpy turns these into arrays of str or object dtype, which no backend has;
# asarray says so instead of listing dtypes.
NON_NUMERIC = {
    "strings": ["a", "b"],
    "numeric-strings": ["1", "2"],
    "object": object(),
    "none": None,
    "int-beyond-int64": 2**70,
}


@pytest.mark.parametrize("name", NON_NUMERIC)
def test_non_numeric_data_is_a_type_error(backend, name):
    with pytest.raises(TypeError, match="needs numeric data") as err:
        xpnn.asarray(NON_NUMERIC[name])
    assert f"dtype {np.asarray(NON_NUMERIC[name]).dtype}" in str(err.value)


def test_ragged_lists_are_a_value_error(backend):
    with pytest.raises(ValueError, match="inhomogeneous"):
        xpnn.asarray([[1.0, 2.0], [3.0]])


# ------------------------------------------------------------------ to_numpy


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3), id="ndarray"),
        pytest.param(np.float32(1.5), np.array(1.5, dtype=np.float32), id="numpy-scalar"),
        pytest.param([[1, 2], [3, 4]], np.array([[1, 2], [3, 4]]), id="list"),
        pytest.param([0.5, True], np.array([0.5, 1.0]), id="mixed-list"),
        pytest.param(2.5, np.array(2.5), id="float"),
        pytest.param(7, np.array(7), id="int"),
        pytest.param(True, np.array(True), id="bool"),
    ],
)
def test_to_numpy_of_host_data(data, expected):
    out = xpnn.to_numpy(data)
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, expected, strict=True)


def test_to_numpy_of_a_numpy_array_keeps_its_dtype():
    for dtype in DTYPES:
        host = host_data(dtype, (2, 2))
        np.testing.assert_array_equal(xpnn.to_numpy(host), host, strict=True)


def test_to_numpy_works_where_np_asarray_is_refused():
    device1 = B._open("array_api_strict:device1")
    host = host_data("float32", (2, 3))
    x = xpnn.asarray(host, backend=device1)
    with pytest.raises(RuntimeError, match="device1"):
        np.asarray(x)  # the simulated device is strict, like a GPU
    np.testing.assert_array_equal(xpnn.to_numpy(x), host, strict=True)


def test_to_numpy_of_views_of_a_backend_array(backend):
    # Slices and transposes of a backend array come back as what they show.
    xp = backend.xp
    x = xpnn.asarray(np.arange(12.0).reshape(3, 4))
    expected = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(xpnn.to_numpy(x[1:, ::2]), expected[1:, ::2], strict=True)
    np.testing.assert_array_equal(xpnn.to_numpy(xp.matrix_transpose(x)), expected.T, strict=True)
    np.testing.assert_array_equal(xpnn.to_numpy(xp.flip(x, axis=0)), expected[::-1], strict=True)


def test_to_numpy_returns_a_copy_of_device_arrays(backend):
    if backend.name == "numpy":
        pytest.skip("numpy arrays are host data already and come back as they are")
    x = xpnn.asarray(np.zeros(3, dtype=np.float32))
    host = xpnn.to_numpy(x)
    host[0] = 5.0
    np.testing.assert_array_equal(xpnn.to_numpy(x), np.zeros(3, dtype=np.float32))

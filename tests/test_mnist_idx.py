"""Reading IDX files and loading an MNIST directory.

Every test writes its own small IDX files into ``tmp_path``; none needs the
real MNIST files.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import array_api_compat
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.datasets import IDXFormatError, load_mnist_dir, read_idx
from xpnn.datasets.mnist import FILES

# The IDX type codes, written out here rather than taken from the module so
# that a wrong table there cannot make these tests agree with it.
CODES = {
    "uint8": 0x08,
    "int8": 0x09,
    "int16": 0x0B,
    "int32": 0x0C,
    "float32": 0x0D,
    "float64": 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The uncompressed IDX encoding of ``array`` (any shape, a dtype of CODES)."""
    array = np.asarray(array)
    header = bytes([0, 0, CODES[array.dtype.name], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip'd if ``compress`` (default: name ends .gz)."""
    data = idx_bytes(array)
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def write_raw(path: Path, data: bytes, compress: bool) -> Path:
    """Write bytes as they are, or gzip'd."""
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def sample(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random values covering the whole range of ``dtype`` (extremes included)."""
    rng = np.random.default_rng(seed)
    size = math.prod(shape)
    if dtype.startswith("float"):
        values = rng.normal(0, 1e3, size).astype(dtype)
        extremes = np.array([np.finfo(dtype).min, np.finfo(dtype).max, -0.0, np.inf], dtype)
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size, endpoint=True).astype(dtype)
        extremes = np.array([info.min, info.max, 0, 1], dtype)
    k = min(size, extremes.size)
    values[:k] = extremes[:k]
    return values.reshape(shape)


COMPRESS = [pytest.param(True, id="gzip"), pytest.param(False, id="raw")]

# ----------------------------------------------------------------- read_idx


@pytest.mark.parametrize("compress", COMPRESS)
@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (1, 2, 1, 3), (0, 28, 28)])
def test_round_trip_every_dtype(tmp_path, dtype, shape, compress):
    source = sample(dtype, shape)
    got = read_idx(write_idx(tmp_path / "a.idx", source, compress))
    assert got.dtype == np.dtype(dtype)
    assert got.dtype.isnative
    assert got.shape == shape
    np.testing.assert_array_equal(got, source)


def test_hand_written_bytes_are_big_endian(tmp_path):
    # Independent of idx_bytes: int16, shape (2, 2), big-endian values.
    data = b"\x00\x00\x0b\x02" + b"\x00\x00\x00\x02" * 2 + b"\x01\x02\xff\xfe\x00\x01\x80\x00"
    got = read_idx(write_raw(tmp_path / "a", data, compress=False))
    np.testing.assert_array_equal(got, np.array([[258, -2], [1, -32768]], dtype=np.int16))


def test_hand_written_mnist_style_labels(tmp_path):
    # The MNIST labels header: magic 2049 = 00 00 08 01, then the count.
    data = b"\x00\x00\x08\x01\x00\x00\x00\x03" + bytes([7, 2, 1])
    got = read_idx(write_raw(tmp_path / "labels.gz", data, compress=True))
    np.testing.assert_array_equal(got, np.array([7, 2, 1], dtype=np.uint8))


@pytest.mark.parametrize("compress", COMPRESS)
def test_compression_is_detected_by_content_not_name(tmp_path, compress):
    source = sample("int32", (4, 3))
    # A raw file named .gz and a gzip'd file without .gz both read.
    name = "plain.gz" if not compress else "packed.idx"
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / name, source, compress)), source)


def test_result_is_writable_for_every_dtype(tmp_path):
    for dtype in CODES:
        got = read_idx(write_idx(tmp_path / f"{dtype}.idx", sample(dtype, (3,))))
        assert got.flags.writeable, dtype
        got[0] = 1


def test_accepts_str_paths(tmp_path):
    path = write_idx(tmp_path / "a.idx", sample("uint8", (2, 2)))
    assert read_idx(str(path)).shape == (2, 2)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.gz")


VALID_HEADER = b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03"  # uint8 (2, 3)

MALFORMED = [
    pytest.param(b"", "truncated header: 0 of 4", id="empty"),
    pytest.param(b"\x00\x00\x08", "truncated header: 3 of 4", id="short-magic"),
    pytest.param(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "not an IDX file", id="first-byte"),
    pytest.param(b"\x00\x07\x08\x01\x00\x00\x00\x01\x05", "not an IDX file", id="second-byte"),
    pytest.param(b"\x00\x00\x0a\x01\x00\x00\x00\x01\x05", "unknown data type code 0x0A", id="code"),
    pytest.param(b"\x00\x00\x08\x00\x05", "0 dimensions", id="ndim-0"),
    # More dimensions than NumPy arrays have, with exactly the data declared
    # (one byte): NumPy's bare ValueError must not come out of reshape.
    *(
        pytest.param(
            bytes([0, 0, 8, n]) + b"\x00\x00\x00\x01" * n + b"\x07",
            f"the header declares {n} dimensions; a NumPy array has at most",
            id=f"ndim-{n}",
        )
        for n in (65, 100, 255)
    ),
    pytest.param(
        b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00",
        "3 dimension sizes declared, 2 present (10 of 12 bytes)",
        id="short-dims",
    ),
    pytest.param(
        VALID_HEADER + b"\x01" * 5,
        "expected 6 data bytes for shape (2, 3), found 5",
        id="data-short",
    ),
    pytest.param(
        VALID_HEADER + b"\x01" * 9,
        "expected 6 data bytes for shape (2, 3), found 9",
        id="data-long",
    ),
    pytest.param(VALID_HEADER, "expected 6 data bytes for shape (2, 3), found 0", id="no-data"),
    pytest.param(
        # 2.3 PB of float64 claimed, 16 bytes present: must not allocate.
        b"\x00\x00\x0e\x03" + b"\x00\x00\xff\xff" * 3 + b"\x00" * 16,
        f"expected {65535**3 * 8} data bytes for shape (65535, 65535, 65535), found 16",
        id="absurd-size",
    ),
    pytest.param(
        # No data needed (a size is 0), but NumPy cannot represent the shape.
        b"\x00\x00\x0e\x04" + b"\x00" * 4 + b"\xff\xff\xff\xff" * 3,
        "shape (0, 4294967295, 4294967295, 4294967295) of float64 is too large for an array",
        id="unrepresentable-shape",
    ),
]


@pytest.mark.parametrize("compress", COMPRESS)
@pytest.mark.parametrize(("data", "problem"), MALFORMED)
def test_malformed_file_names_file_and_problem(tmp_path, data, problem, compress):
    path = write_raw(tmp_path / "train-images-idx3-ubyte.gz", data, compress)
    with pytest.raises(IDXFormatError) as err:
        read_idx(path)
    assert str(err.value).startswith(f"{path}: ")
    assert problem in err.value.problem
    assert err.value.path == str(path)
    assert isinstance(err.value, ValueError)


def test_most_dimensions_numpy_allows_are_read(tmp_path):
    ndim = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32
    shape = (1,) * (ndim - 1) + (3,)
    path = write_idx(tmp_path / "deep.idx", np.arange(3, dtype=np.uint8).reshape(shape))
    array = read_idx(path)
    assert array.shape == shape
    np.testing.assert_array_equal(array.ravel(), [0, 1, 2])
    data = bytes([0, 0, 8, ndim + 1]) + b"\x00\x00\x00\x01" * (ndim + 1) + b"\x07"
    with pytest.raises(IDXFormatError, match=f"declares {ndim + 1} dimensions"):
        read_idx(write_raw(tmp_path / "deeper.idx", data, False))


def test_message_of_a_truncated_mnist_file(tmp_path):
    header = b"\x00\x00\x08\x03" + struct.pack(">3I", 4000, 28, 28)
    path = write_raw(tmp_path / "train-images-idx3-ubyte.gz", header + bytes(1200), True)
    with pytest.raises(IDXFormatError, match=r"train-images-idx3-ubyte\.gz: expected 3136000 "):
        read_idx(path)
    with pytest.raises(IDXFormatError) as err:
        read_idx(path)
    assert str(err.value).endswith(
        "train-images-idx3-ubyte.gz: expected 3136000 data bytes for shape (4000, 28, 28), "
        "found 1200"
    )


def _valid_gzip() -> bytes:
    return gzip.compress(idx_bytes(sample("int32", (50, 20))), mtime=0)


def _corrupt_deflate(data: bytes) -> bytes:
    damaged = bytearray(data)
    for i in range(12, 40):
        damaged[i] ^= 0xFF
    return bytes(damaged)


def _bad_crc(data: bytes) -> bytes:
    return data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:]


CORRUPT_GZIP = [
    pytest.param(lambda d: d[: len(d) // 2], id="truncated-stream"),
    pytest.param(lambda d: d[:-4], id="no-size-trailer"),
    pytest.param(lambda d: d[:5], id="truncated-gzip-header"),
    pytest.param(_corrupt_deflate, id="corrupt-deflate"),
    pytest.param(_bad_crc, id="bad-crc"),
    pytest.param(lambda d: d[:2] + b"\x09" + d[3:], id="unknown-method"),
    pytest.param(lambda d: d + b"garbage after the stream", id="trailing-garbage"),
]


@pytest.mark.parametrize("damage", CORRUPT_GZIP)
def test_corrupt_gzip_stream(tmp_path, damage):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(damage(_valid_gzip()))
    with pytest.raises(IDXFormatError, match="corrupt gzip stream") as err:
        read_idx(path)
    assert str(err.value).startswith(f"{path}: ")


def test_gzip_of_a_malformed_idx_reports_the_idx_problem(tmp_path):
    path = write_raw(tmp_path / "x.gz", b"\x00\x00\x08\x01\x00\x00\x00\x09ab", compress=True)
    with pytest.raises(IDXFormatError, match="expected 9 data bytes for shape"):
        read_idx(path)


# ------------------------------------------- random and damaged input (fuzz)


def _check_consistent(array: np.ndarray, idx: bytes) -> None:
    """A parsed array must be exactly what the (uncompressed) bytes declare."""
    code, ndim = idx[2], idx[3]
    shape = struct.unpack(f">{ndim}I", idx[4 : 4 + 4 * ndim])
    dtype = {v: k for k, v in CODES.items()}[code]
    assert idx[:2] == b"\x00\x00"
    assert array.shape == shape
    assert array.dtype == np.dtype(dtype)
    payload = idx[4 + 4 * ndim :]
    expected = np.frombuffer(payload, dtype=np.dtype(dtype).newbyteorder(">")).reshape(shape)
    np.testing.assert_array_equal(array, expected)


@st.composite
def idx_like(draw) -> bytes:
    """Bytes near the IDX format: plausible headers, payloads of the declared
    length (so that many parse) or of a random length."""
    code = draw(st.sampled_from([*CODES.values(), 0x0A, 0x00]))
    dims = draw(st.lists(st.integers(0, 6), min_size=0, max_size=4))
    head = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    itemsize = {0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(code, 1)
    size = draw(st.one_of(st.just(math.prod(dims) * itemsize), st.integers(0, 300)))
    return head + draw(st.binary(min_size=size, max_size=size))


@st.composite
def damaged_valid_file(draw) -> bytes:
    """A valid IDX file (raw or gzip'd), then truncated or with one byte changed."""
    dtype = draw(st.sampled_from(list(CODES)))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=3)))
    data = idx_bytes(sample(dtype, shape, seed=draw(st.integers(0, 9))))
    if draw(st.booleans()):
        data = gzip.compress(data, mtime=0)
    if draw(st.booleans()):
        return data[: draw(st.integers(0, len(data)))]
    i = draw(st.integers(0, len(data) - 1))
    return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]


@settings(
    max_examples=200,
    deadline=None,
    # One file in tmp_path is overwritten per example: nothing leaks between them.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.one_of(
        st.binary(max_size=64),
        idx_like(),
        idx_like().map(lambda b: gzip.compress(b, mtime=0)),
        damaged_valid_file(),
    )
)
def test_random_bytes_parse_consistently_or_raise_idx_format_error(tmp_path, data):
    path = tmp_path / "fuzz.gz"
    path.write_bytes(data)
    try:
        array = read_idx(path)
    except IDXFormatError as exc:
        event("IDXFormatError")  # --hypothesis-show-statistics shows the mix
        assert str(exc).startswith(f"{path}: ")
        return
    event("parsed")
    _check_consistent(array, gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)


# ----------------------------------------------------------- load_mnist_dir

N_TRAIN, N_TEST = 12, 5


def make_mnist(directory: Path, n_train: int = N_TRAIN, n_test: int = N_TEST) -> dict:
    """Write a tiny MNIST (28x28 uint8 images, labels 0..9) with the standard names."""
    rng = np.random.default_rng(1)
    arrays = {
        "train_img": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_label": (np.arange(n_train) % 10).astype(np.uint8),
        "test_img": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_label": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays["train_img"][0, 0, :2] = [0, 255]  # both ends of the pixel range
    directory.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        write_idx(directory / FILES[key], array)
    return arrays


@pytest.fixture
def mnist(tmp_path) -> tuple[Path, dict]:
    return tmp_path, make_mnist(tmp_path)


def _expected_images(src: np.ndarray, normalize: bool, flatten: bool, dtype) -> np.ndarray:
    x = src.astype(dtype) / dtype(255) if normalize else src
    return x.reshape(len(src), -1) if flatten else x.reshape(len(src), 1, 28, 28)


def _expected_labels(src: np.ndarray, one_hot: bool, dtype) -> np.ndarray:
    return np.eye(10, dtype=dtype)[src] if one_hot else src.astype(np.int64)


@pytest.mark.parametrize("one_hot", [False, True], ids=["labels", "one-hot"])
@pytest.mark.parametrize("flatten", [True, False], ids=["flat", "image"])
@pytest.mark.parametrize("normalize", [True, False], ids=["norm", "raw"])
def test_load_mnist_dir_variants(backend, mnist, normalize, flatten, one_hot):
    directory, src = mnist
    splits = load_mnist_dir(directory, normalize=normalize, flatten=flatten, one_hot_label=one_hot)
    xp = backend.xp
    for (x, t), key in zip(splits, ("train", "test"), strict=True):
        images, labels = src[f"{key}_img"], src[f"{key}_label"]
        for a in (x, t):
            assert array_api_compat.array_namespace(a) is array_api_compat.array_namespace(
                xp.asarray(0, device=backend.device)
            )
            assert array_api_compat.device(a) == backend.device
        assert x.dtype == (xp.float32 if normalize else xp.uint8)
        assert t.dtype == (xp.float32 if one_hot else xp.int64)
        want_x = _expected_images(images, normalize, flatten, np.float32)
        want_t = _expected_labels(labels, one_hot, np.float32)
        assert tuple(x.shape) == want_x.shape
        assert tuple(t.shape) == want_t.shape
        np.testing.assert_array_equal(xpnn.to_numpy(x), want_x)
        np.testing.assert_array_equal(xpnn.to_numpy(t), want_t)


def test_load_mnist_dir_book_shapes(mnist):
    (x, t), (xt, tt) = load_mnist_dir(mnist[0])
    assert (x.shape, t.shape) == ((N_TRAIN, 784), (N_TRAIN,))
    assert (xt.shape, tt.shape) == ((N_TEST, 784), (N_TEST,))
    (x, t), _ = load_mnist_dir(mnist[0], flatten=False, one_hot_label=True)
    assert (x.shape, t.shape) == ((N_TRAIN, 1, 28, 28), (N_TRAIN, 10))
    assert x.min() == 0.0 and x.max() == 1.0


@pytest.mark.parametrize("dtype", ["float64", np.float64])
def test_load_mnist_dir_float64(backend, mnist, dtype):
    (x, t), _ = load_mnist_dir(mnist[0], one_hot_label=True, dtype=dtype)
    assert x.dtype == backend.xp.float64
    assert t.dtype == backend.xp.float64
    np.testing.assert_array_equal(
        xpnn.to_numpy(x), _expected_images(mnist[1]["train_img"], True, True, np.float64)
    )


def test_load_mnist_dir_follows_the_backend_float_dtype(mnist):
    with xpnn.use_backend("numpy", dtype="float64"):
        (x, _), _ = load_mnist_dir(mnist[0])
    assert x.dtype == np.float64


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bfloat16"])
def test_load_mnist_dir_rejects_non_float_dtype(mnist, dtype):
    with pytest.raises(ValueError, match=r"dtype|bfloat16"):
        load_mnist_dir(mnist[0], dtype=dtype)


def test_load_mnist_dir_in_float16_halves_the_images(mnist):
    (x16, _), _ = load_mnist_dir(mnist[0], dtype="float16")
    (x32, _), _ = load_mnist_dir(mnist[0], dtype="float32")
    assert x16.dtype == np.float16 and x16.nbytes * 2 == x32.nbytes
    # Each pixel is k / 255 rounded once to float16 (half an ulp, 2**-12 relative).
    np.testing.assert_allclose(x16.astype(np.float32), x32, rtol=2.0**-11, atol=0)


def test_load_mnist_dir_reads_raw_files_under_gz_names(tmp_path):
    src = make_mnist(tmp_path)
    for key in FILES:
        write_idx(tmp_path / FILES[key], src[key], compress=False)
    (_, t), _ = load_mnist_dir(tmp_path)
    np.testing.assert_array_equal(t, src["train_label"])


@pytest.mark.parametrize("key", list(FILES))
def test_missing_file_lists_expected_names(mnist, key):
    directory, _ = mnist
    (directory / FILES[key]).unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_mnist_dir(directory)
    message = str(err.value)
    assert str(directory) in message
    assert f"missing in {directory}: {FILES[key]};" in message
    for name in FILES.values():
        assert name in message


def test_missing_directory_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        load_mnist_dir(tmp_path / "nowhere")
    for name in FILES.values():
        assert name in str(err.value)


def _replace(directory: Path, key: str, array: np.ndarray) -> Path:
    return write_idx(directory / FILES[key], array)


BAD_CONTENT = [
    pytest.param(
        "train_label", np.zeros(N_TRAIN - 1, np.uint8), "11 labels, but train-images", id="count"
    ),
    pytest.param(
        "test_img",
        np.zeros((N_TEST + 1, 28, 28), np.uint8),
        "5 labels, but t10k-images",
        id="count-test",
    ),
    pytest.param(
        "test_label", np.array([0, 1, 10, 3, 4], np.uint8), "outside 0..9 (e.g. 10)", id="label-10"
    ),
    pytest.param(
        "test_label", np.array([0, 1, -1, 3, 4], np.int8), "outside 0..9 (e.g. -1)", id="label-neg"
    ),
    pytest.param("train_img", np.zeros((N_TRAIN, 784), np.uint8), "must be 3-D", id="images-2d"),
    pytest.param(
        "train_img", np.zeros((N_TRAIN, 28, 28), np.float32), "uint8 pixels", id="images-float"
    ),
    pytest.param("train_label", np.zeros((N_TRAIN, 1), np.uint8), "must be 1-D", id="labels-2d"),
    pytest.param(
        "train_label", np.zeros(N_TRAIN, np.float64), "must be integers", id="labels-float"
    ),
]


@pytest.mark.parametrize(("key", "array", "problem"), BAD_CONTENT)
def test_bad_content_names_the_file(mnist, key, array, problem):
    directory, _ = mnist
    path = _replace(directory, key, array)
    label_key = key.replace("img", "label")
    # Count mismatches are reported on the labels file, naming the images file.
    blamed = directory / FILES[label_key] if problem.startswith(("11 ", "5 ")) else path
    with pytest.raises(IDXFormatError) as err:
        load_mnist_dir(directory)
    assert str(err.value).startswith(f"{blamed}: ")
    assert problem in str(err.value)


def test_malformed_file_in_directory_is_idx_format_error(mnist):
    directory, _ = mnist
    path = directory / FILES["test_img"]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IDXFormatError, match="corrupt gzip stream") as err:
        load_mnist_dir(directory)
    assert err.value.path == str(path)

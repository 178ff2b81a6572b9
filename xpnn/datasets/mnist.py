"""MNIST in the original IDX format, read from a directory.

The four files of the MNIST distribution (:data:`FILES`) are IDX files: a
small big-endian header giving the element type and the shape, followed by the
raw elements. :func:`read_idx` parses one such file (gzip'd or not) into a host
NumPy array and rejects every malformed file with an :class:`IDXFormatError`
naming the file. :func:`load_mnist_dir` reads the four files of a directory
and returns the book's ``load_mnist`` tuples, placed on the active backend.
:func:`load_mnist` is the book's function: it finds the directory (a cache
folder by default) and first downloads the files that are missing there.
:func:`load_mnist5k` reads the 5,000-digit sample shipped inside xpnn
(:data:`MNIST5K_DIR`), after checking each file's SHA-256: MNIST offline.

Reading is host-side I/O, so this module uses NumPy directly; the arrays reach
the backend only through :func:`xpnn.backend.asarray`. Getting the files (a
download, :mod:`xpnn.datasets.download`) is kept apart from reading them: a
downloader only has to put the :data:`FILES` into a directory.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import sys
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from xpnn.backend import _dtype_name, asarray, get_backend, resolve_dtype
from xpnn.datasets import download as _download
from xpnn.datasets.shipped import read_shipped

__all__ = [
    "DATA_DIR_ENV",
    "FILES",
    "NUM_CLASSES",
    "IDXFormatError",
    "MNIST5K_DIR",
    "MNIST5K_SHA256",
    "MNIST5K_SIZES",
    "check_mnist5k",
    "load_mnist",
    "load_mnist5k",
    "load_mnist_dir",
    "mnist_data_dir",
    "read_idx",
    "user_cache_dir",
]

#: The standard MNIST file names, keyed as in the book's ``mnist.py``.
FILES = {
    "train_img": "train-images-idx3-ubyte.gz",
    "train_label": "train-labels-idx1-ubyte.gz",
    "test_img": "t10k-images-idx3-ubyte.gz",
    "test_label": "t10k-labels-idx1-ubyte.gz",
}

#: Digits 0..9.
NUM_CLASSES = 10

#: The environment variable naming the folder where xpnn keeps data sets
#: (MNIST goes to its ``mnist`` subfolder); the user cache folder if unset.
DATA_DIR_ENV = "XPNN_DATA_DIR"

#: The folder of the MNIST sample shipped inside the package: 5,000 real
#: digits (4,000 train, 1,000 test, 500 per class) as the four :data:`FILES`.
#: Its README.md gives the source and licenses; :func:`load_mnist5k` reads it.
MNIST5K_DIR = Path(__file__).with_name("mnist5k")

#: The SHA-256 of each file of the sample (its SHA256SUMS file holds the same
#: sums, for ``sha256sum -c``). Kept here, in the code, so that a damaged
#: folder cannot vouch for itself.
MNIST5K_SHA256 = {
    "train-images-idx3-ubyte.gz": "5d10de016ba979227bc401fb4dc27e63dedfde8363b5721864e16dda31cf119d",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "b808b6fcde0640c9d2d54da99480f89d5a23b781033f159f46b4350c3d3cdc89",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "2d5e8dd2f72d7c0a0b47b9dd9ce669f32b8851d9b64ea04d4d92eb693bbc056b",
    "t10k-labels-idx1-ubyte.gz": "02135f69ccbb6e9591621f9072d7bc2b6bcddb86b6626329419910f92f105f70",
}

#: The size in bytes of each file of the sample: checked before hashing.
MNIST5K_SIZES = {
    "train-images-idx3-ubyte.gz": 653_203,
    "train-labels-idx1-ubyte.gz": 2_082,
    "t10k-images-idx3-ubyte.gz": 161_678,
    "t10k-labels-idx1-ubyte.gz": 546,
}

# IDX type codes -> big-endian NumPy dtypes (the format is big-endian).
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"

# Data are read in pieces of this size so that memory follows the bytes that
# are really there, never a size claimed by a (possibly corrupt) header.
_CHUNK = 1 << 20

# What a damaged gzip stream raises while being read: bad header or CRC
# (BadGzipFile), bad deflate data (zlib.error), stream cut short (EOFError).
_GZIP_ERRORS = (gzip.BadGzipFile, zlib.error, EOFError)


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file (or not the IDX data expected).

    Attributes:
        path: The file at fault.
        problem: What is wrong with it.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# --------------------------------------------------------------------------
# One IDX file
# --------------------------------------------------------------------------


def _read_up_to(stream: IO[bytes], n: int) -> bytearray:
    """Read at most ``n`` bytes, fewer only at the end of the stream."""
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _count_rest(stream: IO[bytes]) -> int:
    """Count (and discard) the bytes left in the stream, in bounded memory."""
    total = 0
    while chunk := stream.read(_CHUNK):
        total += len(chunk)
    return total


# The most dimensions a NumPy array may have (NPY_MAXDIMS): 64 since NumPy 2.
_MAX_NDIM = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32


def _parse(stream: IO[bytes], path: str | os.PathLike[str]) -> np.ndarray:
    """Parse an uncompressed IDX byte stream (see :func:`read_idx`)."""
    head = _read_up_to(stream, 4)
    if len(head) < 4:
        raise IDXFormatError(path, f"truncated header: {len(head)} of 4 magic bytes")
    zero0, zero1, code, ndim = head
    if zero0 or zero1:
        raise IDXFormatError(
            path,
            f"not an IDX file: it starts with bytes {bytes(head[:2]).hex(' ')}, not 00 00",
        )
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({d.name})" for c, d in _IDX_DTYPES.items())
        raise IDXFormatError(path, f"unknown data type code 0x{code:02X}; valid codes: {known}")
    if ndim == 0:
        raise IDXFormatError(path, "the header declares 0 dimensions")
    if ndim > _MAX_NDIM:
        raise IDXFormatError(
            path,
            f"the header declares {ndim} dimensions; a NumPy array has at most {_MAX_NDIM}",
        )
    dims = _read_up_to(stream, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise IDXFormatError(
            path,
            f"truncated header: {ndim} dimension sizes declared, "
            f"{len(dims) // 4} present ({len(dims)} of {4 * ndim} bytes)",
        )
    shape = struct.unpack(f">{ndim}I", dims)
    dtype = _IDX_DTYPES[code]
    # NumPy refuses shapes whose nonzero sizes multiply past its index range,
    # even with a zero size among them (no data): say so instead of failing
    # in reshape.
    if math.prod(d for d in shape if d) * dtype.itemsize > np.iinfo(np.intp).max:
        raise IDXFormatError(path, f"shape {shape} of {dtype.name} is too large for an array")
    # Python ints: no overflow for absurd headers, and nothing is allocated
    # from this number -- _read_up_to stops where the data stop.
    expected = math.prod(shape) * dtype.itemsize
    data = _read_up_to(stream, expected)
    found = len(data)
    if found == expected:
        found += _count_rest(stream)
    if found != expected:
        raise IDXFormatError(
            path,
            f"expected {expected} data bytes for shape {shape}, found {found}",
        )
    # Native byte order; uint8/int8 need no swap and share the (writable) buffer.
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file, gzip'd or raw, into a host NumPy array.

    Compression is detected from the gzip magic bytes ``1f 8b``, not from the
    file name. The header is: two zero bytes, a type code (``0x08`` uint8,
    ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E``
    float64; multi-byte types are big-endian), the number of dimensions, then
    one big-endian uint32 size per dimension; the elements follow.

    Args:
        path: The file.

    Returns:
        A writable NumPy array with the shape and type of the header, in
        native byte order (e.g. ``(60000, 28, 28)`` uint8 for MNIST images).

    Raises:
        IDXFormatError: The file is malformed: truncated header, bytes other
            than ``00 00`` first, unknown type code, zero dimensions or more
            than NumPy supports (64; 32 before NumPy 2), a shape too large
            for a NumPy array, fewer or more data bytes than the
            header declares, or a corrupt gzip stream. The message names the
            file and the problem.
        OSError: The file cannot be opened or read (e.g. FileNotFoundError).
    """
    with open(path, "rb") as raw:
        if raw.read(2) != _GZIP_MAGIC:
            raw.seek(0)
            return _parse(raw, path)
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(stream, path)
        except _GZIP_ERRORS as exc:
            raise IDXFormatError(path, f"corrupt gzip stream ({exc})") from exc


# --------------------------------------------------------------------------
# The MNIST directory
# --------------------------------------------------------------------------


def _missing_files(data_dir: Path) -> list[str]:
    """The names of :data:`FILES` that are not files in ``data_dir``."""
    return [name for name in FILES.values() if not (data_dir / name).is_file()]


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one split: ``(N, rows, cols)`` uint8 images, ``(N,)`` labels."""
    images = read_idx(images_path)
    if images.ndim != 3:
        raise IDXFormatError(
            images_path, f"images must be 3-D (N, rows, cols), got shape {images.shape}"
        )
    if images.dtype != np.uint8:
        raise IDXFormatError(images_path, f"images must be uint8 pixels, got {images.dtype}")
    labels = read_idx(labels_path)
    if labels.ndim != 1:
        raise IDXFormatError(labels_path, f"labels must be 1-D (N,), got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise IDXFormatError(labels_path, f"labels must be integers, got {labels.dtype}")
    if len(labels) != len(images):
        raise IDXFormatError(
            labels_path,
            f"{len(labels)} labels, but {images_path.name} has {len(images)} images",
        )
    bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]
    if bad.size:
        raise IDXFormatError(
            labels_path,
            f"{bad.size} labels outside 0..{NUM_CLASSES - 1} (e.g. {bad[0]})",
        )
    return images, labels.astype(np.int64)


def load_mnist_dir(
    data_dir: str | os.PathLike[str],
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    dtype: Any = None,
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """Load MNIST from the four standard files in a directory.

    The book's ``load_mnist``, reading local files (see :data:`FILES`; gzip'd
    or raw, whatever their names say). Everything is parsed and converted on
    the host, then each array is placed on the active backend with
    :func:`xpnn.backend.asarray`.

    Args:
        data_dir: The directory holding the four files.
        normalize: Scale pixels to floats in [0, 1] (divided by 255). If
            False the images keep their uint8 values 0..255, as in the book.
        flatten: Images as ``(N, 784)`` rows; else ``(N, 1, 28, 28)``.
        one_hot_label: Labels as ``(N, 10)`` one-hot floats; else ``(N,)``
            int64 class numbers.
        dtype: The float dtype of normalized images and one-hot labels
            (``"float32"`` or ``"float64"``); the backend's default float
            dtype (float32 unless chosen otherwise) if omitted.

    Returns:
        ``((x_train, t_train), (x_test, t_test))``, arrays of the active
        backend. For the full MNIST N is 60000 (train) and 10000 (test).

    Raises:
        FileNotFoundError: One of the files is missing; the message names
            the directory and the four expected file names.
        IDXFormatError: A file is malformed, image files are not 3-D uint8,
            label files not 1-D integers in 0..9, or the images and labels of
            a split differ in count. The message names the file.
        ValueError: ``dtype`` is not a float dtype.
    """
    data_dir = Path(data_dir)
    backend = get_backend()
    float_dtype = backend.float_dtype if dtype is None else resolve_dtype(backend.xp, dtype)
    # Convert on the host in the target precision: a float64 detour would
    # double the memory of the largest array for nothing.
    if float_dtype == backend.xp.float32:
        host_float = np.float32
    elif float_dtype == backend.xp.float64:
        host_float = np.float64
    elif _dtype_name(float_dtype) == "float16":  # the book's bit-precision section
        host_float = np.float16
    elif _dtype_name(float_dtype) == "bfloat16":  # NumPy has none: cast on the device
        host_float = np.float32
    else:
        raise ValueError(f"dtype must be a float dtype, got {dtype!r}")

    missing = _missing_files(data_dir)
    if missing:
        where = "" if data_dir.is_dir() else " (the directory does not exist)"
        raise FileNotFoundError(
            f"MNIST files missing in {data_dir}{where}: {', '.join(missing)}; "
            f"the directory must hold these four files: {', '.join(FILES.values())}"
        )

    def split(images_key: str, labels_key: str) -> tuple[Any, Any]:
        images, labels = _read_split(data_dir / FILES[images_key], data_dir / FILES[labels_key])
        if normalize:
            images = images.astype(host_float) / host_float(255)
        n, rows, cols = images.shape
        images = images.reshape(n, rows * cols) if flatten else images.reshape(n, 1, rows, cols)
        if one_hot_label:
            labels = np.eye(NUM_CLASSES, dtype=host_float)[labels]
        # Explicit dtype for floats; uint8 pixels and int64 labels keep theirs.
        x_dtype = float_dtype if normalize else None
        t_dtype = float_dtype if one_hot_label else None
        return (
            asarray(images, dtype=x_dtype, backend=backend),
            asarray(labels, dtype=t_dtype, backend=backend),
        )

    return split("train_img", "train_label"), split("test_img", "test_label")


# --------------------------------------------------------------------------
# The book's load_mnist: find the directory, download what is missing
# --------------------------------------------------------------------------


def user_cache_dir(platform: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The folder where xpnn caches data by default, following each OS's convention.

    ``$XDG_CACHE_HOME/xpnn`` (``~/.cache/xpnn`` when unset) on Linux and other
    Unixes, ``~/Library/Caches/xpnn`` on macOS, ``%LOCALAPPDATA%\\xpnn\\Cache``
    on Windows. Nothing is created.

    Args:
        platform: A :data:`sys.platform` value (the running one if omitted).
        environ: The environment to read (:data:`os.environ` if omitted).

    Returns:
        The folder's path.
    """
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    if platform == "win32":
        local = environ.get("LOCALAPPDATA")
        return (Path(local) if local else Path.home() / "AppData" / "Local") / "xpnn" / "Cache"
    if platform == "darwin":
        return Path.home() / "Library" / "Caches" / "xpnn"
    # The XDG spec says to ignore a relative (or empty) XDG_CACHE_HOME.
    xdg = environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "xpnn"


def mnist_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory :func:`load_mnist` reads (and downloads into).

    Args:
        data_dir: The directory holding the four :data:`FILES` themselves.

    Returns:
        ``data_dir`` if given; else the ``mnist`` subfolder of
        ``$XPNN_DATA_DIR``, or of :func:`user_cache_dir` when that variable
        is unset or empty. ``~`` is expanded.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    root = os.environ.get(DATA_DIR_ENV, "")
    return (Path(root).expanduser() if root else user_cache_dir()) / "mnist"


def _how_to_get_the_files(directory: Path) -> str:
    """The end of every "MNIST is not there" message."""
    return (
        f"MNIST needs these four files in {directory}: {', '.join(FILES.values())}. "
        "You can put them there by hand (gzip'd or not, under these names), "
        "point load_mnist(data_dir=...) at a folder that has them, or list "
        f"mirrors you can reach in {_download.MIRRORS_ENV} (comma-separated base URLs). "
        "Offline, load_mnist5k() reads the 5,000-digit MNIST sample shipped with xpnn."
    )


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    dtype: Any = None,
    mirrors: str | Sequence[str] | None = None,
    progress: bool = True,
    timeout: float | None = None,
    deadline: float | None = None,
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """Load MNIST, downloading the files that are not there yet (the book's ``load_mnist``).

    The files are looked for in :func:`mnist_data_dir`: ``data_dir`` itself
    if given, else ``$XPNN_DATA_DIR/mnist``, else the ``mnist`` folder of the
    user cache (:func:`user_cache_dir`). Missing files are downloaded from
    the first mirror that serves them with the official SHA-256
    (:func:`xpnn.datasets.download.download`); files already there are used
    as they are (not checked against the official hashes, so a sample such as
    ``mnist5k`` can stand in), and the reader rejects a corrupt one. Then
    the directory is read with :func:`load_mnist_dir`.

    Args:
        normalize: Scale pixels to floats in [0, 1]; else uint8 0..255.
        flatten: Images as ``(N, 784)`` rows; else ``(N, 1, 28, 28)``.
        one_hot_label: Labels as ``(N, 10)`` one-hot floats; else ``(N,)``
            int64 class numbers.
        data_dir: The directory of the four :data:`FILES` (see above).
        download: Download missing files. If False, missing files raise
            :class:`FileNotFoundError` without touching the network.
        dtype: The float dtype of normalized images and one-hot labels
            (``"float32"`` or ``"float64"``); the backend's default float
            dtype if omitted.
        mirrors: Base URLs to download from, in order (a sequence or one
            comma-separated string); else ``$XPNN_MNIST_MIRRORS``, else
            :data:`xpnn.datasets.download.MNIST_MIRRORS`.
        progress: Show download progress bars on stderr.
        timeout: Seconds to wait for a connection or the next data before
            giving up on a mirror (default
            :data:`xpnn.datasets.download.DEFAULT_TIMEOUT`).
        deadline: Seconds one mirror may take for a whole file before it is
            given up, however steadily it trickles data (default
            :data:`xpnn.datasets.download.DEFAULT_DEADLINE`; ``math.inf``:
            no limit).

    Returns:
        ``((x_train, t_train), (x_test, t_test))``, arrays of the active
        backend, as :func:`load_mnist_dir` returns them. For the full MNIST
        N is 60000 (train) and 10000 (test).

    Raises:
        FileNotFoundError: Files are missing and ``download`` is False; the
            message names the directory, the missing and the four expected
            files, and how to provide them.
        xpnn.datasets.DownloadError: A missing file could not be downloaded
            from any mirror (an :class:`OSError`); the message lists each URL
            tried with its failure, the directory, the four files and how to
            provide them. Files downloaded before it stay (they are complete
            and verified).
        IDXFormatError: A file is malformed (see :func:`load_mnist_dir`).
        ValueError: ``dtype`` is not a float dtype, or a mirror URL is not
            ``http://`` or ``https://``.
        OSError: The directory cannot be created or written.
    """
    directory = mnist_data_dir(data_dir)
    missing = _missing_files(directory)
    if missing and not download:
        raise FileNotFoundError(
            f"MNIST files missing in {directory} and download=False: "
            f"{', '.join(missing)}. " + _how_to_get_the_files(directory)
        )
    if missing:
        bases = _download.resolve_mirrors(mirrors)
        for name in missing:
            try:
                _download.download(
                    name,
                    directory,
                    bases,
                    _download.MNIST_SHA256[name],
                    progress=progress,
                    timeout=_download.DEFAULT_TIMEOUT if timeout is None else timeout,
                    max_bytes=_download.MNIST_SIZES.get(name),
                    deadline=_download.DEFAULT_DEADLINE if deadline is None else deadline,
                )
            except _download.DownloadError as exc:
                exc.hint = _how_to_get_the_files(directory)
                raise
    return load_mnist_dir(
        directory, normalize=normalize, flatten=flatten, one_hot_label=one_hot_label, dtype=dtype
    )


# --------------------------------------------------------------------------
# The sample shipped with xpnn
# --------------------------------------------------------------------------


def check_mnist5k(directory: str | os.PathLike[str] | None = None) -> Path:
    """Check the files of the packaged MNIST sample against their SHA-256.

    Each file's size is compared first (a stat), so a file of the wrong size
    is refused without being read; then its SHA-256 (820 KB in all).

    Args:
        directory: The folder to check (:data:`MNIST5K_DIR` if omitted).

    Returns:
        The folder.

    Raises:
        FileNotFoundError: A file of the sample is missing (or not a file).
        IDXFormatError: A file has the wrong size or SHA-256: it is damaged.
            The message names the file and says to reinstall xpnn.
    """
    directory = Path(MNIST5K_DIR if directory is None else directory)
    for name, expected in MNIST5K_SHA256.items():
        size = MNIST5K_SIZES[name]
        read_shipped(directory / name, size, expected, "the MNIST sample", IDXFormatError)
    return directory


def load_mnist5k(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    dtype: Any = None,
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """Load the 5,000-digit MNIST sample shipped with xpnn: MNIST with no network.

    The sample (:data:`MNIST5K_DIR`) holds 4,000 training and 1,000 test
    images of real MNIST digits, 500 per class, in the four :data:`FILES`.
    Each file is checked against :data:`MNIST5K_SHA256` first
    (:func:`check_mnist5k`), then read as :func:`load_mnist_dir` reads a
    folder. It is a sample, not the full MNIST: accuracies on it are lower
    than the book's full-MNIST ones. :func:`load_mnist` never falls back to
    it; the full MNIST is a download.

    Args:
        normalize: Scale pixels to floats in [0, 1]; else uint8 0..255.
        flatten: Images as ``(4000, 784)`` rows; else ``(4000, 1, 28, 28)``.
        one_hot_label: Labels as ``(N, 10)`` one-hot floats; else ``(N,)``
            int64 class numbers.
        dtype: The float dtype of normalized images and one-hot labels
            (``"float32"`` or ``"float64"``); the backend's default float
            dtype if omitted.

    Returns:
        ``((x_train, t_train), (x_test, t_test))`` with N = 4000 and 1000,
        arrays of the active backend.

    Raises:
        FileNotFoundError: A file of the sample is missing (a broken install).
        IDXFormatError: A file is damaged (wrong size or SHA-256).
        ValueError: ``dtype`` is not a float dtype.
    """
    directory = check_mnist5k(MNIST5K_DIR)
    return load_mnist_dir(
        directory, normalize=normalize, flatten=flatten, one_hot_label=one_hot_label, dtype=dtype
    )

"""Saving and loading trained models as ``.npz`` files, without pickle.

A saved file holds each array of the model as a plain ``.npy`` member and one
JSON string of metadata: the model class and its ``config`` (for a
:class:`~xpnn.models.LayeredNet`, each layer's kind and sizes), the dtype and
the xpnn version. It loads onto any backend: a model trained on the GPU opens
on a laptop.

    xpnn.io.save(net, "net.npz")
    net = xpnn.io.load("net.npz")            # on the active backend

A file from someone else is hostile until checked, and checking costs
little: :func:`load` reads the metadata (at most :data:`MODEL_META_CHARS`
characters), computes from it the names, shapes and dtype of every array
without building the model, checks each zip entry (stored or deflated, not
encrypted, no duplicate names, sizes that fit the file and the declared
shape) and each ``.npy`` header against them, and only then reads the data
and builds the model. Nothing is unpickled. Limits: :data:`MAX_ELEMENTS`
parameters per model, :data:`MAX_MEMBERS` arrays per file, a deflated member
larger than 16 MiB may not inflate more than :data:`MAX_RATIO` times.

Writing goes to a temporary ``.NAME.XXXXXXXX.part`` beside the target, which
is renamed into place (mode ``0o666 & ~umask``), so an interrupted save never
leaves a half-written file; a temporary file of the same target left by a
killed save (untouched for a minute) is removed by the next save. Links,
devices, FIFOs and directories are never replaced.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import secrets
import stat
import struct
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.backend import _dtype_name, asarray, backend_of, get_backend, resolve_dtype, to_numpy

__all__ = [
    "MAX_ELEMENTS",
    "MAX_MEMBERS",
    "MAX_RATIO",
    "MODEL_META_CHARS",
    "ModelFileError",
    "load",
    "load_params",
    "read_checkpoint",
    "save",
    "write_checkpoint",
]

_META = "__xpnn__"
#: Checkpoint format (:func:`write_checkpoint`).
FORMAT = 1
#: Model file format written by :func:`save`: 2 may describe a LayeredNet by
#: its layers; 1 (xpnn before it) has the same layout for the book's models.
MODEL_FORMAT = 2
_MODEL_FORMATS = (1, 2)

#: Most parameters (array elements) a model file may hold.
MAX_ELEMENTS = 2**31
#: Most arrays in one file.
MAX_MEMBERS = 100_000
#: Most a deflated member over 16 MiB may inflate (xpnn writes uncompressed;
#: real weights compress about 1.1:1, zeros 1000:1).
MAX_RATIO = 100
#: Most characters of JSON metadata in a model file (about 10 000 layers).
MODEL_META_CHARS = 2**20
#: Most characters of JSON metadata in a checkpoint (its loss curves grow
#: with the run: about three million recorded losses).
CHECKPOINT_META_CHARS = 2**26

_FLOATS = ("float16", "float32", "float64")
_RATIO_FLOOR = 16 * 2**20
_MAX_HEADER = 10_000  # bytes of a .npy header dict (numpy's own limit)
_MAX_DIRECTORY = 64 * 2**20  # bytes of zip central directory (MAX_MEMBERS entries fit)
_FILE_ELEMENTS = 4 * MAX_ELEMENTS  # a checkpoint: parameters, two optimizer states, extras
_STALE_SECONDS = 60.0


class ModelFileError(ValueError):
    """A model file is damaged, crafted, not xpnn's, or does not fit its model.

    Also raised by :func:`save` and :func:`write_checkpoint` for a path they
    will not replace (a link, a device, a directory).
    """


def _kind(value: Any) -> str:
    """A JSON value's type, for error messages."""
    return "null" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------
# Reading an .npz safely: check everything that costs little first
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    """A member's ``.npy`` header, checked to fit its zip entry: no data yet."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool = False
    offset: int = 0  # of the data in the member

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _file_type(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "special file")


def _open_regular(path: Path) -> Any:
    """``path`` opened for binary reading, refused unless a regular file.

    Non-blocking, so that a FIFO put there does not hang the open; then
    checked on the open descriptor (no race with the check).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, not a model file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot open it: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ModelFileError(
            f"{path}: is a {_file_type(mode)}, not a regular file; xpnn reads model files only"
        )
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _not_a_zip(head: bytes) -> str:
    """Why a file without a zip directory is not a model file, from its first bytes."""
    if not head:
        return "an empty file"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "PICKLE"
    if head.startswith(b"\x93NUMPY"):
        return "a single .npy array, not an .npz (write models with xpnn.io.save)"
    return "no zip directory found: truncated, random or another format"


def _directory_size(f: Any, size: int) -> int:
    """The zip central directory's size in bytes (as zipfile will read it), or -1.

    zipfile builds an object per entry of a directory that a tiny crafted
    file can make huge; its size is read here first, from the end record
    (and the zip64 one, which zipfile prefers).
    """
    tail = min(size, 22 + 0xFFFF)
    f.seek(size - tail)
    data = f.read(tail)
    at = len(data) - 22 if data[-22:-18] == b"PK\x05\x06" else data.rfind(b"PK\x05\x06")
    if at < 0 or len(data) - at < 22:
        return -1
    (cd_size,) = struct.unpack("<I", data[at + 12 : at + 16])
    if at >= 20 + 56 and data[at - 20 : at - 16] == b"PK\x06\x07":
        record = data[at - 76 : at - 20]
        if record[:4] == b"PK\x06\x06":
            (cd_size,) = struct.unpack("<Q", record[40:48])
    elif at < 76 and size > tail:  # a zip64 locator cut off by our tail: assume the worst
        return _MAX_DIRECTORY + 1
    return cd_size


class _NpzFile:
    """An ``.npz`` opened and checked up to its data: entries, metadata, headers.

    Construction reads the zip directory, the metadata and every ``.npy``
    header, and checks them (see the module docs); :meth:`read` then reads
    one array, allocating only what its checked header declares.

    Attributes:
        meta: The metadata, a JSON object (dict).
        headers: Every other member's header by name (without ``.npy``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ModelFileError: Anything else (the message says what).
    """

    def __init__(self, path: Path, meta_chars: int):
        self.path = path
        self._file = _open_regular(path)
        try:
            self._open(meta_chars)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> _NpzFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_zip", None) is not None:
            self._zip.close()
        self._file.close()

    def _error(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {message}")

    def _open(self, meta_chars: int) -> None:
        f, size = self._file, os.fstat(self._file.fileno()).st_size
        cd_size = _directory_size(f, size)
        if cd_size < 0:
            f.seek(0)
            reason = _not_a_zip(f.read(8))
            if reason == "PICKLE":
                raise self._error(
                    "refused to load: it holds pickled Python objects (a pickle file), and "
                    "unpickling can run code; xpnn reads only plain arrays (.npz files "
                    "written by xpnn.io.save)"
                )
            raise self._error(f"not an .npz file ({reason})")
        if cd_size > _MAX_DIRECTORY:
            raise self._error(
                f"its zip directory declares {cd_size} bytes, more than a model file of at "
                f"most {MAX_MEMBERS} arrays needs: refused"
            )
        try:
            self._zip = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error) as exc:
            raise self._error(f"not an .npz file ({exc})") from None
        self._entries = self._check_entries(self._zip.infolist(), size)
        if _META not in self._entries:
            raise self._error(
                "no xpnn metadata; it was not written by xpnn.io.save (the book's pickle "
                "files are not loaded, on purpose: pickle can run code)"
            )
        self.meta = self._read_meta(meta_chars)
        self.headers = {n: self._header(n) for n in self._entries if n != _META}
        total = sum(h.size for h in self.headers.values())
        if total > _FILE_ELEMENTS:
            raise self._error(f"its arrays declare {total} elements, more than xpnn reads")

    def _check_entries(self, infos: list[zipfile.ZipInfo], size: int) -> dict[str, Any]:
        if len(infos) > MAX_MEMBERS:
            raise self._error(f"{len(infos)} members, more than xpnn reads ({MAX_MEMBERS})")
        twice = sorted(n for n, c in Counter(i.filename for i in infos).items() if c > 1)
        if twice:
            raise self._error(
                f"duplicate members {twice[:5]!s:.200}: a crafted file (two arrays of the same "
                "name, and readers disagree on which one counts); refused"
            )
        entries: dict[str, Any] = {}
        for info in infos:
            where = f"member {info.filename!r:.100}"
            if not info.filename.endswith(".npy"):
                raise self._error(f"{where} is not an .npy array; xpnn files hold only arrays")
            if info.flag_bits & 0x1:
                raise self._error(f"{where} is encrypted; xpnn files are not")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self._error(
                    f"{where} is compressed with zip method {info.compress_type}; xpnn reads "
                    "stored or deflated members (numpy.savez, numpy.savez_compressed)"
                )
            if info.header_offset + 30 + info.compress_size > size:
                raise self._error(
                    f"{where} claims {info.compress_size} bytes beyond the end of the file "
                    f"({size} bytes): the file is truncated"
                )
            stored = info.compress_type == zipfile.ZIP_STORED
            if stored and info.compress_size != info.file_size:
                raise self._error(f"{where} is damaged: stored sizes disagree")
            if info.file_size > max(_RATIO_FLOOR, MAX_RATIO * info.compress_size):
                raise self._error(
                    f"{where} would inflate {info.compress_size} bytes to {info.file_size} "
                    f"(more than {MAX_RATIO}:1): a zip bomb, or arrays of zeros; refused "
                    "(xpnn.io.save writes uncompressed files)"
                )
            entries[info.filename[: -len(".npy")]] = info
        return entries

    def _read_header(self, stream: Any, name: str) -> _Header:
        """A member's header from its stream, reading the header only."""
        where = _member_name(name)
        start = stream.read(8)
        if len(start) < 8 or start[:6] != b"\x93NUMPY":
            raise self._error(f"{where} is not an .npy array (damaged or crafted)")
        version = (start[6], start[7])
        if version not in ((1, 0), (2, 0)):
            raise self._error(f"{where} has .npy version {version}; xpnn reads 1.0 and 2.0")
        length_format = "<H" if version == (1, 0) else "<I"
        raw = stream.read(struct.calcsize(length_format))
        if len(raw) < struct.calcsize(length_format):
            raise self._error(f"{where} is truncated (in its .npy header)")
        length = struct.unpack(length_format, raw)[0]
        if length > _MAX_HEADER:
            raise self._error(f"{where} has an .npy header of {length} bytes: crafted; refused")
        header = stream.read(length)
        if len(header) < length:
            raise self._error(f"{where} is truncated (in its .npy header)")
        parse = np.lib.format.read_array_header_1_0
        if version == (2, 0):
            parse = np.lib.format.read_array_header_2_0
        try:
            # numpy's own parser (a literal dict, no eval), on the bytes read above.
            shape, fortran_order, dtype = parse(io.BytesIO(raw + header))
        except Exception as exc:  # any failure on crafted bytes is the file's
            raise self._error(f"{where} has a corrupt .npy header ({exc!s:.200})") from None
        if dtype.hasobject:
            raise self._error(
                f"refused to load: {where} holds pickled Python objects, and unpickling can "
                "run code; xpnn reads only plain arrays (.npz files written by xpnn.io.save)"
            )
        if len(shape) > 32 or any(d < 0 for d in shape):
            raise self._error(f"{where} declares an impossible shape {shape!s:.100}")
        offset = len(start) + len(raw) + length
        return _Header(name, tuple(shape), dtype, bool(fortran_order), offset)

    def _member(self, name: str) -> Any:
        try:
            return self._zip.open(self._entries[name])
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise self._error(f"{_member_name(name)} is damaged ({exc!s:.200})") from None

    def _header(self, name: str, *, kinds: str = "fiub") -> _Header:
        info, where = self._entries[name], _member_name(name)
        try:
            with self._member(name) as stream:
                header = self._read_header(stream, name)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, struct.error) as exc:
            raise self._error(f"{where} is damaged ({exc!s:.200})") from None
        shape, dtype = header.shape, header.dtype
        if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
            what = "a string" if kinds == "U" else "numbers"
            raise self._error(f"{where} has dtype {dtype!s:.100}, not {what}")
        needs = header.offset + header.size * dtype.itemsize
        if info.file_size != needs:
            raise self._error(
                f"{where} declares shape {shape} of {dtype.name} ({needs} bytes "
                f"with its header) but holds {info.file_size} bytes: truncated or crafted"
            )
        return header

    def _read_meta(self, meta_chars: int) -> dict[str, Any]:
        info = self._entries[_META]
        if info.file_size > 4 * meta_chars + _MAX_HEADER + 12:
            raise self._error(
                f"its metadata takes {info.file_size} bytes, more than xpnn reads "
                f"({meta_chars} characters, 4 bytes each)"
            )
        header = self._header(_META, kinds="U")
        if header.shape != ():
            raise self._error(f"corrupt metadata: an array of shape {header.shape}, not a string")
        if header.dtype.itemsize // 4 > meta_chars:  # UTF-32: 4 bytes a character
            raise self._error(
                f"its metadata has {header.dtype.itemsize // 4} characters, more than xpnn "
                f"reads ({meta_chars} characters)"
            )
        try:
            text = str(self._read_array(header).item())
            meta = json.loads(text, object_pairs_hook=_unique_keys)
        except RecursionError:
            raise self._error("corrupt metadata: JSON nested too deep") from None
        except ValueError as exc:  # JSONDecodeError, duplicate keys, huge ints
            raise self._error(f"corrupt metadata ({exc!s:.200})") from None
        if not isinstance(meta, dict):
            raise self._error(f"corrupt metadata: a JSON {_kind(meta)}, not an object")
        return meta

    def read(self, name: str) -> np.ndarray:
        """One member's array (native byte order), after its checked header."""
        return self._read_array(self.headers[name])

    def _read_array(self, header: _Header) -> np.ndarray:
        # By the checked header, not by numpy.load's reading it again: the
        # allocation is what was checked even if the file changes meanwhile.
        where = _member_name(header.name)
        flat = np.empty(header.size, header.dtype)
        buffer = flat.view(np.uint8)
        try:
            with self._member(header.name) as stream:
                if len(stream.read(header.offset)) < header.offset:
                    raise EOFError("the header is gone")
                done, step = 0, 16 * 2**20  # zipfile copies each read: bound the copy
                while done < buffer.size:
                    chunk = stream.read(min(step, buffer.size - done))
                    if not chunk:
                        raise EOFError(f"{done} of {buffer.size} data bytes")
                    buffer[done : done + len(chunk)] = np.frombuffer(chunk, np.uint8)
                    done += len(chunk)
                if stream.read(1):  # the end of the member, where zipfile checks the CRC
                    raise ValueError("data beyond the declared shape")
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
            raise self._error(f"{where} is damaged ({exc!s:.200})") from None
        array = flat.reshape(header.shape, order="F" if header.fortran_order else "C")
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        return array


def _member_name(name: str) -> str:
    """How messages name an array's zip member (as ``unzip -l`` lists it)."""
    return f"member {name + '.npy'!r:.100}"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's dict, refusing a key given twice (json keeps the last silently)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        twice = sorted(k for k, c in Counter(k for k, _ in pairs).items() if c > 1)
        raise ValueError(f"key {twice[0]!r:.80} given twice")
    return result


# --------------------------------------------------------------------------
# Writing: atomically, never through a link or over a device
# --------------------------------------------------------------------------


def _check_target(path: Path) -> None:
    """Refuse to replace anything but a regular file (or nothing).

    Raises:
        ModelFileError: ``path`` is a symbolic link, a directory, a device...
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise ModelFileError(
            f"{path} is a symbolic link (to {os.readlink(path)}); xpnn replaces files, not "
            "links: save to the real path instead"
        )
    if not stat.S_ISREG(mode):
        raise ModelFileError(
            f"{path} is a {_file_type(mode)}, not a regular file; xpnn replaces only regular "
            "files: save to another path"
        )


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new hidden ``.NAME.XXXXXXXX.part`` beside ``path``, opened for writing.

    Created with mode 0o666, so the umask gives it the usual permissions
    (mkstemp's 0o600 would stay on the renamed file).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _remove_stale(path: Path, keep: Path) -> None:
    """Remove temporary files of ``path`` that a killed save left behind.

    Only ``.NAME.XXXXXXXX.part`` regular files of this user, untouched for
    a minute (a save in progress writes to its own continually). The race:
    a concurrent save of the same file stalled for longer would fail at its
    rename, loudly, leaving the target as it was.
    """
    pattern = re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}\.part")
    now = time.time()
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if entry.name == keep.name or not pattern.fullmatch(entry.name):
            continue
        with contextlib.suppress(OSError):  # gone already, or not ours to remove
            st = entry.stat(follow_symlinks=False)
            ours = not hasattr(os, "getuid") or st.st_uid == os.getuid()
            if stat.S_ISREG(st.st_mode) and ours and now - st.st_mtime > _STALE_SECONDS:
                os.unlink(entry.path)


def _write_npz(
    path: str | os.PathLike[str],
    arrays: dict[str, np.ndarray],
    meta: dict,
    meta_chars: int = MODEL_META_CHARS,
) -> Path:
    """Write arrays and JSON metadata atomically: a temp file, then a rename.

    Whatever interrupts the write (an error, Ctrl-C, a full disk), ``path``
    keeps its previous content and no partial file is left beside it.

    Raises:
        ModelFileError: ``path`` is a link, a directory or a device.
        ValueError: More metadata or array elements than xpnn reads back.
    """
    path = Path(path)
    _check_target(path)
    text = json.dumps(meta)
    if len(text) > meta_chars:
        raise ValueError(
            f"cannot save {path}: {len(text)} characters of metadata, more than xpnn reads "
            f"back ({meta_chars})"
        )
    total = sum(a.size for a in arrays.values())
    if total > _FILE_ELEMENTS or len(arrays) >= MAX_MEMBERS:
        raise ValueError(f"cannot save {path}: {len(arrays)} arrays of {total} elements in all")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **{_META: np.array(text)})
            f.flush()
            os.fsync(f.fileno())
        _check_target(path)  # again, just before the rename: it may have changed since
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _remove_stale(path, keep=tmp)
    return path


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def _models() -> dict[str, type]:
    from xpnn.models import MODELS

    return MODELS


def _named_params(model: Any) -> dict[str, Any]:
    """The model's parameters by name: dict keys, or ``params.0`` ... for lists.

    The names of a checkpoint's ``model/`` arrays (a saved model file names
    its arrays by the model's ``named_arrays()``, the same for the book's
    models).
    """
    if isinstance(model, _models()["SimpleNet"]):
        return {"W": model.W}
    params = model.params
    if isinstance(params, dict):
        return dict(params)
    return {f"params.{i}": p for i, p in enumerate(params)}


def _file_arrays(model: Any) -> dict[str, Any]:
    """The arrays a model file holds for ``model``, by name."""
    named = getattr(model, "named_arrays", None)
    return named() if callable(named) else _named_params(model)


def save(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write a model's arrays and description to an ``.npz`` file.

    The description is data (JSON), never pickle: the model's class and
    ``config``; for a :class:`~xpnn.models.LayeredNet`, each layer's kind and
    config, so any model made of registered layers (built from Affine,
    Relu, ... or by a new layer that declares its config) saves.

    The file is written to a temporary name beside ``path`` and renamed into
    place, so an interrupted save never leaves a half-written file.

    Args:
        model: A SimpleNet, TwoLayerNet, LayeredTwoLayerNet or LayeredNet
            (any backend, float16/32/64).
        path: Where to write (``.npz`` is the usual suffix); not a link or
            a device.

    Returns:
        The path written.

    Raises:
        TypeError: Another class (a LayeredNet subclass too: it may compute
            otherwise than the LayeredNet it would load as), or a layer not
            in :data:`xpnn.layers.LAYERS`.
        ValueError: A layer's arrays do not fit its declared config, mixed
            dtypes, or more than :data:`MAX_ELEMENTS` parameters.
        ModelFileError: ``path`` is a link, a directory or a device.
    """
    from xpnn import __version__
    from xpnn.models import LayeredNet

    name = type(model).__name__
    cls = _models().get(name)
    if cls is not type(model):
        if isinstance(model, LayeredNet):
            raise TypeError(
                f"cannot save a {name}: a LayeredNet subclass may compute otherwise than the "
                "plain LayeredNet it would load as; save xpnn.LayeredNet(net.layers, "
                "net.loss_layer, net.input_size), which shares its arrays"
            )
        raise TypeError(
            f"cannot save a {name}; supported: {', '.join(_models())} (any LayeredNet of "
            "registered layers)"
        )
    path = Path(path)
    _check_target(path)  # before the device-to-host copies
    config = model.config
    live = _file_arrays(model)
    shapes = {k: tuple(int(d) for d in a.shape) for k, a in live.items()}
    if shapes != cls.array_shapes(config):
        raise ValueError(
            f"cannot save this {name}: its arrays {shapes} do not fit its config {config} "
            f"(which implies {cls.array_shapes(config)}); a layer's params do not match its "
            "declared config"
        )
    first: dict[int, str] = {}
    for key, a in live.items():
        if first.setdefault(id(a), key) != key:
            # Two names, one array (tied weights): loaded back, they would be two.
            raise ValueError(
                f"cannot save this {name}: {first[id(a)]} and {key} are the same array "
                "(shared between layers), which a file cannot record yet"
            )
    dtypes = sorted({_dtype_name(a.dtype) for a in live.values()})
    if len(dtypes) != 1 or dtypes[0] not in _FLOATS:
        raise ValueError(f"cannot save this {name}: its arrays are {dtypes}, not one float dtype")
    total = sum(math.prod(s) for s in shapes.values())
    if total > MAX_ELEMENTS:
        raise ValueError(f"cannot save this {name}: {total} parameters, over {MAX_ELEMENTS}")
    arrays = {key: to_numpy(a) for key, a in live.items()}
    meta = {
        "format": MODEL_FORMAT,
        "kind": "model",
        "xpnn": __version__,
        "model": name,
        "config": config,
        "dtype": dtypes[0],
        "params": {key: list(s) for key, s in shapes.items()},
    }
    return _write_npz(path, arrays, meta, MODEL_META_CHARS)


def _check_model_file(npz: _NpzFile) -> tuple[type, Any, str]:
    """The class, config and dtype of a model file whose members all fit them.

    Everything is checked from the metadata and the ``.npy`` headers; no
    array is read and no model built.
    """
    path, meta = npz.path, npz.meta
    if meta.get("kind") == "checkpoint":
        raise ModelFileError(
            f"{path}: a training checkpoint, not a saved model; resume it with "
            "Trainer.fit(resume=...) or read it with xpnn.io.read_checkpoint"
        )
    version = meta.get("format")
    if version is None:
        raise ModelFileError(f"{path}: corrupt metadata: no format number (not from xpnn.io.save)")
    if not (_is_int(version) and version in _MODEL_FORMATS):
        raise ModelFileError(
            f"{path}: model file format {version!r:.40}, but this xpnn reads formats "
            f"{', '.join(map(str, _MODEL_FORMATS))}; it was written by xpnn "
            f"{meta.get('xpnn')!r:.40}: load it with that version or a newer one"
        )
    models = _models()
    model = meta.get("model")
    cls = models.get(model) if isinstance(model, str) else None
    if cls is None:
        raise ModelFileError(f"{path}: unknown model {model!r:.80}; known: {', '.join(models)}")
    stored = meta.get("dtype")
    if stored not in _FLOATS:
        raise ModelFileError(f"{path}: corrupt metadata: dtype {stored!r:.40}, not {_FLOATS}")
    config = meta.get("config")
    try:
        expected = cls.array_shapes(config)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad model configuration: {exc}") from None
    total = sum(math.prod(s) for s in expected.values())
    if total > MAX_ELEMENTS:
        raise ModelFileError(
            f"{path}: declares a {model} of {total} parameters, more than xpnn loads "
            f"({MAX_ELEMENTS})"
        )
    headers = npz.headers
    missing = sorted(set(expected) - set(headers))
    extra = sorted(set(headers) - set(expected))
    if missing or extra:
        raise ModelFileError(
            f"{path}: parameters do not fit {model}: "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    wrong = [
        f"{k} {headers[k].shape} (expected {shape})"
        for k, shape in expected.items()
        if headers[k].shape != shape
    ]
    if wrong:
        raise ModelFileError(f"{path}: wrong shapes: {', '.join(wrong)}")
    for key, header in headers.items():
        if header.dtype.kind != "f":
            raise ModelFileError(f"{path}: {key} has dtype {header.dtype}, not float")
        if header.dtype.name != stored:
            raise ModelFileError(
                f"{path}: {key} is {header.dtype.name}, but the metadata says {stored}: "
                "damaged or edited"
            )
    return cls, config, stored


def _converted(
    source: str, arrays: Mapping[str, np.ndarray], dtypes: Mapping[str, str], allow_nonfinite: bool
) -> dict[str, np.ndarray]:
    """Host arrays in their target dtypes, refusing NaN, inf and values that overflow."""
    out = {}
    for key, a in arrays.items():
        with np.errstate(over="ignore", invalid="ignore"):
            b = a.astype(dtypes[key], copy=False)
        if not allow_nonfinite and not np.isfinite(b).all():
            if np.isfinite(a).all():
                raise ModelFileError(
                    f"{source}: {key} holds values up to {np.abs(a).max():.3g}, beyond the "
                    f"{dtypes[key]} range: they would load as infinite; load with "
                    f"dtype='{a.dtype.name}', or pass allow_nonfinite=True"
                )
            raise ModelFileError(
                f"{source}: {key} holds NaN or infinite values; a trained model has none, so "
                "the file is damaged (pass allow_nonfinite=True to load them anyway)"
            )
        out[key] = b
    return out


def load(path: str | os.PathLike[str], *, dtype: Any = None, allow_nonfinite: bool = False) -> Any:
    """Rebuild a saved model on the active backend.

    The whole file is checked before anything is allocated for it (see the
    module docs), and the model is built only once its arrays are read and
    checked.

    Args:
        path: A file written by :func:`save` (any xpnn version).
        dtype: Float dtype of the parameters (the saved one if omitted).
        allow_nonfinite: Load NaN or infinite values (and values that
            overflow ``dtype``) instead of refusing the file.

    Returns:
        A model of the saved class and sizes, holding the saved parameters.

    Raises:
        ModelFileError: Not an xpnn model file, a damaged or crafted one, an
            unknown model or layer, parameters whose names, shapes or values
            do not fit (the message names them).
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``XPNN_BACKEND`` names no backend, or ``dtype`` (or the
            file's) is not a float dtype of the active backend.
    """
    backend = get_backend()  # a bad XPNN_BACKEND is the variable's fault, not the file's
    want = None if dtype is None else _float_name(backend, dtype, "dtype")
    path = Path(path)
    with _NpzFile(path, MODEL_META_CHARS) as npz:
        cls, config, stored = _check_model_file(npz)
        name = want or _float_name(backend, stored, f"{path} holds {stored} parameters;")
        host = {key: npz.read(key) for key in npz.headers}
    host = _converted(str(path), host, dict.fromkeys(host, name), allow_nonfinite)
    model = cls.from_config(config, dtype=name)
    _assign(_file_arrays(model), host)
    return model


def _float_name(backend: Any, dtype: Any, what: str) -> str:
    """The name of a float dtype the backend has (ValueError naming ``what`` otherwise)."""
    try:
        name = _dtype_name(resolve_dtype(backend.xp, dtype))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} {exc}; pass dtype='float32'") from None
    if name not in _FLOATS:
        raise ValueError(f"{what} {name} is not a float dtype; pass dtype='float32'")
    return name


def _assign(params: Mapping[str, Any], host: Mapping[str, np.ndarray]) -> None:
    """Copy checked host arrays into parameters in place: all copied over first."""
    new = {k: asarray(host[k], dtype=p.dtype, backend=backend_of(p)) for k, p in params.items()}
    for key, p in params.items():
        # In place, so the layers that hold these arrays see the new values.
        p[...] = new[key]


def load_params(
    model: Any,
    arrays: Mapping[str, Any],
    *,
    source: str = "arrays",
    allow_nonfinite: bool = False,
) -> None:
    """Copy named host arrays into a model's parameters, in place.

    All are checked before any is written. The names are those of a file
    :func:`save` writes (``W1``, ``params.0``, ``layers.0.W``...).

    Raises:
        ModelFileError: Missing, unexpected or wrongly shaped parameters,
            not floating point, or NaN, infinite or overflowing values
            (unless ``allow_nonfinite``).
    """
    params = _file_arrays(model)
    missing = sorted(set(params) - set(arrays))
    extra = sorted(set(arrays) - set(params))
    if missing or extra:
        raise ModelFileError(
            f"{source}: parameters do not fit {type(model).__name__}: "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    host = {k: to_numpy(arrays[k]) for k in params}
    wrong = [
        f"{k} {tuple(host[k].shape)} (expected {tuple(p.shape)})"
        for k, p in params.items()
        if tuple(host[k].shape) != tuple(p.shape)
    ]
    if wrong:
        raise ModelFileError(f"{source}: wrong shapes: {', '.join(wrong)}")
    for key, a in host.items():
        if not np.issubdtype(a.dtype, np.floating):
            raise ModelFileError(f"{source}: {key} has dtype {a.dtype}, not float")
    dtypes = {k: _dtype_name(p.dtype) for k, p in params.items()}
    _assign(params, _converted(source, host, dtypes, allow_nonfinite))


# --------------------------------------------------------------------------
# Training checkpoints (written by Trainer.fit)
# --------------------------------------------------------------------------


def _flatten_state(state: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Optimizer state {name: list/dict of arrays or None} -> host arrays + layout."""
    arrays: dict[str, np.ndarray] = {}
    layout: dict[str, Any] = {}
    for name, entry in state.items():
        if entry is None:
            layout[name] = None
        elif isinstance(entry, dict):
            layout[name] = ["dict", list(entry)]
            arrays.update({f"opt/{name}/{k}": to_numpy(v) for k, v in entry.items()})
        else:
            layout[name] = ["list", len(entry)]
            arrays.update({f"opt/{name}/{i}": to_numpy(v) for i, v in enumerate(entry)})
    return arrays, layout


def _check_host_array(source: str, name: str, host: np.ndarray, like: Any, fix: str) -> None:
    """A stored array must have parameter ``like``'s shape and dtype and be finite.

    ``fix`` says how to get a model of the stored dtype (the error's advice).
    ``host`` may be a member's header only (no values yet): its values are
    then checked when it is read.
    """
    if tuple(host.shape) != tuple(like.shape):
        raise ModelFileError(
            f"{source}: wrong shapes: {name} {tuple(host.shape)} (expected {tuple(like.shape)})"
        )
    if not np.issubdtype(host.dtype, np.floating):
        raise ModelFileError(f"{source}: {name} has dtype {host.dtype}, not float")
    want = _dtype_name(like.dtype)
    if host.dtype.name != want:
        # Resuming in another precision would not continue the same run (and
        # the optimizer refuses state of another dtype at its first update).
        raise ModelFileError(
            f"{source}: {name} is {host.dtype.name} in the checkpoint, {want} in this model; "
            f"{fix} dtype='{host.dtype.name}' to resume this run"
        )
    if isinstance(host, np.ndarray) and not np.isfinite(host).all():
        raise ModelFileError(
            f"{source}: {name} holds NaN or infinite values; xpnn never writes such a "
            "checkpoint, so the file was damaged or edited: resume from another one"
        )


def _unflatten_state(
    layout: dict[str, Any],
    arrays: dict[str, np.ndarray],
    params: Any,
    source: str,
    fix: str,
) -> dict[str, Any]:
    """Check the stored optimizer state against ``params`` and rebuild it on the host.

    Args:
        layout: ``{name: None | ["dict", keys] | ["list", n]}`` as written by
            :func:`_flatten_state` (names already checked).
        arrays: The ``opt/...`` arrays by ``name/key`` (prefix removed).
        params: The model's ``params`` (a mapping or a sequence of arrays).
        source: The file, for messages.
        fix: Advice for a dtype mismatch (see :func:`_check_host_array`).

    Returns:
        ``{name: None | {key: host array} | [host arrays]}``, keyed like ``params``.

    Raises:
        ModelFileError: A layout not keyed like ``params``, a missing or
            unexpected array, or one of the wrong shape, dtype or not finite.
    """
    if isinstance(params, Mapping):
        keys: list[Any] = list(params)
        expected: list[Any] = ["dict", [str(k) for k in keys]]
    else:
        keys = list(range(len(params)))
        expected = ["list", len(keys)]
    state: dict[str, Any] = {}
    used: set[str] = set()
    for name, spec in layout.items():
        if spec is None:
            state[name] = None
            continue
        keyed_alike = (
            isinstance(spec, list)
            and len(spec) == 2
            and spec[0] == expected[0]
            and (
                sorted(map(str, spec[1])) == sorted(expected[1])
                if expected[0] == "dict" and isinstance(spec[1], list)
                else _is_int(spec[1]) and spec[1] == expected[1]
            )
        )
        if not keyed_alike:
            raise ModelFileError(
                f"{source}: optimizer state {name!r} is stored as {spec!r}, but this model's "
                f"parameters are {expected!r}: the checkpoint is of another model"
            )
        entry: dict[Any, np.ndarray] = {}
        for key in keys:
            flat = f"{name}/{key}"
            host = arrays.get(flat)
            if host is None:
                raise ModelFileError(f"{source}: optimizer state opt/{flat} is missing")
            _check_host_array(source, f"opt/{flat}", host, params[key], fix)
            entry[key] = host
            used.add(flat)
        state[name] = entry if isinstance(params, Mapping) else [entry[k] for k in keys]
    stray = sorted(set(arrays) - used)
    if stray:
        raise ModelFileError(
            f"{source}: unexpected optimizer arrays {['opt/' + k for k in stray]}; "
            "the file was not written by xpnn's write_checkpoint"
        )
    return state


@dataclass(frozen=True)
class _Checkpoint:
    """A checkpoint read and checked against a model and an optimizer, not yet applied.

    Attributes:
        path: The file.
        progress: The JSON ``progress`` dict as written (its fields are the
            writer's business: ``Trainer.fit`` checks them).
        extra: The extra arrays by name, host NumPy arrays (unchecked).
        params: The parameters by name (see ``_named_params``), host arrays
            of the model's shapes and dtypes, finite.
        optimizer: ``{"optimizer", "hyperparams", "iter", "state"}`` for
            ``load_state_dict``, the state still on the host.
    """

    path: Path
    progress: dict[str, Any]
    extra: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    optimizer: dict[str, Any]


def _parse_checkpoint(path: str | os.PathLike[str], model: Any, optimizer: Any) -> _Checkpoint:
    """Read a checkpoint and check all of it against ``model`` and ``optimizer``.

    Changes nothing: the first phase of :func:`read_checkpoint`, so that a
    file that does not fit is refused before the model or the optimizer is
    touched. :func:`_restore_checkpoint` is the second.

    Raises:
        ModelFileError: Anything that does not fit (the message names it).
        TypeError: ``optimizer`` has no ``state_dict()``.
    """
    path = Path(path)
    with _NpzFile(path, CHECKPOINT_META_CHARS) as npz:
        meta = npz.meta
        current = _check_checkpoint_meta(path, meta, model, optimizer)
        # Names, shapes and dtypes from the headers, before any data is read;
        # then once more with the values.
        _check_checkpoint_arrays(path, meta, npz.headers, model, optimizer, current)
        arrays = {name: npz.read(name) for name in npz.headers}
    return _check_checkpoint_arrays(path, meta, arrays, model, optimizer, current)


def _check_checkpoint_meta(
    path: Path, meta: dict[str, Any], model: Any, optimizer: Any
) -> dict[str, Any]:
    """Check a checkpoint's metadata; return the optimizer's current ``state_dict()``."""
    if meta.get("kind") != "checkpoint":
        raise ModelFileError(f"{path}: not a training checkpoint (a saved model? use xpnn.io.load)")
    if not (_is_int(meta.get("format")) and meta["format"] == FORMAT):
        raise ModelFileError(
            f"{path}: checkpoint format {meta.get('format')!r}, but this xpnn reads format "
            f"{FORMAT}; resume it with the xpnn version that wrote it ({meta.get('xpnn')!r})"
        )
    for key, kind in (
        ("model", str),
        ("optimizer", dict),
        ("optimizer_layout", dict),
        ("progress", dict),
    ):
        if not isinstance(meta.get(key), kind):
            raise ModelFileError(
                f"{path}: corrupt checkpoint metadata: {key!r} must be a JSON "
                f"{'string' if kind is str else 'object'}, got {_kind(meta.get(key))}"
            )
    model_name = type(model).__name__
    if meta["model"] != model_name:
        raise ModelFileError(
            f"{path}: checkpoint of a {meta['model']}, cannot resume a {model_name}"
        )
    if not callable(getattr(optimizer, "state_dict", None)):
        raise TypeError(
            f"{type(optimizer).__name__} has no state_dict(): checkpoints need an optimizer "
            "from xpnn.optimizers"
        )
    current = optimizer.state_dict()
    opt_name = current["optimizer"]
    opt_meta = meta["optimizer"]
    if set(opt_meta) != {"optimizer", "hyperparams", "iter"}:
        raise ModelFileError(
            f"{path}: corrupt checkpoint metadata: 'optimizer' must have the keys "
            f"['hyperparams', 'iter', 'optimizer'], got {sorted(opt_meta)}"
        )
    if opt_meta["optimizer"] != opt_name:
        raise ModelFileError(
            f"{path}: checkpoint of optimizer {opt_meta['optimizer']}, not {opt_name}"
        )
    hyper, now = opt_meta["hyperparams"], current["hyperparams"]
    if (
        not isinstance(hyper, dict)
        or set(hyper) != set(now)
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in hyper.values())
    ):
        raise ModelFileError(
            f"{path}: corrupt checkpoint metadata: {opt_name} hyper-parameters must be "
            f"numbers named {sorted(now)}, got {hyper!r}"
        )
    changed = [name for name in now if float(hyper[name]) != float(now[name])]
    if changed:
        # Loading would silently replace the caller's choice (another run).
        stored = ", ".join(f"{name}={hyper[name]!r}" for name in changed)
        given = ", ".join(f"{name}={now[name]!r}" for name in changed)
        every = ", ".join(f"{name}={hyper[name]!r}" for name in now)
        raise ModelFileError(
            f"{path}: the checkpoint was written with {opt_name} {stored}, this optimizer "
            f"has {given}; create it as {opt_name}({every}) to resume the run (set other "
            "hyper-parameters after resuming, if that is what you mean)"
        )
    if not (_is_int(opt_meta["iter"]) and opt_meta["iter"] >= 0):
        raise ModelFileError(
            f"{path}: corrupt checkpoint metadata: the optimizer's 'iter' must be an int "
            f">= 0, got {opt_meta['iter']!r}"
        )
    return current


def _check_checkpoint_arrays(
    path: Path,
    meta: dict[str, Any],
    arrays: dict[str, Any],
    model: Any,
    optimizer: Any,
    current: dict[str, Any],
) -> _Checkpoint:
    """Check a checkpoint's arrays (headers or values) against the model and optimizer."""
    model_name = type(model).__name__
    opt_name = current["optimizer"]
    opt_meta = meta["optimizer"]
    groups: dict[str, dict[str, np.ndarray]] = {"model/": {}, "opt/": {}, "extra/": {}}
    stray = []
    for key, host in arrays.items():
        prefix = next((p for p in groups if key.startswith(p)), None)
        if prefix is None:
            stray.append(key)
        else:
            groups[prefix][key[len(prefix) :]] = host
    if stray:
        raise ModelFileError(
            f"{path}: unexpected arrays {sorted(stray)}; the file was not written by "
            "xpnn's write_checkpoint"
        )
    fix = f"create the {model_name} with"
    named = _named_params(model)
    stored = groups["model/"]
    missing, extra = sorted(set(named) - set(stored)), sorted(set(stored) - set(named))
    if missing or extra:
        raise ModelFileError(
            f"{path}: parameters do not fit {model_name}: "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    for key, p in named.items():
        _check_host_array(str(path), f"model/{key}", stored[key], p, fix)

    layout = meta["optimizer_layout"]
    if set(layout) != set(current["state"]):
        raise ModelFileError(
            f"{path}: corrupt checkpoint metadata: {opt_name} state entries "
            f"{sorted(layout)}, expected {sorted(current['state'])}"
        )
    state = _unflatten_state(layout, groups["opt/"], model.params, str(path), fix)
    loadable = {**opt_meta, "state": state}
    check = getattr(optimizer, "check_state_dict", None)
    if check is not None:
        try:
            check(loadable)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: {exc}") from None
    return _Checkpoint(path, meta["progress"], groups["extra/"], stored, loadable)


def _restore_checkpoint(checkpoint: _Checkpoint, model: Any, optimizer: Any) -> None:
    """Put a checked checkpoint's parameters and optimizer state in place.

    Every array is first copied to its parameter's backend and device; only
    then are the optimizer and the parameters changed (a failed copy, e.g.
    out of device memory, leaves both as they were).
    """
    named = _named_params(model)
    new = {
        k: asarray(checkpoint.params[k], dtype=p.dtype, backend=backend_of(p))
        for k, p in named.items()
    }
    params = model.params

    def on_device(host: np.ndarray, key: Any) -> Any:
        p = params[key]
        return asarray(host, dtype=p.dtype, backend=backend_of(p))

    state: dict[str, Any] = {}
    for name, entry in checkpoint.optimizer["state"].items():
        if entry is None:
            state[name] = None
        elif isinstance(entry, dict):
            state[name] = {k: on_device(host, k) for k, host in entry.items()}
        else:
            state[name] = [on_device(host, i) for i, host in enumerate(entry)]
    optimizer.load_state_dict({**checkpoint.optimizer, "state": state})  # checked: cannot refuse
    for key, p in named.items():
        # In place, so the layers that hold these arrays see the new values.
        p[...] = new[key]


def write_checkpoint(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any,
    progress: dict[str, Any],
    extra_arrays: dict[str, Any] | None = None,
) -> Path:
    """Write everything needed to resume training, atomically.

    Args:
        path: The checkpoint file (``.npz``).
        model: The model; its parameters are saved by name.
        optimizer: An optimizer with ``state_dict()``.
        progress: JSON-serialisable training position (epoch, iteration,
            RNG state, recorded curves, ...), stored as given.
        extra_arrays: Further arrays to store (e.g. a running loss sum).
    """
    from xpnn import __version__

    arrays = {f"model/{k}": to_numpy(p) for k, p in _named_params(model).items()}
    opt_state = optimizer.state_dict()
    opt_arrays, layout = _flatten_state(opt_state["state"])
    arrays.update(opt_arrays)
    arrays.update({f"extra/{k}": to_numpy(v) for k, v in (extra_arrays or {}).items()})
    meta = {
        "format": FORMAT,
        "kind": "checkpoint",
        "xpnn": __version__,
        "model": type(model).__name__,
        "optimizer": {k: opt_state[k] for k in ("optimizer", "hyperparams", "iter")},
        "optimizer_layout": layout,
        "progress": progress,
    }
    return _write_npz(path, arrays, meta, CHECKPOINT_META_CHARS)


def read_checkpoint(
    path: str | os.PathLike[str], model: Any, optimizer: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Restore a model's parameters and an optimizer's state from a checkpoint.

    The model and optimizer must be of the classes, sizes, dtype and
    hyper-parameters that wrote it. The whole file is checked first: a
    refused checkpoint leaves the model and the optimizer as they were.

    Returns:
        ``(progress, extra_arrays)`` as given to :func:`write_checkpoint`
        (the extra arrays as host NumPy arrays; the progress unchecked).

    Raises:
        ModelFileError: Not a checkpoint, of another model or optimizer, of
            other optimizer hyper-parameters (``lr``...) or another dtype,
            or arrays that do not fit (the message says which and how).
        TypeError: ``optimizer`` has no ``state_dict()``.
    """
    checkpoint = _parse_checkpoint(path, model, optimizer)
    _restore_checkpoint(checkpoint, model, optimizer)
    return checkpoint.progress, checkpoint.extra

"""Safe ``.npz`` files: reading a hostile file cheaply, writing atomically.

The one place where xpnn's files meet the disk. :class:`_NpzFile` opens only
regular files, reads the zip directory, checks every entry (stored or
deflated, not encrypted, no duplicate names, sizes that fit the file) and
the metadata (bounded size and nesting, a JSON object) and each ``.npy``
header before any data is read, so a file that declares 10**12 floats or a
member that would inflate to gigabytes costs a few kilobytes to refuse.
Nothing is unpickled. Limits: :data:`MAX_ELEMENTS` parameters per model,
:data:`MAX_MEMBERS` arrays per file, a deflated member larger than 16 MiB may
not inflate more than :data:`MAX_RATIO` times.

:func:`_write_npz` writes to a temporary ``.NAME.XXXXXXXX.part`` beside the
target and renames it into place (mode ``0o666 & ~umask``), so an
interrupted write never leaves a half-written file; a temporary file of the
same target left by a killed write (untouched for a minute) is removed by
the next one. Links, devices, FIFOs and directories are never replaced.
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (where missing folders would be made)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def missing_folder(path: str | os.PathLike[str]) -> Path | None:
    """The first folder above the file ``path`` that does not exist yet, or None.

    The folder a write of ``path`` creates (with those under it): xpnn's
    writers (:func:`xpnn.io.save`, checkpoints, figures) create a missing
    parent folder; the ``xpnn`` command says so when it does
    (:mod:`xpnn.cli.paths`). None when the parent folder exists, or when the
    nearest existing ancestor is not a folder (:func:`check_output_path`
    refuses that path).
    """
    parent = Path(path).parent  # as given: the message shows the user's path
    ancestor = nearest_existing(parent)
    if ancestor == parent or not ancestor.is_dir():
        return None
    while parent.parent != ancestor:
        parent = parent.parent
    return parent


def check_output_path(
    path: str,
    option: str,
    formats: Sequence[str] = (),
    example: str = "out",
    links: bool = True,
) -> Path:
    """Check that a file can be written at ``path``, before any work is done.

    The file may exist (it is replaced) if it is a writable regular file; its
    parent folder may be missing if the nearest existing ancestor is a folder
    this process can write in: the writer creates it (:func:`missing_folder`
    names it, so that a command can say so). Nothing is created here.

    Args:
        path: The path given on the command line.
        option: The option's name, for the message (``"--plot"``).
        formats: Allowed extensions (lower case, with the dot); any if empty.
        example: A file name to suggest when ``path`` is a folder.
        links: Whether ``path`` may be a symbolic link (:func:`xpnn.io.save`
            replaces files, never links).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: The path cannot be written: empty, a wrong extension, a
            folder, not a regular file, not writable, under a file, or in a
            folder that cannot be written or created. The message names the
            option, the path and the fix.
    """
    if not path:
        raise ValueError(f"{option}: the file name is empty")
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name, e.g. {out / example}")
    if formats and out.suffix.lower() not in formats:
        raise ValueError(
            f"{option} {path}: the extension must be one of {', '.join(formats)} "
            "(it chooses the format)"
        )
    if out.is_symlink() and not links:
        raise ValueError(
            f"{option} {path} is a symbolic link (to {os.readlink(out)}); give the real path"
        )
    if out.exists() or out.is_symlink():
        if not out.is_file():
            raise ValueError(f"{option} {path} exists and is not a regular file; give a file name")
        if not os.access(out, os.W_OK):
            raise ValueError(f"{option} {path}: the file exists and is not writable")
    ancestor = nearest_existing(out.absolute().parent)
    if not ancestor.is_dir():
        raise ValueError(
            f"{option} {path}: {ancestor} is a file, not a folder; choose another path"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        what = "write in" if ancestor == out.absolute().parent else "create folders in"
        raise ValueError(f"{option} {path}: cannot {what} {ancestor} (permission denied)")
    return out


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


def stale_part_files(target: Path) -> list[tuple[os.DirEntry, os.stat_result, float]]:
    """The temporary files of ``target`` that an interrupted write may have left.

    xpnn writes ``target`` through a hidden ``.NAME.XXXXXXXX.part`` beside it
    (model files, checkpoints, downloads). Returns those that are regular
    files (not links), with their ``lstat`` and their age in seconds since
    the last write; each writer decides which are stale. Best effort: an
    unreadable folder or entry is skipped.
    """
    pattern = re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}\.part")
    now = time.time()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    found = []
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        with contextlib.suppress(OSError):  # gone already
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                found.append((entry, st, now - st.st_mtime))
    return found


def _remove_stale(path: Path, keep: Path) -> None:
    """Remove temporary files of ``path`` that a killed save left behind.

    Only ``.NAME.XXXXXXXX.part`` regular files of this user, untouched for
    a minute (a save in progress writes to its own continually). The race:
    a concurrent save of the same file stalled for longer would fail at its
    rename, loudly, leaving the target as it was.
    """
    for entry, st, age in stale_part_files(path):
        ours = not hasattr(os, "getuid") or st.st_uid == os.getuid()
        if entry.name != keep.name and ours and age > _STALE_SECONDS:
            with contextlib.suppress(OSError):  # gone already, or not ours to remove
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

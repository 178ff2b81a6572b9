"""The book's weight files: a restricted unpickler, and ``save_params``/``load_params``.

The book ships trained weights as pickles (vol. 1: ``ch07/params.pkl``,
``ch08/deep_convnet_params.pkl``, a dict ``{'W1': array, 'b1': array, ...}``;
vol. 2's ``BaseModel`` writes a list of float16 arrays). Unpickling can run
any code, so :func:`load_book_pickle` never calls :func:`pickle.load`: a
restricted unpickler admits only what NumPy arrays need, and each of those
through a checked stand-in, never by importing the module the file names:

- ``numpy.core.multiarray._reconstruct`` (``numpy._core...`` in NumPy 2):
  only as NumPy writes it, ``(numpy.ndarray, (0,), b'b')``, an empty array;
- ``numpy.ndarray`` and ``numpy.dtype``: a dtype of booleans, integers or
  floats only (an object dtype, whose elements are pickles of their own, and
  structured dtypes are refused);
- ``numpy.core.numeric._frombuffer`` (NumPy's protocol-5 form), checked as
  the array state below;
- ``_codecs.encode`` and ``bytes`` (how protocols 0 to 2 write bytes): a
  latin-1 string, or nothing.

An array's state is checked before NumPy sees it: its shape, its dtype and
its data, which must be exactly ``prod(shape) * itemsize`` bytes of the file
itself, so a pickle claiming 10**12 floats costs nothing to refuse. The file
is at most :data:`MAX_PICKLE_BYTES` (checked from its size before it is read)
and holds dicts, lists and tuples of arrays, numbers and strings. Every other
global (``os.system``, ``builtins.eval``, ``subprocess.Popen``...) and every
opcode that builds other objects (``INST``, ``OBJ``, ``NEWOBJ``, extensions,
persistent ids, out-of-band buffers) is refused with
:class:`BookPickleError`, naming the file and what it asked for, before
anything is called.

:func:`save_params` and :func:`load_params` are what the book's models'
methods of the same names do (:class:`xpnn.models.book_params.BookParams`):
they write xpnn's safe format (:func:`xpnn.io.save`'s ``.npz`` content, no
pickle) to exactly the name given, ``params.pkl`` included, and read that
format or a book pickle, assigning into the model's live ``params`` in place.
A book list holding a tied weight twice (the book's ``BetterRnnlm.pkl``: 9
arrays, ``embed_W.T`` again before ``affine_b``) loads where the model's
``book_aliases`` names the repeat, once it is checked to be, bit for bit,
the weight transposed.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import stat
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from xpnn.backend import _dtype_name
from xpnn.io.npz import MODEL_META_CHARS, ModelFileError, _NpzFile, check_output_path
from xpnn.io.saving import (
    _assign,
    _check_model_file,
    _check_names,
    _converted,
    _named_params,
    save,
)
from xpnn.io.saving import (
    load_params as _load_arrays,
)

__all__ = ["MAX_PICKLE_BYTES", "BookPickleError", "load_book_pickle", "load_params", "save_params"]

#: The largest pickle :func:`load_book_pickle` reads (the book's largest,
#: ``ch07/params.pkl``, is 3.4 MB).
MAX_PICKLE_BYTES = 2**30
_MAX_DEPTH = 32  # nesting of containers (the book's: a dict of arrays)
_KINDS = "biuf"  # the dtype kinds an array may have
_ZIP = b"PK\x03\x04"


class BookPickleError(ModelFileError, pickle.UnpicklingError):
    """A pickle asked for something :func:`load_book_pickle` does not admit, or is damaged."""


def _safe_dtype(obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype(obj)`` for a plain name of a boolean, integer or float dtype."""
    if not isinstance(obj, str) or len(obj) > 8:
        raise BookPickleError(f"dtype {obj!r:.40}: only a plain dtype name is admitted")
    try:
        dt = np.dtype(obj)
    except TypeError:
        raise BookPickleError(f"unknown dtype {obj!r:.40}") from None
    if dt.kind not in _KINDS or dt.fields is not None or dt.subdtype is not None:
        raise BookPickleError(
            f"dtype {obj!r:.40} ({dt.kind}): only arrays of booleans, integers and floats are "
            "admitted (an object array holds pickles of its own)"
        )
    return dt


def _reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    """NumPy's ``_reconstruct``, only as NumPy writes it: an empty array, state to come."""
    if cls is not np.ndarray or shape != (0,) or dtype != b"b":
        raise BookPickleError(
            f"_reconstruct({getattr(cls, '__name__', cls)!s:.40}, {shape!r:.40}, "
            f"{dtype!r:.20}) is not how NumPy pickles an array"
        )
    return np.ndarray((0,), dtype=np.int8)


def _checked_array(shape: Any, dtype: Any, data: Any, order: str = "C") -> np.ndarray:
    """An array of ``shape`` and ``dtype`` from exactly its bytes ``data`` (a copy)."""
    if not isinstance(shape, tuple) or len(shape) > 32:
        raise BookPickleError(f"an array's shape {shape!r:.60} is not a tuple of sizes")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BookPickleError(f"an array's shape {shape!r:.60} is not a tuple of sizes")
    if not isinstance(dtype, np.dtype) or dtype.kind not in _KINDS or dtype.fields is not None:
        raise BookPickleError(f"an array's dtype {dtype!r:.40} is not admitted")
    if not isinstance(data, (bytes, bytearray)):
        raise BookPickleError(
            f"an array's data is a {type(data).__name__}, not bytes (object arrays are refused)"
        )
    need = math.prod(shape) * dtype.itemsize
    if need != len(data):
        raise BookPickleError(
            f"an array of shape {shape} ({dtype}) needs {need} bytes, the file gives "
            f"{len(data)}: the file is damaged or crafted"
        )
    a = np.frombuffer(bytes(data), dtype=dtype)
    return a.reshape(shape, order="F" if order == "F" else "C").copy()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """NumPy's protocol-5 ``_frombuffer``, checked as an array state is."""
    return _checked_array(shape, dtype, buf, "F" if order == "F" else "C")


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode(text, 'latin1')``: how protocols 0 and 1 write bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise BookPickleError(
            f"_codecs.encode(..., {encoding!r:.20}) is not how pickle writes bytes"
        )
    return text.encode("latin1")


def _bytes(*args: Any) -> bytes:
    """``bytes()``: how protocols 0 to 2 write an empty bytes object."""
    if args:
        raise BookPickleError("bytes(...) with arguments is not how pickle writes bytes")
    return b""


#: The globals admitted, by (module, name): each maps to a checked stand-in.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _latin1,
    ("__builtin__", "bytes"): _bytes,
    ("builtins", "bytes"): _bytes,
}
_CALLABLE = (_reconstruct, _frombuffer, _safe_dtype, _latin1, _bytes)

# Opcodes that build objects other than through REDUCE and BUILD, or reach outside the file.
_REFUSED_OPS = {
    pickle.INST: "INST",
    pickle.OBJ: "OBJ",
    pickle.NEWOBJ: "NEWOBJ",
    pickle.NEWOBJ_EX: "NEWOBJ_EX",
    pickle.EXT1: "EXT1",
    pickle.EXT2: "EXT2",
    pickle.EXT4: "EXT4",
    pickle.PERSID: "PERSID",
    pickle.BINPERSID: "BINPERSID",
    pickle.NEXT_BUFFER: "NEXT_BUFFER",
    pickle.READONLY_BUFFER: "READONLY_BUFFER",
}


class _Restricted(pickle._Unpickler):  # the Python unpickler: its opcodes can be replaced
    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise BookPickleError(
                f"refused the global {module}.{name}: a weights file needs only NumPy's "
                f"array globals ({', '.join(f'{m}.{n}' for m, n in ALLOWED_GLOBALS)})"
            )
        return found

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if not any(func is f for f in _CALLABLE) or not isinstance(args, tuple):
            raise BookPickleError(
                f"refused a call of {getattr(func, '__name__', type(func))!s:.60}"
            )
        self.stack[-1] = func(*args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is np.ndarray:
            if not isinstance(state, tuple) or len(state) != 5:
                raise BookPickleError("an array's state is not NumPy's (version, shape, ...)")
            _, shape, dtype, fortran, data = state
            self.stack[-1] = _checked_array(shape, dtype, data, "F" if fortran else "C")
        elif isinstance(inst, np.dtype):
            # NumPy's dtype state: (version, byte order, subarray, names, fields, ...).
            ok = isinstance(state, tuple) and len(state) in (8, 9) and state[1] in "<>|="
            if not ok or any(s is not None for s in state[2:5]):
                raise BookPickleError("a dtype's state is not a plain dtype's")
            inst.__setstate__(state)
            if inst.kind not in _KINDS:
                raise BookPickleError(f"dtype {inst} is not admitted")
        else:
            raise BookPickleError(f"refused to set the state of a {type(inst).__name__}")

    dispatch[pickle.BUILD[0]] = load_build

    def _refuse(self) -> None:
        raise BookPickleError("refused an opcode that builds objects or reads outside the file")

    for _op in _REFUSED_OPS:
        dispatch[_op[0]] = _refuse
    del _op


def _check_depth(value: Any, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise BookPickleError(f"containers nested deeper than {_MAX_DEPTH}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_depth(k, depth + 1)
            _check_depth(v, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_depth(v, depth + 1)
    elif not isinstance(value, (np.ndarray, str, bytes, int, float, bool, type(None))):
        raise BookPickleError(f"holds a {type(value).__name__}, not arrays, numbers or strings")


def _read_regular(path: Path, limit: int | None) -> bytes:
    """The first ``limit`` bytes of the regular file ``path`` (all, if ``limit`` is None:
    refused over :data:`MAX_PICKLE_BYTES` before reading)."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)  # a FIFO does not block
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ModelFileError(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        if limit is not None:
            return f.read(limit)
        if st.st_size > MAX_PICKLE_BYTES:
            raise BookPickleError(
                f"{path}: {st.st_size} bytes, more than a weights pickle may have "
                f"(MAX_PICKLE_BYTES = {MAX_PICKLE_BYTES})"
            )
        data = f.read(st.st_size + 1)  # its size, not the limit: read() allocates what it asks
    if len(data) > MAX_PICKLE_BYTES:
        raise BookPickleError(f"{path}: grew beyond MAX_PICKLE_BYTES while read")
    return data


def load_book_pickle(path: str | os.PathLike[str]) -> Any:
    """Read a pickle of NumPy arrays (the book's weights) without running its code.

    Returns:
        What the file holds: a dict or list of host NumPy arrays (and numbers).

    Raises:
        BookPickleError: (a :class:`ModelFileError` and a
            :class:`pickle.UnpicklingError`) a refused global or opcode (the
            message names it and the file), an object or structured dtype, an
            array whose data do not fit its shape, a file over
            :data:`MAX_PICKLE_BYTES`, a damaged, truncated or non-pickle file.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    data = _read_regular(path, None)
    try:
        value = _Restricted(io.BytesIO(data)).load()
        _check_depth(value)
    except BookPickleError as exc:
        raise BookPickleError(f"{path}: {exc}") from None
    except RecursionError:
        raise BookPickleError(f"{path}: nested too deep") from None
    except Exception as exc:  # truncated or random bytes: EOFError, struct.error, ...
        raise BookPickleError(
            f"{path}: not a readable pickle of arrays ({type(exc).__name__}: {exc!s:.100})"
        ) from None
    return value


def _book_arrays(model: Any, value: Any, source: str) -> dict[str, Any]:
    """The book's ``params`` (a dict by key, or a list in order) named as the model's."""
    params = model.params
    name = type(model).__name__
    if isinstance(params, dict):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ModelFileError(
                f"{source}: holds a {type(value).__name__}; {name}.load_params takes the book's "
                f"dict of arrays keyed like params ({', '.join(params)})"
            )
        return dict(value)
    if not isinstance(value, (list, tuple)):
        raise ModelFileError(
            f"{source}: holds a {type(value).__name__}; {name}.load_params takes the book's "
            f"list of {len(params)} arrays in params order"
        )
    aliases = dict(getattr(model, "book_aliases", None) or {})
    if aliases and len(value) == len(params) + len(aliases):
        value = _without_aliases(list(value), aliases, name, source)
    if len(value) != len(params):
        book = f" ({len(params) + len(aliases)} in the book's list)" if aliases else ""
        raise ModelFileError(f"{source}: holds {len(value)} arrays, {name} has {len(params)}{book}")
    return {f"params.{i}": v for i, v in enumerate(value)}


def _without_aliases(value: list[Any], aliases: dict[int, int], name: str, source: str) -> list:
    """The book's list less the arrays that repeat a shared weight (``model.book_aliases``).

    The book lists a tied weight once per use (BetterRnnlm: ``embed_W`` and,
    for the affine layer, ``embed_W.T``) and saves both; each repeat must be
    exactly, bit for bit, the transpose of the array it repeats (the book
    saves the same memory twice), or the file is not the model's.
    """
    kept = [i for i in range(len(value)) if i not in aliases]  # book position of params[j]
    for pos, j in sorted(aliases.items()):
        copy, orig = value[pos], value[kept[j]]
        if not isinstance(copy, np.ndarray) or not isinstance(orig, np.ndarray):
            why = f"a {type(copy).__name__} and a {type(orig).__name__}"
        elif copy.shape != orig.T.shape or copy.dtype != orig.dtype:
            why = f"{copy.shape} {copy.dtype} and {orig.shape} {orig.dtype}"
        elif np.ascontiguousarray(copy).tobytes() != np.ascontiguousarray(orig.T).tobytes():
            why = "their values differ"
        else:
            continue
        raise ModelFileError(
            f"{source}: holds {len(value)} arrays, as the book's list of {name}, whose array "
            f"{pos} must be array {kept[j]} transposed (one weight used twice), but it is not "
            f"({why}); the file is not {name}'s"
        )
    return [value[i] for i in kept]


def _assign_book(model: Any, value: Any, source: str) -> None:
    """Check the book's arrays against ``params`` (names, shapes, floats), then assign."""
    live = _named_params(model)
    host = _book_arrays(model, value, source)
    _check_names(source, type(model).__name__, live, host)
    wrong = []
    for key, p in live.items():
        a = host[key]
        if not isinstance(a, np.ndarray):
            raise ModelFileError(f"{source}: {key} is a {type(a).__name__}, not an array")
        if not np.issubdtype(a.dtype, np.floating):
            raise ModelFileError(f"{source}: {key} has dtype {a.dtype}, not float")
        if tuple(a.shape) != tuple(p.shape):
            wrong.append(f"{key} {tuple(a.shape)} (expected {tuple(p.shape)})")
    if wrong:
        raise ModelFileError(f"{source}: wrong shapes: {', '.join(wrong)}")
    dtypes = {k: _dtype_name(p.dtype) for k, p in live.items()}
    _assign(live, _converted(source, host, dtypes, allow_nonfinite=False))


def save_params(model: Any, file_name: str | os.PathLike[str], *, dtype: Any = None) -> Path:
    """Write ``model`` in xpnn's safe format to exactly ``file_name`` (any suffix).

    The path is checked first as every writer's (not a folder, a link, a
    device, nor unwritable); then :func:`xpnn.io.save` writes it (``dtype``
    is its storage dtype).
    """
    path = check_output_path(os.fspath(file_name), "save_params", example="params.pkl", links=False)
    return save(model, path, dtype=dtype)


def load_params(model: Any, file_name: str | os.PathLike[str]) -> None:
    """Read ``file_name`` (xpnn's format or a book pickle) into ``model``'s params in place.

    Everything is checked before any parameter changes: a refused file leaves
    the model as it was.

    Raises:
        ModelFileError: The file does not fit the model (names, shapes), is
            damaged, or is a pickle that asks for more than arrays
            (:class:`BookPickleError`).
        FileNotFoundError: ``file_name`` does not exist.
    """
    path = Path(file_name)
    if _read_regular(path, len(_ZIP)) == _ZIP:
        with _NpzFile(path, MODEL_META_CHARS) as npz:
            _check_model_file(npz)
            host = {key: npz.read(key) for key in npz.headers}
        _load_arrays(model, host, source=str(path))
        return
    _assign_book(model, load_book_pickle(path), str(path))

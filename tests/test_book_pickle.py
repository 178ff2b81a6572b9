"""The restricted unpickler of the book's weight files: arrays only, nothing run.

Each hostile pickle here would leave a file behind if any of its code ran;
each is refused, naming the file and what it asked for, and the file is not
there afterwards.
"""

from __future__ import annotations

import builtins
import os
import pickle
import pickletools
import struct
import subprocess
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from xpnn.io import MAX_PICKLE_BYTES, BookPickleError, ModelFileError, load_book_pickle
from xpnn.io.book_pickle import ALLOWED_GLOBALS

BOOK1 = Path("/work/.mirror/oreilly-japan+deep-learning-from-scratch/repo")


def write(tmp_path, data, name="params.pkl"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path, match):
    with pytest.raises(BookPickleError, match=match) as info:
        load_book_pickle(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, pickle.UnpicklingError)
    assert isinstance(info.value, ModelFileError)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_arrays_in_dicts_and_lists_load(tmp_path, protocol):
    value = {
        "W1": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b1": np.zeros(4),
        "F": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "h": [np.ones(2, dtype=np.float16), (1, 2.5, "x")],
        "e": np.empty((0, 3), dtype=np.float32),
    }
    got = load_book_pickle(write(tmp_path, pickle.dumps(value, protocol=protocol)))
    for key in ("W1", "b1", "F", "e"):
        assert type(got[key]) is np.ndarray and got[key].dtype == value[key].dtype
        np.testing.assert_array_equal(got[key], value[key])
    np.testing.assert_array_equal(got["h"][0], value["h"][0])
    assert got["h"][1] == (1, 2.5, "x")


def test_os_system_via_reduce_runs_nothing(tmp_path):
    flag = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    refused(write(tmp_path, pickle.dumps({"W1": Evil()})), r"refused the global (posix|os)\.system")
    assert not flag.exists()


def test_builtins_eval_and_subprocess_popen_run_nothing(tmp_path):
    flag = tmp_path / "pwned"

    class Eval:
        def __reduce__(self):
            return (builtins.eval, (f"open({str(flag)!r}, 'w')",))

    class Popen:
        def __reduce__(self):
            return (subprocess.Popen, (["touch", str(flag)],))

    refused(write(tmp_path, pickle.dumps([Eval()])), r"refused the global builtins\.eval")
    refused(write(tmp_path, pickle.dumps(Popen())), r"refused the global subprocess\.Popen")
    assert not flag.exists()


def test_an_allowed_global_cannot_be_called_otherwise(tmp_path):
    # numpy.ndarray is admitted as _reconstruct's argument, never as a callable:
    # REDUCE(ndarray, ((10**12,),)) would allocate; NEWOBJ is refused outright.
    big = b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x00\x40\x85\x85R."
    refused(write(tmp_path, big), "refused a call of ndarray")
    newobj = b"\x80\x02cnumpy\nndarray\nK\x05\x85\x81."
    refused(write(tmp_path, newobj), "refused an opcode")
    odd = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x05\x85C\x01b\x87R."
    refused(write(tmp_path, odd), "is not how NumPy pickles an array")


def test_an_object_array_is_refused(tmp_path):
    flag = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    path = write(tmp_path, pickle.dumps(np.array([1, "a"], dtype=object), protocol=2))
    refused(path, r"dtype 'O8'.*object array")
    path = write(tmp_path, pickle.dumps(np.array([Evil()], dtype=object), protocol=2))
    refused(path, "object array")
    assert not flag.exists()
    structured = np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])
    refused(write(tmp_path, pickle.dumps(structured, protocol=2)), "dtype")


def _array_pickle(shape, data):
    """A protocol-2 pickle of an array that claims ``shape`` of float32 and holds ``data``."""
    dims = b"(" + b"".join(b"J" + struct.pack("<i", d) for d in shape) + b"t"
    return (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"
        b"(K\x01" + dims + b"cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R"
        b"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        b"\x89C" + bytes([len(data)]) + data + b"tb."
    )


def test_a_pickle_claiming_a_huge_array_is_refused_cheaply(tmp_path):
    ok = load_book_pickle(write(tmp_path, _array_pickle((2,), b"\x00" * 8)))
    np.testing.assert_array_equal(ok, np.zeros(2, dtype=np.float32))
    path = write(tmp_path, _array_pickle((100_000, 100_000, 100), b"\x00" * 8))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        refused(path, r"needs 4000000000000 bytes, the file gives 8")
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 2**22 and time.perf_counter() - start < 1


def test_truncated_random_and_oversized_files_are_refused(tmp_path):
    good = pickle.dumps({"W1": np.ones((3, 4))})
    for cut in (1, 10, len(good) // 2, len(good) - 1):
        refused(write(tmp_path, good[:cut]), "not a readable pickle|needs")
    refused(write(tmp_path, b"hello, these are my notes\n"), "not a readable pickle")
    refused(write(tmp_path, b""), "not a readable pickle")
    deep = b"\x80\x02" + b"]" * 100 + b"e" * 99 + b"."
    with pytest.raises(BookPickleError):
        load_book_pickle(write(tmp_path, deep))
    path = write(tmp_path, b"\x80\x02N.")
    os.truncate(path, MAX_PICKLE_BYTES + 1)  # sparse: no disk used
    refused(path, "more than a weights pickle may have")
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_book_pickle(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_book_pickle(tmp_path / "missing.pkl")


def test_the_book_files_need_only_the_allowed_globals(tmp_path):
    """pickletools on the book's shipped weights: numpy.core.multiarray._reconstruct,
    numpy.ndarray and numpy.dtype, in a plain dict (no OrderedDict)."""
    for name in ("ch07/params.pkl", "ch08/deep_convnet_params.pkl"):
        done = subprocess.run(
            ["git", "-C", str(BOOK1), "show", f"HEAD:{name}"], capture_output=True
        )
        if done.returncode or not done.stdout:
            pytest.skip("the book's repository is not on this machine")
        strings, found = [], set()
        for op, arg, _ in pickletools.genops(done.stdout):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(arg)
            elif op.name == "STACK_GLOBAL":
                found.add(tuple(strings[-2:]))
        found = {(m if m != "ndarray" else "numpy", n) for m, n in found}  # memoized "numpy"
        assert found <= set(ALLOWED_GLOBALS), found
        got = load_book_pickle(write(tmp_path, done.stdout))
        assert type(got) is dict and all(type(v) is np.ndarray for v in got.values())
        assert got["W1"].dtype == np.float64

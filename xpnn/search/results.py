"""The results file of a search: JSON lines, appended as trials finish.

The first line is a header with the search's settings (seed, space, data,
model, optimizer, fit arguments, backend, dtype, trial function); each
further line is one finished trial's record, written, flushed and fsynced as
soon as it arrives, so a crash or Ctrl-C loses at most the trials that were
running. Running the same search again with the same file resumes it:
finished trials are read back and not run again.

A file written by a different search (another seed, space, data...) is
refused, naming what differs, and so is any file whose first line is not a
results header (it is left as it is: give another file, or delete that one);
an empty file starts a new search. A last line cut short by a crash is
ignored with a warning (its trial runs again) and cut off before new lines
are appended; a header cut short is recognised by its start
(``{"xpnn_search": 1``). Any other damaged line is refused with its line
number, and two lines of the same trial with both line numbers.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = ["FORMAT", "ResultsFileError", "ResultsWriter", "check_writable", "read_results"]

#: The ``xpnn_search`` value of a header: the file format's version.
FORMAT = 1


#: How a header begins, whitespace allowed: a first line cut short is a cut header (a search
#: stopped while writing it) only if it begins so; any other is someone else's file.
_HEADER_START = re.compile(rb'\s*\{\s*"xpnn_search"\s*:\s*' + str(FORMAT).encode() + rb"(?![0-9])")


class ResultsFileError(ValueError):
    """A results file that cannot be used for this search (the message says why)."""


def _not_results(path: Path, first: bytes) -> ResultsFileError:
    """The refusal of a file whose first line is not a results header (the file is not touched)."""
    return ResultsFileError(
        f"{path} is not a results file of xpnn search (format {FORMAT}): its first line is "
        f"{first[:80]!r}, not a search's header; it is left as it is: give another results "
        "file (--results, results=), or delete this one to start a new search there"
    )


def _header(settings: Mapping[str, Any]) -> dict[str, Any]:
    from xpnn._version import __version__

    return {"xpnn_search": FORMAT, "xpnn": __version__, "settings": dict(settings)}


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _differences(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(found) | set(wanted)):
        a, b = found.get(key, "(absent)"), wanted.get(key, "(absent)")
        if json.loads(json.dumps(a)) != json.loads(json.dumps(b)):
            out.append(f"{key} is {_short(a)} there but {_short(b)} here")
    return out


def _bad_record(record: Any) -> str | None:
    """Why ``record`` is not a trial's record, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    trial = record.get("trial")
    if isinstance(trial, bool) or not isinstance(trial, int) or trial < 0:
        return f"'trial' must be a trial number, got {trial!r}"
    if not isinstance(record.get("params"), dict):
        return "no 'params' object"
    score = record.get("val_acc", "missing")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)
    ):
        return f"'val_acc' must be a number or null, got {score!r}"
    return None


def read_results(
    path: str | os.PathLike[str],
    settings: Mapping[str, Any],
    expected_params: Callable[[int], Mapping[str, Any]] | None = None,
) -> tuple[dict[int, dict[str, Any]], int | None]:
    """Read the finished trials of a results file, checking it belongs to this search.

    Args:
        path: The file. A missing or empty file holds no trials; any other
            must begin with a results header.
        settings: This search's settings; the header's must be equal.
        expected_params: ``trial -> params`` of this search; each record's
            params must be these (a hand-edited or mixed-up file is refused).

    Returns:
        ``(records, keep)``: the records by trial number, and the number of bytes
        of the file to keep (the end of the last whole line) when its last
        line is cut short, else None.

    Raises:
        ResultsFileError: A file of another search (the message names the
            file and what differs), not a results file (its first line is not
            a header: the file is never changed), a damaged line before the
            last, or two lines of one trial (both line numbers named).
        OSError: The file cannot be read.
    """
    path = Path(path)
    if not path.exists():
        return {}, None
    if not path.is_file():
        raise ResultsFileError(f"results file {path} is not a file")
    with open(path, "rb") as f:  # someone else's file (a log, an image) is not read whole
        start = f.read(64)
    if start.strip() and not start.lstrip().startswith(b"{"):
        raise _not_results(path, start.split(b"\n")[0])
    data = path.read_bytes()
    if not data:
        return {}, None
    lines = data.split(b"\n")
    # A file always ends with a newline; anything after the last one is a cut line.
    tail = lines.pop()
    offsets, position = [], 0
    for line in lines:
        position += len(line) + 1
        offsets.append(position)
    if not lines and not _HEADER_START.match(tail):  # one line, and not a header's start
        raise _not_results(path, tail)
    if lines:
        try:
            header = json.loads(lines[0])
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("xpnn_search") != FORMAT:
            raise _not_results(path, lines[0])
    keep = None
    if tail:
        keep = position
        warnings.warn(
            f"results file {path}: its last line is cut short (a search stopped while "
            f"writing it): ignoring it; its trial runs again",
            RuntimeWarning,
            stacklevel=3,
        )
    if not lines:  # only a cut header
        return {}, 0
    found = header.get("settings")
    if not isinstance(found, dict):
        raise ResultsFileError(f"results file {path}: its header has no settings")
    different = _differences(found, settings)
    if different:
        raise ResultsFileError(
            f"results file {path} was written by a different search: {'; '.join(different)}. "
            "Give another results file (or the same settings to resume that search)"
        )
    records: dict[int, dict[str, Any]] = {}
    line_of: dict[int, int] = {}  # trial -> the line that holds it
    for number, line in enumerate(lines[1:], start=2):
        try:
            record = json.loads(line)
        except ValueError as exc:
            if number == len(lines) and keep is None:
                # A last line that is whole but unreadable: also a cut write.
                keep = offsets[number - 2]
                warnings.warn(
                    f"results file {path}: line {number} (the last) is not JSON: ignoring it; "
                    "its trial runs again",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break
            problem: str | None = f"not JSON ({exc})"
        else:
            problem = _bad_record(record)
        if problem is None and expected_params is not None:
            wanted = dict(expected_params(record["trial"]))
            if json.loads(_dumps(record["params"])) != json.loads(_dumps(wanted)):
                problem = (
                    f"trial {record['trial']} has params {_short(record['params'])}, but this "
                    f"search draws {_short(wanted)} for it"
                )
        if problem is not None:
            raise ResultsFileError(
                f"results file {path}: line {number} is damaged: {problem}; repair or remove "
                "that line, or give another results file"
            )
        trial = record["trial"]
        if trial in line_of:
            raise ResultsFileError(
                f"results file {path}: trial {trial} is on line {line_of[trial]} and again on "
                f"line {number}; a search writes each trial once: delete one of the two lines "
                "(or give another results file)"
            )
        line_of[trial] = number
        records[trial] = record
    return records, keep


def _lock(file: IO[Any], path: Path) -> None:
    """Lock ``file`` for this process (until it is closed), or refuse: another search holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise ResultsFileError(
            f"results file {path} is being written by another search; wait for it or give "
            "another results file"
        ) from None


class ResultsWriter:
    """Appends records to a results file (created with its header if missing or empty).

    Each :meth:`write` is one line, flushed and fsynced before it returns.
    On POSIX the file is locked while open: a second search writing the same
    file is refused.

    Args:
        path: The file.
        settings: The search's settings (the header of a new file).
        keep: Cut the file to this many bytes first (a cut last line, see
            :func:`read_results`); 0 rewrites the header.

    Raises:
        ResultsFileError: Another search holds the file.
        OSError: The file cannot be written.
    """

    def __init__(
        self, path: str | os.PathLike[str], settings: Mapping[str, Any], keep: int | None = None
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(self.path, "a+", encoding="utf-8")
        try:
            self._lock()
            if keep is not None:
                self._file.truncate(keep)
            self._file.seek(0, os.SEEK_END)
            if self._file.tell() == 0:
                self._write_line(_dumps(_header(settings)))
        except BaseException:
            self._file.close()
            raise

    def _lock(self) -> None:
        _lock(self._file, self.path)

    def _write_line(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one trial's record (JSON, no NaN) and make it durable."""
        self._write_line(_dumps(dict(record)))

    def close(self) -> None:
        """Close (and unlock) the file."""
        self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Check a results file can be created or appended to, before any work.

    Raises:
        ResultsFileError: A folder where the file should be, a parent that
            is a file, or a file another search is writing (its lock).
        OSError: No permission to write there.
    """
    path = Path(path)
    if path.is_dir():
        raise ResultsFileError(f"results file {path} is a folder; give a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ResultsFileError(f"results file {path}: {parent} is not a folder")
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        raise PermissionError(f"results file {path}: cannot write to {target}")
    if path.is_file():  # held by a running search? (tried and let go: nothing is written)
        with open(path, "rb") as probe:
            _lock(probe, path)
    return path

"""Downloading a data file safely: mirrors, SHA-256 check, atomic rename.

:func:`download` fetches one file with nothing but :mod:`urllib`. It tries a
list of mirror base URLs in order and moves on to the next one when a mirror
answers with an HTTP error, cannot be reached, stalls past the timeout, takes
longer than the deadline, closes the connection early or serves bytes whose
SHA-256 (or MD5, for data sets that publish only that) is not the expected
one. A user name and password in a mirror URL (``https://user:pass@host/...``)
are sent as HTTP Basic authentication and shown as ``https://***@host/...`` in
every message.

The bytes are streamed into a hidden temporary file (``.NAME.XXXX.part``) in
the destination directory, hashed while they are written, and renamed to the
final name (:func:`os.replace`, atomic) only once their length and checksum
are right. Whatever goes wrong -- a failing mirror, a full disk, Ctrl-C -- the
temporary file is removed, so a file under the final name is always complete.
One left behind by a process that was killed outright (``kill -9``, a power
cut) is removed by the next download of the same file into that directory.

This module also holds what is known about the MNIST distribution: where it is
mirrored (:data:`MNIST_MIRRORS`, overridable with ``XPNN_MNIST_MIRRORS``) and
the SHA-256 and size of each of its four files. It is host-side I/O only: no
array library is involved.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import math
import os
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from xpnn._version import __version__
from xpnn.io.npz import stale_part_files

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_TIMEOUT",
    "MIRRORS_ENV",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "MNIST_SIZES",
    "DownloadError",
    "download",
    "resolve_mirrors",
]

#: Where the MNIST files are served, tried in this order (URL = base + file
#: name). Every mirror is checked against :data:`MNIST_SHA256`, so a plain
#: ``http://`` one is as safe as the others.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: Comma-separated base URLs that replace :data:`MNIST_MIRRORS`.
MIRRORS_ENV = "XPNN_MNIST_MIRRORS"

#: SHA-256 of the four files of the official MNIST distribution, as listed
#: by TensorFlow Datasets (``tensorflow_datasets/url_checksums/mnist.txt``).
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: Their sizes in bytes (same source), used as an upper bound so that a
#: mirror serving something else cannot fill the disk before the checksum
#: rejects it.
MNIST_SIZES = {
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
}

#: Seconds without any data before a mirror is given up (per connection
#: attempt and per read, not for the whole file).
DEFAULT_TIMEOUT = 30.0

#: Seconds one mirror may take to deliver a whole file, from connecting to
#: the last byte: a mirror that trickles data, each piece within the timeout,
#: is given up then (MNIST's largest file, 9.9 MB, needs 17 KB/s).
DEFAULT_DEADLINE = 600.0

#: A temporary file of an earlier download is removed only once it has not
#: been written to for this many seconds (and, on POSIX, no process holds its
#: lock): a download in progress keeps its own.
_STALE_AFTER = 60.0
#: ... or this many where the file system cannot tell whether it is locked.
_STALE_AFTER_UNLOCKED = 24 * 3600.0

_CHUNK = 1 << 16
_SCHEMES = ("http", "https")
# Some servers turn away urllib's default "Python-urllib/3.x".
_USER_AGENT = f"xpnn/{__version__} (Python urllib)"

# What a failing connection raises: URLError, ConnectionError and timeouts
# are OSErrors; a broken chunked stream raises http.client.IncompleteRead and
# a garbled response other HTTPExceptions; a URL that http.client refuses
# (http.client.InvalidURL) is a ValueError.
_NETWORK_ERRORS = (OSError, http.client.HTTPException, ValueError)


class DownloadError(OSError):
    """Every mirror failed to deliver a file.

    Attributes:
        name: The file name that was asked for.
        directory: The directory it was to be written to.
        failures: ``(url, reason)`` for each mirror tried, in order.
        hint: What the user can do about it (empty if nothing to add);
            callers that know more (e.g. ``load_mnist``) may set it.
    """

    def __init__(
        self,
        name: str,
        directory: str | os.PathLike[str],
        failures: Sequence[tuple[str, str]],
        hint: str = "",
    ):
        self.name = name
        self.directory = Path(directory)
        self.failures = list(failures)
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        # Built on demand so that a hint added after raising shows up.
        tried = "".join(f"\n  {url}: {reason}" for url, reason in self.failures)
        message = f"could not download {self.name} into {self.directory}; every mirror failed:"
        return message + tried + (f"\n{self.hint}" if self.hint else "")


class _MirrorFailed(Exception):
    """One mirror failed in a way the next mirror may not (never escapes)."""


# The user information of a URL (``user:pass@``): what follows ``//`` (or the
# start, for a URL without a scheme) up to the last ``@`` of the host part.
_USERINFO = re.compile(r"^(\s*(?:[A-Za-z][A-Za-z0-9+.-]*:)?//|\s*)([^/?#\s]*@)")


# What follows ``//`` (or the start) up to the *last* "@" of the whole text.
_REDACT_ALL = re.compile(r"^(\s*(?:[A-Za-z][A-Za-z0-9+.-]*:)?//|\s*)(.*@)", re.DOTALL)


def _redact(url: str) -> str:
    """``url`` with any user name and password replaced by ``***``."""
    return _USERINFO.sub(r"\1***@", url, count=1)


def _credentials(url: str) -> tuple[str, str | None]:
    """Split ``url`` into (the URL without user information, Basic auth value or None)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    auth = "Basic " + base64.b64encode(token.encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), auth


def _scrub(text: str, url: str) -> str:
    """``text`` with the user information of ``url`` and its password hidden.

    Each as written and percent-decoded. A safety net: the credentials never
    reach urllib or http.client, whose messages could quote them. Pieces
    shorter than 4 characters are left: replacing them would garble the text.
    """
    match = _USERINFO.match(url)
    if match is None:
        return text
    userinfo = match.group(2)[:-1]
    password = userinfo.partition(":")[2]
    secrets = {userinfo, password}
    secrets |= {urllib.parse.unquote(s) for s in secrets}
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# --------------------------------------------------------------------------
# Mirrors
# --------------------------------------------------------------------------


def _parse_mirrors(mirrors: str | Sequence[str], source: str) -> tuple[str, ...]:
    """Validate base URLs; a string is a comma-separated list (as in the env)."""
    items = mirrors.split(",") if isinstance(mirrors, str) else list(mirrors)
    bases = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{source}: mirrors must be URL strings, got {type(item).__name__}")
        base = item.strip()
        if not base:
            continue
        # In these messages everything up to the last "@" may be a secret
        # (e.g. a password with an unescaped "/"), so all of it is hidden.
        shown = _REDACT_ALL.sub(r"\1***@", base, count=1)
        try:
            parts = urllib.parse.urlsplit(base)
        except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 address
            raise ValueError(f"{source}: {shown!r} is not a valid URL ({exc})") from None
        if parts.scheme not in _SCHEMES or not parts.netloc:
            raise ValueError(
                f"{source}: {shown!r} is not an http:// or https:// base URL "
                f"(e.g. {MNIST_MIRRORS[0]!r})"
            )
        if "@" in parts.path:
            raise ValueError(
                f"{source}: the mirror URL {shown!r} has an '@' after its host name; "
                "write '/' and '@' in a user name or password as %2F and %40"
            )
        try:
            parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
        except ValueError as exc:
            raise ValueError(f"{source}: {shown!r} is not a valid URL ({exc})") from None
        # base + file name must name a file *inside* the mirror's folder.
        bases.append(base if base.endswith("/") else base + "/")
    if not bases:
        raise ValueError(f"{source}: no mirror URL given")
    return tuple(bases)


def resolve_mirrors(
    mirrors: str | Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    env_var: str = MIRRORS_ENV,
    default: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """The mirrors to try: ``mirrors``, else ``$XPNN_MNIST_MIRRORS``, else the defaults.

    Args:
        mirrors: Base URLs (a sequence, or one comma-separated string).
        environ: The environment to read (:data:`os.environ` if omitted).
        env_var: The environment variable of comma-separated base URLs
            (:data:`MIRRORS_ENV` unless another data set names its own).
        default: The base URLs used when neither is given
            (:data:`MNIST_MIRRORS` if omitted).

    Returns:
        The base URLs, each ending in ``/``.

    Raises:
        ValueError: A URL is not ``http://`` or ``https://``, or none is given.
        TypeError: ``mirrors`` holds something other than strings.
    """
    if mirrors is not None:
        return _parse_mirrors(mirrors, "mirrors")
    env = (os.environ if environ is None else environ).get(env_var, "")
    # An empty variable means "unset", as usual for such variables.
    if env.strip():
        return _parse_mirrors(env, env_var)
    return MNIST_MIRRORS if default is None else _parse_mirrors(default, "default mirrors")


# --------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------


def _describe(exc: BaseException, timeout: float) -> str:
    """A short reason for a network failure, for the list of failed mirrors."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        # reason is the socket error (or a string) that made the request fail
        if isinstance(exc.reason, BaseException):
            return _describe(exc.reason, timeout)
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return f"timed out (no data for {timeout:g} s)"
    if isinstance(exc, socket.gaierror):  # DNS: often simply offline
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed in the middle of the response"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # e.g. "Connection refused", "Connection reset by peer"
    return f"{type(exc).__name__}: {exc}"


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The announced size, or None when absent or unreadable."""
    try:
        length = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


class _NoProgress:
    """Stands in for a tqdm bar when progress is off."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _progress_bar(enabled: bool, name: str, total: int | None) -> Any:
    if not enabled:
        return _NoProgress()
    # Imported only when a bar is shown: importing xpnn.datasets stays cheap.
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024)


class _Watchdog:
    """Ends a mirror's attempt ``deadline`` seconds after it started.

    :attr:`expired` is checked between reads; and since one read may wait up
    to the timeout (and a mirror may trickle its headers, which urllib reads
    before returning), a timer also shuts down the connection's socket then,
    which ends a read in progress.
    """

    def __init__(self, deadline: float):
        self.deadline = deadline
        self._end = time.monotonic() + deadline
        self._lock = threading.Lock()
        self._fired = False
        self._sockets: list[socket.socket] = []
        self._timer = None
        if math.isfinite(deadline):
            self._timer = threading.Timer(deadline, self._fire)
            self._timer.daemon = True
            self._timer.start()

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self._end

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            fired = self._fired
        if fired:
            self._shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        # socket.socket's own shutdown, also for an SSLSocket: the reader
        # thread's read then fails or ends; the socket is closed by its owner.
        with contextlib.suppress(OSError, ValueError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _watched_handler(base: type, watchdog: _Watchdog) -> Any:
    """An instance of urllib's handler ``base`` whose connections ``watchdog`` watches."""

    class Handler(base):  # type: ignore[misc,valid-type]
        def do_open(self, http_class: type, req: Any, **kwargs: Any) -> Any:
            class Connection(http_class):  # type: ignore[misc,valid-type]
                def connect(self) -> None:
                    super().connect()
                    watchdog.watch(self.sock)

            return super().do_open(Connection, req, **kwargs)

    return Handler()


def _stream(
    response: http.client.HTTPResponse,
    out: IO[bytes],
    bar: Any,
    max_bytes: int | None,
    timeout: float,
    watchdog: _Watchdog,
    length: int | None,
    algorithms: Sequence[str] = ("sha256",),
) -> tuple[dict[str, str], int]:
    """Copy the response body into ``out``; returns ``({algorithm: hex digest}, byte count)``.

    Network errors and the deadline become :class:`_MirrorFailed`; errors
    writing ``out`` (a full disk) propagate as they are, since another mirror
    would not help.
    """
    digests = {name: _hasher(name) for name in algorithms}
    received = 0
    while True:
        try:
            # read1: what has arrived (one recv), so the bar moves smoothly
            # and the count is exact when a later read times out.
            chunk = response.read1(_CHUNK)
        except _NETWORK_ERRORS as exc:
            if watchdog.expired:
                raise _MirrorFailed(_past_deadline(watchdog, received, length)) from exc
            raise _MirrorFailed(
                f"failed after {received} bytes: {_describe(exc, timeout)}"
            ) from exc
        if not chunk:
            # The watchdog's shutdown also ends the body, as a server's close would.
            if watchdog.expired and received != length:
                raise _MirrorFailed(_past_deadline(watchdog, received, length))
            return {name: d.hexdigest() for name, d in digests.items()}, received
        if watchdog.expired:
            raise _MirrorFailed(_past_deadline(watchdog, received + len(chunk), length))
        received += len(chunk)
        if max_bytes is not None and received > max_bytes:
            raise _MirrorFailed(f"sent more than the expected {max_bytes} bytes")
        for digest in digests.values():
            digest.update(chunk)
        out.write(chunk)
        bar.update(len(chunk))


def _hasher(name: str) -> Any:
    """A hashlib object for ``name`` (``"sha256"`` or ``"md5"``).

    MD5 only checks that a file is the published one (some data sets publish
    no other checksum), so it is asked for as not used for security: a FIPS
    build of Python then still provides it.
    """
    return hashlib.new(name, usedforsecurity=False)


#: How each checksum is named in messages.
_ALGORITHM_NAMES = {"sha256": "SHA-256", "md5": "MD5"}


def _past_deadline(watchdog: _Watchdog, received: int, length: int | None) -> str:
    of = f" of {length}" if length is not None else ""
    return (
        f"not finished within the deadline of {watchdog.deadline:g} s "
        f"({received}{of} bytes received); for a slow connection pass a larger deadline"
    )


def _lock(fd: int) -> bool | None:
    """Try to lock ``fd`` exclusively without waiting (POSIX ``flock``).

    Returns True when locked, False when another process holds a lock, None
    when this system or file system cannot tell.
    """
    try:
        import fcntl
    except ImportError:  # Windows: an open file cannot be deleted there anyway
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _remove_stale_parts(target: Path) -> list[Path]:
    """Remove the temporary files that earlier downloads of ``target`` left behind.

    Only names this module creates (``.NAME.XXXXXXXX.part``, as from
    :func:`tempfile.NamedTemporaryFile`) that are regular files, not written
    to for :data:`_STALE_AFTER` seconds and locked by no process (a download
    in progress holds the lock of its own). Best effort: what cannot be
    checked or removed stays.
    """
    removed = []
    for entry, _, age in stale_part_files(target):
        if age < _STALE_AFTER:
            continue
        try:
            flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
            fd = os.open(entry.path, flags)
            try:
                locked = _lock(fd)
                if locked is False:
                    continue  # a download in progress
                if locked is None and age < _STALE_AFTER_UNLOCKED:
                    continue
                os.unlink(entry.path)
            finally:
                os.close(fd)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); best effort."""
    # Windows cannot open a directory; its renames need no such step.
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fetch(
    url: str,
    target: Path,
    expected: Mapping[str, str],
    progress: bool,
    timeout: float,
    max_bytes: int | None,
    deadline: float,
) -> None:
    """Download ``url`` to ``target`` through a verified temporary file.

    Raises:
        _MirrorFailed: This mirror failed; another one may work.
        OSError: Writing in the destination directory failed.
        KeyboardInterrupt: As raised; the temporary file is removed first.
    """
    watchdog = _Watchdog(deadline)
    try:
        _fetch_watched(url, target, expected, progress, timeout, max_bytes, watchdog)
    finally:
        watchdog.cancel()


def _fetch_watched(
    url: str,
    target: Path,
    expected: Mapping[str, str],
    progress: bool,
    timeout: float,
    max_bytes: int | None,
    watchdog: _Watchdog,
) -> None:
    plain_url, auth = _credentials(url)
    request = urllib.request.Request(plain_url, headers={"User-Agent": _USER_AGENT})
    if auth is not None:
        # Unredirected: not sent on to wherever the mirror redirects.
        request.add_unredirected_header("Authorization", auth)
    handlers = [_watched_handler(urllib.request.HTTPHandler, watchdog)]
    if hasattr(urllib.request, "HTTPSHandler"):  # absent from a Python without ssl
        handlers.append(_watched_handler(urllib.request.HTTPSHandler, watchdog))
    opener = urllib.request.build_opener(*handlers)
    try:
        response = opener.open(request, timeout=timeout)
    except _NETWORK_ERRORS as exc:
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # it holds the error page's open connection
        if watchdog.expired:
            raise _MirrorFailed(
                f"no response within the deadline of {watchdog.deadline:g} s"
            ) from exc
        raise _MirrorFailed(_describe(exc, timeout)) from exc
    with response:
        length = _content_length(response)
        if max_bytes is not None and length is not None and length > max_bytes:
            raise _MirrorFailed(f"announces {length} bytes, more than the expected {max_bytes}")
        # In the destination directory, so that the final rename stays on one
        # file system (atomic); hidden and suffixed .part so that nothing
        # mistakes it for the file itself.
        part = tempfile.NamedTemporaryFile(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
        )
        try:
            # Tells a later download's clean-up that this file is in use.
            _lock(part.fileno())
            with part, _progress_bar(progress, target.name, length) as bar:
                digests, received = _stream(
                    response, part, bar, max_bytes, timeout, watchdog, length, tuple(expected)
                )
                # http.client ends a body cut short by the server quietly:
                # only the count tells.
                if length is not None and received != length:
                    raise _MirrorFailed(f"connection closed after {received} of {length} bytes")
                for name, want in expected.items():
                    if digests[name] != want.lower():
                        raise _MirrorFailed(
                            f"{_ALGORITHM_NAMES[name]} mismatch: got {digests[name]}, "
                            f"expected {want.lower()}"
                        )
                # On disk before it gets its name: a crash must not leave an
                # empty or partial file under the final name.
                part.flush()
                os.fsync(part.fileno())
            if os.name == "posix":
                # NamedTemporaryFile makes the file private (0600); a data
                # file is rw-r--r--, as most tools would write it.
                os.chmod(part.name, 0o644)
            os.replace(part.name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(part.name)
            raise
    _fsync_directory(target.parent)


def _check_seconds(name: str, value: Any, finite: bool) -> None:
    """Refuse a ``timeout``/``deadline`` that is not a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not value > 0 or (finite and not math.isfinite(value)):
        limit = "a positive finite number" if finite else "a positive number (math.inf: no limit)"
        raise ValueError(f"{name} must be {limit} of seconds, got {value!r}")


def download(
    filename: str,
    dest_dir: str | os.PathLike[str],
    mirrors: str | Sequence[str],
    sha256: str | None,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    max_bytes: int | None = None,
    deadline: float = DEFAULT_DEADLINE,
    md5: str | None = None,
) -> Path:
    """Download one file from the first mirror that delivers it intact.

    Each mirror's URL is its base URL followed by ``filename``. A mirror is
    skipped (and the next one tried) on an HTTP error status, a connection
    error, a timeout, the deadline, a body shorter than its
    ``Content-Length``, a body longer than ``max_bytes`` or a SHA-256 other
    than ``sha256`` (an MD5 other than ``md5``). The file appears under its
    final name only complete and verified; an existing file of that name is
    replaced. Temporary files that an earlier, killed download of the same
    file left in ``dest_dir`` are removed first.

    A user name and password in a mirror URL are sent as HTTP Basic
    authentication (not to where the mirror redirects) and appear as ``***``
    in every message.

    Args:
        filename: A plain file name (no directory part), e.g.
            ``"train-images-idx3-ubyte.gz"``.
        dest_dir: The directory to write it to; created if missing.
        mirrors: Base URLs (``http://`` or ``https://``), in order of
            preference: a sequence, or one comma-separated string. A missing
            trailing ``/`` is added.
        sha256: The expected SHA-256, as 64 hex digits; None where only
            ``md5`` is known.
        progress: Show a tqdm progress bar (and a line per failed mirror) on
            stderr.
        timeout: Seconds to wait for a connection or for the next data
            before giving up on a mirror.
        max_bytes: The most bytes the file may have (its size, if known): a
            mirror announcing or sending more is skipped.
        deadline: Seconds one mirror may take for the whole file, from
            connecting to the last byte, before it is given up (however
            steadily it trickles data); ``math.inf`` for no limit.
        md5: The expected MD5, as 32 hex digits, for files whose publisher
            gives no SHA-256 (checked beside ``sha256`` when both are given).

    Returns:
        The path of the downloaded file, ``dest_dir / filename``.

    Raises:
        DownloadError: No mirror delivered the file; it lists each URL tried
            (credentials hidden) with the reason it failed.
        ValueError: ``filename`` is not a plain file name, ``sha256`` is not
            64 hex digits (or ``md5`` 32), neither is given, a mirror URL is
            invalid, or ``timeout`` or
            ``deadline`` is not a positive number.
        OSError: The destination directory cannot be created or written
            (e.g. the disk is full); no other mirror is tried then.
        KeyboardInterrupt: Re-raised after removing the temporary file.
    """
    if filename in ("", ".", "..") or Path(filename).name != filename or "\\" in filename:
        raise ValueError(f"filename must be a plain file name, got {filename!r}")
    expected = {}
    for name, value, digits in (("sha256", sha256, 64), ("md5", md5, 32)):
        if value is None:
            continue
        if (
            not isinstance(value, str)
            or len(value) != digits
            or any(c not in "0123456789abcdefABCDEF" for c in value)
        ):
            raise ValueError(f"{name} must be {digits} hex digits, got {value!r}")
        expected[name] = value
    if not expected:
        raise ValueError("a checksum is needed: pass sha256 (or md5)")
    _check_seconds("timeout", timeout, finite=True)
    _check_seconds("deadline", deadline, finite=False)
    bases = _parse_mirrors(mirrors, "mirrors")
    target = Path(dest_dir) / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in _remove_stale_parts(target):
        if progress:
            print(f"xpnn: removed {stale}, left by an interrupted download", file=sys.stderr)
    failures = []
    for i, base in enumerate(bases, start=1):
        url = base + urllib.parse.quote(filename)
        shown = _redact(url)
        try:
            _fetch(url, target, expected, progress, timeout, max_bytes, deadline)
        except _MirrorFailed as exc:
            reason = _scrub(str(exc), url)
            failures.append((shown, reason))
            if progress:
                more = "; trying the next mirror" if i < len(bases) else ""
                print(f"xpnn: {shown}: {reason}{more}", file=sys.stderr)
            continue
        return target
    raise DownloadError(filename, target.parent, failures)

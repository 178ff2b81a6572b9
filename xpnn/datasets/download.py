"""Downloading a data file safely: mirrors, SHA-256 check, atomic rename.

:func:`download` fetches one file with nothing but :mod:`urllib`. It tries a
list of mirror base URLs in order and moves on to the next one when a mirror
answers with an HTTP error, cannot be reached, stalls past the timeout, closes
the connection early or serves bytes whose SHA-256 is not the expected one.

The bytes are streamed into a hidden temporary file (``.NAME.XXXX.part``) in
the destination directory, hashed while they are written, and renamed to the
final name (:func:`os.replace`, atomic) only once their length and checksum
are right. Whatever goes wrong -- a failing mirror, a full disk, Ctrl-C -- the
temporary file is removed, so a file under the final name is always complete.

This module also holds what is known about the MNIST distribution: where it is
mirrored (:data:`MNIST_MIRRORS`, overridable with ``XPNN_MNIST_MIRRORS``) and
the SHA-256 and size of each of its four files. It is host-side I/O only: no
array library is involved.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from xpnn import __version__

__all__ = [
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
        parts = urllib.parse.urlsplit(base)
        if parts.scheme not in _SCHEMES or not parts.netloc:
            raise ValueError(
                f"{source}: {base!r} is not an http:// or https:// base URL "
                f"(e.g. {MNIST_MIRRORS[0]!r})"
            )
        # base + file name must name a file *inside* the mirror's folder.
        bases.append(base if base.endswith("/") else base + "/")
    if not bases:
        raise ValueError(f"{source}: no mirror URL given")
    return tuple(bases)


def resolve_mirrors(
    mirrors: str | Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """The MNIST mirrors to try: ``mirrors``, else ``$XPNN_MNIST_MIRRORS``, else the defaults.

    Args:
        mirrors: Base URLs (a sequence, or one comma-separated string).
        environ: The environment to read (:data:`os.environ` if omitted).

    Returns:
        The base URLs, each ending in ``/``.

    Raises:
        ValueError: A URL is not ``http://`` or ``https://``, or none is given.
        TypeError: ``mirrors`` holds something other than strings.
    """
    if mirrors is not None:
        return _parse_mirrors(mirrors, "mirrors")
    env = (os.environ if environ is None else environ).get(MIRRORS_ENV, "")
    # An empty variable means "unset", as usual for such variables.
    if env.strip():
        return _parse_mirrors(env, MIRRORS_ENV)
    return MNIST_MIRRORS


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


def _stream(
    response: http.client.HTTPResponse,
    out: IO[bytes],
    bar: Any,
    max_bytes: int | None,
    timeout: float,
) -> tuple[str, int]:
    """Copy the response body into ``out``; returns ``(sha256 hex, byte count)``.

    Network errors become :class:`_MirrorFailed`; errors writing ``out`` (a
    full disk) propagate as they are, since another mirror would not help.
    """
    digest = hashlib.sha256()
    received = 0
    while True:
        try:
            # read1: what has arrived (one recv), so the bar moves smoothly
            # and the count is exact when a later read times out.
            chunk = response.read1(_CHUNK)
        except _NETWORK_ERRORS as exc:
            raise _MirrorFailed(
                f"failed after {received} bytes: {_describe(exc, timeout)}"
            ) from exc
        if not chunk:
            return digest.hexdigest(), received
        received += len(chunk)
        if max_bytes is not None and received > max_bytes:
            raise _MirrorFailed(f"sent more than the expected {max_bytes} bytes")
        digest.update(chunk)
        out.write(chunk)
        bar.update(len(chunk))


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
    sha256: str,
    progress: bool,
    timeout: float,
    max_bytes: int | None,
) -> None:
    """Download ``url`` to ``target`` through a verified temporary file.

    Raises:
        _MirrorFailed: This mirror failed; another one may work.
        OSError: Writing in the destination directory failed.
        KeyboardInterrupt: As raised; the temporary file is removed first.
    """
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except _NETWORK_ERRORS as exc:
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # it holds the error page's open connection
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
            with part, _progress_bar(progress, target.name, length) as bar:
                digest, received = _stream(response, part, bar, max_bytes, timeout)
                # http.client ends a body cut short by the server quietly:
                # only the count tells.
                if length is not None and received != length:
                    raise _MirrorFailed(f"connection closed after {received} of {length} bytes")
                if digest != sha256.lower():
                    raise _MirrorFailed(
                        f"SHA-256 mismatch: got {digest}, expected {sha256.lower()}"
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


def download(
    filename: str,
    dest_dir: str | os.PathLike[str],
    mirrors: str | Sequence[str],
    sha256: str,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    max_bytes: int | None = None,
) -> Path:
    """Download one file from the first mirror that delivers it intact.

    Each mirror's URL is its base URL followed by ``filename``. A mirror is
    skipped (and the next one tried) on an HTTP error status, a connection
    error, a timeout, a body shorter than its ``Content-Length``, a body
    longer than ``max_bytes`` or a SHA-256 other than ``sha256``. The file
    appears under its final name only complete and verified; an existing
    file of that name is replaced.

    Args:
        filename: A plain file name (no directory part), e.g.
            ``"train-images-idx3-ubyte.gz"``.
        dest_dir: The directory to write it to; created if missing.
        mirrors: Base URLs (``http://`` or ``https://``), in order of
            preference: a sequence, or one comma-separated string. A missing
            trailing ``/`` is added.
        sha256: The expected SHA-256, as 64 hex digits.
        progress: Show a tqdm progress bar (and a line per failed mirror) on
            stderr.
        timeout: Seconds to wait for a connection or for the next data
            before giving up on a mirror.
        max_bytes: The most bytes the file may have (its size, if known): a
            mirror announcing or sending more is skipped.

    Returns:
        The path of the downloaded file, ``dest_dir / filename``.

    Raises:
        DownloadError: No mirror delivered the file; it lists each URL tried
            with the reason it failed.
        ValueError: ``filename`` is not a plain file name, ``sha256`` is not
            64 hex digits, or a mirror URL is invalid.
        OSError: The destination directory cannot be created or written
            (e.g. the disk is full); no other mirror is tried then.
        KeyboardInterrupt: Re-raised after removing the temporary file.
    """
    if filename in ("", ".", "..") or Path(filename).name != filename or "\\" in filename:
        raise ValueError(f"filename must be a plain file name, got {filename!r}")
    if len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    bases = _parse_mirrors(mirrors, "mirrors")
    target = Path(dest_dir) / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for i, base in enumerate(bases, start=1):
        url = base + urllib.parse.quote(filename)
        try:
            _fetch(url, target, sha256, progress, timeout, max_bytes)
        except _MirrorFailed as exc:
            failures.append((url, str(exc)))
            if progress:
                more = "; trying the next mirror" if i < len(bases) else ""
                print(f"xpnn: {url}: {exc}{more}", file=sys.stderr)
            continue
        return target
    raise DownloadError(filename, target.parent, failures)

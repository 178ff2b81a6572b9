"""Downloading MNIST: mirrors, checksums, atomic files, and load_mnist.

No test reaches the internet: the mirrors are a local HTTP server on
127.0.0.1 (the ``mirror`` fixture), whose first path component picks how it
misbehaves, and an autouse fixture points the default mirrors at a closed
port and the data folder into ``tmp_path`` in case a test forgets. Every
network wait is bounded by a timeout of a few seconds.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import gzip
import hashlib
import http.client
import http.server
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
from pathlib import Path

import array_api_compat
import numpy as np
import pytest
from conftest import refused_url

import xpnn
from xpnn.datasets import DownloadError, load_mnist
from xpnn.datasets import download as dl
from xpnn.datasets.download import download, resolve_mirrors
from xpnn.datasets.mnist import FILES, MNIST5K_DIR, mnist_data_dir, user_cache_dir

TIMEOUT = 3.0  # seconds: the bound on every network wait in these tests
TRICKLE = 0.25  # seconds between the bytes of a trickling mirror
DEADLINE = 1.0  # seconds: the deadline given against a trickling mirror
USER, PASSWORD = "reader", "s3cr/et@pw"  # a password that needs escaping
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
USERINFO = f"{USER}:{urllib.parse.quote(PASSWORD, safe='')}"
NAME = FILES["train_label"]
DEFAULT_MIRRORS = dl.MNIST_MIRRORS  # taken before any fixture replaces them


# ---------------------------------------------------------------- test data


def idx_gz(array: np.ndarray) -> bytes:
    """A uint8 array as a gzip'd IDX file (the MNIST format)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def tiny_mnist() -> dict[str, np.ndarray]:
    """Six training and three test digits, keyed like FILES."""
    rng = np.random.default_rng(2)
    return {
        "train_img": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train_label": np.array([0, 1, 2, 7, 8, 9], np.uint8),
        "test_img": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "test_label": np.array([3, 4, 5], np.uint8),
    }


ARRAYS = tiny_mnist()
BLOBS = {FILES[key]: idx_gz(array) for key, array in ARRAYS.items()}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------ the local mirror


class Mirror:
    """A local HTTP server standing in for download mirrors.

    ``base(mode)`` is a mirror base URL; a request for ``/<mode>/<name>``
    answers with the file ``name`` of :attr:`files`, as follows:

    * ``good``: the file, with its Content-Length;
    * ``missing``: 404 (as is any unknown name);
    * ``wrong``: bytes of the right length, last byte changed;
    * ``drop``: Content-Length of the whole file, half of it, then close;
    * ``chunked-drop``: chunked encoding, one chunk of half the file, close;
    * ``nolength``: the file without Content-Length (ends when closed);
    * ``stall``: headers and 10 bytes, then nothing until the test ends;
    * ``trickle``: headers, then one byte every :data:`TRICKLE` s (each read
      well within the timeout, the whole file in minutes);
    * ``trickle-headers``: the status line, then a header one byte at a time;
    * ``auth``: the file if the request has :data:`AUTH` as its
      Authorization header, else 401;
    * ``redirect``: 302 to the same file under ``good``.

    Attributes:
        files: File name -> bytes served.
        requests: The paths requested, in order.
        user_agents: The User-Agent header of each request.
        auths: The Authorization header of each request.
    """

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.requests: list[str] = []
        self.user_agents: list[str | None] = []
        self.auths: list[str | None] = []
        self._release = threading.Event()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def base(self, mode: str) -> str:
        return f"{self.url}/{mode}/"

    def close(self) -> None:
        self._release.set()  # let a stalled handler finish
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(TIMEOUT)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass  # keep the test output clean

            def do_GET(self) -> None:
                mirror.requests.append(self.path)
                mirror.user_agents.append(self.headers.get("User-Agent"))
                mirror.auths.append(self.headers.get("Authorization"))
                parts = self.path.split("/")
                mode, name = parts[1], parts[-1]
                data = mirror.files.get(name)
                self.close_connection = True
                if mode == "missing" or data is None:
                    self.send_error(404)
                    return
                if mode == "auth" and self.headers.get("Authorization") != AUTH:
                    self.send_error(401)
                    return
                if mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"/good/{name}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if mode.startswith("trickle"):
                    with contextlib.suppress(OSError):  # the client hung up
                        self._trickle(mode, data)
                    return
                if mode == "wrong":
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                half = data[: len(data) // 2]
                self.send_response(200)
                if mode == "chunked-drop":
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
                    return
                if mode != "nolength":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode == "drop":
                    self.wfile.write(half)
                elif mode == "stall":
                    self.wfile.write(data[:10])
                    self.wfile.flush()
                    mirror._release.wait(10 * TIMEOUT)
                else:
                    self.wfile.write(data)

            def _trickle(self, mode: str, data: bytes) -> None:
                if mode == "trickle-headers":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    slow = b"a" * 1000
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    slow = data
                for i in range(len(slow)):
                    self.wfile.write(slow[i : i + 1])
                    self.wfile.flush()
                    if mirror._release.wait(TRICKLE):
                        return

        return Handler


@pytest.fixture
def mirror():
    m = Mirror(BLOBS)
    yield m
    m.close()


@pytest.fixture(autouse=True)
def _offline(offline, monkeypatch):
    """Every test here is offline (see conftest.offline), with this file's timeout."""
    monkeypatch.setattr(dl, "DEFAULT_TIMEOUT", TIMEOUT)


@pytest.fixture
def official(monkeypatch):
    """Make the tiny files the "official" MNIST files, hash and size."""
    monkeypatch.setattr(dl, "MNIST_SHA256", {name: sha256(b) for name, b in BLOBS.items()})
    monkeypatch.setattr(dl, "MNIST_SIZES", {name: len(b) for name, b in BLOBS.items()})


def fetch(dest: Path, *modes_or_urls: str, mirror: Mirror | None = None, **kwargs) -> Path:
    """download(NAME) from the given mirror modes (or full base URLs)."""
    mirrors = [m if "://" in m else mirror.base(m) for m in modes_or_urls]
    kwargs.setdefault("progress", False)
    kwargs.setdefault("timeout", TIMEOUT)
    return download(NAME, dest, mirrors, sha256(BLOBS[NAME]), **kwargs)


# -------------------------------------------------------------- the table


def test_known_hashes_and_sizes_cover_the_four_files():
    assert set(dl.MNIST_SHA256) == set(FILES.values())
    assert set(dl.MNIST_SIZES) == set(FILES.values())
    for digest in dl.MNIST_SHA256.values():
        assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")


def test_official_values_are_those_published():
    # As listed by TensorFlow Datasets (url_checksums/mnist.txt), written
    # out again so that a typo in the module cannot agree with itself.
    published = {
        "train-images-idx3-ubyte.gz": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            9912422,
        ),
        "train-labels-idx1-ubyte.gz": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            28881,
        ),
        "t10k-images-idx3-ubyte.gz": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            1648877,
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            4542,
        ),
    }
    assert {n: (dl.MNIST_SHA256[n], dl.MNIST_SIZES[n]) for n in published} == published


# ------------------------------------------------------------- download()


def test_good_file(mirror, tmp_path):
    dest = tmp_path / "new" / "dir"  # created on the way
    path = fetch(dest, "good", mirror=mirror)
    assert path == dest / NAME
    assert path.read_bytes() == BLOBS[NAME]
    assert os.listdir(dest) == [NAME]  # no temporary file left
    assert mirror.requests == [f"/good/{NAME}"]
    assert mirror.user_agents == [f"xpnn/{xpnn.__version__} (Python urllib)"]
    if os.name == "posix":  # not the temporary file's private 0600
        assert path.stat().st_mode & 0o777 == 0o644


def test_base_url_without_trailing_slash(mirror, tmp_path):
    path = fetch(tmp_path, mirror.base("good").rstrip("/"))
    assert path.read_bytes() == BLOBS[NAME]


def test_existing_file_is_replaced(mirror, tmp_path):
    (tmp_path / NAME).write_bytes(b"old")
    assert fetch(tmp_path, "good", mirror=mirror).read_bytes() == BLOBS[NAME]


def test_first_mirror_404_then_second_ok(mirror, tmp_path):
    path = fetch(tmp_path, "missing", "good", mirror=mirror)
    assert path.read_bytes() == BLOBS[NAME]
    assert mirror.requests == [f"/missing/{NAME}", f"/good/{NAME}"]
    assert os.listdir(tmp_path) == [NAME]


def test_bad_mirrors_are_skipped_in_order(mirror, tmp_path):
    fetch(tmp_path, "wrong", "drop", "missing", "good", mirror=mirror)
    assert [r.split("/")[1] for r in mirror.requests] == ["wrong", "drop", "missing", "good"]
    assert (tmp_path / NAME).read_bytes() == BLOBS[NAME]


FAILURES = [
    pytest.param("wrong", "SHA-256 mismatch: got ", id="checksum"),
    pytest.param("drop", f"connection closed after {len(BLOBS[NAME]) // 2} of ", id="drop"),
    pytest.param("chunked-drop", "connection closed in the middle", id="chunked-drop"),
    pytest.param("missing", "HTTP 404 Not Found", id="404"),
]


@pytest.mark.parametrize(("mode", "reason"), FAILURES)
def test_failure_on_every_mirror_leaves_nothing(mirror, tmp_path, mode, reason):
    with pytest.raises(DownloadError) as err:
        fetch(tmp_path, mode, mirror.base(mode) + "again/", mirror=mirror)
    assert os.listdir(tmp_path) == []  # neither the file nor a .part
    assert len(err.value.failures) == 2
    for url, why in err.value.failures:
        assert url.endswith(f"/{NAME}")
        assert reason in why, why
    assert err.value.name == NAME
    assert err.value.directory == tmp_path


def test_checksum_reason_names_both_hashes(mirror, tmp_path):
    with pytest.raises(DownloadError) as err:
        fetch(tmp_path, "wrong", mirror=mirror)
    [(_, why)] = err.value.failures
    bad = BLOBS[NAME][:-1] + bytes([BLOBS[NAME][-1] ^ 0xFF])
    assert why == f"SHA-256 mismatch: got {sha256(bad)}, expected {sha256(BLOBS[NAME])}"


def test_refused_connection(tmp_path):
    url = refused_url()
    with pytest.raises(DownloadError) as err:
        fetch(tmp_path, url)
    message = str(err.value)
    assert message.startswith(f"could not download {NAME} into {tmp_path}; every mirror failed:")
    assert f"{url}{NAME}: " in message
    assert "refused" in message.lower()
    assert isinstance(err.value, OSError)
    assert os.listdir(tmp_path) == []


def test_stalled_mirror_times_out(mirror, tmp_path):
    start = time.monotonic()
    with pytest.raises(
        DownloadError, match=r"failed after 10 bytes: timed out \(no data for 0.5 s\)"
    ):
        fetch(tmp_path, "stall", mirror=mirror, timeout=0.5)
    assert time.monotonic() - start < 2 * TIMEOUT
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("mode", "phase"),
    [
        pytest.param("trickle", r"\(\d+ of \d+ bytes received\)", id="body"),
        # Cut off, http.client takes the headers as ended: no body follows.
        pytest.param("trickle-headers", r"\(0 bytes received\)", id="headers"),
    ],
)
def test_trickling_mirror_is_given_up_at_the_deadline(mirror, tmp_path, mode, phase):
    # Every read gets a byte within TRICKLE < timeout, so only the deadline
    # can end this; without one it would take minutes.
    start = time.monotonic()
    with pytest.raises(DownloadError, match=f"deadline of {DEADLINE:g} s") as err:
        fetch(tmp_path, mode, mirror=mirror, timeout=TIMEOUT, deadline=DEADLINE)
    elapsed = time.monotonic() - start
    assert DEADLINE <= elapsed < DEADLINE + TIMEOUT
    assert len(err.value.failures) == 1
    assert err.value.failures[0][1].startswith("not finished within the deadline")
    assert "pass a larger deadline" in str(err.value)
    assert re.search(phase, str(err.value))
    assert os.listdir(tmp_path) == []


def test_deadline_moves_on_to_the_next_mirror(mirror, tmp_path):
    path = fetch(tmp_path, "trickle", "good", mirror=mirror, deadline=DEADLINE)
    assert path.read_bytes() == BLOBS[NAME]
    assert os.listdir(tmp_path) == [NAME]


def test_deadline_is_per_mirror_not_for_the_whole_download(mirror, tmp_path):
    # A fast mirror is not hurt by a deadline shorter than the whole run.
    fetch(tmp_path, "missing", "good", mirror=mirror, deadline=0.5)
    assert (tmp_path / NAME).read_bytes() == BLOBS[NAME]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        pytest.param("good", "announces", id="content-length"),
        pytest.param("nolength", "sent more than", id="streamed"),
    ],
)
def test_more_bytes_than_max_bytes(mirror, tmp_path, mode, reason):
    with pytest.raises(DownloadError, match=reason):
        fetch(tmp_path, mode, mirror=mirror, max_bytes=len(BLOBS[NAME]) - 1)
    assert os.listdir(tmp_path) == []
    # Exactly the size is fine, with or without Content-Length.
    assert fetch(tmp_path, mode, mirror=mirror, max_bytes=len(BLOBS[NAME])).is_file()


def _break_writes(monkeypatch, exc: BaseException) -> list[str]:
    """Make the download's temporary file raise ``exc`` on its first write.

    Returns the list that receives the temporary file's name once created.
    """
    created: list[str] = []
    real = tempfile.NamedTemporaryFile

    def named_temporary_file(*args, **kwargs):
        part = real(*args, **kwargs)
        created.append(part.name)

        def write(data: bytes) -> int:
            part.file.write(data[:5])  # some bytes really reach the file
            raise exc

        part.write = write
        return part

    monkeypatch.setattr(dl.tempfile, "NamedTemporaryFile", named_temporary_file)
    return created


def test_keyboard_interrupt_removes_the_temporary_file(mirror, tmp_path, monkeypatch):
    created = _break_writes(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        fetch(tmp_path, "good", "good", mirror=mirror)
    assert len(created) == 1
    assert Path(created[0]).parent == tmp_path
    assert Path(created[0]).name.startswith(f".{NAME}.")
    assert created[0].endswith(".part")
    assert os.listdir(tmp_path) == []
    assert len(mirror.requests) == 1  # not retried on the next mirror


def test_local_write_error_is_raised_not_retried(mirror, tmp_path, monkeypatch):
    _break_writes(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError, match="No space left") as err:
        fetch(tmp_path, "good", "good", mirror=mirror)
    assert not isinstance(err.value, DownloadError)
    assert os.listdir(tmp_path) == []
    assert len(mirror.requests) == 1


def test_progress_bar_and_failed_mirror_lines(mirror, tmp_path, capsys):
    fetch(tmp_path, "missing", "good", mirror=mirror, progress=True)
    err = capsys.readouterr().err
    assert (
        f"xpnn: {mirror.base('missing')}{NAME}: HTTP 404 Not Found; trying the next mirror" in err
    )
    assert f"{NAME}: 100%" in err  # tqdm's bar, labelled with the file name


def test_no_output_without_progress(mirror, tmp_path, capsys):
    fetch(tmp_path, "missing", "good", mirror=mirror, progress=False)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"filename": "../x.gz"}, ValueError, "plain file name", id="parent"),
        pytest.param({"filename": "a/b.gz"}, ValueError, "plain file name", id="subdir"),
        pytest.param({"filename": ""}, ValueError, "plain file name", id="empty-name"),
        pytest.param({"sha256": "abc"}, ValueError, "64 hex digits", id="short-hash"),
        pytest.param({"sha256": "g" * 64}, ValueError, "64 hex digits", id="not-hex"),
        pytest.param({"mirrors": ["ftp://host/"]}, ValueError, "http:// or https://", id="ftp"),
        pytest.param(
            {"mirrors": ["host/mnist/"]}, ValueError, "http:// or https://", id="no-scheme"
        ),
        pytest.param({"mirrors": []}, ValueError, "no mirror", id="no-mirror"),
        pytest.param({"mirrors": " , "}, ValueError, "no mirror", id="blank"),
        pytest.param({"mirrors": [b"http://h/"]}, TypeError, "URL strings", id="bytes"),
        pytest.param({"mirrors": ["http://h:port/"]}, ValueError, "not a valid URL", id="port"),
        pytest.param({"timeout": 0}, ValueError, "timeout must be a positive", id="timeout-0"),
        pytest.param({"timeout": -1.0}, ValueError, "timeout must be", id="timeout-neg"),
        pytest.param({"timeout": float("nan")}, ValueError, "timeout must be", id="timeout-nan"),
        pytest.param({"timeout": float("inf")}, ValueError, "finite", id="timeout-inf"),
        pytest.param({"timeout": "3"}, TypeError, "number of seconds", id="timeout-str"),
        pytest.param({"deadline": 0.0}, ValueError, "deadline must be", id="deadline-0"),
        pytest.param({"deadline": float("nan")}, ValueError, "deadline must", id="deadline-nan"),
        pytest.param({"deadline": True}, TypeError, "number of seconds", id="deadline-bool"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, error, match):
    args = {"filename": NAME, "mirrors": ["http://127.0.0.1:9/"], "sha256": "0" * 64, **kwargs}
    with pytest.raises(error, match=match):
        download(dest_dir=tmp_path, progress=False, **args)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------- credentials


def with_credentials(mirror: Mirror, mode: str, userinfo: str = USERINFO) -> str:
    return f"http://{userinfo}@{mirror.url.removeprefix('http://')}/{mode}/"


def test_credentials_are_redacted_in_the_error_and_progress_lines(mirror, tmp_path, capsys):
    bases = [with_credentials(mirror, "missing"), with_credentials(mirror, "auth", "x:wrongpass")]
    with pytest.raises(DownloadError) as err:
        fetch(tmp_path, *bases, progress=True)
    host = mirror.url.removeprefix("http://")
    message = str(err.value)
    stderr = capsys.readouterr().err
    failures = "\n".join(f"{url}: {reason}" for url, reason in err.value.failures)
    for text in (message, stderr, failures):
        assert f"http://***@{host}/missing/{NAME}: HTTP 404" in text
        assert f"http://***@{host}/auth/{NAME}: HTTP 401" in text
        for secret in (USERINFO, "s3cr", "%2Fet", "wrongpass", f"{USER}:"):
            assert secret not in text
    assert os.listdir(tmp_path) == []


def test_credentials_are_sent_as_basic_auth_and_not_redirected(mirror, tmp_path):
    path = fetch(tmp_path, with_credentials(mirror, "auth"))
    assert path.read_bytes() == BLOBS[NAME]
    assert mirror.auths == [AUTH]
    assert all(USER not in r and "s3cr" not in r for r in mirror.requests)
    # Followed to another URL, the credentials stay behind.
    fetch(tmp_path, with_credentials(mirror, "redirect"))
    assert mirror.requests[-2:] == [f"/redirect/{NAME}", f"/good/{NAME}"]
    assert mirror.auths[-2:] == [AUTH, None]


@pytest.mark.parametrize(
    ("mirrors", "shown"),
    [
        (["ftp://user:s3cret@host/mnist/"], "'ftp://***@host/mnist/'"),
        (["user:s3cret@host/mnist/"], "'***@host/mnist/'"),
        (["http://user:s3cret@host:port/"], "'http://***@host:port/'"),
        (["http://user:s3/cret@host/"], "an '@' after its host name"),
        (["http://user:s3cret@[::1/"], "'http://***@[::1/' is not a valid URL"),
    ],
)
def test_credentials_are_redacted_in_invalid_mirror_messages(tmp_path, mirrors, shown):
    with pytest.raises(ValueError) as err:
        download(NAME, tmp_path, mirrors, "0" * 64, progress=False)
    assert shown in str(err.value)
    assert "s3" not in str(err.value) and "user:" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pass@host/x/", "https://***@host/x/"),
        ("https://user@host:8080/x/", "https://***@host:8080/x/"),
        ("https://u:p@ss@host/x/", "https://***@host/x/"),
        ("  HTTP://u:p@host", "  HTTP://***@host"),
        ("https://host/a@b/", "https://host/a@b/"),
        ("https://host/x/?q=a@b", "https://host/x/?q=a@b"),
        ("https://host/x/", "https://host/x/"),
    ],
)
def test_redact(url, shown):
    assert dl._redact(url) == shown


# ------------------------------------------- temporary files left behind


def _part(directory: Path, middle: str = "k1ll_9ed", name: str = NAME, age: float = 3600) -> Path:
    path = directory / f".{name}.{middle}.part"
    path.write_bytes(b"half a file")
    old = time.time() - age
    os.utime(path, (old, old))
    return path


def test_stale_temporary_files_of_the_target_are_removed(mirror, tmp_path, capsys):
    stale = [_part(tmp_path), _part(tmp_path, "abcd0123")]
    others = [
        _part(tmp_path, "short"),  # not a name NamedTemporaryFile makes
        _part(tmp_path, "UPPERCAS"),
        _part(tmp_path, name="t10k-labels-idx1-ubyte.gz"),  # another file's
        _part(tmp_path, "fresh123", age=0),  # written to just now: in use
    ]
    (tmp_path / f"{NAME}.abcd0123.part").write_bytes(b"")  # not hidden
    (tmp_path / f".{NAME}.abcd0123.part.bak").write_bytes(b"")
    (tmp_path / f".{NAME}.dir12345.part").mkdir()
    keep = [
        *others,
        *(
            tmp_path / n
            for n in (
                f"{NAME}.abcd0123.part",
                f".{NAME}.abcd0123.part.bak",
                f".{NAME}.dir12345.part",
            )
        ),
    ]
    fetch(tmp_path, "good", mirror=mirror, progress=True)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)
    assert (tmp_path / NAME).read_bytes() == BLOBS[NAME]
    assert f"removed {stale[0]}" in capsys.readouterr().err


def test_a_symlink_named_like_a_temporary_file_is_left(mirror, tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep me")
    dest = tmp_path / "dest"
    dest.mkdir()
    link = dest / f".{NAME}.abcd0123.part"
    try:
        link.symlink_to(outside)
    except OSError:
        pytest.skip("no symlinks here")
    fetch(dest, "good", mirror=mirror)
    assert link.is_symlink() and outside.read_bytes() == b"keep me"


@pytest.mark.skipif(os.name != "posix", reason="flock is POSIX")
def test_a_temporary_file_locked_by_a_running_download_is_left(mirror, tmp_path):
    import fcntl

    busy = _part(tmp_path)
    with open(busy, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        fetch(tmp_path, "good", mirror=mirror)
        assert busy.exists()
    fetch(tmp_path, "good", mirror=mirror)
    assert not busy.exists()


def test_the_file_of_a_killed_download_is_removed_by_the_next(mirror, tmp_path, monkeypatch):
    # A real download, killed with SIGKILL (no clean-up can run) mid-file.
    code = (
        "import sys\n"
        "from xpnn.datasets.download import download\n"
        "download(sys.argv[1], sys.argv[2], [sys.argv[3]], '0' * 64, progress=False,"
        " timeout=30, deadline=float('inf'))\n"
    )
    args = [sys.executable, "-c", code, NAME, str(tmp_path), mirror.base("trickle")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 10 * TIMEOUT
        while not (parts := [p for p in tmp_path.iterdir() if p.suffix == ".part"]):
            assert proc.poll() is None, "the download ended early"
            assert time.monotonic() < end, "no temporary file appeared"
            time.sleep(0.05)
        proc.kill()
        proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
    (part,) = parts
    assert part.exists()  # left behind: nothing cleaned up after SIGKILL
    monkeypatch.setattr(dl, "_STALE_AFTER", 0.0)  # rather than waiting a minute
    fetch(tmp_path, "good", mirror=mirror)
    assert sorted(os.listdir(tmp_path)) == [NAME]


# ---------------------------------------------------- mirrors and folders


def test_resolve_mirrors_precedence():
    env = {dl.MIRRORS_ENV: "http://a/x, https://b/y/"}
    assert resolve_mirrors(None, environ={}) == dl.MNIST_MIRRORS
    assert resolve_mirrors(None, environ={dl.MIRRORS_ENV: "  "}) == dl.MNIST_MIRRORS
    assert resolve_mirrors(None, environ=env) == ("http://a/x/", "https://b/y/")
    assert resolve_mirrors(["http://c/"], environ=env) == ("http://c/",)
    assert resolve_mirrors("http://c/,http://d/", environ=env) == ("http://c/", "http://d/")


def test_bad_mirror_in_environment_names_the_variable():
    with pytest.raises(ValueError, match=dl.MIRRORS_ENV):
        resolve_mirrors(None, environ={dl.MIRRORS_ENV: "file:///tmp/mnist"})


def test_default_mirrors_are_http_base_urls():
    assert len(DEFAULT_MIRRORS) >= 2
    assert all(m.startswith(("https://", "http://")) for m in DEFAULT_MIRRORS)
    assert resolve_mirrors(DEFAULT_MIRRORS) == DEFAULT_MIRRORS  # valid, ending in /


@pytest.mark.parametrize(
    ("platform", "environ", "expected"),
    [
        ("linux", {"XDG_CACHE_HOME": "/xdg"}, Path("/xdg/xpnn")),
        ("linux", {"XDG_CACHE_HOME": "relative"}, Path.home() / ".cache" / "xpnn"),
        ("linux", {}, Path.home() / ".cache" / "xpnn"),
        ("freebsd14", {}, Path.home() / ".cache" / "xpnn"),
        ("darwin", {"XDG_CACHE_HOME": "/xdg"}, Path.home() / "Library" / "Caches" / "xpnn"),
        ("win32", {"LOCALAPPDATA": "C:/Users/u/AppData/Local"}, None),
        ("win32", {}, Path.home() / "AppData" / "Local" / "xpnn" / "Cache"),
    ],
)
def test_user_cache_dir(platform, environ, expected):
    if expected is None:
        expected = Path(environ["LOCALAPPDATA"]) / "xpnn" / "Cache"
    assert user_cache_dir(platform, environ) == expected


def test_mnist_data_dir(monkeypatch, tmp_path):
    assert mnist_data_dir(tmp_path) == tmp_path  # as is: no mnist subfolder
    assert mnist_data_dir("~/m") == Path.home() / "m"
    monkeypatch.setenv("XPNN_DATA_DIR", str(tmp_path / "root"))
    assert mnist_data_dir() == tmp_path / "root" / "mnist"
    monkeypatch.setenv("XPNN_DATA_DIR", "")
    assert mnist_data_dir() == user_cache_dir() / "mnist"
    monkeypatch.delenv("XPNN_DATA_DIR")
    assert mnist_data_dir() == user_cache_dir() / "mnist"


# ------------------------------------------------------------ load_mnist


def assert_tiny_mnist(splits, backend: xpnn.Backend) -> None:
    """The tiny MNIST, normalized and flattened, on ``backend``."""
    xp = backend.xp
    namespace = array_api_compat.array_namespace(xp.asarray(0, device=backend.device))
    for (x, t), split in zip(splits, ("train", "test"), strict=True):
        for a in (x, t):
            assert array_api_compat.array_namespace(a) is namespace
            assert array_api_compat.device(a) == backend.device
        assert x.dtype == backend.float_dtype == xp.float32
        assert t.dtype == xp.int64
        images = ARRAYS[f"{split}_img"]
        want = images.reshape(len(images), 784).astype(np.float32) / np.float32(255)
        np.testing.assert_array_equal(xpnn.to_numpy(x), want)
        np.testing.assert_array_equal(xpnn.to_numpy(t), ARRAYS[f"{split}_label"])


def test_load_mnist_downloads_once(backend, mirror, official, tmp_path):
    data_dir = tmp_path / "mnist"
    splits = load_mnist(data_dir=data_dir, mirrors=[mirror.base("good")], progress=False)
    assert_tiny_mnist(splits, backend)
    assert sorted(mirror.requests) == sorted(f"/good/{n}" for n in FILES.values())
    assert sorted(os.listdir(data_dir)) == sorted(FILES.values())
    # Second call: everything is there, nothing is asked for.
    splits = load_mnist(data_dir=data_dir, mirrors=[mirror.base("good")], progress=False)
    assert_tiny_mnist(splits, backend)
    assert len(mirror.requests) == 4


def test_load_mnist_book_arguments(mirror, official, tmp_path):
    xp = xpnn.get_backend().xp
    (x, t), (xt, tt) = load_mnist(
        False, False, True, tmp_path, mirrors=mirror.base("good"), progress=False
    )
    assert (tuple(x.shape), x.dtype, tuple(t.shape)) == ((6, 1, 28, 28), xp.uint8, (6, 10))
    assert (tuple(xt.shape), tuple(tt.shape), tt.dtype) == ((3, 1, 28, 28), (3, 10), xp.float32)
    _, (_, tt) = load_mnist(one_hot_label=True, data_dir=tmp_path, dtype="float64")
    assert tt.dtype == xp.float64


def test_load_mnist_downloads_only_missing_files(mirror, official, tmp_path):
    for name, blob in BLOBS.items():
        if name != NAME:
            (tmp_path / name).write_bytes(blob)
    load_mnist(data_dir=tmp_path, mirrors=[mirror.base("good")], progress=False)
    assert mirror.requests == [f"/good/{NAME}"]


def test_load_mnist_does_not_check_local_files_against_official_hashes(mirror, tmp_path):
    # The table still holds the real MNIST hashes; local files differ.
    for name, blob in BLOBS.items():
        (tmp_path / name).write_bytes(blob)
    assert_tiny_mnist(load_mnist(data_dir=tmp_path), xpnn.get_backend())
    assert mirror.requests == []


def test_load_mnist_verifies_downloads_against_official_hashes(mirror, tmp_path):
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        load_mnist(data_dir=tmp_path, mirrors=[mirror.base("good")], progress=False)
    assert os.listdir(tmp_path) == []


def _assert_explains_the_files(message: str, directory: Path) -> None:
    assert str(directory) in message
    for name in FILES.values():
        assert name in message
    assert "by hand" in message
    assert dl.MIRRORS_ENV in message


def test_load_mnist_without_download(mirror, tmp_path):
    (tmp_path / NAME).write_bytes(BLOBS[NAME])
    with pytest.raises(FileNotFoundError) as err:
        load_mnist(data_dir=tmp_path, download=False, mirrors=[mirror.base("good")])
    message = str(err.value)
    missing = [n for n in FILES.values() if n != NAME]
    assert f"MNIST files missing in {tmp_path} and download=False: {', '.join(missing)}." in message
    _assert_explains_the_files(message, tmp_path)
    assert mirror.requests == []


def test_load_mnist_every_mirror_fails(mirror, official, tmp_path):
    refused = refused_url()
    data_dir = tmp_path / "d"
    with pytest.raises(DownloadError) as err:
        load_mnist(data_dir=data_dir, mirrors=[mirror.base("missing"), refused])
    message = str(err.value)
    assert f"{mirror.base('missing')}{err.value.name}: HTTP 404 Not Found" in message
    assert f"{refused}{err.value.name}: " in message
    assert "refused" in message.lower()
    _assert_explains_the_files(message, data_dir)
    assert isinstance(err.value, OSError)
    assert os.listdir(data_dir) == []


def test_load_mnist_offline_with_default_mirrors(official):
    # The autouse fixture made the defaults a closed port: as if offline.
    with pytest.raises(DownloadError) as err:
        load_mnist(progress=False)
    _assert_explains_the_files(str(err.value), mnist_data_dir())
    assert [url for url, _ in err.value.failures] == [dl.MNIST_MIRRORS[0] + err.value.name]


def test_load_mnist_passes_deadline_and_timeout_on(mirror, official, tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError, match=f"deadline of {DEADLINE:g} s"):
        load_mnist(
            data_dir=tmp_path,
            mirrors=[mirror.base("trickle")],
            progress=False,
            deadline=DEADLINE,
            timeout=TIMEOUT,
        )
    assert time.monotonic() - start < DEADLINE + TIMEOUT
    with pytest.raises(DownloadError, match=r"no data for 0.5 s"):
        load_mnist(data_dir=tmp_path, mirrors=[mirror.base("stall")], progress=False, timeout=0.5)


def test_load_mnist_environment(mirror, official, tmp_path, monkeypatch):
    monkeypatch.setenv("XPNN_DATA_DIR", str(tmp_path / "root"))
    monkeypatch.setenv(dl.MIRRORS_ENV, f"{mirror.base('missing')},{mirror.base('good')}")
    load_mnist(progress=False)
    assert sorted(os.listdir(tmp_path / "root" / "mnist")) == sorted(FILES.values())
    assert [r.split("/")[1] for r in mirror.requests] == ["missing", "good"] * 4
    # mirrors= wins over the environment.
    for name in FILES.values():
        (tmp_path / "root" / "mnist" / name).unlink()
    mirror.requests.clear()
    load_mnist(mirrors=[mirror.base("good")], progress=False)
    assert [r.split("/")[1] for r in mirror.requests] == ["good"] * 4


def test_load_mnist_default_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("XPNN_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as err:
        load_mnist(download=False)
    assert str(user_cache_dir() / "mnist") in str(err.value)


def test_load_mnist_reads_the_packaged_sample_as_is():
    (x, t), (xt, tt) = load_mnist(data_dir=MNIST5K_DIR, download=False)
    assert (x.shape, t.shape, xt.shape, tt.shape) == ((4000, 784), (4000,), (1000, 784), (1000,))


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        pytest.param(
            urllib.error.HTTPError("u", 503, "Service Unavailable", {}, None),
            "HTTP 503 Service Unavailable",
            id="http",
        ),
        pytest.param(
            urllib.error.URLError(socket.gaierror(-2, "Name or service not known")),
            "cannot resolve the host name (Name or service not known)",
            id="dns",
        ),
        pytest.param(
            urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
            "Connection refused",
            id="refused",
        ),
        pytest.param(urllib.error.URLError("no host given"), "no host given", id="text"),
        pytest.param(TimeoutError("timed out"), "timed out (no data for 2.5 s)", id="timeout"),
        pytest.param(
            http.client.IncompleteRead(b""),
            "connection closed in the middle of the response",
            id="incomplete",
        ),
    ],
)
def test_failure_reasons(exc, reason):
    assert dl._describe(exc, 2.5) == reason

"""Shared fixtures: every backend-dependent test runs on every backend here.

The ``backend`` fixture (and ``xp``, its namespace) is parametrized over all
backends xpnn knows. Those that cannot run on this machine are skipped with
the reason; ``--require-backend SPEC`` turns that skip into a failure (the GPU
nox session uses it so that a CUDA run can never pass by skipping everything).

The CPU libraries run with one thread (``--cpu-threads``, see
:func:`pytest_configure`). The run ends with the skipped tests named
(:func:`pytest_terminal_summary`): one line per backend that cannot run
here, with the count, why, and the command that runs them, and one line for
every other reason, counted. It comes before pytest's own last line
(``N passed, M skipped in ...``).
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

import xpnn
from xpnn import backend as _backend
from xpnn.backend import selection as _selection

BACKEND_PARAMS = [
    pytest.param("numpy", id="numpy"),
    # The simulated second device refuses np.asarray and mixing devices, as a
    # GPU does, so it proves the code moves nothing implicitly.
    pytest.param("array_api_strict:device1", id="array_api_strict:device1"),
    pytest.param("torch:cpu", id="torch:cpu"),
    pytest.param("torch:cuda", id="torch:cuda", marks=pytest.mark.gpu),
    pytest.param("cupy:0", id="cupy:0", marks=pytest.mark.gpu),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-backend",
        action="append",
        default=[],
        metavar="SPEC",
        help="fail instead of skipping when this backend (e.g. cupy:0) cannot run",
    )
    parser.addoption(
        "--cpu-threads",
        type=int,
        default=1,
        metavar="N",
        help="threads of the CPU libraries (BLAS, OpenMP, PyTorch) during the tests; 0 leaves "
        "them and their environment variables as they are (default: 1: the tests' matrices "
        "are tiny, and on a busy 2-core machine 2 BLAS threads made the suite 1.5x slower)",
    )


#: The thread limit's undo, set by pytest_configure (empty: no limit applied).
_THREAD_UNDO: list = []


def pytest_configure(config: pytest.Config) -> None:
    """Limit the CPU libraries to ``--cpu-threads`` for the whole run (here and in subprocesses).

    The environment variables reach the subprocesses the tests start and
    libraries loaded later (PyTorch reads ``OMP_NUM_THREADS``);
    threadpoolctl reaches NumPy's BLAS, already loaded. Not
    ``xpnn.backend.threads.limit_threads``: its own tests need it outside
    any block.
    """
    import os

    n = config.getoption("--cpu-threads")
    if n < 0:
        raise pytest.UsageError(f"--cpu-threads must be 0 or more, got {n}")
    if not n:
        return
    from xpnn.backend.threads import THREAD_ENV

    saved = {name: os.environ.get(name) for name in THREAD_ENV}
    os.environ.update({name: str(n) for name in THREAD_ENV})
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a dependency of xpnn; without it, the environment still acts
        limiter = None
    else:
        limiter = threadpool_limits(limits=n)

    def undo() -> None:
        if limiter is not None:
            limiter.restore_original_limits()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    _THREAD_UNDO.append(undo)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _THREAD_UNDO:
        _THREAD_UNDO.pop()()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say once, at the top, which backends run here and why the others don't."""
    lines = ["xpnn backends:"]
    for spec, reason in _backend.backend_status().items():
        lines.append(f"  {spec}: {'runs' if reason is None else 'skipped: ' + reason}")
    return lines


#: The command that runs the tests of each library's backends (by the spec's library).
RUN_WITH = {
    "torch": "nox -s tests_torch",
    "cupy": "nox -s tests_gpu",
    "array_api_strict": 'pip install "xpnn[test]" (array-api-strict), then pytest',
}

#: Where it is not the library's command alone (PyTorch on CUDA needs a GPU too).
RUN_WITH_SPEC = {"torch:cuda": "nox -s tests_torch on a machine with a CUDA GPU"}

_BACKEND_SKIP = re.compile(r"^(?P<spec>[\w.]+(?::[\w.]+)*) cannot run here: (?P<why>.*)$", re.S)
_IMPORT_SKIP = re.compile(r"^could not import '(?P<module>[\w.]+)'")


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason a skipped test was skipped, without pytest's ``Skipped: `` prefix."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ").strip()


def _short_why(why: str) -> str:
    """``"the package 'torch' is not installed (...)"`` -> ``"not installed"``; else line 1."""
    if "is not installed" in why:
        return "not installed"
    why = why.splitlines()[0] if why else "cannot run here"
    return why if len(why) <= 120 else why[:117] + "..."


def skip_summary(reports: list) -> list[str]:
    """The lines that name the skipped tests: one per backend, one for every other reason.

    A test skipped because a backend cannot run (``"SPEC cannot run here:
    WHY"``, see :func:`open_or_skip`) counts for that backend, and so does
    one skipped because its library cannot be imported (``pytest.importorskip``:
    torch's for torch:cpu, cupy's for cupy:0).
    """
    backends: dict[str, Counter] = {}
    others: Counter = Counter()
    for report in reports:
        reason = _skip_reason(report)
        match = _BACKEND_SKIP.match(reason)
        imported = _IMPORT_SKIP.match(reason)
        if match:
            spec, why = match["spec"], _short_why(match["why"])
        elif imported and imported["module"].split(".")[0] in ("torch", "cupy"):
            spec = "torch:cpu" if imported["module"].startswith("torch") else "cupy:0"
            why = "not installed"
        else:
            others[reason.splitlines()[0] if reason else "(no reason given)"] += 1
            continue
        backends.setdefault(spec, Counter())[why] += 1
    order = [param.values[0] for param in BACKEND_PARAMS]
    lines = []
    for spec in sorted(backends, key=lambda s: (order.index(s) if s in order else len(order), s)):
        whys = backends[spec]
        count = sum(whys.values())
        why = "; ".join(w for w, _ in whys.most_common())
        run = RUN_WITH_SPEC.get(spec) or RUN_WITH.get(spec.split(":")[0])
        lines.append(
            f"{spec}: {why}, {count:,} test{'s' if count != 1 else ''} skipped"
            + (f"; run them with: {run}" if run else "")
        )
    if others:
        count = sum(others.values())
        reasons = "; ".join(f"{reason} ({n:,})" for reason, n in others.most_common())
        lines.append(f"other: {count:,} test{'s' if count != 1 else ''} skipped: {reasons}")
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Name the skipped tests, before pytest's last line (see :func:`skip_summary`)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    terminalreporter.write_sep("=", f"{len(skipped):,} skipped, by backend and reason")
    for line in skip_summary(skipped):
        terminalreporter.write_line(line)


def open_or_skip(request: pytest.FixtureRequest, spec: str) -> xpnn.Backend:
    """Open a backend, or skip (fail, if required) with the reason it cannot run."""
    try:
        return _backend._open(spec)
    except xpnn.BackendUnavailableError as exc:
        if spec in request.config.getoption("--require-backend"):
            pytest.fail(f"required backend {spec} cannot run: {exc}")
        pytest.skip(f"{spec} cannot run here: {exc.reason}")


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest):
    """The backend under test, active (for new arrays) for the whole test."""
    b = open_or_skip(request, request.param)
    with xpnn.use_backend(b.spec):
        yield b


@pytest.fixture
def xp(backend: xpnn.Backend):
    """The array namespace of the backend under test."""
    return backend.xp


@pytest.fixture(autouse=True)
def _restore_global_backend():
    """Tests may call set_backend(); put the process default back afterwards."""
    # The state lives in the selection module: the package only re-exports.
    saved = (
        _selection._default,
        _selection._default_source,
        _selection._env_spec,
        _selection._env_dtype,
        _selection._unused_noted,
    )
    yield
    (
        _selection._default,
        _selection._default_source,
        _selection._env_spec,
        _selection._env_dtype,
        _selection._unused_noted,
    ) = saved


def write_idx(path, array) -> None:
    """Write a uint8 array as a gzip'd IDX file (the MNIST format)."""
    import gzip
    import struct

    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype("u1").tobytes(), mtime=0))


@pytest.fixture
def mnist_dir(tmp_path):
    """A tiny, learnable MNIST look-alike: 10 noisy prototypes, 200 train / 50 test."""
    import numpy as np

    from xpnn.datasets.mnist import FILES

    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 256, size=(10, 28, 28))
    for (img, lab), n in ((("train_img", "train_label"), 200), (("test_img", "test_label"), 50)):
        labels = rng.integers(0, 10, size=n)
        noise = rng.normal(0, 40, size=(n, 28, 28))
        images = np.clip(prototypes[labels] + noise, 0, 255)
        write_idx(tmp_path / FILES[img], images)
        write_idx(tmp_path / FILES[lab], labels)
    return tmp_path


@pytest.fixture
def cupy_backend(request: pytest.FixtureRequest):
    """CuPy on GPU 0, active for the test (skipped, or failed if required, without it)."""
    b = open_or_skip(request, "cupy:0")
    with xpnn.use_backend(b.spec):
        yield b


def refused_url() -> str:
    """A base URL on a local port nobody listens on (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Nothing goes online or into ~/.cache, whatever a test forgets.

    MNIST and PTB mirrors refuse connections, timeouts are short, the data folder is
    the test's own, and no proxy from the environment is used (urllib would
    send even 127.0.0.1 through one).
    """
    from xpnn.datasets import download as dl
    from xpnn.datasets import ptb

    monkeypatch.setattr(dl, "MNIST_MIRRORS", (refused_url(),))
    monkeypatch.setattr(dl, "DEFAULT_TIMEOUT", 3.0)
    monkeypatch.delenv(dl.MIRRORS_ENV, raising=False)
    monkeypatch.setattr(ptb, "PTB_MIRRORS", (refused_url(),))
    monkeypatch.delenv(ptb.MIRRORS_ENV, raising=False)
    monkeypatch.setenv("XPNN_DATA_DIR", str(tmp_path / "xpnn-data"))
    monkeypatch.delenv("XPNN_SEQUENCE_DIR", raising=False)  # the generated sequence data
    for var in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)

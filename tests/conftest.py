"""Shared fixtures: every backend-dependent test runs on every backend here.

The ``backend`` fixture (and ``xp``, its namespace) is parametrized over all
backends xpnn knows. Those that cannot run on this machine are skipped with
the reason; ``--require-backend SPEC`` turns that skip into a failure (the GPU
nox session uses it so that a CUDA run can never pass by skipping everything).
"""

from __future__ import annotations

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


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say once, at the top, which backends run here and why the others don't."""
    lines = ["xpnn backends:"]
    for spec, reason in _backend.backend_status().items():
        lines.append(f"  {spec}: {'runs' if reason is None else 'skipped: ' + reason}")
    return lines


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
    saved = (_selection._default, _selection._env_spec)
    yield
    _selection._default, _selection._env_spec = saved


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

    MNIST mirrors refuse connections, timeouts are short, the data folder is
    the test's own, and no proxy from the environment is used (urllib would
    send even 127.0.0.1 through one).
    """
    from xpnn.datasets import download as dl

    monkeypatch.setattr(dl, "MNIST_MIRRORS", (refused_url(),))
    monkeypatch.setattr(dl, "DEFAULT_TIMEOUT", 3.0)
    monkeypatch.delenv(dl.MIRRORS_ENV, raising=False)
    monkeypatch.setenv("XPNN_DATA_DIR", str(tmp_path / "xpnn-data"))
    for var in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)

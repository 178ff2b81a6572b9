"""The 5,000-digit MNIST sample shipped inside xpnn: checksummed, offline, never a substitute."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn.cli import main
from xpnn.datasets import IDXFormatError, load_mnist, load_mnist5k, mnist
from xpnn.datasets import download as dl

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """Any attempt to download fails the test: the sample needs no network."""

    def no_network(*args, **kwargs):
        raise AssertionError("the MNIST sample tried to download")

    monkeypatch.setattr(dl, "download", no_network)
    monkeypatch.setenv("XPNN_DATA_DIR", str(tmp_path / "xpnn-data"))


@pytest.fixture
def copy(tmp_path, monkeypatch):
    """A copy of the sample in tmp_path, made the packaged location."""
    directory = tmp_path / "mnist5k"
    shutil.copytree(mnist.MNIST5K_DIR, directory)
    for path in directory.iterdir():
        path.chmod(0o644)
    monkeypatch.setattr(mnist, "MNIST5K_DIR", directory)
    return directory


def test_the_packaged_files_match_their_checksums():
    directory = mnist.MNIST5K_DIR
    assert directory.parent == Path(mnist.__file__).parent  # inside the package
    assert set(mnist.MNIST5K_SHA256) == set(mnist.FILES.values()) == set(mnist.MNIST5K_SIZES)
    for name, digest in mnist.MNIST5K_SHA256.items():
        data = (directory / name).read_bytes()
        assert len(data) == mnist.MNIST5K_SIZES[name]
        assert hashlib.sha256(data).hexdigest() == digest
    # SHA256SUMS (for sha256sum -c) says the same as the code.
    sums = dict(
        reversed(line.split()) for line in (directory / "SHA256SUMS").read_text().splitlines()
    )
    assert sums == mnist.MNIST5K_SHA256
    readme = (directory / "README.md").read_text()
    assert "BSD" in readme and "CC BY-SA 3.0" in readme and "Sebastian Raschka" in readme
    assert mnist.check_mnist5k() == directory


def test_load_mnist5k(backend):
    (x, t), (xt, tt) = load_mnist5k()
    assert (x.shape, t.shape, xt.shape, tt.shape) == ((4000, 784), (4000,), (1000, 784), (1000,))
    assert x.dtype == backend.float_dtype and xpnn.device_of(x) == backend.device
    host = xpnn.to_numpy(x)
    assert host.min() == 0.0 and host.max() == 1.0
    labels = np.concatenate([xpnn.to_numpy(t), xpnn.to_numpy(tt)])
    assert np.bincount(labels).tolist() == [500] * 10  # 500 digits per class


def test_load_mnist5k_keeps_the_books_options():
    (x, t), _ = load_mnist5k(normalize=False, flatten=False, one_hot_label=True, dtype="float64")
    assert x.shape == (4000, 1, 28, 28) and xpnn.to_numpy(x).dtype == np.uint8
    assert t.shape == (4000, 10) and xpnn.to_numpy(t).dtype == np.float64


@pytest.mark.parametrize(
    ("damage", "exc", "message"),
    [
        ("flip", IDXFormatError, "SHA-256 "),
        ("truncate", IDXFormatError, "bytes instead of 2082"),
        ("remove", FileNotFoundError, "missing: the MNIST sample shipped with xpnn is incomplete"),
    ],
)
def test_a_damaged_copy_is_refused(copy, damage, exc, message):
    path = copy / mnist.FILES["train_label"]
    data = path.read_bytes()
    if damage == "flip":  # same size, one byte changed: only the hash sees it
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "truncate":
        path.write_bytes(data[:-1])
    else:
        path.unlink()
    with pytest.raises(exc) as err:
        load_mnist5k()
    assert str(path) in str(err.value) and message in str(err.value)
    assert "reinstall xpnn" in str(err.value)


def test_the_intact_copy_loads(copy):
    (x, _), _ = load_mnist5k()
    assert x.shape == (4000, 784)


def test_full_mnist_never_falls_back_to_the_sample(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_mnist(data_dir=tmp_path, download=False)
    assert "load_mnist5k()" in str(err.value)  # said, not done
    assert not any(tmp_path.iterdir())


def test_xpnn_train_mnist5k(capsys):
    argv = ["--dataset", "mnist5k", "--iters", "400", "--batch-size", "50", "--lr", "0.5"]
    code = main(["train", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("xpnn train: mnist5k (4000 samples) on numpy:cpu, float32")
    assert "| epoch 1 | train acc, test acc |" in out
    assert float(out.split("test accuracy")[1].split()[0]) >= 0.85  # 0.89 here


def test_xpnn_train_refuses_a_damaged_sample(copy, capsys):
    (copy / mnist.FILES["test_img"]).write_bytes(b"\x1f\x8b" + b"\0" * 100)
    code = main(["train", "--dataset", "mnist5k", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "t10k-images-idx3-ubyte.gz" in err and "reinstall xpnn" in err


def test_the_sample_is_not_ignored_by_git():
    """Hatchling leaves git-ignored files out of the wheel."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = [str(p.relative_to(REPO)) for p in sorted(mnist.MNIST5K_DIR.iterdir())]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *names],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, f"git ignores: {result.stdout}"  # 1: none is ignored

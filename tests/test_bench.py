"""The benchmark's textbook references compute what xpnn computes.

A speed-up is only meaningful against a reference that is right: both
textbook nets must give xpnn's float64 gradients and loss for the same
weights and batch.
"""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import xpnn
from xpnn import bench
from xpnn.bench import TextbookNet, TidiedTextbookNet, _textbook_step, thread_settings


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    x = rng.random((20, 784), dtype=np.float32)  # float32 images, as the book loads them
    t = rng.integers(0, 10, 20)
    return x, t, np.eye(10)[t]


def xpnn_net_like(book):
    with xpnn.use_backend("numpy", dtype="float64"):
        net = xpnn.TwoLayerNet(784, 50, 10, seed=0)
    for k, v in book.params.items():
        net.params[k][...] = v
    return net


@pytest.mark.parametrize("kind", ["book", "tidied"])
def test_textbook_gradients_and_loss_equal_xpnn(batch, kind):
    x, t, one_hot = batch
    book = TextbookNet(seed=1) if kind == "book" else TidiedTextbookNet(seed=1)
    xb, tb = (x, one_hot) if kind == "book" else (x.astype(np.float64), t)
    net = xpnn_net_like(book)
    want = net.gradient(x.astype(np.float64), t)
    got = book.gradient(xb, tb)
    for k in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-15, err_msg=k)
    # The book adds 1e-7 inside the log: about 1e-7 / 0.1 per sample here.
    np.testing.assert_allclose(
        book.loss(xb, tb), float(net.loss(x.astype(np.float64), t)), atol=2e-6
    )


def test_textbook_step_trains(batch):
    x, _, one_hot = batch
    book = TextbookNet(seed=1)
    x = np.repeat(x, 10, axis=0)
    one_hot = np.repeat(one_hot, 10, axis=0)
    before = book.loss(x, one_hot)
    step = _textbook_step(book, x, one_hot, seed=2)
    for _ in range(200):
        step()
    assert book.loss(x, one_hot) < before - 0.1


def test_bare_numpy_floor_step_computes_the_same_training():
    """The information-only floor step trains the same net as xpnn (float32 rounding)."""
    from xpnn.bench import BATCH, _floor_step

    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 784), dtype=np.float32)
    t = rng.integers(0, 10, BATCH)
    step = _floor_step(x, t, seed=3)
    with xpnn.use_backend("numpy"):
        net = xpnn.TwoLayerNet(784, 50, 10, seed=0)
    for k, v in step.params.items():
        net.params[k][...] = v
    opt = xpnn.SGD(lr=0.1)
    for _ in range(5):
        # A batch is the whole of x in some order: the gradient does not depend on it.
        step()
        opt.update(net.params, net.gradient(xpnn.asarray(x), xpnn.asarray(t)))
    for k, v in step.params.items():
        np.testing.assert_allclose(v, net.params[k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert np.abs(step.params["b2"]).max() > 1e-3  # it did train


# --------------------------------------------------------------------------
# The thread settings recorded with every report
# --------------------------------------------------------------------------


def test_thread_settings_record_env_cpus_torch_and_threadpools(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(get_num_threads=lambda: 5))
    pools = [{"user_api": "blas", "internal_api": "openblas", "num_threads": 3}]
    fake = types.SimpleNamespace(threadpool_info=lambda: pools)
    monkeypatch.setitem(sys.modules, "threadpoolctl", fake)
    threads = thread_settings()
    assert threads["env"] == {
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "3",
        "MKL_NUM_THREADS": None,
    }
    assert threads["cpu_count"] == os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        assert threads["affinity"] == len(os.sched_getaffinity(0))
    assert threads["torch"] == 5
    assert threads["threadpools"] == pools
    json.dumps(threads)  # goes into bench.json as it is


def test_thread_settings_without_torch_or_threadpoolctl(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import -> ImportError
    threads = thread_settings()
    assert threads["torch"] is None
    assert threads["threadpools"] is None
    assert "torch" not in sys.modules  # asked only if already imported


def test_thread_settings_never_import_torch():
    code = (
        "import sys; from xpnn.bench import thread_settings; thread_settings(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_report_json_and_header_carry_the_thread_settings(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setattr(bench, "CASES", {"tiny": lambda: {"unit": "s", "x": 0.5}})
    out = tmp_path / "bench.json"
    assert bench.main(["tiny"], json_path=str(out)) == 0
    header = capsys.readouterr().out.splitlines()[1]
    assert header.startswith("threads: ")
    assert "OPENBLAS_NUM_THREADS=1" in header and "MKL_NUM_THREADS=" in header
    assert "cpu_count" in header
    threads = json.loads(out.read_text())["machine"]["threads"]
    assert threads["env"]["OPENBLAS_NUM_THREADS"] == "1"
    assert set(threads) == {"env", "cpu_count", "affinity", "torch", "threadpools"}

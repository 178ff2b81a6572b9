"""``xpnn bench conv``: its references compute what xpnn computes; its report's structure.

A speed-up is only meaningful against a reference that computes the same
thing: the book's algorithm re-typed in :mod:`xpnn.bench.conv` must give
xpnn's float64 loss and gradients on the same weights and batch. The case
runs here at tiny sizes (a few seconds); no speed is asserted.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import xpnn
import xpnn.bench as bench
from xpnn.bench import conv as bc
from xpnn.layers.conv import col2im, im2col


def cp(n, size=3, pad=1, stride=1):
    return {"filter_num": n, "filter_size": size, "pad": pad, "stride": stride}


SIMPLE = {"input_dim": (1, 10, 10), "conv_param": cp(3, 3, 0, 1), "hidden_size": 6}
DEEP = {
    "input_dim": (1, 12, 12),
    **{f"conv_param_{i}": cp(2 if i < 5 else 3, 3, 2 if i == 4 else 1) for i in range(1, 7)},
    "hidden_size": 5,
}
TINY = {"SimpleConvNet": SIMPLE, "DeepConvNet": DEEP}


def host(a):
    return np.array(xpnn.to_numpy(a), copy=True)


def batch(n, input_dim, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *input_dim)), rng.integers(0, bc.CLASSES, n)


def copy_weights(net, book, seed=3):
    """xpnn's float64 weights (and positive biases: live ReLUs) into the book's arrays."""
    rng = np.random.default_rng(seed)
    for key, p in net.params.items():
        if key.startswith("b"):
            net.params[key] = xpnn.asarray(rng.uniform(0.05, 0.3, size=p.shape), dtype="float64")
        book.params[key][...] = host(net.params[key])  # in place: the book's layers hold them


# --------------------------------------------------------------------------
# The reference computes what xpnn computes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1), (1, 2)])
def test_book_im2col_and_col2im_equal_xpnns(stride, pad):
    x = np.random.default_rng(1).normal(size=(2, 3, 7, 6))
    col = bc.book_im2col(x, 3, 2, stride, pad)
    np.testing.assert_array_equal(col, host(im2col(xpnn.asarray(x), 3, 2, stride, pad)))
    got = bc.book_col2im(col, x.shape, 3, 2, stride, pad)
    want = host(col2im(xpnn.asarray(col), x.shape, 3, 2, stride, pad))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_book_simple_convnet_equals_xpnn_float64():
    with xpnn.use_backend("numpy"):
        net = xpnn.SimpleConvNet(**SIMPLE, weight_init_std=0.3, seed=1, dtype="float64")
    book = bc.BookSimpleConvNet(**SIMPLE, seed=2)
    assert {k: v.shape for k, v in book.params.items()} == {
        k: tuple(v.shape) for k, v in net.params.items()
    }
    copy_weights(net, book)
    x, t = batch(5, SIMPLE["input_dim"])
    want = net.gradient(xpnn.asarray(x), xpnn.asarray(t))
    want = {k: host(v) for k, v in want.items()}
    got = book.gradient(x, t)
    for k in want:
        assert np.abs(want[k]).max() > 0, k  # something flows back
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-13, err_msg=k)
    # The book adds 1e-7 inside the log: about 1e-7 / p for a probability p ~ 0.04.
    np.testing.assert_allclose(
        book.loss(x, t), float(net.loss(xpnn.asarray(x), xpnn.asarray(t))), atol=1e-5
    )


def test_book_deep_convnet_equals_xpnn_float64_with_the_same_dropout_masks():
    with xpnn.use_backend("numpy"):
        net = xpnn.DeepConvNet(**DEEP, seed=1, dtype="float64")
    conv = [DEEP[f"conv_param_{i}"] for i in range(1, 7)]
    book = bc.BookDeepConvNet(input_dim=DEEP["input_dim"], conv_params=conv, hidden_size=5, seed=2)
    assert {k: v.shape for k, v in book.params.items()} == {
        k: tuple(v.shape) for k, v in net.params.items()
    }
    copy_weights(net, book)
    x, t = batch(6, DEEP["input_dim"])
    want = {k: host(v) for k, v in net.gradient(xpnn.asarray(x), xpnn.asarray(t)).items()}
    book_dropouts = [layer for layer in book.layers if isinstance(layer, bc._Dropout)]
    assert len(book_dropouts) == len(net._dropouts) == 2
    for mine, theirs in zip(net._dropouts, book_dropouts, strict=True):
        theirs.fixed_mask = host(mine.mask)
        mine.hold_mask = True  # the loss below: the same masks again
    got = book.gradient(x, t)
    for k in want:
        assert np.abs(want[k]).max() > 0, k
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-13, err_msg=k)
    np.testing.assert_allclose(
        book.loss(x, t), float(net.loss(xpnn.asarray(x), xpnn.asarray(t))), atol=1e-5
    )


def test_book_default_sizes_are_the_books():
    simple = bc.BookSimpleConvNet()
    assert simple.params["W1"].shape == (30, 1, 5, 5)
    assert simple.params["W2"].shape == (30 * 12 * 12, 100)
    assert simple.params["W1"].dtype == np.float64  # the book's randn
    deep = bc.BookDeepConvNet()
    assert deep.params["W7"].shape == (64 * 4 * 4, 50)  # the book's hard-coded size
    assert [deep.params[f"W{i}"].shape[0] for i in range(1, 7)] == [16, 16, 32, 32, 64, 64]


def test_book_step_trains():
    book = bc.BookSimpleConvNet(**SIMPLE, seed=0)
    x, t = batch(8, SIMPLE["input_dim"], seed=4)
    x = x.astype(np.float32)  # float32 images, as the book loads them
    before = book.loss(x, t)
    step = bc._book_step(book, x, t, lr=0.1)
    for _ in range(30):
        step()
    assert book.loss(x, t) < before - 0.05


# --------------------------------------------------------------------------
# The case: structure of its report, at tiny sizes
# --------------------------------------------------------------------------

FAST = {"batch": 4, "repeats": 2, "repeat_s": 0.001, "warmup": 1, "sizes": TINY, "pause_s": 0.0}


@pytest.fixture(scope="module")
def report():
    return bc.bench_conv(**FAST)


def check_timing(r):
    assert 0 < r["min"] <= r["median"] <= r["max"]
    assert r["repeats"] == FAST["repeats"] and r["steps per repeat"] >= 1


def test_report_has_every_net_candidate_and_target(report):
    assert json.loads(json.dumps(report)) == report
    assert report["unit"] == "ms/step" and report["settings"]["batch"] == 4
    assert set(report["nets"]) == {"SimpleConvNet", "DeepConvNet"}
    for name, entry in report["nets"].items():
        cands = entry["candidates"]
        assert {bc.XPNN, bc.XPNN_TORCH, bc.BOOK, bc.TORCH} <= set(cands)
        base = cands[bc.XPNN]["median"]
        for cand in (bc.XPNN, bc.BOOK):
            check_timing(cands[cand])
            assert cands[cand]["speed-up"] == pytest.approx(cands[cand]["median"] / base)
        assert cands[bc.XPNN]["speed-up"] == 1.0
        targets = entry["targets"]
        goals = {goal for (net, _), goal in bc.TARGETS.items() if net == name}
        assert {v["goal"] for v in targets.values()} == goals
        assert len(targets) == 2 * len(bc.XPNN_PATHS)  # each reference, each xpnn path
        for key, v in targets.items():
            ref = bc.BOOK if key.startswith(bc.BOOK) else bc.TORCH
            path = bc.XPNN_TORCH if f"/ {bc.XPNN_TORCH} >=" in key else bc.XPNN
            if "median" in cands[ref] and "median" in cands[path]:
                assert v["value"] == pytest.approx(cands[ref]["median"] / cands[path]["median"])
                assert v["met"] == (v["value"] >= v["goal"])
            else:
                assert v["value"] is None and v["met"] is None
        a = entry["allocation"]
        assert a["peak bytes in a step"] >= 0
        assert a["largest column buffer"] > 0 and a["largest parameter"] > 0
        assert isinstance(a["met"], bool)


def test_xpnn_on_torch_runs_pytorchs_kernels_and_the_same_step():
    """The torch path's step is xpnn's: the same loss and gradients as on NumPy."""
    pytest.importorskip("torch")
    x, t = batch(4, DEEP["input_dim"])
    grads = {}
    for spec in ("numpy", "torch:cpu"):
        with xpnn.use_backend(spec):
            net = xpnn.DeepConvNet(**DEEP, seed=4, dtype="float64")
            grads[spec] = {
                k: host(v) for k, v in net.gradient(xpnn.asarray(x), xpnn.asarray(t)).items()
            }
        assert net.layers[0]._kernels is (spec == "torch:cpu")
    for key, want in grads["numpy"].items():
        np.testing.assert_allclose(grads["torch:cpu"][key], want, rtol=1e-9, atol=1e-12)


def test_gpu_part_says_not_measured_without_a_gpu(report):
    if "cupy:0" in xpnn.available_backends() or "torch:cuda" in xpnn.available_backends():
        assert report["gpu"]["status"] == "measured"
    else:
        assert report["gpu"] == {"status": bc.NO_GPU}
        assert "GPU: not measured (no GPU here)" in "\n".join(bc.format_conv(report))


def test_format_shows_every_row_and_target(report):
    text = "\n".join(bc.format_conv(report))
    for name in ("SimpleConvNet", "DeepConvNet", bc.XPNN, bc.BOOK):
        assert name in text
    assert text.count("target ") == 4 * len(bc.XPNN_PATHS)
    assert "allocation in a step" in text


def test_without_torch_the_reference_is_not_measured(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    result = bc.bench_conv(nets=("SimpleConvNet",), **FAST)
    entry = result["nets"]["SimpleConvNet"]
    assert entry["candidates"][bc.TORCH] == {"status": bc.NO_TORCH}
    assert entry["candidates"][bc.XPNN_TORCH] == {"status": bc.NO_TORCH}
    for key, v in entry["targets"].items():
        if key.startswith(bc.TORCH) or bc.XPNN_TORCH in key:
            assert v["value"] is None and v["met"] is None
        else:  # the book's algorithm against xpnn on NumPy still ran
            assert v["value"] > 0
    text = "\n".join(bc.format_conv(result))
    assert f"{bc.TORCH:<40} {bc.NO_TORCH}" in text
    assert f"1.5: {bc.NO_TORCH}" in text


def test_allocation_check_sees_a_column_sized_allocation():
    """The check can fail: a step that allocates a column-sized array is not met."""
    x, t = batch(4, SIMPLE["input_dim"])
    step, net = bc._xpnn_step("SimpleConvNet", "numpy", x.astype(np.float32), t, **SIMPLE)
    clean = bc.allocation_check(step, net)
    size = max(clean["largest column buffer"], clean["largest parameter"])

    def wasteful():
        step()
        np.ones(size, dtype=np.uint8)

    waste = bc.allocation_check(wasteful, net)
    assert waste["peak bytes in a step"] >= size
    assert waste["met"] is False


def test_conv_is_a_registered_case_outside_the_default_set(monkeypatch, capsys):
    assert bench.CASES["conv"] is bc.bench_conv
    assert "conv" not in bench.DEFAULT_CASES
    monkeypatch.setitem(bench.CASES, "conv", lambda: bc.bench_conv(nets=("SimpleConvNet",), **FAST))
    assert bench.main(["conv"], json_path=None) == 0
    out = capsys.readouterr().out
    assert "== conv (ms/step)" in out and "target PyTorch CPU eager" in out


def test_measure_rotates_the_order_and_pauses(monkeypatch):
    """Round r starts at candidate r: no candidate always follows the same one."""
    order, pauses = [], []
    monkeypatch.setattr(bc.time, "sleep", pauses.append)
    cands = {name: (lambda name=name: order.append(name)) for name in "abc"}
    r = bc._measure(cands, repeats=3, repeat_s=1e-9, warmup=1, pause_s=0.25)
    timed = order[3:]  # after one warm-up step each
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert pauses == [0.25] * 9
    assert set(r) == {"a", "b", "c"} and all(v["repeats"] == 3 for v in r.values())

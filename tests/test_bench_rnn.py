"""``xpnn bench rnn``: its references compute what xpnn computes; its report's structure.

A speed-up is only meaningful against a reference that computes the same
thing: the book's Rnnlm and BetterRnnlm re-typed in :mod:`xpnn.bench.rnn`
must give xpnn's float64 loss, gradients, clipped gradients and SGD update
from the same weights (the same dropout masks), and the PyTorch per-step
loop xpnn's loss and gradients (float32). The case runs here at tiny sizes
(a second); no speed is asserted. The fast paths of
:mod:`xpnn.backend.recurrent_ops` the layers use are checked against the
plain expressions they replace.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import xpnn
import xpnn.bench as bench
from xpnn.backend import recurrent_ops as rops
from xpnn.bench import rnn as br
from xpnn.bench.words import book_remove_duplicate
from xpnn.functions import softmax
from xpnn.models import BetterRnnlm, Rnnlm
from xpnn.training import clip_grads

V, D, N, T = 30, 6, 3, 5


def host(a):
    return np.array(xpnn.to_numpy(a), copy=True)


def batch(seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


def xpnn_model(kind, dtype="float64"):
    with xpnn.use_backend("numpy"):
        if kind == "Rnnlm":
            return Rnnlm(V, D, D, seed=3, dtype=dtype)
        return BetterRnnlm(V, D, D, 0.5, seed=3, dtype=dtype)


def book_model(kind):
    if kind == "Rnnlm":
        return br.BookRnnlm(V, D, D, seed=1, dtype="float64")
    return br.BookBetterRnnlm(V, D, D, 0.5, seed=1, dtype="float64")


# --------------------------------------------------------------------------
# The references compute what xpnn computes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Rnnlm", "BetterRnnlm"])
def test_book_models_equal_xpnn_float64_from_the_same_weights(kind):
    model, book = xpnn_model(kind), book_model(kind)
    params, _ = book_remove_duplicate(book.params, book.grads)
    assert len(params) == len(model.params)
    for theirs, mine in zip(params, model.params, strict=True):
        theirs[...] = host(mine)  # in place: the book's layers (and embed_W.T) hold them
    if kind == "BetterRnnlm":  # the book's dropout flags: xpnn's masks
        for theirs, mine in zip(book.drop_layers, model.drop_layers, strict=True):
            theirs.draw = lambda shape, mine=mine: host(mine.mask) > 0
    opt, book_opt = xpnn.SGD(lr=br.LR), br.BookSGD(br.LR)
    for seed in (0, 1):  # two iterations: the stateful LSTMs carry their state over
        xs, ts = batch(seed)
        want = float(model.forward(xpnn.asarray(xs), xpnn.asarray(ts)))
        got = book.forward(xs, ts)
        np.testing.assert_allclose(got, want, rtol=1e-12)

        model.backward()
        book.backward()
        params, grads = book_remove_duplicate(book.params, book.grads)
        for mine, theirs in zip(model.grads, grads, strict=True):
            assert np.abs(theirs).max() > 0
            np.testing.assert_allclose(theirs, host(mine), rtol=1e-9, atol=1e-14)

        norm = np.sqrt(sum(np.sum(g**2) for g in grads))
        assert norm > br.MAX_GRAD  # the clipping scales
        clip_grads(model.grads, br.MAX_GRAD)
        br.book_clip_grads(grads, br.MAX_GRAD)
        opt.update(model.params, model.grads)
        book_opt.update(params, grads)
        for mine, theirs in zip(model.params, params, strict=True):
            np.testing.assert_allclose(theirs, host(mine), rtol=1e-10, atol=1e-13)


def test_book_clip_grads_scales_only_above_the_norm():
    grads = [np.full(4, 3.0), np.full(2, 4.0)]
    br.book_clip_grads(grads, 100.0)
    assert grads[0][0] == 3.0
    br.book_clip_grads(grads, 1.0)
    norm = np.sqrt(sum(np.sum(g**2) for g in grads))
    assert norm == pytest.approx(1.0, rel=1e-5)


def test_book_step_trains():
    model = br.BookRnnlm(V, D, D, seed=0)
    assert model.params[0].dtype == np.float32  # the book's astype('f')
    opt, xs, ts = br.BookSGD(1.0), *batch(3)
    losses = []
    for _ in range(30):
        model.reset_state()
        losses.append(float(model.forward(xs, ts)))
        model.backward()
        params, grads = book_remove_duplicate(model.params, model.grads)
        br.book_clip_grads(grads, 1.0)
        opt.update(params, grads)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5


def test_torch_loop_equals_xpnn_from_the_same_weights():
    torch = pytest.importorskip("torch")
    model = xpnn_model("Rnnlm", "float32")
    ref = br.TorchRnnlm(torch, V, D, 1, None, fused=False)
    embed_W, Wx, Wh, b, affine_W, affine_b = (host(p) for p in model.params)
    with torch.no_grad():
        ref.embed.weight.copy_(torch.from_numpy(embed_W))
        for p, value in zip(ref.cells[0], (Wx, Wh, b), strict=True):
            p.copy_(torch.from_numpy(value))
        ref.linear.weight.copy_(torch.from_numpy(affine_W.T))
        ref.linear.bias.copy_(torch.from_numpy(affine_b))
    xs, ts = batch(4)
    want = float(model.forward(xpnn.asarray(xs), xpnn.asarray(ts)))
    loss = ref.loss(torch.from_numpy(xs), torch.from_numpy(ts))
    np.testing.assert_allclose(float(loss.detach()), want, rtol=1e-5)
    model.backward()
    loss.backward()
    theirs = [ref.embed.weight.grad, *(p.grad for p in ref.cells[0])]
    theirs += [ref.linear.weight.grad.T, ref.linear.bias.grad]
    for mine, g in zip(model.grads, theirs, strict=True):
        np.testing.assert_allclose(g.numpy(), host(mine), rtol=1e-4, atol=1e-6)
    fused = br.TorchRnnlm(torch, V, D, 2, 0.5, fused=True)  # BetterRnnlm's: tied, two layers
    assert fused.linear.weight is fused.embed.weight and fused.lstm.num_layers == 2
    assert np.isfinite(float(fused.loss(torch.from_numpy(xs), torch.from_numpy(ts)).detach()))


# --------------------------------------------------------------------------
# The layers' fast paths are the plain expressions
# --------------------------------------------------------------------------


def _namespaces():
    out = ["numpy"]
    if "torch:cpu" in xpnn.available_backends():
        out.append("torch:cpu")
    return out


@pytest.mark.parametrize("spec", _namespaces())
def test_recurrent_ops_give_the_plain_expressions_bits(spec):
    rng = np.random.default_rng(5)
    with xpnn.use_backend(spec):
        x = xpnn.asarray(rng.standard_normal((7, 4)), dtype="float32")
        W = xpnn.asarray(rng.standard_normal((4, 9)), dtype="float32")
        b = xpnn.asarray(rng.standard_normal(9), dtype="float32")
        ts = xpnn.asarray(rng.integers(0, 9, 7))

    # Bitwise on NumPy; PyTorch's addmm and softmax kernels round on their own.
    def same(got, want):
        if spec == "numpy":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    same(host(rops.matmul_add(x, W, b)), host(x @ W + b))
    Wt = W.T  # (9, 4): its rows are the Wh of a cell, x.T a dA
    np.testing.assert_allclose(host(rops.times_transposed(x, Wt)), host(x @ W), rtol=1e-6)
    ys = rops.softmax_rows(x @ W, out=np.empty((7, 9), np.float32) if spec == "numpy" else None)
    same(host(ys), host(softmax(x @ W)))  # the library's exp, both
    y, t = host(ys), host(ts)
    count = np.float32(5.0)
    for scale in (1.0, 0.5):
        want = (y - np.eye(9, dtype=np.float32)[t]) * np.float32(scale) / count
        out = np.empty_like(y) if spec == "numpy" else None
        with xpnn.use_backend(spec):
            c = xpnn.asarray(np.asarray(count))  # a 0-d array, as sum(mask)
        got = rops.label_difference_mean(ys, ts, scale, c, out=out)
        np.testing.assert_array_equal(host(got), want)
    mask = np.array([True] * 6 + [False])
    with xpnn.use_backend(spec):
        m, dx = xpnn.asarray(mask), xpnn.asarray(y)
    np.testing.assert_array_equal(host(rops.mask_rows(dx, m)), y * mask[:, None])
    with xpnn.use_backend(spec):
        m = xpnn.asarray(np.ones(7, bool))
    np.testing.assert_array_equal(host(rops.mask_rows(dx, m)), y)


def test_step_grads_are_the_steps_products():
    rng = np.random.default_rng(6)
    x, h, dA = rng.standard_normal((3, 4)), rng.standard_normal((3, 2)), rng.standard_normal((3, 8))
    grads = rops.StepGrads(x, h, dA)
    assert len(grads) == 3 and len(list(grads)) == 3
    np.testing.assert_array_equal(grads[0], x.T @ dA)
    np.testing.assert_array_equal(grads[1], h.T @ dA)
    np.testing.assert_array_equal(grads[-1], dA.sum(axis=0))
    assert grads[0] is grads[0] and len(grads[1:]) == 2
    with pytest.raises(IndexError):
        grads[3]


# --------------------------------------------------------------------------
# The case: structure of its report, at tiny sizes
# --------------------------------------------------------------------------

PARTS = {"forward", "backward", "clip", "update"}


@pytest.fixture(scope="module")
def report():
    return br.bench_rnn(quick=True)


def test_report_has_every_model_candidate_part_and_target(report):
    assert json.loads(json.dumps(report)) == report
    assert report["unit"] == "ms/iteration" and report["settings"]["quick"] is True
    assert report["settings"]["vocab"] == br.QUICK["vocab"]
    assert list(report["models"]) == list(br.MODELS)
    for label, m in report["models"].items():
        assert (m["kind"], m["dropout"]) == (br.MODELS[label][0], br.MODELS[label][2])
        assert m["hidden"] == br.QUICK["hidden"]
        cands = m["candidates"]
        assert {br.BOOK, br.XPNN, br.XPNN_TORCH, br.TORCH_LSTM, br.TORCH_LOOP} <= set(cands)
        assert br.FLOOR_NUMPY in cands
        base = cands[br.XPNN]["median"]
        for name, r in cands.items():
            if "median" not in r:
                assert r == {"status": br.NO_TORCH}
                continue
            assert 0 < r["min"] <= r["median"] <= r["max"] and r["repeats"] == 2
            assert r["speed-up"] == pytest.approx(r["median"] / base)
            if name.startswith("floor"):
                assert r["parts"] == {}
                continue
            book = {"duplicate removal"} if name == br.BOOK else set()
            assert set(r["parts"]) == PARTS | book
            # Every part is timed inside the same iterations: each is part of the whole.
            assert all(p["median"] <= r["max"] for p in r["parts"].values())
        for ref, path, goal in br.TARGETS:
            t = m["targets"][f"{ref} / {path} >= {goal:g}"]
            if "median" in cands[ref] and "median" in cands[path]:
                assert t["value"] == pytest.approx(cands[ref]["median"] / cands[path]["median"])
                assert t["met"] == (t["value"] >= goal)
                assert (t["floor"] is None) == t["met"]
            else:
                assert t["value"] is None and t["met"] is None and t["floor"] is None


def test_floor_note_explains_a_target_not_met():
    def r(median, **parts):
        return {"median": median, "parts": {k: {"median": v} for k, v in parts.items()}}

    timed = {
        br.BOOK: r(30.0, forward=10.0, backward=15.0),
        br.XPNN: r(25.0, forward=8.0, backward=16.0),
        br.FLOOR_NUMPY: r(20.0),
    }
    t = br._target(timed, br.BOOK, br.XPNN, 1.5)
    assert t == {"goal": 1.5, "value": 1.2, "met": False}
    note = br._floor_note(timed, br.BOOK, br.XPNN, 1.5)
    assert "needs <= 20.00 ms/iteration, measures 25.00" in note
    assert "softmax alone take 20.00 ms (80% of it)" in note
    assert note.endswith("slower than the reference's: backward")


def test_format_shows_every_model_row_and_target(report):
    text = "\n".join(br.format_rnn(report))
    for label, m in report["models"].items():
        assert label in text
        for name in m["candidates"]:
            assert name in text
        for t in m["targets"].values():
            if t["met"] is False:
                assert f"why: {t['floor']}" in text
    assert text.count("target ") == len(br.TARGETS) * len(report["models"])
    assert "duplicate removal" in text and "clip" in text


def test_gpu_part_says_not_measured_without_a_gpu(report):
    backends = xpnn.available_backends()
    if "cupy:0" in backends or "torch:cuda" in backends:
        assert report["gpu"]["status"] == "measured"
    else:
        assert report["gpu"] == {"status": br.NO_GPU}
        assert "GPU: not measured (no GPU here)" in "\n".join(br.format_rnn(report))


def test_without_torch_its_rows_and_target_are_not_measured(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    result = br.bench_rnn(quick=True, models=("Rnnlm 100",))
    m = result["models"]["Rnnlm 100"]
    for name in (br.XPNN_TORCH, br.TORCH_LSTM, br.TORCH_LOOP):
        assert m["candidates"][name] == {"status": br.NO_TORCH}
    assert br.FLOOR_TORCH not in m["candidates"]
    t = m["targets"][f"{br.TORCH_LOOP} / {br.XPNN_TORCH} >= 1"]
    assert t["value"] is None and t["met"] is None
    assert m["targets"][f"{br.BOOK} / {br.XPNN} >= 1.5"]["value"] > 0
    text = "\n".join(br.format_rnn(result))
    assert f"{br.TORCH_LOOP} / {br.XPNN_TORCH} >= 1: {br.NO_TORCH}" in text


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model 'Rnnlm 7'"):
        br.bench_rnn(quick=True, models=("Rnnlm 7",))


def test_rnn_is_a_registered_case_outside_the_default_set(monkeypatch, capsys):
    assert bench.CASES["rnn"] is br.bench_rnn
    assert "rnn" not in bench.DEFAULT_CASES
    monkeypatch.setitem(bench.CASES, "rnn", lambda: br.bench_rnn(quick=True))
    assert bench.main(["rnn"], json_path=None) == 0
    out = capsys.readouterr().out
    assert "== rnn (ms/iteration)" in out and f"target {br.BOOK} / {br.XPNN} >= 1.5" in out

"""``xpnn bench seq2seq``: its references compute what xpnn computes; its report's structure.

A speed-up is only meaningful against a reference that computes the same
thing: the book's PeekySeq2seq and AttentionSeq2seq re-typed in
:mod:`xpnn.bench.seq2seq` must give xpnn's float64 loss, gradients, clipped
gradients and Adam update from the same weights (mapped by name), and the
PyTorch eager models (``nn.LSTM``, the attention written by hand) xpnn's
loss and gradients in float32. The case runs here at tiny sizes (seconds);
no speed is asserted.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import xpnn
import xpnn.bench as bench
from xpnn.bench import seq2seq as bs
from xpnn.bench.words import BookAdam, book_remove_duplicate
from xpnn.training import clip_grads

KINDS = ["PeekySeq2seq", "AttentionSeq2seq"]
SIZES = {"vocab": 9, "wordvec": 4, "hidden": 5, "question": 6, "answer": 4}
N = 3


def host(a):
    return np.array(xpnn.to_numpy(a), copy=True)


def batch(seed):
    xs, ts = bs.batches(SIZES, N, count=1, seed=seed)
    return xs[0], ts[0]


def xpnn_model(kind, dtype="float64"):
    return bs._xpnn_model("numpy", SIZES, kind, dtype=dtype)


def sizes():
    return SIZES["vocab"], SIZES["wordvec"], SIZES["hidden"]


# --------------------------------------------------------------------------
# The references compute what xpnn computes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_book_models_equal_xpnn_float64_from_the_same_weights(kind):
    model = xpnn_model(kind)
    book = bs.BOOK_MODELS[kind](*sizes(), seed=1, dtype="float64")
    named = model.named_arrays()
    assert book.names == list(named)  # the same arrays, in the same order
    params, _ = book_remove_duplicate(book.params, book.grads)
    assert len(params) == len(book.params)  # nothing shared: nothing to remove
    for name, theirs in zip(book.names, book.params, strict=True):
        assert theirs.shape == tuple(named[name].shape)
        theirs[...] = host(named[name])  # in place: the book's layers hold them
    opt, book_opt = xpnn.Adam(lr=bs.LR), BookAdam(bs.LR)
    for seed in (0, 1):  # two iterations: the Adam moments carry over
        xs, ts = batch(seed)
        want = float(model.forward(xpnn.asarray(xs), xpnn.asarray(ts)))
        got = book.forward(xs, ts)
        np.testing.assert_allclose(got, want, rtol=1e-12)

        model.backward()
        book.backward()
        params, grads = book_remove_duplicate(book.params, book.grads)
        for name, mine, theirs in zip(book.names, model.grads, grads, strict=True):
            assert np.abs(theirs).max() > 0, name
            np.testing.assert_allclose(theirs, host(mine), rtol=1e-9, atol=1e-14, err_msg=name)

        limit = 0.5 * np.sqrt(sum(np.sum(g**2) for g in grads))  # so that the clipping scales
        clip_grads(model.grads, limit)
        bs.book_clip_grads(grads, limit)
        opt.update(model.params, model.grads)
        book_opt.update(params, grads)
        for mine, theirs in zip(model.params, params, strict=True):
            np.testing.assert_allclose(theirs, host(mine), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_book_model_trains(kind):
    book = bs.BOOK_MODELS[kind](*sizes(), seed=0)
    assert book.params[0].dtype == np.float32  # the book's astype('f')
    opt, (xs, ts) = BookAdam(0.05), batch(3)
    losses = []
    for _ in range(40):
        losses.append(float(book.forward(xs, ts)))
        book.backward()
        params, grads = book_remove_duplicate(book.params, book.grads)
        bs.book_clip_grads(grads, bs.MAX_GRAD)
        opt.update(params, grads)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_torch_model_equals_xpnn_from_the_same_weights(kind):
    torch = pytest.importorskip("torch")
    model = xpnn_model(kind, "float32")
    ref = bs.TorchSeq2seq(torch, kind, SIZES)
    named = {k: host(v) for k, v in model.named_arrays().items()}
    ref.load(named)
    xs, ts = batch(4)
    want = float(model.forward(xpnn.asarray(xs), xpnn.asarray(ts)))
    loss = ref.loss(torch.from_numpy(xs), torch.from_numpy(ts))
    np.testing.assert_allclose(float(loss.detach()), want, rtol=1e-5)
    model.backward()
    loss.backward()
    theirs = ref.grads()
    assert list(theirs) == list(named)
    for (name, g), mine in zip(theirs.items(), model.grads, strict=True):
        assert np.abs(g).max() > 0, name
        np.testing.assert_allclose(g, host(mine), rtol=1e-4, atol=1e-6, err_msg=name)
    # bias_hh is zero and gets lstm_b's gradient too: nn.LSTM adds the two biases.
    np.testing.assert_array_equal(ref.dec_lstm.bias_hh_l0.detach().numpy(), 0)


def test_torch_gate_order_round_trips():
    torch = pytest.importorskip("torch")
    ref = bs.TorchSeq2seq(torch, "PeekySeq2seq", SIZES)
    a = torch.arange(8.0).reshape(1, 8)  # blocks f, g, i, o of width 2
    to_torch = ref._gates(a, ref._TO_TORCH)
    np.testing.assert_array_equal(to_torch.numpy(), [[4, 5, 0, 1, 2, 3, 6, 7]])  # i, f, g, o
    np.testing.assert_array_equal(ref._gates(to_torch, ref._TO_BOOK).numpy(), a.numpy())


def test_batches_have_the_shapes_vocabulary_and_start_id():
    xs, ts = bs.batches(SIZES, N, count=2)
    assert xs.shape == (2, N, SIZES["question"]) and ts.shape == (2, N, SIZES["answer"])
    assert xs.dtype == ts.dtype == np.int64
    assert xs.min() >= 0 and max(xs.max(), ts.max()) < SIZES["vocab"]
    assert (ts[:, :, 0] == bs.START_ID).all()
    np.testing.assert_array_equal(bs.batches(SIZES, N, count=2)[0], xs)  # seeded


# --------------------------------------------------------------------------
# The case: structure of its report, at tiny sizes
# --------------------------------------------------------------------------

PARTS = {"forward", "backward", "clip", "update"}


@pytest.fixture(scope="module")
def report():
    return bs.bench_seq2seq(quick=True)


def test_report_has_every_model_candidate_part_and_target(report):
    assert json.loads(json.dumps(report)) == report
    assert report["unit"] == "ms/iteration" and report["settings"]["quick"] is True
    assert report["settings"]["batch"] == bs.QUICK["batch"]
    assert list(report["models"]) == list(bs.MODELS)
    for label, m in report["models"].items():
        assert m["kind"] == bs.MODELS[label][0]
        assert {k: m[k] for k in bs.QUICK["sizes"]} == bs.QUICK["sizes"]
        cands = m["candidates"]
        assert {bs.BOOK, bs.XPNN, bs.XPNN_TORCH, bs.TORCH, bs.FLOOR_NUMPY} <= set(cands)
        base = cands[bs.XPNN]["median"]
        for name, r in cands.items():
            if "median" not in r:
                assert r == {"status": bs.NO_TORCH}
                continue
            assert 0 < r["min"] <= r["median"] <= r["max"] and r["repeats"] == 2
            assert r["speed-up"] == pytest.approx(r["median"] / base)
            if name.startswith("floor"):
                assert r["parts"] == {}
                continue
            book = {"duplicate removal"} if name == bs.BOOK else set()
            assert set(r["parts"]) == PARTS | book
            # Every part is timed inside the same iterations: each is part of the whole.
            assert all(p["median"] <= r["max"] for p in r["parts"].values())
        for ref, path, goal in bs.TARGETS:
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
        bs.BOOK: r(30.0, forward=10.0, backward=15.0),
        bs.XPNN: r(25.0, forward=8.0, backward=16.0),
        bs.FLOOR_NUMPY: r(20.0),
    }
    t = bs._targets(timed, ((bs.BOOK, bs.XPNN, 1.5),))[f"{bs.BOOK} / {bs.XPNN} >= 1.5"]
    assert {k: t[k] for k in ("goal", "value", "met")} == {"goal": 1.5, "value": 1.2, "met": False}
    assert "needs <= 20.00 ms/iteration, measures 25.00" in t["floor"]
    assert "products alone take 20.00 ms (80% of it)" in t["floor"]
    assert t["floor"].endswith("slower than the reference's: backward")
    met = bs._targets(timed, ((bs.BOOK, bs.XPNN, 1.0),))[f"{bs.BOOK} / {bs.XPNN} >= 1"]
    assert met["met"] is True and met["floor"] is None


def test_format_shows_every_model_row_and_target(report):
    text = "\n".join(bs.format_seq2seq(report))
    for label, m in report["models"].items():
        assert label in text
        for name in m["candidates"]:
            assert name in text
        for t in m["targets"].values():
            if t["met"] is False:
                assert f"why: {t['floor']}" in text
    assert text.count("target ") == len(bs.TARGETS) * len(report["models"])
    assert "duplicate removal" in text and "clip" in text


def test_gpu_part_says_not_measured_without_a_gpu(report):
    backends = xpnn.available_backends()
    if "cupy:0" in backends or "torch:cuda" in backends:
        assert report["gpu"]["status"] == "measured"
        for m in report["gpu"]["models"].values():
            assert len(m["targets"]) == len(bs.GPU_TARGETS)
    else:
        assert report["gpu"] == {"status": bs.NO_GPU}
        assert "GPU: not measured (no GPU here)" in "\n".join(bs.format_seq2seq(report))


def test_without_torch_its_rows_and_target_are_not_measured(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    label = "PeekySeq2seq (addition)"
    result = bs.bench_seq2seq(quick=True, models=(label,))
    m = result["models"][label]
    for name in (bs.XPNN_TORCH, bs.TORCH):
        assert m["candidates"][name] == {"status": bs.NO_TORCH}
    assert bs.FLOOR_TORCH not in m["candidates"]
    t = m["targets"][f"{bs.TORCH} / {bs.XPNN_TORCH} >= 1"]
    assert t["value"] is None and t["met"] is None
    assert m["targets"][f"{bs.BOOK} / {bs.XPNN} >= 1.5"]["value"] > 0
    text = "\n".join(bs.format_seq2seq(result))
    assert f"{bs.TORCH} / {bs.XPNN_TORCH} >= 1: {bs.NO_TORCH}" in text


def test_unknown_model_and_size_are_refused():
    with pytest.raises(ValueError, match="unknown model 'Seq2seq 7'"):
        bs.bench_seq2seq(quick=True, models=("Seq2seq 7",))
    with pytest.raises(ValueError, match="unknown size 'time'"):
        bs.bench_seq2seq(sizes={"time": 3})
    with pytest.raises(ValueError, match="answer"):
        bs.bench_seq2seq(sizes={"answer": 1})


def test_seq2seq_is_a_registered_case_outside_the_default_set(monkeypatch, capsys):
    assert bench.CASES["seq2seq"] is bs.bench_seq2seq
    assert "seq2seq" not in bench.DEFAULT_CASES
    monkeypatch.setitem(bench.CASES, "seq2seq", lambda: bs.bench_seq2seq(quick=True))
    assert bench.main(["seq2seq"], json_path=None) == 0
    out = capsys.readouterr().out
    assert "== seq2seq (ms/iteration)" in out and f"target {bs.BOOK} / {bs.XPNN} >= 1.5" in out

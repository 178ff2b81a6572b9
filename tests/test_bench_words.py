"""``xpnn bench words``: its references compute what xpnn computes; its report's structure.

A speed-up is only meaningful against a reference that computes the same
thing: the book's CBOW re-typed in :mod:`xpnn.bench.words` must give xpnn's
float64 loss, gradients and Adam update from the same weights and the same
negative samples, and PyTorch eager's loss and gradients xpnn's (float32).
The case runs here at tiny sizes (a second); no speed is asserted.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import xpnn
import xpnn.bench as bench
from xpnn.bench import words as bw
from xpnn.models.word2vec import CBOW

V, H, WINDOW, N = 30, 6, 2, 9


def host(a):
    return np.array(xpnn.to_numpy(a), copy=True)


class FixedSampler:
    def __init__(self, sample):
        self.sample = sample

    def get_negative_sample(self, target):
        return self.sample


def data(seed=0):
    corpus, contexts, target = bw.corpus_and_batches(V, 400, WINDOW, seed)
    return corpus, contexts[:N], target[:N]


def xpnn_model(corpus, dtype="float64"):
    with xpnn.use_backend("numpy"):
        return CBOW(V, H, WINDOW, xpnn.asarray(corpus), seed=3, dtype=dtype)


# --------------------------------------------------------------------------
# The references compute what xpnn computes
# --------------------------------------------------------------------------


def test_book_cbow_equals_xpnn_float64_with_the_same_negative_samples():
    corpus, contexts, target = data()
    assert len(set(contexts.ravel().tolist())) < contexts.size  # repeated ids: scatter-adds
    model = xpnn_model(corpus)
    book = bw.BookCBOW(V, H, WINDOW, corpus, seed=1, dtype="float64")
    W_out = book.ns_loss.embed_dot_layers[0].params[0]
    assert all(p is book.W_in for p in book.params[: 2 * WINDOW])
    assert all(p is W_out for p in book.params[2 * WINDOW :])
    book.W_in[...] = host(model.params[0])  # in place: the book's layers hold them
    W_out[...] = host(model.params[1])

    want = float(model.forward(xpnn.asarray(contexts), xpnn.asarray(target)))
    book.ns_loss.sampler = FixedSampler(host(model.ns_loss.negative_sample))
    got = book.forward(contexts, target)
    np.testing.assert_allclose(got, want, rtol=1e-12)

    model.backward()
    book.backward()
    params, grads = bw.book_remove_duplicate(book.params, book.grads)
    assert len(params) == 2 and params[0] is book.W_in and params[1] is W_out
    for mine, theirs in zip(model.grads, grads, strict=True):
        assert np.abs(theirs).max() > 0
        np.testing.assert_allclose(theirs, host(mine), rtol=1e-10, atol=1e-15)

    xpnn.Adam(lr=0.01).update(model.params, model.grads)
    bw.BookAdam(lr=0.01).update(params, grads)
    for mine, theirs in zip(model.params, params, strict=True):
        np.testing.assert_allclose(theirs, host(mine), rtol=1e-12, atol=1e-15)


def test_book_sampler_paths():
    corpus, _, target = data()
    cpu = bw.BookUnigramSampler(corpus, 0.75, 5, seed=0)
    counts = np.bincount(corpus) ** 0.75
    np.testing.assert_allclose(cpu.word_p, counts / counts.sum())
    sample = cpu.get_negative_sample(target)
    assert sample.shape == (N, 5)
    for row, t in zip(sample, target, strict=True):
        assert len(set(row.tolist())) == 5 and t not in row  # without replacement, not the target
    gpu = bw.BookUnigramSampler(corpus, 0.75, 5, seed=0, gpu=True)  # the CuPy path's draw
    assert gpu.get_negative_sample(target).shape == (N, 5)


def test_book_step_trains():
    corpus, contexts, target = data(1)
    model = bw.BookCBOW(V, H, WINDOW, corpus, seed=0)
    assert model.W_in.dtype == np.float32  # the book's astype('f')
    opt = bw.BookAdam(lr=0.05)
    losses = []
    for _ in range(40):
        losses.append(float(model.forward(contexts, target)))
        model.backward()
        opt.update(*bw.book_remove_duplicate(model.params, model.grads))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5


def test_torch_eager_equals_xpnn_with_the_same_negative_samples():
    torch = pytest.importorskip("torch")
    corpus, contexts, target = data(2)
    model = xpnn_model(corpus, "float32")
    ref = bw.TorchCBOW(torch, V, H, host(model.sampler.word_p))
    with torch.no_grad():
        ref.emb_in.weight.copy_(torch.from_numpy(host(model.params[0])))
        ref.emb_out.weight.copy_(torch.from_numpy(host(model.params[1])))
    want = float(model.forward(xpnn.asarray(contexts), xpnn.asarray(target)))
    negative = torch.from_numpy(host(model.ns_loss.negative_sample))
    loss = ref.loss(torch.from_numpy(contexts), torch.from_numpy(target), negative)
    np.testing.assert_allclose(float(loss.detach()), want, rtol=1e-5)  # the book's 1e-7 in the log
    model.backward()
    loss.backward()
    for mine, emb in zip(model.grads, (ref.emb_in, ref.emb_out), strict=True):
        np.testing.assert_allclose(emb.weight.grad.numpy(), host(mine), rtol=1e-4, atol=1e-7)
    for replacement in (True, False):
        ref.replacement = replacement
        sample = ref.sample(torch.from_numpy(target))
        assert tuple(sample.shape) == (N, 5)
        if not replacement:
            for row, t in zip(sample.tolist(), target.tolist(), strict=True):
                assert len(set(row)) == 5 and t not in row


# --------------------------------------------------------------------------
# The case: structure of its report, at tiny sizes
# --------------------------------------------------------------------------

TINY = {"vocab": 50, "hidden": 8, "window": 2, "batch": 10, "tokens": 2000}
FAST = {**TINY, "repeats": 2, "repeat_s": 0.002, "warmup": 1, "pause_s": 0.0}
PARTS = {"sampler", "forward", "forward without sampler", "backward", "update"}


@pytest.fixture(scope="module")
def report():
    return bw.bench_words(**FAST)


def test_report_has_every_candidate_part_and_target(report):
    assert json.loads(json.dumps(report)) == report
    assert report["unit"] == "ms/iteration" and report["settings"]["vocab"] == 50
    cands = report["candidates"]
    assert {bw.BOOK, bw.XPNN, bw.XPNN_TORCH, bw.TORCH, bw.TORCH_NOREP} <= set(cands)
    assert {bw.FLOOR_ADAM, bw.FLOOR_COPY} <= set(cands)
    base = cands[bw.XPNN]["median"]
    for name, r in cands.items():
        if "median" not in r:
            assert r == {"status": bw.NO_TORCH}
            continue
        assert 0 < r["min"] <= r["median"] <= r["max"] and r["repeats"] == 2
        assert r["speed-up"] == pytest.approx(r["median"] / base)
        if name.startswith("floor"):
            assert r["parts"] == {}
            continue
        parts = r["parts"]
        assert set(parts) == PARTS | ({"duplicate removal"} if name == bw.BOOK else set())
        # Every part is timed inside the same iterations: each is part of the whole.
        assert parts["sampler"]["median"] <= parts["forward"]["median"] <= r["median"]
        assert parts["forward without sampler"]["median"] >= 0
    targets = report["targets"]
    assert {v["goal"] for v in targets.values()} == {5.0, 1.0}
    for ref, path, goal in bw.TARGETS:
        t = targets[f"{ref} / {path} >= {goal:g}"]
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
        "ref": r(20.0, sampler=5.0, backward=5.0, update=9.0),
        "path": r(10.0, sampler=1.0, backward=6.0, update=3.0),
        bw.FLOOR_ADAM: r(4.0),
        bw.FLOOR_COPY: r(1.6),
    }
    t = bw._target(timed, "ref", "path", 5.0)
    assert t == {"goal": 5.0, "value": 2.0, "met": False}
    note = bw._floor_note(timed, "ref", "path", 5.0, 8.0)
    assert "needs <= 4.00 ms/iteration, measures 10.00" in note
    assert "Adam alone takes 4.00 ms" in note and "at least 1.40 ms" in note
    assert note.endswith("slower than the reference's: backward")
    assert bw._target({"ref": r(1.0)}, "ref", "path", 1.0)["value"] is None


def test_format_shows_every_row_part_and_target(report):
    text = "\n".join(bw.format_words(report))
    for name in report["candidates"]:
        assert name in text
    assert text.count("target ") == len(bw.TARGETS)
    assert "duplicate removal" in text and "forward without sampler" in text
    for t in report["targets"].values():
        if t["met"] is False:
            assert f"why: {t['floor']}" in text


def test_gpu_part_says_not_measured_without_a_gpu(report):
    backends = xpnn.available_backends()
    if "cupy:0" in backends or "torch:cuda" in backends:
        assert report["gpu"]["status"] == "measured"
    else:
        assert report["gpu"] == {"status": bw.NO_GPU}
        assert "GPU: not measured (no GPU here)" in "\n".join(bw.format_words(report))


def test_without_torch_its_rows_and_target_are_not_measured(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    result = bw.bench_words(**FAST)
    for name in (bw.XPNN_TORCH, bw.TORCH, bw.TORCH_NOREP):
        assert result["candidates"][name] == {"status": bw.NO_TORCH}
    t = result["targets"][f"{bw.TORCH} / {bw.XPNN_TORCH} >= 1"]
    assert t["value"] is None and t["met"] is None
    assert result["targets"][f"{bw.BOOK} / {bw.XPNN} >= 5"]["value"] > 0
    assert f"{bw.TORCH} / {bw.XPNN_TORCH} >= 1: {bw.NO_TORCH}" in "\n".join(bw.format_words(result))


def test_words_is_a_registered_case_outside_the_default_set(monkeypatch, capsys):
    assert bench.CASES["words"] is bw.bench_words
    assert "words" not in bench.DEFAULT_CASES
    monkeypatch.setitem(bench.CASES, "words", lambda: bw.bench_words(**FAST))
    assert bench.main(["words"], json_path=None) == 0
    out = capsys.readouterr().out
    assert "== words (ms/iteration)" in out and f"target {bw.BOOK} / {bw.XPNN} >= 5" in out

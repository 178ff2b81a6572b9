"""``xpnn bench precision``: the structure of its report, at tiny sizes.

The case itself runs for minutes at its full grid; here it runs with a few
steps of tiny nets, and the tests check what the report claims: ratios from
the measured medians, estimates flagged as estimates, backends that cannot
run reported with their reason. No speed is asserted.
"""

from __future__ import annotations

import functools
import json
import re

import pytest

import xpnn
import xpnn.bench as bench
from xpnn.bench import precision
from xpnn.cli import main

TINY = {
    "batches": (8, 32),
    "hiddens": (4,),
    "budget_s": 0.02,
    "max_repeats": 2,
    "epochs": 1,
    "mnist_budget_s": 60.0,
    "amp_size": (8, 4),
}
ESTIMATE = re.compile(r"~[\d.e+]+ est\. ")  # a table cell holding an estimate


@pytest.fixture(scope="module")
def report():
    """numpy and array_api_strict (and cupy, which is not here or is a GPU)."""
    return precision.bench_precision(
        backends=("numpy", "array_api_strict", "cupy:0"), max_step_s=1e9, **TINY
    )


def test_the_report_is_json_and_has_every_part(report):
    assert json.loads(json.dumps(report)) == report
    assert set(report) >= {"unit", "settings", "cpu", "step", "pytorch_amp", "memory"}
    assert set(report) >= {"mnist5k", "notes"}
    assert report["settings"]["batches"] == [8, 32]
    assert report["settings"]["hiddens"] == [4]
    numpy = report["step"]["numpy"]
    assert numpy["status"] == "measured"
    assert numpy["modes"] == ["float32", "float16", "mixed16"]
    assert set(numpy["unavailable modes"]) == {"bfloat16", "mixed_bf16"}
    assert "bfloat16" in numpy["unavailable modes"]["bfloat16"]
    assert set(numpy["cells"]) == {"hidden 4"}
    assert set(numpy["cells"]["hidden 4"]) == {"batch 8", "batch 32"}
    for cell in numpy["cells"]["hidden 4"].values():
        assert set(cell) == {"float32", "float16", "mixed16"}
        for result in cell.values():
            assert result["estimated"] is False
            assert result["repeats"] >= 1 and result["steps per repeat"] >= 1
            assert 0 < result["min"] <= result["median"] <= result["max"]


def test_ratios_are_the_measured_medians_over_float32s(report):
    for cell in report["step"]["numpy"]["cells"]["hidden 4"].values():
        base = cell["float32"]["median"]
        assert cell["float32"]["ratio to float32"] == 1.0
        for result in cell.values():
            assert result["ratio to float32"] == pytest.approx(result["median"] / base, rel=1e-12)


def test_backends_that_cannot_run_are_reported_with_the_reason(report):
    strict = report["step"]["array_api_strict"]
    assert strict["status"] == "not available"
    assert "float16" in strict["reason"] and "Array API" in strict["reason"]
    assert "cells" not in strict
    cupy = report["step"]["cupy:0"]
    if "cupy:0" not in xpnn.available_backends():
        assert cupy["status"] == "not measured (no GPU here)"
        assert cupy["reason"]
        assert report["pytorch_amp"] == {"status": "not measured (no GPU here)"}
        assert report["mnist5k"]["cupy:0"]["status"] == "not measured (no GPU here)"
    assert report["mnist5k"]["array_api_strict"]["status"] == "not available"


def test_memory_is_analytic_from_shapes_and_itemsizes(report):
    memory = report["memory"]
    assert "analytic" in memory["unit"]
    entry = memory["table"]["hidden 4"]["batch 8"]
    n_params = 784 * 4 + 4 + 4 * 10 + 10
    assert entry["float32"]["parameters"] == pytest.approx(n_params * 8 / 1e6)
    assert entry["half (float16, bfloat16)"]["parameters"] == pytest.approx(n_params * 4 / 1e6)
    assert entry["mixed"]["parameters"] == pytest.approx(n_params * 12 / 1e6)
    stored = 8 * 784 + 2 * 8 * 4 + 8 * 10  # x, the hidden pre-activation and output, scores
    softmax = 8 * 10 * 4  # float32 in every precision
    assert entry["float32"]["activations"] == pytest.approx((stored * 4 + softmax) / 1e6)
    assert entry["mixed"]["activations"] == pytest.approx((stored * 2 + softmax) / 1e6)
    for v in entry.values():
        assert v["total"] == pytest.approx(v["parameters"] + v["activations"])


def test_mnist5k_compares_mixed_precision_with_float32(report):
    run = report["mnist5k"]["numpy"]
    assert run["epochs"] == 1 and run["steps"] == 40
    assert set(run) >= {"float32", "mixed16"}
    base, mixed = run["float32"], run["mixed16"]
    assert 0 <= base["test accuracy"] <= 1
    want = (mixed["test accuracy"] - base["test accuracy"]) * 100
    assert mixed["difference (points)"] == pytest.approx(want)
    assert mixed["within 0.5 point"] == (abs(want) <= 0.5)
    assert mixed["skipped steps"] >= 0
    assert mixed["final loss scale"] > 0


def test_the_table_shows_each_part(report):
    text = "\n".join(precision.format_precision(report))
    assert "float16" in text and "mixed16" in text
    assert "array_api_strict: not available: " in text
    assert "analytic" in text
    assert "mnist5k" in text and "points" in text
    assert not ESTIMATE.search(text)  # nothing was estimated


def test_a_step_predicted_too_long_is_estimated_and_flagged_so():
    report = precision.bench_precision(backends=("numpy",), max_step_s=0.0, **{**TINY, "epochs": 0})
    assert report["mnist5k"]["numpy"] == {"status": "not measured", "reason": "epochs=0"}
    cells = report["step"]["numpy"]["cells"]["hidden 4"]
    small, large = cells["batch 8"], cells["batch 32"]
    for mode, result in large.items():
        assert result["estimated"] is True, mode
        assert "batch 8" in result["estimated from"]
        assert result["median"] == pytest.approx(small[mode]["median"] * 4)
        assert "repeats" not in result  # nothing was run
        assert small[mode]["estimated"] is False
    text = "\n".join(precision.format_precision(report))
    assert ESTIMATE.search(text)
    # The notes use measured cells only.
    for note in report["notes"]:
        if note.startswith("numpy:"):
            ratio = small["float16"]["ratio to float32"]
            assert f"float16 {ratio:.3g}x" in note


def test_torch_modes_and_its_amp_reference_run_on_the_cpu():
    pytest.importorskip("torch")
    if "torch:cpu" not in xpnn.available_backends():
        pytest.skip("torch:cpu does not run here")
    report = precision.bench_precision(backends=("torch:cpu",), max_step_s=1e9, **TINY)
    entry = report["step"]["torch:cpu"]
    assert entry["modes"] == ["float32", "float16", "mixed16", "bfloat16", "mixed_bf16"]
    run = report["mnist5k"]["torch:cpu"]
    assert run["mixed_bf16"]["skipped steps"] is None  # bfloat16 needs no loss scaling
    # The GPU's reference, run here on the CPU at a tiny size: the code path works.
    amp = precision.amp_reference(["torch:cpu"], "cpu", size=(8, 4), budget_s=0.02)
    assert amp["status"] == "measured"
    reference = amp["PyTorch AMP float16 (autocast + GradScaler)"]
    assert reference["ratio to PyTorch AMP float16"] == 1.0
    for name in ("PyTorch float32 eager", "xpnn torch:cpu mixed16", "xpnn torch:cpu float32"):
        assert amp[name]["ratio to PyTorch AMP float16"] == pytest.approx(
            amp[name]["median"] / reference["median"]
        )


def test_cpu_features_reads_the_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx avx2 f16c fma\n\n"
        "processor\t: 1\nmodel name\t: Some CPU\nflags\t\t: fpu avx avx2 f16c fma\n"
    )
    found = precision.cpu_features(str(info))
    assert found["model"] == "Some CPU"
    assert found["flags"]["avx2"] and found["flags"]["f16c"]
    assert not found["flags"]["avx512_bf16"] and not found["flags"]["avx512_fp16"]
    assert precision.cpu_features(str(tmp_path / "missing")) is None


def test_the_cli_runs_the_case_and_writes_the_json(monkeypatch, tmp_path, capsys):
    tiny = functools.partial(
        precision.bench_precision,
        backends=("numpy", "array_api_strict"),
        max_step_s=0.0,
        **{**TINY, "epochs": 0},
    )
    monkeypatch.setitem(bench.CASES, "precision", tiny)
    out = tmp_path / "bench.json"
    assert main(["bench", "precision", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "== precision (ms/step)" in printed and ESTIMATE.search(printed)
    saved = json.loads(out.read_text())
    assert set(saved) == {"machine", "precision"}
    assert saved["precision"]["step"]["numpy"]["cells"]["hidden 4"]["batch 32"]["float16"][
        "estimated"
    ]


def test_a_plain_bench_leaves_the_precision_case_out(monkeypatch):
    ran = []
    cases = {name: functools.partial(ran.append, name) for name in bench.CASES}
    monkeypatch.setattr(bench, "CASES", cases)
    bench.run()
    assert "precision" not in ran
    assert ran == list(bench.DEFAULT_CASES)
    long_cases = {"precision", "conv", "words", "rnn", "seq2seq"}
    assert set(bench.DEFAULT_CASES) | long_cases == set(bench.CASES)

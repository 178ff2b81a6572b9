"""``xpnn bench precision``: bit precision (vol. 2, section 1.5), measured.

Three parts, in one run:

* **step time** of a TwoLayerNet(784, H, 10) training step (forward,
  backward, SGD update: the Trainer's step) for float32, float16 (a float16
  model: pure half), mixed16 (float32 master weights, float16 compute,
  dynamic loss scaling: :class:`xpnn.MixedPrecision`), and on PyTorch also
  bfloat16 and mixed_bf16, at batch 100, 1024, 8192 and hidden 50, 1000, on
  every backend that runs here. The precisions of one cell (backend, hidden,
  batch) are measured side by side, interleaved, as the other cases are; each
  gets a time budget (warm-up, then repeats until about ``budget_s`` of timed
  steps, at least one). A step predicted (linearly in the batch from the
  same precision's measured smaller batch) to take over ``max_step_s`` is not
  run: its time is that prediction, flagged ``"estimated": true`` and shown
  as ``~... est.``; never presented as a measurement. Each cell's ratio to
  float32 is its median over float32's median. On a CUDA machine PyTorch's
  own automatic mixed precision (``torch.autocast`` with
  ``torch.amp.GradScaler``, on an equivalent ``nn.Sequential``) is the
  reference at batch 8192, hidden 1000.
* **memory**, analytic (shapes times itemsizes, no measurement): the bytes of
  the parameters with their gradients, and of the activations the forward
  pass keeps for the backward pass, per precision.
* **mnist5k**: TwoLayerNet(784, 50, 10, seed=0) trained with SGD(lr=0.1),
  batch 100, in float32 and mixed precision with the same seed: the test
  accuracies and their difference in points (the target: within 0.5), the
  steps the loss scaler skipped and its final scale.

The report ends with notes computed from the measurements (what half
precision costs on this CPU, and the CPU's relevant instruction-set flags).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import xpnn

__all__ = ["bench_precision", "cpu_features", "format_precision", "memory_table"]

D_IN, CLASSES, LR = 784, 10, 0.1
BATCHES, HIDDENS = (100, 1024, 8192), (50, 1000)
CPU_BACKENDS = ("numpy", "torch:cpu", "array_api_strict")
GPU_BACKENDS = ("cupy:0", "torch:cuda")
#: Every precision measured, and its compute dtype.
MODES = {
    "float32": "float32",
    "float16": "float16",
    "mixed16": "float16",
    "bfloat16": "bfloat16",
    "mixed_bf16": "bfloat16",
}
MIXED = {"mixed16", "mixed_bf16"}
NO_GPU = "not measured (no GPU here)"
NOT_AVAILABLE = "not available"
#: /proc/cpuinfo flags that decide how fast half floats are on an x86 CPU.
CPU_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_bf16",
    "amx_fp16",
)


# ------------------------------------------------------------------ the CPU


def cpu_features(path: str = "/proc/cpuinfo") -> dict[str, Any] | None:
    """The CPU's model name and the half-float flags of :data:`CPU_FLAGS` (Linux).

    Returns:
        ``{"model": str, "flags": {flag: bool}}``, plus ``"torch capability"``
        (``torch.backends.cpu.get_cpu_capability()``) when PyTorch is imported;
        None where ``path`` cannot be read (not Linux).
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    found: dict[str, Any] = {
        "model": model or "unknown",
        "flags": {flag: flag in flags for flag in CPU_FLAGS},
    }
    torch = sys.modules.get("torch")
    capability = getattr(
        getattr(getattr(torch, "backends", None), "cpu", None), "get_cpu_capability", None
    )
    if capability is not None:
        found["torch capability"] = str(capability())
    return found


# ------------------------------------------------------------------ timing


def _sync_for(spec: str) -> Callable[[], None] | None:
    """What waits for the device's queued work (None on a CPU backend)."""
    if spec.startswith("cupy"):
        import cupy

        return cupy.cuda.runtime.deviceSynchronize
    if spec.startswith("torch:cuda"):
        import torch

        return torch.cuda.synchronize
    return None


def _measure_budget(
    candidates: dict[str, Callable[[], Any]],
    budget_s: float,
    max_repeats: int,
    sync: Callable[[], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Median/min/max seconds per call of each candidate, interleaved, on a time budget.

    Each candidate is warmed up (one call, up to three while within a third of
    the budget), then timed in repeats of ``inner`` calls, ``inner`` chosen so
    a repeat takes about a fifth of the budget. Repeat r runs every candidate
    still within its budget once before repeat r + 1. A candidate stops after
    ``max_repeats`` repeats or once its timed calls used ``budget_s``; it is
    timed at least once.
    """

    def call(fn: Callable[[], Any]) -> float:
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        return time.perf_counter() - start

    inner: dict[str, int] = {}
    for name, fn in candidates.items():
        last = call(fn)
        used, count = last, 1
        while count < 3 and used + last < budget_s / 3:
            last = call(fn)
            used, count = used + last, count + 1
        inner[name] = max(1, int(budget_s / 5 / max(last, 1e-9)))
    times: dict[str, list[float]] = {name: [] for name in candidates}
    spent = dict.fromkeys(candidates, 0.0)
    for _ in range(max_repeats):
        active = [n for n in candidates if not times[n] or spent[n] < budget_s]
        if not active:
            break
        for name in active:
            fn, k = candidates[name], inner[name]
            time.sleep(0.05)  # let the previous library's worker threads stop spinning
            start = time.perf_counter()
            for _ in range(k):
                fn()
            if sync:
                sync()
            elapsed = time.perf_counter() - start
            spent[name] += elapsed
            times[name].append(elapsed / k)
    return {
        name: {
            "median": statistics.median(ts),
            "min": min(ts),
            "max": max(ts),
            "repeats": len(ts),
            "steps per repeat": inner[name],
        }
        for name, ts in times.items()
    }


# ----------------------------------------------------------- the candidates


def _mode_status(spec: str) -> dict[str, str | None]:
    """``{mode: None}`` for a precision the backend has, ``{mode: reason}`` otherwise."""
    status: dict[str, str | None] = {}
    for mode, dtype in MODES.items():
        try:
            with xpnn.use_backend(spec, dtype=dtype):
                pass
        except ValueError as exc:
            status[mode] = str(exc)
        else:
            status[mode] = None
    return status


def _step_candidate(spec: str, mode: str, x_host: np.ndarray, t_host: np.ndarray, hidden: int):
    """One training step of TwoLayerNet(784, hidden, 10) in ``mode`` on ``spec``.

    float32, float16, bfloat16: the model and the batch in that dtype and the
    Trainer's own step (forward, backward, SGD update). mixed16, mixed_bf16:
    a float32 model and batch, and :meth:`xpnn.MixedPrecision.step` (what
    ``Trainer.fit(precision=...)`` runs per batch).
    """
    mixed = mode in MIXED
    dtype = "float32" if mixed else MODES[mode]
    with xpnn.use_backend(spec):
        x = xpnn.asarray(x_host, dtype=dtype)
        t = xpnn.asarray(t_host)
        net = xpnn.TwoLayerNet(D_IN, hidden, CLASSES, seed=0, dtype=dtype)
        optimizer = xpnn.SGD(lr=LR)
        if mixed:
            mp = xpnn.MixedPrecision(MODES[mode])
            mp.bind(net, optimizer)

            def step() -> Any:
                return mp.step(x, t, None)

        else:
            trainer = xpnn.Trainer(net, optimizer)

            def step() -> Any:
                return trainer._iteration(x, t, None)

    return step


def _torch_amp_candidates(
    device: str, x_host: np.ndarray, t_host: np.ndarray, hidden: int
) -> dict[str, Callable[[], Any]]:
    """PyTorch's own training steps on an equivalent net: float32, and AMP.

    ``nn.Sequential(Linear(784, hidden), Sigmoid(), Linear(hidden, 10))``,
    ``CrossEntropyLoss`` and SGD(lr=0.1); AMP float16 is ``torch.autocast``
    with ``torch.amp.GradScaler`` (its defaults: the rules xpnn's LossScaler
    copies), AMP bfloat16 is ``torch.autocast`` alone.
    """
    import torch

    dev = torch.device(device)
    x = torch.from_numpy(x_host).to(dev)
    t = torch.from_numpy(t_host).to(dev)
    loss_fn = torch.nn.CrossEntropyLoss()

    def model_and_opt():
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(D_IN, hidden), torch.nn.Sigmoid(), torch.nn.Linear(hidden, CLASSES)
        ).to(dev)
        return model, torch.optim.SGD(model.parameters(), lr=LR)

    model32, opt32 = model_and_opt()

    def float32() -> Any:
        opt32.zero_grad(set_to_none=True)
        loss = loss_fn(model32(x), t)
        loss.backward()
        opt32.step()
        return loss

    model16, opt16 = model_and_opt()
    scaler = torch.amp.GradScaler(dev.type)

    def amp16() -> Any:
        opt16.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.float16):
            loss = loss_fn(model16(x), t)
        scaler.scale(loss).backward()
        scaler.step(opt16)
        scaler.update()
        return loss

    model_bf, opt_bf = model_and_opt()

    def amp_bf16() -> Any:
        opt_bf.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = loss_fn(model_bf(x), t)
        loss.backward()
        opt_bf.step()
        return loss

    amp16.scaler = scaler  # type: ignore[attr-defined]
    return {
        "PyTorch float32 eager": float32,
        "PyTorch AMP float16 (autocast + GradScaler)": amp16,
        "PyTorch AMP bfloat16 (autocast)": amp_bf16,
    }


def _batch(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((batch, D_IN), dtype=np.float32), rng.integers(0, CLASSES, batch)


def _scaled(measured: dict[str, Any], factor: float, source: int) -> dict[str, Any]:
    """An estimate: ``measured`` times ``factor`` (the batch ratio), flagged so."""
    return {
        "median": measured["median"] * factor,
        "min": measured["min"] * factor,
        "max": measured["max"] * factor,
        "estimated": True,
        "estimated from": f"batch {source}, x {factor:g} (linear in the batch)",
    }


def _grid(
    spec: str,
    modes: list[str],
    batches: Sequence[int],
    hiddens: Sequence[int],
    budget_s: float,
    max_step_s: float,
    max_repeats: int,
) -> dict[str, Any]:
    """The step times of one backend: ``{"hidden H": {"batch N": {mode: cell}}}``."""
    sync = _sync_for(spec)
    cells: dict[str, Any] = {}
    for hidden in hiddens:
        row: dict[str, Any] = {}
        known: dict[str, tuple[int, dict[str, Any]]] = {}  # mode -> (batch, its last cell)
        for batch in sorted(batches):
            x_host, t_host = _batch(batch, seed=batch + hidden)
            cell: dict[str, Any] = {}
            candidates = {}
            for mode in modes:
                if mode in known:
                    source, before = known[mode]
                    factor = batch / source
                    if before["median"] * factor > max_step_s:
                        cell[mode] = _scaled(before, factor, source)
                        continue
                candidates[mode] = _step_candidate(spec, mode, x_host, t_host, hidden)
            if candidates:
                timed = _measure_budget(candidates, budget_s, max_repeats, sync)
                for mode, result in timed.items():
                    cell[mode] = {**result, "estimated": False}
            for mode in modes:
                cell[mode] = _to_ms(cell[mode])
                if not cell[mode]["estimated"]:  # estimates scale the last measured batch
                    known[mode] = (batch, _from_ms(cell[mode]))
            _add_ratios(cell)
            row[f"batch {batch}"] = {mode: cell[mode] for mode in modes}
        cells[f"hidden {hidden}"] = row
    return cells


def _to_ms(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v * 1e3 if k in ("median", "min", "max") else v for k, v in result.items()}


def _from_ms(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v / 1e3 if k in ("median", "min", "max") else v for k, v in result.items()}


def _add_ratios(cell: dict[str, dict[str, Any]], base: str = "float32") -> None:
    """``"ratio to float32"``: each median over float32's median, in the same cell."""
    reference = cell[base]["median"]
    for result in cell.values():
        result["ratio to float32"] = result["median"] / reference


# ------------------------------------------------------------------ memory


def memory_table(
    batches: Sequence[int] = BATCHES, hiddens: Sequence[int] = HIDDENS
) -> dict[str, Any]:
    """Bytes of parameters and activations per precision, from shapes and itemsizes.

    Parameters: W1 (784, H), b1 (H,), W2 (H, 10), b2 (10,) and a gradient of
    each (SGD keeps no state): 4 + 4 bytes per parameter in float32, 2 + 2
    in float16 or bfloat16, and 4 + 4 + 2 + 2 in mixed precision (float32
    master weights and gradients, the half twin's weights and gradients).
    Activations: what the forward pass of a batch of N keeps for the backward
    pass: the input x (N, 784) the first Affine holds (the cast copy in
    mixed precision), the hidden pre-activation and the sigmoid's output
    (N, H) each, the scores (N, 10), all in the compute dtype, and the
    softmax (N, 10), which the loss layer keeps in float32 for half scores.
    Labels, scratch buffers and the backward pass's temporaries are left out.
    """
    table: dict[str, Any] = {}
    for hidden in hiddens:
        n_params = D_IN * hidden + hidden + hidden * CLASSES + CLASSES
        row: dict[str, Any] = {}
        for batch in batches:
            stored = batch * D_IN + 2 * batch * hidden + batch * CLASSES
            softmax = batch * CLASSES
            entry = {}
            for name, (param_bytes, compute) in {
                "float32": (8, 4),
                "half (float16, bfloat16)": (4, 2),
                "mixed": (12, 2),
            }.items():
                params = n_params * param_bytes
                activations = stored * compute + softmax * 4
                entry[name] = {
                    "parameters": params / 1e6,
                    "activations": activations / 1e6,
                    "total": (params + activations) / 1e6,
                }
            row[f"batch {batch}"] = entry
        table[f"hidden {hidden}"] = row
    return {
        "unit": "MB (analytic: shapes x itemsizes, not measured)",
        "parameters": "weights and their gradients: float32 4+4 B, half 2+2 B, "
        "mixed 4+4 (float32 masters) + 2+2 (half twin) B per parameter",
        "activations": "kept by the forward pass for backward: x (N, 784), the hidden "
        "pre-activation and sigmoid output (N, H) each, the scores (N, 10) in the compute "
        "dtype; the softmax (N, 10) in float32 (the loss layer's, for half scores too)",
        "table": table,
    }


# ------------------------------------------------------------------ mnist5k


def _mnist(
    spec: str, modes: list[str], epochs: int, budget_s: float, step_s: dict[str, float]
) -> dict[str, Any]:
    """float32 against mixed precision on the shipped MNIST sample, same seed."""
    from xpnn.datasets import load_mnist5k

    batch = 100
    with xpnn.use_backend(spec):
        (x, t), (x_test, t_test) = load_mnist5k()
    steps = epochs * (int(x.shape[0]) // batch)
    if step_s and all(m in step_s for m in modes):
        predicted = steps * sum(step_s[m] for m in modes)
        if predicted > budget_s:
            return {
                "status": "not measured",
                "reason": f"predicted {predicted:.0f} s for {steps} steps in each of "
                f"{', '.join(modes)} (from the measured step times at batch 100, hidden 50), "
                f"over the budget of {budget_s:g} s",
            }
    results: dict[str, Any] = {"epochs": epochs, "steps": steps}
    for mode in modes:
        with xpnn.use_backend(spec):
            net = xpnn.TwoLayerNet(D_IN, 50, CLASSES, seed=0)
            trainer = xpnn.Trainer(net, xpnn.SGD(lr=LR))
            mp = xpnn.MixedPrecision(MODES[mode]) if mode in MIXED else None
            start = time.perf_counter()
            trainer.fit(
                x,
                t,
                max_epoch=epochs,
                batch_size=batch,
                eval_interval=int(x.shape[0]) // batch,
                seed=0,
                progress=False,
                verbose=False,
                precision=mp,
            )
            accuracy = float(net.accuracy(x_test, t_test))
            seconds = time.perf_counter() - start
        entry: dict[str, Any] = {
            "test accuracy": accuracy,
            "final loss": trainer.loss_list[-1] if trainer.loss_list else None,
            "seconds": seconds,
        }
        if mp is not None:
            scaler = mp.scaler.state_dict() if mp.scaler is not None else None
            entry["skipped steps"] = None if scaler is None else scaler["skipped"]
            entry["final loss scale"] = None if scaler is None else scaler["scale"]
        results[mode] = entry
    base = results["float32"]["test accuracy"]
    for mode in modes:
        if mode != "float32":
            diff = (results[mode]["test accuracy"] - base) * 100
            results[mode]["difference (points)"] = diff
            results[mode]["within 0.5 point"] = abs(diff) <= 0.5
    return results


# ------------------------------------------------------------------- notes


def _ratios(grid: dict[str, Any], mode: str) -> list[float]:
    """The measured (not estimated) ratios to float32 of ``mode`` in a grid."""
    return [
        cell[mode]["ratio to float32"]
        for row in grid.values()
        for cell in row.values()
        if mode in cell and not cell[mode]["estimated"] and not cell["float32"]["estimated"]
    ]


def _notes(report: dict[str, Any]) -> list[str]:
    notes = []
    for spec, entry in report["step"].items():
        grid = entry.get("cells")
        if not grid:
            continue
        parts = []
        for mode in entry["modes"]:
            if mode == "float32":
                continue
            ratios = _ratios(grid, mode)
            if ratios:
                parts.append(
                    f"{mode} {statistics.median(ratios):.3g}x float32's time "
                    f"(measured cells: {min(ratios):.3g}x to {max(ratios):.3g}x)"
                )
        if not parts:
            continue
        medians = {
            m: statistics.median(_ratios(grid, m))
            for m in entry["modes"]
            if m != "float32" and _ratios(grid, m)
        }
        faster = [m for m, r in medians.items() if r < 1]
        if not faster:
            advice = (
                "every half precision is slower than float32 here: train in float32 on this "
                "backend (mixed precision pays on GPUs with tensor cores)"
            )
        else:
            slower = [m for m, r in medians.items() if r >= 1]
            advice = (
                f"faster than float32 in the median measured cell: {', '.join(faster)}"
                + (f"; slower: {', '.join(slower)}" if slower else "")
                + " (the cells show where)"
            )
        why = (
            " NumPy has no float16 BLAS: a float16 matrix product is a plain loop."
            if spec == "numpy"
            else ""
        )
        notes.append(f"{spec}: {'; '.join(parts)}; {advice}.{why}")
    cpu = report.get("cpu")
    if cpu:
        flags = cpu["flags"]
        have = [f for f, on in flags.items() if on]
        lack = [f for f, on in flags.items() if not on]
        fp16 = flags.get("avx512_fp16") or flags.get("amx_fp16")
        bf16 = flags.get("avx512_bf16") or flags.get("amx_bf16")
        notes.append(
            f"CPU {cpu['model']}: has {' '.join(have) or 'none of the flags'}; lacks "
            f"{' '.join(lack) or 'none'}. float16: "
            + (
                "native arithmetic (avx512_fp16 / amx_fp16)"
                if fp16
                else "no float16 arithmetic, computed in float32"
                + (" (f16c: conversions in hardware)" if flags.get("f16c") else "")
            )
            + "; bfloat16: "
            + (
                "native dot products (avx512_bf16 / amx_bf16)"
                if bf16
                else "no bfloat16 instructions, computed in float32"
            )
        )
    for spec, entry in report["mnist5k"].items():
        for mode, result in entry.items():
            if isinstance(result, dict) and "difference (points)" in result:
                notes.append(
                    f"mnist5k on {spec}: {mode} test accuracy {result['test accuracy']:.4f}, "
                    f"{result['difference (points)']:+.2f} points from float32 "
                    f"({'within' if result['within 0.5 point'] else 'NOT within'} 0.5 point)"
                )
    return notes


# -------------------------------------------------------------------- case


def _status(specs: Sequence[str]) -> dict[str, str | None]:
    from xpnn.backend.probe import backend_status

    status = backend_status()
    return {spec: status.get(spec, f"unknown backend {spec!r}") for spec in specs}


def bench_precision(
    batches: Sequence[int] = BATCHES,
    hiddens: Sequence[int] = HIDDENS,
    backends: Sequence[str] = CPU_BACKENDS + GPU_BACKENDS,
    budget_s: float = 1.5,
    max_step_s: float = 5.0,
    max_repeats: int = 5,
    epochs: int = 20,
    mnist_budget_s: float = 40.0,
    amp_size: tuple[int, int] = (8192, 1000),
) -> dict[str, Any]:
    """float32, float16, mixed16 (and bfloat16, mixed_bf16 on PyTorch) side by side.

    Args:
        batches: The batch sizes of the step-time grid.
        hiddens: Its hidden sizes.
        backends: The backend specs to try; one that does not run (or has no
            float16) is reported with the reason.
        budget_s: Seconds of timed steps per precision and cell (after the
            warm-up); at least one step is timed.
        max_step_s: A step predicted to take longer (from the same
            precision's measured smaller batch, linearly) is estimated, not
            run, and flagged ``"estimated": true``.
        max_repeats: Most repeats per precision and cell.
        epochs: Epochs of the mnist5k runs (40 steps of batch 100 each); 0:
            no mnist5k runs.
        mnist_budget_s: A backend's mnist5k runs are skipped (with the
            reason) when predicted, from its measured step times at batch
            100 and hidden 50, to take longer than this in all.
        amp_size: ``(batch, hidden)`` of the PyTorch AMP reference (GPU).

    Returns:
        The case's JSON: ``step`` (per backend: ``status``, ``modes``, and
        ``cells[hidden][batch][mode]`` with median/min/max ms, repeats,
        ``estimated`` and ``ratio to float32``, or ``reason``),
        ``pytorch_amp``, ``memory``, ``mnist5k``, ``cpu`` and ``notes``.
    """
    report: dict[str, Any] = {
        "unit": "ms/step",
        "settings": {
            "input": D_IN,
            "classes": CLASSES,
            "batches": list(batches),
            "hiddens": list(hiddens),
            "optimizer": f"SGD(lr={LR})",
            "budget_s per precision and cell": budget_s,
            "max_step_s (longer: estimated)": max_step_s,
            "max_repeats": max_repeats,
        },
        "cpu": cpu_features(),
        "step": {},
    }
    status = _status(backends)
    gpu_present = any(status[s] is None for s in backends if s in GPU_BACKENDS)
    mnist_step_s: dict[str, dict[str, float]] = {}
    for spec in backends:
        reason = status[spec]
        if reason is not None:
            report["step"][spec] = {
                "status": NO_GPU if spec in GPU_BACKENDS and not gpu_present else NOT_AVAILABLE,
                "reason": reason,
            }
            continue
        modes = _mode_status(spec)
        if modes["float16"] is not None:
            report["step"][spec] = {"status": NOT_AVAILABLE, "reason": modes["float16"]}
            continue
        runnable = [m for m, why in modes.items() if why is None]
        cells = _grid(spec, runnable, batches, hiddens, budget_s, max_step_s, max_repeats)
        report["step"][spec] = {
            "status": "measured",
            "modes": runnable,
            "unavailable modes": {m: why for m, why in modes.items() if why is not None},
            "cells": cells,
        }
        cell = cells.get("hidden 50", {}).get("batch 100", {})
        mnist_step_s[spec] = {
            m: r["median"] / 1e3 for m, r in cell.items() if not r.get("estimated")
        }
    report["pytorch_amp"] = _amp_reference(
        report, status, gpu_present, amp_size, budget_s, max_repeats
    )
    report["memory"] = memory_table(batches, hiddens)
    report["mnist5k"] = {}
    for spec, entry in report["step"].items():
        if entry["status"] != "measured":
            report["mnist5k"][spec] = {"status": entry["status"], "reason": entry["reason"]}
            continue
        if epochs <= 0:
            report["mnist5k"][spec] = {"status": "not measured", "reason": "epochs=0"}
            continue
        modes = ["float32"] + [m for m in entry["modes"] if m in MIXED]
        report["mnist5k"][spec] = _mnist(spec, modes, epochs, mnist_budget_s, mnist_step_s[spec])
    report["notes"] = _notes(report)
    return report


def _amp_reference(
    report: dict[str, Any],
    status: dict[str, str | None],
    gpu_present: bool,
    size: tuple[int, int],
    budget_s: float,
    max_repeats: int,
) -> dict[str, Any]:
    """PyTorch AMP beside xpnn's float32 and mixed16 on each GPU backend (GPU only)."""
    if not gpu_present:
        return {"status": NO_GPU}
    if status.get("torch:cuda") is not None:
        return {"status": NOT_AVAILABLE, "reason": f"torch:cuda: {status.get('torch:cuda')}"}
    return amp_reference(
        [s for s in GPU_BACKENDS if report["step"].get(s, {}).get("status") == "measured"],
        "cuda",
        size,
        budget_s,
        max_repeats,
    )


def amp_reference(
    specs: Sequence[str],
    device: str,
    size: tuple[int, int] = (8192, 1000),
    budget_s: float = 1.5,
    max_repeats: int = 5,
) -> dict[str, Any]:
    """PyTorch float32 and AMP on ``device`` beside xpnn's float32 and mixed16 on ``specs``.

    One interleaved measurement; ``"ratio to PyTorch AMP float16"`` is each
    median over that reference's.
    """
    batch, hidden = size
    x_host, t_host = _batch(batch, seed=7)
    candidates = _torch_amp_candidates(device, x_host, t_host, hidden)
    syncs = [_sync_for(s) for s in specs] + [_sync_for(f"torch:{device}")]
    for spec in specs:
        for mode in ("float32", "mixed16"):
            candidates[f"xpnn {spec} {mode}"] = _step_candidate(spec, mode, x_host, t_host, hidden)

    def sync() -> None:
        for s in syncs:
            if s is not None:
                s()

    timed = _measure_budget(candidates, budget_s, max_repeats, sync)
    reference = "PyTorch AMP float16 (autocast + GradScaler)"
    base = timed[reference]["median"]
    results: dict[str, Any] = {"status": "measured", "batch": batch, "hidden": hidden}
    for name, r in timed.items():
        results[name] = {**_to_ms(r), "ratio to PyTorch AMP float16": r["median"] / base}
    return results


# ------------------------------------------------------------------ report


def _ratio_text(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x" if ratio < 100 else f"{ratio:.0f}x"


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _cell_text(result: dict[str, Any]) -> str:
    if result["estimated"]:
        return f"~{_ms(result['median'])} est. {_ratio_text(result['ratio to float32'])}"
    return (
        f"{_ms(result['median'])} [{_ms(result['min'])}-{_ms(result['max'])}]"
        f" {_ratio_text(result['ratio to float32'])}"
    )


def format_precision(result: dict[str, Any]) -> list[str]:
    """The precision case as plain-text tables (lines)."""
    lines = [
        "  step time, ms: median [min-max] and time / float32's (same cell, side by side);",
        f"  ~ est.: estimated, not run (linear in the batch; steps over "
        f"{result['settings']['max_step_s (longer: estimated)']:g} s)",
    ]
    cpu = result.get("cpu")
    if cpu:
        flags = " ".join(f if on else f"-{f}" for f, on in cpu["flags"].items())
        lines.append(f"  cpu: {cpu['model']}; flags: {flags}")
        if "torch capability" in cpu:
            lines[-1] += f"; torch: {cpu['torch capability']}"
    for spec, entry in result["step"].items():
        if entry["status"] != "measured":
            lines.append(f"  {spec}: {entry['status']}: {entry.get('reason', '')}")
            continue
        modes = entry["modes"]
        lines.append(f"  {spec}:")
        lines.append(f"    {'hidden, batch':<14}{''.join(f'{m:<30}' for m in modes)}".rstrip())
        for hidden, row in entry["cells"].items():
            for batch, cell in row.items():
                label = f"{hidden.split()[1]}, {batch.split()[1]}"
                cells = "".join(f"{_cell_text(cell[m]):<29} " for m in modes)
                lines.append(f"    {label:<14}{cells}".rstrip())
        for mode, why in entry["unavailable modes"].items():
            lines.append(f"    {mode}: not available: {why}")
    amp = result["pytorch_amp"]
    if amp.get("status") != "measured":
        lines.append(f"  PyTorch AMP reference: {amp['status']} {amp.get('reason', '')}".rstrip())
    else:
        lines.append(f"  PyTorch AMP reference, batch {amp['batch']}, hidden {amp['hidden']}:")
        for name, r in amp.items():
            if isinstance(r, dict):
                lines.append(
                    f"    {name:<46} {r['median']:.4g} [{r['min']:.4g}-{r['max']:.4g}]"
                    f"  {r['ratio to PyTorch AMP float16']:.3g}x AMP float16"
                )
    memory = result["memory"]
    lines.append(f"  memory, {memory['unit']}: parameters (+ grads) / activations / total")
    for hidden, row in memory["table"].items():
        for batch, entry in row.items():
            label = f"{hidden.split()[1]}, {batch.split()[1]}"
            cells = "".join(
                f"{name.split()[0]} {v['parameters']:.3g}/{v['activations']:.3g}/{v['total']:.3g}  "
                for name, v in entry.items()
            )
            lines.append(f"    {label:<14}{cells}".rstrip())
    lines.append("  mnist5k, TwoLayerNet(784, 50, 10), SGD(lr=0.1), batch 100, same seed:")
    for spec, entry in result["mnist5k"].items():
        if "status" in entry:
            lines.append(f"    {spec}: {entry['status']}: {entry.get('reason', '')}")
            continue
        for mode, r in entry.items():
            if not isinstance(r, dict):
                continue
            text = f"    {spec:<10} {mode:<11} test accuracy {r['test accuracy']:.4f}"
            if "difference (points)" in r:
                text += f" ({r['difference (points)']:+.2f} points)"
            if "skipped steps" in r:
                if r["skipped steps"] is None:
                    text += ", no loss scaling"
                else:
                    text += f", skipped {r['skipped steps']}, final scale {r['final loss scale']:g}"
            text += f", loss {r['final loss']:.4f}, {r['seconds']:.1f} s ({entry['epochs']} epochs)"
            lines.append(text)
    lines += [f"  note: {note}" for note in result["notes"]]
    return lines

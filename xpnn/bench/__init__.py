"""Benchmarks: xpnn against the textbook code and PyTorch eager, side by side.

``xpnn bench`` (and ``nox -s bench``) runs each case with all its candidates
in one process, interleaved (repeat r runs every candidate once before repeat
r + 1 starts), and reports the median time per unit with min and max, and the
ratios to the references. Targets are ratios, never absolute times.

Cases:

* ``step``: one training step of TwoLayerNet(784, 50, 10), batch 100, SGD,
  mini-batch sampled from a 60,000 x 784 float32 data set. Candidates: xpnn's
  bare step, xpnn's ``Trainer.fit`` loop per iteration, the textbook step
  (the book's train_neuralnet.py computed as the book computes it: float64
  weights, float32 images, one-hot labels, ``np.dot``, softmax then
  cross-entropy, a second forward pass to log the loss; see TextbookNet),
  a tidied variant of it for information, and PyTorch eager
  (nn.Linear/Sigmoid, CrossEntropyLoss, SGD) when torch is installed.
* ``numgrad``: ``TwoLayerNet.numerical_gradient`` on a batch of 100 against
  the textbook one-element-at-a-time loop (timed on a sample of elements and
  scaled to all of them; the sampled elements are also compared).
* ``scaling``: time per sample for batch sizes 32 ... 8192 and hidden sizes
  50 ... 1000.
* ``memory``: peak resident memory of a training run on a 60,000 x 784
  float32 data set, in a fresh subprocess.
* ``gpu``: on a CUDA machine, CuPy against PyTorch CUDA eager at batch 100,
  1024 and 8192, and NumPy against CuPy.
* ``precision``: bit precision (vol. 2, section 1.5): float32, float16 and
  mixed precision side by side (:mod:`xpnn.bench.precision`). It takes
  minutes (NumPy's float16 has no BLAS), so a plain ``xpnn bench`` leaves it
  out (:data:`DEFAULT_CASES`): run ``xpnn bench precision``.
* ``conv``: a training step of the book's SimpleConvNet and DeepConvNet
  (vol. 1, ch. 7-8) at batch 100: xpnn on NumPy against the book's
  algorithm (float64 im2col, re-typed from the book) and PyTorch CPU eager,
  plus CuPy against PyTorch CUDA on a GPU, and a check that a step
  allocates no column- or parameter-sized array (:mod:`xpnn.bench.conv`).
  About 40 s on two quiet cores, minutes on busy ones (the book's DeepConvNet
  takes over 1 s a step): not in :data:`DEFAULT_CASES`; run ``xpnn bench conv``.
* ``words``: one CBOW training iteration at the book's vol. 2 ch. 4 settings
  (V 10,000, H 100, window 5, batch 100, 5 negatives, Adam): xpnn on NumPy
  and on PyTorch against the book's algorithm (re-typed, with its sampler
  loop and ``remove_duplicate``) and PyTorch eager, per part (sampler,
  forward, backward, update), with the dense-update floor
  (:mod:`xpnn.bench.words`). About a minute: not in :data:`DEFAULT_CASES`;
  run ``xpnn bench words``.
* ``rnn``: one RNN language model training iteration at the book's vol. 2
  ch. 5-6 settings (batch 20, time 35, V 10,000, ``clip_grads`` 0.25, SGD)
  for Rnnlm 100, Rnnlm 650 and BetterRnnlm 650: xpnn on NumPy and on
  PyTorch against the book's algorithm (re-typed) and PyTorch eager
  (``nn.LSTM`` and the book's per-step loop), per part, with the TimeAffine
  and softmax floor (:mod:`xpnn.bench.rnn`). Minutes: not in
  :data:`DEFAULT_CASES`; run ``xpnn bench rnn``.
* ``seq2seq``: one seq2seq training iteration at the book's vol. 2 ch. 7-8
  settings (batch 128, wordvec 16, Adam, ``clip_grads`` 5.0) for
  PeekySeq2seq (hidden 128, the addition data's shapes) and AttentionSeq2seq
  (hidden 256, the date data's): xpnn on NumPy and on PyTorch against the
  book's algorithm (re-typed) and PyTorch eager (``nn.LSTM``, the attention
  by hand), per part, with the matrix-product floor
  (:mod:`xpnn.bench.seq2seq`). About 90 s: not in :data:`DEFAULT_CASES`;
  run ``xpnn bench seq2seq``.

The report also records the machine, including the thread settings of the CPU
libraries (:func:`thread_settings`): on a busy machine they can change a
timing several times over. Every case runs under one thread limit
(``xpnn bench --threads N``; without it :func:`~xpnn.backend.threads.default_threads`:
1 on 2 CPUs or fewer, else ``min(4, CPUs)``), for every candidate alike (the
memory case's subprocess too), and the report records the limit, what was
asked and the default (``machine.thread_limit``, and the header's
``threads:`` line).

Host-side NumPy appears here on purpose: the textbook reference is NumPy code.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn
from xpnn.bench.conv import bench_conv, format_conv
from xpnn.bench.precision import bench_precision, format_precision
from xpnn.bench.rnn import bench_rnn, format_rnn
from xpnn.bench.seq2seq import bench_seq2seq, format_seq2seq
from xpnn.bench.words import bench_words, format_words

__all__ = ["main", "run", "thread_limit", "thread_settings"]

N_DATA, D_IN, HIDDEN, CLASSES, BATCH, LR = 60_000, 784, 50, 10, 100, 0.1
TEXTBOOK = "textbook (book's code)"
TIDIED = "textbook, tidied (info only)"
FLOOR = "bare NumPy, hand-fused (info only)"

#: The environment variables that set the CPU libraries' thread counts (read
#: when a library loads): OpenMP (libgomp, PyTorch's intra-op pool, OpenMP
#: builds of OpenBLAS), OpenBLAS (NumPy's wheels) and MKL.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# ------------------------------------------------------------------ timing


def _measure(
    candidates: dict[str, Callable[[], None]],
    repeats: int,
    inner: int,
    sync: Callable[[], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Median/min/max seconds per call of each candidate, interleaved."""
    for fn in candidates.values():  # warm up: caches, buffers, lazy imports
        for _ in range(max(3, inner // 5)):
            fn()
    if sync:
        sync()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            # Let the previous library's worker threads (OpenBLAS, OpenMP) stop
            # spinning, so they do not steal the cores from this candidate.
            time.sleep(0.05)
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            if sync:
                sync()
            times[name].append((time.perf_counter() - start) / inner)
    return {
        name: {"median": statistics.median(ts), "min": min(ts), "max": max(ts)}
        for name, ts in times.items()
    }


def _data(n: int = N_DATA, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, D_IN), dtype=np.float32), rng.integers(0, CLASSES, n)


# ------------------------------------------------------- textbook reference


class TextbookNet:
    """The book's chapter-4 two-layer net, computed the way the book computes it.

    Written from the algorithm of the book's ``ch04/two_layer_net.py``,
    ``common/functions.py`` and ``ch04/train_neuralnet.py``, including what
    makes it slow, because that is what a reader runs:

    * weights are float64 (``0.01 * randn``); the images are float32, as the
      book's ``load_mnist(normalize=True)`` returns them, so every ``np.dot``
      with the input first converts the batch to float64;
    * labels are one-hot float64 rows (``one_hot_label=True``);
    * ``sigmoid_grad(a)`` is ``(1 - sigmoid(a)) * sigmoid(a)``, two more
      sigmoids of the hidden layer in the backward pass;
    * ``softmax`` takes ``exp`` twice, and ``cross_entropy_error`` turns the
      one-hot rows back into indices with ``argmax``;
    * the training loop logs the loss with a second forward pass.
    """

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": 0.01 * rng.standard_normal((D_IN, HIDDEN)),
            "b1": np.zeros(HIDDEN),
            "W2": 0.01 * rng.standard_normal((HIDDEN, CLASSES)),
            "b2": np.zeros(CLASSES),
        }

    @staticmethod
    def _sigmoid(a):
        return 1 / (1 + np.exp(-a))

    @staticmethod
    def _softmax(a):
        a = a - np.max(a, axis=-1, keepdims=True)
        return np.exp(a) / np.sum(np.exp(a), axis=-1, keepdims=True)

    def predict(self, x):
        z1 = self._sigmoid(np.dot(x, self.params["W1"]) + self.params["b1"])
        return self._softmax(np.dot(z1, self.params["W2"]) + self.params["b2"])

    def loss(self, x, t):
        y = self.predict(x)
        if t.size == y.size:  # one-hot rows back to class indices
            t = t.argmax(axis=1)
        return -np.sum(np.log(y[np.arange(y.shape[0]), t] + 1e-7)) / y.shape[0]

    def gradient(self, x, t):
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        n = x.shape[0]
        a1 = np.dot(x, W1) + b1
        z1 = self._sigmoid(a1)
        y = self._softmax(np.dot(z1, W2) + b2)
        dy = (y - t) / n
        da1 = np.dot(dy, W2.T)
        dz1 = (1.0 - self._sigmoid(a1)) * self._sigmoid(a1) * da1
        return {
            "W1": np.dot(x.T, dz1),
            "b1": np.sum(dz1, axis=0),
            "W2": np.dot(z1.T, dy),
            "b2": np.sum(dy, axis=0),
        }


class TidiedTextbookNet(TextbookNet):
    """The textbook net with three easy fixes, for comparison only.

    The data set is converted to float64 once (376 MB more memory), labels
    are integers, and the sigmoid is computed once. Not the reference the
    targets use: no reader of the book runs this.
    """

    def loss(self, x, t):
        y = self.predict(x)
        return -np.sum(np.log(y[np.arange(y.shape[0]), t] + 1e-7)) / y.shape[0]

    def gradient(self, x, t):
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        n = x.shape[0]
        z1 = self._sigmoid(np.dot(x, W1) + b1)
        y = self._softmax(np.dot(z1, W2) + b2)
        dy = y.copy()
        dy[np.arange(n), t] -= 1
        dy /= n
        dz1 = (1 - z1) * z1 * np.dot(dy, W2.T)
        return {
            "W1": np.dot(x.T, dz1),
            "b1": np.sum(dz1, axis=0),
            "W2": np.dot(z1.T, dy),
            "b2": np.sum(dy, axis=0),
        }


def _textbook_step(net: TextbookNet, x: np.ndarray, t: np.ndarray, seed: int) -> Callable[[], None]:
    """The book's train_neuralnet.py loop body: sample, gradient, update, log the loss."""
    rng = np.random.default_rng(seed)

    def step():
        batch_mask = rng.choice(x.shape[0], BATCH)
        xb, tb = x[batch_mask], t[batch_mask]
        grads = net.gradient(xb, tb)
        for key in ("W1", "b1", "W2", "b2"):
            net.params[key] -= LR * grads[key]
        net.loss(xb, tb)  # the book logs the loss with a second forward pass

    return step


def _floor_step(x: np.ndarray, t: np.ndarray, seed: int) -> Callable[[], None]:
    """The step as bare NumPy calls, hand-fused, for information: what is left to gain.

    No layers, no checks, no other backend: one flat parameter buffer and one
    flat gradient buffer (the update is two calls), Fortran-ordered scores
    (row reductions over 10 columns run down contiguous columns), batches
    taken into a buffer from a per-epoch permutation. Same initialisation
    scale, same maths as xpnn's step.
    """
    n, d, h, c = BATCH, D_IN, HIDDEN, CLASSES
    rng = np.random.default_rng(seed)
    params = np.zeros(d * h + h + h * c + c, np.float32)
    grads, scratch = np.empty_like(params), np.empty_like(params)
    sizes = np.cumsum([0, d * h, h, h * c, c])
    W1, b1, W2, b2 = (params[a:b] for a, b in itertools.pairwise(sizes))
    gW1, gb1, gW2, gb2 = (grads[a:b] for a, b in itertools.pairwise(sizes))
    W1, gW1, W2, gW2 = W1.reshape(d, h), gW1.reshape(d, h), W2.reshape(h, c), gW2.reshape(h, c)
    W1[...] = 0.01 * rng.standard_normal((d, h))
    W2[...] = 0.01 * rng.standard_normal((h, c))
    xb, tb = np.empty((n, d), np.float32), np.empty(n, t.dtype)
    a1, z, dz = (np.empty((n, h), np.float32) for _ in range(3))
    s = np.empty((n, c), np.float32, order="F")
    rows = np.arange(n)
    inv, lr = np.float32(1 / n), np.float32(LR)
    state = {"order": rng.permutation(x.shape[0]), "at": 0}

    def step():
        at = state["at"]
        if at + n > x.shape[0]:
            state["order"], at = rng.permutation(x.shape[0]), 0
        idx = state["order"][at : at + n]
        state["at"] = at + n
        np.take(x, idx, axis=0, out=xb, mode="wrap")  # valid indices; "wrap" writes in place
        np.take(t, idx, out=tb, mode="wrap")
        np.add(np.matmul(xb, W1, out=a1), b1, out=a1)
        np.multiply(a1, 0.5, out=z)
        np.tanh(z, out=z)
        np.multiply(z, 0.5, out=z)
        np.add(z, 0.5, out=z)  # sigmoid
        np.add(np.matmul(z, W2, out=s), b2, out=s)
        np.subtract(s, np.maximum.reduce(s, axis=1, keepdims=True), out=s)
        np.exp(s, out=s)
        np.multiply(s, inv / np.add.reduce(s, axis=1, keepdims=True), out=s)
        s[rows, tb] -= inv  # (softmax - one_hot) / n
        np.matmul(z.T, s, out=gW2)
        np.add.reduce(s, axis=0, out=gb2)
        np.matmul(s, W2.T, out=dz)
        np.subtract(1, z, out=a1)
        np.multiply(a1, z, out=a1)
        np.multiply(dz, a1, out=dz)
        np.matmul(xb.T, dz, out=gW1)
        np.add.reduce(dz, axis=0, out=gb1)
        np.subtract(params, np.multiply(grads, lr, out=scratch), out=params)

    step.params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}  # type: ignore[attr-defined]
    return step


# ------------------------------------------------------------------- cases


def bench_step(repeats: int = 15, inner: int = 50) -> dict[str, Any]:
    """One SGD step of 784-50-10 at batch 100, sampled from 60,000 x 784."""
    x_host, t_host = _data()
    results: dict[str, Any] = {"unit": "ms/step"}
    candidates: dict[str, Callable[[], None]] = {}
    with xpnn.use_backend("numpy"):
        x, t = xpnn.asarray(x_host), xpnn.asarray(t_host)
        net = xpnn.TwoLayerNet(D_IN, HIDDEN, CLASSES, seed=0)
        opt = xpnn.SGD(lr=LR)
        rng = xpnn.default_rng(1)
        xp = xpnn.get_namespace(x)

        def xpnn_step():
            idx = rng.choice(N_DATA, BATCH)
            grads = net.gradient(xp.take(x, idx, axis=0), xp.take(t, idx, axis=0))
            opt.update(net.params, grads)

        candidates["xpnn"] = xpnn_step
        fit_net = xpnn.TwoLayerNet(D_IN, HIDDEN, CLASSES, seed=0)
        trainer = xpnn.Trainer(fit_net, xpnn.SGD(lr=LR))
        iters = inner

        def xpnn_fit():  # `inner` iterations through Trainer.fit, per call
            trainer.fit(
                x[: iters * BATCH, ...],
                t[: iters * BATCH],
                max_epoch=1,
                batch_size=BATCH,
                eval_interval=iters,
                progress=False,
                verbose=False,
            )

    one_hot = np.zeros((N_DATA, CLASSES))  # the book's one_hot_label=True labels
    one_hot[np.arange(N_DATA), t_host] = 1.0
    candidates[TEXTBOOK] = _textbook_step(TextbookNet(), x_host, one_hot, seed=2)
    candidates[TIDIED] = _textbook_step(
        TidiedTextbookNet(), x_host.astype(np.float64), t_host, seed=2
    )
    candidates[FLOOR] = _floor_step(x_host, t_host, seed=3)
    torch_step = _torch_step("cpu", x_host, t_host)
    if torch_step is not None:
        candidates["PyTorch eager"] = torch_step
    timed = _measure(candidates, repeats, inner)
    # Trainer.fit: `inner` iterations per call, so per-iteration = time / inner.
    fit_time = _measure({"fit": xpnn_fit}, repeats, 1)["fit"]
    timed["xpnn Trainer.fit"] = {k: v / iters for k, v in fit_time.items()}
    base = timed["xpnn"]["median"]
    for name, r in timed.items():
        results[name] = {k: v * 1e3 for k, v in r.items()}
        results[name]["xpnn speed-up"] = r["median"] / base
    results["targets"] = {
        "PyTorch eager / xpnn >= 2": (
            timed["PyTorch eager"]["median"] / base if "PyTorch eager" in timed else None
        ),
        "textbook / xpnn >= 3": timed[TEXTBOOK]["median"] / base,
        "Trainer.fit / bare step <= 1.1": timed["xpnn Trainer.fit"]["median"] / base,
    }
    return results


def _torch_step(
    device: str, x_host: np.ndarray, t_host: np.ndarray, batch: int = BATCH, hidden: int = HIDDEN
) -> Callable[[], None] | None:
    try:
        import torch
    except ImportError:
        return None
    dev = torch.device(device)
    tx = torch.from_numpy(x_host).to(dev)
    tt = torch.from_numpy(t_host).to(dev)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(D_IN, hidden), torch.nn.Sigmoid(), torch.nn.Linear(hidden, CLASSES)
    ).to(dev)
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    n = tx.shape[0]

    def step():
        idx = torch.randint(0, n, (batch,), device=dev)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(tx[idx]), tt[idx])
        loss.backward()
        opt.step()

    return step


def bench_numgrad(sample: int = 400) -> dict[str, Any]:
    """TwoLayerNet.numerical_gradient vs the textbook loop (float64, batch 100).

    The textbook loop perturbs one weight at a time and runs the whole forward
    pass twice (the book's ``numerical_gradient`` with ``loss_W``); it is
    timed on a random sample of elements and scaled to all 39,760, and its
    central differences on the sample are compared with xpnn's.
    """
    x_host, t_host = _data(BATCH, seed=3)
    with xpnn.use_backend("numpy", dtype="float64"):
        net = xpnn.TwoLayerNet(D_IN, HIDDEN, CLASSES, seed=4)
        x, t = xpnn.asarray(x_host, dtype="float64"), xpnn.asarray(t_host)
        start = time.perf_counter()
        fast = net.numerical_gradient(x, t)
        fast_time = time.perf_counter() - start
        total = sum(p.size for p in net.params.values())
        rng = np.random.default_rng(5)
        h = 1e-4
        diffs, elapsed, counted = [], 0.0, 0
        for key, p in net.params.items():
            k = max(1, round(sample * p.size / total))
            chosen = rng.choice(p.size, size=min(k, p.size), replace=False)
            start = time.perf_counter()
            slow = []
            for i in chosen:  # the book's loop, element by element
                idx = np.unravel_index(i, p.shape)
                saved = p[idx]
                p[idx] = saved + h
                f1 = float(net.loss(x, t))
                p[idx] = saved - h
                f2 = float(net.loss(x, t))
                p[idx] = saved
                slow.append((f1 - f2) / (2 * h))
            elapsed += time.perf_counter() - start
            counted += len(chosen)
            diffs.append(np.max(np.abs(np.array(slow) - xpnn.to_numpy(fast[key]).ravel()[chosen])))
    textbook_time = elapsed / counted * total
    return {
        "unit": "s per gradient (784-50-10, batch 100)",
        "xpnn": fast_time,
        "textbook loop (estimated from a sample)": textbook_time,
        "sampled elements": counted,
        "max abs difference on the sample": float(max(diffs)),
        "targets": {
            "textbook / xpnn >= 100": textbook_time / fast_time,
            "max abs difference <= 1e-8": float(max(diffs)),
        },
    }


def bench_scaling(
    batches=(32, 128, 512, 2048, 8192), hiddens=(50, 200, 1000), repeats: int = 5
) -> dict[str, Any]:
    """Microseconds per sample of a training step for batch x hidden sizes."""
    x_host, t_host = _data(16_384, seed=6)
    table: dict[str, dict[str, float]] = {}
    with xpnn.use_backend("numpy"):
        x, t = xpnn.asarray(x_host), xpnn.asarray(t_host)
        for hidden in hiddens:
            row = {}
            for batch in batches:
                net = xpnn.TwoLayerNet(D_IN, hidden, CLASSES, seed=0)
                opt = xpnn.SGD(lr=LR)
                xb, tb = x[:batch, ...], t[:batch]

                def step(net=net, opt=opt, xb=xb, tb=tb):
                    opt.update(net.params, net.gradient(xb, tb))

                inner = max(2, 2000 // batch)
                r = _measure({"s": step}, repeats, inner)["s"]
                row[str(batch)] = r["median"] / batch * 1e6
            table[f"hidden {hidden}"] = row
    return {"unit": "us per sample", "table": table}


_MEMORY_SCRIPT = r"""
import resource
def peak_rss():
    # VmHWM belongs to this process image; ru_maxrss would carry over the
    # parent's peak across fork and exec on Linux.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
import numpy as np, xpnn
base = peak_rss()
rng = np.random.default_rng(0)
x = xpnn.asarray(rng.random((60000, 784), dtype=np.float32))
t = xpnn.asarray(rng.integers(0, 10, 60000))
net = xpnn.TwoLayerNet(784, 50, 10, seed=0)
xpnn.Trainer(net, xpnn.SGD(lr=0.1)).fit(x, t, max_epoch=1, batch_size=100,
    eval_interval=100, progress=False, verbose=False)
print(base, peak_rss(), x.nbytes)
"""


def bench_memory() -> dict[str, Any]:
    """Peak RSS of one epoch of training on 60,000 x 784 float32, in a subprocess."""
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, check=True
    )
    base, peak, data = (int(v) for v in out.stdout.split())
    return {
        "unit": "MB",
        "interpreter and imports": base / 1e6,
        "data set": data / 1e6,
        "peak": peak / 1e6,
        "peak - baseline": (peak - base) / 1e6,
        "targets": {"(peak - baseline) / data set < 2": (peak - base) / data},
    }


def _fit_iterations(x: Any, t: Any, batch: int, iters: int, graph: bool) -> Callable[[], None]:
    """A call of Trainer.fit running about ``iters`` iterations (its count in .iterations)."""
    per_epoch = min(iters, N_DATA // batch)
    epochs = -(-iters // per_epoch)
    n = per_epoch * batch
    trainer = xpnn.Trainer(xpnn.TwoLayerNet(D_IN, HIDDEN, CLASSES, seed=0), xpnn.SGD(lr=LR))

    def fit():
        trainer.fit(
            x[:n, ...],
            t[:n],
            max_epoch=epochs,
            batch_size=batch,
            eval_interval=per_epoch,
            progress=False,
            verbose=False,
            cuda_graph=graph,
        )

    fit.iterations = epochs * per_epoch  # type: ignore[attr-defined]
    return fit


def bench_gpu(repeats: int = 5, iters: int = 200) -> dict[str, Any] | None:
    """CuPy vs PyTorch CUDA eager and vs NumPy, per batch size (None without CuPy).

    Every candidate runs ``iters`` iterations per call, so the bare steps and
    the Trainer.fit loops (eager and CUDA graph, which include the per-epoch
    shuffling and one loss read per epoch) are interleaved alike.
    """
    if "cupy:0" not in xpnn.available_backends():
        return None
    import cupy

    x_host, t_host = _data()
    results: dict[str, Any] = {"unit": "ms/step"}
    targets: dict[str, Any] = {}
    for batch in (100, 1024, 8192):
        candidates = {}
        for spec in ("numpy", "cupy"):
            with xpnn.use_backend(spec):
                x, t = xpnn.asarray(x_host), xpnn.asarray(t_host)
                net = xpnn.TwoLayerNet(D_IN, HIDDEN, CLASSES, seed=0)
                opt = xpnn.SGD(lr=LR)
                rng = xpnn.default_rng(1)
                xp = xpnn.get_namespace(x)
                # 16 index sets drawn ahead, cycled: the step itself is measured.
                pool = itertools.cycle([rng.integers(0, N_DATA, batch) for _ in range(16)])

                def steps(net=net, opt=opt, xp=xp, x=x, t=t, pool=pool):
                    for _ in range(iters):
                        idx = next(pool)
                        grads = net.gradient(xp.take(x, idx, axis=0), xp.take(t, idx, axis=0))
                        opt.update(net.params, grads)

                candidates[f"xpnn {spec}"] = steps
                if spec == "cupy":
                    for graph in (False, True):
                        name = "xpnn cupy Trainer.fit" + (", CUDA graph" if graph else "")
                        candidates[name] = _fit_iterations(x, t, batch, iters, graph)
        torch_step = _torch_step("cuda", x_host, t_host, batch=batch)
        if torch_step is not None:

            def torch_steps(step=torch_step):
                for _ in range(iters):
                    step()

            candidates["PyTorch CUDA eager"] = torch_steps

        def sync():
            cupy.cuda.runtime.deviceSynchronize()

        timed = _measure(candidates, repeats, 1, sync=sync)
        base = timed["xpnn cupy"]["median"] / iters
        row = {}
        for name, r in timed.items():
            count = getattr(candidates[name], "iterations", iters)
            per = {k: v / count for k, v in r.items()}
            row[name] = {
                **{k: v * 1e3 for k, v in per.items()},
                "cupy speed-up": per["median"] / base,
            }
        results[f"batch {batch}"] = row
        if "PyTorch CUDA eager" in row:
            torch_ms = row["PyTorch CUDA eager"]["median"]
            targets[f"batch {batch}: PyTorch / xpnn cupy >= 1"] = (
                torch_ms / row["xpnn cupy"]["median"]
            )
            targets[f"batch {batch}: PyTorch / xpnn Trainer.fit CUDA graph >= 1"] = (
                torch_ms / row["xpnn cupy Trainer.fit, CUDA graph"]["median"]
            )
    results["targets"] = targets
    return results


# ------------------------------------------------------------------ report

CASES = {
    "step": bench_step,
    "numgrad": bench_numgrad,
    "scaling": bench_scaling,
    "memory": bench_memory,
    "gpu": bench_gpu,
    "precision": bench_precision,
    "conv": bench_conv,
    "words": bench_words,
    "rnn": bench_rnn,
    "seq2seq": bench_seq2seq,
}

#: The cases a plain ``xpnn bench`` runs: all but the long ``precision``, ``conv``, ``words``,
#: ``rnn`` and ``seq2seq``.
DEFAULT_CASES = ("step", "numgrad", "scaling", "memory", "gpu")


def _steady_heap() -> bool:
    """Keep glibc from handing temporaries' memory back to the OS (Linux/glibc only).

    The book's code allocates a 627 KB float64 copy of the batch in every
    ``np.dot`` with the float32 images. Whether glibc serves that from the
    heap or maps fresh pages (and takes 130 page faults per call) depends on
    what the process allocated before: the textbook step measured 0.73 ms
    in one process and 1.5 ms in another (importing PyTorch happens to give
    the fast layout). Fixed thresholds give every candidate the fast one, so
    the reference is as fast as it can be and the ratios do not depend on
    what else was imported. Returns whether it applied.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mmap_threshold, trim_threshold = -3, -1  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
        return bool(
            libc.mallopt(mmap_threshold, 32 << 20) and libc.mallopt(trim_threshold, 256 << 20)
        )
    except (OSError, AttributeError):
        return False


def thread_settings() -> dict[str, Any]:
    """How many threads the CPU libraries may use here, as far as can be seen.

    Nothing is imported to find out: PyTorch is asked only if it is already
    imported, and threadpoolctl only if it is installed. The environment
    variables are the user's, as they were before any ``--threads`` limit
    (:func:`xpnn.backend.threads.environment_before`); the thread pools and
    PyTorch's count are as they are now, under the limit.

    Returns:
        ``env``: each of :data:`THREAD_ENV` and its value (None when unset);
        ``cpu_count``: :func:`os.cpu_count`; ``affinity``: how many CPUs this
        process may run on (``len(os.sched_getaffinity(0))``, None where the
        platform has no affinity); ``torch``: ``torch.get_num_threads()``, or
        None when torch is not imported; ``threadpools``: threadpoolctl's
        ``threadpool_info()`` (one dict per loaded BLAS or OpenMP library,
        with ``internal_api`` and ``num_threads``), or None when threadpoolctl
        is not installed.
    """
    from xpnn.backend.threads import environment_before

    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on macOS or Windows
        affinity = None
    torch = sys.modules.get("torch")
    torch_threads = None
    if torch is not None and hasattr(torch, "get_num_threads"):
        torch_threads = int(torch.get_num_threads())
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pools = None
    else:
        pools = [dict(pool) for pool in threadpool_info()]
    return {
        "env": environment_before(THREAD_ENV),
        "cpu_count": os.cpu_count(),
        "affinity": affinity,
        "torch": torch_threads,
        "threadpools": pools,
    }


def _format_limit(limit: dict[str, Any]) -> str:
    """``limit 2 (--threads; the default here is 1, for 2 CPUs)``, for the header."""
    asked = "not given, the default" if limit["requested"] is None else "--threads"
    return (
        f"limit {limit['limit']} ({asked}; the default here is {limit['default']}, "
        f"for {limit['cpus']} CPUs)"
    )


def _format_threads(threads: dict[str, Any], limit: dict[str, Any] | None = None) -> str:
    """One line of :func:`thread_settings` (and the thread limit) for the report's header."""
    env = " ".join(f"{k}={'unset' if v is None else v}" for k, v in threads["env"].items())
    parts = [env, f"cpu_count {threads['cpu_count']}"]
    if limit is not None:
        parts.insert(0, _format_limit(limit))
    if threads.get("affinity") is not None:
        parts.append(f"affinity {threads['affinity']}")
    if threads.get("torch") is not None:
        parts.append(f"torch {threads['torch']}")
    pools = threads.get("threadpools")
    if pools is None:
        parts.append("threadpoolctl not installed")
    else:
        parts += [f"{p.get('internal_api')} {p.get('num_threads')}" for p in pools]
    return "threads: " + ", ".join(parts)


def thread_limit(threads: int | None) -> dict[str, Any]:
    """The report's record of the thread limit: ``limit``, ``requested``, ``default``.

    ``requested`` is ``--threads`` (None when not given), ``default`` the
    limit :func:`~xpnn.backend.threads.default_threads` picks on this
    machine, ``limit`` the one the cases ran with, and ``cpus`` the CPUs
    the default was picked for.
    """
    from xpnn.backend.threads import available_cpus, check_threads, default_threads

    default = default_threads()
    requested = None if threads is None else check_threads(threads, "--threads")
    return {
        "limit": default if requested is None else requested,
        "requested": requested,
        "default": default,
        "cpus": available_cpus(),
    }


def run(cases: list[str] | None = None, threads: int | None = None) -> dict[str, Any]:
    """Run the named cases (:data:`DEFAULT_CASES` by default); returns the results as a dict.

    Args:
        cases: The cases to run.
        threads: The CPU libraries' thread limit for all of them
            (:func:`xpnn.backend.threads.default_threads` if None); recorded
            in ``report["machine"]["thread_limit"]`` (:func:`thread_limit`).
    """
    from xpnn.backend.threads import limit_threads

    limit = thread_limit(threads)
    with limit_threads(limit["limit"]):
        return _run(cases, limit)


def _run(cases: list[str] | None, limit: dict[str, Any]) -> dict[str, Any]:
    """:func:`run`'s work, inside the thread limit."""
    steady = _steady_heap()
    report: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "packages": xpnn.info()["packages"],
            "glibc heap thresholds fixed": steady,
            "thread_limit": limit,
        }
    }
    for name in cases or [c for c in DEFAULT_CASES if c in CASES]:
        result = CASES[name]()
        if result is not None:
            report[name] = result
    # After the cases: the thread pools of the libraries they loaded are there now.
    report["machine"]["threads"] = thread_settings()
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    lines = [f"machine: {report['machine']['platform']}, Python {report['machine']['python']}"]
    if "threads" in report["machine"]:
        lines.append(
            _format_threads(report["machine"]["threads"], report["machine"].get("thread_limit"))
        )
    for case, result in report.items():
        if case == "machine":
            continue
        lines += ["", f"== {case} ({result.get('unit', '')})"]
        if case == "precision":
            lines += format_precision(result)
            continue
        if case == "conv":
            lines += format_conv(result)
            continue
        if case == "words":
            lines += format_words(result)
            continue
        if case == "rnn":
            lines += format_rnn(result)
            continue
        if case == "seq2seq":
            lines += format_seq2seq(result)
            continue
        for name, value in result.items():
            if name in ("unit", "targets"):
                continue
            if isinstance(value, dict) and "median" in value:
                ratio = {k: v for k, v in value.items() if "speed-up" in k}
                extra = "".join(f"  {k} {v:.2f}x" for k, v in ratio.items())
                lines.append(
                    f"  {name:<40} median {value['median']:.4g}  min {value['min']:.4g}"
                    f"  max {value['max']:.4g}{extra}"
                )
            elif isinstance(value, dict):
                lines.append(f"  {name}:")
                for k, v in value.items():
                    if isinstance(v, dict):
                        cells = "  ".join(f"{kk}: {vv:.3g}" for kk, vv in v.items())
                        lines.append(f"    {k:<22} {cells}")
                    else:
                        lines.append(f"    {k:<22} {v:.3g}")
            else:
                lines.append(
                    f"  {name:<40} {value:.4g}"
                    if isinstance(value, float)
                    else f"  {name:<40} {value}"
                )
        for target, value in (result.get("targets") or {}).items():
            shown = "n/a (torch not installed)" if value is None else f"{value:.3g}"
            lines.append(f"  target {target}: {shown}")
    return "\n".join(lines)


def main(
    cases: list[str] | None = None, json_path: str | None = "bench.json", threads: int | None = None
) -> int:
    """Run (with ``threads``, see :func:`run`), print the table, write the JSON; returns 0."""
    report = run(cases, threads=threads)
    print(format_report(report))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=2)
        print(f"\nJSON written to {json_path}")
    return 0

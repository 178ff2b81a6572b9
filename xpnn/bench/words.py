"""``xpnn bench words``: one CBOW training iteration (vol. 2, ch. 4), side by side.

The book's ch. 4 settings: vocabulary 10,000, hidden 100, window 5, batch 100,
5 negative samples, Adam (lr 0.001). The data are a synthetic Zipf-like corpus
(rank ``r`` drawn with probability proportional to ``1 / r``, every word at
least once, fixed seed) of about as many tokens as PTB's train split
(929,589); contexts and target as the book's ``create_contexts_target``, the
rows in one fixed shuffled order, 100 consecutive rows a batch, the same
batches for every candidate. Candidates, timed in one process, interleaved
(round r starts at candidate r, each timed repeat after a pause), as
:mod:`xpnn.bench.conv` does:

* **the book's algorithm** (NumPy, float32 weights as the book's ``astype('f')``):
  its ``Embedding`` (forward ``W[idx]``, backward ``np.add.at`` into a zeroed
  dW), ``EmbeddingDot``, ``SigmoidWithLoss``, ``UnigramSampler`` (the CPU
  path: per row, ``choice(V, 5, replace=False, p)`` after setting the target's
  ``p`` to 0), ``NegativeSamplingLoss``, ``CBOW``, ``Adam`` and the book
  Trainer's ``remove_duplicate`` every iteration, re-typed here
  (:class:`BookCBOW`); the book's code is not imported;
* **xpnn numpy** and **xpnn torch:cpu**: :class:`xpnn.models.word2vec.CBOW`,
  ``forward``, ``backward``, :class:`xpnn.Adam` ``update(model.params,
  model.grads)``;
* **PyTorch CPU eager**: two dense ``nn.Embedding`` (``sparse=False``), the
  same loss (``logsigmoid``), ``torch.optim.Adam`` (its default), negatives by
  ``torch.multinomial`` on the unigram^0.75 distribution **with replacement**
  (one call for the batch, the book's GPU path): the reference of the target;
  and, for information, **without replacement** and never the target (the
  book's CPU distribution, xpnn's), one ``multinomial`` over ``(N, V)`` weights;
* floors, for information: the dense Adam update alone over 2 x (V x H)
  float32 in NumPy in place (30 array passes), and a copy of four such
  arrays (8 passes, 32 MB, as much as Adam reads), from which the least
  time of any dense Adam (7 passes: read p, g, m, v, write p, m, v) is estimated;
* on a GPU: xpnn on CuPy and on torch:cuda, PyTorch CUDA eager and the book's
  CuPy mode (``cupyx.scatter_add``, samples with replacement), else "not measured".

Parts are timed inside the same iterations (``perf_counter`` between the
phases; on a GPU with a synchronisation at each, in a second pass): sampler
(the call to the sampler's ``get_negative_sample`` inside the forward pass,
through a timing proxy), forward (with the sampler, as the book does), forward
without it (the difference), backward, duplicate removal (the book only) and
update. Host-side NumPy appears here on purpose: the book's reference is NumPy.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn

__all__ = ["BookAdam", "BookCBOW", "bench_words", "book_remove_duplicate", "format_words"]

BOOK = "book's algorithm (NumPy)"
XPNN = "xpnn numpy"
XPNN_TORCH = "xpnn torch:cpu"
TORCH = "PyTorch CPU eager (multinomial with replacement)"
TORCH_NOREP = "PyTorch CPU eager, without replacement (info)"
FLOOR_ADAM = "floor: dense Adam alone, NumPy in place (info)"
FLOOR_COPY = "floor: copy of 4 x 2 x (V x H) float32 (info)"
NO_GPU = "not measured (no GPU here)"
NO_TORCH = "not measured (torch not installed)"
PAUSE_S = 0.3  # quiet before each timed repeat (OpenBLAS's idle threads spin ~0.1 s)
SETTINGS = {"vocab": 10_000, "hidden": 100, "window": 5, "batch": 100, "tokens": 929_589}
SAMPLE, POWER, LR = 5, 0.75, 0.001
#: (reference, xpnn path, least speed-up of the path over the reference).
TARGETS = ((BOOK, XPNN, 5.0), (TORCH, XPNN_TORCH, 1.0))
GPU_TARGETS = (
    ("PyTorch CUDA eager", "xpnn cupy", 1.0),
    ("PyTorch CUDA eager", "xpnn torch:cuda", 1.0),
)

# ------------------------------------------------------- the book's algorithm
# Re-typed from the book's common/layers.py, ch04/negative_sampling_layer.py,
# ch04/cbow.py, common/optimizer.py and common/trainer.py (MIT).


class _Embedding:
    def __init__(self, W, xp=np):
        self.params, self.grads, self.idx, self.xp = [W], [xp.zeros_like(W)], None, xp

    def forward(self, idx):
        (W,) = self.params
        self.idx = idx
        return W[idx]

    def backward(self, dout):
        (dW,) = self.grads
        dW[...] = 0
        if self.xp is np:
            np.add.at(dW, self.idx, dout)
        else:  # the book's CuPy mode: np.scatter_add, now cupyx.scatter_add
            import cupyx

            cupyx.scatter_add(dW, self.idx, dout)


class _EmbeddingDot:
    def __init__(self, W, xp=np):
        self.embed = _Embedding(W, xp)
        self.params, self.grads, self.cache = self.embed.params, self.embed.grads, None

    def forward(self, h, idx):
        target_W = self.embed.forward(idx)
        self.cache = (h, target_W)
        return (target_W * h).sum(axis=1)

    def backward(self, dout):
        h, target_W = self.cache
        dout = dout.reshape(dout.shape[0], 1)
        self.embed.backward(dout * h)
        return dout * target_W


class _SigmoidWithLoss:
    def __init__(self, xp=np):
        self.xp, self.y, self.t = xp, None, None

    def forward(self, x, t):
        xp = self.xp
        self.t = t
        self.y = 1 / (1 + xp.exp(-x))
        y = xp.c_[1 - self.y, self.y]  # the book's cross_entropy_error of the two columns
        return -xp.sum(xp.log(y[xp.arange(y.shape[0]), t] + 1e-7)) / y.shape[0]

    def backward(self, dout=1):
        return (self.y - self.t) * dout / self.t.shape[0]


class BookUnigramSampler:
    """The book's sampler: ``word_p`` = counts**power / sum (``np.bincount`` for its Counter loop).

    ``gpu=False``: the book's CPU path, a Python loop over the rows, each
    ``choice(V, size, replace=False, p)`` with the target's ``p`` set to 0;
    ``gpu=True``: its CuPy path, one ``choice(V, (N, size), replace=True,
    p=word_p)``. ``RandomState(seed)`` stands for the global ``np.random``.
    """

    def __init__(self, corpus, power, sample_size, xp=np, seed=0, gpu=False):
        self.sample_size, self.xp, self.gpu = sample_size, xp, gpu
        counts = np.bincount(np.asarray(corpus)).astype(np.float64)
        self.vocab_size = counts.shape[0]
        p = np.power(counts, power)
        self.word_p = xp.asarray(p / np.sum(p))
        self.rs = xp.random.RandomState(seed)

    def get_negative_sample(self, target):
        xp, batch_size = self.xp, target.shape[0]
        if self.gpu:
            size = (batch_size, self.sample_size)
            return self.rs.choice(self.vocab_size, size=size, replace=True, p=self.word_p)
        negative_sample = np.zeros((batch_size, self.sample_size), dtype=np.int32)
        for i in range(batch_size):
            p = self.word_p.copy()
            p[target[i]] = 0
            p /= p.sum()
            negative_sample[i, :] = self.rs.choice(
                self.vocab_size, size=self.sample_size, replace=False, p=p
            )
        return xp.asarray(negative_sample)


class BookNegativeSamplingLoss:
    def __init__(self, W, sampler, xp=np):
        self.sample_size, self.sampler, self.xp = sampler.sample_size, sampler, xp
        self.loss_layers = [_SigmoidWithLoss(xp) for _ in range(self.sample_size + 1)]
        self.embed_dot_layers = [_EmbeddingDot(W, xp) for _ in range(self.sample_size + 1)]
        self.params = [p for layer in self.embed_dot_layers for p in layer.params]
        self.grads = [g for layer in self.embed_dot_layers for g in layer.grads]

    def forward(self, h, target):
        xp, batch_size = self.xp, target.shape[0]
        negative_sample = self.sampler.get_negative_sample(target)
        score = self.embed_dot_layers[0].forward(h, target)
        loss = self.loss_layers[0].forward(score, xp.ones(batch_size, dtype=xp.int32))
        negative_label = xp.zeros(batch_size, dtype=xp.int32)
        for i in range(self.sample_size):
            score = self.embed_dot_layers[1 + i].forward(h, negative_sample[:, i])
            loss += self.loss_layers[1 + i].forward(score, negative_label)
        return loss

    def backward(self, dout=1):
        dh = 0
        for l0, l1 in zip(self.loss_layers, self.embed_dot_layers, strict=True):
            dh += l1.backward(l0.backward(dout))
        return dh


class BookCBOW:
    """The book's ``ch04/cbow.py``: ``0.01 * randn(V, H).astype('f')`` weights, listed per layer.

    ``xp`` and ``gpu`` select the book's CuPy mode; ``dtype`` (the book's
    ``'f'``) lets the tests compare in float64.
    """

    def __init__(
        self, vocab_size, hidden_size, window_size, corpus, seed=0, xp=np, gpu=False, dtype="f"
    ):
        rs = np.random.RandomState(seed)
        V, H = vocab_size, hidden_size
        self.W_in = xp.asarray(0.01 * rs.randn(V, H).astype(dtype))
        W_out = xp.asarray(0.01 * rs.randn(V, H).astype(dtype))
        self.in_layers = [_Embedding(self.W_in, xp) for _ in range(2 * window_size)]
        sampler = BookUnigramSampler(corpus, POWER, SAMPLE, xp, seed + 1, gpu)
        self.ns_loss = BookNegativeSamplingLoss(W_out, sampler, xp)
        layers = [*self.in_layers, self.ns_loss]
        self.params = [p for layer in layers for p in layer.params]
        self.grads = [g for layer in layers for g in layer.grads]

    def forward(self, contexts, target):
        h = 0
        for i, layer in enumerate(self.in_layers):
            h += layer.forward(contexts[:, i])
        h *= 1 / len(self.in_layers)
        return self.ns_loss.forward(h, target)

    def backward(self, dout=1):
        dout = self.ns_loss.backward(dout)
        dout *= 1 / len(self.in_layers)
        for layer in self.in_layers:
            layer.backward(dout)


def book_remove_duplicate(params, grads):
    """The book Trainer's ``remove_duplicate``: shared weights once, their gradients summed."""
    params, grads = params[:], grads[:]
    while True:
        find_flg = False
        L = len(params)
        for i in range(0, L - 1):
            for j in range(i + 1, L):
                if params[i] is params[j]:
                    grads[i] += grads[j]
                    find_flg = True
                    params.pop(j)
                    grads.pop(j)
                elif (
                    params[i].ndim == 2
                    and params[j].ndim == 2
                    and params[i].T.shape == params[j].shape
                    and bool((params[i].T == params[j]).all())
                ):
                    grads[i] += grads[j].T
                    find_flg = True
                    params.pop(j)
                    grads.pop(j)
                if find_flg:
                    break
            if find_flg:
                break
        if not find_flg:
            break
    return params, grads


class BookAdam:
    """The book's vol. 2 ``Adam`` (``m += (1 - beta1) * (g - m)``...), temporaries and all."""

    def __init__(self, lr=LR, beta1=0.9, beta2=0.999, xp=np):
        self.lr, self.beta1, self.beta2, self.iter, self.m, self.v, self.xp = (
            lr, beta1, beta2, 0, None, None, xp)  # fmt: skip

    def update(self, params, grads):
        xp = self.xp
        if self.m is None:
            self.m = [xp.zeros_like(p) for p in params]
            self.v = [xp.zeros_like(p) for p in params]
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2**self.iter) / (1.0 - self.beta1**self.iter)
        for i in range(len(params)):
            self.m[i] += (1 - self.beta1) * (grads[i] - self.m[i])
            self.v[i] += (1 - self.beta2) * (grads[i] ** 2 - self.v[i])
            params[i] -= lr_t * self.m[i] / (xp.sqrt(self.v[i]) + 1e-7)


# -------------------------------------------------------------------- data


def corpus_and_batches(vocab: int, tokens: int, window: int, seed: int = 0):
    """``(corpus, contexts, target)``: Zipf-like ids, rows in a fixed shuffled order."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1)
    corpus = np.concatenate([np.arange(vocab), rng.choice(vocab, tokens - vocab, p=p / p.sum())])
    rng.shuffle(corpus)
    m = tokens - 2 * window
    cols = [corpus[window + t : window + t + m] for t in range(-window, window + 1) if t != 0]
    order = rng.permutation(m)
    return corpus, np.stack(cols, axis=1)[order], corpus[window : window + m][order]


class _Batches:
    """The next ``batch`` rows of ``(contexts, target)`` on each call, cycling."""

    def __init__(self, contexts: Any, target: Any, batch: int):
        self.c, self.t, self.b, self.at = contexts, target, batch, 0
        self.n = int(target.shape[0]) // batch

    def __call__(self) -> tuple[Any, Any]:
        k, self.at = self.at * self.b, (self.at + 1) % self.n
        return self.c[k : k + self.b, ...], self.t[k : k + self.b]


# -------------------------------------------------------------- candidates


def _clock(sync: Callable[[], None] | None) -> Callable[[], float]:
    if sync is None:
        return time.perf_counter

    def clock():
        sync()
        return time.perf_counter()

    return clock


class _TimedSampler:
    """A sampler's proxy: each ``get_negative_sample``'s time is added to ``acc["sampler"]``."""

    def __init__(self, inner: Any, acc: dict[str, float], clock: Callable[[], float]):
        self._inner, self._acc, self._clock = inner, acc, clock

    def get_negative_sample(self, target: Any) -> Any:
        start = self._clock()
        out = self._inner.get_negative_sample(target)
        self._acc["sampler"] += self._clock() - start
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


Step = tuple[Callable[[], None], dict[str, float]]


def _phases(batches: _Batches, clock, acc, forward, backward, update, dedupe=None) -> Callable:
    def step():
        contexts, target = batches()
        t0 = clock()
        forward(contexts, target)
        t1 = clock()
        backward()
        t2 = clock()
        args = dedupe() if dedupe else ()
        t3 = clock()
        update(*args)
        t4 = clock()
        for name, dt in (("forward", t1 - t0), ("backward", t2 - t1), ("update", t4 - t3)):
            acc[name] += dt
        if dedupe:
            acc["duplicate removal"] += t3 - t2

    return step


def _book_step(data, sizes, sync=None, xp=np, gpu=False) -> Step:
    corpus, contexts, target = data
    model = BookCBOW(sizes["vocab"], sizes["hidden"], sizes["window"], corpus, 0, xp, gpu)
    acc = dict.fromkeys(("sampler", "forward", "backward", "duplicate removal", "update"), 0.0)
    clock = _clock(sync)
    model.ns_loss.sampler = _TimedSampler(model.ns_loss.sampler, acc, clock)
    opt = BookAdam(xp=xp)
    batches = _Batches(xp.asarray(contexts), xp.asarray(target), sizes["batch"])

    def dedupe():
        return book_remove_duplicate(model.params, model.grads)

    step = _phases(batches, clock, acc, model.forward, model.backward, opt.update, dedupe)
    return step, acc


def _xpnn_step(spec: str, data, sizes, sync=None) -> Step:
    from xpnn.models.word2vec import CBOW

    corpus, contexts, target = data
    with xpnn.use_backend(spec):
        model = CBOW(sizes["vocab"], sizes["hidden"], sizes["window"], xpnn.asarray(corpus), seed=0)
        batches = _Batches(xpnn.asarray(contexts), xpnn.asarray(target), sizes["batch"])
    acc = dict.fromkeys(("sampler", "forward", "backward", "update"), 0.0)
    clock = _clock(sync)
    # The loss layer draws through its ``sampler`` attribute: time those calls there.
    model.ns_loss.sampler = _TimedSampler(model.ns_loss.sampler, acc, clock)
    opt = xpnn.Adam(lr=LR)
    step = _phases(
        batches,
        clock,
        acc,
        model.forward,
        model.backward,
        lambda: opt.update(model.params, model.grads),
    )
    return step, acc


class TorchCBOW:
    """PyTorch eager CBOW: dense ``nn.Embedding`` W_in and W_out, ``torch.optim.Adam``.

    ``sample(target)``: ``torch.multinomial`` on ``word_p`` (float32), with
    replacement (one draw of ``N * sample_size``) or without (an ``(N, V)``
    copy of the weights with each row's target zeroed, then ``multinomial(...,
    sample_size)``). ``loss``: ``-(logsigmoid(s_pos).mean() +
    logsigmoid(-s_neg).sum(1).mean())``, the book's loss without its 1e-7.
    """

    def __init__(self, torch, vocab, hidden, word_p, device="cpu", seed=0, replacement=True):
        self.torch, self.replacement, self.k = torch, replacement, SAMPLE
        torch.manual_seed(seed)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        nn = torch.nn
        self.emb_in = nn.Embedding(vocab, hidden).to(device)
        self.emb_out = nn.Embedding(vocab, hidden).to(device)
        with torch.no_grad():
            for emb in (self.emb_in, self.emb_out):
                emb.weight.normal_(0.0, 0.01)
        self.p = torch.as_tensor(np.asarray(word_p), dtype=torch.float32, device=device)
        params = [self.emb_in.weight, self.emb_out.weight]
        self.opt = torch.optim.Adam(params, lr=LR)

    def sample(self, target):
        torch, n = self.torch, target.shape[0]
        if self.replacement:
            return torch.multinomial(self.p, n * self.k, True, generator=self.gen).view(n, self.k)
        w = self.p.expand(n, -1).clone()
        w.scatter_(1, target.view(n, 1), 0.0)
        return torch.multinomial(w, self.k, False, generator=self.gen)

    def loss(self, contexts, target, negative):
        F = self.torch.nn.functional
        h = self.emb_in(contexts).mean(dim=1)
        w = self.emb_out(self.torch.cat([target.view(-1, 1), negative], dim=1))
        s = (w * h.unsqueeze(1)).sum(dim=2)
        return -(F.logsigmoid(s[:, 0]).mean() + F.logsigmoid(-s[:, 1:]).sum(dim=1).mean())


def _torch_step(data, sizes, device="cpu", sync=None, replacement=True) -> Step | None:
    try:
        import torch
    except ImportError:
        return None
    corpus, contexts, target = data
    counts = np.bincount(corpus, minlength=sizes["vocab"]).astype(np.float64) ** POWER
    model = TorchCBOW(
        torch, sizes["vocab"], sizes["hidden"], counts / counts.sum(), device, 0, replacement
    )
    dev = torch.device(device)
    batches = _Batches(
        torch.from_numpy(contexts).to(dev), torch.from_numpy(target).to(dev), sizes["batch"]
    )
    acc = dict.fromkeys(("sampler", "forward", "backward", "update"), 0.0)
    clock = _clock(sync)
    state: dict[str, Any] = {}

    def forward(c, t):
        start = clock()
        negative = model.sample(t)
        acc["sampler"] += clock() - start
        state["loss"] = model.loss(c, t, negative)

    def backward():
        model.opt.zero_grad(set_to_none=True)
        state["loss"].backward()

    return _phases(batches, clock, acc, forward, backward, model.opt.step), acc


def _floor_steps(sizes) -> dict[str, Step]:
    """The dense Adam update alone (NumPy, in place, 30 passes) and a copy (8 passes)."""
    shape = (2, sizes["vocab"], sizes["hidden"])  # W_in and W_out in one buffer
    rng = np.random.default_rng(5)
    p, g = rng.standard_normal(shape, np.float32), rng.standard_normal(shape, np.float32)
    m, v, tmp = (np.zeros(shape, np.float32) for _ in range(3))
    c1, c2, eps, lr_t = np.float32(0.1), np.float32(0.001), np.float32(1e-7), np.float32(LR)

    def adam():  # reads + writes of a (2, V, H) array: 18 + 12 passes
        np.subtract(g, m, out=tmp)
        np.multiply(tmp, c1, out=tmp)
        np.add(m, tmp, out=m)
        np.multiply(g, g, out=tmp)
        np.subtract(tmp, v, out=tmp)
        np.multiply(tmp, c2, out=tmp)
        np.add(v, tmp, out=v)
        np.sqrt(v, out=tmp)
        np.add(tmp, eps, out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, lr_t, out=tmp)
        np.subtract(p, tmp, out=p)

    src = np.stack([p, g, m, v])  # as much memory as Adam reads: out of the L3 cache
    dst = np.empty_like(src)

    def copy():  # 4 passes read, 4 written: 8 of Adam's passes over 2 x V x H float32
        np.copyto(dst, src)

    return {FLOOR_ADAM: (adam, {}), FLOOR_COPY: (copy, {})}


# ------------------------------------------------------------------ timing


def _measure(
    steps: dict[str, Step], repeats: int, repeat_s: float, warmup: int, pause_s: float, sync=None
) -> dict[str, dict[str, Any]]:
    """Median/min/max ms per iteration and per part, interleaved and rotated (as conv's)."""
    clock = _clock(sync)
    inner = {}
    for name, (fn, _) in steps.items():
        last = 0.0
        for _ in range(max(1, warmup)):
            start = clock()
            fn()
            last = clock() - start
        inner[name] = max(1, round(repeat_s / max(last, 1e-9)))
    times: dict[str, list[float]] = {name: [] for name in steps}
    parts: dict[str, dict[str, list[float]]] = {name: {} for name in steps}
    names = list(steps)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, acc = steps[name]
            for key in acc:
                acc[key] = 0.0
            time.sleep(pause_s)
            start = clock()
            for _ in range(inner[name]):
                fn()
            times[name].append((clock() - start) / inner[name])
            per = {key: value / inner[name] for key, value in acc.items()}
            if "sampler" in per:
                per["forward without sampler"] = per["forward"] - per["sampler"]
            for key, value in per.items():
                parts[name].setdefault(key, []).append(value)

    def stats(ts: list[float]) -> dict[str, float]:
        return {"median": statistics.median(ts) * 1e3, "min": min(ts) * 1e3, "max": max(ts) * 1e3}

    return {
        name: {
            **stats(ts),
            "repeats": len(ts),
            "steps per repeat": inner[name],
            "parts": {key: stats(v) for key, v in parts[name].items()},
        }
        for name, ts in times.items()
    }


# -------------------------------------------------------------------- case


def _target(timed, ref, path, goal) -> dict[str, Any]:
    ran = "median" in timed.get(ref, {}) and "median" in timed.get(path, {})
    value = timed[ref]["median"] / timed[path]["median"] if ran else None
    return {"goal": goal, "value": value, "met": None if value is None else bool(value >= goal)}


def _floor_note(timed, ref, path, goal, mbytes) -> str:
    """Why a target is not met: the time needed, the path's parts, the dense-update floor."""
    need = timed[ref]["median"] / goal
    mine = timed[path]["parts"]
    order = ("sampler", "forward without sampler", "backward", "update")
    cells = ", ".join(f"{k} {mine[k]['median']:.2f}" for k in order if k in mine)
    note = f"needs <= {need:.2f} ms/iteration, measures {timed[path]['median']:.2f} ({cells})"
    adam, copy = timed.get(FLOOR_ADAM), timed.get(FLOOR_COPY)
    if adam and copy:
        least = 7 / 8 * copy["median"]  # 7 passes, the copy being 8
        note += (
            f"; every iteration updates 2 x V x H float32 densely: Adam alone takes "
            f"{adam['median']:.2f} ms in NumPy in place (30 passes over {mbytes:.0f} MB), at least "
            f"{least:.2f} ms at the copy rate (7 passes), and zeroing the dense gradients "
            f"{copy['median'] / 8:.2f} ms more"
        )
        ref_parts = timed[ref]["parts"]
        slower = [
            k
            for k in order
            if k in mine and k in ref_parts and mine[k]["median"] > ref_parts[k]["median"]
        ]
        if slower:
            note += f"; slower than the reference's: {', '.join(slower)}"
    return note


def _gpus() -> tuple[bool, bool, Callable[[], None]]:
    """Whether CuPy and torch:cuda run here, and a ``sync()`` that waits for both GPUs' work
    (the GPU parts of ``bench words``, ``rnn`` and ``seq2seq`` time with it)."""
    backends = xpnn.available_backends()
    have_cupy, torch_cuda = "cupy:0" in backends, "torch:cuda" in backends

    def sync() -> None:
        if have_cupy:
            import cupy

            cupy.cuda.runtime.deviceSynchronize()
        if torch_cuda:
            import torch

            torch.cuda.synchronize()

    return have_cupy, torch_cuda, sync


def _gpu_part(data, sizes, repeats, repeat_s, warmup, pause_s) -> dict[str, Any]:
    """xpnn on CuPy and torch:cuda, PyTorch CUDA eager, the book's CuPy mode (when each runs)."""
    have_cupy, torch_cuda, sync = _gpus()
    if not (have_cupy or torch_cuda):
        return {"status": NO_GPU}

    def build(synced):
        s = sync if synced else None
        out, failed = {}, {}
        if have_cupy:
            import cupy

            out["xpnn cupy"] = _xpnn_step("cupy:0", data, sizes, s)
            try:
                out["book's CuPy mode"] = _book_step(data, sizes, s, cupy, True)
                out["book's CuPy mode"][0]()
            except Exception as e:  # reported, not raised
                out.pop("book's CuPy mode", None)
                failed["book's CuPy mode"] = {"status": f"did not run: {type(e).__name__}: {e}"}
        if torch_cuda:
            out["xpnn torch:cuda"] = _xpnn_step("torch:cuda", data, sizes, s)
            out["PyTorch CUDA eager"] = _torch_step(data, sizes, "cuda", s)
        return out, failed

    steps, failed = build(False)
    timed = _measure(steps, repeats, repeat_s, warmup, pause_s, sync)
    synced = _measure(build(True)[0], repeats, repeat_s, warmup, pause_s, sync)
    for name, r in timed.items():
        r["parts"] = synced.get(name, r)["parts"]  # parts from the pass synchronised at each phase
    timed.update(failed)
    result: dict[str, Any] = {"status": "measured", "candidates": timed, "targets": {}}
    for ref, path, goal in GPU_TARGETS:
        if ref in timed and path in timed:
            t = _target(timed, ref, path, goal)
            result["targets"][f"{ref} / {path} >= {goal:g}"] = t
    return result


def bench_words(
    vocab: int = SETTINGS["vocab"],
    hidden: int = SETTINGS["hidden"],
    window: int = SETTINGS["window"],
    batch: int = SETTINGS["batch"],
    tokens: int = SETTINGS["tokens"],
    repeats: int = 7,
    repeat_s: float = 0.4,
    warmup: int = 3,
    pause_s: float = PAUSE_S,
) -> dict[str, Any]:
    """One CBOW iteration: the book's algorithm, xpnn (numpy, torch:cpu), PyTorch eager, floors.

    Returns:
        ``unit``, ``settings``, ``candidates`` (per name: median/min/max ms per
        iteration, ``repeats``, ``steps per repeat``, ``parts`` with
        median/min/max ms each, ``speed-up`` = its median over xpnn numpy's;
        or ``status`` when it did not run), ``targets`` (``{name: {"goal",
        "value", "met", "floor"}}``; ``floor`` explains a target not met),
        ``gpu`` (``{"status": ...}``, with ``candidates`` and ``targets``
        when measured).
    """
    sizes = {"vocab": vocab, "hidden": hidden, "window": window, "batch": batch, "tokens": tokens}
    data = corpus_and_batches(vocab, tokens, window)
    steps: dict[str, Step] = {BOOK: _book_step(data, sizes), XPNN: _xpnn_step("numpy", data, sizes)}
    missing: dict[str, Any] = {}
    torch_step = _torch_step(data, sizes)
    if torch_step is None:
        missing = {n: {"status": NO_TORCH} for n in (XPNN_TORCH, TORCH, TORCH_NOREP)}
    else:
        steps[XPNN_TORCH] = _xpnn_step("torch:cpu", data, sizes)
        steps[TORCH] = torch_step
        steps[TORCH_NOREP] = _torch_step(data, sizes, replacement=False)  # type: ignore[assignment]
    steps.update(_floor_steps(sizes))
    timed = _measure(steps, repeats, repeat_s, warmup, pause_s)
    base = timed[XPNN]["median"]
    for r in timed.values():
        r["speed-up"] = r["median"] / base
    targets = {}
    for ref, path, goal in TARGETS:
        t = _target(timed, ref, path, goal)
        t["floor"] = (
            _floor_note(timed, ref, path, goal, 8e-6 * vocab * hidden)
            if t["met"] is False
            else None
        )
        targets[f"{ref} / {path} >= {goal:g}"] = t
    return {
        "unit": "ms/iteration",
        "settings": {
            **sizes,
            "sample_size": SAMPLE,
            "optimizer": f"Adam(lr={LR})",
            "corpus": "Zipf-like (p ~ 1/rank), every word once at least, seed 0",
            "repeats": repeats,
            "repeat_s": repeat_s,
            "warmup": warmup,
            "pause_s": pause_s,
        },
        "candidates": {
            **{k: v for k, v in timed.items() if not k.startswith("floor")},
            **missing,
            **{k: v for k, v in timed.items() if k.startswith("floor")},
        },
        "targets": targets,
        "gpu": _gpu_part(data, sizes, max(3, repeats // 2), repeat_s, warmup, pause_s),
    }


# ------------------------------------------------------------------ report

_PARTS = ("sampler", "forward", "forward without sampler", "backward", "duplicate removal")
_PARTS += ("update",)


def _rows(candidates: dict[str, Any]) -> list[str]:
    lines = []
    for name, r in candidates.items():
        if "median" not in r:
            lines.append(f"    {name:<48} {r['status']}")
            continue
        ratio = f"  {r['speed-up']:>6.2f}x" if "speed-up" in r else ""
        lines.append(
            f"    {name:<48} {r['median']:>8.3f} ({r['min']:.3f}-{r['max']:.3f}){ratio}"
            f"  [{r['repeats']} x {r['steps per repeat']}]"
        )
        cells = [
            f"{k} {p['median']:.2f} ({p['min']:.2f}-{p['max']:.2f})"
            for k in _PARTS
            if (p := r["parts"].get(k)) is not None
        ]
        if cells:
            lines.append("        " + "; ".join(cells))
    return lines


def _target_lines(targets: dict[str, Any]) -> list[str]:
    lines = []
    for name, t in targets.items():
        if t["value"] is None:
            lines.append(f"    target {name}: {NO_TORCH}")
            continue
        lines.append(f"    target {name}: {t['value']:.2f}: {'met' if t['met'] else 'NOT met'}")
        if t.get("floor"):
            lines.append(f"      why: {t['floor']}")
    return lines


def format_words(result: dict[str, Any]) -> list[str]:
    """The words case as plain-text lines."""
    s = result["settings"]
    lines = [
        f"  CBOW iteration: V {s['vocab']}, H {s['hidden']}, window {s['window']}, batch "
        f"{s['batch']}, {s['sample_size']} negatives, {s['optimizer']}, {s['tokens']} tokens",
        "  median ms/iteration (min-max), time / xpnn numpy's, [repeats x iterations];"
        " parts below, median ms (min-max)",
    ]
    lines += _rows(result["candidates"])
    lines += _target_lines(result["targets"])
    gpu = result["gpu"]
    if gpu.get("status") != "measured":
        lines.append(f"  GPU: {gpu['status']}")
    else:
        lines.append("  GPU:")
        lines += _rows(gpu["candidates"])
        lines += _target_lines(gpu["targets"])
    return lines

"""``xpnn bench conv``: the book's convolutional nets, a training step side by side.

One training step (forward, backward, SGD update) at batch 100 on ``(1, 28,
28)`` images, for the book's ``SimpleConvNet`` (ch. 7, default sizes) and
``DeepConvNet`` (ch. 8), timed in one process, interleaved (repeat r runs
every candidate once before repeat r + 1), as the other cases are:

* **xpnn** on NumPy, float32 (:class:`xpnn.SimpleConvNet`,
  :class:`xpnn.DeepConvNet`, :class:`xpnn.SGD`);
* **the book's algorithm** (the reference of the "x the book" targets): the
  book's ``common/util.py`` ``im2col``/``col2im`` loops and its
  ``Convolution``, ``Pooling``, ``Affine``, ``Relu``, ``Dropout`` and
  ``SoftmaxWithLoss`` layers, re-typed here from the book (:class:`BookSimpleConvNet`,
  :class:`BookDeepConvNet`) as :class:`xpnn.bench.TextbookNet` is for
  chapter 4: float64 weights and columns, float32 images as the book's
  ``load_mnist(flatten=False)`` gives them, integer labels, the update
  ``params[key] -= lr * grads[key]`` (the book's SGD). The book's
  ``Trainer.train_step`` also logs the loss with a second forward pass; that
  is left out, so the reference is as fast as the book's algorithm allows;
* **PyTorch CPU eager** (float32, ``nn.Conv2d``, ``nn.MaxPool2d``,
  ``nn.Linear``, ``nn.Dropout``, ``CrossEntropyLoss``, ``torch.optim.SGD``),
  reported "not measured" when torch is not installed;
* on a CUDA machine, xpnn on CuPy against PyTorch CUDA eager (cuDNN) at batch
  100 and 1024; elsewhere "not measured (no GPU here)".

Each candidate is warmed up, then timed in repeats of ``inner`` steps
(``inner`` chosen per candidate so a repeat takes about ``repeat_s``; the
book's DeepConvNet, about 1 s a step, gets one step per repeat). The report
gives the median ms/step with min and max, the ratios of each reference's
median to xpnn's (its speed-up), the issue's targets as met or not met, and
an allocation check on NumPy: the peak of what :mod:`tracemalloc` sees
allocated during one step after the warm-up, against the largest column
buffer and the largest parameter of the net.

Host-side NumPy appears here on purpose: the book's reference is NumPy code.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn

__all__ = [
    "BookDeepConvNet",
    "BookSimpleConvNet",
    "bench_conv",
    "book_col2im",
    "book_im2col",
    "format_conv",
]

NETS = ("SimpleConvNet", "DeepConvNet")
INPUT_DIM = (1, 28, 28)
CLASSES, BATCH, LR = 10, 100, 0.01
XPNN = "xpnn numpy float32"
XPNN_TORCH = "xpnn torch float32 (PyTorch's kernels)"
BOOK = "book's algorithm (NumPy float64)"
TORCH = "PyTorch CPU eager float32"
NO_GPU = "not measured (no GPU here)"
#: Seconds of quiet before each timed repeat: OpenBLAS's idle threads spin
#: for about 0.1 s after a call and would slow the candidate that follows.
PAUSE_S = 0.3
NO_TORCH = "not measured (torch not installed)"
#: The xpnn paths measured: NumPy (im2col and BLAS), and the PyTorch backend,
#: whose Convolution and Pooling run PyTorch's own kernels (oneDNN on the CPU).
XPNN_PATHS = (XPNN, XPNN_TORCH)
#: The issue's targets: (net, reference) -> least speed-up of xpnn over it,
#: checked for each xpnn path.
TARGETS = {
    ("SimpleConvNet", TORCH): 1.5,
    ("DeepConvNet", TORCH): 1.0,
    ("SimpleConvNet", BOOK): 5.0,
    ("DeepConvNet", BOOK): 5.0,
}

# ------------------------------------------------------- the book's algorithm
# Re-typed from the book's common/util.py, common/layers.py, common/functions.py,
# ch07/simple_convnet.py and ch08/deep_convnet.py (MIT), as a reader runs them.


def book_im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """The book's ``im2col``: np.pad, a float64 zero array, one loop per filter element."""
    N, C, H, W = input_data.shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)


def book_col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The book's ``col2im``: a float64 zero image, ``+=`` of each filter element's plane."""
    N, C, H, W = input_shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            img[:, :, y:y_max:stride, x:x_max:stride] += col[:, :, y, x, :, :]
    return img[:, :, pad : H + pad, pad : W + pad]


class _Relu:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class _Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx.reshape(*self.original_x_shape)


class _Convolution:
    def __init__(self, W, b, stride=1, pad=0):
        self.W, self.b, self.stride, self.pad = W, b, stride, pad

    def forward(self, x):
        FN, _, FH, FW = self.W.shape
        N, _, H, W = x.shape
        out_h = 1 + int((H + 2 * self.pad - FH) / self.stride)
        out_w = 1 + int((W + 2 * self.pad - FW) / self.stride)
        col = book_im2col(x, FH, FW, self.stride, self.pad)
        col_W = self.W.reshape(FN, -1).T
        out = np.dot(col, col_W) + self.b
        out = out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)
        self.x, self.col, self.col_W = x, col, col_W
        return out

    def backward(self, dout):
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
        self.db = np.sum(dout, axis=0)
        self.dW = np.dot(self.col.T, dout)
        self.dW = self.dW.transpose(1, 0).reshape(FN, C, FH, FW)
        dcol = np.dot(dout, self.col_W.T)
        return book_col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)


class _Pooling:
    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        self.pool_h, self.pool_w, self.stride, self.pad = pool_h, pool_w, stride, pad

    def forward(self, x):
        N, C, H, W = x.shape
        out_h = int(1 + (H - self.pool_h) / self.stride)
        out_w = int(1 + (W - self.pool_w) / self.stride)
        col = book_im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)
        arg_max = np.argmax(col, axis=1)
        out = np.max(col, axis=1)
        out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)
        self.x, self.arg_max = x, arg_max
        return out

    def backward(self, dout):
        dout = dout.transpose(0, 2, 3, 1)
        pool_size = self.pool_h * self.pool_w
        dmax = np.zeros((dout.size, pool_size))
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        dmax = dmax.reshape((*dout.shape, pool_size))
        dcol = dmax.reshape(dmax.shape[0] * dmax.shape[1] * dmax.shape[2], -1)
        return book_col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


class _Dropout:
    """The book's Dropout; ``np.random.rand`` as a seeded Generator's ``random``.

    ``fixed_mask`` (None by default), when set, is used instead of a new draw:
    the tests hold xpnn's masks to compare the same computation.
    """

    def __init__(self, dropout_ratio=0.5, rng=None):
        self.dropout_ratio = dropout_ratio
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.mask = None
        self.fixed_mask = None

    def forward(self, x, train_flg=True):
        if train_flg:
            if self.fixed_mask is not None:
                self.mask = self.fixed_mask
            else:
                self.mask = self.rng.random(x.shape) > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask


def _softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def _cross_entropy_error(y, t):
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


class _SoftmaxWithLoss:
    def forward(self, x, t):
        self.t = t
        self.y = _softmax(x)
        return _cross_entropy_error(self.y, self.t)

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:
            return (self.y - self.t) / batch_size
        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        return dx / batch_size


class _BookNet:
    """What the two book nets share: predict, loss, gradient (the book's code)."""

    layers: list[Any]
    params: dict[str, np.ndarray]
    _weighted: tuple[int, ...]

    def predict(self, x, train_flg=False):
        for layer in self.layers:
            x = layer.forward(x, train_flg) if isinstance(layer, _Dropout) else layer.forward(x)
        return x

    def loss(self, x, t):
        return self.last_layer.forward(self.predict(x, train_flg=True), t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        grads = {}
        for i, idx in enumerate(self._weighted, 1):
            grads[f"W{i}"], grads[f"b{i}"] = self.layers[idx].dW, self.layers[idx].db
        return grads


def _conv_size(size: int, p: dict[str, int]) -> int:
    return (size + 2 * p["pad"] - p["filter_size"]) // p["stride"] + 1


class BookSimpleConvNet(_BookNet):
    """The book's ``SimpleConvNet`` (ch07/simple_convnet.py): float64 weights.

    The book's sizes; the pooled size is computed (the book's formula,
    ``filter_num * (conv_output_size / 2) ** 2``, is the same for even
    convolution outputs). Weights ``weight_init_std * randn`` from a seeded
    Generator.
    """

    def __init__(
        self,
        input_dim=INPUT_DIM,
        conv_param=None,
        hidden_size=100,
        output_size=CLASSES,
        weight_init_std=0.01,
        seed=0,
    ):
        p = conv_param or {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}
        rng = np.random.default_rng(seed)
        fn, fs = p["filter_num"], p["filter_size"]
        conv_out = _conv_size(input_dim[1], p), _conv_size(input_dim[2], p)
        pool_output_size = fn * (conv_out[0] // 2) * (conv_out[1] // 2)
        self.params = {
            "W1": weight_init_std * rng.standard_normal((fn, input_dim[0], fs, fs)),
            "b1": np.zeros(fn),
            "W2": weight_init_std * rng.standard_normal((pool_output_size, hidden_size)),
            "b2": np.zeros(hidden_size),
            "W3": weight_init_std * rng.standard_normal((hidden_size, output_size)),
            "b3": np.zeros(output_size),
        }
        P = self.params
        self.layers = [
            _Convolution(P["W1"], P["b1"], p["stride"], p["pad"]),
            _Relu(),
            _Pooling(pool_h=2, pool_w=2, stride=2),
            _Affine(P["W2"], P["b2"]),
            _Relu(),
            _Affine(P["W3"], P["b3"]),
        ]
        self._weighted = (0, 3, 5)
        self.last_layer = _SoftmaxWithLoss()


class BookDeepConvNet(_BookNet):
    """The book's ``DeepConvNet`` (ch08/deep_convnet.py): He-scaled float64 weights.

    The book's layers and scales; the size after the last pooling is
    computed (the book hard-codes ``64*4*4`` for 28x28 inputs), so the tests
    can run it small.
    """

    def __init__(
        self, input_dim=INPUT_DIM, conv_params=None, hidden_size=50, output_size=10, seed=0
    ):
        if conv_params is None:
            sizes = ((16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1))
            conv_params = [
                {"filter_num": f, "filter_size": 3, "pad": pad, "stride": 1} for f, pad in sizes
            ]
        rng = np.random.default_rng(seed)
        self.params = {}
        pre, (h, w) = input_dim[0], input_dim[1:]
        self.layers = []
        for i, p in enumerate(conv_params, 1):
            fn, fs = p["filter_num"], p["filter_size"]
            scale = np.sqrt(2.0 / (pre * fs * fs))
            W = scale * rng.standard_normal((fn, pre, fs, fs))
            b = np.zeros(fn)
            self.params[f"W{i}"], self.params[f"b{i}"] = W, b
            self.layers += [_Convolution(W, b, p["stride"], p["pad"]), _Relu()]
            h, w, pre = _conv_size(h, p), _conv_size(w, p), fn
            if i % 2 == 0:
                self.layers.append(_Pooling(pool_h=2, pool_w=2, stride=2))
                h, w = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        flat = pre * h * w
        P = self.params
        P["W7"] = np.sqrt(2.0 / flat) * rng.standard_normal((flat, hidden_size))
        P["b7"] = np.zeros(hidden_size)
        P["W8"] = np.sqrt(2.0 / hidden_size) * rng.standard_normal((hidden_size, output_size))
        P["b8"] = np.zeros(output_size)
        self.layers += [
            _Affine(P["W7"], P["b7"]),
            _Relu(),
            _Dropout(0.5, np.random.default_rng(seed + 1)),
            _Affine(P["W8"], P["b8"]),
            _Dropout(0.5, np.random.default_rng(seed + 2)),
        ]
        self._weighted = (0, 2, 5, 7, 10, 12, 15, 18)
        self.last_layer = _SoftmaxWithLoss()


# ------------------------------------------------------------- candidates


def _book_step(net: _BookNet, x: np.ndarray, t: np.ndarray, lr: float = LR) -> Callable[[], None]:
    """gradient, then the book's SGD ``params[key] -= lr * grads[key]``."""

    def step():
        grads = net.gradient(x, t)
        for key in net.params:
            net.params[key] -= lr * grads[key]

    return step


def _xpnn_net(name: str, spec: str, **sizes: Any) -> Any:
    with xpnn.use_backend(spec):
        cls = xpnn.SimpleConvNet if name == "SimpleConvNet" else xpnn.DeepConvNet
        return cls(**sizes, seed=0, dtype="float32")


def _xpnn_step(
    name: str, spec: str, x_host: np.ndarray, t_host: np.ndarray, **sizes: Any
) -> tuple[Callable[[], None], Any]:
    """An xpnn training step on ``spec``: ``net.gradient`` then ``SGD.update``."""
    net = _xpnn_net(name, spec, **sizes)
    with xpnn.use_backend(spec):
        x, t = xpnn.asarray(x_host, dtype="float32"), xpnn.asarray(t_host)
    opt = xpnn.SGD(lr=LR)

    def step():
        opt.update(net.params, net.gradient(x, t))

    return step, net


def _torch_model(torch: Any, name: str, sizes: dict[str, Any]) -> Any:
    nn = torch.nn
    c, h, w = sizes.get("input_dim", INPUT_DIM)
    if name == "SimpleConvNet":
        p = sizes.get("conv_param", {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1})
        hidden = sizes.get("hidden_size", 100)
        oh, ow = _conv_size(h, p) // 2, _conv_size(w, p) // 2
        fn = p["filter_num"]
        return nn.Sequential(
            nn.Conv2d(c, fn, p["filter_size"], p["stride"], p["pad"]),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Flatten(),
            nn.Linear(fn * oh * ow, hidden),
            nn.ReLU(),
            nn.Linear(hidden, CLASSES),
        )
    layers: list[Any] = []
    pre = c
    for i in range(1, 7):
        p = sizes[f"conv_param_{i}"] if f"conv_param_{i}" in sizes else None
        p = p or {
            "filter_num": (16, 16, 32, 32, 64, 64)[i - 1],
            "filter_size": 3,
            "pad": 2 if i == 4 else 1,
            "stride": 1,
        }
        layers += [nn.Conv2d(pre, p["filter_num"], p["filter_size"], p["stride"], p["pad"])]
        layers += [nn.ReLU()]
        h, w, pre = _conv_size(h, p), _conv_size(w, p), p["filter_num"]
        if i % 2 == 0:
            layers.append(nn.MaxPool2d(2, 2))
            h, w = h // 2, w // 2
    hidden = sizes.get("hidden_size", 50)
    layers += [
        nn.Flatten(),
        nn.Linear(pre * h * w, hidden),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(hidden, CLASSES),
        nn.Dropout(0.5),
    ]
    return nn.Sequential(*layers)


def _torch_step(
    name: str, device: str, x_host: np.ndarray, t_host: np.ndarray, **sizes: Any
) -> Callable[[], None] | None:
    """PyTorch eager, float32, the same architecture (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    dev = torch.device(device)
    torch.manual_seed(0)
    model = _torch_model(torch, name, sizes).to(dev).train()
    x = torch.from_numpy(np.ascontiguousarray(x_host, dtype=np.float32)).to(dev)
    t = torch.from_numpy(t_host).to(dev)
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), t).backward()
        opt.step()

    return step


# ------------------------------------------------------------------ timing


def _measure(
    candidates: dict[str, Callable[[], None]],
    repeats: int,
    repeat_s: float,
    warmup: int,
    sync: Callable[[], None] | None = None,
    pause_s: float = PAUSE_S,
) -> dict[str, dict[str, Any]]:
    """Median/min/max seconds per step of each candidate, interleaved.

    ``warmup`` steps each (the last one timed to choose ``inner``, the steps
    per repeat: about ``repeat_s`` seconds, at least 1), then ``repeats``
    rounds, each timing ``inner`` steps of every candidate in turn, round r
    starting at candidate ``r % len(candidates)``, each after a pause of
    ``pause_s`` seconds (:data:`PAUSE_S`).
    """

    def once(fn: Callable[[], None]) -> float:
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        return time.perf_counter() - start

    inner = {}
    for name, fn in candidates.items():
        last = min(once(fn) for _ in range(max(1, warmup)))
        inner[name] = max(1, round(repeat_s / max(last, 1e-9)))
    times: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(repeats):
        # Each round in another order (rotated), so no candidate always follows
        # the same one; and a pause first, longer than the time OpenBLAS's idle
        # threads spin after a call (2**28 cycles, about 0.1 s), which would
        # otherwise take a core from the next candidate.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = candidates[name]
            time.sleep(pause_s)
            start = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            if sync:
                sync()
            times[name].append((time.perf_counter() - start) / inner[name])
    return {
        name: {
            "median": statistics.median(ts) * 1e3,
            "min": min(ts) * 1e3,
            "max": max(ts) * 1e3,
            "repeats": len(ts),
            "steps per repeat": inner[name],
        }
        for name, ts in times.items()
    }


def _data(batch: int, input_dim: tuple[int, int, int], seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *input_dim), dtype=np.float32)  # float32, as load_mnist gives
    return x, rng.integers(0, CLASSES, batch)


# ------------------------------------------------------------ allocations


def _column_bytes(net: Any) -> int:
    """The largest im2col buffer of the net's layers (bytes), after a step."""
    sizes = [0]
    for layer in net.layers:
        col = getattr(layer, "col", None)
        if col is None:
            col = getattr(layer, "_col", None)
        if col is not None:
            sizes.append(int(col.size) * col.dtype.itemsize)
    return max(sizes)


def allocation_check(step: Callable[[], None], net: Any, warmup: int = 2) -> dict[str, Any]:
    """Peak bytes allocated (NumPy, as tracemalloc sees it) during one step after the warm-up.

    Returns:
        ``peak bytes in a step``, ``largest column buffer`` and ``largest
        parameter`` (bytes), and ``met``: whether the peak is below the
        smaller of the two (so no array of either size was allocated: the
        peak counts every array alive at once). Smaller arrays (a Dropout
        layer's fresh mask and its hash, NumPy's casting buffers) may be.
    """
    for _ in range(warmup):
        step()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        step()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was_tracing:
            tracemalloc.stop()
    col = _column_bytes(net)
    param = max(int(p.size) * p.dtype.itemsize for p in net.params.values())
    return {
        "peak bytes in a step": int(peak),
        "largest column buffer": col,
        "largest parameter": param,
        # An array of either size alive at any moment of the step would raise
        # the peak to at least its size.
        "met": bool(peak < min(col, param)),
    }


# -------------------------------------------------------------------- case


def _gpu_part(
    nets: tuple[str, ...],
    batches: tuple[int, ...],
    repeats: int,
    repeat_s: float,
    sizes: dict,
    pause_s: float = PAUSE_S,
) -> dict[str, Any]:
    """xpnn on CuPy and on torch:cuda vs PyTorch CUDA eager, and NumPy -> GPU, per net and batch.

    ``speed-up`` is each candidate's median over the first xpnn GPU path's
    (CuPy where it is installed, else torch:cuda).
    """
    try:
        import torch

        torch_cuda = bool(torch.cuda.is_available())
    except ImportError:
        torch_cuda = False
    have_cupy = "cupy:0" in xpnn.available_backends()
    if not (have_cupy or torch_cuda):
        return {"status": NO_GPU}
    cupy = None
    if have_cupy:
        import cupy

    def sync():
        if cupy is not None:
            cupy.cuda.runtime.deviceSynchronize()
        if torch_cuda:
            torch.cuda.synchronize()

    results: dict[str, Any] = {"status": "measured"}
    for name in nets:
        for batch in batches:
            x, t = _data(batch, sizes[name].get("input_dim", INPUT_DIM))
            cands: dict[str, Callable[[], None]] = {}
            if have_cupy:
                cands["xpnn cupy float32"] = _xpnn_step(name, "cupy:0", x, t, **sizes[name])[0]
            if torch_cuda:
                cands["xpnn torch:cuda float32 (cuDNN through PyTorch)"] = _xpnn_step(
                    name, "torch:cuda", x, t, **sizes[name]
                )[0]
            cands[XPNN] = _xpnn_step(name, "numpy", x, t, **sizes[name])[0]
            if torch_cuda:
                step = _torch_step(name, "cuda", x, t, **sizes[name])
                if step is not None:
                    cands["PyTorch CUDA eager float32 (cuDNN)"] = step
            timed = _measure(cands, repeats, repeat_s, 3, sync, pause_s)
            base = next(iter(timed.values()))["median"]
            for r in timed.values():
                r["speed-up"] = r["median"] / base
            results[f"{name}, batch {batch}"] = timed
    return results


def bench_conv(
    nets: tuple[str, ...] = NETS,
    batch: int = BATCH,
    repeats: int = 7,
    repeat_s: float = 0.4,
    warmup: int = 2,
    sizes: dict[str, dict[str, Any]] | None = None,
    gpu_batches: tuple[int, ...] = (100, 1024),
    pause_s: float = PAUSE_S,
) -> dict[str, Any]:
    """A training step of the book's conv nets: xpnn, the book's algorithm, PyTorch eager.

    Args:
        nets: Which of ``"SimpleConvNet"``, ``"DeepConvNet"``.
        batch: Images per step.
        repeats: Timed rounds (each candidate once per round).
        repeat_s: About how long one candidate's round takes (steps per
            round chosen from the warm-up; at least one).
        warmup: Untimed steps per candidate first.
        sizes: Constructor arguments per net (the book's defaults if
            omitted; the tests shrink them).
        gpu_batches: Batch sizes of the CUDA comparison (GPU only).
        pause_s: Seconds of quiet before each timed repeat (see :data:`PAUSE_S`).

    Returns:
        ``unit``, ``settings``, ``nets`` (per net: ``candidates`` with
        median/min/max ms per step, repeats and steps per repeat, and
        ``speed-up`` (reference median / xpnn median), or ``status`` for a
        reference that did not run; ``allocation``, the NumPy allocation
        check; ``targets``: ``{name: {"goal", "value", "met"}}``), ``gpu``.
    """
    sizes = {n: dict((sizes or {}).get(n, {})) for n in nets}
    report: dict[str, Any] = {
        "unit": "ms/step",
        "settings": {
            "batch": batch,
            "input": list(INPUT_DIM),
            "optimizer": f"SGD(lr={LR})",
            "repeats": repeats,
            "repeat_s": repeat_s,
            "warmup": warmup,
            "pause_s": pause_s,
            "sizes": {n: {k: str(v) for k, v in s.items()} for n, s in sizes.items()},
        },
        "nets": {},
    }
    for name in nets:
        x, t = _data(batch, sizes[name].get("input_dim", INPUT_DIM))
        candidates: dict[str, Callable[[], None]] = {}
        step, net = _xpnn_step(name, "numpy", x, t, **sizes[name])
        candidates[XPNN] = step
        book_sizes = dict(sizes[name])
        if name == "DeepConvNet":
            conv = [book_sizes.pop(f"conv_param_{i}", None) for i in range(1, 7)]
            book: _BookNet = BookDeepConvNet(
                conv_params=None if conv[0] is None else conv, **book_sizes
            )
        else:
            book = BookSimpleConvNet(**book_sizes)
        candidates[BOOK] = _book_step(book, x, t)
        torch_step = _torch_step(name, "cpu", x, t, **sizes[name])
        missing: dict[str, Any] = {}
        if torch_step is not None:
            candidates[XPNN_TORCH] = _xpnn_step(name, "torch:cpu", x, t, **sizes[name])[0]
            candidates[TORCH] = torch_step
        else:
            missing = {XPNN_TORCH: {"status": NO_TORCH}, TORCH: {"status": NO_TORCH}}
        timed = _measure(candidates, repeats, repeat_s, warmup, pause_s=pause_s)
        base = timed[XPNN]["median"]
        for r in timed.values():
            r["speed-up"] = r["median"] / base  # how many times xpnn numpy's median
        entry: dict[str, Any] = {"candidates": {**timed, **missing}}
        entry["allocation"] = allocation_check(step, net)
        entry["targets"] = _targets(name, timed)
        report["nets"][name] = entry
    report["gpu"] = _gpu_part(
        tuple(nets), gpu_batches, max(3, repeats // 2), repeat_s, sizes, pause_s
    )
    return report


def _targets(name: str, timed: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each target of ``name`` for each xpnn path: reference median / the path's."""
    targets = {}
    for (net_name, ref), goal in TARGETS.items():
        if net_name != name:
            continue
        for path in XPNN_PATHS:
            ran = ref in timed and path in timed
            value = timed[ref]["median"] / timed[path]["median"] if ran else None
            targets[f"{ref} / {path} >= {goal:g}"] = {
                "goal": goal,
                "value": value,
                "met": None if value is None else bool(value >= goal),
            }
    return targets


# ------------------------------------------------------------------ report


def _row(name: str, r: dict[str, Any], ratio_key: str) -> str:
    if "median" not in r:
        return f"    {name:<40} {r['status']}"
    return (
        f"    {name:<40} {r['median']:>8.2f} ({r['min']:.2f}-{r['max']:.2f})"
        f"  {r[ratio_key]:>6.2f}x  [{r['repeats']} x {r['steps per repeat']}]"
    )


def format_conv(result: dict[str, Any]) -> list[str]:
    """The conv case as plain-text lines."""
    s = result["settings"]
    lines = [
        f"  training step at batch {s['batch']}, {s['optimizer']}: median ms/step (min-max), "
        "time / xpnn's, [repeats x steps]"
    ]
    for name, entry in result["nets"].items():
        lines.append(f"  {name}:")
        for cand, r in entry["candidates"].items():
            lines.append(_row(cand, r, "speed-up"))
        a = entry["allocation"]
        lines.append(
            f"    allocation in a step after the first (tracemalloc): peak "
            f"{a['peak bytes in a step'] / 1e3:.1f} kB; largest column buffer "
            f"{a['largest column buffer'] / 1e6:.2f} MB, largest parameter "
            f"{a['largest parameter'] / 1e6:.2f} MB: {'met' if a['met'] else 'NOT met'}"
        )
        for target, v in entry["targets"].items():
            if v["value"] is None:
                shown = NO_TORCH
            else:
                shown = f"{v['value']:.2f}: {'met' if v['met'] else 'NOT met'}"
            lines.append(f"    target {target}: {shown}")
    gpu = result["gpu"]
    if gpu.get("status") != "measured":
        lines.append(f"  GPU: {gpu['status']}")
    else:
        for key, timed in gpu.items():
            if key == "status":
                continue
            lines.append(f"  GPU, {key}:")
            for cand, r in timed.items():
                lines.append(_row(cand, r, "speed-up"))
    return lines

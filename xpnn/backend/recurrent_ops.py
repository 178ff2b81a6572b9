"""The time layers' fast paths (vol. 2, ch. 5-6), as named operations.

The book's ``TimeRNN`` and ``TimeLSTM`` run one cell per time step: T small
products ``x_t @ Wx`` forward, and backward T products ``x_t.T @ dA_t``
and ``h_prev_t.T @ dA_t`` added one by one into the weights' gradients,
and T products ``dA_t @ Wx.T``. Only the products with ``Wh`` depend on the
step before; the others are the same sums over all ``N * T`` rows, and one
``(N * T, D)`` product computes them at once at the speed BLAS (and
PyTorch's kernels) reach on large matrices, where a ``(20, D)`` product runs
at a fraction of it. The results differ from the book's only by float
rounding (the same sums, added in another order).

* :func:`matmul_add`: ``x @ W + b``, the bias added into the product;
* :func:`sequence_matmul`: ``xs @ W (+ b)`` for all steps of ``(N, T, D)``;
* :func:`times_transposed`: the cells' ``dA @ Wh.T``, by the faster way on NumPy;
* :func:`row_sum`: a bias gradient ``d.sum(axis=0)``, by a product with ones on NumPy;
* :func:`steps_weight_grad`, :func:`steps_bias_grad`: the sums over the
  steps of ``x_t.T @ dA_t`` and of ``dA_t``, one product or sum each;
* :class:`StepGrads`: one step's own gradients, computed only if read;
* :func:`steps_take_rows`, :func:`steps_index_add_rows`: TimeEmbedding's T
  lookups and T scatter-adds, one each;
* :func:`softmax_rows`: TimeSoftmaxWithLoss's softmax in one array;
* :func:`label_difference_mean`: its backward ``(ys - one_hot(ts)) * dout /
  count`` without the one-hot matrix in host memory;
* :func:`mask_rows`: rows of a gradient zeroed where a label is ignored,
  the multiplication skipped where nothing is ignored and reading is free.

Nothing here reads an array back from a device: :func:`mask_rows` reads
the mask only where it is host memory (NumPy, PyTorch on the CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from xpnn.backend.namespace import get_namespace
from xpnn.backend.operations import ops
from xpnn.backend.scatter import index_add_rows

__all__ = [
    "StepGrads",
    "label_difference_mean",
    "mask_rows",
    "matmul_add",
    "row_sum",
    "sequence_matmul",
    "softmax_rows",
    "steps_bias_grad",
    "steps_index_add_rows",
    "steps_take_rows",
    "steps_weight_grad",
    "times_transposed",
]


def matmul_add(x: Any, W: Any, b: Any) -> Any:
    """``x @ W + b``: ``x`` ``(M, D)``, ``W`` ``(D, K)``, ``b`` ``(K,)`` -> ``(M, K)``.

    Faster than the expression: no second ``(M, K)`` array is allocated and
    written (for TimeAffine's ``(700, 10000)`` scores, 28 MB a step). On
    NumPy and CuPy the bias is added into the product in place (bitwise the
    expression); on PyTorch ``addmm`` adds it in the product's own pass
    (equal up to float rounding, as ``nn.Linear`` computes).
    """
    k = ops(x, W, b)
    if k.torch is not None and x.ndim == 2 and x.dtype == W.dtype == b.dtype:
        return k.torch.addmm(b, x, W)
    out = x @ W
    if k.native is not None:
        out += b
        return out
    return out + b


def sequence_matmul(xs: Any, W: Any, b: Any = None) -> Any:
    """``xs[:, t, :] @ W (+ b)`` for every step: ``xs`` ``(N, T, D)`` -> ``(N, T, K)``.

    One ``(N * T, D) @ (D, K)`` product (xs reshaped, as TimeAffine does)
    in place of the book's T products of ``(N, D)``: large products run
    several times faster per element than small ones. Each row is the same
    dot products as the book's.
    """
    xp = get_namespace(xs, W)
    N, T, D = xs.shape
    rx = xp.reshape(xs, (N * T, D))
    out = rx @ W if b is None else matmul_add(rx, W, b)
    return xp.reshape(out, (N, T, W.shape[1]))


def times_transposed(d: Any, W: Any) -> Any:
    """``d @ W.T``: ``d`` ``(N, K)``, ``W`` ``(H, K)`` -> ``(N, H)`` (a cell's ``dh_prev``).

    On NumPy computed as ``(W @ d.T).T``: OpenBLAS multiplies a thin ``d``
    by the C-ordered ``W`` about 1.5 times as fast as by ``W.T`` (20 x 2600
    by 2600 x 650 float32: 1.05 ms against 1.55 on one core), a product a
    time layer's backward pass takes once per step. The same dot products;
    the result is a transposed (F-ordered) view. Elsewhere ``d @ W.T``
    (PyTorch's is the faster there).
    """
    if ops(d, W).native is np:
        return (W @ d.T).T
    return d @ W.T


#: NumPy: (rows, dtype) -> a read-only vector of ones, made once (row_sum's).
_ONES: dict[tuple[int, Any], Any] = {}


def row_sum(d: Any, out: Any = None) -> Any:
    """``d.sum(axis=0)``: ``d`` ``(M, K)`` -> ``(K,)``, into ``out`` where given.

    A bias gradient. On NumPy for float32 and float64, computed as ``ones(M)
    @ d``: BLAS's matrix-vector product reads ``d`` once at memory speed,
    where ``add.reduce`` along axis 0 adds the rows one by one (TimeAffine's
    ``(700, 10000)`` float32 gradient on one busy core: 0.8 ms against 1.8).
    The same sums, added in another order (equal up to float rounding).
    Elsewhere (and for half floats, accumulated wider) ``Ops.sum_wide``.
    """
    k = ops(d)
    if (
        k.native is np
        and d.ndim == 2
        and d.shape[0] > 0
        and d.dtype in (np.float32, np.float64)
        and (out is None or out.dtype == d.dtype)
    ):
        key = (d.shape[0], d.dtype)
        ones = _ONES.get(key)
        if ones is None:
            if len(_ONES) > 16:  # batch sizes come and go: keep a few
                _ONES.clear()
            ones = _ONES[key] = np.ones(d.shape[0], dtype=d.dtype)
            ones.flags.writeable = False
        return np.matmul(ones, d, out=out)
    return k.sum_wide(d, axis=0, out=out)


def steps_weight_grad(xs: Any, dA: Any, out: Any = None) -> Any:
    """``sum_t xs[:, t, :].T @ dA[:, t, :]``: ``(N, T, D)``, ``(N, T, K)`` -> ``(D, K)``.

    The sum of the steps' weight gradients, which the book computes as T
    products and adds one by one, as one ``(D, N * T) @ (N * T, K)``
    product written into ``out`` (the layer's gradient array) where the
    library can: no ``(D, K)`` array per step, and BLAS's speed on large
    products. Equal to the book's sum up to float rounding.
    """
    xp = get_namespace(xs, dA)
    N, T, D = xs.shape
    K = dA.shape[2]
    rx = xp.reshape(xs, (N * T, D))
    rd = xp.reshape(dA, (N * T, K))
    return ops(xs, dA).matmul(rx.T, rd, out=out)


def steps_bias_grad(dA: Any, out: Any = None) -> Any:
    """``sum_t dA[:, t, :].sum(axis=0)``: ``(N, T, K)`` -> ``(K,)``, one sum over N * T rows.

    One reduction into ``out`` where the T step sums and T - 1 additions
    were (half floats accumulate in float32, as ``Ops.sum_wide``).
    """
    xp = get_namespace(dA)
    N, T, K = dA.shape
    return ops(dA).sum_wide(xp.reshape(dA, (N * T, K)), axis=0, out=out)


def steps_take_rows(W: Any, xs: Any) -> Any:
    """``W[xs[:, t]]`` for every step: ids ``xs`` ``(N, T)`` -> ``(N, T, D)`` in W's dtype.

    The book's T lookups of ``(N,)`` ids and the stacking of their outputs,
    as one ``take`` of the ``N * T`` ids: one call where there were T and a
    stack (0.6 ms for an RNNLM's 35 steps, Python's overhead). The same
    rows, bitwise.
    """
    xp = get_namespace(W, xs)
    N, T = xs.shape
    rows = xp.take(W, xp.reshape(xs, (N * T,)), axis=0)
    return xp.reshape(rows, (N, T, W.shape[1]))


def steps_index_add_rows(dW: Any, xs: Any, dout: Any) -> Any:
    """``dW[xs[n, t]] += dout[n, t]`` for every step t, then every row n, in place.

    The book's T embedding backward passes (each step's rows added at its
    ids), as one :func:`~xpnn.backend.scatter.index_add_rows` over the ids
    taken step by step (``xs.T``, ``dout`` ``(N, T, D)`` reordered to
    ``(T, N, D)``, a copy of ``N * T * D`` numbers): one call where there
    were T (0.7 ms for an RNNLM's 35 steps). The additions into each row
    come in the book's order, so on NumPy the sums are bitwise the book's.
    """
    xp = get_namespace(dW, xs, dout)
    return index_add_rows(dW, xp.permute_dims(xs, (1, 0)), xp.permute_dims(dout, (1, 0, 2)))


class StepGrads(Sequence):
    """One time step's ``[dWx, dWh, db]``, computed from ``x``, ``h_prev``, ``dA`` when read.

    A time layer sums its steps' weight gradients with
    :func:`steps_weight_grad` over all steps at once; the gradients of each
    step, which the book's cells hold in ``grads``, are then not needed for
    training. This sequence gives them to whoever reads them (a test, a
    reader comparing with the book): ``x.T @ dA``, ``h_prev.T @ dA`` and
    ``dA.sum(axis=0)``, each computed once, on first read. Faster because
    nothing is computed or allocated per step unless it is read.

    Args:
        x: The step's input ``(N, D)``.
        h_prev: The step's previous hidden state ``(N, H)``.
        dA: The gradient of the step's pre-activation ``(N, K)``.
    """

    def __init__(self, x: Any, h_prev: Any, dA: Any):
        self.x, self.h_prev, self.dA = x, h_prev, dA
        self._done: dict[int, Any] = {}

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(3)[i]]
        j = range(3)[i]  # IndexError past the end, as a list's
        if j not in self._done:
            k = ops(self.dA)
            if j == 2:
                self._done[j] = k.sum_wide(self.dA, axis=0)
            else:
                self._done[j] = (self.x if j == 0 else self.h_prev).T @ self.dA
        return self._done[j]


def mask_rows(dx: Any, mask: Any) -> Any:
    """``dx * mask[:, None]`` (``dx`` ``(M, V)``, ``mask`` bool ``(M,)``), in place where possible.

    Faster: in host memory (NumPy, PyTorch on the CPU), a mask with no False
    (no ignored label: the usual batch) leaves ``dx`` as it is, the result
    of multiplying by 1 without the pass over ``dx``; elsewhere the mask is
    not read (no host synchronisation) and the product is written into
    ``dx`` (CuPy) or returned.
    """
    k = ops(dx, mask)
    xp = k.xp
    if _host_memory(k, mask) and bool(xp.all(mask)):
        return dx
    fmask = xp.reshape(xp.astype(mask, dx.dtype), (-1, 1))
    return k.multiply(dx, fmask, out=dx if k.native is not None else None)


def _host_memory(k: Any, a: Any) -> bool:
    """Whether ``a`` is in host memory, where reading it costs no synchronisation."""
    return k.native is np or (k.torch is not None and a.device.type == "cpu")


def softmax_rows(xs: Any, out: Any = None) -> Any:
    """``softmax(xs)`` over the rows of ``xs`` ``(M, V)``, in one array.

    On NumPy and CuPy the book's steps, ``xs - max`` written into ``out`` (a
    buffer the layer keeps) and the exponential and the division by the row
    sums done in place there: one ``(M, V)`` array where the plain
    expression makes three (84 MB a step at M 700, V 10,000, float32),
    bitwise its result. On PyTorch ``torch.softmax``, one fused kernel (the
    same formula, max subtracted; equal up to float rounding), two to three
    times as fast as the separate passes. Not for half floats (the caller
    widens them first).
    """
    k = ops(xs)
    if k.torch is not None:
        return k.torch.softmax(xs, dim=1)
    return k.softmax_rows(xs, out, out)[0]


def label_difference_mean(ys: Any, ts: Any, scale: Any, count: Any, out: Any = None) -> Any:
    """``(ys - one_hot(ts)) * scale / count``: ``ys`` ``(M, V)``, ``ts`` ``(M,)`` -> ``(M, V)``.

    ``scale`` is ``dout`` (a number, or a 0-d array from ``Ops.dout_scale``)
    and ``count`` a 0-d array (the counted positions). Faster in host memory
    (NumPy, PyTorch on the CPU, where the forward pass checked the labels)
    with a number ``scale``: ``ys * scale / count`` in one pass or two (the
    multiplication skipped for a scale of 1, exact), into ``out`` where
    given, then the M label entries recomputed as ``(y - 1) * scale /
    count``: no ``(M, V)`` one-hot and no subtraction pass over ``ys``.
    Every entry is bitwise the plain expression's (``y - 0`` is ``y``).
    Elsewhere ``Ops.label_difference`` then a division.
    """
    k = ops(ys, ts)
    if not (_host_memory(k, ys) and isinstance(scale, (int, float))):
        dx = k.label_difference(ys, ts, scale, out=out)
        return k.divide(dx, count, out=dx if out is not None else None)
    if k.torch is not None:
        rows = k.torch.arange(ys.shape[0], device=ys.device)
        dx = ys if scale == 1 else ys * scale
        dx = dx / count
    else:
        rows = k._arange(ys.shape[0])
        src = ys if scale == 1 else np.multiply(ys, scale, out=out)
        dx = np.divide(src, count, out=out)
    dx[rows, ts] = (ys[rows, ts] - 1) * scale / count
    return dx

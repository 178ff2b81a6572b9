"""The optimizers' element-wise updates, into scratch buffers kept between steps.

The book writes Adam as four array expressions per parameter (``m += (1 -
beta1) * (g - m)`` ...); each makes a temporary array of the parameter's
size. For word2vec's ``(10,000, 100)`` tables that is 4 MB per temporary,
eight of them per step: the allocator hands large blocks back to the system
and page-faults them in again. Measured on a busy 2-core CPU, one Adam
update of two such float32 tables, 40 steps in a fresh process, three runs:
median 21-30 ms with the plain expressions, 9-14 ms with these buffers. Here every temporary is one
of two scratch arrays kept in a ``cache`` dict the optimizer holds, two per
shape, written with ``out=`` (NumPy, CuPy) or PyTorch's ``out=`` and
in-place methods; the operations and their order are the book's, so the
results are bitwise those of the plain expressions. Other namespaces
(array-api-strict) run the plain expressions.

:func:`squared_norm` is gradient clipping's sum of squares, by a dot product.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend.operations import ops

__all__ = ["adam_moments", "divide_step", "squared_norm"]


def _scratch(k: Any, cache: dict, name: str, like: Any) -> Any:
    """A reused array of ``like``'s shape and dtype (None where nothing takes ``out=``).

    Kept in ``cache`` under ``(name, shape, dtype)``: parameters of one shape
    share their scratch arrays, so the memory is two arrays per shape, not per
    parameter.
    """
    key = (name, tuple(like.shape), str(like.dtype))
    if k.native is not None:
        return k.buffer(cache, key, tuple(like.shape), like.dtype, like)
    if k.torch is None:
        return None
    buf = cache.get(key)
    if buf is None or buf.device != like.device:
        buf = cache[key] = k.torch.empty_like(like)
    return buf


def adam_moments(k: Any, g: Any, m: Any, v: Any, beta1: float, beta2: float, cache: dict) -> None:
    """``m += (1 - beta1) * (g - m)`` and ``v += (1 - beta2) * (g**2 - v)``, in place.

    With ``g * g`` for ``g**2`` (the same bits: squaring is one rounding
    either way). ``k`` is :func:`xpnn.backend.ops` of the arrays.
    """
    s = _scratch(k, cache, "a", g)
    if s is None:  # no out=: the plain expressions
        diff = g - m
        diff *= 1 - beta1
        m += diff
        diff = g * g
        diff -= v
        diff *= 1 - beta2
        v += diff
        return
    lib = k.native if k.native is not None else k.torch
    lib.subtract(g, m, out=s)
    s *= 1 - beta1
    m += s
    lib.multiply(g, g, out=s)
    s -= v
    s *= 1 - beta2
    v += s


def divide_step(
    k: Any, p: Any, lr: float, numer: Any, square: Any, eps: float, cache: dict
) -> None:
    """``p -= lr * numer / (sqrt(square) + eps)``, in the book's order, in place."""
    denom, step = _scratch(k, cache, "a", p), _scratch(k, cache, "b", p)
    if denom is None:
        denom = k.xp.sqrt(square)
        denom += eps
        step = lr * numer
        step /= denom
        p -= step
        return
    lib = k.native if k.native is not None else k.torch
    lib.sqrt(square, out=denom)
    denom += eps
    lib.multiply(numer, lr, out=step)
    step /= denom
    p -= step


def squared_norm(xp: Any, g: Any) -> Any:
    """``sum(g * g)`` over all of ``g``'s elements, a 0-d array on ``g``'s device.

    Computed as the dot product of ``g`` flattened with itself: one read of
    ``g`` and no ``g * g`` temporary of its size (for an RNNLM's ``(10,000,
    100)`` float32 embedding, 4 MB allocated, written and read again per
    gradient). NumPy and CuPy run BLAS's ``dot``, PyTorch ``torch.dot``
    (not ``linalg.vecdot``, which on the CPU is 4x slower than ``sum(g *
    g)``), others ``xp.vecdot``. Measured on one busy core, the sum over an
    Rnnlm's gradients: hidden 100, NumPy, 0.13 ms against 0.55 ms for
    ``xp.sum(g * g)``; hidden 650, PyTorch, 2.7 ms against 5.5 ms. Equal
    up to float rounding (the same products, added in another order; BLAS
    keeps several partial sums). Half floats keep ``xp.sum(g * g)``, whose
    sum NumPy and PyTorch accumulate wider than a half-float dot would.
    """
    if g.dtype not in (xp.float32, xp.float64) or g.ndim == 0:
        return xp.sum(g * g)
    flat = xp.reshape(g, (-1,))
    k = ops(g)
    if k.native is not None:
        return k.native.dot(flat, flat)
    if k.torch is not None:
        return k.torch.dot(flat, flat)
    return xp.vecdot(flat, flat)

"""Weight decay (L2) of the book's ch. 6 nets, on the device.

:class:`~xpnn.models.multilayer.MultiLayerNet` adds ``0.5 * lambda *
sum(W**2)`` over every Affine ``W`` to its loss (:func:`decay_loss`) and
``lambda * W`` to each ``W``'s gradient after backpropagation
(:func:`add_decay_grads`), as the book's ``weight_decay_lambda``. Nothing is
read from the device: the sum is a 0-d array added to the 0-d loss, and the
gradient term is written in place through a reused buffer.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from xpnn.backend import ops
from xpnn.layers.base import _into

__all__ = ["add_decay_grads", "decay_loss"]


def decay_loss(loss: Any, decayed: list[tuple[Any, Any]], lam: float) -> Any:
    """``loss + 0.5 * lam * sum(W**2)`` over the ``W`` of each ``(W, grad)`` in ``decayed``.

    The squares are summed in float32 for half-precision weights and the sum
    cast to the loss's dtype; with ``lam == 0`` the loss is returned as it is.
    """
    if lam == 0:
        return loss
    k = ops(decayed[0][0])  # (the loss may be a NumPy scalar)
    xp = k.xp
    total = None
    for W, _ in decayed:
        w = k.widen(W)  # half weights: squared and summed in float32
        term = xp.sum(w * w)
        total = term if total is None else total + term
    if total.dtype != loss.dtype:
        total = xp.astype(total, loss.dtype)
    return loss + (0.5 * lam) * total


def add_decay_grads(
    decayed: list[tuple[Any, Any]], lam: float, dout: Any, buffers: dict[Any, Any]
) -> None:
    """Add ``dout * lam * W`` to each ``grad`` of ``decayed``'s ``(W, grad)`` pairs, in place.

    Args:
        decayed: The ``(W, its gradient)`` pairs.
        lam: The weight decay's strength (0: nothing is done).
        dout: The loss's upstream gradient: a number, or a 0-d array on the
            parameters' device (a loss scale), used on the device, never read.
        buffers: Scratch arrays kept between calls (one per ``W``).
    """
    if lam == 0:
        return
    for i, (W, g) in enumerate(decayed):
        k = ops(W, g)
        if isinstance(dout, (numbers.Number, np.generic)):
            coef: Any = lam * dout
        else:  # a 0-d array (the loss layer has checked it): used on the device
            coef = k.xp.astype(dout, W.dtype) * lam if dout.dtype != W.dtype else dout * lam
        scratch = k.buffer(buffers, i, tuple(W.shape), W.dtype, W)
        _into(g, k.add(g, k.multiply(W, coef, out=scratch), out=g))

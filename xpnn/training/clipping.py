"""Gradient clipping (vol. 2, ch. 5's ``clip_grads``), on the device.

``Trainer.fit(max_grad=...)`` clips after each backward pass, and so does a
mixed-precision step (:mod:`xpnn.training.precision`) on its float32
gradients: both import it from here.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import get_namespace
from xpnn.backend.optimizer_ops import squared_norm
from xpnn.training.model_state import _values

__all__ = ["clip_grads"]


def clip_grads(grads: Any, max_norm: float) -> None:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    Like the book's ``clip_grads``, but the "is the norm too large?" test is
    a ``minimum`` on the device, so it costs no host synchronisation. The
    squares are summed by a dot product per gradient
    (:func:`xpnn.backend.optimizer_ops.squared_norm`: no ``g * g`` temporary).

    Args:
        grads: List or dict of gradient arrays (one backend).
        max_norm: The largest allowed global norm.
    """
    arrays = _values(grads)
    if not arrays:
        return
    xp = get_namespace(*arrays)
    total = sum(squared_norm(xp, g) for g in arrays)  # the book's sum of g ** 2
    rate = xp.minimum(max_norm / (xp.sqrt(total) + 1e-6), xp.ones_like(total))
    for g in arrays:
        g *= xp.astype(rate, g.dtype)

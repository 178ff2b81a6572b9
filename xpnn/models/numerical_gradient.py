"""The numerical gradient of a book net with Dropout and BatchNormalization layers.

A training-mode loss draws new Dropout masks and updates BatchNormalization's
running statistics at every forward pass, so differencing it naively would
compare passes through different masks and leave the statistics moved.
:func:`held_numerical_gradient` draws the masks once, holds them for every
perturbed pass, and puts the masks, the draw counts and the running
statistics back afterwards. :class:`~xpnn.models.multilayer.MultiLayerNet`,
:class:`~xpnn.models.multilayer.MultiLayerNetExtend`,
:class:`~xpnn.models.convnet.SimpleConvNet` and
:class:`~xpnn.models.convnet.DeepConvNet` compute their
``numerical_gradient`` with it.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import get_namespace
from xpnn.gradient import H, _numerical_gradient, warn_if_float32
from xpnn.layers.base import _into

__all__ = ["held_numerical_gradient"]


def held_numerical_gradient(net: Any, x: Any, t: Any) -> dict[str, Any]:
    """Gradients of ``net``'s training-mode loss by central differences, keyed like ``params``.

    The book's ``(L(p + h) - L(p - h)) / 2h`` with ``h = 1e-4``, parameter
    element by element (two forward passes each: use a small net). The loss
    is ``net.forward(x, t, True)``, with every Dropout mask held fixed: one
    training forward pass draws the masks (those the next training pass
    would draw), and the perturbed passes reuse them. Afterwards the Dropout
    layers' ``draws``, ``mask`` and ``hold_mask``, BatchNormalization's
    running statistics and the parameters are exactly as before the call.

    Args:
        net: A net with dict ``params`` (the book's keys, ``W1`` first) and
            the lists ``_batchnorms`` and ``_dropouts`` of its layers.
        x: Its inputs.
        t: Its labels.

    Returns:
        New arrays of the parameters' shapes, dtype and device.
    """
    warn_if_float32(net.params["W1"].dtype, f"{type(net).__name__}.numerical_gradient")
    xp = get_namespace(net.params["W1"])
    saved_stats = [
        (bn, name, a, get_namespace(a).asarray(a, copy=True))
        for bn in net._batchnorms
        for name in ("running_mean", "running_var")
        for a in (getattr(bn, name),)
    ]
    saved_dropout = [(d, d.draws, d.mask, d.hold_mask) for d in net._dropouts]
    try:

        def loss(_: Any) -> Any:
            return xp.asarray(net.forward(x, t, True), copy=True)

        loss(None)  # draws the masks the perturbed passes hold (and checks x, t)
        for d in net._dropouts:
            d.hold_mask = True
        # In the order of net.grads, as the book's numerical_gradient fills its dict.
        return {key: _numerical_gradient(loss, net.params[key], H) for key in net.grads}
    finally:
        for bn, name, array, values in saved_stats:
            setattr(bn, name, array)
            _into(array, values)
        for d, draws, mask, hold in saved_dropout:
            d.draws, d.mask, d.hold_mask = draws, mask, hold

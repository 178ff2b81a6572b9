"""Which layers chain: the shapes a model's layers are walked through before it is built.

:func:`_check_chain` walks one sample of ``input_size`` through ``(kind,
config)`` pairs with each kind's declared
:meth:`~xpnn.layers.Layer.output_sample_shape`, so a model whose layers do not
fit together, or a file asking for more layers or memory than any real net,
is refused (naming the layer and the shapes) before an array is allocated.
:class:`xpnn.models.LayeredNet` calls it when it is made and when a file is read.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from xpnn.layers.base import _declares_sample_shape, _is_loss_kind

__all__ = ["MAX_LAYERS", "MAX_SAMPLE_DIMS", "MAX_SAMPLE_ELEMENTS"]

#: The most layers a LayeredNet has (its loss layer aside). The book's deepest
#: net, DeepConvNet, has 20; ResNet-152 would have about 500. More is a damaged or
#: crafted file (30,000 layers took seconds to load, then failed).
MAX_LAYERS = 1_000
#: The most dimensions of a sample: rows have 1, images 3 (C, H, W), video 4.
MAX_SAMPLE_DIMS = 8
#: The most elements one sample's activations take, summed over the input and
#: every layer's output and working arrays (im2col's): 2**28, 1 GiB of float32
#: for ONE sample. VGG-16 on 224x224 images takes about 2**27; more is a damaged
#: or crafted file (a pad of 10**6 asked for TiBs), or a net no batch fits.
MAX_SAMPLE_ELEMENTS = 2**28


def _check_chain(layers: list[tuple[Any, Any]], loss: tuple[Any, Any], input_size: Any) -> None:
    """Refuse layers that do not chain, before anything is built or read.

    Walks a sample of ``input_size`` (None: only the loss layers' places are
    checked) through ``layers`` and ``loss``, ``(kind, config)`` pairs (a
    config may be a callable giving it: a live layer's), with each kind's
    :meth:`~xpnn.layers.Layer.output_sample_shape`. After a layer that
    declares none (a user's layer), the shapes of the later ones are not
    checked. Limits: :data:`MAX_LAYERS`, :data:`MAX_SAMPLE_DIMS`,
    :data:`MAX_SAMPLE_ELEMENTS`.

    Raises:
        ValueError: Naming the layer (``layer 3 (Affine): ...``) and the shapes.
    """
    _check_layer_count(len(layers))
    for i, (kind, _) in enumerate(layers):
        if _is_loss_kind(kind):
            raise ValueError(
                f"layer {i} ({kind.__name__}) is a loss layer (its forward takes (x, t)); it "
                "can only be the loss layer, after all the others"
            )
    if _is_loss_kind(loss[0]) is False:
        raise ValueError(
            f"the loss layer ({loss[0].__name__}) is not a loss layer (its forward takes x "
            "alone); end the net with one such as SoftmaxWithLoss"
        )
    if input_size is None:
        return
    shape = (input_size,) if isinstance(input_size, int) else tuple(input_size)
    if len(shape) > MAX_SAMPLE_DIMS:
        raise ValueError(
            f"input_size has {len(shape)} dimensions, more than xpnn takes (MAX_SAMPLE_DIMS = "
            f"{MAX_SAMPLE_DIMS}; images have 3)"
        )
    total = math.prod(shape)
    _check_total(total, "input_size", shape)
    steps = [*((f"layer {i}", *pair) for i, pair in enumerate(layers)), ("the loss layer", *loss)]
    for where, kind, config in steps:
        if not _declares_sample_shape(kind):
            return  # a layer of undeclared shapes: the later ones are not checked
        named = f"{where} ({kind.__name__})"
        config = config() if callable(config) else config
        try:
            out = kind.output_sample_shape(config, shape)
            if out is None:
                return
            _check_sample_shape(out, kind, where == "the loss layer")
            total += math.prod(out) + kind.scratch_sample_elements(config, shape)
        except ValueError as exc:
            raise ValueError(f"{named}: {exc}") from None
        shape = out
        _check_total(total, named, shape)


def _check_layer_count(count: int) -> None:
    if count > MAX_LAYERS:
        raise ValueError(
            f"{count:,} layers, more than xpnn takes (MAX_LAYERS = {MAX_LAYERS:,}; the book's "
            "deepest net has 20): a damaged or crafted model"
        )


def _check_total(total: int, where: str, shape: tuple[int, ...]) -> None:
    if total > MAX_SAMPLE_ELEMENTS:
        raise ValueError(
            f"{where}: one sample's activations reach {total:,} elements (samples of shape "
            f"{shape}), more than xpnn takes (MAX_SAMPLE_ELEMENTS = {MAX_SAMPLE_ELEMENTS:,}, "
            "1 GiB of float32 for one sample): a damaged or crafted model, or too large a net"
        )


def _check_sample_shape(out: Any, kind: Any, loss: bool) -> None:
    """A declared output sample shape: a tuple of at most MAX_SAMPLE_DIMS positive ints."""
    ok = isinstance(out, tuple) and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in out
    )
    if not ok or len(out) > MAX_SAMPLE_DIMS or not (out or loss):
        raise ValueError(
            f"{kind.__name__}.output_sample_shape gave {out!r:.80}, not a sample shape (1 to "
            f"{MAX_SAMPLE_DIMS} positive ints)"
        )

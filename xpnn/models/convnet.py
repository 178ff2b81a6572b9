"""The book's convolutional networks: SimpleConvNet (ch. 7) and DeepConvNet (ch. 8).

``ch07/simple_convnet.py`` and ``ch08/deep_convnet.py`` of *Deep Learning
from Scratch* (vol. 1), made of :class:`~xpnn.layers.Convolution` and
:class:`~xpnn.layers.Pooling` (max, 2x2, stride 2)::

    SimpleConvNet:  Conv - Relu - Pool - Affine - Relu - Affine - SoftmaxWithLoss
    DeepConvNet:    Conv - Relu - Conv - Relu - Pool -
                    Conv - Relu - Conv - Relu - Pool -
                    Conv - Relu - Conv - Relu - Pool -
                    Affine - Relu - Dropout - Affine - Dropout - SoftmaxWithLoss

Both are :class:`xpnn.models.LayeredNet` models with the book's signatures
(plus keyword-only ``seed`` and ``dtype``) and names: ``params`` and
``grads`` are dicts with the book's keys ``W1``, ``b1``, ... (the very
arrays the layers hold: update them in place, as every optimizer of
:mod:`xpnn.optimizers` does), ``predict``, ``loss``, ``accuracy(x, t,
batch_size=100)``, ``gradient`` and ``numerical_gradient``. They take
images ``(N, C, H, W)`` of the parameters' dtype, train with
:class:`xpnn.Trainer` and save and load with :mod:`xpnn.io`; importing this
module adds them to :data:`xpnn.models.MODELS`.

Two things the book's code leaves to luck are computed here: the sizes
between the layers (the book's SimpleConvNet rounds ``filter_num *
(conv_output_size / 2) ** 2``, wrong for an odd convolution output; its
DeepConvNet hard-codes ``64 * 4 * 4`` for 28x28 inputs), and DeepConvNet's
He scales ``sqrt(2 / fan_in)`` (the book's ``pre_node_nums``, marked "TODO:
compute automatically": equal to the book's list for the book's sizes).
Sizes that do not fit (a filter larger than the padded input, a pooling
output of 0) are refused before anything is allocated
(:mod:`xpnn.models.conv_settings`). Here each net plans its layers from its
arguments, and both are built from their plan (the weights drawn in the
book's order, then the layers); what they share once built, the book's API
and saving, is their base class in :mod:`xpnn.models.convnet_base`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from xpnn.backend import get_backend, zeros
from xpnn.layers import Affine, Convolution, Dropout, Pooling, Relu, SoftmaxWithLoss
from xpnn.models.conv_settings import (
    _DEEP_CONV_1,
    _DEEP_CONV_2,
    _DEEP_CONV_3,
    _DEEP_CONV_4,
    _DEEP_CONV_5,
    _DEEP_CONV_6,
    _DROPOUT_RATIO,
    _POOL,
    _SIMPLE_CONV,
    _checked_conv_param,
    _common,
    _conv_out,
    _pool_out,
)
from xpnn.models.convnet_base import _ConvNet
from xpnn.models.layered import MODELS, LayeredNet, _float_dtype
from xpnn.models.weight_init import _dropout_seeds, _init_scale, _init_std
from xpnn.params import ParamDict
from xpnn.random import default_rng, fresh_seed

__all__ = ["DeepConvNet", "SimpleConvNet"]


class SimpleConvNet(_ConvNet):
    """The book's ``SimpleConvNet`` (ch. 7): Conv - Relu - Pool - Affine - Relu - Affine.

    The pooling is 2x2 max pooling with stride 2; the loss SoftmaxWithLoss.

    Args:
        input_dim: A sample's shape ``(C, H, W)`` (``(1, 28, 28)`` for MNIST).
        conv_param: The convolution, a dict of exactly ``filter_num`` (FN),
            ``filter_size`` (FS, square filters), ``pad`` (>= 0) and
            ``stride``.
        hidden_size: Units of the hidden Affine layer.
        output_size: Classes.
        weight_init_std: Scale of the initial weights: a positive number
            (the book's 0.01), or ``'relu'``/``'he'`` (``sqrt(2 / fan_in)``)
            or ``'sigmoid'``/``'xavier'`` (``sqrt(1 / fan_in)``) per layer.
            ``W1``, ``W2``, ``W3`` are that scale times standard-normal
            draws from ``xpnn.default_rng(seed)``, in that order (the same
            on every backend); biases start at 0.
        seed: Seed of the initial weights, an int in ``[0, 2**63)``; None
            takes one from :func:`xpnn.random.fresh_seed` (the global seed's
            sequence while one is set, else OS entropy), so :attr:`seed` (and
            the saved config) is always an int.
        dtype: Float dtype of the parameters (the backend's default, float32,
            if omitted; ``"float64"`` for gradient checks).

    Attributes:
        params: ``{'W1': (FN, C, FS, FS), 'b1': (FN,), 'W2': (FN * PH * PW,
            hidden_size), 'b2': (hidden_size,), 'W3': (hidden_size,
            output_size), 'b3': (output_size,)}`` with the convolution's
            output ``OH = (H + 2 * pad - FS) // stride + 1`` (``OW`` alike)
            and the pooling's ``PH = (OH - 2) // 2 + 1`` (``PW`` alike): a
            :class:`~xpnn.params.ParamDict` of the layers' own arrays.
        grads: A dict of the same keys: the layers' gradient arrays, filled
            in place by :meth:`backward` and :meth:`gradient`.
        layers: ``[Convolution, Relu, Pooling, Affine, Relu, Affine]`` (the
            book's ``Conv1``, ``Relu1``, ``Pool1``, ``Affine1``, ``Relu2``,
            ``Affine2``, as a list); ``loss_layer`` (also ``last_layer``).
        input_dim: The settings below are read-only: the shape of a sample.
        conv_param: The convolution's settings (a read-only dict).
        hidden_size: Hidden units of the first Affine layer.
        output_size: Classes.
        weight_init_std: As given.
        seed: The seed of the initial weights (an int, drawn when None).

    Raises:
        ValueError: A size that is not a positive int, a ``conv_param``
            with a missing or unknown key or a bad value (the message names
            the key), sizes that do not fit (a filter larger than the padded
            input, a convolution output smaller than the 2x2 pooling), a
            seed out of range. Nothing is allocated then.
        TypeError: An argument of the wrong type.
    """

    _CONFIG_KEYS = (
        "input_dim",
        "conv_param",
        "hidden_size",
        "output_size",
        "weight_init_std",
        "seed",
    )

    def __init__(
        self,
        input_dim: tuple[int, int, int] = (1, 28, 28),
        conv_param: Mapping[str, int] = _SIMPLE_CONV,
        hidden_size: int = 100,
        output_size: int = 10,
        weight_init_std: Any = 0.01,
        *,
        seed: int | None = None,
        dtype: Any = None,
    ):
        _build(
            self,
            dtype,
            {
                "input_dim": input_dim,
                "conv_param": conv_param,
                "hidden_size": hidden_size,
                "output_size": output_size,
                "weight_init_std": weight_init_std,
                "seed": seed,
            },
        )

    @classmethod
    def _settings(cls, given: dict[str, Any]) -> dict[str, Any]:
        s = _common(given)
        s["conv_param"] = _checked_conv_param(given["conv_param"], "conv_param")
        s["weight_init_std"] = _init_std(given["weight_init_std"])
        return {k: s[k] for k in cls._CONFIG_KEYS}

    @classmethod
    def _plan(cls, s: dict[str, Any]) -> list[tuple[Any, ...]]:
        c, h, w = s["input_dim"]
        p = s["conv_param"]
        fn, fs = p["filter_num"], p["filter_size"]
        conv = _conv_out((h, w), p, "conv_param", "input")
        ph, pw = _pool_out(conv, "the convolution")
        flat, hidden = fn * ph * pw, s["hidden_size"]
        return [
            ("conv", "W1", (fn, c, fs, fs), c * fs * fs, p["stride"], p["pad"]),
            ("relu",),
            ("pool",),
            ("affine", "W2", (flat, hidden), flat),
            ("relu",),
            ("affine", "W3", (hidden, s["output_size"]), hidden),
        ]

    @classmethod
    def _scale(cls, s: dict[str, Any], fan_in: int) -> float:
        return _init_scale(s["weight_init_std"], fan_in)

    @property
    def conv_param(self) -> dict[str, int]:
        """The convolution's ``filter_num``, ``filter_size``, ``pad``, ``stride`` (a copy)."""
        return dict(self._cfg["conv_param"])

    @property
    def weight_init_std(self) -> str | float:
        """The initial weights' setting (a number, or a lower-case name)."""
        return self._cfg["weight_init_std"]


class DeepConvNet(_ConvNet):
    """The book's ``DeepConvNet`` (ch. 8): six 3x3 convolutions, three poolings, two Affine.

    ``conv - relu - conv - relu - pool`` three times (16, 16, 32, 32, 64, 64
    filters by default), then ``affine - relu - dropout - affine - dropout``
    and SoftmaxWithLoss, as the book's code (its docstring and layers: a
    Dropout after each Affine). Poolings are 2x2 max with stride 2; the
    Dropout ratio is the book's 0.5.

    Args:
        input_dim: A sample's shape ``(C, H, W)`` (``(1, 28, 28)`` for MNIST).
        conv_param_1: The first convolution, a dict of exactly
            ``filter_num``, ``filter_size`` (square filters), ``pad`` (>= 0)
            and ``stride``; likewise ``conv_param_2`` ... ``conv_param_6``.
            The defaults are the book's (3x3 filters, pad 1, except pad 2 in
            ``conv_param_4``, stride 1).
        hidden_size: Units of the hidden Affine layer (the book's 50).
        output_size: Classes.
        seed: Seed of the initial weights, an int in ``[0, 2**63)`` (None:
            from :func:`xpnn.random.fresh_seed`, the global seed's sequence
            while one is set, else OS entropy). ``W1`` ... ``W8`` are He-scaled
            standard-normal draws from ``xpnn.default_rng(seed)`` in that
            order (the same on every backend), ``sqrt(2 / fan_in)`` with
            ``fan_in`` a filter's ``C_in * FS * FS`` for a convolution and the
            layer's inputs for an Affine layer: for the book's sizes, the
            book's ``pre_node_nums`` ``[1*3*3, 16*3*3, 16*3*3, 32*3*3,
            32*3*3, 64*3*3, 64*4*4, 50]``. Biases start at 0. The two
            Dropout layers' seeds derive from it (the same masks on every
            backend).
        dtype: Float dtype of the parameters (the backend's default, float32,
            if omitted; ``"float64"`` for gradient checks).

    Attributes:
        params: ``W1`` ... ``W6`` ``(FN_i, C_i, FS_i, FS_i)`` (``C_i`` the
            previous layer's filters, ``C`` for the first), ``b1`` ...
            ``b6`` ``(FN_i,)``, ``W7`` ``(FN_6 * H' * W', hidden_size)``
            (``(1024, 50)`` for the book's sizes), ``b7``, ``W8``
            ``(hidden_size, output_size)``, ``b8``: a
            :class:`~xpnn.params.ParamDict` of the layers' own arrays.
        grads: A dict of the same keys, the layers' gradient arrays.
        layers: The 20 layers in the book's order (Convolution at 0, 2, 5,
            7, 10, 12; Affine at 15 and 18; Dropout at 17 and 19);
            ``loss_layer`` (also ``last_layer``).
        input_dim, conv_params, hidden_size, output_size, seed: The
            settings, read-only.

    Raises:
        ValueError, TypeError: As :class:`SimpleConvNet` (the message names
            the ``conv_param_i`` and key).
    """

    _CONV_NAMES = tuple(f"conv_param_{i}" for i in range(1, 7))
    _CONFIG_KEYS = ("input_dim", *_CONV_NAMES, "hidden_size", "output_size", "seed")

    def __init__(
        self,
        input_dim: tuple[int, int, int] = (1, 28, 28),
        conv_param_1: Mapping[str, int] = _DEEP_CONV_1,
        conv_param_2: Mapping[str, int] = _DEEP_CONV_2,
        conv_param_3: Mapping[str, int] = _DEEP_CONV_3,
        conv_param_4: Mapping[str, int] = _DEEP_CONV_4,
        conv_param_5: Mapping[str, int] = _DEEP_CONV_5,
        conv_param_6: Mapping[str, int] = _DEEP_CONV_6,
        hidden_size: int = 50,
        output_size: int = 10,
        *,
        seed: int | None = None,
        dtype: Any = None,
    ):
        conv = (conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6)
        given = {"input_dim": input_dim, **dict(zip(self._CONV_NAMES, conv, strict=True))}
        given.update(hidden_size=hidden_size, output_size=output_size, seed=seed)
        _build(self, dtype, given)

    @classmethod
    def _settings(cls, given: dict[str, Any]) -> dict[str, Any]:
        s = _common(given)
        for name in cls._CONV_NAMES:
            s[name] = _checked_conv_param(given[name], name)
        return {k: s[k] for k in cls._CONFIG_KEYS}

    @classmethod
    def _plan(cls, s: dict[str, Any]) -> list[tuple[Any, ...]]:
        channels, h, w = s["input_dim"]
        size, where = (h, w), "input"
        plan: list[tuple[Any, ...]] = []
        for i, name in enumerate(cls._CONV_NAMES, 1):
            p = s[name]
            fn, fs = p["filter_num"], p["filter_size"]
            size = _conv_out(size, p, name, where)
            plan += [
                (
                    "conv",
                    f"W{i}",
                    (fn, channels, fs, fs),
                    channels * fs * fs,
                    p["stride"],
                    p["pad"],
                ),
                ("relu",),
            ]
            channels, where = fn, f"{name}'s output"
            if i % 2 == 0:
                size = _pool_out(size, f"{name}'s convolution")
                plan.append(("pool",))
                where = f"the pooling after {name}"
        flat, hidden = channels * size[0] * size[1], s["hidden_size"]
        plan += [
            ("affine", "W7", (flat, hidden), flat),
            ("relu",),
            ("dropout",),
            ("affine", "W8", (hidden, s["output_size"]), hidden),
            ("dropout",),
        ]
        return plan

    @classmethod
    def _scale(cls, s: dict[str, Any], fan_in: int) -> float:
        return math.sqrt(2.0 / fan_in)  # He, as the book's weight_init_scales

    @property
    def conv_params(self) -> list[dict[str, int]]:
        """The six convolutions' ``conv_param`` dicts (copies), first to last."""
        return [dict(self._cfg[name]) for name in self._CONV_NAMES]


def _build(net: _ConvNet, dtype: Any, given: dict[str, Any]) -> None:
    """Check every argument, then draw the weights and make the layers of ``net``.

    What both nets' constructors do; nothing is allocated before every
    argument and size is checked.
    """
    cls, who = type(net), type(net).__name__
    try:
        s = cls._settings(given)
        plan = cls._plan(s)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{who}: {exc}") from None
    dtype = _float_dtype(dtype)  # an unknown dtype fails here, before any draw
    backend = get_backend()
    if not backend.xp.isdtype(dtype, "real floating"):
        raise TypeError(f"{who}: dtype must be a float dtype such as 'float32', got {dtype}")
    if s["seed"] is None:
        s["seed"] = fresh_seed()
    keyed = _draw_weights(plan, s, cls._scale, dtype, backend)
    layers, keys, dropouts = _make_layers(plan, keyed, s["seed"])
    LayeredNet.__init__(net, layers, SoftmaxWithLoss(), s["input_dim"])
    net._cfg, net._dropouts = s, dropouts
    net._batchnorms = []  # none; numerical_gradient looks for them
    grads = dict(zip(keys, net.grads, strict=True))
    # The book's keys in the book's order (W1, b1, W2, ...), over the layers' arrays.
    net._params = ParamDict({k: keyed[k] for k in keys}, who)
    net.grads = {k: grads[k] for k in keys}


def _draw_weights(
    plan: list[tuple[Any, ...]], s: dict[str, Any], scale: Any, dtype: Any, backend: Any
) -> dict[str, Any]:
    """The weights of ``plan``'s conv and affine layers, drawn in the book's order (W1, W2...).

    ``W`` is ``scale(s, fan_in)`` times standard-normal draws from
    ``default_rng(s["seed"])`` (the same on every backend); biases are 0.
    """
    rng = default_rng(s["seed"])
    keyed: dict[str, Any] = {}
    for step in plan:
        if step[0] in ("conv", "affine"):
            key, shape, fan_in = step[1], step[2], step[3]
            keyed[key] = rng.normal(0.0, scale(s, fan_in), shape, dtype=dtype)
            keyed["b" + key[1:]] = zeros(
                shape[0 if step[0] == "conv" else 1], dtype=dtype, backend=backend
            )
    return keyed


def _make_layers(
    plan: list[tuple[Any, ...]], keyed: dict[str, Any], seed: int
) -> tuple[list[Any], list[str], list[Any]]:
    """The layers of ``plan`` over the arrays ``keyed``: (layers, param keys in layer order,
    the Dropout layers, whose seeds derive from the net's ``seed``)."""
    n_dropout = sum(step[0] == "dropout" for step in plan)
    seeds = iter(_dropout_seeds(seed, n_dropout) if n_dropout else [])
    layers: list[Any] = []
    keys: list[str] = []
    dropouts: list[Any] = []
    for step in plan:
        kind = step[0]
        if kind in ("conv", "affine"):
            key, b = step[1], "b" + step[1][1:]
            if kind == "conv":
                layers.append(Convolution(keyed[key], keyed[b], step[4], step[5]))
            else:
                layers.append(Affine(keyed[key], keyed[b]))
            keys += [key, b]
        elif kind == "relu":
            layers.append(Relu())
        elif kind == "pool":
            layers.append(Pooling(_POOL, _POOL, stride=_POOL))
        else:
            dropouts.append(Dropout(_DROPOUT_RATIO, seed=next(seeds)))
            layers.append(dropouts[-1])
    return layers, keys, dropouts


# Saved files may name them (xpnn.io.save/load): importing this module registers them.
MODELS.update({cls.__name__: cls for cls in (SimpleConvNet, DeepConvNet)})

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
output of 0) are refused before anything is allocated.
"""

from __future__ import annotations

import inspect
import math
import numbers
import secrets
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from xpnn.backend import get_backend, get_namespace, to_numpy, zeros
from xpnn.layers import (
    Affine,
    Convolution,
    Dropout,
    Pooling,
    Relu,
    SoftmaxWithLoss,
)
from xpnn.layers.base import _check_config_keys
from xpnn.layers.regularization import _seed
from xpnn.models.layered import MODELS, LayeredNet, _float_dtype
from xpnn.models.multilayer import (
    MultiLayerNet,
    _dropout_seeds,
    _init_scale,
    _init_std,
    _positive_int,
)
from xpnn.params import ParamDict
from xpnn.random import default_rng

__all__ = ["DeepConvNet", "SimpleConvNet"]

#: The keys of a ``conv_param`` dict (the book's), in the book's order.
_CONV_PARAM_KEYS = ("filter_num", "filter_size", "pad", "stride")


def _conv(filter_num: int, filter_size: int, pad: int, stride: int) -> Mapping[str, int]:
    # Read-only defaults (a dict default would be shared by every call).
    return MappingProxyType(
        {"filter_num": filter_num, "filter_size": filter_size, "pad": pad, "stride": stride}
    )


_SIMPLE_CONV = _conv(30, 5, 0, 1)
_DEEP_CONV_1 = _conv(16, 3, 1, 1)
_DEEP_CONV_2 = _conv(16, 3, 1, 1)
_DEEP_CONV_3 = _conv(32, 3, 1, 1)
_DEEP_CONV_4 = _conv(32, 3, 2, 1)
_DEEP_CONV_5 = _conv(64, 3, 1, 1)
_DEEP_CONV_6 = _conv(64, 3, 1, 1)

#: The pooling of both nets (the book's ``Pooling(pool_h=2, pool_w=2, stride=2)``).
_POOL = 2
#: DeepConvNet's dropout ratio (the book's, fixed).
_DROPOUT_RATIO = 0.5


def _checked_input_dim(value: Any) -> tuple[int, int, int]:
    """``(C, H, W)``: three positive ints (a list from a file too)."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 3
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0 for v in value)
    ):
        raise ValueError(
            "input_dim must be (channels, height, width), three positive ints such as "
            f"(1, 28, 28), got {value!r:.80}"
        )
    c, h, w = (int(v) for v in value)
    return c, h, w


def _checked_conv_param(value: Any, name: str) -> dict[str, int]:
    """A ``conv_param`` dict: exactly the book's four keys, sizes that make sense.

    Raises:
        TypeError: Not a dict (a mapping).
        ValueError: A missing or unknown key, or a value out of range (the
            message names ``name`` and the key).
    """
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be a dict with the keys {', '.join(_CONV_PARAM_KEYS)}, "
            f"got {type(value).__name__}"
        )
    missing = [k for k in _CONV_PARAM_KEYS if k not in value]
    unknown = [k for k in value if k not in _CONV_PARAM_KEYS]
    if missing or unknown:
        what = []
        if missing:
            what.append(f"lacks {', '.join(map(repr, missing))}")
        if unknown:
            what.append(f"has unknown keys {', '.join(repr(k) for k in unknown)[:120]}")
        raise ValueError(
            f"{name} {' and '.join(what)}; it takes exactly {', '.join(_CONV_PARAM_KEYS)} "
            "(e.g. {'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1})"
        )
    out = {}
    for key in _CONV_PARAM_KEYS:
        v = value[key]
        least = 0 if key == "pad" else 1
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < least:
            kind = "an int >= 0" if key == "pad" else "a positive int"
            raise ValueError(f"{name}['{key}'] must be {kind}, got {v!r:.80}")
        out[key] = int(v)
    return out


def _checked_seed(value: Any) -> int | None:
    return None if value is None else _seed(value, "seed")


def _conv_out(size: tuple[int, int], p: dict[str, int], name: str, where: str) -> tuple[int, int]:
    """The convolution's output ``(out_h, out_w)`` (the book's formula, floored as its im2col).

    Raises:
        ValueError: The filter is larger than the padded input.
    """
    fs, pad, stride = p["filter_size"], p["pad"], p["stride"]
    padded = (size[0] + 2 * pad, size[1] + 2 * pad)
    if fs > min(padded):
        raise ValueError(
            f"{name}['filter_size'] {fs} is larger than its padded input {padded[0]}x{padded[1]} "
            f"({where} {size[0]}x{size[1]} with pad {pad}); use a smaller filter_size, more "
            "pad or a larger input_dim"
        )
    return ((padded[0] - fs) // stride + 1, (padded[1] - fs) // stride + 1)


def _pool_out(size: tuple[int, int], where: str) -> tuple[int, int]:
    """The 2x2, stride-2 max pooling's output (floored, as the book's Pooling).

    Raises:
        ValueError: The input is smaller than 2x2 (the output would be empty).
    """
    if min(size) < _POOL:
        raise ValueError(
            f"the {_POOL}x{_POOL} pooling (stride {_POOL}) after {where} needs an input of at "
            f"least {_POOL}x{_POOL}, got {size[0]}x{size[1]} (its output would be empty); use "
            "a larger input_dim, more pad or a smaller filter_size or stride"
        )
    return ((size[0] - _POOL) // _POOL + 1, (size[1] - _POOL) // _POOL + 1)


class _ConvNet(LayeredNet):
    """What SimpleConvNet and DeepConvNet share: building, the book's API, saving.

    A subclass gives ``_CONFIG_KEYS`` (the constructor's arguments but
    ``dtype``), ``_settings(given)`` (them checked) and ``_plan(settings)``:
    the layers input to output as tuples ``("conv", key, W_shape, fan_in,
    stride, pad)``, ``("affine", key, W_shape, fan_in)``, ``("relu",)``,
    ``("pool",)``, ``("dropout",)``, computed without allocating.
    """

    _CONFIG_KEYS: tuple[str, ...] = ()

    # ------------------------------------------------------------ building

    def _build(self, dtype: Any, given: dict[str, Any]) -> None:
        """Check every argument, then draw the weights and make the layers."""
        who = type(self).__name__
        try:
            s = self._settings(given)
            plan = self._plan(s)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{who}: {exc}") from None
        dtype = _float_dtype(dtype)  # an unknown dtype fails here, before any draw
        backend = get_backend()
        if not backend.xp.isdtype(dtype, "real floating"):
            raise TypeError(f"{who}: dtype must be a float dtype such as 'float32', got {dtype}")
        if s["seed"] is None:
            s["seed"] = secrets.randbits(63)
        self._cfg = s
        rng = default_rng(s["seed"])
        keyed: dict[str, Any] = {}
        for step in plan:  # the weights in the book's order: W1, W2, ...
            if step[0] in ("conv", "affine"):
                key, shape, fan_in = step[1], step[2], step[3]
                scale = self._scale(s, fan_in)
                keyed[key] = rng.normal(0.0, scale, shape, dtype=dtype)
                keyed["b" + key[1:]] = zeros(
                    shape[0 if step[0] == "conv" else 1], dtype=dtype, backend=backend
                )
        n_dropout = sum(step[0] == "dropout" for step in plan)
        seeds = iter(_dropout_seeds(s["seed"], n_dropout) if n_dropout else [])
        layers: list[Any] = []
        keys: list[str] = []
        self._dropouts: list[Any] = []
        self._batchnorms: list[Any] = []  # none; numerical_gradient looks for them
        for step in plan:
            kind = step[0]
            if kind == "conv":
                key, b = step[1], "b" + step[1][1:]
                layers.append(Convolution(keyed[key], keyed[b], step[4], step[5]))
                keys += [key, b]
            elif kind == "affine":
                key, b = step[1], "b" + step[1][1:]
                layers.append(Affine(keyed[key], keyed[b]))
                keys += [key, b]
            elif kind == "relu":
                layers.append(Relu())
            elif kind == "pool":
                layers.append(Pooling(_POOL, _POOL, stride=_POOL))
            else:
                dropout = Dropout(_DROPOUT_RATIO, seed=next(seeds))
                layers.append(dropout)
                self._dropouts.append(dropout)
        super().__init__(layers, SoftmaxWithLoss(), s["input_dim"])
        grads = dict(zip(keys, self.grads, strict=True))
        # The book's keys in the book's order (W1, b1, W2, ...), over the layers' arrays.
        self._params = ParamDict({k: keyed[k] for k in keys}, who)
        self.grads = {k: grads[k] for k in keys}

    @classmethod
    def layer_plan(cls, **kwargs: Any) -> list[tuple[Any, ...]]:
        """The layers the constructor would make with ``kwargs``, without making them.

        Input to output, as tuples: ``("conv", key, W_shape, fan_in, stride,
        pad)``, ``("affine", key, W_shape, fan_in)``, ``("relu",)``,
        ``("pool",)`` (2x2 max pooling, stride 2) and ``("dropout",)``. The
        arguments are the constructor's (but ``dtype``), its defaults for
        those not given, checked as it checks them; no array is allocated,
        so sizes (e.g. for a memory estimate) are known before any is.

        Raises:
            TypeError, ValueError: As the constructor for the same arguments.
        """
        given = {
            name: p.default
            for name, p in inspect.signature(cls).parameters.items()
            if name in cls._CONFIG_KEYS
        }
        unknown = set(kwargs) - set(cls._CONFIG_KEYS)
        if unknown:
            raise TypeError(f"{cls.__name__}.layer_plan got unknown arguments {sorted(unknown)}")
        given.update(kwargs)
        try:
            return cls._plan(cls._settings(given))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{cls.__name__}: {exc}") from None

    @classmethod
    def _settings(cls, given: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def _plan(cls, s: dict[str, Any]) -> list[tuple[Any, ...]]:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def _scale(cls, s: dict[str, Any], fan_in: int) -> float:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def _common(given: dict[str, Any]) -> dict[str, Any]:
        """``input_dim``, ``hidden_size``, ``output_size`` and ``seed`` checked."""
        return {
            "input_dim": _checked_input_dim(given["input_dim"]),
            "hidden_size": _positive_int(given["hidden_size"], "hidden_size"),
            "output_size": _positive_int(given["output_size"], "output_size"),
            "seed": _checked_seed(given["seed"]),
        }

    # ------------------------------------------------------------ settings (read-only)

    @property
    def input_dim(self) -> tuple[int, int, int]:
        """A sample's shape ``(C, H, W)``."""
        return self._cfg["input_dim"]

    @property
    def hidden_size(self) -> int:
        """Units of the hidden Affine layer."""
        return self._cfg["hidden_size"]

    @property
    def output_size(self) -> int:
        """Classes."""
        return self._cfg["output_size"]

    @property
    def seed(self) -> int:
        """The seed of the initial weights (and of the Dropout layers' seeds)."""
        return self._cfg["seed"]

    @property
    def last_layer(self) -> Any:
        """The book's name of :attr:`loss_layer` (SoftmaxWithLoss)."""
        return self.loss_layer

    # ------------------------------------------------------------ the book's API

    def loss(self, x: Any, t: Any, train_flg: bool = True) -> Any:
        """The book's ``loss``: mean cross-entropy of the batch, a 0-d array.

        Training mode by default, as the book's DeepConvNet (whose Dropout
        layers then draw new masks; SimpleConvNet has no layer that cares);
        ``train_flg=False`` for the test-mode loss. Keeps what
        :meth:`backward` needs.

        Args:
            x: Images ``(N, C, H, W)`` of the parameters' dtype.
            t: Integer labels ``(N,)`` or one-hot ``(N, output_size)``.
            train_flg: Training (True) or test mode.
        """
        return self.forward(x, t, train_flg)

    def gradient(self, x: Any, t: Any) -> dict[str, Any]:
        """Gradients of the training-mode loss by backpropagation, keyed like ``params``.

        One training forward pass (Dropout draws its next masks), one
        backward pass.

        Returns:
            :attr:`grads`, the layers' gradient arrays: the next call
            overwrites them (copy them to keep them).
        """
        self.forward(x, t, True)
        self.backward(input_grad=False)
        return self.grads

    def numerical_gradient(self, x: Any, t: Any) -> dict[str, Any]:
        """Gradients of the training-mode loss by central differences, keyed like ``params``.

        The book's ``(L(p + h) - L(p - h)) / 2h`` with ``h = 1e-4``, element
        by element through the whole net (two forward passes each: use a
        tiny net), every Dropout mask held fixed (those the next training
        pass would draw). The Dropout layers' ``draws``, ``mask`` and
        ``hold_mask`` and the parameters are as before afterwards, so
        :meth:`gradient` on the same ``x`` backpropagates through the same
        masks. Build the net with ``dtype="float64"`` (float32 warns).

        Returns:
            New arrays of the parameters' shapes, dtype and device.
        """
        return MultiLayerNet.numerical_gradient(self, x, t)  # type: ignore[arg-type]

    def accuracy(self, x: Any, t: Any, batch_size: int = 100) -> float:
        """Fraction of correctly classified samples, in test mode, ``batch_size`` at a time.

        Each batch is predicted and compared on the device, the counts are
        summed there, and the total is read once at the end. Every sample
        counts, the last partial batch too (the book's loop skips it but
        still divides by ``N``).

        Args:
            x: Images ``(N, C, H, W)`` of the parameters' dtype, N >= 1.
            t: Integer labels ``(N,)`` or one-hot ``(N, output_size)``.
            batch_size: Samples per forward pass, a positive int.

        Returns:
            The accuracy, a Python float in ``[0, 1]``.

        Raises:
            ValueError: ``batch_size`` not a positive int, no samples, or
                ``t`` of another length or shape.
        """
        size = _positive_int(batch_size, "batch_size")
        xp = get_namespace(x, t)
        n = int(x.shape[0]) if x.ndim else 0
        if n == 0:
            raise ValueError(f"{type(self).__name__}.accuracy needs at least one sample")
        if t.ndim not in (1, 2) or t.shape[0] != n:
            raise ValueError(
                f"{type(self).__name__}.accuracy: t must be labels ({n},) or one-hot ({n}, "
                f"{self.output_size}) for x of {n} samples, got shape {tuple(t.shape)}"
            )
        if t.ndim == 2:
            t = xp.argmax(t, axis=1)
        total = None
        for start in range(0, n, size):
            stop = min(start + size, n)
            y = xp.argmax(self._run(x[start:stop, ...], False), axis=1)
            hits = xp.sum(xp.astype(y == t[start:stop], xp.int64))
            total = hits if total is None else total + hits
        return int(to_numpy(total)) / n  # the one host read

    # ------------------------------------------------------------ saving

    @property
    def config(self) -> dict[str, Any]:
        """Every constructor argument but ``dtype`` (``seed`` as an int): JSON data."""
        s = self._cfg
        return {
            k: list(v) if k == "input_dim" else dict(v) if isinstance(v, dict) else v
            for k, v in s.items()
        }

    @classmethod
    def _checked_config(cls, config: Any) -> dict[str, Any]:
        """A config from a file checked as the constructor checks its arguments.

        Raises:
            ValueError: Not a dict of exactly the constructor's keys, or a
                value the constructor refuses (the message names the key).
        """
        _check_config_keys(cls.__name__, config, cls._CONFIG_KEYS)
        if config["seed"] is None:
            raise ValueError(f"{cls.__name__} config 'seed' must be an int, got None")
        try:
            s = cls._settings(config)
            cls._plan(s)
        except (TypeError, ValueError) as exc:  # from a file: a ValueError, as for every layer
            raise ValueError(f"{cls.__name__} config: {exc}") from None
        return s

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """The names and shapes of the arrays a model of ``config`` saves, allocating nothing.

        ``params`` by the book's keys, ``W1``, ``b1``, ``W2``, ...

        Raises:
            ValueError: ``config`` is not one :attr:`config` gives.
        """
        shapes: dict[str, tuple[int, ...]] = {}
        for step in cls._plan(cls._checked_config(config)):
            if step[0] in ("conv", "affine"):
                key, shape = step[1], step[2]
                shapes[key] = shape
                shapes["b" + key[1:]] = (shape[0] if step[0] == "conv" else shape[1],)
        return shapes

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any = None) -> Any:
        """A model of ``config`` (its seed's initial weights), on the active backend.

        Args:
            config: As :attr:`config` gives it.
            dtype: Float dtype (the backend's default if omitted).

        Raises:
            ValueError: As :meth:`array_shapes`.
        """
        s = cls._checked_config(config)
        return cls(**s, dtype=dtype)

    def named_arrays(self) -> dict[str, Any]:
        """The arrays a saved file holds: ``params`` (Dropout has no arrays)."""
        return dict(self.params)


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
            draws one from the OS's entropy, so :attr:`seed` (and the saved
            config) is always an int.
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
        self._build(
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
        s = cls._common(given)
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
            drawn from the OS's entropy). ``W1`` ... ``W8`` are He-scaled
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
        self._build(dtype, given)

    @classmethod
    def _settings(cls, given: dict[str, Any]) -> dict[str, Any]:
        s = cls._common(given)
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


# Saved files may name them (xpnn.io.save/load): importing this module registers them.
MODELS.update({cls.__name__: cls for cls in (SimpleConvNet, DeepConvNet)})

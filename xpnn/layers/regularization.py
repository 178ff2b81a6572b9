"""Regularization layers (vol. 1, ch. 6): ``Dropout`` and ``BatchNormalization``."""

from __future__ import annotations

import math
import numbers
from types import MappingProxyType
from typing import Any

from xpnn.backend import _dtype_name, device_of, get_namespace, ops, zeros
from xpnn.layers.base import (
    Layer,
    _check_input,
    _config_sizes,
    _into,
    _real_in,
    _zeros_like_all,
    register_layer,
)
from xpnn.random import _counter_bits, fresh_seed

__all__ = ["BatchNormalization", "Dropout"]


#: Dropout keeps an element where the top 24 bits ``m`` of its hash give
#: ``m * 2**-24 > dropout_ratio`` (see :meth:`Dropout.forward`).
_DROPOUT_BITS = 24


@register_layer
class Dropout(Layer):
    """The book's dropout: zero a random part of the activations while training.

    Training (``forward(x, train_flg=True)``): ``mask = u > dropout_ratio``
    with ``u = xpnn.random.counter_uniform(x.shape, (seed, draws), like=x,
    dtype="float64")``, then ``draws += 1`` and the output is ``x * mask``.
    The mask is drawn on x's device (no host round trip, nothing read) and
    is the same on every backend for the same ``seed`` and ``draws``, in
    every dtype (the comparison is done exactly, on the 24-bit integers
    behind ``u``). Test mode: ``x * (1 - dropout_ratio)``, as the book
    scales (not "inverted" dropout). With ``dropout_ratio`` 0 every element
    is kept (no hash is computed; ``draws`` still counts).

    Backward: ``dout * mask`` after a training forward pass, ``dout * (1 -
    dropout_ratio)`` after a test one. Outputs keep x's shape and dtype; the
    mask is applied in x's dtype.

    Config: ``{"dropout_ratio": r, "seed": s}``. No parameters.

    Args:
        dropout_ratio: The probability of dropping an element, ``0 <= r < 1``.
        seed: An int in ``0 <= seed < 2**63`` (the masks are a function of
            it and ``draws``); None takes one now from
            :func:`xpnn.random.fresh_seed` (the global seed's sequence while
            one is set, else OS entropy), so ``seed`` is always an int that a
            saved model records.

    Attributes:
        mask: The last training mask, ``x.shape``, in x's dtype (1 kept, 0
            dropped); None before the first.
        draws: Masks drawn so far (a checkpoint records it to resume the
            same masks).
        seed: The seed (an int).
        hold_mask: When True and a mask of x's shape exists, a training
            forward pass reuses it and draws nothing (for gradient checks).

    Raises:
        TypeError: ``dropout_ratio`` is not a number, ``seed`` not an int.
        ValueError: ``dropout_ratio`` outside ``[0, 1)``, ``seed`` outside
            ``[0, 2**63)``.
    """

    takes_train_flg = True
    keeps_shape = True

    def __init__(self, dropout_ratio: float = 0.5, *, seed: int | None = None):
        super().__init__()
        self.dropout_ratio = _real_in(dropout_ratio, "dropout_ratio", 0.0, 1.0)
        self.seed = fresh_seed() if seed is None else _seed(seed, "Dropout seed")
        self.draws = 0
        self.hold_mask = False
        self.mask: Any = None
        self._train = True  # whether the last forward pass was in training mode

    def forward(self, x: Any, train_flg: bool = True) -> Any:
        """``x * mask`` (training, a new mask) or ``x * (1 - dropout_ratio)`` (test).

        Args:
            x: Activations of any shape, floating point.
            train_flg: Training (True) or test (False) mode.

        Returns:
            An array of x's shape and dtype.

        Raises:
            TypeError: ``x`` is not floating point.
            ValueError: ``dropout_ratio`` (if changed since) is outside ``[0, 1)``.
        """
        k = ops(x)
        if not k.isdtype(x.dtype, "real floating"):
            raise TypeError(
                f"Dropout needs floating-point inputs, got {_dtype_name(x.dtype)}; "
                'convert them, e.g. with xpnn.asarray(x, dtype="float32")'
            )
        ratio = _real_in(self.dropout_ratio, "dropout_ratio", 0.0, 1.0)
        shape = tuple(x.shape)
        out = self._buffer(k, "out", shape, x.dtype, x)
        self._train = bool(train_flg)
        if not self._train:
            return k.multiply(x, 1.0 - ratio, out=out)
        mask = self.mask
        held = self.hold_mask and mask is not None and tuple(mask.shape) == shape
        if not held:
            mask = self.mask = self._draw(k, x, ratio)
            self.draws += 1
        elif mask.dtype != x.dtype:
            mask = self.mask = k.xp.astype(mask, x.dtype)  # 0 and 1: exact in any float
        return k.multiply(x, mask, out=out)

    def _draw(self, k: Any, x: Any, ratio: float) -> Any:
        """A fresh mask of x's shape and dtype for draw number ``self.draws``."""
        xp = k.xp
        if ratio == 0.0:
            return xp.ones(tuple(x.shape), dtype=x.dtype, device=device_of(x))
        bits, _, shape = _counter_bits(tuple(x.shape), (self.seed, self.draws), like=x)
        # u = m * 2**-24 > ratio  <=>  m > floor(ratio * 2**24): exact, as
        # ratio * 2**24 is (a power of two times a float).
        threshold = math.floor(ratio * 2**_DROPOUT_BITS)
        return xp.reshape(xp.astype((bits >> (32 - _DROPOUT_BITS)) > threshold, x.dtype), shape)

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        """``dout * mask`` (after training) or ``dout * (1 - dropout_ratio)`` (test).

        Raises:
            RuntimeError: No forward pass yet (see :class:`xpnn.layers.Layer`).
            ValueError: ``dout``'s shape is not the last output's.
        """
        if not input_grad:
            return None
        k = ops(dout)
        dx = self._buffer(k, "dx", tuple(dout.shape), dout.dtype, dout)
        if not self._train:
            return k.multiply(dout, 1.0 - self.dropout_ratio, out=dx)
        return k.multiply(dout, self.mask, out=dx)

    def config(self) -> dict[str, Any]:
        return {"dropout_ratio": self.dropout_ratio, "seed": self.seed}

    @classmethod
    def _checked_config(cls, config: Any) -> tuple[float, int]:
        _config_sizes(cls, config, extra=("dropout_ratio", "seed"))
        try:
            ratio = _real_in(config["dropout_ratio"], "dropout_ratio", 0.0, 1.0)
            seed = _seed(config["seed"], "seed")
        except (TypeError, ValueError) as exc:  # from a file: a ValueError, as for every layer
            raise ValueError(f"Dropout config: {exc}") from None
        return ratio, seed

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        cls._checked_config(config)
        return {}

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any, backend: Any) -> Layer:
        ratio, seed = cls._checked_config(config)
        return cls(ratio, seed=seed)

    def __repr__(self) -> str:
        return f"Dropout(dropout_ratio={self.dropout_ratio}, seed={self.seed})"


@register_layer
class BatchNormalization(Layer):
    """The book's batch normalization: ``gamma * (x - mean) / sqrt(var + eps) + beta``.

    ``x`` is ``(N, D)`` with ``D == gamma.size`` (each feature normalised
    over the batch), or ``(N, C, H, W)`` with ``C == gamma.size``,
    normalised per channel over N, H and W (more generally ``(N, C, ...)``).
    Samples whose features are ``C * H * W == gamma.size`` instead are
    flattened and normalised per element, as the book's layer does with
    images. As in the book, ``eps = 10e-7`` and the variance is biased
    (divided by the number of values averaged).

    Training (``forward(x, train_flg=True)``) uses the batch's mean and
    variance and updates the running ones IN PLACE (``running = momentum *
    running + (1 - momentum) * batch``), so the arrays a model saves (their
    names are ``state_names``) and a checkpoint holds follow. Test mode
    uses the running statistics. ``backward`` writes ``[dgamma, dbeta]``
    into ``grads`` in place and returns dx, the exact gradient of the mode
    of the last forward pass (the book's formulas after training).

    Half-precision inputs (float16, bfloat16) are computed on in float32,
    statistics included; the output and dx are rounded once to x's dtype,
    the gradients and running statistics to theirs.

    Config: ``{"size": D_or_C, "momentum": m}``.

    Args:
        gamma: Scale ``(D,)``, floating point (the book starts it at ones).
        beta: Shift ``(D,)`` (zeros in the book).
        momentum: Of the running statistics, ``0 <= momentum < 1``.
        running_mean: ``(D,)``; zeros like ``gamma`` if omitted.
        running_var: ``(D,)``; zeros like ``gamma`` if omitted (as the book).

    Raises:
        ValueError: The arrays are not all 1-D of one shape, or
            ``momentum`` is outside ``[0, 1)``.
        TypeError: An array is not floating point, or ``momentum`` is not
            a number.
        xpnn.BackendMismatchError: The arrays are on different backends or
            devices.
    """

    param_names = ("gamma", "beta")
    state_names = ("running_mean", "running_var")
    # A variance is never negative: a file holding one would predict NaN.
    state_constraints = MappingProxyType({"running_var": "non-negative"})
    takes_train_flg = True
    eps = 10e-7  # the book's

    def __init__(
        self,
        gamma: Any,
        beta: Any,
        momentum: float = 0.9,
        running_mean: Any = None,
        running_var: Any = None,
    ):
        super().__init__()
        given = {"gamma": gamma, "beta": beta, "running_mean": running_mean}
        given["running_var"] = running_var
        arrays = {name: a for name, a in given.items() if a is not None}
        xp = get_namespace(*arrays.values())
        self.momentum = _real_in(momentum, "momentum", 0.0, 1.0)
        for name, a in arrays.items():
            if not xp.isdtype(a.dtype, "real floating"):
                raise TypeError(
                    f"BatchNormalization {name} must be floating point, got {_dtype_name(a.dtype)}"
                )
        shapes = {name: tuple(a.shape) for name, a in arrays.items()}
        if gamma.ndim != 1 or len(set(shapes.values())) != 1:
            raise ValueError(
                "BatchNormalization needs gamma, beta, running_mean and running_var 1-D of "
                f"one shape (D,), got {', '.join(f'{n} {s}' for n, s in shapes.items())}"
            )
        self.params = [gamma, beta]
        self.grads = _zeros_like_all(self.params)
        self.running_mean = xp.zeros_like(gamma) if running_mean is None else running_mean
        self.running_var = xp.zeros_like(gamma) if running_var is None else running_var
        # What backward needs (the book's names): the normalised input and the
        # standard deviation, in the dtype computed in.
        self.xn: Any = None
        self.std: Any = None
        self.batch_size: int | None = None
        self._train = True
        self._layout: tuple[Any, ...] = ()

    @property
    def gamma(self) -> Any:
        return self.params[0]

    @property
    def beta(self) -> Any:
        return self.params[1]

    @property
    def dgamma(self) -> Any:
        """The gradient of gamma (``grads[0]``), after :meth:`backward`."""
        return self.grads[0]

    @property
    def dbeta(self) -> Any:
        """The gradient of beta (``grads[1]``), after :meth:`backward`."""
        return self.grads[1]

    def _axes(self, x_shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        """The axes statistics are taken over and the flat shape (book layout) or None.

        Raises:
            ValueError: ``x``'s features do not fit ``gamma.size``.
        """
        size = self.params[0].shape[0]
        if x_shape[1] == size:  # features, or channels (statistics over N, H, W)
            return (0, *range(2, len(x_shape))), None
        if len(x_shape) > 2 and math.prod(x_shape[1:]) == size:  # the book's: per element
            return (0,), (x_shape[0], size)
        raise ValueError(
            f"BatchNormalization of size {size} (gamma's) does not fit x of shape {x_shape}: "
            f"it takes (N, {size}) rows or (N, {size}, H, W) images (normalised per channel)"
        )

    def forward(self, x: Any, train_flg: bool = True) -> Any:
        """Normalise ``x`` with the batch's statistics (training) or the running ones.

        Args:
            x: ``(N, D)`` or ``(N, C, H, W)``, floating point.
            train_flg: Training (True: batch statistics, running ones
                updated in place) or test (False: running statistics).

        Returns:
            An array of x's shape and dtype.

        Raises:
            TypeError: ``x`` is not floating point.
            ValueError: ``x``'s shape does not fit ``gamma``, a training
                batch is empty, or ``momentum`` (if changed since) is
                outside ``[0, 1)``. Nothing is changed then.
            xpnn.BackendMismatchError: ``x`` is on another backend or device.
        """
        gamma, beta = self.params
        k = ops(x, gamma)
        _check_input(k, x, "BatchNormalization")
        momentum = _real_in(self.momentum, "momentum", 0.0, 1.0)
        x_shape = tuple(x.shape)
        axes, flat = self._axes(x_shape)
        if train_flg and x_shape[0] == 0:
            raise ValueError(
                f"BatchNormalization cannot take the statistics of an empty batch {x_shape}"
            )
        xp = k.xp
        if flat is not None:
            x = xp.reshape(x, flat)
        shape = tuple(x.shape)
        # gamma, beta and the statistics broadcast along the normalised axis.
        stat_shape = tuple(1 if i in axes else d for i, d in enumerate(shape))
        xw = k.widen(x)

        def wide(a: Any) -> Any:
            return xp.reshape(k.widen(a), stat_shape)

        if train_flg:
            mu = xp.mean(xw, axis=axes, keepdims=True)
            xc = xw - mu
            var = xp.mean(xc * xc, axis=axes, keepdims=True)
            std = xp.sqrt(var + self.eps)
            xn = xc / std
            for running, batch in ((self.running_mean, mu), (self.running_var, var)):
                new = momentum * wide(running) + (1.0 - momentum) * batch
                _into(running, xp.astype(xp.reshape(new, tuple(running.shape)), running.dtype))
        else:
            std = xp.sqrt(wide(self.running_var) + self.eps)
            xn = (xw - wide(self.running_mean)) / std
        self.xn, self.std, self.batch_size = xn, std, x_shape[0]
        self._train = bool(train_flg)
        self._layout = (axes, stat_shape, x_shape, x.dtype)
        out = wide(gamma) * xn + wide(beta)
        if out.dtype != x.dtype:
            out = xp.astype(out, x.dtype)
        return xp.reshape(out, x_shape) if flat is not None else out

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        """Fill ``grads`` (dgamma, dbeta) in place; return dx (None if not ``input_grad``).

        After a training pass, with ``xn`` the normalised input and ``dxn =
        gamma * dout``, ``dx = (dxn - mean(dxn) - xn * mean(dxn * xn)) /
        std`` (means over the normalised axes): the book's backward in
        compact form. After a test pass the statistics are constants and
        ``dx = dxn / std``. ``dgamma = sum(dout * xn)``, ``dbeta = sum(dout)``.

        Raises:
            RuntimeError: No forward pass yet (see :class:`xpnn.layers.Layer`).
            ValueError: ``dout``'s shape is not the last output's (x's).
        """
        gamma, _ = self.params
        axes, stat_shape, x_shape, x_dtype = self._layout
        k = ops(dout, gamma)
        xp = k.xp
        d = k.widen(xp.reshape(dout, tuple(self.xn.shape)))
        xn = self.xn
        sums = (xp.sum(d * xn, axis=axes), xp.sum(d, axis=axes))
        for grad, value in zip(self.grads, sums, strict=True):
            _into(grad, value if value.dtype == grad.dtype else xp.astype(value, grad.dtype))
        if not input_grad:
            return None
        dxn = xp.reshape(k.widen(gamma), stat_shape) * d
        if self._train:
            dxn = (
                dxn
                - xp.mean(dxn, axis=axes, keepdims=True)
                - xn * xp.mean(dxn * xn, axis=axes, keepdims=True)
            )
        dx = dxn / self.std
        if dx.dtype != x_dtype:
            dx = xp.astype(dx, x_dtype)
        return xp.reshape(dx, x_shape) if tuple(dx.shape) != x_shape else dx

    def config(self) -> dict[str, Any]:
        return {"size": int(self.params[0].shape[0]), "momentum": self.momentum}

    @classmethod
    def _checked_config(cls, config: Any) -> tuple[int, float]:
        (size,) = _config_sizes(cls, config, "size", extra=("momentum",))
        try:
            momentum = _real_in(config["momentum"], "momentum", 0.0, 1.0)
        except (TypeError, ValueError) as exc:  # from a file: a ValueError, as for every layer
            raise ValueError(f"BatchNormalization config: {exc}") from None
        return size, momentum

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        size, _ = cls._checked_config(config)
        return {"gamma": (size,), "beta": (size,)}

    @classmethod
    def state_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        size, _ = cls._checked_config(config)
        return {"running_mean": (size,), "running_var": (size,)}

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``input_shape``, which ``size`` must fit as :meth:`forward` takes it: rows
        ``(size,)``, ``(size, H, W)`` (per channel) or ``size`` elements (see :class:`Layer`)."""
        size, _ = cls._checked_config(config)
        shape = tuple(input_shape)
        if shape and (shape[0] == size or (len(shape) > 1 and math.prod(shape) == size)):
            return shape
        raise ValueError(
            f"BatchNormalization of size {size} does not fit samples of shape {shape}: it "
            f"takes rows ({size},), images ({size}, H, W) (normalised per channel) or samples "
            f"of {size} elements"
        )

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any, backend: Any) -> Layer:
        """The layer of ``config`` with zero gamma, beta and running statistics
        (a loaded model's arrays overwrite them)."""
        size, momentum = cls._checked_config(config)
        gamma, beta, mean, var = (zeros((size,), dtype=dtype, backend=backend) for _ in range(4))
        return cls(gamma, beta, momentum, mean, var)

    def __repr__(self) -> str:
        return f"BatchNormalization(size={self.params[0].shape[0]}, momentum={self.momentum})"


def _seed(value: Any, who: str) -> int:
    """A seed checked to be an int in ``0 <= seed < 2**63``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who} must be an int, got {type(value).__name__}")
    if not 0 <= value < 2**63:
        raise ValueError(f"{who} must be in 0 <= seed < 2**63, got {value}")
    return int(value)

"""Layers with forward and backward side by side (vol. 2, ch. 1 of the book).

Each layer keeps its parameters in ``params`` and their gradients in
``grads``: two lists of arrays of the same shapes. As in the book, gradients
are written *in place* into ``grads``, so an optimizer or a model can hold on
to those arrays; and parameters are the very arrays the model's ``params``
hold, so update them in place too (``p -= lr * g``), not by rebinding.

Every layer takes its namespace from its inputs and runs on any backend. On
NumPy and CuPy the layers write their outputs into buffers they keep (``out=``)
so that a training step allocates nothing; an output is therefore valid until
the layer's next call (copy it to keep it). Elsewhere each call returns new
arrays. Both paths do the same operations in the same order.

Shapes: ``x`` is ``(N, D)``, ``W`` is ``(D, H)``, ``b`` is ``(H,)``. Samples
of more dimensions (images ``(N, C, H, W)``) become rows with :class:`Flatten`,
or in :class:`Affine` itself, which flattens them as the book's chapter-7
``Affine`` does.

A layer declares its config so any model made of layers saves and loads
(:func:`xpnn.io.save`), as data, never pickle: :meth:`Layer.config` gives its
sizes and hyper-parameters as JSON, :meth:`Layer.param_shapes` (and
:meth:`Layer.state_shapes`, for non-parameter arrays such as running
statistics) the shapes that config implies, computed without allocating, and
:meth:`Layer.from_config` builds the layer with zero arrays of those shapes.
A layer joins :data:`LAYERS`, the registry of kinds a file may name, with
:func:`register_layer`. A new layer with hyper-parameters (a dropout ratio, a
convolution's stride and pad) overrides the four; one with running
statistics also lists them in ``state_names``, as attributes.
"""

from __future__ import annotations

import math
import numbers
import secrets
from collections.abc import Sequence
from typing import Any

from xpnn.backend import _dtype_name, device_of, get_namespace, ops, zeros
from xpnn.functions import check_labels, softmax
from xpnn.random import _counter_bits

__all__ = [
    "LAYERS",
    "Affine",
    "BatchNormalization",
    "Convolution",
    "Dropout",
    "Flatten",
    "Layer",
    "MatMul",
    "Pooling",
    "Relu",
    "Sigmoid",
    "Softmax",
    "SoftmaxWithLoss",
    "backward",
    "one_hot",
    "register_layer",
]


class Layer:
    """Base class: a layer with no parameters.

    Attributes:
        param_names: The names of ``params`` in order (a file stores layer
            ``i``'s as ``layers.i.W``, ``layers.i.b``...).
        state_names: Attributes holding non-parameter arrays that a saved
            model keeps (the running statistics of
            :class:`BatchNormalization`).
        takes_train_flg: Whether ``forward`` takes ``train_flg`` (training
            or test mode, as the book's ``Dropout`` and
            ``BatchNormalization``): ``forward(x, train_flg=True)``. A model
            passes its train flag to these layers only.
    """

    param_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    takes_train_flg: bool = False

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self._buffers: dict[str, Any] = {}

    def forward(self, x: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:  # pragma: no cover
        """Gradient w.r.t. the input (skipped, returning None, if not ``input_grad``)."""
        raise NotImplementedError

    def _buffer(self, k: Any, name: str, shape: tuple[int, ...], dtype: Any, like: Any) -> Any:
        return k.buffer(self._buffers, name, shape, dtype, like)

    def config(self) -> dict[str, Any]:
        """Sizes and hyper-parameters, JSON-able: what :meth:`from_config` needs."""
        return {}

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """The shapes of ``params`` by name that ``config`` implies, allocating nothing.

        Raises:
            ValueError: ``config`` is not one this layer wrote (it comes from a
                file: the message names the layer and the key).
        """
        _config_sizes(cls, config)
        return {}

    @classmethod
    def state_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """The shapes of the ``state_names`` arrays that ``config`` implies."""
        return {}

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any, backend: Any) -> Layer:
        """The layer of ``config`` with zero parameters of ``dtype`` on ``backend``.

        This default passes the parameters to the constructor in
        ``param_names`` order; a layer with hyper-parameters overrides it.
        """
        shapes = cls.param_shapes(config)
        return cls(*(zeros(s, dtype=dtype, backend=backend) for s in shapes.values()))

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(p.shape)) for p in self.params)
        return f"{type(self).__name__}({shapes})"


#: The layer kinds a saved model may name, by class name (see :func:`register_layer`).
LAYERS: dict[str, type[Layer]] = {}


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Add a layer class to :data:`LAYERS` so models using it save and load.

    Use it as a class decorator, after declaring the config methods.

    Raises:
        ValueError: Another class of the same name is registered already
            (a file names a layer kind by class name, which must be unique).
    """
    known = LAYERS.get(cls.__name__)
    if known is not None and known is not cls:
        raise ValueError(
            f"a layer kind {cls.__name__!r} is registered already ({known.__module__}."
            f"{known.__qualname__}); give {cls.__module__}.{cls.__qualname__} another name"
        )
    LAYERS[cls.__name__] = cls
    return cls


def _check_config_keys(who: str, config: Any, keys: Any) -> None:
    """A config (from a file) is a dict of exactly ``keys``; ``who`` names its owner.

    Raises:
        ValueError: It is not a dict, or its keys differ (the message lists both).
    """
    keys = sorted(keys)
    if not isinstance(config, dict) or sorted(config) != keys:
        got = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{who} config must have exactly the keys {keys}, got {got!s:.200}")


def _config_sizes(
    cls: type, config: Any, *names: str, extra: tuple[str, ...] = ()
) -> tuple[int, ...]:
    """The positive ints ``names`` of a layer config that must have exactly those
    keys and the ``extra`` ones (hyper-parameters the layer checks itself)."""
    _check_config_keys(cls.__name__, config, (*names, *extra))
    for name in names:
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(
                f"{cls.__name__} config {name!r} must be a positive int, got {value!r:.80}"
            )
    return tuple(config[name] for name in names)


def _into(dst: Any, value: Any) -> None:
    """Make ``dst`` hold ``value`` (already there when it was computed with out=dst)."""
    if value is not dst:
        dst[...] = value


def _real_in(value: Any, who: str, low: float, high: float) -> float:
    """``value`` as a float, checked to be a real number in ``[low, high)``."""
    # numbers.Real: Python and NumPy scalars, never an array (reading one
    # would be a host sync).
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who} must be a number, got {type(value).__name__}")
    if not low <= float(value) < high:  # NaN fails too
        raise ValueError(f"{who} must be in [{low:g}, {high:g}), got {value!r}")
    return float(value)


def _zeros_like_all(arrays: Sequence[Any]) -> list[Any]:
    return [get_namespace(a).zeros_like(a) for a in arrays]


#: Float widths -> (signed, unsigned) integer dtypes of the same size, for
#: selecting values by their bits (Relu on NumPy and CuPy).
_BITS = {2: ("int16", "uint16"), 4: ("int32", "uint32"), 8: ("int64", "uint64")}


def _select_bits(native: Any, value: Any, keep: Any, out: Any) -> Any:
    """``out = value`` where ``keep`` is all ones, +0.0 where it is 0 (bitwise, exact)."""
    unsigned = _BITS[value.dtype.itemsize][1]
    native.bitwise_and(value.view(unsigned), keep.view(unsigned), out=out.view(unsigned))
    return out


def _check_input(k: Any, x: Any, who: str) -> None:
    """A layer computes in its parameters' float dtype: refuse integer inputs.

    (NumPy would cast them silently, the other backends fail deep inside.)
    """
    if not k.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{who} needs floating-point inputs, got {_dtype_name(x.dtype)}; "
            'convert them, e.g. with xpnn.asarray(x, dtype="float32")'
        )
    if x.ndim < 2:
        # Its output buffer and backward are (N, ...): a lone (D,) row would
        # broadcast into a (D, H) buffer on NumPy (a wrong answer, no error).
        raise ValueError(
            f"{who} takes a batch (N, D), got shape {tuple(x.shape)}; for one sample "
            "use xp.reshape(x, (1, -1)) (the models do this for you)"
        )


@register_layer
class MatMul(Layer):
    """out = x @ W; ``x`` ``(N, D)`` floating point, ``W`` ``(D, H)``.

    Config: ``{"input_size": D, "output_size": H}``.
    """

    param_names = ("W",)

    def __init__(self, W: Any):
        super().__init__()
        self.params = [W]
        self.grads = _zeros_like_all(self.params)
        self.x: Any = None

    def forward(self, x: Any) -> Any:
        (W,) = self.params
        k = ops(x, W)
        _check_input(k, x, "MatMul")
        self.x = x
        out = self._buffer(k, "out", (x.shape[0], W.shape[1]), W.dtype, x)
        return k.matmul(x, W, out=out)

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        (W,) = self.params
        k = ops(dout, W)
        _into(self.grads[0], k.matmul(self.x.T, dout, out=self.grads[0]))
        if not input_grad:
            return None
        return k.matmul(dout, W.T, out=self._buffer(k, "dx", tuple(self.x.shape), W.dtype, dout))

    def config(self) -> dict[str, Any]:
        shape = tuple(self.params[0].shape)
        if len(shape) != 2:
            raise ValueError(f"{type(self).__name__}'s W must be 2-D (D, H), got shape {shape}")
        return {"input_size": int(shape[0]), "output_size": int(shape[1])}

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        d, h = _config_sizes(cls, config, "input_size", "output_size")
        return {"W": (d, h)}


@register_layer
class Affine(MatMul):
    """out = x @ W + b; ``x`` ``(N, D)`` floating point, ``W`` ``(D, H)``, ``b`` ``(H,)``.

    As the book's chapter-7 ``Affine``, samples of more dimensions (``x``
    ``(N, C, H, W)`` with ``C * H * W == D``) are flattened to rows, and the
    input gradient gets ``x``'s shape back (``original_x_shape``).

    Config: ``{"input_size": D, "output_size": H}``.
    """

    param_names = ("W", "b")

    def __init__(self, W: Any, b: Any):
        super().__init__(W)
        self.params = [W, b]
        self.grads = _zeros_like_all(self.params)
        self.original_x_shape: tuple[int, ...] | None = None

    def forward(self, x: Any) -> Any:
        W, b = self.params
        k = ops(x, W)
        _check_input(k, x, "Affine")
        if x.ndim > 2:  # the book's ch. 7: (N, C, H, W) -> (N, C*H*W)
            self.original_x_shape = tuple(x.shape)
            x = k.xp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))
        else:
            self.original_x_shape = None
        self.x = x
        out = self._buffer(k, "out", (x.shape[0], W.shape[1]), W.dtype, x)
        return k.add(k.matmul(x, W, out=out), b, out=out)

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        W, _ = self.params
        k = ops(dout, W)
        _into(self.grads[0], k.matmul(self.x.T, dout, out=self.grads[0]))
        # Half floats: summed in float32, rounded once (NumPy would round per row).
        _into(self.grads[1], k.sum_wide(dout, axis=0, out=self.grads[1]))
        if not input_grad:  # the first layer: nobody needs dL/dx, skip a matrix product
            return None
        dx = k.matmul(dout, W.T, out=self._buffer(k, "dx", tuple(self.x.shape), W.dtype, dout))
        if self.original_x_shape is not None:
            return k.xp.reshape(dx, self.original_x_shape)
        return dx

    @property
    def dW(self) -> Any:
        """The gradient of W (``grads[0]``, the book's name), after :meth:`backward`."""
        return self.grads[0]

    @property
    def db(self) -> Any:
        """The gradient of b (``grads[1]``, the book's name), after :meth:`backward`."""
        return self.grads[1]

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        d, h = _config_sizes(cls, config, "input_size", "output_size")
        return {"W": (d, h), "b": (h,)}


@register_layer
class Flatten(Layer):
    """Samples of any shape become rows: ``(N, d1, d2, ...)`` -> ``(N, d1 * d2 * ...)``.

    The reshape the book's chapter-7 ``Affine`` does first, as a layer of its
    own, so that a :class:`xpnn.models.LayeredNet` takes images ``(N, C, H,
    W)`` (``LayeredNet([Flatten(), Affine(W, b), ...], SoftmaxWithLoss(),
    input_size=(C, H, W))``). Backward gives the gradient ``x``'s shape back.
    Both are views where the backend allows (no copy); dtype is kept. A 2-D
    ``x`` passes unchanged. No parameters; config ``{}``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.x_shape: tuple[int, ...] | None = None

    def forward(self, x: Any) -> Any:
        """``x`` ``(N, ...)`` with at least one axis after N -> ``(N, features)``.

        Raises:
            ValueError: ``x`` has fewer than 2 dimensions.
        """
        if x.ndim < 2:
            raise ValueError(
                f"Flatten needs samples (N, ...) with at least 2 dimensions, got shape "
                f"{tuple(x.shape)}"
            )
        self.x_shape = tuple(x.shape)
        if x.ndim == 2:
            return x
        return get_namespace(x).reshape(x, (x.shape[0], math.prod(x.shape[1:])))

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        if not input_grad:
            return None
        if dout.ndim == len(self.x_shape):
            return dout
        return get_namespace(dout).reshape(dout, self.x_shape)


@register_layer
class Sigmoid(Layer):
    """out = 1 / (1 + exp(-x)), element-wise; backward uses the saved output.

    Computed as written, as :func:`xpnn.functions.sigmoid` (four in-place
    passes): within a few ulp of the true value wherever that is a normal
    float, for negative ``x`` too; where exp(-x) overflows (x below about
    -88.7 in float32) the output is 0, without a warning. Backward is
    ``dout * (1 - out) * out``. Shapes and dtype of ``out`` are those of ``x``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.out: Any = None

    def forward(self, x: Any) -> Any:
        k = ops(x)
        out = self._buffer(k, "out", tuple(x.shape), x.dtype, x)
        self.out = k.sigmoid(x, out=out)
        return self.out

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        k = ops(dout, self.out)
        dx = self._buffer(k, "dx", tuple(dout.shape), dout.dtype, dout)
        return k.sigmoid_backward(self.out, dout, out=dx)


@register_layer
class Relu(Layer):
    """out = max(0, x); backward zeroes the gradient where x <= 0.

    As in the book, ``mask`` is ``x <= 0``. NaN is not ``<= 0``: a NaN input
    stays NaN and its gradient passes unchanged, as with ``torch.relu``
    (whose backward keeps the gradient unless the output is <= 0).
    """

    def __init__(self) -> None:
        super().__init__()
        self._mask: Any = None
        self._x: Any = None  # PyTorch: the input, whose mask is made on demand

    @property
    def mask(self) -> Any:
        """The book's ``mask``: ``x <= 0`` of the last forward pass (None before one)."""
        if self._mask is None and self._x is not None:
            self._mask = self._x <= 0
        return self._mask

    @mask.setter
    def mask(self, value: Any) -> None:
        self._mask, self._x = value, None

    def forward(self, x: Any) -> Any:
        k = ops(x)
        if k.native is not None and x.dtype.itemsize in _BITS:
            # NumPy, CuPy: into buffers of x's memory order, reused from step to
            # step (the output is valid until the next call). A masked copy
            # (where) costs ~10x a pass over random masks; the selection is
            # done on the bits instead: out = x & keep, keep all ones where
            # x > 0 or NaN, all zeros where x <= 0 (+0.0): where's result exactly.
            native = k.native
            self.mask = native.less_equal(x, 0, out=self._like(k, "mask", x, bool))
            # keep = mask - 1 (0 or -1: all ones), computed on the mask's bytes as
            # int8 and widened on the way out: 5x faster than bool - int.
            keep = native.add(
                self.mask.view(native.int8),
                native.int8(-1),
                out=self._like(k, "keep", x, _BITS[x.dtype.itemsize][0]),
                casting="unsafe",
            )
            return _select_bits(native, x, keep, self._like(k, "out", x, x.dtype))
        self._buffers.pop("keep", None)  # backward must not use an earlier call's
        xp = k.xp
        if k.torch is not None:
            # threshold: x <= 0 ? +0.0 : x, where's result exactly (NaN kept), in
            # one pass; backward compares x again (threshold_backward).
            self.mask, self._x = None, x
            return k.torch.threshold(x, 0, 0)
        self.mask = x <= 0
        return xp.where(self.mask, xp.zeros_like(x), x)

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        k = ops(dout)
        keep = self._buffers.get("keep")
        if (
            k.native is not None
            and keep is not None
            and keep.shape == dout.shape
            and keep.itemsize == dout.dtype.itemsize
        ):
            return _select_bits(k.native, dout, keep, self._like(k, "dx", dout, dout.dtype))
        if k.torch is not None and self._x is not None and self._x.shape == dout.shape:
            # x <= 0 ? 0 : dout, the book's dout[mask] = 0 (a NaN x passes dout).
            return k.torch.ops.aten.threshold_backward(dout, self._x, 0)
        xp = k.xp
        return xp.where(self.mask, xp.zeros_like(dout), dout)

    def _like(self, k: Any, name: str, like: Any, dtype: Any) -> Any:
        """A buffer of ``like``'s shape and memory order, kept while they stay the same."""
        key = (tuple(like.shape), tuple(like.strides), like.dtype, dtype, like.device)
        if self._buffers.get(name + " key") != key:
            self._buffers[name] = k.native.empty_like(like, dtype=dtype)
            self._buffers[name + " key"] = key
        return self._buffers[name]


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
            it and ``draws``); None draws one from the OS's entropy now, so
            ``seed`` is always an int that a saved model records.

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

    def __init__(self, dropout_ratio: float = 0.5, *, seed: int | None = None):
        super().__init__()
        self.dropout_ratio = _real_in(dropout_ratio, "dropout_ratio", 0.0, 1.0)
        self.seed = secrets.randbits(63) if seed is None else _seed(seed, "Dropout seed")
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
            RuntimeError: No training forward pass made a mask yet.
        """
        if not input_grad:
            return None
        k = ops(dout)
        dx = self._buffer(k, "dx", tuple(dout.shape), dout.dtype, dout)
        if not self._train:
            return k.multiply(dout, 1.0 - self.dropout_ratio, out=dx)
        if self.mask is None:
            raise RuntimeError("Dropout.backward needs a forward pass (train_flg=True) first")
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
            RuntimeError: No forward pass yet.
        """
        if self.xn is None:
            raise RuntimeError("BatchNormalization.backward needs a forward pass first")
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


@register_layer
class Softmax(Layer):
    """Softmax over the last axis."""

    def __init__(self) -> None:
        super().__init__()
        self.out: Any = None

    def forward(self, x: Any) -> Any:
        self.out = softmax(x)
        return self.out

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        xp = get_namespace(dout)
        k = ops(dout)
        out, d = k.widen(self.out), k.widen(dout)  # half floats: the sum in float32
        dx = out * d
        dx = dx - out * xp.sum(dx, axis=-1, keepdims=True)
        return dx if d is dout else xp.astype(dx, dout.dtype)


def one_hot(t: Any, num_classes: int, dtype: Any) -> Any:
    """Integer labels ``(N,)`` -> one-hot ``(N, num_classes)`` in ``dtype``."""
    xp = get_namespace(t)
    classes = xp.arange(num_classes, dtype=t.dtype, device=device_of(t))
    return xp.astype(xp.reshape(t, (-1, 1)) == classes, dtype)


@register_layer
class SoftmaxWithLoss(Layer):
    """Softmax and cross-entropy in one layer (fused, numerically stable).

    ``forward(x, t)`` takes scores ``(N, C)`` and one-hot ``(N, C)`` or
    integer ``(N,)`` labels and returns the mean loss as a 0-d array (also
    kept in ``loss``, as the book does, so a training loop can record it
    without a second forward pass); ``backward(dout=1)`` returns
    ``(softmax(x) - t) * dout / N``.

    One pass gives both: with ``s = x - max(x)``, the loss of a row is
    ``log(sum(exp(s))) - s[label]`` (log-sum-exp, finite for any finite
    scores unless the loss itself exceeds the float range) and
    ``softmax(x) = exp(s) / sum(exp(s))``. With one-hot targets a class
    whose target is 0 adds nothing, even where ``s`` overflowed to -inf.

    Integer labels must be in ``0..C-1``: :func:`xpnn.functions.check_labels`
    refuses others where reading them is free (NumPy, PyTorch CPU); on a
    device the loss and the gradient rows of invalid labels are NaN instead.

    Half-precision scores (float16, bfloat16) are computed on in float32, as
    PyTorch's autocast does: the loss is a float32 0-d array, the softmax
    ``y`` is kept in float32, and backward computes ``(y - t) * dout / N`` in
    float32 and rounds it once to the scores' dtype, so the layers below stay
    in half. Without that a float16 exp overflows where scores differ by
    more than about 11.

    ``dout`` may be a Python number or a 0-d array on the scores' device
    (a loss scale that mixed-precision training keeps there): it is used
    on the device, never read on the host.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loss: Any = None
        self.y: Any = None
        self.t: Any = None
        self.scores_dtype: Any = None  # x's dtype, which backward's dx gets

    def forward(self, x: Any, t: Any) -> Any:
        """Mean loss of scores ``x`` ``(N, C)`` (float, N > 0) against ``t``.

        ``t`` is integer labels ``(N,)`` or one-hot (or soft) targets
        ``(N, C)``. Returns a 0-d array in x's dtype, float32 for half ``x``.

        Raises:
            TypeError: ``x`` is not floating point, or ``(N,)`` labels are
                not integers.
            ValueError: The shapes do not fit, N or C is 0, or a label is out
                of range (where reading labels is free).
        """
        xp = get_namespace(x, t)
        k = ops(x, t)
        if not k.isdtype(x.dtype, "real floating"):
            raise TypeError(
                f"scores must be floating point, got {_dtype_name(x.dtype)}; convert them, "
                'e.g. with xpnn.asarray(x, dtype="float32")'
            )
        if x.ndim != 2 or 0 in tuple(x.shape):
            raise ValueError(
                f"SoftmaxWithLoss needs scores of shape (N, C) with N, C > 0 (the loss is a "
                f"mean over N samples), got shape {tuple(x.shape)}"
            )
        n, c = x.shape
        if t.ndim not in (1, 2) or t.shape[0] != n or (t.ndim == 2 and t.shape != x.shape):
            raise ValueError(
                f"labels of shape {tuple(t.shape)} do not fit scores of shape {tuple(x.shape)}: "
                f"give ({n},) integer labels or ({n}, {c}) one-hot"
            )
        # Half scores: softmax and loss in float32 (the buffers too).
        wide = k.wide_dtype(x.dtype)
        y = self._buffer(k, "y", (n, c), wide, x)
        shifted = self._buffer(k, "shifted", (n, c), wide, x)
        self.scores_dtype = x.dtype
        if t.ndim == 1:
            check_labels(t, c, "SoftmaxWithLoss labels")
            # Labels stay labels: backward subtracts 1 at them, no one-hot is built.
            self.y, self.loss = k.softmax_cross_entropy(x, t, y, shifted, checked=True)
            self.t = t
            return self.loss
        # One-hot (or soft) targets: rows of t sum to 1, so the loss of a row
        # is log(sum(exp(s))) - sum(t * s).
        self.y, shifted, total = k.softmax_rows(x, y, shifted)
        self.t = xp.astype(t, self.y.dtype)
        # Where t is 0 the term is 0, even where s is -inf (scores spanning
        # more than the float range): 0 * -inf would make the loss NaN.
        s = xp.where(self.t != 0, shifted, 0.0)
        self.loss = (xp.sum(xp.log(total)) - xp.sum(k.multiply(self.t, s, out=s))) / n
        return self.loss

    def backward(self, dout: Any = 1, *, input_grad: bool = True) -> Any:
        """``(softmax(x) - t) * dout / N``, in the dtype of the scores ``x``.

        ``dout``: a Python number, or a 0-d array on the scores' backend and
        device (used there, never read on the host).

        Raises:
            ValueError: ``dout`` is an array that is not 0-d.
            xpnn.BackendMismatchError: ``dout`` is on another backend or device.
        """
        y = self.y
        n, c = y.shape
        k = ops(y, self.t)
        scale = k.dout_scale(dout, n, y.dtype, like=y)
        dx = self._buffer(k, "dx", (n, c), y.dtype, y)
        if self.t.ndim == 1:
            dx = k.label_difference(y, self.t, scale, out=dx)
        else:
            dx = k.scaled_difference(y, self.t, scale, out=dx)
        if self.scores_dtype is None or not k.is_half(self.scores_dtype):
            return dx
        # Half scores: computed in float32 above, rounded once to their dtype.
        half = self._buffer(k, "dx_half", (n, c), self.scores_dtype, y)
        return k.cast(dx, self.scores_dtype, out=half)


def backward(
    layers: Sequence[Layer], loss_layer: SoftmaxWithLoss, dout: Any = 1, *, input_grad: bool = True
) -> Any:
    """Backpropagate from the loss through ``layers`` (after a forward pass).

    The one backprop implementation of xpnn: every model's ``backward`` and
    ``gradient`` call it. Gradients land in each layer's ``grads``.

    Args:
        layers: The network's layers, input to output.
        loss_layer: The loss layer the forward pass ended in.
        dout: Upstream gradient of the loss (1 for the loss itself).
        input_grad: Also compute the gradient w.r.t. the network's input.
            Training does not need it, and for the first Affine layer it is
            a whole matrix product.

    Returns:
        The gradient of the loss with respect to the network's input (None
        when ``input_grad`` is False).
    """
    dout = loss_layer.backward(dout)
    # Without input_grad, the layers before the first one with parameters
    # (a leading Flatten) need no gradient, nor does that layer's input.
    first = 0
    if not input_grad:
        while first < len(layers) - 1 and not layers[first].params:
            first += 1
    for i in range(len(layers) - 1, first - 1, -1):
        dout = layers[i].backward(dout, input_grad=input_grad or i > first)
    return dout


# The book's common.layers holds its convolution layers too (see xpnn.conv).
from xpnn.conv import Convolution, Pooling  # noqa: E402

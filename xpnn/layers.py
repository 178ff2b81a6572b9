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
from collections.abc import Sequence
from typing import Any

from xpnn.backend import _dtype_name, device_of, get_namespace, ops, zeros
from xpnn.functions import check_labels, softmax

__all__ = [
    "LAYERS",
    "Affine",
    "Flatten",
    "Layer",
    "MatMul",
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
            model keeps (running statistics); none in the layers so far.
    """

    param_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()

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


def _config_sizes(cls: type, config: Any, *names: str) -> tuple[int, ...]:
    """The positive ints ``names`` of a layer config that must have exactly those keys."""
    if not isinstance(config, dict) or sorted(config) != sorted(names):
        got = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise ValueError(
            f"{cls.__name__} config must have exactly the keys {sorted(names)}, got {got!s:.200}"
        )
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


def _zeros_like_all(arrays: Sequence[Any]) -> list[Any]:
    return [get_namespace(a).zeros_like(a) for a in arrays]


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
        self.mask: Any = None

    def forward(self, x: Any) -> Any:
        xp = get_namespace(x)
        self.mask = x <= 0
        return xp.where(self.mask, xp.zeros_like(x), x)

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        xp = get_namespace(dout)
        return xp.where(self.mask, xp.zeros_like(dout), dout)


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

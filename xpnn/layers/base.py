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

A layer also declares what a model checks before it builds or loads anything,
that its layers chain: :meth:`Layer.output_sample_shape` (the shape of one sample
out for one sample in, from the config alone; ``keeps_shape = True`` for a layer
that keeps it) and :attr:`Layer.is_loss` (a loss layer, whose ``forward`` takes
``(x, t)``, goes last). A layer declaring no shape still works; the layers after
it are not checked.

Every layer, a user's subclass too, refuses a ``backward`` it cannot answer,
before anything changes: one before any ``forward`` (RuntimeError), and a
``dout`` whose shape is not that of the last ``forward``'s output
(ValueError, even where it would broadcast). :class:`Layer` adds both checks
to the ``forward`` and ``backward`` a subclass defines (see
:meth:`Layer.__init_subclass__`), so a layer's own code states the book's
math only.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from xpnn.backend import (
    _dtype_name,
    adopt_host_input,
    get_namespace,
    note_selection_unused,
    zeros,
)

__all__ = ["LAYERS", "Layer", "backward", "register_layer"]


class Layer:
    """Base class: a layer with no parameters.

    Attributes:
        param_names: The names of ``params`` in order (a file stores layer
            ``i``'s as ``layers.i.W``, ``layers.i.b``...).
        state_names: Attributes holding non-parameter arrays that a saved
            model keeps (the running statistics of
            :class:`BatchNormalization`).
        state_constraints: What the values of those arrays must be, by
            state name (``{"running_var": "non-negative"}``): a file or a
            checkpoint breaking it is refused before a model is built
            (:mod:`xpnn.io.checks`).
        takes_train_flg: Whether ``forward`` takes ``train_flg`` (training
            or test mode, as the book's ``Dropout`` and
            ``BatchNormalization``): ``forward(x, train_flg=True)``. A model
            passes its train flag to these layers only.
        keeps_shape: Whether the output of a sample has the input's shape
            (activations, Dropout): the declaration :meth:`output_sample_shape`
            reads.
        is_loss: Whether this is a loss layer, whose ``forward`` takes ``(x,
            t)`` (:class:`SoftmaxWithLoss`): one goes last in a model, as its
            ``loss_layer``, and no other layer goes there. A subclass that
            does not set it gets True when its ``forward`` takes two
            arguments without defaults, False when it takes one.
    """

    param_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    state_constraints: Mapping[str, str] = MappingProxyType({})
    takes_train_flg: bool = False
    keeps_shape: bool = False
    is_loss: bool = False
    # The shape of the last forward pass's output, which backward's dout must
    # have (None before a forward pass; _ANY_SHAPE if the output had none).
    _dout_shape: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give the ``forward`` and ``backward`` a subclass defines the checks of every layer.

        The wrapped ``forward`` records the shape of its output; the wrapped
        ``backward`` refuses, before the layer's own code runs (so no
        gradient is written), a call before any forward pass (RuntimeError)
        and a ``dout`` of another shape than that output's (ValueError).
        A few attribute reads per call, no array allocated. Only the
        outermost ``backward`` checks: a subclass calling
        ``super().backward(d)`` passes ``d`` unchecked.
        """
        super().__init_subclass__(**kwargs)
        if "is_loss" not in cls.__dict__ and "forward" in cls.__dict__:
            takes_target = _takes_target(cls.__dict__["forward"])
            if takes_target is not None:
                cls.is_loss = takes_target
        for name, wrap in (("forward", _recording_forward), ("backward", _checking_backward)):
            method = cls.__dict__.get(name)
            if inspect.isfunction(method) and not hasattr(method, "_xpnn_checked"):
                setattr(cls, name, wrap(method))

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
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> Any:
        """The shape of one sample of the output for samples of ``input_shape``, from
        ``config`` alone (shapes without the batch axis N; nothing is allocated).

        A model checks with it that its layers chain before it builds or loads
        anything. This default gives ``input_shape`` for a layer that sets
        :attr:`keeps_shape`, and None (not declared: the layers after this one
        are not checked) for any other; a layer that changes the shape
        overrides it. A subclass that defines ``forward`` or ``config`` anew
        declares it anew too, or its shape counts as not declared.

        Raises:
            ValueError: Samples of ``input_shape`` do not fit this layer (the
                message names the layer and both shapes), or ``config`` is bad.
        """
        return tuple(input_shape) if cls.keeps_shape else None

    @classmethod
    def scratch_sample_elements(cls, config: Any, input_shape: tuple[int, ...]) -> int:
        """Elements per sample of the arrays ``forward`` makes besides its output
        (im2col's padded copy and columns); 0 by default."""
        return 0

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


def _takes_target(forward: Any) -> bool | None:
    """Whether ``forward(self, ...)`` takes ``(x, t)`` (two arguments without defaults)
    or one; None where its signature does not say (``*args``, no signature)."""
    try:
        params = list(inspect.signature(forward).parameters.values())[1:]  # after self
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is p.empty]
    return len(required) >= 2


def _is_loss_kind(kind: Any) -> bool | None:
    """Whether layers of class ``kind`` are loss layers (:attr:`Layer.is_loss`, or for
    a class that is no Layer, its ``forward``'s signature); None: unknown."""
    value = getattr(kind, "is_loss", None)
    if isinstance(value, bool):
        return value
    forward = getattr(kind, "forward", None)
    return None if forward is None else _takes_target(forward)


def _declares_sample_shape(kind: Any) -> bool:
    """Whether :meth:`Layer.output_sample_shape` of class ``kind`` speaks for its
    ``forward``: declared (``output_sample_shape`` or ``keeps_shape``) by the class
    defining ``forward`` and ``config``, or by a subclass of it."""
    if not (isinstance(kind, type) and issubclass(kind, Layer)):
        return False
    mro = kind.__mro__

    def first(*names: str) -> int:
        return next(i for i, c in enumerate(mro) if any(n in vars(c) for n in names))

    return first("output_sample_shape", "keeps_shape") <= first("forward", "config")


_ANY_SHAPE = object()  # a forward pass returned something without a shape: any dout
_NO_DOUT = object()  # backward was called without dout (its default applies)


def _recording_forward(forward: Any) -> Any:
    """``forward`` that records its output's shape for :func:`_checking_backward`."""

    @functools.wraps(forward)
    def checked_forward(self: Layer, *args: Any, **kwargs: Any) -> Any:
        if args:
            params = getattr(self, "params", None)
            if params:  # NumPy input, PyTorch CPU weights: wrapped, not copied
                args = (adopt_host_input(args[0], params[0]), *args[1:])
            note_selection_unused(args[0])  # NumPy data under XPNN_BACKEND=torch: said once
        out = forward(self, *args, **kwargs)
        # Also in a super().forward call: the outermost call, the last to
        # finish, records the shape the caller's dout will have.
        self._dout_shape = getattr(out, "shape", _ANY_SHAPE)
        return out

    checked_forward._xpnn_checked = True  # type: ignore[attr-defined]
    return checked_forward


def _checking_backward(backward: Any) -> Any:
    """``backward`` that refuses a call before any forward pass and a ``dout`` of
    another shape than the last output's, before the layer's code runs."""

    @functools.wraps(backward)
    def checked_backward(self: Layer, dout: Any = _NO_DOUT, *args: Any, **kwargs: Any) -> Any:
        if type(self).backward is checked_backward:  # not a super().backward call
            expected = self._dout_shape
            if expected is None:
                raise RuntimeError(
                    f"{type(self).__name__}.backward needs a forward pass first "
                    "(it uses what forward kept)"
                )
            if dout is not _NO_DOUT and expected is not _ANY_SHAPE:
                shape = getattr(dout, "shape", ())  # a Python number is a scalar
                if shape != expected:
                    _refuse_dout(self, shape, expected)
        if dout is _NO_DOUT:
            return backward(self, *args, **kwargs)
        return backward(self, dout, *args, **kwargs)

    checked_backward._xpnn_checked = True  # type: ignore[attr-defined]
    return checked_backward


def _refuse_dout(layer: Layer, shape: Any, expected: Any) -> None:
    """Raise the ValueError of a ``dout`` of ``shape`` where ``expected`` is due."""
    shape, expected = tuple(shape), tuple(expected)
    if expected == ():
        fix = "the output is a scalar: pass a number or a 0-d array"
    else:
        fix = "pass the gradient of this layer's output, of the output's shape"
    raise ValueError(
        f"{type(layer).__name__}.backward: dout of shape {shape} does not fit the last "
        f"output {expected} of forward; {fix}"
    )


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


def _check_input(k: Any, x: Any, who: str, W: Any = None) -> None:
    """A layer computes in its parameters' float dtype: refuse integer inputs,
    and inputs of another dtype than the weights ``W`` (when given).

    (NumPy would cast them silently, the other backends fail deep inside;
    NumPy would compute a float32 ``x`` with float64 ``W`` in float64, PyTorch
    refuses with its own error.)
    """
    if not k.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{who} needs floating-point inputs, got {_dtype_name(x.dtype)}; "
            'convert them, e.g. with xpnn.asarray(x, dtype="float32")'
        )
    if W is not None and x.dtype != W.dtype:
        want = _dtype_name(W.dtype)
        raise TypeError(
            f"{who} computes in its weights' dtype: W is {want}, x is {_dtype_name(x.dtype)}; "
            f'convert x, e.g. with xpnn.asarray(x, dtype="{want}")'
        )
    if x.ndim < 2:
        # Its output buffer and backward are (N, ...): a lone (D,) row would
        # broadcast into a (D, H) buffer on NumPy (a wrong answer, no error).
        raise ValueError(
            f"{who} takes a batch (N, D), got shape {tuple(x.shape)}; for one sample "
            "use xp.reshape(x, (1, -1)) (the models do this for you)"
        )


def backward(
    layers: Sequence[Layer], loss_layer: Layer, dout: Any = 1, *, input_grad: bool = True
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

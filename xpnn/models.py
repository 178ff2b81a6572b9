"""The book's networks: SimpleNet, TwoLayerNet (vol. 1 ch. 4), and the
layered two-layer net of vol. 2 ch. 1 (LayeredTwoLayerNet).

Parameters are created on the active backend (``xpnn.use_backend``) in its
default float dtype unless ``dtype`` is given, from a seeded
:class:`xpnn.Generator`, so the same seed gives the same initial weights on
every backend. All methods take their namespace from the data passed in.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import (
    BackendMismatchError,
    _dtype_name,
    _library,
    device_of,
    get_backend,
    get_namespace,
    ops,
    resolve_dtype,
    zeros,
)
from xpnn.functions import cross_entropy_error, softmax
from xpnn.gradient import _two_layer_numerical_gradient, warn_if_float32
from xpnn.layers import Affine, Sigmoid, SoftmaxWithLoss, backward
from xpnn.random import default_rng

__all__ = [
    "LayeredNet",
    "LayeredTwoLayerNet",
    "ParamDict",
    "ParamList",
    "SimpleNet",
    "TwoLayerNet",
    "simpleNet",
]


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _float_dtype(dtype: Any) -> Any:
    backend = get_backend()
    return backend.float_dtype if dtype is None else resolve_dtype(backend.xp, dtype)


def _check_input(x: Any, features: int, who: str) -> None:
    if x.ndim not in (1, 2) or x.shape[-1] != features:
        raise ValueError(
            f"{who} expects x of shape (N, {features}) or ({features},), got {tuple(x.shape)}"
        )


# --------------------------------------------------------------------------
# Live parameters: assigning into params writes into the layers' arrays
# --------------------------------------------------------------------------


def _checked_value(where: str, dst: Any, value: Any) -> Any:
    """``value`` as a new array fit to be copied into parameter ``dst``.

    Raises:
        TypeError: ``value`` is not an array, or not floating point.
        xpnn.BackendMismatchError: ``value`` lives on another backend or device.
        ValueError: ``value`` has another shape.
    """
    lib, want = _library(value), _library(dst)
    if lib is None:
        raise TypeError(
            f"{where} must be set to an array of shape {tuple(dst.shape)}, got "
            f"{type(value).__name__}; wrap it with xpnn.asarray()"
        )
    if lib != want or device_of(value) != device_of(dst):
        raise BackendMismatchError(
            f"{where} lives on {want} ({device_of(dst)}), the new value on {lib} "
            f"({device_of(value)}): move it first, e.g. xpnn.asarray(value, "
            "backend=xpnn.backend_of(old_value))"
        )
    xp = get_namespace(dst)
    if tuple(value.shape) != tuple(dst.shape):
        raise ValueError(
            f"{where} has shape {tuple(dst.shape)}, the new value {tuple(value.shape)}: "
            "a parameter keeps its shape (build a new model for other sizes)"
        )
    if not xp.isdtype(value.dtype, "real floating"):
        raise TypeError(
            f"{where} is {_dtype_name(dst.dtype)}, the new value {_dtype_name(value.dtype)}: "
            "parameters take floating-point values"
        )
    # A fresh copy in the parameter's dtype: the value may be a view of dst.
    return xp.astype(value, dst.dtype, copy=True)


class ParamDict(dict):
    """A model's ``params`` dict whose assignments write into the parameters.

    ``net.params['W1'] = W`` copies ``W`` into the array the layers and the
    optimizer already hold (the book's ``load_params`` idiom), after checking
    that it is an array of the same shape, a float, on the same backend and
    device; the parameter keeps its dtype. ``net.params['W1'] -= lr * g``
    works as with a dict. Keys cannot be added or removed.
    """

    def __init__(self, arrays: Any, owner: str = "model"):
        super().__init__(arrays)
        self._owner = owner

    def _where(self, key: Any) -> str:
        return f"{self._owner}.params[{key!r}]"

    def _checked(self, key: Any, value: Any) -> Any:
        if key not in self:
            raise KeyError(
                f"{self._owner} has no parameter {key!r}; its parameters are "
                f"{', '.join(map(repr, self))}"
            )
        dst = dict.__getitem__(self, key)
        return None if value is dst else _checked_value(self._where(key), dst, value)

    def __setitem__(self, key: Any, value: Any) -> None:
        new = self._checked(key, value)
        if new is not None:
            dict.__getitem__(self, key)[...] = new

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Assign several parameters; all are checked before any is written."""
        items = dict(*args, **kwargs)
        checked = [(k, self._checked(k, v)) for k, v in items.items()]
        for k, new in checked:
            if new is not None:
                dict.__getitem__(self, k)[...] = new

    def _fixed(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self._owner}.params has a fixed set of parameters ({', '.join(map(repr, self))}); "
            "assign new values to them instead"
        )

    __delitem__ = pop = popitem = clear = setdefault = _fixed

    def __ior__(self, other: Any) -> ParamDict:
        self.update(other)
        return self

    def __reduce__(self) -> Any:  # copy/deepcopy/pickle without __setitem__
        return (type(self), (dict(self), self._owner))


class ParamList(list):
    """A layered model's ``params`` list whose assignments write into the parameters.

    ``net.params[0] = W`` copies ``W`` into the array the layers and the
    optimizer hold, with the checks of :class:`ParamDict`. The list's length
    is fixed.
    """

    def __init__(self, arrays: Any, owner: str = "model"):
        super().__init__(arrays)
        self._owner = owner

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            positions = range(len(self))[index]
            values = list(value)
            if len(values) != len(positions):
                raise ValueError(
                    f"{self._owner}.params[{index}] holds {len(positions)} parameters, "
                    f"got {len(values)} values; the list's length is fixed"
                )
        else:
            positions = [range(len(self))[index]]  # IndexError when out of range
            values = [value]
        checked = []
        for i, v in zip(positions, values, strict=True):
            dst = list.__getitem__(self, i)
            if v is not dst:
                checked.append((dst, _checked_value(f"{self._owner}.params[{i}]", dst, v)))
        for dst, new in checked:
            dst[...] = new

    def _fixed(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self._owner}.params has a fixed length ({len(self)}); assign new values "
            "to its entries instead"
        )

    __delitem__ = append = extend = insert = pop = remove = clear = _fixed
    __iadd__ = __imul__ = sort = reverse = _fixed

    def __reduce__(self) -> Any:
        return (type(self), (list(self), self._owner))


class SimpleNet:
    """The book's ``simpleNet`` (4.4.2): one 2x3 weight matrix, no bias.

    Args:
        seed: Seed for the standard-normal initial ``W``.
        dtype: Float dtype of ``W`` (the backend's default if omitted).

    Attributes:
        W: ``(2, 3)`` weights on the active backend.
    """

    def __init__(self, seed: int | None = None, *, dtype: Any = None):
        self.W = default_rng(seed).standard_normal((2, 3), dtype=_float_dtype(dtype))
        self.config: dict[str, Any] = {}  # what xpnn.io.save records to rebuild it

    def predict(self, x: Any) -> Any:
        """Scores ``x @ W``: ``(2,)`` -> ``(3,)`` or ``(N, 2)`` -> ``(N, 3)``."""
        _check_input(x, 2, "SimpleNet.predict")
        xp = get_namespace(x, self.W)
        if not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(
                f"SimpleNet.predict needs floating-point x, got {_dtype_name(x.dtype)}; "
                "convert with xpnn.asarray(x, dtype='float64')"
            )
        # The wider float of the two, on every backend (torch's @ refuses mixed dtypes).
        dtype = xp.result_type(x.dtype, self.W.dtype)
        return xp.astype(x, dtype, copy=False) @ xp.astype(self.W, dtype, copy=False)

    def loss(self, x: Any, t: Any) -> Any:
        """The book's loss: cross_entropy_error(softmax(predict(x)), t), a 0-d array."""
        return cross_entropy_error(softmax(self.predict(x)), t)


class LayeredNet:
    """A network as vol. 2 of the book builds it: ``layers`` + ``loss_layer``.

    ``params`` and ``grads`` are flat lists gathered from the layers (the
    very arrays the layers hold), so ``optimizer.update(net.params,
    net.grads)`` after ``forward``/``backward`` trains it in place.

    Args:
        layers: The layers, input to output.
        loss_layer: The loss (SoftmaxWithLoss).
        input_size: Features per sample, checked on every call if given.
    """

    def __init__(
        self, layers: list[Any], loss_layer: SoftmaxWithLoss, input_size: int | None = None
    ):
        self.layers = layers
        self.loss_layer = loss_layer
        self.input_size = input_size
        owner = type(self).__name__
        self._params: Any = ParamList([p for layer in layers for p in layer.params], owner)
        self.grads: Any = [g for layer in layers for g in layer.grads]

    @property
    def params(self) -> Any:
        """The parameters (the layers' very arrays), a live list or dict.

        Assigning into it (``net.params[k] = W``) or to it (``net.params =
        saved``, same keys) copies the values into those arrays, checked
        first: the layers and the optimizer see the new values.
        """
        return self._params

    @params.setter
    def params(self, values: Any) -> None:
        params = self._params
        if isinstance(params, dict):
            if not isinstance(values, dict) or set(values) != set(params):
                raise ValueError(
                    f"{type(self).__name__}.params = ... needs a dict with exactly the keys "
                    f"{', '.join(map(repr, params))}, got "
                    f"{list(values) if isinstance(values, dict) else type(values).__name__}"
                )
            params.update(values)
        else:
            params[:] = values

    def scores(self, x: Any) -> Any:
        """Scores (before softmax) ``(N, classes)`` for inputs ``(N, features)``."""
        # A copy: the last layer's output is its reusable buffer on NumPy/CuPy.
        return get_namespace(x).asarray(self._run(x), copy=True)

    def _run(self, x: Any) -> Any:
        """The layers' forward pass (the output may be a layer's buffer).

        Raises:
            ValueError: ``x`` has the wrong number of features.
            TypeError: ``x`` is not floating point.
            xpnn.BackendMismatchError: ``x`` is on another backend or device
                than the parameters.
        """
        first = self.params_list()[0]
        k = ops(x, first)
        if self.input_size is not None:
            _check_input(x, self.input_size, type(self).__name__)
        if x.dtype != first.dtype:
            name, want = _dtype_name(x.dtype), _dtype_name(first.dtype)
            if not k.isdtype(x.dtype, "real floating"):
                raise TypeError(
                    f"{type(self).__name__} needs floating-point inputs, got {name}; "
                    f"convert with xpnn.asarray(x, dtype='{want}')"
                )
            # Mixing would promote on some backends and fail on others.
            raise TypeError(
                f"{type(self).__name__} computes in {want} (its parameters), but x is {name}: "
                f"convert x with xpnn.asarray(x, dtype='{want}'), or build the model with "
                f"dtype='{name}'"
            )
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def params_list(self) -> list[Any]:
        """The parameters as a list, whether ``params`` is a list or a dict."""
        return list(self.params.values()) if isinstance(self.params, dict) else list(self.params)

    def predict(self, x: Any) -> Any:
        """Scores ``(N, classes)`` (vol. 2 predicts scores, not probabilities)."""
        return self.scores(x)

    def forward(self, x: Any, t: Any) -> Any:
        """Mean loss of the batch (a 0-d array), keeping what backward needs.

        ``t`` is one-hot ``(N, classes)`` or integer labels ``(N,)``.
        """
        return self.loss_layer.forward(self._run(x), t)

    def backward(self, dout: Any = 1, *, input_grad: bool = True) -> Any:
        """Backpropagate after :meth:`forward`; fills ``grads`` in place.

        Returns the gradient w.r.t. the input (valid until the next call), or
        None with ``input_grad=False``, which training uses to skip it.
        """
        return backward(self.layers, self.loss_layer, dout, input_grad=input_grad)

    def accuracy(self, x: Any, t: Any) -> Any:
        """Fraction of correctly classified samples (a 0-d array)."""
        xp = get_namespace(x, t)
        y = xp.argmax(self._run(x), axis=1)
        if t.ndim != 1:
            t = xp.argmax(t, axis=1)
        return xp.sum(xp.astype(y == t, x.dtype)) / x.shape[0]


class LayeredTwoLayerNet(LayeredNet):
    """Vol. 2 ch. 1's ``TwoLayerNet``: Affine - Sigmoid - Affine + SoftmaxWithLoss.

    The book's vol. 2 class has the name of vol. 1's :class:`TwoLayerNet`;
    here it is ``LayeredTwoLayerNet``: ``params``/``grads`` are lists and
    ``predict`` returns scores.

    Args:
        input_size: Features per sample (2 for the spiral).
        hidden_size: Hidden units.
        output_size: Classes.
        weight_init_std: Standard deviation of the initial weights (the
            book's ``0.01 * np.random.randn``).
        seed: Seed of the initial weights (same seed, same weights on every
            backend).
        dtype: Float dtype (the backend's default if omitted).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        weight_init_std: float = 0.01,
        *,
        seed: int | None = None,
        dtype: Any = None,
    ):
        _check_sizes(input_size=input_size, hidden_size=hidden_size, output_size=output_size)
        dtype = _float_dtype(dtype)
        rng = default_rng(seed)
        W1 = rng.normal(0.0, weight_init_std, (input_size, hidden_size), dtype=dtype)
        W2 = rng.normal(0.0, weight_init_std, (hidden_size, output_size), dtype=dtype)
        layers = [
            Affine(W1, zeros(hidden_size, dtype=dtype)),
            Sigmoid(),
            Affine(W2, zeros(output_size, dtype=dtype)),
        ]
        super().__init__(layers, SoftmaxWithLoss(), input_size)
        self.output_size = output_size
        # What xpnn.io.save records to rebuild the model.
        self.config = {
            "input_size": input_size,
            "hidden_size": hidden_size,
            "output_size": output_size,
        }


class TwoLayerNet(LayeredTwoLayerNet):
    """The book's chapter-4 two-layer network: Affine - Sigmoid - Affine - Softmax.

    Args:
        input_size: Features per sample (784 for MNIST).
        hidden_size: Hidden units.
        output_size: Classes.
        weight_init_std: Standard deviation of the initial weights.
        seed: Seed of the initial weights (same seed, same weights on every
            backend).
        dtype: Float dtype of the parameters (the backend's default, float32,
            if omitted; use ``"float64"`` for gradient checks).

    Attributes:
        params: The book's dict ``{'W1': (input_size, hidden_size), 'b1':
            (hidden_size,), 'W2': (hidden_size, output_size), 'b2':
            (output_size,)}``. The layers hold these same arrays: update them
            in place (``params[k] -= lr * grads[k]``), do not rebind them.
        grads: The same keys, the layers' gradient arrays (filled by
            :meth:`gradient` or :meth:`backward`).
        layers: ``[Affine, Sigmoid, Affine]``; ``loss_layer``: SoftmaxWithLoss.
    """

    KEYS = ("W1", "b1", "W2", "b2")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        weight_init_std: float = 0.01,
        *,
        seed: int | None = None,
        dtype: Any = None,
    ):
        super().__init__(
            input_size, hidden_size, output_size, weight_init_std, seed=seed, dtype=dtype
        )
        # The same arrays as the layers hold, under the book's chapter-4 keys.
        self._params = ParamDict(zip(self.KEYS, self._params, strict=True), type(self).__name__)
        self.grads = dict(zip(self.KEYS, self.grads, strict=True))

    def predict(self, x: Any) -> Any:
        """Class probabilities ``(N, output_size)`` (softmax output, as in ch. 4)."""
        return softmax(self._run(x))

    def loss(self, x: Any, t: Any) -> Any:
        """Mean cross-entropy of softmax(scores) against ``t`` (a 0-d array).

        Computed with the fused, stable softmax_cross_entropy; ``t`` is
        one-hot ``(N, output_size)`` or integer labels ``(N,)``.
        """
        return self.forward(x, t)

    def numerical_gradient(self, x: Any, t: Any) -> dict[str, Any]:
        """Gradients of :meth:`loss` by central differences, keyed like ``params``.

        Each component is the book's ``(L(p + h) - L(p - h)) / 2h``, but
        computed by :func:`xpnn.gradient.two_layer_numerical_gradient`, which
        re-evaluates only what a perturbation changes (hundreds of times
        faster than perturbing one weight at a time through the whole net).

        Build the net with ``dtype="float64"`` for the book's numbers: in
        float32 the differences are mostly rounding noise, and a
        :class:`xpnn.gradient.Float32GradientWarning` says so.

        Raises:
            ValueError: Labels outside ``0..output_size-1`` (on a GPU they give
                NaN gradients instead, as :meth:`loss` gives a NaN loss).
        """
        _check_input(x, self.input_size, type(self).__name__)
        warn_if_float32(self.params["W1"].dtype, f"{type(self).__name__}.numerical_gradient")
        return _two_layer_numerical_gradient(*(self.params[k] for k in self.KEYS), x, t)

    def gradient(self, x: Any, t: Any) -> dict[str, Any]:
        """Gradients of :meth:`loss` by backpropagation, keyed like ``params``.

        The returned arrays are the layers' preallocated ``grads``: the next
        call overwrites them (copy them to keep them). The batch's loss is
        left in ``loss_layer.loss``.
        """
        self.forward(x, t)
        self.backward(input_grad=False)
        return self.grads


#: The book's name for :class:`SimpleNet` (``ch04/gradient_simplenet.py``).
simpleNet = SimpleNet

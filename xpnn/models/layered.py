"""The book's networks: SimpleNet, TwoLayerNet (vol. 1 ch. 4), and the
layered two-layer net of vol. 2 ch. 1 (LayeredTwoLayerNet).

Parameters are created on the active backend (``xpnn.use_backend``) in its
default float dtype unless ``dtype`` is given, from a seeded
:class:`xpnn.Generator`, so the same seed gives the same initial weights on
every backend. All methods take their namespace from the data passed in.

Every model saves and loads with :mod:`xpnn.io`: it gives its ``config``
(JSON data), :meth:`~LayeredNet.named_arrays` (the arrays a file stores, by
name) and, as class methods, :meth:`~LayeredNet.array_shapes` (the names and
shapes a config implies, allocating nothing, so a file is checked before a
model is built) and :meth:`~LayeredNet.from_config`. A :class:`LayeredNet`
records its layers' own configs, so any model made of registered layers
(:data:`xpnn.layers.LAYERS`) saves. :data:`MODELS` lists the classes a file
may name.

A LayeredNet's layers must chain: a file's config, and a net built in code at
construction, are walked from ``input_size`` through the layers' declared sample
shapes (:meth:`xpnn.layers.Layer.output_sample_shape`) and refused, naming the
layer, before anything is allocated, as is a loss layer out of place and anything
over :data:`MAX_LAYERS`, :data:`MAX_SAMPLE_DIMS` or :data:`MAX_SAMPLE_ELEMENTS`.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import (
    _dtype_name,
    adopt_host_input,
    get_backend,
    get_namespace,
    ops,
    resolve_dtype,
    to_numpy,
)
from xpnn.layers import (
    LAYERS,
    Layer,
    SoftmaxWithLoss,
    backward,
)
from xpnn.layers.base import _check_config_keys
from xpnn.layers.losses import label_column
from xpnn.models.book_params import BookParams
from xpnn.models.layer_chain import (
    MAX_LAYERS,
    MAX_SAMPLE_DIMS,
    MAX_SAMPLE_ELEMENTS,
    _check_chain,
    _check_layer_count,
)
from xpnn.params import ParamList

__all__ = ["MAX_LAYERS", "MAX_SAMPLE_DIMS", "MAX_SAMPLE_ELEMENTS", "MODELS", "LayeredNet"]


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _float_dtype(dtype: Any) -> Any:
    backend = get_backend()
    return backend.float_dtype if dtype is None else resolve_dtype(backend.xp, dtype)


#: The float dtypes each one widens to exactly (every value kept): a model
#: takes data of a narrower float than its parameters and widens it, as
#: NumPy promotes (the book's ch. 8 float16 data into float64 weights).
_WIDER = {
    "float16": ("float32", "float64"),
    "bfloat16": ("float32", "float64"),
    "float32": ("float64",),
}


def _check_input(x: Any, features: int | tuple[int, ...], who: str) -> None:
    """``x`` fits ``input_size``: ``(N, features)`` or ``(features,)`` rows for an int,
    ``(N, *shape)`` samples for a tuple."""
    if isinstance(features, tuple):
        if tuple(x.shape[1:]) != features or x.ndim != len(features) + 1:
            shape = ", ".join(map(str, features))
            raise ValueError(f"{who} expects x of shape (N, {shape}), got {tuple(x.shape)}")
    elif x.ndim not in (1, 2) or x.shape[-1] != features:
        raise ValueError(
            f"{who} expects x of shape (N, {features}) or ({features},), got {tuple(x.shape)}"
        )


def _input_size(value: Any, where: str) -> int | tuple[int, ...] | None:
    """A checked ``input_size``: None, a positive int, or a tuple of them (a sample's shape).

    Raises:
        ValueError: Anything else (``where`` names it).
    """

    def size(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    if value is None or size(value):
        return value
    if isinstance(value, (tuple, list)) and value and all(size(v) for v in value):
        return tuple(value)
    raise ValueError(
        f"{where} must be a positive int (features), a non-empty list of positive ints (the "
        f"shape of a sample, such as (1, 28, 28)) or null, got {value!r:.80}"
    )


class LayeredNet(BookParams):
    """A network as vol. 2 of the book builds it: ``layers`` + ``loss_layer``.

    ``params`` and ``grads`` are flat lists gathered from the layers (the
    very arrays the layers hold), so ``optimizer.update(net.params,
    net.grads)`` after ``forward``/``backward`` trains it in place.

    Args:
        layers: The layers, input to output.
        loss_layer: The loss (SoftmaxWithLoss).
        input_size: What a sample is, checked on every call if given: an int
            is the features of ``(N, features)`` rows (or one ``(features,)``
            row); a tuple is the shape of a sample, so ``input_size=(1, 28,
            28)`` takes ``(N, 1, 28, 28)`` images (for a model that flattens
            them first: ``[Flatten(), Affine(W, b), ...]``).

    Raises:
        ValueError: ``input_size`` is not None, a positive int or a tuple of
            them; the layers do not chain from it (a layer's input does not
            fit what it takes: the message names the layer and both shapes;
            see :meth:`xpnn.layers.Layer.output_sample_shape`) or exceed
            :data:`MAX_LAYERS`, :data:`MAX_SAMPLE_DIMS` or
            :data:`MAX_SAMPLE_ELEMENTS`; a loss layer among ``layers``, or a
            ``loss_layer`` that is none (checked without ``input_size`` too).
    """

    def __init__(
        self,
        layers: list[Any],
        loss_layer: SoftmaxWithLoss,
        input_size: int | tuple[int, ...] | None = None,
    ):
        self.layers = layers
        self.loss_layer = loss_layer
        self.input_size = _input_size(input_size, "input_size")
        _check_chain(
            [(type(layer), lambda layer=layer: layer.config()) for layer in layers],
            (type(loss_layer), lambda: loss_layer.config()),
            self.input_size,
        )
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

    @property
    def config(self) -> dict[str, Any]:
        """The architecture as JSON data, what :func:`xpnn.io.save` records.

        ``{"layers": [{"kind": "Affine", "config": {"input_size": 2,
        "output_size": 6}}, {"kind": "Relu", "config": {}}, ...], "loss":
        {"kind": "SoftmaxWithLoss", "config": {}}, "input_size": 2}`` (or
        ``None``, or a list such as ``[1, 28, 28]`` for a tuple): each
        layer's kind and :meth:`xpnn.layers.Layer.config`.

        Raises:
            TypeError: A layer's class is not in :data:`xpnn.layers.LAYERS`.
        """
        return {
            "layers": [_layer_entry(layer, f"layer {i}") for i, layer in enumerate(self.layers)],
            "loss": _layer_entry(self.loss_layer, "the loss layer"),
            "input_size": (
                list(self.input_size) if isinstance(self.input_size, tuple) else self.input_size
            ),
        }

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """The names and shapes of the arrays a model of ``config`` saves, allocating nothing.

        Layer ``i``'s parameters and state arrays are ``layers.i.<name>``
        (``layers.0.W``, ``layers.0.b``).

        Raises:
            ValueError: ``config`` is not one :attr:`config` gives (an unknown
                layer kind, a missing or wrong size: the message names it).
        """
        layers, _, _ = _layered_spec(config)
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (kind, layer_config) in enumerate(layers):
            for name, shape in {
                **kind.param_shapes(layer_config),
                **kind.state_shapes(layer_config),
            }.items():
                shapes[f"layers.{i}.{name}"] = shape
        return shapes

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any = None) -> LayeredNet:
        """A model of ``config`` with zero arrays, on the active backend.

        Args:
            config: As :attr:`config` gives it.
            dtype: Float dtype (the backend's default if omitted).

        Raises:
            ValueError: As :meth:`array_shapes`.
        """
        layers, (loss_kind, loss_config), input_size = _layered_spec(config)
        backend, dtype = get_backend(), _float_dtype(dtype)
        built = [kind.from_config(c, dtype=dtype, backend=backend) for kind, c in layers]
        loss = loss_kind.from_config(loss_config, dtype=dtype, backend=backend)
        return cls(built, loss, input_size)

    def named_arrays(self) -> dict[str, Any]:
        """The arrays a saved file holds by name (the layers' own arrays).

        Raises:
            TypeError: A layer's ``params`` do not match its ``param_names``.
        """
        arrays: dict[str, Any] = {}
        for i, layer in enumerate(self.layers):
            names = type(layer).param_names
            if len(names) != len(layer.params):
                raise TypeError(
                    f"layer {i} ({type(layer).__name__}) has {len(layer.params)} parameters "
                    f"but declares param_names {names}"
                )
            arrays.update({f"layers.{i}.{n}": p for n, p in zip(names, layer.params, strict=True)})
            arrays.update({f"layers.{i}.{n}": getattr(layer, n) for n in type(layer).state_names})
        return arrays

    def scores(self, x: Any, train_flg: bool = False) -> Any:
        """Scores (before softmax) ``(N, classes)`` for inputs ``(N, features)`` or ``(N, ...)``.

        One sample ``(features,)`` gives its ``(classes,)`` scores.

        Args:
            x: The inputs.
            train_flg: Run the layers that act differently in training
                (Dropout, BatchNormalization) in training mode; the default
                is test mode, as the book's ``predict``.
        """
        single = self._single(x)
        out = self._run(get_namespace(x).reshape(x, (1, -1)) if single else x, train_flg)
        # A copy: the last layer's output is its reusable buffer on NumPy/CuPy.
        out = get_namespace(out).asarray(out, copy=True)  # out's namespace (x may be NumPy)
        return out[0, ...] if single else out

    def _single(self, x: Any) -> bool:
        """Whether ``x`` is one sample ``(features,)`` rather than a batch."""
        return x.ndim == 1 and not isinstance(self.input_size, tuple)

    def _run(self, x: Any, train_flg: bool = False) -> Any:
        """The layers' forward pass (the output may be a layer's buffer).

        ``train_flg`` goes to the layers whose class sets ``takes_train_flg``
        (Dropout, BatchNormalization), and only to them.

        Raises:
            ValueError: ``x`` does not fit ``input_size``.
            TypeError: ``x`` is not floating point.
            xpnn.BackendMismatchError: ``x`` is on another backend or device
                than the parameters.
        """
        params = self.params_list()
        first = params[0] if params else x  # (a net of layers without parameters: x's dtype)
        x = adopt_host_input(x, first)  # NumPy data, PyTorch CPU model: wrapped, not copied
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
            if want in _WIDER.get(name, ()):  # exact: float16 data into a float32 model
                return self._run(get_namespace(x).astype(x, first.dtype), train_flg)
            # Narrowing would round x silently; mixing promotes on some backends only.
            raise TypeError(
                f"{type(self).__name__} computes in {want} (its parameters), but x is {name}: "
                f"convert x with xpnn.asarray(x, dtype='{want}'), or build the model with "
                f"dtype='{name}'"
            )
        for layer in self.layers:
            if getattr(type(layer), "takes_train_flg", False):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def params_list(self) -> list[Any]:
        """The parameters as a list, whether ``params`` is a list or a dict."""
        return list(self.params.values()) if isinstance(self.params, dict) else list(self.params)

    def predict(self, x: Any, train_flg: bool = False) -> Any:
        """Scores ``(N, classes)`` (vol. 2 predicts scores, not probabilities).

        Test mode unless ``train_flg`` (see :meth:`scores`).
        """
        return self.scores(x, train_flg)

    def forward(self, x: Any, t: Any, train_flg: bool = True) -> Any:
        """Mean loss of the batch (a 0-d array), keeping what backward needs.

        ``t`` is one-hot ``(N, classes)`` or integer labels ``(N,)``; one
        sample ``x`` ``(features,)`` takes a label ``()`` or one-hot ``(classes,)``.
        A training step: Dropout draws a mask and BatchNormalization uses the
        batch's statistics (and updates its running ones) unless
        ``train_flg=False``.
        """
        if self._single(x):  # the layers compute on batches: a batch of one
            xp = get_namespace(x, t)
            x = xp.reshape(x, (1, -1))
            t = xp.reshape(t, (1, *t.shape))
        y = self._run(x, train_flg)
        return self.loss_layer.forward(y, adopt_host_input(t, y))

    def backward(self, dout: Any = 1, *, input_grad: bool = True) -> Any:
        """Backpropagate after :meth:`forward`; fills ``grads`` in place.

        Returns the gradient w.r.t. the input (valid until the next call), or
        None with ``input_grad=False``, which training uses to skip it.
        """
        return backward(self.layers, self.loss_layer, dout, input_grad=input_grad)

    def accuracy(self, x: Any, t: Any) -> float:
        """Fraction of correctly classified samples, a Python float, as the book's.

        The correct samples are counted on the device (an int64 sum: exact at
        any size and in any dtype of ``x``), the count is read once and
        divided on the host, so the value is the book's ``np.sum(y == t) /
        float(N)`` and prints as it does (66 of 100: ``0.66``) on every
        backend. In test mode (Dropout scales, BatchNormalization uses its
        running statistics). The read waits for the device: an evaluation.
        """
        if self._single(x):
            xp = get_namespace(x, t)
            x, t = xp.reshape(x, (1, -1)), xp.reshape(t, (1, *t.shape))
        scores = self._run(x)
        t = label_column(ops(scores), adopt_host_input(t, scores), scores.shape[1])
        xp = get_namespace(scores, t)
        y = xp.argmax(scores, axis=1)
        if t.ndim != 1:
            t = xp.argmax(t, axis=1)
        return int(to_numpy(xp.sum(xp.astype(y == t, xp.int64)))) / x.shape[0]  # the one read


def _layer_entry(layer: Any, where: str) -> dict[str, Any]:
    """``{"kind", "config"}`` of a layer whose class is registered."""
    kind = type(layer)
    if LAYERS.get(kind.__name__) is not kind:
        raise TypeError(
            f"cannot describe {where}, a {kind.__module__}.{kind.__qualname__}: it is not a "
            "registered layer kind; declare its config (see xpnn.layers.Layer.config) and "
            "register it with xpnn.layers.register_layer"
        )
    return {"kind": kind.__name__, "config": layer.config()}


def _layered_spec(config: Any) -> tuple[list[tuple[type[Layer], Any]], tuple[Any, Any], Any]:
    """Check a LayeredNet config (from a file): ``(layers, loss, input_size)``.

    Raises:
        ValueError: Not of the form :attr:`LayeredNet.config` gives, or a
            layer kind not in :data:`xpnn.layers.LAYERS`, or a layer config
            that kind refuses.
    """
    _check_config_keys("LayeredNet", config, ("input_size", "layers", "loss"))
    size = _input_size(config["input_size"], "LayeredNet config 'input_size'")
    if not isinstance(config["layers"], list) or not config["layers"]:
        raise ValueError(
            f"LayeredNet config 'layers' must be a non-empty list, got {config['layers']!r:.80}"
        )

    def entry(spec: Any, where: str) -> tuple[type[Layer], Any]:
        if not isinstance(spec, dict) or sorted(spec) != ["config", "kind"]:
            raise ValueError(f"{where} must be {{'kind': ..., 'config': ...}}, got {spec!r:.80}")
        kind = LAYERS.get(spec["kind"]) if isinstance(spec["kind"], str) else None
        if kind is None:
            raise ValueError(
                f"{where} is of unknown layer kind {spec['kind']!r:.80}; known kinds: "
                f"{', '.join(LAYERS)} (a newer xpnn, or a layer registered by the program "
                "that saved it? register it with xpnn.layers.register_layer before loading)"
            )
        kind.param_shapes(spec["config"])  # its own checks
        return kind, spec["config"]

    _check_layer_count(len(config["layers"]))  # before checking each
    layers = [entry(spec, f"layer {i}") for i, spec in enumerate(config["layers"])]
    loss = entry(config["loss"], "the loss layer")
    if loss[0].param_shapes(loss[1]) or loss[0].state_shapes(loss[1]):
        raise ValueError(f"the loss layer {loss[0].__name__} has arrays; a loss layer cannot")
    _check_chain(layers, loss, size)
    return layers, loss, size


#: The model classes a saved file may name, by class name (exactly these: a
#: subclass may compute otherwise, so it does not load as one of them). Each
#: model module of :mod:`xpnn.models` adds its own when imported, which
#: ``import xpnn`` does.
MODELS: dict[str, type] = {"LayeredNet": LayeredNet}

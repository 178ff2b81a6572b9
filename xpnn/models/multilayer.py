"""The book's chapter-6 networks: MultiLayerNet and MultiLayerNetExtend.

``common/multi_layer_net.py`` and ``common/multi_layer_net_extend.py`` of
*Deep Learning from Scratch* (vol. 1): fully connected nets of any depth
with ReLU or sigmoid activations, He or Xavier initial weights
(:func:`weight_init_scale`) and weight decay (L2); the extended net adds
:class:`~xpnn.layers.BatchNormalization` and :class:`~xpnn.layers.Dropout`
after each hidden Affine layer::

    Affine - [BatchNormalization] - Relu|Sigmoid - [Dropout]   (each hidden layer)
    Affine - SoftmaxWithLoss                                   (the output)

Both are :class:`xpnn.models.LayeredNet` models with the book's names and
signatures (plus keyword-only ``seed`` and ``dtype``): ``params`` and
``grads`` are dicts with the book's keys ``W1``, ``b1``, ..., ``gamma1``,
``beta1``, ... (the very arrays the layers hold: update them in place, as
every optimizer of :mod:`xpnn.optimizers` does), ``loss(x, t,
train_flg=False)``, ``gradient``, ``numerical_gradient``, ``predict`` and
``accuracy``. The weight decay ``0.5 * lambda * sum(W**2)`` of every Affine
``W`` is added to the loss on the device, and ``lambda * W`` to each ``W``'s
gradient in :meth:`~MultiLayerNet.backward`, in place. Both train with
:class:`xpnn.Trainer` (training mode) and save and load with :mod:`xpnn.io`
(BatchNormalization's running statistics included); importing this module
adds them to :data:`xpnn.models.MODELS`.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import get_backend, to_numpy, zeros
from xpnn.layers import (
    Affine,
    BatchNormalization,
    Dropout,
    SoftmaxWithLoss,
    backward,
)
from xpnn.models.layered import MODELS, LayeredNet, _float_dtype
from xpnn.models.multilayer_settings import (
    _ACTIVATIONS,
    _checked_config,
    _decay,
    _settings,
    multilayer_shapes,
)
from xpnn.models.numerical_gradient import held_numerical_gradient
from xpnn.models.weight_decay import add_decay_grads, decay_loss
from xpnn.models.weight_init import _dropout_seeds, _init_scale, weight_init_scale
from xpnn.params import ParamDict
from xpnn.random import default_rng, fresh_seed

__all__ = ["MultiLayerNet", "MultiLayerNetExtend", "weight_init_scale"]


class MultiLayerNet(LayeredNet):
    """The book's ``MultiLayerNet``: Affine - Relu|Sigmoid per hidden layer, then Affine.

    Args:
        input_size: Features per sample (784 for MNIST).
        hidden_size_list: Units of each hidden layer, e.g. ``[100, 100, 100]``
            (a non-empty list of positive ints).
        output_size: Classes (10 for MNIST).
        activation: ``'relu'`` or ``'sigmoid'``.
        weight_init_std: ``'relu'``/``'he'``, ``'sigmoid'``/``'xavier'`` or a
            positive number (see :func:`weight_init_scale`): ``W_i`` is that
            scale times standard-normal draws from ``xpnn.default_rng(seed)``,
            ``W1``, ``W2``, ... in order (the same on every backend); biases
            start at 0.
        weight_decay_lambda: Strength of the weight decay (L2), a finite
            number >= 0; 0 (the default) computes nothing for it.
        seed: Seed of the initial weights, an int in ``[0, 2**63)``; None
            takes one from :func:`xpnn.random.fresh_seed` (the global seed's
            sequence while one is set, else OS entropy), so :attr:`seed` (and
            the saved config) is always an int.
        dtype: Float dtype of the parameters (the backend's default, float32,
            if omitted; ``"float64"`` for gradient checks).

    Attributes:
        params: ``{'W1': (input_size, h1), 'b1': (h1,), ..., 'W{L+1}': (h_L,
            output_size), 'b{L+1}': (output_size,)}``, a
            :class:`~xpnn.params.ParamDict` of the layers' own arrays.
        grads: A dict of the same keys in layer order (``W1``, ``b1``,
            ``gamma1``, ``beta1``, ``W2``..., the book's ``gradient()``
            order): the layers' gradient arrays, filled in place by
            :meth:`backward` (weight decay included).
        layers: ``[Affine, Relu|Sigmoid, ..., Affine]``; ``loss_layer`` (also
            ``last_layer``, the book's name): SoftmaxWithLoss.
        hidden_size_list: The settings below are read-only (the layers
            are built from them): the hidden sizes.
        hidden_layer_num: How many hidden layers.
        output_size: Classes.
        activation: ``'relu'`` or ``'sigmoid'``.
        weight_init_std: As given (a name in lower case, or a number).
        seed: The seed of the initial weights (an int, drawn when None).
        weight_decay_lambda: Read when the loss and gradients are computed;
            assigning it is checked and changes :attr:`config` too.

    Raises:
        ValueError: A size that is not a positive int, an empty
            ``hidden_size_list``, an unknown ``activation`` or
            ``weight_init_std``, a negative or non-finite
            ``weight_decay_lambda``, a seed out of range (the message names
            the argument). Nothing is allocated then.
        TypeError: An argument of the wrong type (a string for a number...).
    """

    _EXTENDED = False

    def __init__(
        self,
        input_size: int,
        hidden_size_list: list[int],
        output_size: int,
        activation: str = "relu",
        weight_init_std: Any = "relu",
        weight_decay_lambda: float = 0,
        *,
        seed: int | None = None,
        dtype: Any = None,
    ):
        self._build(
            dtype,
            input_size=input_size,
            hidden_size_list=hidden_size_list,
            output_size=output_size,
            activation=activation,
            weight_init_std=weight_init_std,
            weight_decay_lambda=weight_decay_lambda,
            seed=seed,
        )

    def _build(self, dtype: Any, **given: Any) -> None:
        """Check every argument, then make the weights and layers."""
        s = _settings(type(self).__name__, self._EXTENDED, **given)
        dtype = _float_dtype(dtype)  # an unknown dtype fails here, before any draw
        if s["seed"] is None:
            s["seed"] = fresh_seed()
        self._settings = s
        hidden = s["hidden_size_list"]
        sizes = [s["input_size"], *hidden, s["output_size"]]
        use_bn = s.get("use_batchnorm", False)
        use_dropout = s.get("use_dropout", False)

        backend = get_backend()
        rng = default_rng(s["seed"])
        keyed: dict[str, Any] = {}
        for i in range(1, len(sizes)):
            scale = _init_scale(s["weight_init_std"], sizes[i - 1])
            keyed[f"W{i}"] = rng.normal(0.0, scale, (sizes[i - 1], sizes[i]), dtype=dtype)
            keyed[f"b{i}"] = zeros(sizes[i], dtype=dtype, backend=backend)
        seeds = _dropout_seeds(s["seed"], len(hidden)) if use_dropout else []
        activation = _ACTIVATIONS[s["activation"]]
        layers: list[Any] = []
        keys: list[str] = []  # the book's key of each layer parameter, in layer order
        self._batchnorms: list[Any] = []
        self._dropouts: list[Any] = []
        for i in range(1, len(hidden) + 1):
            layers.append(Affine(keyed[f"W{i}"], keyed[f"b{i}"]))
            keys += [f"W{i}", f"b{i}"]
            if use_bn:
                xp, n = backend.xp, hidden[i - 1]
                keyed[f"gamma{i}"] = xp.ones((n,), dtype=dtype, device=backend.device)
                keyed[f"beta{i}"] = zeros(n, dtype=dtype, backend=backend)
                bn = BatchNormalization(keyed[f"gamma{i}"], keyed[f"beta{i}"])
                layers.append(bn)
                self._batchnorms.append(bn)
                keys += [f"gamma{i}", f"beta{i}"]
            layers.append(activation())
            if use_dropout:
                dropout = Dropout(s["dropout_ration"], seed=seeds[i - 1])
                layers.append(dropout)
                self._dropouts.append(dropout)
        last = len(sizes) - 1
        layers.append(Affine(keyed[f"W{last}"], keyed[f"b{last}"]))
        keys += [f"W{last}", f"b{last}"]
        super().__init__(layers, SoftmaxWithLoss(), s["input_size"])

        # The book's keys in the book's orders, over the very arrays the layers
        # hold: params W1, b1, ..., W3, b3, gamma1, beta1, ... (as the book's
        # __init_weight, then its layer loop, add them); grads in layer order,
        # W1, b1, gamma1, beta1, W2, ... (as the book's gradient() fills them).
        self._params = ParamDict({k: keyed[k] for k in keyed}, type(self).__name__)
        self.grads = dict(zip(keys, self.grads, strict=True))
        # (W, its gradient) of every Affine layer: what weight decay touches.
        self._decayed = [(keyed[f"W{i}"], self.grads[f"W{i}"]) for i in range(1, last + 1)]
        self._decay_buffers: dict[Any, Any] = {}

    # ------------------------------------------------------------ settings
    # The architecture is fixed once built: these are read-only (assigning
    # one would change nothing the layers compute, silently).

    @property
    def output_size(self) -> int:
        """Classes."""
        return self._settings["output_size"]

    @property
    def hidden_size_list(self) -> list[int]:
        """Units of each hidden layer (a copy)."""
        return list(self._settings["hidden_size_list"])

    @property
    def hidden_layer_num(self) -> int:
        """The number of hidden layers."""
        return len(self._settings["hidden_size_list"])

    @property
    def activation(self) -> str:
        """``'relu'`` or ``'sigmoid'``."""
        return self._settings["activation"]

    @property
    def weight_init_std(self) -> str | float:
        """The initial weights' setting (a lower-case name or a number)."""
        return self._settings["weight_init_std"]

    @property
    def seed(self) -> int:
        """The seed of the initial weights (and of the Dropout layers' seeds)."""
        return self._settings["seed"]

    @property
    def weight_decay_lambda(self) -> float:
        """Strength of the weight decay; may be changed (checked), e.g. between fits."""
        return self._settings["weight_decay_lambda"]

    @weight_decay_lambda.setter
    def weight_decay_lambda(self, value: float) -> None:
        self._settings["weight_decay_lambda"] = _decay(value)

    # ------------------------------------------------------------ the book's API

    @property
    def last_layer(self) -> Any:
        """The book's name of :attr:`loss_layer` (SoftmaxWithLoss)."""
        return self.loss_layer

    def forward(self, x: Any, t: Any, train_flg: bool = True) -> Any:
        """The book's loss: mean cross-entropy plus ``0.5 * lambda * sum(W**2)``.

        Keeps what :meth:`backward` needs. The weight decay is summed over
        every Affine ``W`` on the device, in the loss's dtype (float32 for
        half-precision parameters), and added to the 0-d loss; with
        ``weight_decay_lambda == 0`` nothing is computed for it.

        Args:
            x: ``(N, input_size)`` inputs of the parameters' dtype (or one
                ``(input_size,)`` sample).
            t: Integer labels ``(N,)`` or one-hot ``(N, output_size)``.
            train_flg: Training mode (the default here, as a training step
                wants: Dropout draws masks, BatchNormalization uses the
                batch's statistics and updates its running ones) or test mode.

        Returns:
            The loss, a 0-d array.
        """
        loss = super().forward(x, t, train_flg)
        return decay_loss(loss, self._decayed, self.weight_decay_lambda)

    def backward(self, dout: Any = 1, *, input_grad: bool = True) -> Any:
        """Backpropagate after :meth:`forward`; fills ``grads`` in place.

        The one backprop of :func:`xpnn.layers.backward`, then ``dout *
        lambda * W`` is added to each ``W``'s gradient in place, on the
        device (nothing with ``weight_decay_lambda == 0``).

        Args:
            dout: The loss's upstream gradient: a number, or a 0-d array on
                the parameters' device (a loss scale), never read.
            input_grad: Also return the gradient w.r.t. the input.

        Returns:
            The input's gradient (valid until the next call), or None with
            ``input_grad=False``.
        """
        dx = backward(self.layers, self.loss_layer, dout, input_grad=input_grad)
        add_decay_grads(self._decayed, self.weight_decay_lambda, dout, self._decay_buffers)
        return dx

    def loss(self, x: Any, t: Any, train_flg: bool = False) -> Any:
        """The book's ``loss``: :meth:`forward` in test mode unless ``train_flg``.

        Mean cross-entropy plus the weight decay, read to the host as a NumPy
        scalar of its dtype (one read; the book's number, printed as NumPy
        prints it on every backend). :meth:`forward` gives the 0-d device
        array without a read.
        """
        return to_numpy(self.forward(x, t, train_flg))[()]

    def gradient(self, x: Any, t: Any) -> dict[str, Any]:
        """Gradients of the training-mode loss by backpropagation, keyed like ``params``.

        One training forward pass (Dropout draws its next masks,
        BatchNormalization updates its running statistics, as the book's),
        one backward pass with the weight decay's ``lambda * W`` in each W's
        gradient.

        Returns:
            :attr:`grads`, the layers' gradient arrays: the next call
            overwrites them (copy them to keep them).
        """
        self.forward(x, t, True)
        self.backward(input_grad=False)
        return self.grads

    def numerical_gradient(self, x: Any, t: Any) -> dict[str, Any]:
        """Gradients of the training-mode loss by central differences, keyed like ``params``.

        The book's ``(L(p + h) - L(p - h)) / 2h`` with ``h = 1e-4``,
        parameter element by element (two forward passes each: use a small
        net). The loss is :meth:`forward`'s in training mode, weight decay
        included, with every Dropout mask held fixed: one training forward
        pass draws the masks (those the next training pass would draw),
        and the perturbed passes reuse them. Afterwards the Dropout layers'
        ``draws``, ``mask`` and ``hold_mask`` and BatchNormalization's
        running statistics are exactly as before the call, so calling
        :meth:`gradient` next, on the same ``x``, backpropagates through the
        same masks. The parameters are restored exactly too.

        Build the net with ``dtype="float64"``: in float32 the differences are
        mostly rounding noise (a :class:`xpnn.gradient.Float32GradientWarning`
        says so).

        Returns:
            New arrays of the parameters' shapes, dtype and device.
        """
        return held_numerical_gradient(self, x, t)

    # ------------------------------------------------------------ saving

    @property
    def config(self) -> dict[str, Any]:
        """Every constructor argument but ``dtype`` (``seed`` as an int): JSON data."""
        s = self._settings
        return {**s, "hidden_size_list": list(s["hidden_size_list"])}

    @classmethod
    def _checked_config(cls, config: Any) -> dict[str, Any]:
        """A config from a file checked as the constructor checks its arguments."""
        return _checked_config(cls.__name__, cls._EXTENDED, config)

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """The names and shapes of the arrays a model of ``config`` saves, allocating nothing.

        ``params`` by the book's keys (``W1``, ``b1``, ..., ``gamma1``,
        ``beta1``, ...) and BatchNormalization's running statistics as
        ``running_mean1``, ``running_var1``, ... (hidden layer ``i``).

        Raises:
            ValueError: ``config`` is not one :attr:`config` gives.
        """
        return multilayer_shapes(cls._checked_config(config))

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
        """The arrays a saved file holds: ``params`` and the running statistics."""
        arrays = dict(self.params)
        for i, bn in enumerate(self._batchnorms, 1):
            arrays[f"running_mean{i}"] = bn.running_mean
            arrays[f"running_var{i}"] = bn.running_var
        return arrays


class MultiLayerNetExtend(MultiLayerNet):
    """The book's ``MultiLayerNetExtend``: MultiLayerNet with BatchNorm and Dropout.

    Each hidden layer is ``Affine - [BatchNormalization] - Relu|Sigmoid -
    [Dropout]``. Training passes (:meth:`forward`, :meth:`gradient`,
    ``loss(x, t, train_flg=True)``) drop activations and normalise with the
    batch's statistics; test passes (``predict``, ``accuracy``, ``loss``
    by default) scale by ``1 - dropout_ration`` and use the running
    statistics, as the book's.

    Args:
        input_size: As :class:`MultiLayerNet` (so are ``hidden_size_list``,
            ``output_size``, ``activation``, ``weight_init_std``,
            ``weight_decay_lambda``, ``seed`` and ``dtype``).
        use_dropout: Add a :class:`~xpnn.layers.Dropout` after each hidden
            activation. Its masks are drawn on the device from seeds derived
            from ``seed`` (the same masks on every backend).
        dropout_ration: Dropout's ratio (the book's spelling), in ``[0, 1)``.
        use_batchnorm: Add a :class:`~xpnn.layers.BatchNormalization`
            (gamma ones, beta zeros, momentum 0.9) after each hidden Affine;
            ``params`` gain ``gamma1``, ``beta1``, ...

    Attributes:
        use_dropout, dropout_ration, use_batchnorm: The settings (and those
            of :class:`MultiLayerNet`).

    Raises:
        ValueError, TypeError: As :class:`MultiLayerNet`; ``dropout_ration``
            outside ``[0, 1)``, ``use_dropout`` or ``use_batchnorm`` not a bool.
    """

    _EXTENDED = True

    def __init__(
        self,
        input_size: int,
        hidden_size_list: list[int],
        output_size: int,
        activation: str = "relu",
        weight_init_std: Any = "relu",
        weight_decay_lambda: float = 0,
        use_dropout: bool = False,
        dropout_ration: float = 0.5,
        use_batchnorm: bool = False,
        *,
        seed: int | None = None,
        dtype: Any = None,
    ):
        self._build(
            dtype,
            input_size=input_size,
            hidden_size_list=hidden_size_list,
            output_size=output_size,
            activation=activation,
            weight_init_std=weight_init_std,
            weight_decay_lambda=weight_decay_lambda,
            use_dropout=use_dropout,
            dropout_ration=dropout_ration,
            use_batchnorm=use_batchnorm,
            seed=seed,
        )

    @property
    def use_dropout(self) -> bool:
        """Whether each hidden layer ends in Dropout."""
        return self._settings["use_dropout"]

    @property
    def dropout_ration(self) -> float:
        """The Dropout layers' ratio (the book's spelling)."""
        return self._settings["dropout_ration"]

    @property
    def use_batchnorm(self) -> bool:
        """Whether each hidden Affine is followed by BatchNormalization."""
        return self._settings["use_batchnorm"]


# Saved files may name them (xpnn.io.save/load): `import xpnn` imports this module.
MODELS.update({cls.__name__: cls for cls in (MultiLayerNet, MultiLayerNetExtend)})

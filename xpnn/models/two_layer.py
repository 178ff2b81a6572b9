"""Two-layer nets: ``TwoLayerNet`` (vol. 1 ch. 4, Sigmoid; ``activation="relu"``
for ch. 5's), ``TwoLayerNetReLU`` (vol. 1 ch. 5) and ``LayeredTwoLayerNet`` (vol. 2 ch. 1)."""

from __future__ import annotations

from typing import Any

from xpnn.backend import device_of, get_namespace, to_numpy, zeros
from xpnn.functions import softmax
from xpnn.gradient import (
    H,
    _block_elements,
    _blocks,
    _check_two_layer,
    _second_layer_gradient,
    _split,
    _steps,
    _targets,
    _two_layer_numerical_gradient,
    warn_if_float32,
)
from xpnn.layers import (
    Affine,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
)
from xpnn.layers.base import _config_sizes
from xpnn.models.layered import MODELS, LayeredNet, _check_input, _check_sizes, _float_dtype
from xpnn.params import ParamDict
from xpnn.random import default_rng

__all__ = ["ACTIVATIONS", "LayeredTwoLayerNet", "TwoLayerNet", "TwoLayerNetReLU"]

#: The hidden activations of :class:`TwoLayerNet`: ch. 4's Sigmoid, ch. 5's ReLU.
ACTIVATIONS = {"sigmoid": Sigmoid, "relu": Relu}


def _check_activation(who: str, activation: Any) -> str:
    """``activation`` if it names one of :data:`ACTIVATIONS`, else a ValueError."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(
            f"{who} activation must be 'sigmoid' (vol. 1 ch. 4) or 'relu' (vol. 1 ch. 5), "
            f"got {activation!r:.80}"
        )
    return activation


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

    @property
    def config(self) -> dict[str, Any]:
        """The sizes, what :func:`xpnn.io.save` records to rebuild the model."""
        return {
            "input_size": self.input_size,
            "hidden_size": int(self.layers[0].params[0].shape[1]),
            "output_size": self.output_size,
        }

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """``params.0`` ... ``params.3`` and their shapes for ``config``, allocating nothing."""
        d, h, c = _config_sizes(cls, config, "input_size", "hidden_size", "output_size")
        return {f"params.{i}": s for i, s in enumerate([(d, h), (h,), (h, c), (c,)])}

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any = None) -> Any:
        """A model of ``config`` (random weights), on the active backend."""
        cls.array_shapes(config)
        return cls(**config, dtype=dtype)

    def named_arrays(self) -> dict[str, Any]:
        """``params.0`` ... ``params.3``: the arrays a saved file holds."""
        return {f"params.{i}": p for i, p in enumerate(self.params_list())}


class TwoLayerNet(LayeredTwoLayerNet):
    """The book's chapter-4 two-layer network: Affine - Sigmoid - Affine - Softmax.

    With ``activation="relu"`` it is chapter 5's network instead (Affine -
    Relu - Affine + SoftmaxWithLoss, the same ``params``, ``gradient`` and
    ``numerical_gradient``); :class:`TwoLayerNetReLU` is that net under a
    name whose default is ReLU, for ports of ch. 5's scripts.

    Args:
        input_size: Features per sample (784 for MNIST).
        hidden_size: Hidden units.
        output_size: Classes.
        weight_init_std: Standard deviation of the initial weights.
        activation: The hidden layer: ``"sigmoid"`` (ch. 4, the default) or
            ``"relu"`` (ch. 5). Kept in :attr:`config`, so a saved net loads
            with it (a file without it is a Sigmoid net).
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
        layers: ``[Affine, Sigmoid, Affine]`` (``[Affine, Relu, Affine]`` for
            ``"relu"``); ``loss_layer``: SoftmaxWithLoss.
        activation: ``"sigmoid"`` or ``"relu"``.

    Raises:
        ValueError: ``activation`` is neither ``"sigmoid"`` nor ``"relu"``.
    """

    KEYS = ("W1", "b1", "W2", "b2")
    #: The hidden activation when none is given.
    DEFAULT_ACTIVATION = "sigmoid"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        weight_init_std: float = 0.01,
        *,
        activation: str | None = None,
        seed: int | None = None,
        dtype: Any = None,
    ):
        if activation is None:
            activation = self.DEFAULT_ACTIVATION
        self.activation = _check_activation(type(self).__name__, activation)
        super().__init__(
            input_size, hidden_size, output_size, weight_init_std, seed=seed, dtype=dtype
        )
        # The hidden layer holds no parameters: swapping it keeps params and grads.
        self.layers[1] = ACTIVATIONS[activation]()
        # The same arrays as the layers hold, under the book's chapter-4 keys.
        self._params = ParamDict(zip(self.KEYS, self._params, strict=True), type(self).__name__)
        self.grads = dict(zip(self.KEYS, self.grads, strict=True))

    @property
    def config(self) -> dict[str, Any]:
        """The sizes and ``activation``, what :func:`xpnn.io.save` records."""
        return {**super().config, "activation": self.activation}

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """``W1``, ``b1``, ``W2``, ``b2`` and their shapes for ``config``, allocating nothing.

        ``config`` may lack ``activation`` (files saved before it existed):
        that is the class's default.
        """
        if isinstance(config, dict) and "activation" in config:
            _check_activation(f"{cls.__name__} config", config["activation"])
            config = {k: v for k, v in config.items() if k != "activation"}
        return dict(zip(cls.KEYS, super().array_shapes(config).values(), strict=True))

    def named_arrays(self) -> dict[str, Any]:
        """``params`` as a plain dict: the arrays a saved file holds."""
        return dict(self.params)

    def predict(self, x: Any) -> Any:
        """Class probabilities ``(N, output_size)`` (softmax output, as in ch. 4).

        One sample ``(input_size,)`` gives its ``(output_size,)`` probabilities.
        """
        return softmax(self.scores(x) if self._single(x) else self._run(x))

    def loss(self, x: Any, t: Any) -> Any:
        """Mean cross-entropy of softmax(scores) against ``t``, a NumPy scalar.

        Computed with the fused, stable softmax_cross_entropy; ``t`` is
        one-hot ``(N, output_size)`` or integer labels ``(N,)``. Read to the
        host once, in its dtype, as the book's number (it prints as NumPy
        prints it on every backend);
        :meth:`forward` gives the 0-d device array without a read.
        """
        return to_numpy(self.forward(x, t))[()]

    def numerical_gradient(self, x: Any, t: Any) -> dict[str, Any]:
        """Gradients of :meth:`loss` by central differences, keyed like ``params``.

        Each component is the book's ``(L(p + h) - L(p - h)) / 2h``, but
        computed by :func:`xpnn.gradient.two_layer_numerical_gradient` (its
        ReLU counterpart here for ``activation="relu"``), which
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
        arrays = [self.params[k] for k in self.KEYS]
        if self.activation == "relu":
            return _relu_two_layer_numerical_gradient(*arrays, x, t)
        return _two_layer_numerical_gradient(*arrays, x, t)

    def gradient(self, x: Any, t: Any) -> dict[str, Any]:
        """Gradients of :meth:`loss` by backpropagation, keyed like ``params``.

        The returned arrays are the layers' preallocated ``grads``: the next
        call overwrites them (copy them to keep them). The batch's loss is
        left in ``loss_layer.loss``.
        """
        self.forward(x, t)
        self.backward(input_grad=False)
        return self.grads


class TwoLayerNetReLU(TwoLayerNet):
    """Vol. 1 ch. 5's ``TwoLayerNet``: Affine - Relu - Affine + SoftmaxWithLoss.

    :class:`TwoLayerNet` with ``activation="relu"`` as its default, and, as
    in ch. 5, :meth:`predict` returns the scores (ch. 4's returns
    probabilities; ``accuracy`` is the same either way). A ch. 5 script
    ports by its import line: ``from xpnn import TwoLayerNetReLU as
    TwoLayerNet`` in place of ``from two_layer_net import TwoLayerNet``.

    Args: as :class:`TwoLayerNet` (``activation`` defaults to ``"relu"``).
    """

    DEFAULT_ACTIVATION = "relu"

    def predict(self, x: Any, train_flg: bool = False) -> Any:
        """Scores ``(N, output_size)`` before softmax, as ch. 5's ``predict``.

        One sample ``(input_size,)`` gives its ``(output_size,)`` scores.
        """
        return self.scores(x, train_flg)


def _relu_two_layer_numerical_gradient(
    W1: Any, b1: Any, W2: Any, b2: Any, x: Any, t: Any, h: float = H
) -> dict[str, Any]:
    """The book's numerical gradient of the ReLU two-layer net, perturbations batched.

    What :func:`xpnn.gradient.two_layer_numerical_gradient` computes for the
    Sigmoid net (the same central differences ``(L(p + h) - L(p - h)) / 2h``
    with the element-by-element loop's perturbed values, evaluating only
    what a perturbation changes), for scores ``relu(x @ W1 + b1) @ W2 + b2``:
    a step of ``W1[i, j]`` (``b1[j]``: an input that is always 1) changes
    hidden unit j by ``dz = relu(a_j + step * x_i) - z_j`` and score k by
    ``dz * W2[j, k]``; a step of ``W2[j, k]`` (``b2[k]``) score k by
    ``step * z_j`` (``step``). The loss change of a sample with scores ``s``,
    ``p = softmax(s)`` and targets ``t`` under a score change ``d`` is
    ``sum(t) * log1p(sum_k p_k expm1(d_k)) - t @ d``.
    """
    xp = get_namespace(W1, b1, W2, b2, x, t)
    _check_two_layer(W1, b1, W2, b2, x, t, xp)
    n, d = x.shape
    hidden, c = W2.shape
    dev = device_of(x)
    budget = _block_elements(x)
    a = x @ W1 + b1  # (N, H)
    zero = xp.zeros((), dtype=a.dtype, device=dev)
    z = xp.maximum(a, zero)
    s = z @ W2 + b2  # (N, C)
    dtype = s.dtype
    tt = _targets(xp, t, c, dtype)
    t_sum = xp.sum(tt, axis=1)  # (N,)
    pT = softmax(s).T  # (C, N)
    ones = xp.ones((n, 1), dtype=dtype, device=dev)

    # ---- W1 and b1 (b1 is a row of W1 whose input is always 1).
    xT = xp.concat([xp.astype(x, dtype), ones], axis=1).T  # (D+1, N)
    up1, down1 = _steps(xp.concat([W1, xp.reshape(b1, (1, hidden))], axis=0), h)
    steps1 = xp.stack([up1, -down1])  # (2, D+1, H)
    aT, zT, W2T = a.T, z.T, W2.T  # (H, N), (H, N), (C, H)
    twT = (tt @ W2T).T  # (H, N): t @ W2[j, :] per sample
    g1 = xp.zeros((d + 1, hidden), dtype=dtype, device=dev)
    for r0, r1, j0, j1 in _blocks(d + 1, hidden, 2 * n, budget):
        dz = steps1[:, r0:r1, j0:j1, None] * xT[None, r0:r1, None, :]  # (2, R, J, N)
        dz += aT[None, None, j0:j1, :]
        dz = xp.maximum(dz, zero) - zT[None, None, j0:j1, :]
        total = xp.zeros_like(dz)
        for k in range(c):
            total += pT[k, :] * xp.expm1(dz * W2T[k, None, None, j0:j1, None])
        change = t_sum * xp.log1p(total) - dz * twT[None, None, j0:j1, :]
        g1[r0:r1, j0:j1] = xp.sum(change[0, ...] - change[1, ...], axis=-1) / n / (2 * h)

    g2 = _second_layer_gradient(xp, z, W2, b2, tt, t_sum, pT, h, budget)
    return _split(xp, g1, g2, (W1, b1, W2, b2))


MODELS["TwoLayerNet"] = TwoLayerNet
MODELS["TwoLayerNetReLU"] = TwoLayerNetReLU
MODELS["LayeredTwoLayerNet"] = LayeredTwoLayerNet

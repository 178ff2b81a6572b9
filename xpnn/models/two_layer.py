"""Two-layer nets: ``TwoLayerNet`` (vol. 1 ch. 4-5) and ``LayeredTwoLayerNet`` (vol. 2 ch. 1)."""

from __future__ import annotations

from typing import Any

from xpnn.backend import (
    zeros,
)
from xpnn.functions import softmax
from xpnn.gradient import _two_layer_numerical_gradient, warn_if_float32
from xpnn.layers import (
    Affine,
    Sigmoid,
    SoftmaxWithLoss,
)
from xpnn.layers.base import _config_sizes
from xpnn.models.layered import MODELS, LayeredNet, _check_input, _check_sizes, _float_dtype
from xpnn.params import ParamDict
from xpnn.random import default_rng

__all__ = ["LayeredTwoLayerNet", "TwoLayerNet"]


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

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """``W1``, ``b1``, ``W2``, ``b2`` and their shapes for ``config``, allocating nothing."""
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


MODELS["TwoLayerNet"] = TwoLayerNet
MODELS["LayeredTwoLayerNet"] = LayeredTwoLayerNet

"""Layers with forward and backward side by side (vol. 2, ch. 1 of the book).

Each layer keeps its parameters in ``params`` and their gradients in
``grads``: two lists of arrays of the same shapes. As in the book, gradients
are written *in place* into ``grads`` (``g[...] = value``), so an optimizer
or a model can hold on to those arrays; and parameters are the very arrays
the model's ``params`` hold, so update them in place too
(``p -= lr * g``), not by rebinding.

Every layer takes its namespace from its inputs and runs on any backend.
Shapes: ``x`` is ``(N, D)``, ``W`` is ``(D, H)``, ``b`` is ``(H,)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xpnn.backend import device_of, get_namespace
from xpnn.functions import sigmoid, softmax, softmax_cross_entropy

__all__ = [
    "Affine",
    "Layer",
    "MatMul",
    "Relu",
    "Sigmoid",
    "Softmax",
    "SoftmaxWithLoss",
    "backward",
    "one_hot",
]


class Layer:
    """Base class: a layer with no parameters."""

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []

    def forward(self, x: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dout: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(p.shape)) for p in self.params)
        return f"{type(self).__name__}({shapes})"


def _zeros_like_all(arrays: Sequence[Any]) -> list[Any]:
    return [get_namespace(a).zeros_like(a) for a in arrays]


class MatMul(Layer):
    """out = x @ W."""

    def __init__(self, W: Any):
        self.params = [W]
        self.grads = _zeros_like_all(self.params)
        self.x: Any = None

    def forward(self, x: Any) -> Any:
        (W,) = self.params
        self.x = x
        return x @ W

    def backward(self, dout: Any) -> Any:
        (W,) = self.params
        self.grads[0][...] = self.x.T @ dout
        return dout @ W.T


class Affine(Layer):
    """out = x @ W + b."""

    def __init__(self, W: Any, b: Any):
        self.params = [W, b]
        self.grads = _zeros_like_all(self.params)
        self.x: Any = None

    def forward(self, x: Any) -> Any:
        W, b = self.params
        self.x = x
        return x @ W + b

    def backward(self, dout: Any) -> Any:
        xp = get_namespace(dout)
        W, _ = self.params
        self.grads[0][...] = self.x.T @ dout
        self.grads[1][...] = xp.sum(dout, axis=0)
        return dout @ W.T


class Sigmoid(Layer):
    """out = 1 / (1 + exp(-x)); backward uses the saved output."""

    def __init__(self) -> None:
        super().__init__()
        self.out: Any = None

    def forward(self, x: Any) -> Any:
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout: Any) -> Any:
        return dout * (1 - self.out) * self.out


class Relu(Layer):
    """out = max(0, x); backward passes the gradient where x > 0."""

    def __init__(self) -> None:
        super().__init__()
        self.mask: Any = None

    def forward(self, x: Any) -> Any:
        xp = get_namespace(x)
        self.mask = x > 0
        return xp.where(self.mask, x, xp.zeros_like(x))

    def backward(self, dout: Any) -> Any:
        xp = get_namespace(dout)
        return xp.where(self.mask, dout, xp.zeros_like(dout))


class Softmax(Layer):
    """Softmax over the last axis."""

    def __init__(self) -> None:
        super().__init__()
        self.out: Any = None

    def forward(self, x: Any) -> Any:
        self.out = softmax(x)
        return self.out

    def backward(self, dout: Any) -> Any:
        xp = get_namespace(dout)
        dx = self.out * dout
        return dx - self.out * xp.sum(dx, axis=-1, keepdims=True)


def one_hot(t: Any, num_classes: int, dtype: Any) -> Any:
    """Integer labels ``(N,)`` -> one-hot ``(N, num_classes)`` in ``dtype``."""
    xp = get_namespace(t)
    classes = xp.arange(num_classes, dtype=t.dtype, device=device_of(t))
    return xp.astype(xp.reshape(t, (-1, 1)) == classes, dtype)


class SoftmaxWithLoss(Layer):
    """Softmax and cross-entropy in one layer (fused, numerically stable).

    ``forward(x, t)`` takes scores ``(N, C)`` and one-hot ``(N, C)`` or
    integer ``(N,)`` labels and returns the mean loss as a 0-d array (also
    kept in ``loss``, as the book does, so a training loop can record it
    without a second forward pass); ``backward(dout=1)`` returns
    ``(softmax(x) - t) * dout / N``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loss: Any = None
        self.y: Any = None
        self.t: Any = None

    def forward(self, x: Any, t: Any) -> Any:
        xp = get_namespace(x, t)
        if t.ndim not in (1, 2) or t.shape[0] != x.shape[0] or (t.ndim == 2 and t.shape != x.shape):
            raise ValueError(
                f"labels of shape {tuple(t.shape)} do not fit scores of shape {tuple(x.shape)}: "
                f"give ({x.shape[0]},) integer labels or ({x.shape[0]}, {x.shape[-1]}) one-hot"
            )
        if t.shape != x.shape:
            t = one_hot(t, x.shape[-1], x.dtype)
        self.t = xp.astype(t, x.dtype)
        self.y = softmax(x)
        self.loss = softmax_cross_entropy(x, self.t)
        return self.loss

    def backward(self, dout: Any = 1) -> Any:
        n = self.y.shape[0]
        return (self.y - self.t) * (dout / n)


def backward(layers: Sequence[Layer], loss_layer: SoftmaxWithLoss, dout: Any = 1) -> Any:
    """Backpropagate from the loss through ``layers`` (after a forward pass).

    The one backprop implementation of xpnn: every model's ``backward`` and
    ``gradient`` call it. Gradients land in each layer's ``grads``.

    Returns:
        The gradient of the loss with respect to the network's input.
    """
    dout = loss_layer.backward(dout)
    for layer in reversed(layers):
        dout = layer.backward(dout)
    return dout

"""Dense layers (vol. 2, ch. 1; vol. 1, ch. 5 and 7): ``MatMul``, ``Affine``, ``Flatten``."""

from __future__ import annotations

import math
from typing import Any

from xpnn.backend import get_namespace, ops
from xpnn.layers.base import (
    Layer,
    _check_input,
    _config_sizes,
    _into,
    _zeros_like_all,
    register_layer,
)

__all__ = ["Affine", "Flatten", "MatMul"]


@register_layer
class MatMul(Layer):
    """out = x @ W; ``x`` ``(N, D)`` floating point, ``W`` ``(D, H)``.

    Integer (or boolean) ``x`` is converted to W's dtype first, as NumPy's
    ``np.dot`` promotes it in the book (vol. 2 ``ch03/cbow_predict.py`` feeds
    ``np.array([[1, 0, 0, 0, 0, 0, 0]])``): exact for one-hot rows and any
    value below 2**24 (float32) or 2**53 (float64). Floats of another dtype
    than W's are refused (:class:`TypeError`), as everywhere.

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
        if type(self) is MatMul and (k.isdtype(x.dtype, "integral") or k.isdtype(x.dtype, "bool")):
            x = k.xp.astype(x, W.dtype)  # the book's one-hot int rows, as np.dot promotes them
        _check_input(k, x, "MatMul", W)
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

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(H,)`` for rows ``(D,)``: MatMul takes rows only (see :class:`Layer`)."""
        d, h = _config_sizes(cls, config, "input_size", "output_size")
        if tuple(input_shape) != (d,):
            raise ValueError(
                f"{cls.__name__} of input_size {d} takes rows of {d} features (samples of shape "
                f"({d},)), got samples of shape {tuple(input_shape)}"
            )
        return (h,)


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
        _check_input(k, x, "Affine", W)
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

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(H,)`` for samples of ``D`` features, flattened (see :class:`Layer`)."""
        d, h = _config_sizes(cls, config, "input_size", "output_size")
        features = math.prod(input_shape)
        if features != d:
            raise ValueError(
                f"{cls.__name__} of input_size {d} takes samples of {d} features (flattened), "
                f"got samples of shape {tuple(input_shape)} ({features} features)"
            )
        return (h,)


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

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(d1 * d2 * ...,)`` for samples ``(d1, d2, ...)`` (see :class:`Layer`)."""
        cls.param_shapes(config)
        return (math.prod(input_shape),)

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        if not input_grad:
            return None
        if dout.ndim == len(self.x_shape):
            return dout
        return get_namespace(dout).reshape(dout, self.x_shape)

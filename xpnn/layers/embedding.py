"""Vol. 2, ch. 4's word2vec layers: ``Embedding``, ``EmbeddingDot``, ``SigmoidWithLoss``.

As the book's ``common/layers.py`` (``Embedding``, ``SigmoidWithLoss``) and
``ch04/negative_sampling_layer.py`` (``EmbeddingDot``): the same names,
arguments, attributes (``params``, ``grads``, ``idx``, ``cache``, ``y``, ``t``,
``loss``) and numbers. The scatter-add of Embedding's backward (the book's
``np.add.at``) is :func:`xpnn.backend.scatter.index_add_rows`, each library's
fast way of it.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import _dtype_name, adopt_host_input, get_namespace, ops
from xpnn.backend.scatter import index_add_rows
from xpnn.functions import check_labels, cross_entropy_error
from xpnn.layers.base import (
    Layer,
    _check_input,
    _config_sizes,
    _zeros_like_all,
    register_layer,
)

__all__ = ["Embedding", "EmbeddingDot", "SigmoidWithLoss"]

_CONFIG_KEYS = ("vocab_size", "hidden_size")


def _embedding_config(layer: Layer) -> dict[str, Any]:
    """``{"vocab_size": V, "hidden_size": D}`` of a layer whose ``params[0]`` is W ``(V, D)``."""
    shape = tuple(layer.params[0].shape)
    if len(shape) != 2:
        raise ValueError(f"{type(layer).__name__}'s W must be 2-D (V, D), got shape {shape}")
    return {"vocab_size": int(shape[0]), "hidden_size": int(shape[1])}


def _check_idx(k: Any, idx: Any, vocab_size: int, who: str) -> None:
    """Word ids: an integer dtype, values in ``0..V-1`` where reading them is free.

    The values are read on the host only (NumPy, PyTorch CPU, array-api-strict's
    CPU device; see :func:`xpnn.functions.check_labels`), never on a device.
    """
    if not k.isdtype(idx.dtype, "integral"):
        raise TypeError(
            f"{who} takes integer word ids, got dtype {_dtype_name(idx.dtype)}; convert "
            'them, e.g. with xpnn.asarray(idx, dtype="int64")'
        )
    check_labels(idx, vocab_size, f"{who} ids")


@register_layer
class Embedding(Layer):
    """Rows of ``W`` by word id: ``forward(idx)`` is the book's ``W[idx]``.

    ``W`` ``(V, D)`` floating point; ``idx`` integer word ids of any shape
    ``S`` (``(N,)``, or ``(N, T)`` as the time layers pass them), on W's
    backend and device (NumPy ids with PyTorch CPU weights are wrapped, not
    copied). The output is ``S + (D,)`` in W's dtype. ``backward(dout)``
    writes ``dW``: zeros, then every row of ``dout`` added at its id, repeated
    ids accumulated (the book's ``np.add.at``); it returns None (ids have no
    gradient).

    Ids out of ``0..V-1`` are refused (ValueError) where reading them is free;
    on a device they are not read.

    **Shared weights.** Layers that look up one ``W`` (CBOW's context
    words, the EmbeddingDot layers of negative sampling) can share one
    gradient: ``Embedding(W, grad=dW)`` makes ``grads`` ``[dW]`` and its
    ``backward`` only adds its rows into it; whoever made ``dW`` zeroes it
    once before their backward passes (:meth:`zero_shared_grad`). That is the
    book's ``remove_duplicate`` sum, without a ``(V, D)`` gradient per layer
    to clear and add up.

    Config: ``{"vocab_size": V, "hidden_size": D}``.
    """

    param_names = ("W",)

    def __init__(self, W: Any, *, grad: Any = None):
        super().__init__()
        self.params = [W]
        if grad is not None and (
            tuple(getattr(grad, "shape", ())) != tuple(W.shape)
            or getattr(grad, "dtype", None) != W.dtype
        ):
            raise ValueError(
                f"Embedding: grad must be an array of W's shape {tuple(W.shape)} and dtype "
                f"{_dtype_name(W.dtype)}, got {getattr(grad, 'shape', type(grad).__name__)}"
            )
        self._owns_grad = grad is None
        self.grads = _zeros_like_all(self.params) if grad is None else [grad]
        self.idx: Any = None

    def forward(self, idx: Any) -> Any:
        """``W[idx]``: integer ``idx`` of shape ``S`` -> ``S + (D,)`` in W's dtype.

        Raises:
            TypeError: ``idx`` is not integer.
            ValueError: An id is outside ``0..V-1`` (where read).
            xpnn.BackendMismatchError: ``idx`` is on another backend or device.
        """
        (W,) = self.params
        xp = get_namespace(W, idx)
        _check_idx(ops(W, idx), idx, W.shape[0], "Embedding")
        flat = xp.reshape(idx, (-1,))  # the standard's take is for 1-D indices
        out = xp.reshape(xp.take(W, flat, axis=0), (*tuple(idx.shape), W.shape[1]))
        self.idx = idx
        return out

    def backward(self, dout: Any, *, input_grad: bool = True) -> None:
        """``dW`` = 0, then ``dW[idx[i]] += dout[i]``; returns None.

        A layer made with ``grad=`` skips the ``dW = 0``: its rows add to the
        shared gradient.

        Raises:
            TypeError: ``dout`` is not of W's dtype (nothing is written).
        """
        (dW,) = self.grads
        if dout.dtype != dW.dtype:
            raise TypeError(
                f"Embedding.backward: dout of dtype {_dtype_name(dout.dtype)} does not fit W "
                f"of dtype {_dtype_name(dW.dtype)}; pass the gradient in W's dtype"
            )
        if self._owns_grad:
            dW[...] = 0
        index_add_rows(dW, self.idx, dout)
        return None

    @staticmethod
    def zero_shared_grad(grad: Any) -> None:
        """Clear a gradient that layers made with ``grad=`` add into (once per backward)."""
        grad[...] = 0

    @property
    def dW(self) -> Any:
        """The gradient of W (``grads[0]``), after :meth:`backward`."""
        return self.grads[0]

    def config(self) -> dict[str, Any]:
        return _embedding_config(self)

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        v, d = _config_sizes(cls, config, *_CONFIG_KEYS)
        return {"W": (v, d)}

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``S + (D,)`` for id samples of shape ``S`` (``()`` or ``(T,)``)."""
        _, d = _config_sizes(cls, config, *_CONFIG_KEYS)
        return (*tuple(input_shape), d)


@register_layer
class EmbeddingDot(Layer):
    """The dot product of ``h`` with the rows of ``W`` at ``idx`` (negative sampling).

    ``forward(h, idx)``: ``h`` ``(N, D)`` in W's float dtype, integer
    ``idx`` ``(N,)`` -> ``sum(W[idx] * h, axis=1)`` ``(N,)``. ``backward(dout)``
    with ``dout`` ``(N,)`` writes ``dW`` through its :class:`Embedding`
    (``embed``, which shares ``params`` and ``grads``) and returns ``dh``
    ``(N, D)``. ``cache`` holds ``(h, target_W)`` as the book's.

    It takes two inputs, so it is no link of a layer chain (no sample shape
    is declared) and no loss (``is_loss`` False).

    ``EmbeddingDot(W, grad=dW)`` shares ``dW`` as :class:`Embedding` does.

    Config: ``{"vocab_size": V, "hidden_size": D}``.
    """

    param_names = ("W",)
    is_loss = False  # forward(h, idx) takes two inputs, but no target

    def __init__(self, W: Any, *, grad: Any = None):
        super().__init__()
        self.embed = Embedding(W, grad=grad)
        self.params = self.embed.params
        self.grads = self.embed.grads
        self.cache: Any = None

    def forward(self, h: Any, idx: Any) -> Any:
        """``sum(W[idx] * h, axis=1)``: ``(N, D)`` and ``(N,)`` -> ``(N,)`` in W's dtype.

        Raises:
            TypeError: ``h`` is not of W's float dtype, or ``idx`` is not integer.
            ValueError: The shapes do not fit, or an id is out of range (where read).
        """
        (W,) = self.params
        idx = adopt_host_input(idx, W)  # NumPy ids, PyTorch CPU W: wrapped (h is, by Layer)
        k = ops(W, h, idx)
        _check_input(k, h, "EmbeddingDot", W)
        _check_idx(k, idx, W.shape[0], "EmbeddingDot")
        if h.ndim != 2 or idx.ndim != 1 or tuple(h.shape) != (idx.shape[0], W.shape[1]):
            raise ValueError(
                f"EmbeddingDot takes h (N, {W.shape[1]}) and idx (N,), got h of shape "
                f"{tuple(h.shape)} and idx of shape {tuple(idx.shape)}"
            )
        target_W = self.embed.forward(idx)
        out = k.xp.sum(target_W * h, axis=1)

        self.cache = (h, target_W)
        return out

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        """``dW`` through ``embed`` (rows ``dout * h``); returns ``dh = dout * W[idx]``."""
        h, target_W = self.cache
        xp = get_namespace(dout, h)
        dout = xp.reshape(dout, (dout.shape[0], 1))

        dtarget_W = dout * h
        self.embed.backward(dtarget_W)
        if not input_grad:
            return None
        dh = dout * target_W
        return dh

    def config(self) -> dict[str, Any]:
        return _embedding_config(self)

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        v, d = _config_sizes(cls, config, *_CONFIG_KEYS)
        return {"W": (v, d)}


@register_layer
class SigmoidWithLoss(Layer):
    """Sigmoid and binary cross-entropy in one layer, composed as the book's.

    ``forward(x, t)``: scores ``x`` ``(N,)`` floating point, labels ``t``
    ``(N,)`` integer 0 or 1 -> the mean loss, a 0-d array (kept in ``loss``):
    ``y = 1 / (1 + exp(-x))``, then the book's ``cross_entropy_error`` of the
    two columns ``[1 - y, y]``, that is ``-mean(log(y[t] + 1e-7))`` (so the
    loss of a sample is at most ``-log(1e-7)``, about 16.1).
    ``backward(dout=1)``: ``(y - t) * dout / N`` in x's dtype: the gradient
    of the loss without the ``1e-7``, as the book's.

    Labels outside 0..1 are refused where reading them is free (NumPy,
    PyTorch CPU), and give a NaN loss on a device. ``dout`` is a Python
    number or a 0-d array on x's device (never read on the host). No
    parameters; config ``{}``.
    """

    is_loss = True

    def __init__(self) -> None:
        super().__init__()
        self.loss: Any = None
        self.y: Any = None  # the sigmoid's output
        self.t: Any = None  # the labels

    def forward(self, x: Any, t: Any) -> Any:
        """The mean loss of scores ``x`` ``(N,)`` (N > 0) against labels ``t`` ``(N,)``.

        Raises:
            TypeError: ``x`` is not floating point, or ``t`` is not integer.
            ValueError: The shapes do not fit, N is 0, or a label is not 0 or 1
                (where read).
            xpnn.BackendMismatchError: ``x`` and ``t`` are on different devices.
        """
        xp = get_namespace(x, t)
        k = ops(x, t)
        if not k.isdtype(x.dtype, "real floating"):
            raise TypeError(
                f"SigmoidWithLoss needs floating-point scores, got {_dtype_name(x.dtype)}; "
                'convert them, e.g. with xpnn.asarray(x, dtype="float32")'
            )
        if x.ndim != 1 or x.shape[0] == 0 or tuple(t.shape) != tuple(x.shape):
            raise ValueError(
                f"SigmoidWithLoss takes scores (N,) with N > 0 and labels (N,) of 0 and 1, got "
                f"x of shape {tuple(x.shape)} and t of shape {tuple(t.shape)}"
            )
        check_labels(t, 2, "SigmoidWithLoss labels")
        self.t = t
        self.y = k.sigmoid(x)  # 1 / (1 + exp(-x))

        self.loss = cross_entropy_error(xp.stack([1 - self.y, self.y], axis=1), self.t)
        return self.loss

    def backward(self, dout: Any = 1, *, input_grad: bool = True) -> Any:
        """``(y - t) * dout / N``, in x's dtype.

        Raises:
            ValueError: ``dout`` is an array that is not 0-d.
            xpnn.BackendMismatchError: ``dout`` is on another backend or device.
        """
        batch_size = self.t.shape[0]
        y = self.y
        k = ops(y, self.t)
        scale = k.dout_scale(dout, batch_size, y.dtype, like=y)

        dx = k.scaled_difference(y, k.xp.astype(self.t, y.dtype), scale)
        return dx

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``()`` (a loss) for one score per sample (samples of shape ``()``)."""
        cls.param_shapes(config)
        if tuple(input_shape) != ():
            raise ValueError(
                f"{cls.__name__} takes scores (N,), one per sample (samples of shape ()), got "
                f"samples of shape {tuple(input_shape)}"
            )
        return ()

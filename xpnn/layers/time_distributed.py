"""Vol. 2 ch. 5-6's time-distributed layers: ``TimeEmbedding``, ``TimeAffine``,
``TimeSoftmaxWithLoss``, ``TimeDropout``, ``TimeSigmoidWithLoss``.

As the book's ``common/time_layers.py``: the same names, constructor
arguments, attributes (``params``, ``grads``, ``layers``, ``x``, ``cache``,
``ignore_label``, ``mask``, ``train_flg``) and math. Where the book writes
``out[:, t, :]`` into an ``np.empty``, the steps are stacked with
``xp.stack(..., axis=1)`` (as :mod:`xpnn.layers.recurrent` does); where it
indexes ``ys[np.arange(N * T), ts]``, the pick is ``ops(...).pick``.

``TimeDropout`` is a :class:`xpnn.layers.Dropout` (so models, checkpoints and
mixed precision see its ``seed`` and ``draws``): its masks are drawn on the
device from ``(seed, draws)`` as Dropout's, the same on every backend, and
scaled by ``1 / (1 - dropout_ratio)`` as the book's (inverted dropout).
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import _dtype_name, get_namespace, ops
from xpnn.backend.recurrent_ops import (
    label_difference_mean,
    mask_rows,
    matmul_add,
    row_sum,
    softmax_rows,
    steps_index_add_rows,
    steps_take_rows,
)
from xpnn.functions import check_labels
from xpnn.layers.base import (
    Layer,
    _check_input,
    _config_sizes,
    _into,
    _real_in,
    _zeros_like_all,
    register_layer,
)
from xpnn.layers.embedding import Embedding, SigmoidWithLoss, _check_idx, _embedding_config
from xpnn.layers.regularization import Dropout

__all__ = [
    "TimeAffine",
    "TimeDropout",
    "TimeEmbedding",
    "TimeSigmoidWithLoss",
    "TimeSoftmaxWithLoss",
]


def _check_dout_dtype(dout: Any, dtype: Any, who: str) -> None:
    if dout.dtype != dtype:
        raise TypeError(
            f"{who}.backward: dout of dtype {_dtype_name(dout.dtype)} does not fit the weights "
            f"of dtype {_dtype_name(dtype)}; pass the gradient in the weights' dtype"
        )


def _check_scores(k: Any, xs: Any, ndim: int, who: str) -> None:
    """Float scores of ``ndim`` dimensions, none of them empty."""
    if not k.isdtype(xs.dtype, "real floating"):
        raise TypeError(
            f"{who} needs floating-point scores, got {_dtype_name(xs.dtype)}; convert them, "
            'e.g. with xpnn.asarray(xs, dtype="float32")'
        )
    if xs.ndim != ndim or 0 in tuple(xs.shape):
        want = "(N, T, V)" if ndim == 3 else "(N, T)"
        raise ValueError(
            f"{who} takes scores {want} with no empty axis (the loss is a mean), got shape "
            f"{tuple(xs.shape)}"
        )


# ---------------------------------------------------------------- TimeEmbedding


@register_layer
class TimeEmbedding(Layer):
    """``T`` :class:`Embedding` lookups: ids ``xs`` ``(N, T)`` -> ``(N, T, D)``.

    One ``Embedding(W)`` per time step, as the book's, kept in ``layers``
    (each with its step's ids ``idx``). They share one gradient
    (``Embedding(W, grad=dW)``), so ``backward(dout)`` zeroes ``dW`` once and
    each step adds its rows: the book's sum of the steps' gradients, without
    a ``(V, D)`` array per step. It returns None (ids have no gradient). The
    steps' lookups are one ``take`` and their row additions one scatter-add,
    in the steps' order (:func:`~xpnn.backend.recurrent_ops.steps_take_rows`,
    :func:`~xpnn.backend.recurrent_ops.steps_index_add_rows`).

    Ids: integer, in ``0..V-1`` (refused otherwise where reading is free).
    Config: ``{"vocab_size": V, "hidden_size": D}``.
    """

    param_names = ("W",)

    def __init__(self, W: Any):
        super().__init__()
        self.params = [W]
        self.grads = _zeros_like_all(self.params)
        self.layers: Any = None
        self.xs: Any = None
        self.W = W

    def forward(self, xs: Any) -> Any:
        W = self.W
        get_namespace(W, xs)  # one backend and device, or BackendMismatchError
        k = ops(W, xs)
        _check_idx(k, xs, W.shape[0], "TimeEmbedding")
        if xs.ndim != 2 or xs.shape[1] == 0:
            raise ValueError(
                f"TimeEmbedding takes ids (N, T) with T > 0, got shape {tuple(xs.shape)}"
            )
        T = xs.shape[1]

        layers = []

        for t in range(T):
            layer = Embedding(W, grad=self.grads[0])
            layer.idx = xs[:, t]  # the step's ids (its forward: W[idx], done below)
            layers.append(layer)

        self.layers = layers
        self.xs = xs
        return steps_take_rows(W, xs)  # out[:, t, :] = W[xs[:, t]] for every t, one take

    def backward(self, dout: Any, *, input_grad: bool = True) -> None:
        _check_dout_dtype(dout, self.W.dtype, "TimeEmbedding")
        if tuple(dout.shape) != (*tuple(self.xs.shape), self.W.shape[1]):
            raise ValueError(
                f"TimeEmbedding.backward: dout of shape {tuple(dout.shape)} does not fit ids "
                f"{tuple(self.xs.shape)} and W {tuple(self.W.shape)}"
            )

        Embedding.zero_shared_grad(self.grads[0])  # grad = 0
        # grad += each step's rows at its ids (the T layers' backward), one scatter-add
        steps_index_add_rows(self.grads[0], self.xs, dout)

        return None

    def config(self) -> dict[str, Any]:
        return _embedding_config(self)

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        v, d = _config_sizes(cls, config, "vocab_size", "hidden_size")
        return {"W": (v, d)}

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(T, D)`` for id sequences ``(T,)``."""
        _, d = _config_sizes(cls, config, "vocab_size", "hidden_size")
        if len(input_shape) != 1:
            raise ValueError(
                f"{cls.__name__} takes id sequences (T,), got samples of shape {tuple(input_shape)}"
            )
        return (input_shape[0], d)


# ---------------------------------------------------------------- TimeAffine


@register_layer
class TimeAffine(Layer):
    """``x @ W + b`` at every time step: ``x`` ``(N, T, D)`` -> ``(N, T, M)``.

    As the book's, one matrix product over the ``N * T`` rows (``x``
    reshaped to ``(N * T, D)``). ``backward(dout)`` writes ``dW`` and ``db``
    and returns ``dx`` of x's shape.

    Config: ``{"input_size": D, "output_size": M}``.
    """

    param_names = ("W", "b")

    def __init__(self, W: Any, b: Any):
        super().__init__()
        self.params = [W, b]
        self.grads = _zeros_like_all(self.params)
        self.x: Any = None

    def forward(self, x: Any) -> Any:
        W, b = self.params
        k = ops(x, W)
        xp = k.xp
        _check_input(k, x, "TimeAffine", W)
        if x.ndim != 3 or x.shape[2] != W.shape[0]:
            raise ValueError(
                f"TimeAffine takes x (N, T, {W.shape[0]}) (W is {tuple(W.shape)}), got shape "
                f"{tuple(x.shape)}"
            )
        N, T, D = x.shape

        rx = xp.reshape(x, (N * T, D))
        out = matmul_add(rx, W, b)  # rx @ W + b, b added in place
        self.x = x
        return xp.reshape(out, (N, T, W.shape[1]))

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        x = self.x
        N, T, D = x.shape
        W, _ = self.params
        _check_dout_dtype(dout, W.dtype, "TimeAffine")
        k = ops(dout, W)
        xp = k.xp

        dout = xp.reshape(dout, (N * T, W.shape[1]))
        rx = xp.reshape(x, (N * T, D))

        db = row_sum(dout, out=self.grads[1])  # dout.sum(axis=0)
        dW = k.matmul(rx.T, dout, out=self.grads[0])

        _into(self.grads[0], dW)
        _into(self.grads[1], db)

        if not input_grad:
            return None
        dx = dout @ W.T
        return xp.reshape(dx, (N, T, D))

    def config(self) -> dict[str, Any]:
        shape = tuple(self.params[0].shape)
        return {"input_size": int(shape[0]), "output_size": int(shape[1])}

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        d, m = _config_sizes(cls, config, "input_size", "output_size")
        return {"W": (d, m), "b": (m,)}

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(T, M)`` for sequences ``(T, D)``."""
        d, m = _config_sizes(cls, config, "input_size", "output_size")
        if len(input_shape) != 2 or input_shape[1] != d:
            raise ValueError(
                f"{cls.__name__} of input_size {d} takes sequences (T, {d}), got samples of "
                f"shape {tuple(input_shape)}"
            )
        return (input_shape[0], m)


# ---------------------------------------------------------------- TimeSoftmaxWithLoss


@register_layer
class TimeSoftmaxWithLoss(Layer):
    """Softmax and cross-entropy at every time step, averaged over the counted steps.

    ``forward(xs, ts)``: scores ``xs`` ``(N, T, V)``, labels ``ts`` integer
    ``(N, T)`` or one-hot ``(N, T, V)`` (taken by ``argmax``, as the book's).
    Positions whose label is ``ignore_label`` (-1) count for nothing: with
    ``ys = softmax(xs)`` over ``N * T`` rows and ``mask = ts != ignore_label``,
    ``loss = -sum(log(ys[i, ts[i]]) * mask) / sum(mask)``, exactly the book's
    (no ``1e-7``: a probability that underflows to 0 gives an inf loss).
    ``backward(dout=1)``: ``(ys - onehot(ts)) * dout / sum(mask) * mask``,
    reshaped to ``(N, T, V)``; the book's, without overwriting ``ys``.

    Labels outside ``0..V-1`` other than ``ignore_label`` are refused where
    reading them is free; so is a batch whose every label is ignored (the
    book divides 0 by 0). On a device neither is read: the loss is NaN then.
    Half scores are computed on in float32. No parameters; config ``{}``.
    """

    is_loss = True

    def __init__(self) -> None:
        super().__init__()
        self.params, self.grads = [], []
        self.cache: Any = None
        self.ignore_label = -1

    def forward(self, xs: Any, ts: Any) -> Any:
        xp = get_namespace(xs, ts)
        k = ops(xs, ts)
        _check_scores(k, xs, 3, "TimeSoftmaxWithLoss")
        N, T, V = xs.shape

        if ts.ndim == 3 and tuple(ts.shape) == (N, T, V):  # one-hot labels
            ts = xp.argmax(ts, axis=2)
        if tuple(ts.shape) != (N, T):
            raise ValueError(
                f"TimeSoftmaxWithLoss: labels of shape {tuple(ts.shape)} do not fit scores of "
                f"shape {(N, T, V)}: give ({N}, {T}) integer labels or ({N}, {T}, {V}) one-hot"
            )
        if not k.isdtype(ts.dtype, "integral"):
            raise TypeError(
                f"TimeSoftmaxWithLoss labels must be integers, got {_dtype_name(ts.dtype)}"
            )
        ignore_label = self.ignore_label
        scores_dtype = xs.dtype  # backward's dx gets it (half scores: computed in float32)

        mask = ts != ignore_label

        # Batch and time steps in one (reshape).
        xs = xp.reshape(k.widen(xs), (N * T, V))
        ts = xp.reshape(xp.where(mask, ts, xp.zeros_like(ts)), (N * T,))  # ignored: class 0
        mask = xp.reshape(mask, (N * T,))
        check_labels(ts, V, f"TimeSoftmaxWithLoss labels (other than {ignore_label})")
        _check_counted(mask, "TimeSoftmaxWithLoss")

        # softmax(xs), computed in place in a buffer kept from step to step (NumPy, CuPy)
        y = k.buffer(self._buffers, "ys", (N * T, V), xs.dtype, xs)
        ys = softmax_rows(xs, out=y)
        ls = xp.log(k.pick(ys, ts, checked=True))
        ls = xp.where(mask, ls, xp.zeros_like(ls))  # the book's ls *= mask: 0 where ignored
        loss = -xp.sum(ls)
        loss = loss / xp.astype(xp.sum(xp.astype(mask, ts.dtype)), ys.dtype)

        self.cache = (ts, ys, mask, (N, T, V), scores_dtype)
        return loss

    def backward(self, dout: Any = 1, *, input_grad: bool = True) -> Any:
        ts, ys, mask, (N, T, V), scores_dtype = self.cache
        k = ops(ys, ts)
        xp = k.xp
        fmask = xp.astype(mask, ys.dtype)

        dx = k.buffer(self._buffers, "dx", (N * T, V), ys.dtype, ys)  # ys is kept, as said
        scale = k.dout_scale(dout, 1, ys.dtype, like=ys)
        dx = label_difference_mean(ys, ts, scale, xp.sum(fmask), out=dx)  # * dout / sum(mask)
        dx = mask_rows(dx, mask)  # 0 where ignored

        dx = xp.reshape(dx, (N, T, V))
        return dx if dx.dtype == scores_dtype else xp.astype(dx, scores_dtype)

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``()`` (a loss) for score sequences ``(T, V)``."""
        cls.param_shapes(config)
        if len(input_shape) != 2:
            raise ValueError(
                f"{cls.__name__} takes scores (N, T, V), samples of shape (T, V), got samples "
                f"of shape {tuple(input_shape)}"
            )
        return ()


def _check_counted(mask: Any, who: str) -> None:
    """Refuse a batch with no counted position, where reading the labels is free."""
    xp = get_namespace(mask)
    none = xp.reshape(xp.astype(xp.logical_not(xp.any(mask)), xp.int64), (1,))
    try:
        check_labels(none, 1, who)  # 1 (nothing counted) is refused where it is read
    except ValueError:
        raise ValueError(
            f"{who}: every label is ignore_label, so the loss (a mean over the counted "
            "positions) is undefined"
        ) from None


# ---------------------------------------------------------------- TimeDropout


@register_layer
class TimeDropout(Dropout):
    """The book's ``TimeDropout``: inverted dropout over ``xs`` of any shape.

    Training (``train_flg`` True): ``flg = u > dropout_ratio`` with ``u``
    drawn as :class:`Dropout` draws it (``(seed, draws)``, on the device,
    the same on every backend), ``mask = flg * (1 / (1 - dropout_ratio))``
    in xs's dtype and the output ``xs * mask``. Test mode: ``xs`` itself.
    ``backward``: ``dout * mask`` (training), ``dout`` (test).

    ``forward(xs)`` reads the attribute ``train_flg`` as the book's (a model
    sets it); ``forward(xs, train_flg)`` overrides it for that call, as
    xpnn's models pass it.

    Config: ``{"dropout_ratio": r, "seed": s}``.
    """

    def __init__(self, dropout_ratio: float = 0.5, *, seed: int | None = None):
        super().__init__(dropout_ratio, seed=seed)
        self.params, self.grads = [], []
        self.mask: Any = None
        self.train_flg = True

    def forward(self, xs: Any, train_flg: Any = None) -> Any:
        k = ops(xs)
        if not k.isdtype(xs.dtype, "real floating"):
            raise TypeError(
                f"TimeDropout needs floating-point inputs, got {_dtype_name(xs.dtype)}; "
                'convert them, e.g. with xpnn.asarray(xs, dtype="float32")'
            )
        ratio = _real_in(self.dropout_ratio, "dropout_ratio", 0.0, 1.0)
        train = bool(self.train_flg if train_flg is None else train_flg)
        self._train = train

        if train:
            held = (
                self.hold_mask
                and self.mask is not None
                and tuple(self.mask.shape) == tuple(xs.shape)
                and self.mask.dtype == xs.dtype
            )
            if not held:
                flg = self._draw(k, xs, ratio)  # 0 or 1 in xs's dtype
                self.draws += 1
                scale = 1 / (1.0 - ratio)
                self.mask = flg * scale

            return xs * self.mask
        else:
            return xs

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        if not input_grad:
            return None
        if not self._train:
            return dout
        return dout * self.mask

    def __repr__(self) -> str:
        return f"TimeDropout(dropout_ratio={self.dropout_ratio}, seed={self.seed})"


# ---------------------------------------------------------------- TimeSigmoidWithLoss


@register_layer
class TimeSigmoidWithLoss(Layer):
    """``T`` :class:`SigmoidWithLoss` layers over scores ``xs`` ``(N, T)``.

    ``forward(xs, ts)`` with labels ``ts`` ``(N, T)`` of 0 and 1: the mean of
    the steps' losses (each the book's with its ``1e-7``), ``sum / T``.
    ``backward(dout=1)``: each step's ``(y - t) * (dout / T) / N``, stacked
    to ``(N, T)``. No parameters; config ``{}``.
    """

    is_loss = True

    def __init__(self) -> None:
        super().__init__()
        self.params, self.grads = [], []
        self.xs_shape: Any = None
        self.layers: Any = None

    def forward(self, xs: Any, ts: Any) -> Any:
        k = ops(xs, ts)
        _check_scores(k, xs, 2, "TimeSigmoidWithLoss")
        if tuple(ts.shape) != tuple(xs.shape):
            raise ValueError(
                f"TimeSigmoidWithLoss takes labels of the scores' shape {tuple(xs.shape)}, got "
                f"{tuple(ts.shape)}"
            )
        check_labels(ts, 2, "TimeSigmoidWithLoss labels")
        T = xs.shape[1]

        layers = []
        loss = 0

        for t in range(T):
            layer = SigmoidWithLoss()
            loss += layer.forward(xs[:, t], ts[:, t])
            layers.append(layer)

        self.xs_shape = xs.shape
        self.layers = layers
        return loss / T

    def backward(self, dout: Any = 1, *, input_grad: bool = True) -> Any:
        T = self.xs_shape[1]
        xp = get_namespace(self.layers[0].y)

        dout = dout * (1 / T)
        dxs = [layer.backward(dout) for layer in self.layers]

        return xp.stack(dxs, axis=1)

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``()`` (a loss) for score sequences ``(T,)``."""
        cls.param_shapes(config)
        if len(input_shape) != 1:
            raise ValueError(
                f"{cls.__name__} takes scores (N, T), samples of shape (T,), got samples of "
                f"shape {tuple(input_shape)}"
            )
        return ()

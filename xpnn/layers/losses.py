"""Loss layers (vol. 1, ch. 5; vol. 2, ch. 1): ``SoftmaxWithLoss`` and ``one_hot``."""

from __future__ import annotations

from typing import Any

from xpnn.backend import _dtype_name, device_of, get_namespace, ops
from xpnn.functions import check_labels
from xpnn.layers.base import (
    Layer,
    register_layer,
)

__all__ = ["SoftmaxWithLoss", "label_column", "one_hot"]


def one_hot(t: Any, num_classes: int, dtype: Any) -> Any:
    """Integer labels ``(N,)`` -> one-hot ``(N, num_classes)`` in ``dtype``."""
    xp = get_namespace(t)
    classes = xp.arange(num_classes, dtype=t.dtype, device=device_of(t))
    return xp.astype(xp.reshape(t, (-1, 1)) == classes, dtype)


def label_column(k: Any, t: Any, classes: int) -> Any:
    """Integer labels given as a column ``(N, 1)`` as the ``(N,)`` labels they are.

    The book's NumPy indexing ``y[np.arange(N), t]`` takes them so; a float
    ``(N, 1)`` stays what it is (one-hot targets of one class), and with one
    class an integer column is refused later as labels of another shape.
    """
    if t.ndim == 2 and t.shape[1] == 1 and classes != 1 and k.isdtype(t.dtype, "integral"):
        return get_namespace(t).reshape(t, (t.shape[0],))
    return t


@register_layer
class SoftmaxWithLoss(Layer):
    """Softmax and cross-entropy in one layer (fused, numerically stable).

    ``forward(x, t)`` takes scores ``(N, C)`` and one-hot ``(N, C)`` or
    integer ``(N,)`` labels and returns the mean loss as a 0-d array (also
    kept in ``loss``, as the book does, so a training loop can record it
    without a second forward pass); ``backward(dout=1)`` returns
    ``(softmax(x) - t) * dout / N``.

    One pass gives both: with ``s = x - max(x)``, the loss of a row is
    ``log(sum(exp(s))) - s[label]`` (log-sum-exp, finite for any finite
    scores unless the loss itself exceeds the float range) and
    ``softmax(x) = exp(s) / sum(exp(s))``. With one-hot targets a class
    whose target is 0 adds nothing, even where ``s`` overflowed to -inf.

    Integer labels must be in ``0..C-1``: :func:`xpnn.functions.check_labels`
    refuses others where reading them is free (NumPy, PyTorch CPU); on a
    device the loss and the gradient rows of invalid labels are NaN instead.

    Half-precision scores (float16, bfloat16) are computed on in float32, as
    PyTorch's autocast does: the loss is a float32 0-d array, the softmax
    ``y`` is kept in float32, and backward computes ``(y - t) * dout / N`` in
    float32 and rounds it once to the scores' dtype, so the layers below stay
    in half. Without that a float16 exp overflows where scores differ by
    more than about 11.

    ``dout`` may be a Python number or a 0-d array on the scores' device
    (a loss scale that mixed-precision training keeps there): it is used
    on the device, never read on the host.
    """

    is_loss = True

    def __init__(self) -> None:
        super().__init__()
        self.loss: Any = None
        self.y: Any = None
        self.t: Any = None
        self.scores_dtype: Any = None  # x's dtype, which backward's dx gets

    def forward(self, x: Any, t: Any) -> Any:
        """Mean loss of scores ``x`` ``(N, C)`` (float, N > 0) against ``t``.

        ``t`` is integer labels ``(N,)`` (or a column ``(N, 1)`` of them,
        as the book's ch. 7 ``gradient_check.py`` passes) or one-hot (or
        soft) targets ``(N, C)``. Returns a 0-d array in x's dtype, float32
        for half ``x``.

        Raises:
            TypeError: ``x`` is not floating point, or ``(N,)`` labels are
                not integers.
            ValueError: The shapes do not fit, N or C is 0, or a label is out
                of range (where reading labels is free).
        """
        xp = get_namespace(x, t)
        k = ops(x, t)
        if not k.isdtype(x.dtype, "real floating"):
            raise TypeError(
                f"scores must be floating point, got {_dtype_name(x.dtype)}; convert them, "
                'e.g. with xpnn.asarray(x, dtype="float32")'
            )
        if x.ndim != 2 or 0 in tuple(x.shape):
            raise ValueError(
                f"SoftmaxWithLoss needs scores of shape (N, C) with N, C > 0 (the loss is a "
                f"mean over N samples), got shape {tuple(x.shape)}"
            )
        n, c = x.shape
        t = label_column(k, t, c)
        if t.ndim not in (1, 2) or t.shape[0] != n or (t.ndim == 2 and t.shape != x.shape):
            raise ValueError(
                f"labels of shape {tuple(t.shape)} do not fit scores of shape {tuple(x.shape)}: "
                f"give ({n},) integer labels or ({n}, {c}) one-hot"
            )
        # Half scores: softmax and loss in float32 (the buffers too).
        wide = k.wide_dtype(x.dtype)
        y = self._buffer(k, "y", (n, c), wide, x)
        shifted = self._buffer(k, "shifted", (n, c), wide, x)
        self.scores_dtype = x.dtype
        if t.ndim == 1:
            check_labels(t, c, "SoftmaxWithLoss labels")
            # Labels stay labels: backward subtracts 1 at them, no one-hot is built.
            self.y, self.loss = k.softmax_cross_entropy(x, t, y, shifted, checked=True)
            self.t = t
            return self.loss
        # One-hot (or soft) targets: rows of t sum to 1, so the loss of a row
        # is log(sum(exp(s))) - sum(t * s).
        self.y, shifted, total = k.softmax_rows(x, y, shifted)
        self.t = xp.astype(t, self.y.dtype)
        # Where t is 0 the term is 0, even where s is -inf (scores spanning
        # more than the float range): 0 * -inf would make the loss NaN.
        s = xp.where(self.t != 0, shifted, 0.0)
        self.loss = (xp.sum(xp.log(total)) - xp.sum(k.multiply(self.t, s, out=s))) / n
        return self.loss

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``()`` (a loss) for scores ``(C,)`` per sample (see :class:`Layer`)."""
        cls.param_shapes(config)
        if len(input_shape) != 1:
            raise ValueError(
                f"{cls.__name__} takes scores (N, C), samples of shape (C,), got samples of "
                f"shape {tuple(input_shape)}; end the layers with an Affine (or a Flatten)"
            )
        return ()

    def backward(self, dout: Any = 1, *, input_grad: bool = True) -> Any:
        """``(softmax(x) - t) * dout / N``, in the dtype of the scores ``x``.

        ``dout``: a Python number, or a 0-d array on the scores' backend and
        device (used there, never read on the host).

        Raises:
            ValueError: ``dout`` is an array that is not 0-d.
            xpnn.BackendMismatchError: ``dout`` is on another backend or device.
        """
        y = self.y
        n, c = y.shape
        k = ops(y, self.t)
        scale = k.dout_scale(dout, n, y.dtype, like=y)
        dx = self._buffer(k, "dx", (n, c), y.dtype, y)
        if self.t.ndim == 1:
            dx = k.label_difference(y, self.t, scale, out=dx)
        else:
            dx = k.scaled_difference(y, self.t, scale, out=dx)
        if self.scores_dtype is None or not k.is_half(self.scores_dtype):
            return dx
        # Half scores: computed in float32 above, rounded once to their dtype.
        half = self._buffer(k, "dx_half", (n, c), self.scores_dtype, y)
        return k.cast(dx, self.scores_dtype, out=half)

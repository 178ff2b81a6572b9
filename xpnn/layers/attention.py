"""Vol. 2 ch. 8's attention layers: ``WeightSum``, ``AttentionWeight``, ``Attention``,
``TimeAttention``.

As the book's ``ch08/attention_layer.py``: the same names, attributes (``params``
and ``grads``, both empty, ``cache``, ``softmax``, ``attention_weight_layer``,
``weight_sum_layer``, ``attention_weight``, ``layers``, ``attention_weights``) and
math. Shapes: encoder states ``hs`` ``(N, T, H)``, one decoder state ``h``
``(N, H)``, weights ``a`` ``(N, T)`` (a softmax over the T encoder steps), the
context ``c`` ``(N, H)``.

Where the book repeats an array along an axis (``np.repeat``) before an
element-wise product, the product broadcasts over an axis of length 1
instead: the same numbers, without the repeated copy. The softmax over T is
:class:`xpnn.layers.Softmax`, as the book's ``common.layers.Softmax``.
``TimeAttention`` computes the book's loop of one ``Attention`` per decoder
step as batched matrix products over all steps at once
(:mod:`xpnn.backend.attention_ops`: the same sums, in another order, over
ten times faster at the book's date-data shapes); its ``layers`` hold the
steps' weights only.

Inputs are checked before any state changes: one backend, float arrays of one
dtype, the shapes above with matching N and H and T > 0 (TypeError for a
dtype, ValueError naming the shapes otherwise).
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import _dtype_name, get_namespace, ops
from xpnn.backend.attention_ops import attention_all_steps, attention_all_steps_backward
from xpnn.layers.activations import Softmax
from xpnn.layers.base import Layer, register_layer

__all__ = ["Attention", "AttentionWeight", "TimeAttention", "WeightSum"]


# ---------------------------------------------------------------- checks


def _check_float(who: str, **arrays: Any) -> None:
    """Float arrays, all of one dtype (NumPy would promote a mix silently)."""
    first = next(iter(arrays.values()))
    k = ops(*arrays.values())  # one backend and device, or BackendMismatchError
    for name, a in arrays.items():
        if not k.isdtype(a.dtype, "real floating"):
            raise TypeError(
                f"{who} needs floating-point inputs, got {name} of dtype "
                f"{_dtype_name(a.dtype)}; convert it, e.g. with "
                f'xpnn.asarray({name}, dtype="float32")'
            )
        if a.dtype != first.dtype:
            got = ", ".join(f"{n} {_dtype_name(v.dtype)}" for n, v in arrays.items())
            raise TypeError(f"{who} takes inputs of one dtype, got {got}; convert one of them")


def _check_states(who: str, hs: Any, h: Any, h_name: str, h_shape: str) -> None:
    """``hs`` ``(N, T, H)`` with T > 0 and ``h`` of ``h_shape`` with hs's N and H (and
    T, for ``a``), in one float dtype."""
    _check_float(who, hs=hs, **{h_name: h})
    shapes = f"hs of shape {tuple(hs.shape)} and {h_name} of shape {tuple(h.shape)}"
    if hs.ndim != 3 or hs.shape[1] == 0:
        raise ValueError(
            f"{who} takes hs (N, T, H) with T > 0 and {h_name} {h_shape}, got {shapes}"
        )
    N, T, H = hs.shape
    want = (N, T) if h_name == "a" else (N, H)
    if tuple(h.shape) != want:
        raise ValueError(
            f"{who} takes hs (N, T, H) and {h_name} {h_shape} of the same N"
            f"{', T' if h_name == 'a' else ' and H'}: {h_name} must be of shape {want}, "
            f"got {shapes}"
        )


def _check_dout(who: str, dout: Any, dtype: Any) -> None:
    if dout.dtype != dtype:
        raise TypeError(
            f"{who}.backward: dout of dtype {_dtype_name(dout.dtype)} does not fit the forward "
            f"pass's {_dtype_name(dtype)}; pass the gradient in that dtype"
        )


# ---------------------------------------------------------------- WeightSum


@register_layer
class WeightSum(Layer):
    """The context ``c = sum_t a[:, t] * hs[:, t, :]``: ``forward(hs, a)`` -> ``(N, H)``.

    ``hs`` ``(N, T, H)``, ``a`` ``(N, T)``, one float dtype. ``backward(dc)``
    (``dc`` ``(N, H)``) returns ``(dhs, da)``. No parameters; config ``{}``.
    """

    is_loss = False  # forward(hs, a) takes two inputs, but no target

    def __init__(self) -> None:
        super().__init__()
        self.params, self.grads = [], []
        self.cache: Any = None

    def forward(self, hs: Any, a: Any) -> Any:
        _check_states("WeightSum", hs, a, "a", "(N, T)")
        xp = get_namespace(hs, a)
        N, T, _ = hs.shape

        ar = xp.reshape(a, (N, T, 1))  # the book repeats it H times; the product broadcasts
        t = hs * ar
        c = xp.sum(t, axis=1)

        self.cache = (hs, ar)
        return c

    def backward(self, dc: Any, *, input_grad: bool = True) -> Any:
        hs, ar = self.cache
        _check_dout("WeightSum", dc, hs.dtype)
        xp = get_namespace(dc, hs)
        N, _, H = hs.shape

        dt = xp.reshape(dc, (N, 1, H))  # the book repeats it T times; the products broadcast
        dar = dt * hs
        dhs = dt * ar
        da = xp.sum(dar, axis=2)

        return dhs, da


# ---------------------------------------------------------------- AttentionWeight


@register_layer
class AttentionWeight(Layer):
    """The weights ``a = softmax_t(sum_h hs * h)``: ``forward(hs, h)`` -> ``(N, T)``.

    The dot product of the decoder state ``h`` ``(N, H)`` with each encoder
    state of ``hs`` ``(N, T, H)``, and a softmax over the T steps (each row
    of ``a`` sums to 1). ``backward(da)`` (``da`` ``(N, T)``) returns
    ``(dhs, dh)``. No parameters; config ``{}``.
    """

    is_loss = False  # forward(hs, h) takes two inputs, but no target

    def __init__(self) -> None:
        super().__init__()
        self.params, self.grads = [], []
        self.softmax = Softmax()
        self.cache: Any = None

    def forward(self, hs: Any, h: Any) -> Any:
        _check_states("AttentionWeight", hs, h, "h", "(N, H)")
        xp = get_namespace(hs, h)
        N, _, H = hs.shape

        hr = xp.reshape(h, (N, 1, H))  # the book repeats it T times; the product broadcasts
        t = hs * hr
        s = xp.sum(t, axis=2)
        a = self.softmax.forward(s)

        self.cache = (hs, hr)
        return a

    def backward(self, da: Any, *, input_grad: bool = True) -> Any:
        hs, hr = self.cache
        _check_dout("AttentionWeight", da, hs.dtype)
        xp = get_namespace(da, hs)
        N, T, _ = hs.shape

        ds = self.softmax.backward(da)
        dt = xp.reshape(ds, (N, T, 1))  # the book repeats it H times; the products broadcast
        dhs = dt * hr
        dhr = dt * hs
        dh = xp.sum(dhr, axis=1)

        return dhs, dh


# ---------------------------------------------------------------- Attention


@register_layer
class Attention(Layer):
    """:class:`AttentionWeight` then :class:`WeightSum`: ``forward(hs, h)`` -> ``c`` ``(N, H)``.

    ``hs`` ``(N, T, H)``, ``h`` ``(N, H)``; keeps the weights ``a``
    ``(N, T)`` in ``attention_weight``. ``backward(dout)`` (``(N, H)``)
    returns ``(dhs, dh)``, ``dhs`` the sum of both layers'. No parameters;
    config ``{}``.
    """

    is_loss = False  # forward(hs, h) takes two inputs, but no target

    def __init__(self) -> None:
        super().__init__()
        self.params, self.grads = [], []
        self.attention_weight_layer = AttentionWeight()
        self.weight_sum_layer = WeightSum()
        self.attention_weight: Any = None

    def forward(self, hs: Any, h: Any) -> Any:
        # Checked here too, so a refused input leaves both layers as they were.
        _check_states("Attention", hs, h, "h", "(N, H)")
        a = self.attention_weight_layer.forward(hs, h)
        out = self.weight_sum_layer.forward(hs, a)
        self.attention_weight = a
        return out

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        _check_dout("Attention", dout, self.attention_weight.dtype)
        dhs0, da = self.weight_sum_layer.backward(dout)
        dhs1, dh = self.attention_weight_layer.backward(da)
        dhs = dhs0 + dhs1
        return dhs, dh


# ---------------------------------------------------------------- TimeAttention


@register_layer
class TimeAttention(Layer):
    """An :class:`Attention` per decoder step: ``forward(hs_enc, hs_dec)`` -> ``(N, T_dec, H)``.

    ``hs_enc`` ``(N, T_enc, H)``, ``hs_dec`` ``(N, T_dec, H)``, one float
    dtype. Step ``t`` attends over ``hs_enc`` with ``hs_dec[:, t, :]``: the
    book's loop of T_dec :class:`Attention` layers, computed for all steps
    at once as batched products by
    :func:`~xpnn.backend.attention_ops.attention_all_steps` (equal to the
    loop up to float rounding). The steps' weights are kept in
    ``attention_weights``, a list of T_dec arrays ``(N, T_enc)`` (what the
    book's ``visualize_attention.py`` draws), views of one ``(N, T_dec,
    T_enc)`` array, and ``layers`` holds one :class:`Attention` per step as
    the book's does, whose ``attention_weight`` is that step's weights;
    those layers ran no forward pass (the steps were computed together), so
    their own ``backward`` refuses: ``TimeAttention.backward`` computes all
    steps'. ``backward(dout)`` (``(N, T_dec, H)``) returns ``(dhs_enc,
    dhs_dec)``, ``dhs_enc`` the sum of the steps'. No parameters; config
    ``{}``.
    """

    is_loss = False  # forward(hs_enc, hs_dec) takes two inputs, but no target

    def __init__(self) -> None:
        super().__init__()
        self.params, self.grads = [], []
        self.layers: Any = None
        self.attention_weights: Any = None
        self.cache: Any = None

    def forward(self, hs_enc: Any, hs_dec: Any) -> Any:
        who = "TimeAttention"
        _check_float(who, hs_enc=hs_enc, hs_dec=hs_dec)
        shapes = f"hs_enc of shape {tuple(hs_enc.shape)} and hs_dec of shape {tuple(hs_dec.shape)}"
        if (
            hs_enc.ndim != 3
            or hs_dec.ndim != 3
            or hs_enc.shape[1] == 0
            or hs_dec.shape[1] == 0
            or hs_enc.shape[0] != hs_dec.shape[0]
            or hs_enc.shape[2] != hs_dec.shape[2]
        ):
            raise ValueError(
                f"{who} takes hs_enc (N, T_enc, H) and hs_dec (N, T_dec, H) of the same N and H, "
                f"with T_enc > 0 and T_dec > 0, got {shapes}"
            )
        T = hs_dec.shape[1]

        # The book's loop over the steps, layer = Attention(); out[:, t, :] =
        # layer.forward(hs_enc, hs_dec[:, t, :]), as batched products over all steps:
        # the scores, their softmax, the contexts.
        out, a = attention_all_steps(hs_enc, hs_dec)
        self.attention_weights = [a[:, t, :] for t in range(T)]
        self.layers = [_weights_only(w) for w in self.attention_weights]

        self.cache = (hs_enc, hs_dec, a)
        return out

    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        hs_enc, hs_dec, a = self.cache
        _check_dout("TimeAttention", dout, a.dtype)

        # The book's loop of layers[t].backward(dout[:, t, :]), dhs_enc += dhs and
        # dhs_dec[:, t, :] = dh, as four batched products and the softmax's backward.
        dhs_enc, dhs_dec = attention_all_steps_backward(hs_enc, hs_dec, a, dout)

        return dhs_enc, dhs_dec


def _weights_only(a: Any) -> Attention:
    """A step's :class:`Attention` as the book's ``TimeAttention.layers`` holds it, with
    the step's weights ``a`` ``(N, T_enc)`` and no forward pass (a few objects, no array)."""
    layer = Attention()
    layer.attention_weight = a
    return layer

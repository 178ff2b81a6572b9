"""TimeAttention's decoder steps (vol. 2, ch. 8), all at once, as named operations.

The book's ``TimeAttention`` (``ch08/attention_layer.py``) runs one
``Attention`` per decoder step t: ``AttentionWeight`` multiplies the encoder
states ``hs_enc`` ``(N, T_enc, H)`` element-wise by the step's state
``h = hs_dec[:, t, :]`` repeated T_enc times and sums over H (the scores
``s`` ``(N, T_enc)``), takes their softmax ``a``, and ``WeightSum``
multiplies ``hs_enc`` by ``a`` repeated H times and sums over T_enc (the
context ``c`` ``(N, H)``); backward, four more such products over
``(N, T_enc, H)`` arrays and their sums per step. Each of those sums is a
dot product, and over all steps they are two batched matrix products
forward and four backward:

* :func:`attention_all_steps`: ``s = hs_dec @ hs_enc^T`` ``(N, T_dec,
  T_enc)``, ``a = softmax(s)`` over the encoder axis, ``out = a @ hs_enc``;
* :func:`attention_all_steps_backward`: ``da = dout @ hs_enc^T``, the
  softmax's backward ``ds`` (the book's ``Softmax.backward``), ``dhs_dec =
  ds @ hs_enc``, ``dhs_enc = a^T @ dout + ds^T @ hs_dec`` (the sum over the
  steps the book adds one by one).

Why faster: the book writes and reads, per step and pass, temporaries of
the size of ``hs_enc`` (at the date data's ``(128, 29, 256)``, 3.8 MB in
float32, eight per step: 80 per iteration over 10 steps), at memory speed
and with a Python call each; the batched products read each array once, in
BLAS (or PyTorch's kernels), and allocate only arrays of the results'
sizes. At those shapes, forward and backward of all 10 steps of
``TimeAttention`` took 3.5-15 ms (medians of six runs) on one NumPy thread
of a busy 2-core machine where the per-step loop took 78-115 ms (on
torch:cpu, 8-14 ms against 35-39 ms). The results differ from the book's
only by float rounding (the same sums, added in another order); the
softmax is :func:`xpnn.functions.softmax`'s, ``Ops.softmax`` (the book's
``common/layers.py`` ``Softmax``: the maximum subtracted, exp, divided by
the sum).

Shapes and dtypes: ``hs_enc`` ``(N, T_enc, H)``, ``hs_dec`` and ``dout``
``(N, T_dec, H)``, ``a`` ``(N, T_dec, T_enc)``, all of one real floating
dtype, on one backend and device (the caller checks them: these operations
refuse nothing). Half floats (float16, bfloat16) take the softmax and its
backward in float32, as :class:`xpnn.layers.Softmax` does, and come back
in their dtype. No buffer is kept from call to call: every result is a
new array (``TimeAttention.attention_weights`` are views of ``a``, and
stay valid after the next call). Nothing is read back from a device.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend.namespace import get_namespace
from xpnn.backend.operations import ops

__all__ = ["attention_all_steps", "attention_all_steps_backward"]


def attention_all_steps(hs_enc: Any, hs_dec: Any) -> tuple[Any, Any]:
    """Every decoder step's attention: ``(out, a)``, ``out`` ``(N, T_dec, H)``, ``a``
    ``(N, T_dec, T_enc)``.

    What the book's T_dec ``Attention.forward(hs_enc, hs_dec[:, t, :])``
    compute, step t in ``out[:, t, :]`` (the context) and ``a[:, t, :]``
    (the weights over the encoder steps, each row summing to 1): the scores
    ``hs_dec @ hs_enc^T``, their softmax over the last axis, and ``a @
    hs_enc``, two batched products where the book has 2 * T_dec products
    of repeated arrays summed along an axis (see the module's docstring).

    Args:
        hs_enc: The encoder states ``(N, T_enc, H)``, float.
        hs_dec: The decoder states ``(N, T_dec, H)``, in ``hs_enc``'s dtype.

    Returns:
        ``(out, a)`` in the inputs' dtype; pass ``a`` to
        :func:`attention_all_steps_backward`.
    """
    xp = get_namespace(hs_enc, hs_dec)
    s = xp.matmul(hs_dec, xp.matrix_transpose(hs_enc))  # the book: sum(hs * hr, axis=2)
    a = ops(s).softmax(s)  # xpnn.functions.softmax's, over the encoder axis
    out = xp.matmul(a, hs_enc)  # the book: sum(hs * ar, axis=1)
    return out, a


def attention_all_steps_backward(hs_enc: Any, hs_dec: Any, a: Any, dout: Any) -> tuple[Any, Any]:
    """The gradients of :func:`attention_all_steps`: ``(dhs_enc, dhs_dec)``.

    What the book's T_dec ``Attention.backward(dout[:, t, :])`` compute:
    ``WeightSum``'s ``da = dout @ hs_enc^T`` and ``dhs0 = a^T @ dout``, the
    softmax's backward ``ds = a * da - a * sum(a * da)`` (the book's
    ``Softmax.backward``, in its order), ``AttentionWeight``'s ``dh = ds @
    hs_enc`` and ``dhs1 = ds^T @ hs_dec``; ``dhs_enc`` is the sum over the
    steps of ``dhs0 + dhs1``, which the two batched products over the
    T_dec axis compute at once.

    Args:
        hs_enc: The encoder states ``(N, T_enc, H)`` of the forward pass.
        hs_dec: The decoder states ``(N, T_dec, H)`` of the forward pass.
        a: The weights ``(N, T_dec, T_enc)`` :func:`attention_all_steps`
            returned.
        dout: The gradient of ``out``, ``(N, T_dec, H)``, in the same dtype.

    Returns:
        ``(dhs_enc, dhs_dec)``, of ``hs_enc``'s and ``hs_dec``'s shapes, in
        their dtype.
    """
    xp = get_namespace(hs_enc, hs_dec, a, dout)
    k = ops(a)
    da = xp.matmul(dout, xp.matrix_transpose(hs_enc))  # WeightSum: sum(dt * hs, axis=2)
    # The book's Softmax.backward over the encoder axis (half floats in float32).
    w, d = k.widen(a), k.widen(da)
    dx = w * d
    ds = k.unwiden(dx - w * xp.sum(dx, axis=-1, keepdims=True), a.dtype)
    dhs_dec = xp.matmul(ds, hs_enc)  # AttentionWeight: sum(dt * hs, axis=1)
    # Both layers' dhs, summed over the steps: WeightSum's dt * ar, AttentionWeight's dt * hr.
    dhs_enc = xp.matmul(xp.matrix_transpose(a), dout) + xp.matmul(xp.matrix_transpose(ds), hs_dec)
    return dhs_enc, dhs_dec

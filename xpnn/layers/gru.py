"""Vol. 2 ch. 6's gated recurrent unit: ``GRU`` and ``TimeGRU``.

As the book's ``common/time_layers.py`` (one of the layers it gives without
explaining them in the text): the same names, constructor arguments,
attributes (``params``, ``grads``, ``cache``, ``layers``, ``h``, ``dh``,
``stateful``) and math. ``Wx`` ``(D, 3H)``, ``Wh`` ``(H, 3H)`` and ``b``
``(3H,)`` hold the update gate z, the reset gate r and the candidate h_hat
side by side, in that order::

    z     = sigmoid(x @ Wxz + h_prev @ Whz + bz)
    r     = sigmoid(x @ Wxr + h_prev @ Whr + br)
    h_hat = tanh(x @ Wxh + (r * h_prev) @ Whh + bh)
    h_next = (1 - z) * h_prev + z * h_hat

The reset gate multiplies ``h_prev`` *before* the product with ``Whh`` (Cho
et al. 2014); PyTorch's ``nn.GRU`` applies it after (``r * (h_prev @ Whh +
b_hn)``), so the two differ whenever r is not all ones.

:class:`TimeGRU` steps one cell per time step over ``xs`` ``(N, T, D)`` and
stacks the steps with ``xp.stack(..., axis=1)`` as :class:`TimeRNN` does; its
``backward`` sums the cells' gradients into ``grads`` and keeps the gradient
of the first hidden state in ``dh``.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import _dtype_name, adopt_host_input, device_of, get_namespace, ops
from xpnn.layers.base import Layer, _into, _zeros_like_all, register_layer
from xpnn.layers.recurrent import (
    _check_dout,
    _check_sequence,
    _check_state,
    _check_step,
    _shapes,
    _step_config,
    _TimeConfig,
)

__all__ = ["GRU", "TimeGRU"]


def _check_weights(Wx: Any, Wh: Any, b: Any, who: str) -> None:
    """``Wx`` ``(D, 3H)``, ``Wh`` ``(H, 3H)``, ``b`` ``(3H,)`` of one dtype: the three
    blocks are cut by ``H = Wh.shape[0]``, so other shapes would mix them silently."""
    shapes = tuple(tuple(getattr(a, "shape", ())) for a in (Wx, Wh, b))
    h = shapes[1][0] if shapes[1] else 0
    if len(shapes[0]) != 2 or shapes[0][1:] != (3 * h,) or shapes[1:] != ((h, 3 * h), (3 * h,)):
        raise ValueError(
            f"{who} takes Wx (D, 3H), Wh (H, 3H) and b (3H,) (the blocks z, r, h_hat side by "
            f"side), got shapes {shapes[0]}, {shapes[1]} and {shapes[2]}"
        )
    if not Wx.dtype == Wh.dtype == b.dtype:
        raise ValueError(
            f"{who} takes Wx, Wh and b of one dtype, got {_dtype_name(Wx.dtype)}, "
            f"{_dtype_name(Wh.dtype)} and {_dtype_name(b.dtype)}"
        )


@register_layer
class GRU(Layer):
    """One time step of a GRU, the book's blocks in the order z, r, h_hat.

    ``forward(x, h_prev)``: ``x`` ``(N, D)``, ``h_prev`` ``(N, H)`` in the
    weights' float dtype -> ``h_next`` ``(N, H)``; ``Wx`` ``(D, 3H)``, ``Wh``
    ``(H, 3H)``, ``b`` ``(3H,)``. ``backward(dh_next)`` writes ``grads``
    (dWx, dWh, db) and returns ``(dx, dh_prev)``.

    Config: ``{"input_size": D, "hidden_size": H}``.
    """

    param_names = ("Wx", "Wh", "b")
    is_loss = False  # forward(x, h_prev) takes two inputs, but no target

    def __init__(self, Wx: Any, Wh: Any, b: Any):
        _check_weights(Wx, Wh, b, "GRU")
        super().__init__()
        self.params = [Wx, Wh, b]
        self.grads = _zeros_like_all(self.params)
        self.cache: Any = None

    def forward(self, x: Any, h_prev: Any) -> Any:
        Wx, Wh, b = self.params
        h_prev = adopt_host_input(h_prev, Wx)
        k = ops(x, h_prev, Wx)
        N, H = _check_step(k, x, Wx, Wh, "GRU")
        _check_state(h_prev, (N, H), Wx, "GRU", "h_prev")
        xp = k.xp
        Wxz, Wxr, Wxh = Wx[:, :H], Wx[:, H : 2 * H], Wx[:, 2 * H :]
        Whz, Whr, Whh = Wh[:, :H], Wh[:, H : 2 * H], Wh[:, 2 * H :]
        bz, br, bh = b[:H], b[H : 2 * H], b[2 * H :]

        z = k.sigmoid(x @ Wxz + h_prev @ Whz + bz)
        r = k.sigmoid(x @ Wxr + h_prev @ Whr + br)
        h_hat = xp.tanh(x @ Wxh + (r * h_prev) @ Whh + bh)
        h_next = (1 - z) * h_prev + z * h_hat

        self.cache = (x, h_prev, z, r, h_hat)
        return h_next

    def backward(self, dh_next: Any, *, input_grad: bool = True) -> Any:
        Wx, Wh, _ = self.params
        H = Wh.shape[0]
        Whh = Wh[:, 2 * H :]
        x, h_prev, z, r, h_hat = self.cache
        _check_dout(dh_next, Wx, "GRU")
        k = ops(dh_next, Wx)
        xp = k.xp

        dh_hat = dh_next * z
        dh_prev = dh_next * (1 - z)

        # tanh
        dt_h = dh_hat * (1 - h_hat**2)
        dhr = dt_h @ Whh.T
        dh_prev = dh_prev + r * dhr

        # update gate (z)
        dz = dh_next * h_hat - dh_next * h_prev
        dt_z = dz * z * (1 - z)

        # reset gate (r)
        dr = dhr * h_prev
        dt_r = dr * r * (1 - r)

        # The book's three blocks side by side (its np.hstack of dWxz, dWxr,
        # dWxh...): x and the z, r blocks of h_prev each take one product.
        dt = xp.concat((dt_z, dt_r, dt_h), axis=1)
        dt_zr = dt[:, : 2 * H]
        dWx = k.matmul(x.T, dt, out=self.grads[0])
        dWh = xp.concat((h_prev.T @ dt_zr, (r * h_prev).T @ dt_h), axis=1)
        db = k.sum_wide(dt, axis=0, out=self.grads[2])
        dh_prev = dh_prev + dt_zr @ Wh[:, : 2 * H].T
        dx = dt @ Wx.T if input_grad else None

        _into(self.grads[0], dWx)
        _into(self.grads[1], dWh)
        _into(self.grads[2], db)

        return dx, dh_prev

    def config(self) -> dict[str, Any]:
        return _step_config(self)

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        return _shapes(cls, config, 3)


@register_layer
class TimeGRU(_TimeConfig, Layer):
    """``T`` :class:`GRU` steps over ``xs`` ``(N, T, D)`` -> ``hs`` ``(N, T, H)``.

    ``stateful=True`` starts each forward pass from the last one's ``h``
    (zeros the first time, and after :meth:`reset_state`); otherwise every
    pass starts from zeros. ``backward(dhs)`` sums the steps' gradients into
    ``grads``, keeps the gradient of the first ``h`` in ``dh`` and returns
    ``dxs`` ``(N, T, D)``.

    Config: ``{"input_size": D, "hidden_size": H, "stateful": bool}``.
    """

    param_names = ("Wx", "Wh", "b")
    gates = 3

    def __init__(self, Wx: Any, Wh: Any, b: Any, stateful: bool = False):
        _check_weights(Wx, Wh, b, "TimeGRU")
        super().__init__()
        self.params = [Wx, Wh, b]
        self.grads = _zeros_like_all(self.params)
        self.layers: Any = None

        self.h: Any = None
        self.dh: Any = None
        self.stateful = stateful

    def forward(self, xs: Any) -> Any:
        Wx, Wh, _ = self.params
        xp = get_namespace(xs, Wx)
        _check_sequence(ops(xs, Wx), xs, Wx, "TimeGRU")
        N, T, _ = xs.shape
        H = Wh.shape[0]
        if self.stateful and self.h is not None:
            _check_state(self.h, (N, H), Wx, "TimeGRU", "the state h")

        self.layers = []
        hs = []

        if not self.stateful or self.h is None:
            self.h = xp.zeros((N, H), dtype=Wx.dtype, device=device_of(Wx))

        for t in range(T):
            layer = GRU(*self.params)
            self.h = layer.forward(xs[:, t, :], self.h)
            hs.append(self.h)
            self.layers.append(layer)

        return xp.stack(hs, axis=1)

    def backward(self, dhs: Any, *, input_grad: bool = True) -> Any:
        Wx = self.params[0]
        _check_dout(dhs, Wx, "TimeGRU")
        T = dhs.shape[1]

        dxs = [None] * T
        dh = 0
        grads = [0, 0, 0]
        for t in reversed(range(T)):
            layer = self.layers[t]
            dx, dh = layer.backward(dhs[:, t, :] + dh, input_grad=input_grad)
            dxs[t] = dx

            for i, grad in enumerate(layer.grads):
                grads[i] += grad

        for i, grad in enumerate(grads):
            _into(self.grads[i], grad)
        self.dh = dh

        return get_namespace(dhs).stack(dxs, axis=1) if input_grad else None

    def set_state(self, h: Any) -> None:
        self.h = h

    def reset_state(self) -> None:
        self.h = None

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(T, H)`` for sequences ``(T, D)``."""
        return cls._sequence_shape(config, input_shape)

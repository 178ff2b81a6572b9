"""Vol. 2 ch. 6's bidirectional LSTM: ``TimeBiLSTM``.

As the book's ``common/time_layers.py`` (one of the layers it gives without
explaining them in the text): two :class:`~xpnn.layers.recurrent.TimeLSTM`
layers, ``forward_lstm`` reading ``xs`` ``(N, T, D)`` from the first step to
the last and ``backward_lstm`` from the last to the first; their outputs side
by side on the last axis, ``(N, T, 2H)``, the forward direction's first.
``backward`` splits ``dhs`` the same way and adds the two directions' ``dxs``.

The book reverses time with ``xs[:, ::-1]``; here ``xp.flip(xs, axis=1)``,
since PyTorch tensors take no negative step (the same values).
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import _dtype_name, get_namespace, ops, zeros
from xpnn.layers.base import Layer, register_layer
from xpnn.layers.recurrent import (
    TimeLSTM,
    _check_dout,
    _check_sequence,
    _check_state,
    _shapes,
)

__all__ = ["TimeBiLSTM"]


def _check_weights(params: list[Any]) -> None:
    """Both directions' ``Wx`` ``(D, 4H)``, ``Wh`` ``(H, 4H)``, ``b`` ``(4H,)``, of one
    shape set and one dtype: ``backward`` splits ``dhs`` at ``H`` and the outputs are
    concatenated, which other shapes or dtypes would break or cast silently."""
    shapes = [tuple(getattr(p, "shape", ())) for p in params]
    h = shapes[1][0] if shapes[1] else 0
    first = shapes[:3]
    if (
        len(first[0]) != 2
        or first[0][1:] != (4 * h,)
        or first[1:] != [(h, 4 * h), (4 * h,)]
        or shapes[3:] != first
    ):
        raise ValueError(
            "TimeBiLSTM takes Wx1, Wx2 (D, 4H), Wh1, Wh2 (H, 4H) and b1, b2 (4H,), the same "
            f"shapes for both directions, got shapes {', '.join(map(str, shapes))}"
        )
    dtypes = [_dtype_name(p.dtype) for p in params]
    if len(set(dtypes)) != 1:
        raise ValueError(f"TimeBiLSTM takes six weights of one dtype, got {', '.join(dtypes)}")


@register_layer
class TimeBiLSTM(Layer):
    """Two :class:`~xpnn.layers.recurrent.TimeLSTM` layers over ``xs`` ``(N, T, D)``,
    one in each direction of time -> ``hs`` ``(N, T, 2H)``.

    ``hs[:, :, :H]`` is ``forward_lstm``'s output (weights ``Wx1``, ``Wh1``,
    ``b1``), ``hs[:, :, H:]`` ``backward_lstm``'s (``Wx2``, ``Wh2``, ``b2``), which
    read ``xs`` from its last step to its first, put back in time order.
    ``params`` and ``grads`` are the two layers' lists joined: the very arrays,
    filled in place by ``backward(dhs)``, which returns ``dxs`` ``(N, T, D)``.
    With ``stateful=True`` each direction carries its ``h`` and ``c`` over to the
    next forward pass (the backward direction's from the first step of the last
    sequence to the last step of the next); :meth:`reset_state` forgets both.

    Config: ``{"input_size": D, "hidden_size": H, "stateful": bool}``.
    """

    param_names = ("Wx1", "Wh1", "b1", "Wx2", "Wh2", "b2")

    def __init__(
        self,
        Wx1: Any,
        Wh1: Any,
        b1: Any,
        Wx2: Any,
        Wh2: Any,
        b2: Any,
        stateful: bool = False,
    ):
        _check_weights([Wx1, Wh1, b1, Wx2, Wh2, b2])
        super().__init__()
        self.forward_lstm = TimeLSTM(Wx1, Wh1, b1, stateful)
        self.backward_lstm = TimeLSTM(Wx2, Wh2, b2, stateful)
        self.params = self.forward_lstm.params + self.backward_lstm.params
        self.grads = self.forward_lstm.grads + self.backward_lstm.grads

    def forward(self, xs: Any) -> Any:
        Wx, Wh = self.params[0], self.params[1]
        xp = get_namespace(xs, Wx)
        # Both directions' checks before either runs, so a refusal changes no state.
        _check_sequence(ops(xs, Wx), xs, Wx, "TimeBiLSTM")
        shape = (xs.shape[0], Wh.shape[0])
        for name in ("forward_lstm", "backward_lstm"):
            lstm = getattr(self, name)
            for state in ("h", "c"):
                value = getattr(lstm, state)
                if lstm.stateful and value is not None:
                    _check_state(value, shape, Wx, "TimeBiLSTM", f"the state {name}.{state}")

        o1 = self.forward_lstm.forward(xs)
        o2 = self.backward_lstm.forward(xp.flip(xs, axis=1))
        o2 = xp.flip(o2, axis=1)

        out = xp.concat((o1, o2), axis=2)
        return out

    def backward(self, dhs: Any, *, input_grad: bool = True) -> Any:
        _check_dout(dhs, self.params[0], "TimeBiLSTM")
        xp = get_namespace(dhs)
        H = dhs.shape[2] // 2
        do1 = dhs[:, :, :H]
        do2 = dhs[:, :, H:]

        dxs1 = self.forward_lstm.backward(do1, input_grad=input_grad)
        do2 = xp.flip(do2, axis=1)
        dxs2 = self.backward_lstm.backward(do2, input_grad=input_grad)
        if not input_grad:
            return None
        dxs2 = xp.flip(dxs2, axis=1)
        dxs = dxs1 + dxs2
        return dxs

    def reset_state(self) -> None:
        """Forget both directions' ``h`` and ``c`` (each sets its own with
        ``forward_lstm.set_state`` and ``backward_lstm.set_state``)."""
        self.forward_lstm.reset_state()
        self.backward_lstm.reset_state()

    def config(self) -> dict[str, Any]:
        Wx, Wh = self.params[0], self.params[1]
        return {
            "input_size": int(Wx.shape[0]),
            "hidden_size": int(Wh.shape[0]),
            "stateful": bool(self.forward_lstm.stateful),
        }

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        one = _shapes(cls, config, 4, extra=("stateful",))
        return {f"{name}{i}": shape for i in (1, 2) for name, shape in one.items()}

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(T, 2H)`` for sequences ``(T, D)``."""
        d = cls.param_shapes(config)["Wx1"][0]
        if len(input_shape) != 2 or input_shape[1] != d:
            raise ValueError(
                f"TimeBiLSTM of input_size {d} takes sequences (T, {d}), got samples of "
                f"shape {tuple(input_shape)}"
            )
        return (input_shape[0], 2 * config["hidden_size"])

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any, backend: Any) -> Layer:
        shapes = cls.param_shapes(config)
        params = (zeros(s, dtype=dtype, backend=backend) for s in shapes.values())
        return cls(*params, stateful=config["stateful"])

"""Vol. 2, ch. 5-6's recurrent layers: ``RNN``, ``TimeRNN``, ``LSTM``, ``TimeLSTM``.

As the book's ``common/time_layers.py``: the same names, constructor
arguments, attributes (``params``, ``grads``, ``cache``, ``layers``, ``h``,
``c``, ``dh``, ``stateful``) and math. The LSTM's four gates are one matrix
product, in the book's order f, g, i, o: ``A = x @ Wx + h_prev @ Wh + b``,
``f = A[:, :H]``, ``g = A[:, H:2H]``, ``i = A[:, 2H:3H]``, ``o = A[:, 3H:]``.

The time layers step one cell per time step over ``xs`` ``(N, T, D)`` and
stack the steps' outputs with ``xp.stack(..., axis=1)`` (the book writes
``hs[:, t, :]`` into an ``np.empty``, which not every backend allows). Their
``backward`` sums the cells' gradients into ``grads`` and keeps the gradient
of the first hidden state in ``dh``, as the book's.

What does not depend on the step before is computed for all steps at once
(:mod:`xpnn.backend.recurrent_ops`): ``xs @ Wx + b`` before the loop, and
after the backward loop the sums over the steps of ``x.T @ dA``,
``h_prev.T @ dA`` and ``dA``, and ``dxs = dAs @ Wx.T``, each one product
over the ``N * T`` rows; the cells keep the book's math, and each step's
own gradients (the book's cell ``grads``) are computed if read
(:class:`~xpnn.backend.recurrent_ops.StepGrads`).
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import _dtype_name, adopt_host_input, device_of, get_namespace, ops, zeros
from xpnn.backend.recurrent_ops import (
    StepGrads,
    sequence_matmul,
    steps_bias_grad,
    steps_weight_grad,
    times_transposed,
)
from xpnn.layers.base import (
    Layer,
    _check_input,
    _config_sizes,
    _into,
    _zeros_like_all,
    register_layer,
)

__all__ = ["LSTM", "RNN", "TimeLSTM", "TimeRNN"]

_CONFIG_KEYS = ("input_size", "hidden_size")


# ---------------------------------------------------------------- checks and config


def _check_state(state: Any, shape: tuple[int, ...], W: Any, who: str, name: str) -> None:
    """A hidden (or cell) state: an array of ``shape`` in W's dtype."""
    got = tuple(getattr(state, "shape", ()))
    if got != shape or getattr(state, "dtype", None) != W.dtype:
        raise ValueError(
            f"{who}: {name} must be of shape {shape} and dtype {_dtype_name(W.dtype)}, got "
            f"shape {got} and dtype {_dtype_name(getattr(state, 'dtype', type(state)))}"
        )


def _check_step(k: Any, x: Any, Wx: Any, Wh: Any, who: str) -> tuple[int, int]:
    """One time step's ``x``: ``(N, D)`` in the weights' float dtype; returns ``(N, H)``."""
    _check_input(k, x, who, Wx)
    if x.ndim != 2 or x.shape[1] != Wx.shape[0]:
        raise ValueError(
            f"{who} takes x (N, {Wx.shape[0]}) (Wx is {tuple(Wx.shape)}), got shape "
            f"{tuple(x.shape)}"
        )
    return x.shape[0], Wh.shape[0]


def _check_sequence(k: Any, xs: Any, Wx: Any, who: str) -> None:
    """A batch of sequences ``(N, T, D)`` (T > 0) in the weights' float dtype."""
    _check_input(k, xs, who, Wx)
    if xs.ndim != 3 or xs.shape[1] == 0 or xs.shape[2] != Wx.shape[0]:
        raise ValueError(
            f"{who} takes xs (N, T, {Wx.shape[0]}) with T > 0 (Wx is {tuple(Wx.shape)}), got "
            f"shape {tuple(xs.shape)}"
        )


def _check_dout(dout: Any, W: Any, who: str) -> None:
    if dout.dtype != W.dtype:
        raise TypeError(
            f"{who}.backward: dout of dtype {_dtype_name(dout.dtype)} does not fit the weights "
            f"of dtype {_dtype_name(W.dtype)}; pass the gradient in the weights' dtype"
        )


def _step_config(layer: Layer) -> dict[str, Any]:
    """``{"input_size": D, "hidden_size": H}`` from ``Wx`` ``(D, gates * H)`` and ``Wh``."""
    Wx, Wh, _ = layer.params
    return {"input_size": int(Wx.shape[0]), "hidden_size": int(Wh.shape[0])}


def _shapes(cls: Any, config: Any, gates: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    d, h = _config_sizes(cls, config, *_CONFIG_KEYS, extra=extra)
    if extra and not isinstance(config["stateful"], bool):
        raise ValueError(
            f"{cls.__name__} config 'stateful' must be a bool, got {config['stateful']!r:.80}"
        )
    return {"Wx": (d, gates * h), "Wh": (h, gates * h), "b": (gates * h,)}


class _TimeConfig:
    """Config of a time layer: the sizes and ``stateful`` (the classes declare their
    sample shapes themselves, by :meth:`_sequence_shape`: see :class:`Layer`)."""

    gates = 1

    def config(self) -> dict[str, Any]:
        return {**_step_config(self), "stateful": bool(self.stateful)}  # type: ignore[arg-type]

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        return _shapes(cls, config, cls.gates, extra=("stateful",))

    @classmethod
    def _sequence_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(T, H)`` for sequences ``(T, D)``."""
        d, h = (cls.param_shapes(config)["Wx"][0], config["hidden_size"])
        if len(input_shape) != 2 or input_shape[1] != d:
            raise ValueError(
                f"{cls.__name__} of input_size {d} takes sequences (T, {d}), got samples of "
                f"shape {tuple(input_shape)}"
            )
        return (input_shape[0], h)

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any, backend: Any) -> Layer:
        shapes = cls.param_shapes(config)
        params = (zeros(s, dtype=dtype, backend=backend) for s in shapes.values())
        return cls(*params, stateful=config["stateful"])  # type: ignore[call-arg]


def _steps_backward(layer: Any, dhs: Any, input_grad: bool) -> Any:
    """After a time layer's backward loop: the book's sums over the steps of ``x.T @ dA``,
    ``h_prev.T @ dA`` and ``dA`` into ``grads``, and ``dxs`` (each ``dA @ Wx.T``), as one
    product over the ``N * T`` rows each (:mod:`xpnn.backend.recurrent_ops`)."""
    xp = get_namespace(dhs)
    steps = layer.layers
    dAs = xp.stack([step.dA for step in steps], axis=1)  # (N, T, gates * H)
    h_prevs = xp.stack([step.cache[1] for step in steps], axis=1)
    _into(layer.grads[0], steps_weight_grad(layer.xs, dAs, out=layer.grads[0]))
    _into(layer.grads[1], steps_weight_grad(h_prevs, dAs, out=layer.grads[1]))
    _into(layer.grads[2], steps_bias_grad(dAs, out=layer.grads[2]))
    return sequence_matmul(dAs, layer.params[0].T) if input_grad else None


# ---------------------------------------------------------------- RNN


@register_layer
class RNN(Layer):
    """One time step of a plain RNN: ``h_next = tanh(h_prev @ Wh + x @ Wx + b)``.

    ``forward(x, h_prev)``: ``x`` ``(N, D)``, ``h_prev`` ``(N, H)`` in the
    weights' float dtype -> ``h_next`` ``(N, H)``. ``backward(dh_next)``
    writes ``grads`` (dWx, dWh, db) and returns ``(dx, dh_prev)``.

    Config: ``{"input_size": D, "hidden_size": H}``.
    """

    param_names = ("Wx", "Wh", "b")
    is_loss = False  # forward(x, h_prev) takes two inputs, but no target

    def __init__(self, Wx: Any, Wh: Any, b: Any, *, grads: Any = None):
        super().__init__()
        self.params = [Wx, Wh, b]
        # A TimeRNN's step gets [] here and its StepGrads in backward: no zeros per step.
        self.grads = _zeros_like_all(self.params) if grads is None else grads
        self.cache: Any = None
        self.dA: Any = None  # dt, the gradient of t (LSTM's dA)

    def forward(self, x: Any, h_prev: Any, *, x_Wx_b: Any = None) -> Any:
        Wx, Wh, b = self.params
        h_prev = adopt_host_input(h_prev, Wx)
        k = ops(x, h_prev, Wx)
        N, H = _check_step(k, x, Wx, Wh, "RNN")
        _check_state(h_prev, (N, H), Wx, "RNN", "h_prev")

        if x_Wx_b is None:
            t = h_prev @ Wh + x @ Wx + b
        else:  # x @ Wx + b, computed by TimeRNN for all steps at once
            t = h_prev @ Wh + x_Wx_b
        h_next = k.xp.tanh(t)

        self.cache = (x, h_prev, h_next)
        return h_next

    def backward(self, dh_next: Any, *, input_grad: bool = True, weight_grads: bool = True) -> Any:
        Wx, Wh, _ = self.params
        x, h_prev, h_next = self.cache
        _check_dout(dh_next, Wx, "RNN")
        k = ops(dh_next, Wx)

        dt = dh_next * (1 - h_next**2)
        self.dA = dt
        if not weight_grads:  # TimeRNN sums all steps' at once; this step's computed if read
            self.grads = StepGrads(x, h_prev, dt)
            return (dt @ Wx.T if input_grad else None), times_transposed(dt, Wh)
        db = k.sum_wide(dt, axis=0, out=self.grads[2])
        dWh = k.matmul(h_prev.T, dt, out=self.grads[1])
        dh_prev = dt @ Wh.T
        dWx = k.matmul(x.T, dt, out=self.grads[0])
        dx = dt @ Wx.T if input_grad else None

        _into(self.grads[0], dWx)
        _into(self.grads[1], dWh)
        _into(self.grads[2], db)

        return dx, dh_prev

    def config(self) -> dict[str, Any]:
        return _step_config(self)

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        return _shapes(cls, config, 1)


@register_layer
class TimeRNN(_TimeConfig, Layer):
    """``T`` :class:`RNN` steps over ``xs`` ``(N, T, D)`` -> ``hs`` ``(N, T, H)``.

    ``stateful=True`` starts each forward pass from the last one's ``h``
    (zeros the first time, and after :meth:`reset_state`); otherwise every
    pass starts from zeros. ``backward(dhs)`` sums the steps' gradients into
    ``grads``, keeps the gradient of the first ``h`` in ``dh`` and returns
    ``dxs`` ``(N, T, D)``.

    Config: ``{"input_size": D, "hidden_size": H, "stateful": bool}``.
    """

    param_names = ("Wx", "Wh", "b")
    gates = 1

    def __init__(self, Wx: Any, Wh: Any, b: Any, stateful: bool = False):
        super().__init__()
        self.params = [Wx, Wh, b]
        self.grads = _zeros_like_all(self.params)
        self.layers: Any = None
        self.xs: Any = None

        self.h: Any = None
        self.dh: Any = None
        self.stateful = stateful

    def forward(self, xs: Any) -> Any:
        Wx, Wh, _ = self.params
        xp = get_namespace(xs, Wx)
        _check_sequence(ops(xs, Wx), xs, Wx, "TimeRNN")
        N, T, _ = xs.shape
        H = Wh.shape[0]
        if self.stateful and self.h is not None:
            _check_state(self.h, (N, H), Wx, "TimeRNN", "the state h")

        self.layers = []
        hs = []

        if not self.stateful or self.h is None:
            self.h = xp.zeros((N, H), dtype=Wx.dtype, device=device_of(Wx))

        # x @ Wx + b of all steps, one product (the book: one per step)
        xWx = sequence_matmul(xs, Wx, self.params[2])
        for t in range(T):
            layer = RNN(*self.params, grads=[])
            self.h = layer.forward(xs[:, t, :], self.h, x_Wx_b=xWx[:, t, :])
            hs.append(self.h)
            self.layers.append(layer)

        self.xs = xs
        return xp.stack(hs, axis=1)

    def backward(self, dhs: Any, *, input_grad: bool = True) -> Any:
        Wx = self.params[0]
        _check_dout(dhs, Wx, "TimeRNN")
        T = dhs.shape[1]

        dh = 0
        for t in reversed(range(T)):
            layer = self.layers[t]
            _, dh = layer.backward(dhs[:, t, :] + dh, input_grad=False, weight_grads=False)

        self.dh = dh
        return _steps_backward(self, dhs, input_grad)

    def set_state(self, h: Any) -> None:
        self.h = h

    def reset_state(self) -> None:
        self.h = None

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(T, H)`` for sequences ``(T, D)``."""
        return cls._sequence_shape(config, input_shape)


# ---------------------------------------------------------------- LSTM


@register_layer
class LSTM(Layer):
    """One time step of an LSTM, gates in the book's order f, g, i, o.

    ``forward(x, h_prev, c_prev)``: ``x`` ``(N, D)``, ``h_prev`` and
    ``c_prev`` ``(N, H)`` -> ``(h_next, c_next)``; ``Wx`` ``(D, 4H)``, ``Wh``
    ``(H, 4H)``, ``b`` ``(4H,)``. ``backward(dh_next, dc_next)`` writes
    ``grads`` and returns ``(dx, dh_prev, dc_prev)``; it keeps the gradient
    of ``A`` in ``dA``. TimeLSTM passes ``forward`` its ``x_Wx_b`` (``x @ Wx
    + b``, computed for all steps at once) and ``backward``
    ``weight_grads=False`` (it sums all steps' gradients at once; ``grads``
    then computes this step's if read).

    Config: ``{"input_size": D, "hidden_size": H}``.
    """

    param_names = ("Wx", "Wh", "b")
    is_loss = False  # forward(x, h_prev, c_prev) takes three inputs, but no target

    def __init__(self, Wx: Any, Wh: Any, b: Any, *, grads: Any = None):
        super().__init__()
        self.params = [Wx, Wh, b]
        # A TimeLSTM's step gets [] here and its StepGrads in backward: no zeros per step.
        self.grads = _zeros_like_all(self.params) if grads is None else grads
        self.cache: Any = None
        self.dA: Any = None

    def forward(self, x: Any, h_prev: Any, c_prev: Any, *, x_Wx_b: Any = None) -> Any:
        Wx, Wh, b = self.params
        h_prev, c_prev = adopt_host_input(h_prev, Wx), adopt_host_input(c_prev, Wx)
        k = ops(x, h_prev, c_prev, Wx)
        N, H = _check_step(k, x, Wx, Wh, "LSTM")
        _check_state(h_prev, (N, H), Wx, "LSTM", "h_prev")
        _check_state(c_prev, (N, H), Wx, "LSTM", "c_prev")
        xp = k.xp

        if x_Wx_b is None:
            A = x @ Wx + h_prev @ Wh + b
        else:  # x @ Wx + b, computed by TimeLSTM for all steps at once
            A = x_Wx_b + h_prev @ Wh

        f = A[:, :H]
        g = A[:, H : 2 * H]
        i = A[:, 2 * H : 3 * H]
        o = A[:, 3 * H :]

        f = k.sigmoid(f)
        g = xp.tanh(g)
        i = k.sigmoid(i)
        o = k.sigmoid(o)

        c_next = f * c_prev + g * i
        h_next = o * xp.tanh(c_next)

        self.cache = (x, h_prev, c_prev, i, f, g, o, c_next)
        return h_next, c_next

    def backward(
        self, dh_next: Any, dc_next: Any, *, input_grad: bool = True, weight_grads: bool = True
    ) -> Any:
        Wx, Wh, _ = self.params
        x, h_prev, c_prev, i, f, g, o, c_next = self.cache
        _check_dout(dh_next, Wx, "LSTM")
        k = ops(dh_next, Wx)
        xp = k.xp

        tanh_c_next = xp.tanh(c_next)

        ds = dc_next + (dh_next * o) * (1 - tanh_c_next**2)

        dc_prev = ds * f

        di = ds * g
        df = ds * c_prev
        do = dh_next * tanh_c_next
        dg = ds * i

        di = di * (i * (1 - i))
        df = df * (f * (1 - f))
        do = do * (o * (1 - o))
        dg = dg * (1 - g**2)

        dA = xp.concat((df, dg, di, do), axis=1)
        self.dA = dA

        if weight_grads:
            dWh = k.matmul(h_prev.T, dA, out=self.grads[1])
            dWx = k.matmul(x.T, dA, out=self.grads[0])
            db = k.sum_wide(dA, axis=0, out=self.grads[2])

            _into(self.grads[0], dWx)
            _into(self.grads[1], dWh)
            _into(self.grads[2], db)
        else:  # TimeLSTM sums all steps' at once; this step's are computed if read
            self.grads = StepGrads(x, h_prev, dA)

        dx = dA @ Wx.T if input_grad else None
        dh_prev = times_transposed(dA, Wh)  # dA @ Wh.T

        return dx, dh_prev, dc_prev

    def config(self) -> dict[str, Any]:
        return _step_config(self)

    @classmethod
    def param_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        return _shapes(cls, config, 4)


@register_layer
class TimeLSTM(_TimeConfig, Layer):
    """``T`` :class:`LSTM` steps over ``xs`` ``(N, T, D)`` -> ``hs`` ``(N, T, H)``.

    As :class:`TimeRNN`, with the cell state ``c`` beside ``h``: both carried
    over between forward passes when ``stateful``, both zeros otherwise (and
    after :meth:`reset_state`). ``backward(dhs)`` keeps the gradient of the
    first ``h`` in ``dh`` (not ``c``'s, as the book's).

    Config: ``{"input_size": D, "hidden_size": H, "stateful": bool}``.
    """

    param_names = ("Wx", "Wh", "b")
    gates = 4

    def __init__(self, Wx: Any, Wh: Any, b: Any, stateful: bool = False):
        super().__init__()
        self.params = [Wx, Wh, b]
        self.grads = _zeros_like_all(self.params)
        self.layers: Any = None
        self.xs: Any = None

        self.h: Any = None
        self.c: Any = None
        self.dh: Any = None
        self.stateful = stateful

    def forward(self, xs: Any) -> Any:
        Wx, Wh, _ = self.params
        xp = get_namespace(xs, Wx)
        _check_sequence(ops(xs, Wx), xs, Wx, "TimeLSTM")
        N, T, _ = xs.shape
        H = Wh.shape[0]
        if self.stateful and self.h is not None:
            _check_state(self.h, (N, H), Wx, "TimeLSTM", "the state h")
        if self.stateful and self.c is not None:
            _check_state(self.c, (N, H), Wx, "TimeLSTM", "the state c")

        self.layers = []
        hs = []

        if not self.stateful or self.h is None:
            self.h = xp.zeros((N, H), dtype=Wx.dtype, device=device_of(Wx))
        if not self.stateful or self.c is None:
            self.c = xp.zeros((N, H), dtype=Wx.dtype, device=device_of(Wx))

        # x @ Wx + b of all steps, one product (the book: one per step)
        xWx = sequence_matmul(xs, Wx, self.params[2])
        for t in range(T):
            layer = LSTM(*self.params, grads=[])
            self.h, self.c = layer.forward(xs[:, t, :], self.h, self.c, x_Wx_b=xWx[:, t, :])
            hs.append(self.h)

            self.layers.append(layer)

        self.xs = xs
        return xp.stack(hs, axis=1)

    def backward(self, dhs: Any, *, input_grad: bool = True) -> Any:
        Wx = self.params[0]
        _check_dout(dhs, Wx, "TimeLSTM")
        T = dhs.shape[1]

        dh, dc = 0, 0

        for t in reversed(range(T)):
            layer = self.layers[t]
            _, dh, dc = layer.backward(dhs[:, t, :] + dh, dc, input_grad=False, weight_grads=False)

        self.dh = dh
        return _steps_backward(self, dhs, input_grad)

    def set_state(self, h: Any, c: Any = None) -> None:
        self.h, self.c = h, c

    def reset_state(self) -> None:
        self.h, self.c = None, None

    @classmethod
    def output_sample_shape(cls, config: Any, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(T, H)`` for sequences ``(T, D)``."""
        return cls._sequence_shape(config, input_shape)

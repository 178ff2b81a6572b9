"""Bit precision (vol. 2, section 1.5): half-precision training with loss scaling.

The book's point: float32 is enough to train a network, and its weights can be
*stored* in float16 to halve the files (``xpnn.io.save(net, path,
dtype="float16")``). The modern form of the same idea is mixed-precision
training (what PyTorch's ``autocast`` and ``GradScaler`` do), where half
precision buys speed on GPUs with tensor cores:

* the model keeps its weights in float32 (the *master* weights), and the
  optimizer updates them with float32 gradients;
* each step copies the weights into a half-precision twin of the model
  (float16, or bfloat16 on PyTorch) and runs forward and backward there;
  the softmax and the loss compute in float32 inside (see
  :class:`xpnn.layers.SoftmaxWithLoss`), so the loss is a float32 number;
* float16 flushes gradients below ~6e-8 to zero, so the backward pass starts
  from the loss times a *scale* S and the gradients are divided by S in
  float32 (:class:`LossScaler`). The scale is dynamic, with
  ``torch.amp.GradScaler``'s defaults: it starts at 2**16; a step whose
  gradients are not finite is skipped and the scale halved; after 2,000 clean
  steps in a row it doubles. bfloat16 has float32's range and needs no scale.

Layers with state follow the twin: BatchNormalization's running statistics
are the master's arrays, updated in place by the twin (kept as they were by a
skipped step), and Dropout's count of masks drawn goes back to the master
after each step, so the master predicts, saves and checkpoints its state.
The hidden states of a language model's recurrent layers (``h``, ``c``) are
cast into the twin before each step and back after it (float16 to float32
and back is exact), so truncated BPTT carries them as in the model's dtype.

Nothing of this reads the device: the scale, the overflow test and the skip
are device arrays and ``where`` selections, as the rest of a training step.
Use it with ``Trainer.fit(..., precision="mixed16")`` (or ``"mixed_bf16"``,
or a :class:`MixedPrecision` with other settings).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from xpnn.backend import (
    _dtype_name,
    backend_of,
    get_namespace,
    ops,
    resolve_dtype,
    use_backend,
)
from xpnn.layers.base import _into  # in place: the layers and the optimizer keep these arrays
from xpnn.training.clipping import clip_grads

__all__ = ["PRECISIONS", "LossScaler", "MixedPrecision", "mixed_precision"]

#: The names ``Trainer.fit(precision=...)`` takes, and their compute dtype.
PRECISIONS = {"mixed16": "float16", "mixed_bf16": "bfloat16"}

_WIDTH = {"bfloat16": 16, "float16": 16, "float32": 32, "float64": 64}
_FLOAT32_MAX = 3.4028234663852886e38


def _positive(name: str, value: Any, *, above_one: bool = False, below_one: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if value <= 0 or (above_one and value <= 1) or (below_one and value >= 1):
        want = "> 1" if above_one else "in (0, 1)" if below_one else "> 0"
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return value


class LossScaler:
    """Dynamic loss scaling, with ``torch.amp.GradScaler``'s rules and defaults.

    The scale lives on the device as a 0-d float32 array, and so do the count
    of clean steps since it last changed and the count of skipped steps: a
    training step reads none of them.

    Args:
        init_scale: The first scale (2**16).
        growth_factor: The scale is multiplied by this (2.0) after
            ``growth_interval`` clean steps in a row, unless that overflows.
        backoff_factor: ... and by this (0.5) after a step whose gradients
            are not finite (that step's update is skipped).
        growth_interval: Clean steps in a row before the scale grows (2000).
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ) -> None:
        self.init_scale = _positive("init_scale", init_scale)
        if self.init_scale > _FLOAT32_MAX:
            raise ValueError(f"init_scale must fit float32, got {init_scale!r}")
        self.growth_factor = _positive("growth_factor", growth_factor, above_one=True)
        self.backoff_factor = _positive("backoff_factor", backoff_factor, below_one=True)
        if (
            isinstance(growth_interval, bool)
            or not isinstance(growth_interval, int)
            or growth_interval <= 0
        ):
            raise ValueError(f"growth_interval must be a positive int, got {growth_interval!r}")
        self.growth_interval = growth_interval
        self.scale: Any = None  # 0-d float32 on the device, from start()
        self.growth_tracker: Any = None  # 0-d int32: clean steps since the last change
        self.skipped: Any = None  # 0-d int64: steps skipped so far

    def config(self) -> dict[str, Any]:
        """The settings, JSON-able (a checkpoint records them)."""
        return {
            "init_scale": self.init_scale,
            "growth_factor": self.growth_factor,
            "backoff_factor": self.backoff_factor,
            "growth_interval": self.growth_interval,
        }

    def start(self, xp: Any, device: Any) -> None:
        """Put a fresh state (scale ``init_scale``, no steps) on ``device``."""
        self.scale = xp.asarray(self.init_scale, dtype=xp.float32, device=device)
        self.growth_tracker = xp.asarray(0, dtype=xp.int32, device=device)
        self.skipped = xp.asarray(0, dtype=xp.int64, device=device)

    def unscale(self, scaled: list[Any], out: list[Any]) -> Any:
        """``out[i] = float32(scaled[i]) / scale``; returns whether all are finite.

        Returns:
            A 0-d bool array on the device (True: the step may be applied).
        """
        xp = get_namespace(self.scale, *out)
        inverse = 1.0 / self.scale  # a power of two for the default factors: exact
        finite = None
        for g, g32 in zip(scaled, out, strict=True):
            _into(g32, xp.astype(g, g32.dtype) * xp.astype(inverse, g32.dtype))
            ok = xp.all(xp.isfinite(g32))
            finite = ok if finite is None else finite & ok
        return finite

    def update(self, finite: Any) -> None:
        """The scale after a step (``_amp_update_scale_``'s rule), on the device."""
        xp = get_namespace(self.scale)
        clean = self.growth_tracker + 1
        grow = clean >= self.growth_interval
        with ops(self.scale).quiet():  # growing past float32's range is tested, not warned of
            grown = self.scale * self.growth_factor
        kept = xp.where(grow & xp.isfinite(grown), grown, self.scale)
        self.scale = xp.where(finite, kept, self.scale * self.backoff_factor)
        zero = xp.zeros_like(clean)
        self.growth_tracker = xp.where(finite, xp.where(grow, zero, clean), zero)
        self.skipped = self.skipped + xp.astype(xp.logical_not(finite), self.skipped.dtype)

    def state_dict(self) -> dict[str, Any]:
        """``{"scale": float, "growth_tracker": int, "skipped": int}`` (reads the device)."""
        from xpnn.backend import to_numpy

        xp = get_namespace(self.scale)
        both = to_numpy(xp.stack([xp.astype(self.growth_tracker, xp.int64), self.skipped]))
        return {
            "scale": float(to_numpy(self.scale)),
            "growth_tracker": int(both[0]),
            "skipped": int(both[1]),
        }

    def check_state_dict(self, state: Any) -> None:
        """Refuse a state :meth:`state_dict` could not have returned (ValueError)."""
        if not isinstance(state, dict) or set(state) != {"scale", "growth_tracker", "skipped"}:
            raise ValueError(
                "a loss scaler state must be {'scale', 'growth_tracker', 'skipped'}, "
                f"got {state!r:.200}"
            )
        scale = state["scale"]
        if (
            not isinstance(scale, float)
            or not (0 < scale <= _FLOAT32_MAX)
            or float(_float32(scale)) != scale
        ):
            raise ValueError(f"the loss scale must be a positive float32 value, got {scale!r}")
        for name, high in (("growth_tracker", self.growth_interval), ("skipped", 2**62)):
            v = state[name]
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < high:
                raise ValueError(
                    f"the loss scaler's {name} must be an int in [0, {high}), got {v!r}"
                )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, bit for bit, on the scale's device."""
        self.check_state_dict(state)
        xp = get_namespace(self.scale)
        device = backend_of(self.scale).device
        self.scale = xp.asarray(state["scale"], dtype=xp.float32, device=device)
        self.growth_tracker = xp.asarray(state["growth_tracker"], dtype=xp.int32, device=device)
        self.skipped = xp.asarray(state["skipped"], dtype=xp.int64, device=device)


def _float32(value: float) -> Any:
    import numpy as np  # host-side: is a JSON number a float32 value?

    return np.float32(value)


def _arrays(container: Any) -> tuple[list[Any], list[Any]]:
    """The keys and arrays of a list or dict of arrays, in order."""
    if hasattr(container, "keys"):
        keys = list(container.keys())
        return keys, [container[k] for k in keys]
    values = list(container)
    return list(range(len(values))), values


class MixedPrecision:
    """Train a model's float32 weights with forward and backward in a half float.

    Args:
        dtype: The compute dtype: ``"float16"`` (numpy, cupy, torch) or
            ``"bfloat16"`` (torch); any float narrower than the model's
            (``"float32"`` for a float64 model: the same code, on every
            backend, array_api_strict included).
        scaler: The loss scaler; by default a :class:`LossScaler` for
            float16 and none for the others (bfloat16 and float32 have
            float32's range). ``False``: no scaling.

    The scaler's state carries over from one ``fit`` to the next on the
    same device, as a ``GradScaler`` kept across a training loop does.

    A skipped step (gradients not finite) leaves the weights, the
    optimizer's state arrays and the running statistics of
    BatchNormalization layers as they were, on the device. The optimizer's
    update count (``optimizer.iter``, a host number) still counts it: for
    Adam that shifts the bias correction by the skipped steps (a few, at the
    start), where PyTorch's GradScaler does not count them but reads the
    device to know.
    """

    def __init__(self, dtype: str = "float16", *, scaler: LossScaler | bool | None = None):
        name = _dtype_name(dtype) if not isinstance(dtype, str) else dtype
        if name not in _WIDTH or name == "float64":
            raise ValueError(
                f"the compute dtype of mixed precision must be float16, bfloat16 or float32, "
                f"got {dtype!r}"
            )
        if scaler is None or scaler is True:
            scaler = LossScaler() if name == "float16" else None
        elif scaler is False:
            scaler = None
        elif not isinstance(scaler, LossScaler):
            raise TypeError(f"scaler must be a LossScaler, True or False, got {scaler!r}")
        self.dtype = name
        self.scaler: LossScaler | None = scaler
        self.model: Any = None  # the master model, once bound
        self.twin: Any = None  # its copy in the compute dtype

    def config(self) -> dict[str, Any]:
        """The settings, JSON-able (a checkpoint records them; a resume must match)."""
        return {
            "dtype": self.dtype,
            "scaler": None if self.scaler is None else self.scaler.config(),
        }

    def __repr__(self) -> str:
        return f"MixedPrecision({self.dtype!r}, scaler={self.scaler is not None})"

    # ------------------------------------------------------------ binding

    def bind(self, model: Any, optimizer: Any) -> None:
        """Check that this can train ``model`` with ``optimizer``, and build the twin.

        Nothing of ``model`` or ``optimizer`` changes.

        Raises:
            TypeError: ``model`` is not made of layers (a LayeredNet) or
                ``optimizer`` is not one of :mod:`xpnn.optimizers`.
            ValueError: The backend has not the compute dtype, or the model's
                dtype is not wider than it.
        """
        from xpnn.models import LayeredNet
        from xpnn.optimizers import Optimizer

        if not isinstance(model, LayeredNet) and not _made_of_layers(model):
            raise TypeError(
                f"mixed precision trains a model made of layers (an xpnn.LayeredNet, "
                f"TwoLayerNet...), got {type(model).__name__}"
            )
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                "mixed precision needs an optimizer of xpnn.optimizers (it restores the "
                f"optimizer's state arrays when a step is skipped), got {type(optimizer).__name__}"
            )
        keys, masters = _arrays(model.params)
        backend = backend_of(masters[0])
        master = _dtype_name(masters[0].dtype)
        compute = _dtype_name(resolve_dtype(backend.xp, self.dtype))  # clear error if missing
        if master not in ("float32", "float64") or _WIDTH[master] <= _WIDTH[compute]:
            raise ValueError(
                f"mixed precision keeps float32 (or float64) master weights and computes in "
                f"{compute}; this {type(model).__name__} is {master}: build it in float32 "
                f"(dtype='float32')"
            )
        with use_backend(backend.name, backend.device):
            twin = type(model).from_config(model.config, dtype=compute)
        twin_keys, _ = _arrays(twin.params)
        if twin_keys != keys:  # pragma: no cover - from_config gives the same names
            raise TypeError(f"{type(model).__name__}.from_config names its parameters otherwise")
        self.model, self.twin, self.optimizer = model, twin, optimizer
        self._layered_net = isinstance(model, LayeredNet)
        self._bind_layer_state(model, twin)
        self._masters = masters
        self._halves = _arrays(twin.params)[1]
        grad_keys, twin_grads = _arrays(twin.grads)
        xp = backend.xp
        self._scaled = twin_grads
        self._grads = [xp.zeros_like(p) for p in masters]
        self.grads = (
            dict(zip(grad_keys, self._grads, strict=True))
            if hasattr(model.grads, "keys")
            else self._grads
        )
        self._xp, self._compute = xp, resolve_dtype(xp, compute)
        self._saved: list[Any] | None = None
        scaler = self.scaler
        if scaler is not None and (
            scaler.scale is None or backend_of(scaler.scale).spec != backend.spec
        ):
            scaler.start(xp, backend.device)  # another fit on the same device goes on with it

    def _bind_layer_state(self, model: Any, twin: Any) -> None:
        """Make the master's layer state follow the twin's, which trains.

        BatchNormalization's running statistics: the twin's layers hold the
        master's very arrays (updated in place in the master's dtype, from
        statistics taken in float32), so the master predicts, saves and
        checkpoints them with no copy. Other layers' state arrays are cast
        into the twin before each step and back after it, on the device.
        Dropout: the twin draws the masks, with the master's seed and count
        before each step, and the master's count follows after it (host
        ints), so a checkpoint of the master resumes the same masks.
        """
        from xpnn.layers import BatchNormalization, Dropout

        self._synced: list[tuple[Any, Any]] = []  # (master array, twin array)
        self._running: list[Any] = []  # the state arrays a step updates (kept if skipped)
        self._hyper: list[tuple[Any, Any, str]] = []  # (master layer, twin layer, attribute)
        self._dropouts: list[tuple[Any, Any]] = []  # (master layer, twin layer)
        # Recurrent layers carry h (and c) between batches: the master's are
        # cast into the twin before each step and back after it (None stays None).
        self._recurrent: list[tuple[Any, Any, str]] = []  # (master layer, twin layer, name)
        for mine, theirs in zip(model.layers, twin.layers, strict=True):
            if getattr(mine, "stateful", False) and hasattr(mine, "reset_state"):
                self._recurrent += [(mine, theirs, a) for a in ("h", "c") if hasattr(mine, a)]
            if isinstance(mine, Dropout):
                self._dropouts.append((mine, theirs))
                self._hyper.append((mine, theirs, "dropout_ratio"))
            if isinstance(mine, BatchNormalization):
                self._hyper.append((mine, theirs, "momentum"))
            for name in type(mine).state_names:
                if isinstance(mine, BatchNormalization):
                    setattr(theirs, name, getattr(mine, name))
                    self._running.append(getattr(mine, name))
                else:
                    self._synced.append((getattr(mine, name), getattr(theirs, name)))
        self._running += [half for _, half in self._synced]  # copied back after the step

    def _state_to_twin(self) -> None:
        xp = self._xp
        for mine, theirs, name in self._recurrent:
            value = getattr(mine, name)
            setattr(theirs, name, None if value is None else xp.astype(value, self._compute))
        for master, half in self._synced:
            _into(half, xp.astype(master, half.dtype))
        for mine, theirs in self._dropouts:
            theirs.seed, theirs.draws = mine.seed, mine.draws
        for mine, theirs, name in self._hyper:  # a callback may change them between steps
            setattr(theirs, name, getattr(mine, name))

    def _state_to_master(self) -> None:
        xp = self._xp
        dtype = self._masters[0].dtype
        for mine, theirs, name in self._recurrent:
            value = getattr(theirs, name)
            setattr(mine, name, None if value is None else xp.astype(value, dtype))
        for master, half in self._synced:
            _into(master, xp.astype(half, master.dtype))
        for mine, theirs in self._dropouts:
            mine.draws = theirs.draws

    # --------------------------------------------------------------- a step

    def step(self, x: Any, t: Any, max_grad: float | None) -> Any:
        """Train on one batch: half forward and backward, float32 update.

        Args:
            x: Inputs ``(N, ...)``, any float dtype (cast to the compute dtype).
            t: Labels ``(N,)`` or one-hot ``(N, C)``.
            max_grad: Clip the global norm of the (unscaled) gradients to it.

        Returns:
            The batch loss, a 0-d float32 array (not scaled).
        """
        # An overflow of a loss-scaled step is expected: it is found and the
        # step skipped. NumPy would warn of it on the way.
        with ops(self._masters[0]).quiet():
            self._state_to_twin()
            try:
                return self._step(x, t, max_grad)
            finally:
                self._state_to_master()

    def _step(self, x: Any, t: Any, max_grad: float | None) -> Any:
        xp, twin = self._xp, self.twin
        for half, master in zip(self._halves, self._masters, strict=True):
            _into(half, xp.astype(master, half.dtype))
        if x.dtype != self._compute and xp.isdtype(x.dtype, "real floating"):
            x = xp.astype(x, self._compute)  # word ids stay integers
        scaler = self.scaler
        # A skipped step leaves the running statistics as they were, too.
        kept = [] if scaler is None else [xp.asarray(a, copy=True) for a in self._running]
        loss = twin.forward(x, t)
        scale = 1 if scaler is None else scaler.scale
        if self._layered_net:
            twin.backward(scale, input_grad=False)
        else:  # a language model (xpnn.models.rnnlm): its backward takes dout only
            twin.backward(scale)
        if scaler is None:
            for g32, g in zip(self._grads, self._scaled, strict=True):
                _into(g32, xp.astype(g, g32.dtype))
        else:
            finite = scaler.unscale(self._scaled, self._grads)
        if max_grad is not None:
            clip_grads(self._grads, max_grad)
        if scaler is None:
            self.optimizer.update(self.model.params, self.grads)
        else:
            self._update_unless_skipped(finite)
            for a, old in zip(self._running, kept, strict=True):
                _into(a, xp.where(finite, a, old))
            scaler.update(finite)
        return loss

    def _update_unless_skipped(self, finite: Any) -> None:
        """The optimizer's update where ``finite``, none elsewhere: on the device."""
        xp, optimizer = self._xp, self.optimizer
        names = optimizer._state_names
        if not names:  # a stateless update of a zero gradient leaves p as it was
            for g in self._grads:
                _into(g, xp.where(finite, g, 0.0))
            optimizer.update(self.model.params, self.grads)
            return
        states = [getattr(optimizer, name) for name in names]
        touched = list(self._masters)
        for state in states:
            if state is not None:
                touched += _arrays(state)[1]
        saved = [xp.asarray(a, copy=True) for a in touched]
        optimizer.update(self.model.params, self.grads)
        for a, old in zip(touched, saved, strict=True):
            _into(a, xp.where(finite, a, old))
        for before, name in zip(states, names, strict=True):
            if before is None:  # made by this update: a skipped one leaves them zero
                for a in _arrays(getattr(optimizer, name))[1]:
                    _into(a, xp.where(finite, a, xp.zeros_like(a)))


def _made_of_layers(model: Any) -> bool:
    """Whether ``model`` is made of layers as a LayeredNet is, without being one.

    The language models of :mod:`xpnn.models.rnnlm`: ``layers``, ``config``
    and ``from_config`` (to build the half-precision twin), ``params`` and
    ``grads``.
    """
    return all(hasattr(model, a) for a in ("layers", "config", "params", "grads")) and callable(
        getattr(type(model), "from_config", None)
    )


def mixed_precision(precision: Any) -> MixedPrecision | None:
    """``Trainer.fit``'s ``precision`` argument as a :class:`MixedPrecision` (or None).

    Args:
        precision: None (compute in the model's dtype), ``"mixed16"``,
            ``"mixed_bf16"`` or a :class:`MixedPrecision`.
    """
    if precision is None or isinstance(precision, MixedPrecision):
        return precision
    if isinstance(precision, str) and precision in PRECISIONS:
        return MixedPrecision(PRECISIONS[precision])
    raise ValueError(
        f"precision must be None, {', '.join(map(repr, PRECISIONS))} or an "
        f"xpnn.MixedPrecision, got {precision!r:.80}"
    )

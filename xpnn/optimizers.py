"""The book's optimizers: SGD, Momentum, Nesterov, AdaGrad, RMSprop and Adam.

``Nesterov`` is vol. 1's (corrected) code; vol. 2's differs and is
``NesterovVol2``. The others are the same in both volumes.

The algorithms are exactly those of *Deep Learning from Scratch* (vol. 1,
``common/optimizer.py``, ch. 6; vol. 2, ``common/optimizer.py``), with the
book's hyper-parameter defaults and its ``1e-7`` in the denominators.

Every optimizer has the book's contract ``update(params, grads)``: ``params``
and ``grads`` are either two lists (vol. 2: a layer's or model's ``params`` and
``grads``) or two dicts with the same keys (vol. 1: ``TwoLayerNet.params`` and
the dict returned by ``TwoLayerNet.gradient``), holding arrays of equal
shapes. Parameters are updated *in place* (``p -= ...``), so the layers that
hold the same arrays see the new values; gradients are only read.

Optimizer state (the book's ``v``, ``h``, ``m``) is created on the first
update with ``xp.zeros_like(p)``, so it lives on the parameter's backend and
device in its dtype, and it is keyed like ``params`` (a list or a dict). The
namespace ``xp`` comes from the arrays; hyper-parameters are Python floats, so
a float32 parameter stays float32 and nothing is ever copied to the host.

Example::

    from xpnn.optimizers import Adam

    net = xpnn.TwoLayerNet(784, 50, 10)
    optimizer = Adam()
    for x, t in batches:
        optimizer.update(net.params, net.gradient(x, t))

Checkpoints: :meth:`Optimizer.state_dict` returns the hyper-parameters, the
iteration counter and copies of the state arrays (still on their device; the
caller converts them, e.g. with :func:`xpnn.to_numpy`), and
:meth:`Optimizer.load_state_dict` takes them back (put the arrays on the
parameters' backend first, e.g. with :func:`xpnn.asarray`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from xpnn.backend import (
    adam_moments,
    divide_step,
    get_namespace,
    note_selection_unused,
    ops,
    to_numpy,
)

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "AdaGrad",
    "Adam",
    "Momentum",
    "Nesterov",
    "NesterovVol2",
    "Optimizer",
    "RMSprop",
    "get_optimizer",
]

#: The book's small constant that keeps AdaGrad, RMSprop and Adam from dividing by 0.
EPS = 1e-7

#: Parameters and gradients: two lists or two dicts of arrays.
Params = Sequence[Any] | Mapping[Any, Any]


def _hyper(name: str, value: Any, *, unit_interval: bool) -> float:
    """Check a hyper-parameter and return it as a Python float.

    ``unit_interval``: must lie in [0, 1) (momentum, betas, decay rate);
    otherwise it must be finite and > 0 (learning rate).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a Python number (a float, not an array), "
            f"got {type(value).__name__} {value!r}"
        )
    value = float(value)
    if unit_interval:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    elif not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _keys(params: Params, grads: Params) -> list[Any]:
    """The keys of ``params`` (indices of a list) after checking ``grads`` matches."""
    if isinstance(params, Mapping) and isinstance(grads, Mapping):
        if params.keys() != grads.keys():
            missing = [k for k in params if k not in grads]
            extra = [k for k in grads if k not in params]
            raise ValueError(
                "params and grads have different keys: "
                f"missing in grads: {missing}, not in params: {extra}"
            )
        return list(params)
    if isinstance(params, (list, tuple)) and isinstance(grads, (list, tuple)):
        if len(params) != len(grads):
            raise ValueError(
                f"params has {len(params)} arrays but grads has {len(grads)}; "
                "they must correspond one to one"
            )
        return list(range(len(params)))
    raise TypeError(
        "params and grads must be two lists or two dicts of arrays, got "
        f"{type(params).__name__} and {type(grads).__name__}"
    )


def _is_number(value: Any) -> bool:
    """A Python int or float (not a bool, not an array or NumPy scalar)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and not hasattr(value, "shape")
    )


def _all_numbers(params: Params, grads: Params, keys: list[Any]) -> bool:
    """Whether the parameters are Python numbers (all of them; mixing is refused)."""
    kinds = [_is_number(params[k]) for k in keys]
    if not any(kinds):
        return False
    if not all(kinds):
        number, array = keys[kinds.index(True)], keys[kinds.index(False)]
        raise TypeError(
            f"params[{number!r}] is a Python number but params[{array!r}] is "
            f"{type(params[array]).__name__}: give all parameters as arrays, or all as numbers"
        )
    for k in keys:
        if not _is_number(grads[k]):
            raise TypeError(
                f"params[{k!r}] is a Python number, so grads[{k!r}] must be one too, got "
                f"{type(grads[k]).__name__}"
            )
    return True


def _keyed_like(state: Any, params: Params) -> bool:
    """Whether a state container has the kind (list or dict) and keys of ``params``."""
    if isinstance(params, Mapping):
        return isinstance(state, Mapping) and state.keys() == params.keys()
    return not isinstance(state, Mapping) and len(state) == len(params)


def _check_like(what: str, a: Any, p: Any, key: Any) -> None:
    """``a`` (a gradient or a state array) must match ``params[key]`` in shape and dtype."""
    if tuple(a.shape) != tuple(p.shape):
        raise ValueError(
            f"{what}[{key!r}] has shape {tuple(a.shape)} but params[{key!r}] "
            f"has shape {tuple(p.shape)}"
        )
    if a.dtype != p.dtype:
        raise ValueError(
            f"{what}[{key!r}] has dtype {a.dtype} but params[{key!r}] has dtype {p.dtype}"
        )


def _copy(container: Any) -> Any:
    """Copy a list or dict of arrays, each on its own device (no host transfer)."""
    if container is None:
        return None
    if isinstance(container, Mapping):
        return {k: get_namespace(a).asarray(a, copy=True) for k, a in container.items()}
    return [get_namespace(a).asarray(a, copy=True) for a in container]


def _divide_step(xp: Any, p: Any, lr: float, numer: Any, square: Any, cache: dict) -> None:
    """``p -= lr * numer / (sqrt(square) + 1e-7)`` into the optimizer's scratch ``cache``.

    Evaluated in the book's order, so the result is the book's to the last bit
    (:func:`xpnn.backend.optimizer_ops.divide_step`).
    """
    divide_step(ops(p), p, lr, numer, square, EPS, cache)


def _signature(params: Params, grads: Params, keys: list[Any], states: list[Any]) -> list[Any]:
    """Identity, shape and dtype of everything an update reads (cheap to compare)."""
    sig: list[Any] = [(id(params[k]), id(grads[k]), params[k].shape, grads[k].shape) for k in keys]
    sig += [(id(p), params[k].dtype, grads[k].dtype) for k in keys for p in [params[k]]]
    return sig + [id(state) for state in states]


class Optimizer:
    """Base class: the shared ``update`` contract, lazy state and checkpoints.

    A subclass names its hyper-parameters in ``_hyper_names`` (``lr`` first),
    its state arrays in ``_state_names`` (the book's attribute names), and
    implements :meth:`_apply` for one parameter.

    Attributes:
        lr: The learning rate (a Python float; may be changed between updates,
            e.g. ``optimizer.lr /= 4``).
        iter: The number of updates done so far.
    """

    _hyper_names: tuple[str, ...] = ("lr",)
    _state_names: tuple[str, ...] = ()
    #: The update uses only the arrays and the hyper-parameters, so a recorded
    #: CUDA graph of it can be replayed (``Trainer.fit(cuda_graph=True)``).
    graph_safe = True

    def __init__(self, lr: float) -> None:
        self.lr = _hyper("lr", lr, unit_interval=False)
        self.iter = 0
        self._checked: list[Any] | None = None  # what the last update validated
        self._checked_objects: Any = None
        self._namespaces: list[Any] = []
        # Scratch arrays of the updates, one pair per shape and dtype, shared by the
        # parameters (not state: never saved).
        self._cache: dict = {}
        for name in self._state_names:
            setattr(self, name, None)

    @staticmethod
    def _check_hyper(name: str, value: Any) -> float:
        return _hyper(name, value, unit_interval=name != "lr")

    def update(self, params: Params, grads: Params) -> None:
        """Update every ``params[k]`` in place from ``grads[k]``.

        Args:
            params: A list of arrays (vol. 2) or a dict ``{name: array}``
                (vol. 1); each array ``(...)`` is modified in place.
            grads: The gradients, a list or dict like ``params``: same length
                or keys, same shapes and dtypes, same backend and device. Only
                read.

        Raises:
            TypeError: ``params``/``grads`` are not both lists or both dicts,
                or a parameter is not floating point.
            ValueError: Their lengths, keys, shapes or dtypes differ, or the
                optimizer's state was made for other parameters.
            xpnn.BackendMismatchError: Arrays of one key live on different
                backends or devices.

        Python numbers as parameters (the book's ch. 6
        ``optimizer_compare_naive.py`` keeps ``params = {"x": -7.0, "y":
        2.0}``): when every parameter is one, each is updated as a 0-d float64
        NumPy array (the same update, on the host, as the numbers are) and
        ``params[k]`` is then bound to a new Python float, as the book's
        ``params[key] -= ...`` rebinds it, so a list that kept the old values
        keeps them. The gradients must be numbers too.

        Nothing is modified when an error is raised.
        """
        keys = _keys(params, grads)
        if _all_numbers(params, grads, keys):
            self._update_numbers(params, grads, keys)
            return
        if keys:
            note_selection_unused(params[keys[0]])
        self._update_arrays(params, grads, keys)

    def _update_arrays(self, params: Params, grads: Params, keys: list[Any]) -> None:
        """:meth:`update` of arrays: checked once for a set of arrays, then the fast path."""
        states = [getattr(self, name) for name in self._state_names]
        # The same arrays as last time (the usual case: a training loop updates
        # the same parameters in place) were checked then; skip the checks.
        signature = _signature(params, grads, keys, states)
        if signature == self._checked:
            self.iter += 1
            for key, xp in zip(keys, self._namespaces, strict=True):
                self._apply(xp, params[key], grads[key], *(state[key] for state in states))
            return
        namespaces = []
        for key in keys:
            p, g = params[key], grads[key]
            xp = get_namespace(p, g)  # one backend and device, before comparing dtypes
            _check_like("grads", g, p, key)
            if not xp.isdtype(p.dtype, "real floating"):
                raise TypeError(
                    f"params[{key!r}] has dtype {p.dtype}; optimizers update "
                    "floating-point parameters"
                )
            namespaces.append(xp)
        for name, state in zip(self._state_names, states, strict=True):
            if state is None:
                continue
            if not _keyed_like(state, params):
                raise ValueError(
                    f"{type(self).__name__}.{name} was created for other parameters "
                    f"({_describe(state)}) than these ({_describe(params)}); "
                    "use one optimizer per set of parameters"
                )
            for key in keys:
                get_namespace(params[key], state[key])  # same backend and device
                _check_like(f"{type(self).__name__}.{name}", state[key], params[key], key)
        for i, name in enumerate(self._state_names):
            if states[i] is None:  # the book's lazy `if self.v is None: ... zeros_like`
                zeros = [xp.zeros_like(params[k]) for k, xp in zip(keys, namespaces, strict=True)]
                if isinstance(params, Mapping):
                    zeros = dict(zip(keys, zeros, strict=True))
                states[i] = zeros
                setattr(self, name, zeros)
        self.iter += 1
        for key, xp in zip(keys, namespaces, strict=True):
            self._apply(xp, params[key], grads[key], *(state[key] for state in states))
        self._checked = _signature(params, grads, keys, states)
        # The signature holds ids: keep those objects alive, or new arrays could
        # reuse an id and pass for the ones checked.
        self._checked_objects = ([params[k] for k in keys], [grads[k] for k in keys], states)
        self._namespaces = namespaces

    def _update_numbers(self, params: Params, grads: Params, keys: list[Any]) -> None:
        """:meth:`update` of Python numbers: on new 0-d float64 host arrays, then rebound."""
        boxed = [to_numpy(float(params[k])) for k in keys]  # new arrays: the numbers stay
        steps = [to_numpy(float(grads[k])) for k in keys]
        if isinstance(params, Mapping):
            boxed_params = dict(zip(keys, boxed, strict=True))
            self._update_arrays(boxed_params, dict(zip(keys, steps, strict=True)), keys)
        else:
            self._update_arrays(boxed, steps, keys)
        for k, value in zip(keys, boxed, strict=True):
            params[k] = float(value)

    def _apply(self, xp: Any, p: Any, g: Any, *state: Any) -> None:  # pragma: no cover
        """Update one parameter ``p`` in place from ``g`` and its state arrays."""
        raise NotImplementedError

    # ------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: hyper-parameters, counter and state.

        Returns:
            ``{"optimizer": class name, "hyperparams": {name: float},
            "iter": int, "state": {name: list or dict of arrays, or None}}``.
            The arrays are copies (a snapshot: later updates do not change
            them) on the parameters' backend and device; convert them for
            storage yourself, e.g. with :func:`xpnn.to_numpy`.
        """
        return {
            "optimizer": type(self).__name__,
            "hyperparams": {name: getattr(self, name) for name in self._hyper_names},
            "iter": self.iter,
            "state": {name: _copy(getattr(self, name)) for name in self._state_names},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, to resume training.

        The arrays are copied (the caller's arrays are not updated later); put
        them on the parameters' backend and device first (e.g. with
        :func:`xpnn.asarray`, keeping their dtype): the next :meth:`update`
        checks that their keys, shapes, dtypes and device match the parameters.

        Raises:
            ValueError: ``state`` is of another optimizer, lacks or has
                unknown entries, or has bad values.
            TypeError: A hyper-parameter or ``iter`` is not a Python number,
                or a state entry is not a list or dict of arrays.

        Nothing is changed when an error is raised.
        """
        hyper, count = self.check_state_dict(state)
        arrays = state["state"]
        copies = {name: _copy(arrays[name]) for name in self._state_names}  # may raise
        for name, value in hyper.items():
            setattr(self, name, value)
        self.iter = count
        for name, value in copies.items():
            setattr(self, name, value)

    def check_state_dict(self, state: Mapping[str, Any]) -> tuple[dict[str, float], int]:
        """Check what :meth:`load_state_dict` would load, changing nothing.

        Checkpoint readers call it before they change anything else, so that
        a state this optimizer would refuse is refused first. The state
        arrays may still be on the host: only the containers are checked.

        Returns:
            The checked hyper-parameters ``{name: float}`` and ``iter`` (int).

        Raises:
            ValueError, TypeError: As :meth:`load_state_dict`.
        """
        kind = type(self).__name__
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        expected = {"optimizer", "hyperparams", "iter", "state"}
        if set(state) != expected:
            raise ValueError(
                f"state must have exactly the keys {sorted(expected)}, got {list(state)}"
            )
        if state["optimizer"] != kind:
            raise ValueError(f"state is of optimizer {state['optimizer']!r}, not {kind!r}")
        hyper = state["hyperparams"]
        if not isinstance(hyper, Mapping) or set(hyper) != set(self._hyper_names):
            raise ValueError(
                f"{kind} hyperparams must have exactly the keys {list(self._hyper_names)}, "
                f"got {hyper!r}"
            )
        hyper = {name: self._check_hyper(name, hyper[name]) for name in self._hyper_names}
        count = state["iter"]
        if isinstance(count, bool) or not isinstance(count, numbers.Integral):
            raise TypeError(f"iter must be a Python int, got {type(count).__name__} {count!r}")
        if count < 0:
            raise ValueError(f"iter must be >= 0, got {count!r}")
        arrays = state["state"]
        if not isinstance(arrays, Mapping) or set(arrays) != set(self._state_names):
            raise ValueError(
                f"{kind} state must have exactly the entries {list(self._state_names)}, "
                f"got {list(arrays) if isinstance(arrays, Mapping) else arrays!r}"
            )
        present = [arrays[name] for name in self._state_names if arrays[name] is not None]
        for entry in present:
            if not isinstance(entry, (Mapping, list, tuple)):
                raise TypeError(
                    f"{kind} state entries must be lists or dicts of arrays (or None), "
                    f"got {type(entry).__name__}"
                )
        if present and any(_describe(e) != _describe(present[0]) for e in present[1:]):
            raise ValueError(
                f"{kind} state entries must all be keyed alike (or all None), got "
                + ", ".join(f"{n}: {_describe(arrays[n])}" for n in self._state_names)
            )
        return hyper, int(count)

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._hyper_names)
        return f"{type(self).__name__}({args})"


def _describe(container: Any) -> str:
    """'None', 'a list of 4' or 'a dict with keys [...]', for error messages."""
    if container is None:
        return "None"
    if isinstance(container, Mapping):
        return f"a dict with keys {sorted(map(str, container))}"
    return f"a list of {len(container)}"


class SGD(Optimizer):
    """Stochastic gradient descent (vol. 1, 6.1.2).

    Update, for every parameter ``p`` and its gradient ``g`` (any shape)::

        p -= lr * g

    Args:
        lr: Learning rate, > 0.
    """

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)
        self._scratch: dict[int, Any] = {}  # lr * g buffers (NumPy/CuPy), one per parameter

    def _apply(self, xp: Any, p: Any, g: Any) -> None:
        # p -= lr * g, with lr * g written into a buffer kept for the next step
        # (a parameter-sized temporary each step is what makes NumPy slow here).
        k = ops(p)
        tmp = self._scratch.get(id(p))
        if tmp is None or tmp.shape != p.shape or tmp.dtype != p.dtype:
            tmp = k.buffer(self._scratch, id(p), tuple(p.shape), p.dtype, p)
        k.subtract_scaled(p, g, self.lr, scratch=tmp)


class Momentum(Optimizer):
    """SGD with momentum (vol. 1, 6.1.4).

    Update, with a velocity ``v`` of ``p``'s shape that starts at zero::

        v = momentum * v - lr * g
        p += v

    While ``lr`` stays the same this is ``torch.optim.SGD(lr=lr,
    momentum=momentum)`` (``v`` is ``-lr`` times its momentum buffer). If
    ``lr`` changes, torch rescales the whole velocity; here only the new
    gradients get the new ``lr``.

    Args:
        lr: Learning rate, > 0.
        momentum: Fraction of the velocity kept per step, in [0, 1).

    Attributes:
        v: The velocities, keyed like ``params`` (None before the first update).
    """

    _hyper_names = ("lr", "momentum")
    _state_names = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = self._check_hyper("momentum", momentum)

    def _apply(self, xp: Any, p: Any, g: Any, v: Any) -> None:
        v *= self.momentum
        v -= self.lr * g
        p += v


class Nesterov(Momentum):
    """Nesterov's accelerated gradient, as vol. 1's ``common/optimizer.py`` has it.

    Update, with a velocity ``v`` of ``p``'s shape that starts at zero::

        p += momentum * momentum * v
        p -= (1 + momentum) * lr * g
        v = momentum * v - lr * g

    This is vol. 1's code as corrected upstream in 2021 ("Fix Nesterov update
    function"): ``p`` moves with the velocity from *before* this update. It
    is ``torch.optim.SGD(lr=lr, momentum=momentum, nesterov=True)`` while
    ``lr`` stays the same (``v`` is ``-lr`` times torch's momentum buffer):
    the first step moves ``-(1 + momentum) * lr * g``.

    Vol. 2's ``common/optimizer.py`` updates ``v`` first and moves ``p`` with
    the new one; that form is :class:`NesterovVol2` (a vol. 2 port imports
    ``from xpnn.optimizers import NesterovVol2 as Nesterov``).

    Args:
        lr: Learning rate, > 0.
        momentum: Fraction of the velocity kept per step, in [0, 1).

    Attributes:
        v: The velocities, keyed like ``params`` (None before the first update).
    """

    def _apply(self, xp: Any, p: Any, g: Any, v: Any) -> None:
        p += self.momentum * self.momentum * v
        p -= (1 + self.momentum) * self.lr * g
        v *= self.momentum
        v -= self.lr * g


class NesterovVol2(Nesterov):
    """Nesterov's accelerated gradient as vol. 2's ``common/optimizer.py`` writes it.

    Update, with a velocity ``v`` of ``p``'s shape that starts at zero::

        v = momentum * v - lr * g
        p += momentum * momentum * v
        p -= (1 + momentum) * lr * g

    Unlike :class:`Nesterov` (vol. 1's corrected code, and torch's
    ``SGD(nesterov=True)``), ``p`` moves with the velocity *after* this
    update: the first step moves ``-(1 + mu + mu**2) * lr * g`` where
    :class:`Nesterov` moves ``-(1 + mu) * lr * g``, and after any number of
    steps with the same gradients (and a constant ``lr``) ``p_vol2 =
    p_vol1 + mu**2 * v``. Its checkpoints name ``"NesterovVol2"``, so they
    load only into this class.

    Args:
        lr: Learning rate, > 0.
        momentum: Fraction of the velocity kept per step, in [0, 1).

    Attributes:
        v: The velocities, keyed like ``params`` (None before the first update).
    """

    def _apply(self, xp: Any, p: Any, g: Any, v: Any) -> None:
        v *= self.momentum
        v -= self.lr * g
        p += self.momentum * self.momentum * v
        p -= (1 + self.momentum) * self.lr * g


class AdaGrad(Optimizer):
    """AdaGrad (vol. 1, 6.1.5): a learning rate per element that decays.

    Update, with a sum of squared gradients ``h`` of ``p``'s shape from zero::

        h += g * g
        p -= lr * g / (sqrt(h) + 1e-7)

    This is ``torch.optim.Adagrad(lr=lr, eps=1e-7)``.

    Args:
        lr: Learning rate, > 0.

    Attributes:
        h: The sums of squared gradients, keyed like ``params``.
    """

    _state_names = ("h",)

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _apply(self, xp: Any, p: Any, g: Any, h: Any) -> None:
        h += g * g
        _divide_step(xp, p, self.lr, g, h, self._cache)


class RMSprop(Optimizer):
    """RMSprop: AdaGrad with an exponentially decaying sum (vol. 1 code).

    Update, with a running mean of squared gradients ``h`` from zero::

        h = decay_rate * h + (1 - decay_rate) * g * g
        p -= lr * g / (sqrt(h) + 1e-7)

    This is ``torch.optim.RMSprop(lr=lr, alpha=decay_rate, eps=1e-7)``.

    Args:
        lr: Learning rate, > 0.
        decay_rate: Fraction of ``h`` kept per step, in [0, 1).

    Attributes:
        h: The running means of squared gradients, keyed like ``params``.
    """

    _hyper_names = ("lr", "decay_rate")
    _state_names = ("h",)

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99) -> None:
        super().__init__(lr)
        self.decay_rate = self._check_hyper("decay_rate", decay_rate)

    def _apply(self, xp: Any, p: Any, g: Any, h: Any) -> None:
        h *= self.decay_rate
        square = (1 - self.decay_rate) * g
        square *= g
        h += square
        _divide_step(xp, p, self.lr, g, h, self._cache)


class Adam(Optimizer):
    """Adam (Kingma & Ba), in the book's form (vol. 1 and vol. 2 code).

    Update number ``t = iter`` (1, 2, ...), with moments ``m`` and ``v`` of
    ``p``'s shape from zero; the bias correction is folded into ``lr_t``::

        lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)
        m += (1 - beta1) * (g - m)
        v += (1 - beta2) * (g**2 - v)
        p -= lr_t * m / (sqrt(v) + 1e-7)

    This is the book's formula, kept as it is, and *not* the one of
    ``torch.optim.Adam``: the moments are the same, but the book adds its
    ``1e-7`` to ``sqrt(v)`` before the bias correction, torch adds its
    ``eps`` (default 1e-8) to ``sqrt(v / (1 - beta2**t))``. Update ``t`` here
    is exactly update ``t`` of ``torch.optim.Adam(lr, (beta1, beta2),
    eps=1e-7 / sqrt(1 - beta2**t))``: an effective eps that starts larger
    (3.2e-6 at t = 1 for beta2 = 0.999) and shrinks to 1e-7. The two agree
    closely while gradients are much larger than eps and differ where they
    are not.

    Args:
        lr: Learning rate, > 0.
        beta1: Decay of the first moment ``m``, in [0, 1).
        beta2: Decay of the second moment ``v``, in [0, 1).

    Attributes:
        m, v: The first and second moments, keyed like ``params``.
    """

    _hyper_names = ("lr", "beta1", "beta2")
    _state_names = ("m", "v")
    graph_safe = False  # lr_t depends on the update count, which a graph would freeze

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__(lr)
        self.beta1 = self._check_hyper("beta1", beta1)
        self.beta2 = self._check_hyper("beta2", beta2)

    def _apply(self, xp: Any, p: Any, g: Any, m: Any, v: Any) -> None:
        t = self.iter
        lr_t = self.lr * math.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)
        # m += (1 - beta1) * (g - m); v += (1 - beta2) * (g**2 - v), into scratch arrays
        adam_moments(ops(p), g, m, v, self.beta1, self.beta2, self._cache)
        _divide_step(xp, p, lr_t, m, v, self._cache)


#: The optimizers by the book's lower-case names (vol. 1, ``common/trainer.py``):
#: what ``get_optimizer`` and ``Trainer(..., optimizer="adam")`` take
#: (``"nesterov"`` is vol. 1's :class:`Nesterov`; :class:`NesterovVol2` has no name).
OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def get_optimizer(name: str, **params: Any) -> Optimizer:
    """An optimizer by name, as the book's ch. 6 ``Trainer`` makes it.

    Example: ``get_optimizer("Adam", lr=0.001)`` is ``Adam(lr=0.001)``.

    Args:
        name: One of :data:`OPTIMIZERS` (``"sgd"``, ``"momentum"``,
            ``"nesterov"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``), in
            any case (``"SGD"``, ``"AdaGrad"``).
        **params: The optimizer's hyper-parameters (``lr``, ``momentum``...).

    Returns:
        A new optimizer.

    Raises:
        ValueError: An unknown name (the message lists the names), or a
            hyper-parameter out of range (the optimizer's own error).
        TypeError: ``name`` is not a string, a hyper-parameter the optimizer
            does not have, or one that is not a number.
    """
    if not isinstance(name, str):
        raise TypeError(f"the optimizer name must be a string, got {type(name).__name__} {name!r}")
    cls = OPTIMIZERS.get(name.lower())
    if cls is None:
        raise ValueError(
            f"unknown optimizer {name!r}; the names are {', '.join(map(repr, OPTIMIZERS))} "
            "(in any case)"
        )
    try:
        return cls(**params)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        import inspect

        accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
        unknown = sorted(set(params) - set(accepted))
        raise TypeError(
            f"{cls.__name__} has no hyper-parameter {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(map(repr, accepted))}"
        ) from None

"""MultiLayerNet's constructor arguments, checked, and the arrays they make.

:func:`_settings` checks and normalises the arguments of
:class:`~xpnn.models.multilayer.MultiLayerNet` and
:class:`~xpnn.models.multilayer.MultiLayerNetExtend` (what their ``config``
records) before anything is allocated, and :func:`multilayer_shapes` gives
the names and shapes of the arrays a net of those settings holds, so a saved
file is checked against them without building the net. A config read from a
file goes through the same checks.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from xpnn.layers import Relu, Sigmoid
from xpnn.layers.base import _check_config_keys
from xpnn.models.weight_init import _init_std

__all__ = ["multilayer_shapes"]

#: activation names -> layer classes (the book's ``activation_layer``).
_ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid}
#: Seeds (the net's and the Dropout layers') are ints in [0, 2**63), as Dropout takes.
_SEED_LIMIT = 2**63


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r:.80}")
    return int(value)


def _number(value: Any, name: str, low: float, high: float, what: str) -> float | int:
    """A real number in ``[low, high)`` (an int stays an int: the config keeps it)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not low <= float(value) < high:  # NaN fails too
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _decay(value: Any) -> float | int:
    return _number(
        value, "weight_decay_lambda", 0.0, math.inf, "a finite number >= 0 (0: no weight decay)"
    )


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r:.80}")
    return bool(value)


def _settings(who: str, extended: bool, **given: Any) -> dict[str, Any]:
    """The constructor's arguments checked and normalised (what ``config`` records).

    Raises:
        ValueError: A size, name or number out of range (the message names
            the argument).
        TypeError: An argument of the wrong type.
    """
    s: dict[str, Any] = {}
    try:
        s["input_size"] = _positive_int(given["input_size"], "input_size")
        hidden = given["hidden_size_list"]
        if (
            not isinstance(hidden, (list, tuple))
            or not hidden
            or any(
                isinstance(h, bool) or not isinstance(h, numbers.Integral) or h <= 0 for h in hidden
            )
        ):
            raise ValueError(
                "hidden_size_list must be a non-empty list of positive ints (the units of each "
                f"hidden layer, e.g. [100, 100, 100]), got {hidden!r:.80}"
            )
        s["hidden_size_list"] = [int(h) for h in hidden]
        s["output_size"] = _positive_int(given["output_size"], "output_size")
        activation = given["activation"]
        if not isinstance(activation, str) or activation.lower() not in _ACTIVATIONS:
            raise ValueError(f"activation must be 'relu' or 'sigmoid', got {activation!r:.80}")
        s["activation"] = activation.lower()
        s["weight_init_std"] = _init_std(given["weight_init_std"])
        s["weight_decay_lambda"] = _decay(given["weight_decay_lambda"])
        if extended:
            s["use_dropout"] = _flag(given["use_dropout"], "use_dropout")
            s["dropout_ration"] = _number(
                given["dropout_ration"], "dropout_ration", 0.0, 1.0, "in [0, 1)"
            )
            s["use_batchnorm"] = _flag(given["use_batchnorm"], "use_batchnorm")
        seed = given["seed"]
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
            if not 0 <= seed < _SEED_LIMIT:
                raise ValueError(f"seed must be in 0 <= seed < 2**63, got {seed}")
            seed = int(seed)
        s["seed"] = seed
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{who}: {exc}") from None
    return s


def _config_keys(extended: bool) -> list[str]:
    """The keys of a config: the constructor's arguments but ``dtype``."""
    keys = [
        "input_size",
        "hidden_size_list",
        "output_size",
        "activation",
        "weight_init_std",
        "weight_decay_lambda",
        "seed",
    ]
    return keys + (["use_dropout", "dropout_ration", "use_batchnorm"] if extended else [])


def _checked_config(who: str, extended: bool, config: Any) -> dict[str, Any]:
    """A config from a file checked as the constructor checks its arguments.

    Raises:
        ValueError: Not a dict of exactly the constructor's keys, or a value
            the constructor refuses (the message names the key).
    """
    _check_config_keys(who, config, _config_keys(extended))
    if config["seed"] is None:
        raise ValueError(f"{who} config 'seed' must be an int, got None")
    try:
        return _settings(f"{who} config", extended, **config)
    except TypeError as exc:  # from a file: a ValueError, as for every layer
        raise ValueError(str(exc)) from None


def multilayer_shapes(s: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The names and shapes of the arrays a net of settings ``s`` saves.

    ``s`` as :func:`_settings` returns it. ``W1``, ``b1``, ... by the book's
    keys, and with BatchNormalization ``gamma1``, ``beta1``,
    ``running_mean1``, ``running_var1``, ... (hidden layer ``i``).
    """
    hidden = s["hidden_size_list"]
    sizes = [s["input_size"], *hidden, s["output_size"]]
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(1, len(sizes)):
        shapes[f"W{i}"] = (sizes[i - 1], sizes[i])
        shapes[f"b{i}"] = (sizes[i],)
    if s.get("use_batchnorm", False):
        for name in ("gamma", "beta", "running_mean", "running_var"):
            shapes.update({f"{name}{i}": (h,) for i, h in enumerate(hidden, 1)})
    return shapes

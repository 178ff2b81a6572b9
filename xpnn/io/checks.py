"""What :func:`~xpnn.io.save` and :func:`~xpnn.io.load` check in the values, on the host.

Both copy every array to the host anyway (``save`` to write it, ``load`` to
read it), so these checks cost a few passes over host memory and no device
round trip.

**Precision a narrower storage dtype loses.** ``save(net, path,
dtype="float16")`` rounds each value to float16, which stores magnitudes of
at most half its smallest subnormal (``2**-25``, about 2.98e-08) as 0 (the
tie at ``2**-25`` rounds to the even neighbour, 0) and magnitudes below its
smallest normal (``2**-14``, about 6.10e-05) as subnormal numbers, with
fewer significant bits (down to 1 for ``2**-24``). :func:`lost_values`
counts both in the rounded array itself, so the boundaries are exactly the
storage dtype's rounding for any pair of dtypes (float64 stored as float32
too: ``2**-150`` and ``2**-126``); the messages give them from
:func:`numpy.finfo` of the storage dtype. A model file never stores
bfloat16 (NumPy has none): a bfloat16 model arrives on the host as float32
(exact) and is checked as float32 stored in float16. Values too large for the
storage dtype are refused by ``save`` itself, before this. ``save`` warns
once (:class:`PrecisionLossWarning`) naming each array and its counts, or
with ``strict=True`` raises :class:`PrecisionLossError` before anything is
written.

**Constraints on layers' state arrays.** A variance cannot be negative: a
BatchNormalization whose ``running_var`` holds -1 predicts NaN (the square
root of a negative number). :data:`STATE_CONSTRAINTS` lists such constraints
by layer kind and state name; :func:`check_state_values` refuses a file
whose arrays break one (:class:`~xpnn.io.ModelFileError` naming the file,
the layer and the count) before the model is built. :func:`file_states`
finds the constrained arrays of a file from its model class and config
alone (no model built); :func:`model_states` those of a built model.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xpnn.io.npz import ModelFileError

__all__ = [
    "STATE_CONSTRAINTS",
    "PrecisionLossError",
    "PrecisionLossWarning",
    "check_state_values",
    "file_states",
    "lost_values",
    "model_states",
    "precision_loss_message",
    "warn_precision_loss",
]


class PrecisionLossWarning(UserWarning):
    """``save`` stored values of a narrower dtype as 0 or as subnormal numbers."""


class PrecisionLossError(ValueError):
    """``save(..., strict=True)`` refused to store values as 0 or as subnormal numbers."""


# --------------------------------------------------------------------------
# Precision lost in a narrower storage dtype
# --------------------------------------------------------------------------

#: Most arrays a precision-loss message names (the rest are counted).
_NAMED = 10


def lost_values(host: np.ndarray, stored: np.ndarray) -> tuple[int, int]:
    """How many values of ``host`` ``stored`` (its rounding) holds as 0, and as subnormal.

    Args:
        host: The values, as the model holds them (on the host).
        stored: ``host`` rounded to the storage dtype, same shape.

    Returns:
        ``(flushed, subnormal)``: nonzero values stored as 0, and values
        stored as nonzero subnormal numbers of the storage dtype. Both 0
        when the storage dtype is not narrower than ``host``'s (nothing is
        lost; nothing is counted either).
    """
    if stored.size == 0 or host.dtype == stored.dtype:
        return 0, 0
    normal = np.finfo(stored.dtype).smallest_normal
    if normal <= np.finfo(host.dtype).smallest_normal:
        return 0, 0  # as wide a range: every normal value stays normal
    zeros = int(np.count_nonzero(stored == 0))
    flushed = zeros - int(np.count_nonzero(host == 0))
    subnormal = int(np.count_nonzero(np.abs(stored) < normal)) - zeros
    return flushed, subnormal


def precision_loss_message(store: str, losses: Mapping[str, tuple[int, int, int]]) -> str:
    """What storing in ``store`` loses, array by array: the message of the warning or error.

    Args:
        store: The storage dtype's name (``"float16"``).
        losses: ``{name: (flushed, subnormal, size)}`` of the arrays that lose
            values (:func:`lost_values`), in file order.
    """
    info = np.finfo(store)
    flush = float(info.smallest_subnormal) / 2
    normal = float(info.smallest_normal) - flush
    parts = []
    for key, (flushed, subnormal, size) in list(losses.items())[:_NAMED]:
        counts = []
        if flushed:
            counts.append(f"{flushed} of {size} {'flush' if flushed > 1 else 'flushes'} to 0")
        if subnormal:
            what = "" if flushed else f" of {size}"
            counts.append(f"{subnormal}{what} {'become' if subnormal > 1 else 'becomes'} subnormal")
        parts.append(f"{key}: {', '.join(counts)}")
    if len(losses) > _NAMED:
        parts.append(f"and {len(losses) - _NAMED} more arrays")
    return (
        f"saving as {store} loses values ({store} stores |x| <= {flush:.2e} as 0, and "
        f"|x| < {normal:.2e} as subnormal numbers, with fewer significant bits): "
        + "; ".join(parts)
    )


def warn_precision_loss(message: str) -> None:
    """Warn :class:`PrecisionLossWarning`, pointing at the caller's ``save`` line."""
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("xpnn."):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, PrecisionLossWarning, stacklevel=level)


# --------------------------------------------------------------------------
# Constraints on layers' state arrays
# --------------------------------------------------------------------------


class _StateConstraints(Mapping):
    """The ``state_constraints`` the registered layer kinds declare, read from
    :data:`xpnn.layers.LAYERS` when asked (a layer registered later counts too)."""

    def _declared(self) -> dict[str, dict[str, str]]:
        from xpnn.layers import LAYERS

        return {k: dict(c.state_constraints) for k, c in LAYERS.items() if c.state_constraints}

    def __getitem__(self, kind: str) -> dict[str, str]:
        return self._declared()[kind]

    def __iter__(self) -> Any:
        return iter(self._declared())

    def __len__(self) -> int:
        return len(self._declared())


#: Constraints on layers' state arrays, by layer kind and state name, as each
#: layer class declares them (``Layer.state_constraints``, beside
#: ``state_names``), checked on the host before a model is built from a file
#: (``load``, ``load_params``) or a checkpoint is resumed. ``"non-negative"``:
#: no value below 0 (NaN is refused by the NaN check, unless ``allow_nonfinite``).
STATE_CONSTRAINTS: Mapping[str, dict[str, str]] = _StateConstraints()

#: Each rule: (count of the values that break it, what they are, why it matters).
_RULES = {
    "non-negative": (
        lambda a: int(np.count_nonzero(a < 0)),
        "negative",
        "a variance is never negative, and the layer would predict NaN",
    ),
}

#: Models that name their BatchNormalization arrays ``running_var1``, ... (hidden
#: layer ``i``) and record ``use_batchnorm`` and ``hidden_size_list`` in their config.
_HIDDEN_BATCHNORM = ("MultiLayerNet", "MultiLayerNetExtend")


def layered_states(kinds: Sequence[str]) -> dict[str, tuple[str, str, str]]:
    """The constrained arrays of layers of ``kinds``, named ``layers.<i>.<state>``.

    Returns:
        ``{array name: (the layer in words, its kind, the state name)}``.
    """
    return {
        f"layers.{i}.{state}": (f"layer {i} ({kind})", kind, state)
        for i, kind in enumerate(kinds)
        for state in STATE_CONSTRAINTS.get(kind, {})
    }


def file_states(model: str, config: Any) -> dict[str, tuple[str, str, str]]:
    """The constrained arrays of a file of ``model`` and ``config`` (checked), none built.

    A LayeredNet's config lists its layers' kinds; MultiLayerNet's and
    MultiLayerNetExtend's say whether each hidden layer has a
    BatchNormalization. The book's other models have no state arrays.
    """
    if not isinstance(config, Mapping):
        return {}
    if model in _HIDDEN_BATCHNORM:
        if not config.get("use_batchnorm"):
            return {}
        kind = "BatchNormalization"
        return {
            f"{state}{i}": (f"hidden layer {i}'s {kind}", kind, state)
            for i in range(1, len(config["hidden_size_list"]) + 1)
            for state in STATE_CONSTRAINTS[kind]
        }
    layers = config.get("layers")
    if model != "LayeredNet" or not isinstance(layers, list):
        return {}
    return layered_states([entry["kind"] for entry in layers])


def model_states(model: Any, named: Mapping[str, Any]) -> dict[str, tuple[str, str, str]]:
    """The constrained arrays among ``named`` (a built model's arrays by name), by identity.

    Any model whose ``layers`` hold the very arrays ``named`` gives (a
    LayeredNet and its subclasses; ``named`` may be ``_file_arrays(model)``
    or the state arrays a checkpoint keeps).
    """
    by_id = {id(a): key for key, a in named.items()}
    found = {}
    for i, layer in enumerate(getattr(model, "layers", None) or ()):
        kind = type(layer).__name__
        for state in STATE_CONSTRAINTS.get(kind, {}):
            key = by_id.get(id(getattr(layer, state, None)))
            if key is not None:
                found[key] = (f"layer {i} ({kind})", kind, state)
    return found


def check_state_values(
    source: str,
    located: Mapping[str, tuple[str, str, str]],
    host: Mapping[str, np.ndarray],
    prefix: str = "",
) -> None:
    """Refuse host arrays that break their layer's :data:`STATE_CONSTRAINTS`.

    Args:
        source: The file (or ``"arrays"``), first in the message.
        located: ``{array name: (layer in words, kind, state)}`` from
            :func:`file_states` or :func:`model_states`.
        host: The arrays by name (NumPy, as read); names not in it are skipped.
        prefix: Put before each array name in the message (``"extra/state/"``).

    Raises:
        ModelFileError: Naming the file, the array, the layer and the count.
    """
    for key, (layer, kind, state) in located.items():
        if key not in host:
            continue
        count, what, why = _RULES[STATE_CONSTRAINTS[kind][state]]
        bad = count(host[key])
        if bad:
            raise ModelFileError(
                f"{source}: {prefix}{key}, the {state} of {layer}, holds {bad} {what} "
                f"value{'s' if bad > 1 else ''} of {host[key].size}: {why}; the file was "
                "damaged or edited"
            )

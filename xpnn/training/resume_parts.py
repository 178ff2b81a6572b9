"""The parts of a checkpoint besides the position: checked before a resume changes anything.

:func:`xpnn.training.resume.resume_run` checks these against the fit that
resumes: the loss scaler's state (mixed precision), the learning-rate
schedule's state (:class:`xpnn.training.schedule.PerplexitySchedule`), the
hidden states of a language model's recurrent layers and the seeds and draws
of the Dropout layers and negative samplers. Each check raises
``ModelFileError`` naming the file and the field, and changes nothing.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from xpnn.training.events import FitState
from xpnn.training.model_state import HIDDEN_NAMES, recurrent_layers

__all__ = ["HIDDEN_PREFIX", "check_draws", "check_hidden", "check_scaler", "check_schedule"]

#: The hidden states a language model carries to its next batch
#: (:func:`xpnn.training.model_state.hidden_states`) are extra arrays named by
#: this prefix and ``layers.<i>.h`` (``.c``); one that is not there was None
#: (no batch yet, or a reset).
HIDDEN_PREFIX = "hidden/"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_scaler(path: Any, stored: Any, state: FitState) -> dict[str, Any] | None:
    """The checkpoint's loss scaler state, checked against this run's scaler."""
    from xpnn.io import ModelFileError

    scaler = None if state.precision is None else state.precision.scaler
    if scaler is None or stored is None:
        if (scaler is None) != (stored is None):  # the precision settings matched: damaged
            raise ModelFileError(
                f"{path}: progress field 'scaler' is {stored!r:.80} but this run "
                f"{'has no' if scaler is None else 'has a'} loss scaler; the checkpoint was "
                "damaged or edited"
            )
        return None
    try:
        scaler.check_state_dict(stored)
    except ValueError as exc:
        raise ModelFileError(
            f"{path}: progress field 'scaler': {exc}; the checkpoint was damaged or edited"
        ) from None
    return stored


def check_schedule(path: Any, stored: Any, state: FitState) -> dict[str, Any] | None:
    """The checkpoint's learning-rate schedule state, checked against this run's schedule."""
    from xpnn.io import ModelFileError

    schedule = state.schedule
    if schedule is None or stored is None:
        if (schedule is None) != (stored is None):
            raise ModelFileError(
                f"{path}: the checkpoint was written "
                f"{'with' if stored is not None else 'without'} a learning-rate schedule "
                f"(validation data), this fit {'has none' if schedule is None else 'has one'}; "
                "resume with the arguments of the original run"
            )
        return None
    try:
        schedule.check_state_dict(stored)
    except ValueError as exc:
        raise ModelFileError(
            f"{path}: progress field 'schedule': {exc}; the checkpoint was damaged or edited"
        ) from None
    return stored


def check_hidden(
    path: Any, stored: dict[str, np.ndarray], model: Any, batch_size: int
) -> dict[str, np.ndarray | None]:
    """The checkpoint's hidden states (host arrays) for each recurrent layer, None where unset.

    Each must name a state of one of the model's stateful recurrent layers
    (:func:`recurrent_layers`), be ``(batch_size, hidden_size)`` of the
    layer's dtype and finite; an LSTM's ``h`` and ``c`` come together.
    """
    from xpnn.io import ModelFileError
    from xpnn.io.checkpoints import _check_host_array

    layers = recurrent_layers(model)
    names = {
        f"{name}.{attr}": layer
        for name, layer in layers.items()
        for attr in HIDDEN_NAMES
        if hasattr(layer, attr)
    }
    given = {key[len(HIDDEN_PREFIX) :]: a for key, a in stored.items()}
    unknown = sorted(k for k in given if k not in names)
    if unknown:
        raise ModelFileError(
            f"{path}: hidden states {unknown} name no stateful recurrent layer of this "
            f"{type(model).__name__} (it has {sorted(names) or 'none'}); resume with the model "
            "of the run"
        )
    result: dict[str, np.ndarray | None] = {}
    for name, layer in layers.items():
        attrs = [a for a in HIDDEN_NAMES if hasattr(layer, a)]
        present = [a for a in attrs if f"{name}.{a}" in given]
        if present and len(present) != len(attrs):
            raise ModelFileError(
                f"{path}: {name} has hidden state {present} but not {attrs}; the checkpoint "
                "was damaged or edited"
            )
        like = SimpleNamespace(shape=(batch_size, _hidden_size(layer)), dtype=layer.params[0].dtype)
        for attr in attrs:
            host = given.get(f"{name}.{attr}")
            if host is not None:
                _check_host_array(
                    str(path),
                    f"extra/{HIDDEN_PREFIX}{name}.{attr}",
                    host,
                    like,
                    "create the model with",
                )
            result[f"{name}.{attr}"] = host
    return result


def check_draws(
    path: Any, field: str, stored: Any, items: list[Any], model: Any
) -> list[dict[str, int]]:
    """The checkpoint's seeds and draws of ``field``, one per item of ``model``.

    ``field`` is ``"dropout"`` (Dropout layers) or ``"samplers"`` (negative
    samplers). A checkpoint written before the field existed (None) fits a
    model without such items.
    """
    from xpnn.io import ModelFileError

    what = {"dropout": "Dropout layers", "samplers": "negative samplers"}[field]
    if stored is None:
        stored = []
    if not (
        isinstance(stored, list)
        and all(
            isinstance(e, dict)
            and set(e) == {"seed", "draws"}
            and _is_int(e["seed"])
            and 0 <= e["seed"] < 2**63
            and _is_int(e["draws"])
            and e["draws"] >= 0
            for e in stored
        )
    ):
        raise ModelFileError(
            f"{path}: progress field '{field}' must be a list of {{'seed': int, 'draws': int}} "
            f"(ints >= 0), got {stored!r:.200}; the checkpoint was damaged or edited"
        )
    if len(stored) != len(items):
        raise ModelFileError(
            f"{path}: the checkpoint records {len(stored)} {what}, this "
            f"{type(model).__name__} has {len(items)}; resume with the model of the run"
        )
    return stored


def _hidden_size(layer: Any) -> int:
    """A recurrent layer's ``hidden_size`` from its config (a method or a property)."""
    config = layer.config() if callable(layer.config) else layer.config
    return int(config["hidden_size"])

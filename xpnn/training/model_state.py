"""The arrays of a model a run keeps beside ``params``, and the arrays of a container.

A checkpoint holds the parameters and also the model's state arrays
(BatchNormalization's running statistics, :func:`model_state_arrays`) and each
Dropout layer's and negative sampler's seed and count of draws
(:func:`seeded_draws`); the
guard checks the state arrays are finite before a checkpoint is written. The
writer (:mod:`xpnn.training.checkpointer`), the resume
(:mod:`xpnn.training.resume`) and the guard (:mod:`xpnn.training.callbacks`)
read them from here, so none of them imports another for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xpnn.layers import Dropout

__all__ = [
    "HIDDEN_NAMES",
    "dropout_layers",
    "hidden_states",
    "model_state_arrays",
    "recurrent_layers",
    "samplers",
    "seeded_draws",
]

#: The carried state of a recurrent layer (``TimeRNN``, ``TimeGRU``: ``h``;
#: ``TimeLSTM``: ``h`` and ``c``), as the book's layers name it.
HIDDEN_NAMES = ("h", "c")


def _values(arrays: Any) -> list[Any]:
    """The arrays of a params/grads list or dict, in order."""
    return list(arrays.values()) if isinstance(arrays, Mapping) else list(arrays)


def model_state_arrays(model: Any) -> dict[str, Any]:
    """The model's arrays that are not parameters, by name (the very arrays).

    ``layers.<i>.<name>`` for each name in layer ``i``'s ``state_names``
    (BatchNormalization's ``running_mean`` and ``running_var``), as
    :meth:`xpnn.models.LayeredNet.named_arrays` names them; empty for a
    model without ``layers``. A checkpoint holds them: a resumed run goes
    on with the running statistics of the interrupted one.
    """
    arrays: dict[str, Any] = {}
    for i, layer in enumerate(getattr(model, "layers", ()) or ()):
        for name in getattr(type(layer), "state_names", ()):
            arrays[f"layers.{i}.{name}"] = getattr(layer, name)
    return arrays


def dropout_layers(model: Any) -> list[Any]:
    """The model's :class:`xpnn.layers.Dropout` layers, in ``model.layers`` order."""
    return [layer for layer in getattr(model, "layers", ()) or () if isinstance(layer, Dropout)]


def samplers(model: Any) -> list[Any]:
    """The model's negative samplers (vol. 2's CBOW and SkipGram: ``model.sampler``)."""
    sampler = getattr(model, "sampler", None)
    return [] if sampler is None or not hasattr(sampler, "draws") else [sampler]


def seeded_draws(model: Any) -> dict[str, list[Any]]:
    """What draws random numbers from a seed and a count, by checkpoint field.

    ``{"dropout": Dropout layers, "samplers": negative samplers}``: each has
    ``seed`` and ``draws``, and a checkpoint records both, so a resumed run
    draws the masks and negative samples the uninterrupted one would.
    """
    return {"dropout": dropout_layers(model), "samplers": samplers(model)}


def recurrent_layers(model: Any) -> dict[str, Any]:
    """The model's layers that carry a hidden state between forward passes, by name.

    ``layers.<i>`` for each layer of ``model.layers`` that is ``stateful``
    and has ``reset_state`` (the book's ``TimeRNN``, ``TimeLSTM``,
    ``TimeGRU`` in a language model). Truncated BPTT carries their ``h`` (and
    ``c``) from one batch to the next, so a checkpoint of an
    :class:`xpnn.training.RnnlmTrainer` run keeps them.
    """
    return {
        f"layers.{i}": layer
        for i, layer in enumerate(getattr(model, "layers", ()) or ())
        if getattr(layer, "stateful", False) and callable(getattr(layer, "reset_state", None))
    }


def hidden_states(model: Any) -> dict[str, Any]:
    """The hidden states the model carries now, by name (the very arrays).

    ``layers.<i>.h`` (and ``.c``) of each :func:`recurrent_layers` layer whose
    state is set; a state that is None (before the first batch, after
    ``reset_state``) is left out.
    """
    states: dict[str, Any] = {}
    for name, layer in recurrent_layers(model).items():
        for attr in HIDDEN_NAMES:
            value = getattr(layer, attr, None)
            if value is not None:
                states[f"{name}.{attr}"] = value
    return states

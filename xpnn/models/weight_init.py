"""How the book's networks start: the initial weights' scale and the Dropout seeds.

``weight_init_std`` of :class:`~xpnn.models.multilayer.MultiLayerNet` and
:class:`~xpnn.models.convnet.SimpleConvNet` is a name (He: ``'relu'`` or
``'he'``, ``sqrt(2 / fan_in)``; Xavier: ``'sigmoid'`` or ``'xavier'``,
``sqrt(1 / fan_in)``) or a positive number, as the book's ``weight_init_std``
(:func:`weight_init_scale`). The Dropout layers of those nets draw their
masks from seeds derived from the net's seed on the host (:func:`_dropout_seeds`),
so a seed gives the same weights and the same masks on every backend.
Vol. 2's recurrent models (language models, seq2seq) draw theirs by
:func:`draw_book_weights`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from xpnn.backend import zeros

__all__ = ["draw_book_weights", "weight_init_scale"]

#: weight_init_std names (case-insensitive) -> numerator of the variance (2 / n or 1 / n).
_INIT_NAMES = {"relu": 2.0, "he": 2.0, "sigmoid": 1.0, "xavier": 1.0}


def weight_init_scale(weight_init_std: Any, fan_in: int) -> float:
    """The standard deviation of a layer's initial weights, as the book picks it.

    Args:
        weight_init_std: ``'relu'`` or ``'he'`` (He: ``sqrt(2 / fan_in)``),
            ``'sigmoid'`` or ``'xavier'`` (Xavier: ``sqrt(1 / fan_in)``),
            case-insensitive; or a positive finite number, used as it is.
        fan_in: The layer's inputs (the previous layer's size), a positive int.

    Returns:
        The scale (a Python float).

    Raises:
        ValueError: Another name, a number that is not positive and finite,
            or ``fan_in`` not a positive int.
        TypeError: ``weight_init_std`` is neither a string nor a number.
    """
    if isinstance(fan_in, bool) or not isinstance(fan_in, numbers.Integral) or fan_in <= 0:
        raise ValueError(f"fan_in must be a positive int, got {fan_in!r:.80}")
    return _init_scale(_init_std(weight_init_std), int(fan_in))


def _init_std(value: Any) -> str | float:
    """A checked ``weight_init_std``: a lower-case name, or a positive finite float.

    Raises:
        ValueError, TypeError: As :func:`weight_init_scale`.
    """
    if isinstance(value, str):
        name = value.lower()
        if name not in _INIT_NAMES:
            raise ValueError(
                f"weight_init_std must be 'relu' or 'he' (He), 'sigmoid' or 'xavier' (Xavier), "
                f"or a positive number such as 0.01, got {value!r:.80}"
            )
        return name
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"weight_init_std must be a name ('relu', 'he', 'sigmoid', 'xavier') or a "
            f"positive number, got {type(value).__name__}"
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"weight_init_std must be a positive finite number, got {value!r}")
    return float(value)


def _init_scale(std: str | float, fan_in: int) -> float:
    return math.sqrt(_INIT_NAMES[std] / fan_in) if isinstance(std, str) else std


def _dropout_seeds(seed: int, count: int) -> list[int]:
    """The Dropout layers' seeds, derived from the net's on the host.

    A child of ``seed``'s :class:`numpy.random.SeedSequence` (spawn key 1),
    so they are unrelated to the weights' draws, and the same on every backend.
    """
    words = np.random.SeedSequence(seed, spawn_key=(1,)).generate_state(count, dtype=np.uint64)
    return [int(w) >> 1 for w in words]  # in [0, 2**63)


def draw_book_weights(shapes: dict[str, tuple[int, ...]], rng: Any, dtype: Any) -> dict[str, Any]:
    """Vol. 2's recurrent models' initial weights, drawn from ``rng`` in the order of ``shapes``.

    The book's recipe (``ch06/rnnlm.py``, ``ch07/seq2seq.py``): ``embed_W``
    ``randn / 100``, the biases (``rnn_b``, ``lstm_b``, ``affine_b``...) zeros,
    every other weight ``randn / sqrt(fan_in)`` (its first dimension).
    """
    arrays = {}
    for name, shape in shapes.items():
        if name.startswith(("rnn_b", "lstm_b", "affine_b")):
            arrays[name] = zeros(shape, dtype=dtype)
        else:
            scale = 100.0 if name == "embed_W" else math.sqrt(shape[0])
            arrays[name] = rng.standard_normal(shape, dtype=dtype) / scale
    return arrays

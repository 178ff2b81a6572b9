"""Search spaces: the distributions trials draw from, and each trial's seeds.

A space maps dotted targets to distributions::

    {"optimizer.lr": LogUniform(1e-6, 1e-2), "model.weight_decay_lambda": LogUniform(1e-8, 1e-4)}

(the book's, :data:`DEFAULT_SPACE`). The target's first part says where the
value goes: ``model.`` (a keyword of the model class), ``optimizer.`` (of the
optimizer) or ``fit.`` (of :meth:`xpnn.Trainer.fit`); a custom ``trial_fn``
may use any names.

Every trial draws its values, its model seed and its shuffling seed from
``numpy.random.SeedSequence(search_seed, spawn_key=(trial,))``, on the host,
so trial ``k`` of a search is the same trial whichever worker runs it, in
whatever order, and whether the search ran in one go or was resumed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_SPACE",
    "TARGETS",
    "Choice",
    "Distribution",
    "IntUniform",
    "LogUniform",
    "Uniform",
    "check_space",
    "describe_space",
    "sample_params",
    "trial_seeds",
]

#: Where a dotted target's value goes with the default trial function.
TARGETS = ("model", "optimizer", "fit")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class Distribution:
    """A one-dimensional distribution of a search space.

    Subclasses implement :meth:`sample` (one value drawn from a NumPy
    generator) and :meth:`describe` (a JSON-able dict that identifies the
    distribution: a results file records it, and a resumed search must have
    the same).
    """

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one value (a Python int, float or a JSON-able choice)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """``{"kind": class name, ...parameters}``, JSON-able."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Distribution) and self.describe() == other.describe()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "kind")
        return f"{type(self).__name__}({fields})"


class Uniform(Distribution):
    """Uniform floats in ``[low, high)``.

    Args:
        low: Finite, below ``high``.
        high: Finite, above ``low`` (excluded).
    """

    def __init__(self, low: float, high: float):
        self.low, self.high = _number(low, "low"), _number(high, "high")
        if not self.low < self.high:
            raise ValueError(f"{type(self).__name__} needs low < high, got {low!r}, {high!r}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def describe(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "low": self.low, "high": self.high}


class LogUniform(Uniform):
    """``10 ** U(log10 low, log10 high)``: the book's ``10 ** np.random.uniform(-6, -2)``.

    Args:
        low: Positive and finite (``1e-6`` for the book's learning rates).
        high: Finite, above ``low`` (``1e-2`` for the book's learning rates).
    """

    def __init__(self, low: float, high: float):
        super().__init__(low, high)
        if self.low <= 0:
            raise ValueError(f"LogUniform needs low > 0, got {low!r}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(10 ** rng.uniform(math.log10(self.low), math.log10(self.high)))


class IntUniform(Distribution):
    """Integers ``low, low + 1, ..., high`` (both included), equally likely.

    Args:
        low: The smallest integer.
        high: The largest integer (included), ``>= low``.
    """

    def __init__(self, low: int, high: int):
        for name, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"IntUniform's {name} must be an int, got {value!r}")
        if low > high:
            raise ValueError(f"IntUniform needs low <= high, got {low!r}, {high!r}")
        self.low, self.high = int(low), int(high)

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high, endpoint=True))

    def describe(self) -> dict[str, Any]:
        return {"kind": "IntUniform", "low": self.low, "high": self.high}


class Choice(Distribution):
    """One of ``values``, equally likely (e.g. ``Choice([50, 100, 200])``).

    Args:
        values: A non-empty sequence of JSON-able values (numbers, strings,
            booleans, None, or lists of them: ``[[100] * 3, [50] * 6]``).
    """

    def __init__(self, values: Sequence[Any]):
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"Choice needs a non-empty list of values, got {values!r}")
        import json

        try:
            self.values = json.loads(json.dumps(list(values), allow_nan=False))
        except (TypeError, ValueError):
            raise ValueError(
                f"Choice's values must be JSON-able (numbers, strings, lists), got {values!r}"
            ) from None

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def describe(self) -> dict[str, Any]:
        return {"kind": "Choice", "values": self.values}


#: The book's search (ch. 6, ``hyperparameter_optimization.py``): learning
#: rate 10^U(-6, -2) and weight decay 10^U(-8, -4).
DEFAULT_SPACE: dict[str, Distribution] = {
    "optimizer.lr": LogUniform(1e-6, 1e-2),
    "model.weight_decay_lambda": LogUniform(1e-8, 1e-4),
}


def check_space(space: Mapping[str, Any], *, targets: Sequence[str] | None = TARGETS) -> None:
    """Check a space: non-empty, string keys, :class:`Distribution` values.

    Args:
        space: ``{"target.name": Distribution}``.
        targets: The allowed first parts of the keys (``model``,
            ``optimizer``, ``fit``), or None for any non-empty key.

    Raises:
        ValueError: An empty space, a key that is not ``target.name`` with a
            known target, or a value that is not a distribution.
    """
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"space must be a non-empty dict of distributions, got {space!r}")
    for key, dist in space.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"space keys must be non-empty strings, got {key!r}")
        if targets is not None:
            head, dot, name = key.partition(".")
            if not dot or head not in targets or not name.isidentifier():
                raise ValueError(
                    f"space key {key!r} must be 'target.argument' with a target among "
                    f"{', '.join(targets)} (e.g. 'optimizer.lr', 'model.weight_decay_lambda', "
                    "'fit.batch_size')"
                )
        if not isinstance(dist, Distribution):
            raise ValueError(
                f"space[{key!r}] must be a distribution (xpnn.search.LogUniform, Uniform, "
                f"IntUniform, Choice), got {dist!r}"
            )


def describe_space(space: Mapping[str, Distribution]) -> dict[str, dict[str, Any]]:
    """The JSON-able description of a space (keys sorted), as a results file records it."""
    return {key: space[key].describe() for key in sorted(space)}


def _sequence(seed: int, trial: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(trial,))


def trial_seeds(seed: int, trial: int) -> tuple[np.random.Generator, int, int]:
    """The random sources of trial ``trial`` of the search seeded ``seed``.

    Args:
        seed: The search's seed (a non-negative int).
        trial: The trial number (0, 1, ...).

    Returns:
        ``(rng, model_seed, fit_seed)``: a NumPy generator for the trial's
        values, and two ints (< 2**32) for the model's initial weights and
        the shuffling of :meth:`xpnn.Trainer.fit`. They depend on ``seed`` and
        ``trial`` only.
    """
    values, model, fit = _sequence(seed, trial).spawn(3)
    return (
        np.random.default_rng(values),
        int(model.generate_state(1, np.uint32)[0]),
        int(fit.generate_state(1, np.uint32)[0]),
    )


def sample_params(space: Mapping[str, Distribution], seed: int, trial: int) -> dict[str, Any]:
    """Trial ``trial``'s values: one draw per key, in sorted key order.

    Args:
        space: ``{"target.name": Distribution}``.
        seed: The search's seed.
        trial: The trial number.

    Returns:
        ``{"target.name": value}`` (keys sorted), the same for the same
        ``(space, seed, trial)`` whatever the order of the space's keys.
    """
    rng = trial_seeds(seed, trial)[0]
    return {key: space[key].sample(rng) for key in sorted(space)}

"""The book's ``simpleNet`` (vol. 1, 4.4.2): one 2x3 weight matrix, no bias."""

from __future__ import annotations

from typing import Any

from xpnn.backend import (
    _dtype_name,
    get_namespace,
    to_numpy,
)
from xpnn.functions import cross_entropy_error, softmax
from xpnn.layers.base import _config_sizes
from xpnn.models.layered import MODELS, _check_input, _float_dtype
from xpnn.random import default_rng

__all__ = ["SimpleNet", "simpleNet"]


class SimpleNet:
    """The book's ``simpleNet`` (4.4.2): one 2x3 weight matrix, no bias.

    Args:
        seed: Seed for the standard-normal initial ``W``.
        dtype: Float dtype of ``W`` (the backend's default if omitted).

    Attributes:
        W: ``(2, 3)`` weights on the active backend.
    """

    def __init__(self, seed: int | None = None, *, dtype: Any = None):
        self.W = default_rng(seed).standard_normal((2, 3), dtype=_float_dtype(dtype))
        self.config: dict[str, Any] = {}  # what xpnn.io.save records to rebuild it

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """``{"W": (2, 3)}`` for the only config, ``{}``; see :meth:`LayeredNet.array_shapes`."""
        _config_sizes(cls, config)
        return {"W": (2, 3)}

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any = None) -> SimpleNet:
        """A SimpleNet (random ``W``) for ``config``; see :meth:`LayeredNet.from_config`."""
        cls.array_shapes(config)
        return cls(dtype=dtype)

    def named_arrays(self) -> dict[str, Any]:
        """``{"W": W}``, the array a saved file holds."""
        return {"W": self.W}

    def predict(self, x: Any) -> Any:
        """Scores ``x @ W``: ``(2,)`` -> ``(3,)`` or ``(N, 2)`` -> ``(N, 3)``."""
        _check_input(x, 2, "SimpleNet.predict")
        xp = get_namespace(x, self.W)
        if not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(
                f"SimpleNet.predict needs floating-point x, got {_dtype_name(x.dtype)}; "
                "convert with xpnn.asarray(x, dtype='float64')"
            )
        # The wider float of the two, on every backend (torch's @ refuses mixed dtypes).
        dtype = xp.result_type(x.dtype, self.W.dtype)
        return xp.astype(x, dtype, copy=False) @ xp.astype(self.W, dtype, copy=False)

    def loss(self, x: Any, t: Any) -> Any:
        """The book's loss: cross_entropy_error(softmax(predict(x)), t), as a NumPy scalar.

        Read to the host once (the book's type, ``numpy.float64`` in float64), so it
        prints as the book's number on every backend.
        """
        return to_numpy(cross_entropy_error(softmax(self.predict(x)), t))[()]


#: The book's name for :class:`SimpleNet` (``ch04/gradient_simplenet.py``).
simpleNet = SimpleNet


MODELS["SimpleNet"] = SimpleNet

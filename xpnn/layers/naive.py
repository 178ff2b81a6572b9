"""Chapter 5's computational-graph nodes on plain numbers: the book's ``layer_naive.py``.

:class:`MulLayer` and :class:`AddLayer` are the two nodes the book uses to
introduce backpropagation (the apple shopping example of ``buy_apple.py`` and
``buy_apple_orange.py``). They take two inputs and give two gradients, so
they are not subclasses of :class:`xpnn.layers.Layer` (one input, one output, kept
in models and files): they work on Python numbers, and on arrays of any
backend, with the operators ``*`` and ``+``. ``from xpnn.layers.naive import
*`` gives what ``from layer_naive import *`` gives.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AddLayer", "MulLayer"]


class MulLayer:
    """The multiplication node: ``out = x * y``; backward ``(dout * y, dout * x)``."""

    def __init__(self) -> None:
        self.x: Any = None
        self.y: Any = None

    def forward(self, x: Any, y: Any) -> Any:
        """``x * y``, keeping both inputs for :meth:`backward`."""
        self.x, self.y = x, y
        return x * y

    def backward(self, dout: Any) -> tuple[Any, Any]:
        """``(dL/dx, dL/dy)`` from ``dout`` = dL/dout: each input's gradient is the other input.

        Raises:
            RuntimeError: No :meth:`forward` call came first (the inputs are unknown).
        """
        if self.x is None:
            raise RuntimeError("MulLayer.backward needs a forward(x, y) call first")
        return dout * self.y, dout * self.x


class AddLayer:
    """The addition node: ``out = x + y``; backward passes ``dout`` to both inputs."""

    def forward(self, x: Any, y: Any) -> Any:
        """``x + y`` (nothing to keep: the gradient does not depend on the inputs)."""
        return x + y

    def backward(self, dout: Any) -> tuple[Any, Any]:
        """``(dout, dout)``: d(x + y)/dx = d(x + y)/dy = 1."""
        return dout * 1, dout * 1

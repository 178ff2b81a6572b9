"""SimpleConvNet's and DeepConvNet's arguments, checked, and the sizes between their layers.

A ``conv_param`` dict has exactly the book's four keys (``filter_num``,
``filter_size``, ``pad``, ``stride``); ``input_dim`` is ``(C, H, W)``. The
sizes between the layers are computed from them (the convolution's output,
floored as the book's ``im2col``; the 2x2, stride-2 pooling's), and sizes
that do not fit (a filter larger than the padded input, a pooling output of
0) are refused here, before anything is allocated. The defaults are the
book's ``conv_param`` dicts, read-only.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from xpnn.layers.regularization import _seed
from xpnn.models.multilayer_settings import _positive_int

__all__: list[str] = []

#: The keys of a ``conv_param`` dict (the book's), in the book's order.
_CONV_PARAM_KEYS = ("filter_num", "filter_size", "pad", "stride")


def _conv(filter_num: int, filter_size: int, pad: int, stride: int) -> Mapping[str, int]:
    # Read-only defaults (a dict default would be shared by every call).
    return MappingProxyType(
        {"filter_num": filter_num, "filter_size": filter_size, "pad": pad, "stride": stride}
    )


_SIMPLE_CONV = _conv(30, 5, 0, 1)
_DEEP_CONV_1 = _conv(16, 3, 1, 1)
_DEEP_CONV_2 = _conv(16, 3, 1, 1)
_DEEP_CONV_3 = _conv(32, 3, 1, 1)
_DEEP_CONV_4 = _conv(32, 3, 2, 1)
_DEEP_CONV_5 = _conv(64, 3, 1, 1)
_DEEP_CONV_6 = _conv(64, 3, 1, 1)

#: The pooling of both nets (the book's ``Pooling(pool_h=2, pool_w=2, stride=2)``).
_POOL = 2
#: DeepConvNet's dropout ratio (the book's, fixed).
_DROPOUT_RATIO = 0.5


def _checked_input_dim(value: Any) -> tuple[int, int, int]:
    """``(C, H, W)``: three positive ints (a list from a file too)."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 3
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0 for v in value)
    ):
        raise ValueError(
            "input_dim must be (channels, height, width), three positive ints such as "
            f"(1, 28, 28), got {value!r:.80}"
        )
    c, h, w = (int(v) for v in value)
    return c, h, w


def _checked_conv_param(value: Any, name: str) -> dict[str, int]:
    """A ``conv_param`` dict: exactly the book's four keys, sizes that make sense.

    Raises:
        TypeError: Not a dict (a mapping).
        ValueError: A missing or unknown key, or a value out of range (the
            message names ``name`` and the key).
    """
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be a dict with the keys {', '.join(_CONV_PARAM_KEYS)}, "
            f"got {type(value).__name__}"
        )
    missing = [k for k in _CONV_PARAM_KEYS if k not in value]
    unknown = [k for k in value if k not in _CONV_PARAM_KEYS]
    if missing or unknown:
        what = []
        if missing:
            what.append(f"lacks {', '.join(map(repr, missing))}")
        if unknown:
            what.append(f"has unknown keys {', '.join(repr(k) for k in unknown)[:120]}")
        raise ValueError(
            f"{name} {' and '.join(what)}; it takes exactly {', '.join(_CONV_PARAM_KEYS)} "
            "(e.g. {'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1})"
        )
    out = {}
    for key in _CONV_PARAM_KEYS:
        v = value[key]
        least = 0 if key == "pad" else 1
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < least:
            kind = "an int >= 0" if key == "pad" else "a positive int"
            raise ValueError(f"{name}['{key}'] must be {kind}, got {v!r:.80}")
        out[key] = int(v)
    return out


def _checked_seed(value: Any) -> int | None:
    return None if value is None else _seed(value, "seed")


def _conv_out(size: tuple[int, int], p: dict[str, int], name: str, where: str) -> tuple[int, int]:
    """The convolution's output ``(out_h, out_w)`` (the book's formula, floored as its im2col).

    Raises:
        ValueError: The filter is larger than the padded input.
    """
    fs, pad, stride = p["filter_size"], p["pad"], p["stride"]
    padded = (size[0] + 2 * pad, size[1] + 2 * pad)
    if fs > min(padded):
        raise ValueError(
            f"{name}['filter_size'] {fs} is larger than its padded input {padded[0]}x{padded[1]} "
            f"({where} {size[0]}x{size[1]} with pad {pad}); use a smaller filter_size, more "
            "pad or a larger input_dim"
        )
    return ((padded[0] - fs) // stride + 1, (padded[1] - fs) // stride + 1)


def _pool_out(size: tuple[int, int], where: str) -> tuple[int, int]:
    """The 2x2, stride-2 max pooling's output (floored, as the book's Pooling).

    Raises:
        ValueError: The input is smaller than 2x2 (the output would be empty).
    """
    if min(size) < _POOL:
        raise ValueError(
            f"the {_POOL}x{_POOL} pooling (stride {_POOL}) after {where} needs an input of at "
            f"least {_POOL}x{_POOL}, got {size[0]}x{size[1]} (its output would be empty); use "
            "a larger input_dim, more pad or a smaller filter_size or stride"
        )
    return ((size[0] - _POOL) // _POOL + 1, (size[1] - _POOL) // _POOL + 1)


def _common(given: dict[str, Any]) -> dict[str, Any]:
    """``input_dim``, ``hidden_size``, ``output_size`` and ``seed`` checked."""
    return {
        "input_dim": _checked_input_dim(given["input_dim"]),
        "hidden_size": _positive_int(given["hidden_size"], "hidden_size"),
        "output_size": _positive_int(given["output_size"], "output_size"),
        "seed": _checked_seed(given["seed"]),
    }

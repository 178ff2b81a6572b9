"""Live parameters: a model's ``params`` whose assignments write into its arrays.

The book loads weights with ``net.params[key] = value`` and readers
experiment the same way. In xpnn the layers and the optimizer hold the very
arrays ``params`` shows, so a plain dict would let that assignment rebind a
key while the layers keep computing with the old array: a silent wrong
answer. :class:`ParamDict` (the chapter-4 models) and :class:`ParamList`
(layered models) copy an assigned value into the existing array instead,
after checking its shape, float kind, backend and device.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import BackendMismatchError, _dtype_name, _library, device_of, get_namespace

__all__ = ["ParamDict", "ParamList"]


def _checked_value(where: str, dst: Any, value: Any) -> Any:
    """``value`` as a new array fit to be copied into parameter ``dst``.

    Raises:
        TypeError: ``value`` is not an array, or not floating point.
        xpnn.BackendMismatchError: ``value`` lives on another backend or device.
        ValueError: ``value`` has another shape.
    """
    lib, want = _library(value), _library(dst)
    if lib is None:
        raise TypeError(
            f"{where} must be set to an array of shape {tuple(dst.shape)}, got "
            f"{type(value).__name__}; wrap it with xpnn.asarray()"
        )
    if lib != want or device_of(value) != device_of(dst):
        raise BackendMismatchError(
            f"{where} lives on {want} ({device_of(dst)}), the new value on {lib} "
            f"({device_of(value)}): move it first, e.g. xpnn.asarray(value, "
            "backend=xpnn.backend_of(old_value))"
        )
    xp = get_namespace(dst)
    if tuple(value.shape) != tuple(dst.shape):
        raise ValueError(
            f"{where} has shape {tuple(dst.shape)}, the new value {tuple(value.shape)}: "
            "a parameter keeps its shape (build a new model for other sizes)"
        )
    if not xp.isdtype(value.dtype, "real floating"):
        raise TypeError(
            f"{where} is {_dtype_name(dst.dtype)}, the new value {_dtype_name(value.dtype)}: "
            "parameters take floating-point values"
        )
    # A fresh copy in the parameter's dtype: the value may be a view of dst.
    return xp.astype(value, dst.dtype, copy=True)


class ParamDict(dict):
    """A model's ``params`` dict whose assignments write into the parameters.

    ``net.params['W1'] = W`` copies ``W`` into the array the layers and the
    optimizer already hold (the book's ``load_params`` idiom), after checking
    that it is an array of the same shape, a float, on the same backend and
    device; the parameter keeps its dtype. ``net.params['W1'] -= lr * g``
    works as with a dict. Keys cannot be added or removed.
    """

    def __init__(self, arrays: Any, owner: str = "model"):
        super().__init__(arrays)
        self._owner = owner

    def _where(self, key: Any) -> str:
        return f"{self._owner}.params[{key!r}]"

    def _checked(self, key: Any, value: Any) -> Any:
        if key not in self:
            raise KeyError(
                f"{self._owner} has no parameter {key!r}; its parameters are "
                f"{', '.join(map(repr, self))}"
            )
        dst = dict.__getitem__(self, key)
        return None if value is dst else _checked_value(self._where(key), dst, value)

    def __setitem__(self, key: Any, value: Any) -> None:
        new = self._checked(key, value)
        if new is not None:
            dict.__getitem__(self, key)[...] = new

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Assign several parameters; all are checked before any is written."""
        items = dict(*args, **kwargs)
        checked = [(k, self._checked(k, v)) for k, v in items.items()]
        for k, new in checked:
            if new is not None:
                dict.__getitem__(self, k)[...] = new

    def _fixed(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self._owner}.params has a fixed set of parameters ({', '.join(map(repr, self))}); "
            "assign new values to them instead"
        )

    __delitem__ = pop = popitem = clear = setdefault = _fixed

    def __ior__(self, other: Any) -> ParamDict:
        self.update(other)
        return self

    def __reduce__(self) -> Any:  # copy/deepcopy/pickle without __setitem__
        return (type(self), (dict(self), self._owner))


class ParamList(list):
    """A layered model's ``params`` list whose assignments write into the parameters.

    ``net.params[0] = W`` copies ``W`` into the array the layers and the
    optimizer hold, with the checks of :class:`ParamDict`. The list's length
    is fixed.
    """

    def __init__(self, arrays: Any, owner: str = "model"):
        super().__init__(arrays)
        self._owner = owner

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            positions = range(len(self))[index]
            values = list(value)
            if len(values) != len(positions):
                raise ValueError(
                    f"{self._owner}.params[{index}] holds {len(positions)} parameters, "
                    f"got {len(values)} values; the list's length is fixed"
                )
        else:
            positions = [range(len(self))[index]]  # IndexError when out of range
            values = [value]
        checked = []
        for i, v in zip(positions, values, strict=True):
            dst = list.__getitem__(self, i)
            if v is not dst:
                checked.append((dst, _checked_value(f"{self._owner}.params[{i}]", dst, v)))
        for dst, new in checked:
            dst[...] = new

    def _fixed(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self._owner}.params has a fixed length ({len(self)}); assign new values "
            "to its entries instead"
        )

    __delitem__ = append = extend = insert = pop = remove = clear = _fixed
    __iadd__ = __imul__ = sort = reverse = _fixed

    def __reduce__(self) -> Any:
        return (type(self), (list(self), self._owner))

"""The book's ``save_params`` and ``load_params``, for every model built on LayeredNet.

Vol. 1's conv nets (``ch07/simple_convnet.py``, ``ch08/deep_convnet.py``)
pickle ``params`` to ``file_name="params.pkl"``; vol. 2's ``BaseModel``
pickles a list of float16 arrays to ``ClassName.pkl`` by default. A book
script keeps its calls (``network.save_params("params.pkl")``,
``network.load_params("deep_convnet_params.pkl")``) and xpnn keeps them safe:

- ``save_params`` writes xpnn's format (:func:`xpnn.io.save`'s ``.npz``
  content: arrays and JSON, no pickle) to exactly the name given, after the
  path is checked as every xpnn writer checks it. The default name and
  storage dtype follow the book: vol. 1's models (TwoLayerNet,
  MultiLayerNet, MultiLayerNetExtend, SimpleConvNet, DeepConvNet and their
  subclasses) ``"params.pkl"`` in their own dtype; vol. 2's (LayeredNet,
  LayeredTwoLayerNet) ``ClassName.pkl`` in float16, as ``BaseModel`` does.
- ``load_params`` reads that format, or a pickle (the book's shipped
  weights) through :func:`xpnn.io.book_pickle.load_book_pickle`, which
  admits only NumPy arrays; then assigns the arrays into the live ``params``
  in place (vol. 1: a dict keyed like ``params``; vol. 2: a list in
  ``params`` order), to the model's backend and dtype, with every name,
  shape and value checked first: a refused file changes nothing.

Models come before :mod:`xpnn.io` in the package's order (``xpnn.io``
imports the models to rebuild them), so this module imports nothing of it:
``xpnn.io`` hands its two functions to :func:`set_params_files` when it is
imported, which ``import xpnn`` does before any model can be built.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

__all__ = ["BookParams", "set_params_files"]

#: The models whose book (vol. 1) defaults to ``"params.pkl"`` in the model's dtype.
VOL1_MODELS = frozenset(
    {"TwoLayerNet", "MultiLayerNet", "MultiLayerNetExtend", "SimpleConvNet", "DeepConvNet"}
)

_FILES: dict[str, Callable[..., Any]] = {}


def set_params_files(save: Callable[..., Any], load: Callable[..., Any]) -> None:
    """Install the writer and reader of :class:`BookParams` (``xpnn.io`` does, on import)."""
    _FILES["save"], _FILES["load"] = save, load


def _files(what: str) -> Callable[..., Any]:
    if what not in _FILES:  # pragma: no cover - import xpnn imports xpnn.io
        raise RuntimeError("import xpnn.io first: it reads and writes the params files")
    return _FILES[what]


class BookParams:
    """The book's ``save_params``/``load_params`` methods (a mixin of LayeredNet).

    Attributes:
        book_aliases: Where the book's ``params`` list holds a weight twice
            and the model's once (weight tying): ``{position in the book's
            list: index in params}``, that entry being ``params[index]``
            transposed. ``load_params`` takes a pickle of the book's list
            (``len(params) + len(book_aliases)`` arrays) when each such
            entry is bit for bit the transpose of the array it repeats, and
            drops it; else it refuses the file. Empty for models without
            tied weights.
    """

    book_aliases: ClassVar[Mapping[int, int]] = MappingProxyType({})

    def _book_volume(self) -> int:
        """1 for vol. 1's models (and their subclasses), else 2."""
        return 1 if any(c.__name__ in VOL1_MODELS for c in type(self).__mro__) else 2

    def _default_params_file(self) -> str:
        return "params.pkl" if self._book_volume() == 1 else f"{type(self).__name__}.pkl"

    def save_params(self, file_name: str | os.PathLike[str] | None = None, *, dtype: Any = None):
        """Write the model to ``file_name`` in xpnn's safe format (no pickle), as named.

        Args:
            file_name: The file, written under exactly this name (``.pkl``
                too: the content is :func:`xpnn.io.save`'s). Omitted:
                ``"params.pkl"`` (vol. 1's models) or ``"ClassName.pkl"``
                (vol. 2's).
            dtype: Storage dtype. Omitted: the model's own (vol. 1), float16
                (vol. 2, as its ``BaseModel``; loading gives back the model's dtype).

        Returns:
            The path written.

        Raises:
            ValueError: The path cannot be written (a folder, a link, not
                writable...), or what :func:`xpnn.io.save` refuses. Nothing
                is written then.
        """
        if file_name is None:
            file_name = self._default_params_file()
        if dtype is None and self._book_volume() == 2:
            dtype = "float16"
        return _files("save")(self, file_name, dtype=dtype)

    def load_params(self, file_name: str | os.PathLike[str] | None = None) -> None:
        """Read ``file_name`` into ``params`` in place: xpnn's format or the book's pickle.

        A pickle is read by :func:`xpnn.io.book_pickle.load_book_pickle`
        (NumPy arrays only: anything else is refused, nothing is run). The
        arrays go to the model's backend and dtype. A book list that holds a
        tied weight twice (:attr:`book_aliases`) loads when the repeat is
        exactly the weight transposed.

        Raises:
            xpnn.io.ModelFileError: The file does not fit the model (names,
                shapes, the count of arrays, a repeated tied weight that is
                not the weight: the message names them), holds NaN or infinite
                values, is damaged, or a pickle asking for more than arrays.
                The model is left as it was.
            FileNotFoundError: No such file.
        """
        if file_name is None:
            file_name = self._default_params_file()
        _files("load")(self, file_name)

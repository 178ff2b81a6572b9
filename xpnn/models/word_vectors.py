"""What vol. 2's word2vec models share: ``W_in`` and ``W_out``, each listed once.

:class:`WordVectors` is the base of :class:`xpnn.models.SimpleCBOW`,
:class:`xpnn.models.SimpleSkipGram`, :class:`xpnn.models.CBOW` and
:class:`xpnn.models.SkipGram`: ``params`` is ``[W_in, W_out]`` (a checked
:class:`xpnn.params.ParamList` over the very arrays the layers hold; the
book's models list ``W_in`` once per input layer and its ``Trainer`` removes
the duplicates), ``word_vecs`` is ``W_in``, and a saved file holds the two
arrays by name. The book's ``save_params``/``load_params`` come from
:class:`xpnn.models.book_params.BookParams`.
"""

from __future__ import annotations

from typing import Any

from xpnn.models.book_params import BookParams

__all__ = ["WordVectors"]


class WordVectors(BookParams):
    """``params`` ``[W_in, W_out]`` in ``self._params``, ``word_vecs`` and the saved arrays."""

    _params: Any

    @property
    def params(self) -> Any:
        """``[W_in, W_out]``: the very arrays the layers hold, each listed once.

        Assigning into it (``model.params[0] = W``) or to it (``model.params
        = saved``, a list of two) copies the values into those arrays,
        checked first (shape, dtype, backend): every layer sees them.
        """
        return self._params

    @params.setter
    def params(self, values: Any) -> None:
        self._params[:] = values

    @property
    def word_vecs(self) -> Any:
        """The word vectors: ``W_in`` itself, ``(V, H)``; row ``i`` is word id ``i``'s."""
        return self._params[0]

    def params_list(self) -> list[Any]:
        """The parameters as a plain list ``[W_in, W_out]``."""
        return list(self._params)

    def named_arrays(self) -> dict[str, Any]:
        """``{"W_in": W_in, "W_out": W_out}``: the arrays a saved file holds (each once)."""
        W_in, W_out = self._params
        return {"W_in": W_in, "W_out": W_out}

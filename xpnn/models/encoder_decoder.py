"""Vol. 2 ch. 7's ``Encoder``, ``Decoder`` and ``PeekyDecoder``: the parts of the seq2seq models.

As the book's ``ch07/seq2seq.py`` and ``ch07/peeky_seq2seq.py`` (which
:mod:`xpnn.models.seq2seq` assembles into ``Seq2seq`` and ``PeekySeq2seq``
and re-exports): the encoder (``TimeEmbedding``, ``TimeLSTM(stateful=
False)``) returns the last hidden state ``h`` ``(N, H)`` of the ids ``xs``
``(N, T)``; the decoder (``TimeEmbedding``, ``TimeLSTM(stateful=True)``
started from ``h`` with ``c`` zeros, ``TimeAffine``) scores its input ids;
the peeky decoder concatenates ``h`` to every step's LSTM and affine input
(``lstm_Wx`` ``(H + D, 4H)``, ``affine_W`` ``(H + H, V)``, ``h``'s rows
first). Their weights are the book's (``randn / 100`` embeddings, ``randn /
sqrt(fan_in)`` others, zero biases), drawn from xpnn's generator.

**Greedy generation on the device.** ``Decoder.generate_ids`` feeds each
step's ``xp.argmax`` of the ``(N, 1, V)`` scores back as the next step's
ids ``(N, 1)``, never reading them; the steps' ids are stacked
``(N, sample_size)``. ``generate`` reads them to the host once (the book
reads one id per step with ``int(...)``): the book's flat list for one row,
a list of N lists for N rows.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from xpnn.backend import device_of, get_namespace, to_numpy
from xpnn.functions import check_labels
from xpnn.layers.recurrent import TimeLSTM
from xpnn.layers.time_distributed import TimeAffine, TimeEmbedding
from xpnn.models.layered import _check_sizes, _float_dtype
from xpnn.models.weight_init import draw_book_weights
from xpnn.random import default_rng

__all__ = ["Decoder", "Encoder", "PeekyDecoder"]


# ---------------------------------------------------------------- weights and checks


def _check_ids(a: Any, V: int, who: str, min_steps: int = 1, ignore: int | None = None) -> None:
    """Integer ids ``(N, T)`` (N >= 1, T >= ``min_steps``) in ``0..V-1`` where reading is free.

    ``ignore``: a label also allowed (the loss's ``ignore_label``, -1).
    """
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"{who} must be an array of integer ids, got {type(a).__name__}")
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < min_steps:
        raise ValueError(
            f"{who} must be integer ids of shape (N, T) with N >= 1 and T >= {min_steps}, got "
            f"shape {tuple(a.shape)}"
        )
    if ignore is not None and get_namespace(a).isdtype(a.dtype, "integral"):
        xp = get_namespace(a)
        a = xp.where(a == ignore, xp.zeros_like(a), a)
    check_labels(a, V, who)  # TypeError: not integers; ValueError: out of range


def _start_id(start_id: Any, V: int) -> int:
    if isinstance(start_id, bool):
        raise TypeError("start_id must be an int id, got bool")
    try:
        i = operator.index(start_id)
    except TypeError:
        raise TypeError(f"start_id must be an int id, got {type(start_id).__name__}") from None
    if not 0 <= i < V:
        raise ValueError(f"start_id {i} is not an id of this model: 0 <= id < {V}")
    return i


def _sample_size(sample_size: Any) -> int:
    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 1:
        raise ValueError(f"sample_size must be a positive int, got {sample_size!r:.40}")
    return sample_size


def _as_lists(ids: Any) -> list:
    """Ids ``(N, S)`` as the book's list (N == 1) or a list of N lists: the one read."""
    rows = np.asarray(to_numpy(ids)).tolist()
    return rows[0] if len(rows) == 1 else rows


# ---------------------------------------------------------------- Encoder


class _Part:
    """What Encoder and Decoder share: the book's constructor and one of given arrays."""

    @classmethod
    def _shapes(cls, V: int, D: int, H: int) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def __init__(
        self,
        vocab_size: int,
        wordvec_size: int,
        hidden_size: int,
        *,
        seed: int | None = None,
        dtype: Any = None,
    ):
        _check_sizes(vocab_size=vocab_size, wordvec_size=wordvec_size, hidden_size=hidden_size)
        shapes = self._shapes(vocab_size, wordvec_size, hidden_size)
        self._build(draw_book_weights(shapes, default_rng(seed), _float_dtype(dtype)))

    @classmethod
    def _of(cls, arrays: dict[str, Any]) -> Any:
        """One of these arrays (by the book's names), drawing nothing."""
        self = cls.__new__(cls)
        self._build(arrays)
        return self

    def _build(self, a: dict[str, Any]) -> None:
        raise NotImplementedError


class Encoder(_Part):
    """The book's ``Encoder``: embedding and LSTM; ``forward`` returns the last ``h``.

    Args:
        vocab_size: V; wordvec_size: D; hidden_size: H (positive ints).
        seed: Seed of the initial weights (None: the global seed, else fresh).
        dtype: Float dtype of the weights (default the backend's, float32).

    Attributes:
        embed, lstm: The TimeEmbedding and the TimeLSTM (``stateful=False``).
        params: ``[embed_W, lstm_Wx, lstm_Wh, lstm_b]``; grads: theirs.
        hs: The LSTM's outputs ``(N, T, H)`` of the last forward.
    """

    @classmethod
    def _shapes(cls, V: int, D: int, H: int) -> dict[str, tuple[int, ...]]:
        return {"embed_W": (V, D), "lstm_Wx": (D, 4 * H), "lstm_Wh": (H, 4 * H), "lstm_b": (4 * H,)}

    def _build(self, a: dict[str, Any]) -> None:
        self.arrays = a
        self.embed = TimeEmbedding(a["embed_W"])
        self.lstm = TimeLSTM(a["lstm_Wx"], a["lstm_Wh"], a["lstm_b"], stateful=False)
        self.params = self.embed.params + self.lstm.params
        self.grads = self.embed.grads + self.lstm.grads
        self.hs: Any = None

    def forward(self, xs: Any) -> Any:
        """``h`` ``(N, H)``: the LSTM's last output for ids ``xs`` ``(N, T)``."""
        xs = self.embed.forward(xs)
        hs = self.lstm.forward(xs)
        self.hs = hs
        return hs[:, -1, :]

    def backward(self, dh: Any) -> Any:
        """Fills ``grads`` from ``dh`` ``(N, H)``, the gradient of the last ``h``; None (ids)."""
        xp = get_namespace(dh, self.hs)
        N, T, H = self.hs.shape
        # The book's dhs = zeros_like(hs); dhs[:, -1, :] = dh, without writing into an array.
        dhs = xp.concat((xp.zeros_like(self.hs[:, : T - 1, :]), xp.reshape(dh, (N, 1, H))), axis=1)
        dout = self.lstm.backward(dhs)
        dout = self.embed.backward(dout)
        return dout


# ---------------------------------------------------------------- Decoder


class Decoder(_Part):
    """The book's ``Decoder``: embedding, LSTM started from the encoder's ``h``, affine.

    Args: as :class:`Encoder`.

    Attributes:
        embed, lstm, affine: TimeEmbedding, TimeLSTM (``stateful=True``), TimeAffine.
        params: ``[embed_W, lstm_Wx, lstm_Wh, lstm_b, affine_W, affine_b]``; grads: theirs.
    """

    _peeky = False

    @classmethod
    def _shapes(cls, V: int, D: int, H: int) -> dict[str, tuple[int, ...]]:
        extra = H if cls._peeky else 0  # the peeky h beside the embedding and the LSTM output
        return {
            "embed_W": (V, D),
            "lstm_Wx": (extra + D, 4 * H),
            "lstm_Wh": (H, 4 * H),
            "lstm_b": (4 * H,),
            "affine_W": (extra + H, V),
            "affine_b": (V,),
        }

    def _build(self, a: dict[str, Any]) -> None:
        self.arrays = a
        self.embed = TimeEmbedding(a["embed_W"])
        self.lstm = TimeLSTM(a["lstm_Wx"], a["lstm_Wh"], a["lstm_b"], stateful=True)
        self.affine = TimeAffine(a["affine_W"], a["affine_b"])
        self.params: list[Any] = []
        self.grads: list[Any] = []
        for layer in (self.embed, self.lstm, self.affine):
            self.params += layer.params
            self.grads += layer.grads
        self.cache: Any = None

    def forward(self, xs: Any, h: Any) -> Any:
        """Scores ``(N, T, V)`` of ids ``xs`` ``(N, T)``, the LSTM started from ``h`` ``(N, H)``."""
        self.lstm.set_state(h)

        out = self.embed.forward(xs)
        out = self.lstm.forward(out)
        score = self.affine.forward(out)
        return score

    def backward(self, dscore: Any) -> Any:
        """Fills ``grads``; returns ``dh`` ``(N, H)``, the gradient of the starting ``h``."""
        dout = self.affine.backward(dscore)
        dout = self.lstm.backward(dout)
        dout = self.embed.backward(dout)
        dh = self.lstm.dh
        return dh

    def _step(self, x: Any, peeky_h: Any) -> Any:
        """Scores ``(N, 1, V)`` of one step's ids ``x`` ``(N, 1)``; the state carries on."""
        out = self.embed.forward(x)
        out = self.lstm.forward(out)
        return self.affine.forward(out)

    def generate_ids(self, h: Any, start_id: int, sample_size: int) -> Any:
        """The greedy ids ``(N, sample_size)`` on the device, each step's argmax fed back."""
        xp = get_namespace(h)
        N, H = h.shape
        self.lstm.set_state(h)
        peeky_h = xp.reshape(h, (N, 1, H))
        # The start ids, made on the device (int64, as argmax gives them).
        x = xp.full((N, 1), start_id, dtype=xp.int64, device=device_of(h))
        sampled = []
        for _ in range(sample_size):
            score = self._step(x, peeky_h)
            x = xp.argmax(score, axis=2)  # (N, 1): the next step's input, never read here
            sampled.append(x)
        return xp.concat(sampled, axis=1)

    def generate(self, h: Any, start_id: Any, sample_size: Any) -> list:
        """The book's greedy generation: ``sample_size`` ids after ``start_id``.

        Returns the book's flat list of ints for ``h`` ``(1, H)``, a list of
        N lists for ``h`` ``(N, H)``; read from the device once.
        """
        V = int(self.embed.params[0].shape[0])
        ids = self.generate_ids(h, _start_id(start_id, V), _sample_size(sample_size))
        return _as_lists(ids)


class PeekyDecoder(Decoder):
    """The book's ``PeekyDecoder``: ``h`` concatenated to every step's LSTM and affine input.

    ``lstm_Wx`` is ``(H + D, 4H)`` and ``affine_W`` ``(H + H, V)``, the
    ``h`` rows first, as the book's ``concatenate((hs, out), axis=2)``.
    ``backward`` adds to the LSTM's ``dh`` the gradients of ``h`` through
    the two concatenations, summed over the steps.

    Args: as :class:`Encoder`.
    """

    _peeky = True

    def forward(self, xs: Any, h: Any) -> Any:
        """Scores ``(N, T, V)``; ``h`` ``(N, H)`` starts the LSTM and is seen at every step."""
        xp = get_namespace(h)
        N, T = xs.shape
        N, H = h.shape

        self.lstm.set_state(h)

        out = self.embed.forward(xs)
        hs = xp.broadcast_to(xp.reshape(h, (N, 1, H)), (N, T, H))  # the book's np.repeat
        out = xp.concat((hs, out), axis=2)

        out = self.lstm.forward(out)
        out = xp.concat((hs, out), axis=2)

        score = self.affine.forward(out)
        self.cache = H
        return score

    def backward(self, dscore: Any) -> Any:
        """Fills ``grads``; returns ``dh``: the LSTM's plus both concatenations' (all steps)."""
        xp = get_namespace(dscore)
        H = self.cache

        dout = self.affine.backward(dscore)
        dout, dhs0 = dout[:, :, H:], dout[:, :, :H]
        dout = self.lstm.backward(dout)
        dembed, dhs1 = dout[:, :, H:], dout[:, :, :H]
        self.embed.backward(dembed)

        dhs = dhs0 + dhs1
        dh = self.lstm.dh + xp.sum(dhs, axis=1)
        return dh

    def _step(self, x: Any, peeky_h: Any) -> Any:
        xp = get_namespace(peeky_h)
        out = self.embed.forward(x)
        out = xp.concat((peeky_h, out), axis=2)
        out = self.lstm.forward(out)
        out = xp.concat((peeky_h, out), axis=2)
        return self.affine.forward(out)

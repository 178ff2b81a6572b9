"""Vol. 2 ch. 7's text generation: ``RnnlmGen`` and ``BetterRnnlmGen``.

As the book's ``ch07/rnnlm_gen.py``: a language model of ch. 6
(:class:`~xpnn.models.rnnlm.Rnnlm`, :class:`~xpnn.models.rnnlm.BetterRnnlm`)
with ``generate(start_id, skip_ids=None, sample_size=100)``, ``get_state()``
and ``set_state(state)``. ``generate`` feeds one word at a time through the
stateful LSTMs (``predict`` of a ``(1, 1)`` id), turns the last scores into
probabilities with ``softmax`` and draws the next word from them; a draw in
``skip_ids`` is dropped and the same word fed again, as the book's loop
does (the LSTM state has moved on, so the next draw differs).

**The draw.** The book calls ``np.random.choice(len(p), size=1, p=p)``:
the running sum of ``p`` divided by its last entry, searched (``side=
'right'``) for one uniform number. xpnn does the same on the host: the
probabilities, computed on the model's device, are read once per word
with :func:`xpnn.to_numpy` (generation is a host-side loop that needs each
word id there anyway, as the book's ``int(x)``; this is no training step),
the running sum taken in float64 with NumPy, and the uniform drawn from an
:class:`xpnn.random.Generator` on the host (``seed``). The same seed gives
the same words on every backend: the uniforms are the same numbers, and
the probabilities differ between libraries by rounding alone, which moves
a draw only when it falls within rounding of the boundary between two
words.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from xpnn.backend import asarray, backend_of, get_namespace, to_numpy
from xpnn.functions import softmax
from xpnn.models.layered import MODELS
from xpnn.models.rnnlm import BetterRnnlm, Rnnlm
from xpnn.random import Generator, default_rng

__all__ = ["BetterRnnlmGen", "RnnlmGen"]


# ---------------------------------------------------------------- checks


def _word_id(value: Any, vocab_size: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an int word id, got {type(value).__name__}")
    if not 0 <= int(value) < vocab_size:
        raise ValueError(
            f"{what} {int(value)} is not a word id of this model: 0 <= id < {vocab_size}"
        )
    return int(value)


def _skip_mask(skip_ids: Any, vocab_size: int) -> np.ndarray:
    """A host boolean mask ``(V,)`` of the ids never to generate."""
    skip = np.zeros(vocab_size, dtype=bool)
    if skip_ids is None:
        return skip
    if isinstance(skip_ids, (str, bytes)) or not hasattr(skip_ids, "__iter__"):
        raise TypeError(
            f"skip_ids must be a list of word ids or None, got {type(skip_ids).__name__}"
        )
    for i in skip_ids:
        skip[_word_id(i, vocab_size, "skip_ids entry")] = True
    if skip.all():
        raise ValueError(f"skip_ids holds all {vocab_size} word ids: nothing is left to generate")
    return skip


def _state_array(a: Any, W: Any, hidden_size: int, who: str) -> Any:
    """A copy of one state array ``(N, H)`` in ``W``'s dtype and namespace (None stays)."""
    if a is None:
        return None
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"{who} must be an array or None, got {type(a).__name__}")
    xp = get_namespace(a, W)  # BackendMismatchError: another library or device
    if a.ndim != 2 or int(a.shape[1]) != hidden_size or int(a.shape[0]) < 1:
        raise ValueError(f"{who} must have shape (N, {hidden_size}), got {tuple(a.shape)}")
    if a.dtype != W.dtype:
        raise ValueError(f"{who} has dtype {a.dtype}; the model's weights are {W.dtype}")
    return xp.asarray(a, copy=True)


def _checked_pair(state: Any, layer: Any, who: str) -> tuple[Any, Any]:
    """``(h, c)`` of one LSTM checked (same rows) and copied."""
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError(f"{who} must be a pair (h, c), as get_state() returns")
    Wh = layer.params[1]
    H = int(Wh.shape[0])
    h, c = (_state_array(a, Wh, H, f"{who}[{i}]") for i, a in enumerate(state))
    if h is not None and c is not None and h.shape != c.shape:
        raise ValueError(f"{who}: h {tuple(h.shape)} and c {tuple(c.shape)} differ in shape")
    return h, c


def _copy(a: Any) -> Any:
    return None if a is None else get_namespace(a).asarray(a, copy=True)


# ---------------------------------------------------------------- generation


def _draw(p: Any, rng: Generator, skip: np.ndarray) -> int:
    """One id drawn from the probabilities ``p`` ``(V,)``: ``np.random.choice``'s inversion.

    Reads ``p`` to the host (the one read per word) and one uniform from
    ``rng``; NumPy's ``choice(len(p), p=p)`` computes the same: ``cdf =
    cumsum(p) / sum``, ``searchsorted(cdf, u, side='right')``.
    """
    q = np.asarray(to_numpy(p), dtype=np.float64)
    if not np.isfinite(q).all():
        raise ValueError(
            "the model's next-word probabilities are not finite (NaN or inf scores): "
            "its weights diverged; load or train weights that give finite scores"
        )
    if not q[~skip].any():
        raise ValueError("every word outside skip_ids has probability 0: nothing can be drawn")
    cdf = np.cumsum(q)
    cdf /= cdf[-1]
    u = float(to_numpy(rng.random(dtype="float64")))
    return int(np.searchsorted(cdf, u, side="right"))


def _generate(
    model: Any, start_id: Any, skip_ids: Any, sample_size: Any, seed: Any, lstms: list[Any]
) -> list[int]:
    V = model.vocab_size
    x = _word_id(start_id, V, "start_id")
    skip = _skip_mask(skip_ids, V)
    if isinstance(sample_size, bool) or not isinstance(sample_size, numbers.Integral):
        raise TypeError(f"sample_size must be an int, got {type(sample_size).__name__}")
    if sample_size < 1:
        raise ValueError(f"sample_size must be at least 1 (the start word), got {sample_size}")
    if seed is not None and not isinstance(seed, Generator):
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(
                f"seed must be a non-negative int, an xpnn Generator or None, got {seed!r:.40}"
            )
    for i, layer in enumerate(lstms):
        if layer.h is not None and int(layer.h.shape[0]) != 1:
            raise ValueError(
                f"LSTM {i}'s state holds {int(layer.h.shape[0])} rows; generate feeds one "
                "sequence: call reset_state() or set_state() with (1, H) arrays first"
            )
    W = model.params[0]
    where = backend_of(W)
    xp = get_namespace(W)
    rng = seed if isinstance(seed, Generator) else default_rng(seed, backend=backend_of(skip))
    word_ids = [x]
    while len(word_ids) < sample_size:
        xs = asarray(np.full((1, 1), x, dtype=np.int64), backend=where)  # one id to the device
        score = model.predict(xs)
        p = softmax(xp.reshape(score, (-1,)))
        sampled = _draw(p, rng, skip)
        if not skip[sampled]:
            x = sampled
            word_ids.append(x)
    return word_ids


class RnnlmGen(Rnnlm):
    """The book's ``RnnlmGen`` (vol. 2, 7.1): :class:`~xpnn.models.rnnlm.Rnnlm` that writes text.

    Built, trained, saved and loaded as :class:`~xpnn.models.rnnlm.Rnnlm`
    (same arguments, same ``params``; ``load_params`` reads the book's
    ``Rnnlm.pkl``).
    """

    def generate(
        self,
        start_id: int,
        skip_ids: Any = None,
        sample_size: int = 100,
        *,
        seed: int | Generator | None = None,
    ) -> list[int]:
        """Generate word ids from ``start_id``, feeding each drawn word back in.

        As the book's: the list starts with ``start_id``; each step predicts
        the scores of the last word fed, draws the next word from their
        softmax, and keeps it unless it is in ``skip_ids`` (then the same
        word is fed again, the state having moved on), until the list holds
        ``sample_size`` ids. The LSTM state carries over from earlier calls
        (``reset_state()`` first for a fresh start; ``predict`` the words of
        a prompt first to continue it, as the book's
        ``generate_better_text.py``). The probabilities are read to the host
        once per word with :func:`xpnn.to_numpy` (a host-side loop, no
        training step).

        Args:
            start_id: The first word id, an int in ``[0, vocab_size)``.
            skip_ids: Word ids never generated (the book's ids of ``'N'``,
                ``'<unk>'``, ``'$'``), or None.
            sample_size: How many ids the list holds, ``start_id`` included
                (an int >= 1).
            seed: The draws' seed (an int), an :class:`xpnn.random.Generator`
                to draw from (its stream goes on across calls), or None: the
                global seed's next seed where one is set
                (:func:`xpnn.random.seed`), else fresh entropy. The same
                seed, weights and state give the same ids on every backend.

        Returns:
            A list of ``sample_size`` Python ints.

        Raises:
            TypeError, ValueError: A bad ``start_id``, ``skip_ids`` (also:
                every id skipped), ``sample_size`` or ``seed``; an LSTM
                state of more than one row; probabilities that are not
                finite. Checked before any state changes, but for the last.
        """
        return _generate(self, start_id, skip_ids, sample_size, seed, [self.lstm_layer])

    def get_state(self) -> tuple[Any, Any]:
        """The LSTM's state ``(h, c)``, each ``(N, H)`` or None before any forward (copies)."""
        return _copy(self.lstm_layer.h), _copy(self.lstm_layer.c)

    def set_state(self, state: Any) -> None:
        """Set the LSTM's state to ``(h, c)`` as :meth:`get_state` returns (copied in).

        Raises:
            TypeError, ValueError, xpnn.BackendMismatchError: Not a pair of
                ``(N, H)`` arrays (or None) of the weights' dtype, library and
                device; nothing changes then.
        """
        h, c = _checked_pair(state, self.lstm_layer, "state")
        self.lstm_layer.set_state(h, c)


class BetterRnnlmGen(BetterRnnlm):
    """The book's ``BetterRnnlmGen`` (vol. 2, 7.1.3): :class:`~xpnn.models.rnnlm.BetterRnnlm`
    that writes text (dropout off: ``predict``'s default).

    Built, trained, saved and loaded as :class:`~xpnn.models.rnnlm.BetterRnnlm`
    (``load_params`` reads the book's 9-array ``BetterRnnlm.pkl``).
    """

    def generate(
        self,
        start_id: int,
        skip_ids: Any = None,
        sample_size: int = 100,
        *,
        seed: int | Generator | None = None,
    ) -> list[int]:
        """Generate word ids from ``start_id``: as :meth:`RnnlmGen.generate`, through both LSTMs.

        Args:
            start_id: The first word id, an int in ``[0, vocab_size)``.
            skip_ids: Word ids never generated, or None.
            sample_size: How many ids the list holds, ``start_id`` included.
            seed: The draws' seed, an :class:`xpnn.random.Generator`, or None.

        Returns:
            A list of ``sample_size`` Python ints.
        """
        return _generate(self, start_id, skip_ids, sample_size, seed, self.lstm_layers)

    def get_state(self) -> list[tuple[Any, Any]]:
        """Each LSTM's state ``(h, c)``, in layer order (copies)."""
        return [(_copy(layer.h), _copy(layer.c)) for layer in self.lstm_layers]

    def set_state(self, states: Any) -> None:
        """Set both LSTMs' states from a list of ``(h, c)`` pairs, as :meth:`get_state` returns.

        Raises:
            TypeError, ValueError, xpnn.BackendMismatchError: Not two pairs of
                ``(N, H)`` arrays (or None) of the weights' dtype, library and
                device; nothing changes then.
        """
        if not isinstance(states, (tuple, list)) or len(states) != len(self.lstm_layers):
            raise TypeError(
                f"states must be a list of {len(self.lstm_layers)} pairs (h, c), "
                "as get_state() returns"
            )
        pairs = [
            _checked_pair(s, layer, f"states[{i}]")
            for i, (s, layer) in enumerate(zip(states, self.lstm_layers, strict=True))
        ]
        for layer, (h, c) in zip(self.lstm_layers, pairs, strict=True):
            layer.set_state(h, c)


MODELS["RnnlmGen"] = RnnlmGen
MODELS["BetterRnnlmGen"] = BetterRnnlmGen

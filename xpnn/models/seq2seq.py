"""Vol. 2 ch. 7's sequence-to-sequence models: ``Seq2seq``, ``PeekySeq2seq``,
``eval_seq2seq``; and ``Encoder``, ``Decoder``, ``PeekyDecoder``
(:mod:`xpnn.models.encoder_decoder`'s, re-exported: the book's file holds them).

As the book's ``ch07/seq2seq.py`` and ``ch07/peeky_seq2seq.py``: the
encoder (``TimeEmbedding``, ``TimeLSTM(stateful=False)``) reads the question
ids ``xs`` ``(N, T_in)`` and hands its last hidden state ``h`` ``(N, H)`` to
the decoder (``TimeEmbedding``, ``TimeLSTM(stateful=True)`` started from
``h``, ``TimeAffine``), which is fed the answer ``ts[:, :-1]`` and scored on
``ts[:, 1:]`` by ``TimeSoftmaxWithLoss``. The peeky decoder concatenates
``h`` to every step's embedding (the LSTM's input is ``(N, T, H + D)``) and
to every LSTM output (the affine's input is ``(N, T, H + H)``).

**Weights.** The book's recipe, drawn from xpnn's generator (``seed=``) in
the book's order (the encoder's, then the decoder's): ``randn / 100`` for
the embeddings, ``randn / sqrt(fan_in)`` for the LSTM and affine weights
(``fan_in`` their first axis: D, H, H + D, 2H), zero biases; float32 unless
``dtype``. ``params`` lists ``encoder.params + decoder.params``, the book's
order: ``[embed_W, lstm_Wx, lstm_Wh, lstm_b]`` then ``[embed_W, lstm_Wx,
lstm_Wh, lstm_b, affine_W, affine_b]``. :func:`xpnn.io.save` names them by
the book's variable names under ``encoder.`` and ``decoder.``; the config
is ``{vocab_size, wordvec_size, hidden_size}``. ``save_params`` and
``load_params`` are :class:`~xpnn.models.book_params.BookParams`'
(``Seq2seq.pkl`` in float16; the book's own pickles load, same order).

**Generation.** ``generate(xs, start_id, sample_size)`` is greedy, as the
book's (the argmax of each step's scores fed back), but runs on the
device: ``xp.argmax`` of the ``(N, 1, V)`` scores is the next step's ids
``(N, 1)`` as they are, and the ``sample_size`` steps' ids are stacked and
read to the host once, at the end (the book reads one id per step with
``int(...)``). ``xs`` of one row gives the book's flat list of ids; ``N``
rows give a list of ``N`` such lists, each what that row alone gives.
:meth:`Seq2seq.generate_ids` keeps them on the device, which
:func:`eval_seq2seq_batch` counts on: the questions are decoded in batches
and the correct answers counted there, one read at the end.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from xpnn.backend import adopt_host_input, get_namespace, to_numpy, zeros
from xpnn.layers.base import _check_config_keys
from xpnn.layers.time_distributed import TimeSoftmaxWithLoss
from xpnn.models.book_params import BookParams
from xpnn.models.encoder_decoder import (
    Decoder,
    Encoder,
    PeekyDecoder,
    _as_lists,
    _check_ids,
    _sample_size,
    _start_id,
)
from xpnn.models.layered import MODELS, _check_sizes, _float_dtype
from xpnn.models.weight_init import draw_book_weights
from xpnn.params import ParamList
from xpnn.random import default_rng

__all__ = [
    "Decoder",
    "Encoder",
    "PeekyDecoder",
    "PeekySeq2seq",
    "Seq2seq",
    "eval_seq2seq",
    "eval_seq2seq_batch",
]

_SIZES = ("vocab_size", "wordvec_size", "hidden_size")


# ---------------------------------------------------------------- Seq2seq


class Seq2seq(BookParams):
    """The book's ``Seq2seq`` (vol. 2, 7.3): Encoder, Decoder, TimeSoftmaxWithLoss.

    Args:
        vocab_size: V; wordvec_size: D; hidden_size: H (positive ints).
        seed: Seed of the initial weights (None: the global seed, else fresh).
        dtype: Float dtype of the weights (default the backend's, float32).

    Attributes:
        encoder, decoder, softmax: as the book's.
        params: ``encoder.params + decoder.params`` (10 arrays), a checked
            ParamList (assigning copies the values into the layers' arrays);
        grads: theirs, in that order.
    """

    _encoder: Any = Encoder
    _decoder: Any = Decoder
    #: Trainer.fit takes integer x for this model (the flag admits integer
    #: inputs, as word2vec's: here the question ids).
    one_hot_inputs = True

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
        V, D, H = vocab_size, wordvec_size, hidden_size
        rng, dtype = default_rng(seed), _float_dtype(dtype)
        # One generator, the book's order: the encoder's weights, then the decoder's.
        enc = draw_book_weights(self._encoder._shapes(V, D, H), rng, dtype)
        dec = draw_book_weights(self._decoder._shapes(V, D, H), rng, dtype)
        self._build(enc, dec)

    def _build(self, enc: dict[str, Any], dec: dict[str, Any]) -> None:
        self.encoder = self._encoder._of(enc)
        self.decoder = self._decoder._of(dec)
        self.softmax = TimeSoftmaxWithLoss()
        arrays = self.encoder.params + self.decoder.params
        self._params: Any = ParamList(arrays, type(self).__name__)
        self.grads: list[Any] = self.encoder.grads + self.decoder.grads
        V, D = (int(d) for d in enc["embed_W"].shape)
        self.vocab_size, self.wordvec_size = V, D
        self.hidden_size = int(enc["lstm_Wh"].shape[0])

    @property
    def params(self) -> Any:
        """The parameters, a checked ParamList over the layers' arrays."""
        return self._params

    @params.setter
    def params(self, values: Any) -> None:
        self._params[:] = values

    # ------------------------------------------------------------ arrays and config

    def named_arrays(self) -> dict[str, Any]:
        """The arrays by the book's names: ``encoder.embed_W``... ``decoder.affine_b``."""
        return {
            **{f"encoder.{k}": a for k, a in self.encoder.arrays.items()},
            **{f"decoder.{k}": a for k, a in self.decoder.arrays.items()},
        }

    @property
    def config(self) -> dict[str, Any]:
        """What :func:`xpnn.io.save` records: ``{vocab_size, wordvec_size, hidden_size}``."""
        return {
            "vocab_size": self.vocab_size,
            "wordvec_size": self.wordvec_size,
            "hidden_size": self.hidden_size,
        }

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """The arrays' shapes by name, allocating nothing (ValueError: a bad config)."""
        _check_config_keys(cls.__name__, config, _SIZES)
        for name in _SIZES:
            value = config[name]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"{cls.__name__} config {name!r} must be a positive int, got {value!r:.80}"
                )
        V, D, H = (config[k] for k in _SIZES)
        return {
            **{f"encoder.{k}": s for k, s in cls._encoder._shapes(V, D, H).items()},
            **{f"decoder.{k}": s for k, s in cls._decoder._shapes(V, D, H).items()},
        }

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any = None) -> Any:
        """A model of ``config`` with zero weights, on the active backend."""
        shapes = cls.array_shapes(config)
        dtype = _float_dtype(dtype)
        arrays = {k: zeros(s, dtype=dtype) for k, s in shapes.items()}
        model = cls.__new__(cls)
        enc = {k.split(".", 1)[1]: a for k, a in arrays.items() if k.startswith("encoder.")}
        dec = {k.split(".", 1)[1]: a for k, a in arrays.items() if k.startswith("decoder.")}
        model._build(enc, dec)
        return model

    # ------------------------------------------------------------ the passes

    def _ids(self, a: Any) -> Any:
        return adopt_host_input(a, self._params[0])

    def forward(self, xs: Any, ts: Any) -> Any:
        """The mean loss (0-d) of ids ``ts[:, 1:]`` given questions ``xs`` and ``ts[:, :-1]``.

        ``xs`` ``(N, T_in)``, ``ts`` ``(N, T_out)`` integer ids (T_out >= 2),
        checked before anything runs (out-of-range ids: where reading is free).
        """
        xs, ts = self._ids(xs), self._ids(ts)
        V = self.vocab_size
        _check_ids(xs, V, f"{type(self).__name__} questions xs")
        _check_ids(ts, V, f"{type(self).__name__} answers ts", min_steps=2, ignore=-1)
        if ts.shape[0] != xs.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: xs {tuple(xs.shape)} and ts {tuple(ts.shape)} must have "
                "the same rows N"
            )
        _check_ids(ts[:, :-1], V, f"{type(self).__name__} decoder inputs ts[:, :-1]")
        decoder_xs, decoder_ts = ts[:, :-1], ts[:, 1:]

        h = self.encoder.forward(xs)
        score = self.decoder.forward(decoder_xs, h)
        loss = self.softmax.forward(score, decoder_ts)
        return loss

    def backward(self, dout: Any = 1) -> Any:
        """Fills ``grads`` in place (after ``forward``); returns None (ids have no gradient)."""
        if self.softmax.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a forward pass first")
        dout = self.softmax.backward(dout)
        dh = self.decoder.backward(dout)
        dout = self.encoder.backward(dh)
        return dout

    def _checked_generate(self, xs: Any, start_id: Any, sample_size: Any) -> tuple:
        xs = self._ids(xs)
        _check_ids(xs, self.vocab_size, f"{type(self).__name__}.generate xs")
        return xs, _start_id(start_id, self.vocab_size), _sample_size(sample_size)

    def generate_ids(self, xs: Any, start_id: Any, sample_size: Any) -> Any:
        """Greedy answers ``(N, sample_size)`` of questions ``xs`` ``(N, T)``, on the device.

        xpnn's addition: :meth:`generate` without the read to the host.
        """
        xs, start_id, sample_size = self._checked_generate(xs, start_id, sample_size)
        h = self.encoder.forward(xs)
        return self.decoder.generate_ids(h, start_id, sample_size)

    def generate(self, xs: Any, start_id: Any, sample_size: Any) -> list:
        """The book's greedy ``generate``: ``sample_size`` ids after ``start_id``.

        ``xs`` ``(1, T)``: the book's list of ints. ``xs`` ``(N, T)``: a list
        of N lists, row ``i`` what ``xs[i:i + 1]`` alone gives (the rows are
        decoded together, read to the host once).
        """
        return _as_lists(self.generate_ids(xs, start_id, sample_size))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


class PeekySeq2seq(Seq2seq):
    """The book's ``PeekySeq2seq`` (vol. 2, 7.4.2): :class:`Seq2seq` with a :class:`PeekyDecoder`.

    Args: as :class:`Seq2seq`.
    """

    _decoder = PeekyDecoder


# ---------------------------------------------------------------- evaluation


def eval_seq2seq(
    model: Any,
    question: Any,
    correct: Any,
    id_to_char: Any,
    verbose: bool = False,
    is_reverse: bool = False,
) -> int:
    """The book's ``eval_seq2seq``: 1 if the model answers ``question`` as ``correct``, else 0.

    Args:
        model: A seq2seq model (its ``generate``).
        question: Ids ``(1, T_in)`` on the model's backend (or NumPy).
        correct: Ids ``(1, T_out)``: the start id, then the answer.
        id_to_char: The ids' characters (a dict, as the book's ``get_vocab``).
        verbose: Print the book's ``Q``/``T`` lines and the guess marked
            ``☑`` (green) or ``☒`` (red); ``O``/``X`` on Windows.
        is_reverse: The question was reversed: print it turned back.
    """
    correct = np.asarray(to_numpy(correct) if hasattr(correct, "shape") else correct).flatten()
    start_id = int(correct[0])
    correct = correct[1:]
    guess = model.generate(question, start_id, len(correct))

    host_q = to_numpy(question) if hasattr(question, "shape") else question
    question = "".join([id_to_char[int(c)] for c in np.asarray(host_q).flatten()])
    correct = "".join([id_to_char[int(c)] for c in correct])
    guess = "".join([id_to_char[int(c)] for c in guess])

    if verbose:
        if is_reverse:
            question = question[::-1]

        colors = {"ok": "\033[92m", "fail": "\033[91m", "close": "\033[0m"}
        print("Q", question)
        print("T", correct)

        is_windows = os.name == "nt"

        if correct == guess:
            mark = "O" if is_windows else colors["ok"] + "☑" + colors["close"]
        else:
            mark = "X" if is_windows else colors["fail"] + "☒" + colors["close"]
        print(mark + " " + guess)
        print("---")

    return 1 if guess == correct else 0


def eval_seq2seq_batch(
    model: Any,
    questions: Any,
    corrects: Any,
    start_id: Any,
    is_reverse: bool = False,
    batch_size: int = 1000,
) -> float:
    """The accuracy over many questions: :func:`eval_seq2seq` summed, decoded in batches.

    ``batch_size`` questions are decoded at once (:meth:`Seq2seq.generate_ids`),
    an answer counted correct when all its ids equal ``corrects[:, 1:]``;
    the counts stay on the device, read once at the end. The same number as
    the book's loop of ``eval_seq2seq`` over the rows divided by their count.

    Args:
        model: A seq2seq model (its ``generate_ids``).
        questions: Ids ``(N, T_in)``, as the model sees them (reversed
            already, if the model was trained on reversed questions).
        corrects: Ids ``(N, T_out)``: the start id, then the answer.
        start_id: The id the decoder starts from (the book's ``correct[0]``).
        is_reverse: Kept for :func:`eval_seq2seq`'s signature; the count
            does not depend on it (it only turns the printed question).
        batch_size: Questions decoded together (a positive int).

    Returns:
        The fraction of correct answers, a Python float.
    """
    _check_sizes(batch_size=batch_size)
    questions, corrects = model._ids(questions), model._ids(corrects)
    _check_ids(questions, model.vocab_size, "eval_seq2seq_batch questions")
    _check_ids(corrects, model.vocab_size, "eval_seq2seq_batch corrects", min_steps=2)
    N = int(questions.shape[0])
    if int(corrects.shape[0]) != N:
        raise ValueError(
            f"eval_seq2seq_batch: questions {tuple(questions.shape)} and corrects "
            f"{tuple(corrects.shape)} must have the same rows N"
        )
    xp = get_namespace(corrects)
    answers = corrects[:, 1:]
    S = int(answers.shape[1])
    right = None
    for i in range(0, N, batch_size):
        j = min(i + batch_size, N)  # in bounds: the standard leaves a stop past the end open
        guess = model.generate_ids(questions[i:j, :], start_id, S)
        ok = xp.sum(xp.astype(xp.all(guess == answers[i:j, :], axis=1), xp.int64))
        right = ok if right is None else right + ok
    return int(to_numpy(right)) / N


MODELS["Seq2seq"] = Seq2seq
MODELS["PeekySeq2seq"] = PeekySeq2seq

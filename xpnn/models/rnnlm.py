"""Vol. 2 ch. 5-6's RNN language models: ``SimpleRnnlm``, ``Rnnlm``, ``BetterRnnlm``.

As the book's ``ch05/simple_rnnlm.py``, ``ch06/rnnlm.py`` and
``ch06/better_rnnlm.py``: word ids ``xs`` ``(N, T)`` through
``TimeEmbedding``, stateful ``TimeRNN``/``TimeLSTM`` layers and
``TimeAffine`` to scores ``(N, T, V)``, the loss ``TimeSoftmaxWithLoss`` of
the next word ids ``ts`` ``(N, T)``. The weights are the book's: ``randn(V,
D) / 100`` for the embedding, ``randn(D, H) / sqrt(D)`` (Xavier) for the
others, zero biases, drawn from xpnn's generator (``seed=``) in float32
unless ``dtype``, in the book's order.

**Weight tying** (``BetterRnnlm``). The book builds ``TimeAffine(embed_W.T,
affine_b)`` and lists ``embed_W`` twice (once transposed); its Trainer's
``remove_duplicate`` adds the transposed gradient. xpnn lists ``embed_W``
once: ``params`` ``[embed_W, lstm_Wx1, lstm_Wh1, lstm_b1, lstm_Wx2,
lstm_Wh2, lstm_b2, affine_b]``. The affine layer holds ``embed_W.T``
(re-taken at each ``predict``, so it is ``embed_W``'s own values on every
backend), and ``backward`` adds its ``(D, V)`` gradient, transposed, into
the embedding's ``(V, D)`` one: ``grads[0]`` is the full gradient of the
shared weight.

**Saving.** :func:`xpnn.io.save` writes the arrays by the book's variable
names (``embed_W``, ``rnn_Wx``...; the tied weight once) and the config
``{vocab_size, wordvec_size, hidden_size}`` (``BetterRnnlm``: and
``dropout_ratio``, ``seed``); ``save_params``/``load_params`` are
:class:`~xpnn.models.book_params.BookParams`' (``ClassName.pkl``, float16).
``load_params`` also reads the book's own pickles (a list of float16 arrays
in the book's ``params`` order); the book's ``BetterRnnlm.pkl`` holds 9,
the tied weight twice (``embed_W`` first, ``embed_W.T`` before
``affine_b``): ``BetterRnnlm.book_aliases`` says so, and the repeat is
checked to be exactly ``embed_W.T`` before it is dropped.

:func:`eval_perplexity` is the book's ``common/util.py`` function: the
batches are cut on the device, the losses summed there and read once.
"""

from __future__ import annotations

import inspect
import math
import numbers
import sys
from types import MappingProxyType
from typing import Any

import numpy as np

from xpnn.backend import (
    adopt_host_input,
    asarray,
    backend_of,
    device_of,
    get_namespace,
    to_numpy,
    zeros,
)
from xpnn.layers.base import _check_config_keys, _into
from xpnn.layers.recurrent import TimeLSTM, TimeRNN
from xpnn.layers.time_distributed import (
    TimeAffine,
    TimeDropout,
    TimeEmbedding,
    TimeSoftmaxWithLoss,
)
from xpnn.models.book_params import BookParams
from xpnn.models.layered import MODELS, _check_sizes, _float_dtype
from xpnn.models.weight_init import _dropout_seeds, draw_book_weights
from xpnn.params import ParamList
from xpnn.random import default_rng, fresh_seed

__all__ = ["BetterRnnlm", "Rnnlm", "SimpleRnnlm", "eval_perplexity"]

_SIZES = ("vocab_size", "wordvec_size", "hidden_size")


class _Rnnlm(BookParams):
    """What the three models share: arrays by name, config, layers' passes, state."""

    _extra_keys: tuple[str, ...] = ()

    # ------------------------------------------------------------ the arrays

    @classmethod
    def _shapes(cls, V: int, D: int, H: int) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def _init_arrays(self, V: int, D: int, H: int, seed: Any, dtype: Any) -> dict[str, Any]:
        """The book's initial weights, drawn in the book's order."""
        rng, dtype = default_rng(seed), _float_dtype(dtype)
        return draw_book_weights(self._shapes(V, D, H), rng, dtype)

    def _set_arrays(self, arrays: dict[str, Any]) -> None:
        self._arrays = arrays
        self._params: Any = ParamList(list(arrays.values()), type(self).__name__)
        V, D = (int(d) for d in arrays["embed_W"].shape)
        self.vocab_size, self.wordvec_size = V, D

    @property
    def params(self) -> Any:
        """The parameters, each once: a checked ParamList over the layers' arrays
        (assigning into it or to it copies the values into those arrays)."""
        return self._params

    @params.setter
    def params(self, values: Any) -> None:
        self._params[:] = values

    def named_arrays(self) -> dict[str, Any]:
        """The arrays a saved file holds, by the book's variable names (each once)."""
        return dict(self._arrays)

    # ------------------------------------------------------------ config

    @property
    def config(self) -> dict[str, Any]:
        """What :func:`xpnn.io.save` records."""
        return {
            "vocab_size": self.vocab_size,
            "wordvec_size": self.wordvec_size,
            "hidden_size": self.hidden_size,
        }

    @classmethod
    def _checked(cls, config: Any) -> tuple[int, int, int]:
        _check_config_keys(cls.__name__, config, _SIZES + cls._extra_keys)
        for name in _SIZES:
            value = config[name]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"{cls.__name__} config {name!r} must be a positive int, got {value!r:.80}"
                )
        return config["vocab_size"], config["wordvec_size"], config["hidden_size"]

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """The arrays' shapes by name, allocating nothing (ValueError: a bad config)."""
        return cls._shapes(*cls._checked(config))

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any = None) -> Any:
        """A model of ``config`` with zero weights, on the active backend."""
        shapes = cls.array_shapes(config)
        dtype = _float_dtype(dtype)
        model = cls.__new__(cls)
        model._build({name: zeros(s, dtype=dtype) for name, s in shapes.items()}, config)
        return model

    def _build(self, arrays: dict[str, Any], config: Any) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ the passes

    def _ids(self, a: Any) -> Any:
        return adopt_host_input(a, self._params[0])

    def predict(self, xs: Any) -> Any:
        """Scores ``(N, T, V)`` of word ids ``xs`` ``(N, T)``; the state carries over."""
        xs = self._ids(xs)
        for layer in self.layers:
            xs = layer.forward(xs)
        return xs

    def forward(self, xs: Any, ts: Any) -> Any:
        """The mean cross-entropy loss of the next ids ``ts`` ``(N, T)``, a 0-d array."""
        score = self.predict(xs)
        return self.loss_layer.forward(score, self._ids(ts))

    def backward(self, dout: Any = 1) -> Any:
        """Fills ``grads`` in place; returns the embedding's ``backward`` (None: ids)."""
        dout = self.loss_layer.backward(dout)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def reset_state(self) -> None:
        """Forget the hidden (and cell) states: the next forward starts from zeros."""
        for layer in self._recurrent:
            layer.reset_state()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.config.items() if k != "seed")
        return f"{type(self).__name__}({args})"


class SimpleRnnlm(_Rnnlm):
    """The book's ``SimpleRnnlm`` (vol. 2, 5.5): embedding, one stateful TimeRNN, affine.

    Args:
        vocab_size: V; wordvec_size: D; hidden_size: H (positive ints).
        seed: Seed of the initial weights (None: the global seed, else fresh).
        dtype: Float dtype of the weights (default the backend's, float32).

    Attributes:
        layers: ``[TimeEmbedding, TimeRNN(stateful=True), TimeAffine]``;
        loss_layer: TimeSoftmaxWithLoss; rnn_layer: the TimeRNN.
        params: ``[embed_W, rnn_Wx, rnn_Wh, rnn_b, affine_W, affine_b]``;
        grads: the layers' gradients, in that order.
    """

    _cell: Any = TimeRNN
    _prefix = "rnn"

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
        self._build(self._init_arrays(V, D, H, seed, dtype), None)

    @classmethod
    def _shapes(cls, V: int, D: int, H: int) -> dict[str, tuple[int, ...]]:
        g, p = cls._cell.gates, cls._prefix
        return {
            "embed_W": (V, D),
            f"{p}_Wx": (D, g * H),
            f"{p}_Wh": (H, g * H),
            f"{p}_b": (g * H,),
            "affine_W": (H, V),
            "affine_b": (V,),
        }

    def _build(self, arrays: dict[str, Any], config: Any) -> None:
        self._set_arrays(arrays)
        p = self._prefix
        self.hidden_size = int(arrays[f"{p}_Wh"].shape[0])
        self.layers = [
            TimeEmbedding(arrays["embed_W"]),
            self._cell(arrays[f"{p}_Wx"], arrays[f"{p}_Wh"], arrays[f"{p}_b"], stateful=True),
            TimeAffine(arrays["affine_W"], arrays["affine_b"]),
        ]
        self.loss_layer = TimeSoftmaxWithLoss()
        self._recurrent = [self.layers[1]]
        self.grads: list[Any] = [g for layer in self.layers for g in layer.grads]

    @property
    def rnn_layer(self) -> Any:
        return self.layers[1]


class Rnnlm(SimpleRnnlm):
    """The book's ``Rnnlm`` (vol. 2, 6.5): as :class:`SimpleRnnlm` with a stateful TimeLSTM.

    Args: as :class:`SimpleRnnlm`, with the book's defaults (10000, 100, 100).

    Attributes:
        lstm_layer: The TimeLSTM.
        params: ``[embed_W, lstm_Wx, lstm_Wh, lstm_b, affine_W, affine_b]``.
    """

    _cell = TimeLSTM
    _prefix = "lstm"

    def __init__(
        self,
        vocab_size: int = 10000,
        wordvec_size: int = 100,
        hidden_size: int = 100,
        *,
        seed: int | None = None,
        dtype: Any = None,
    ):
        super().__init__(vocab_size, wordvec_size, hidden_size, seed=seed, dtype=dtype)

    @property
    def lstm_layer(self) -> Any:
        return self.layers[1]


class BetterRnnlm(_Rnnlm):
    """The book's ``BetterRnnlm`` (vol. 2, 6.5.3): two LSTMs, dropout, weight tying.

    ``TimeEmbedding - TimeDropout - TimeLSTM - TimeDropout - TimeLSTM -
    TimeDropout - TimeAffine(embed_W.T, affine_b)``; the tied weight needs
    ``wordvec_size == hidden_size`` (the book's 650 and 650).

    Args:
        vocab_size: The words V (the book's 10000).
        wordvec_size: The embedding size D (the book's 650).
        hidden_size: The LSTMs' size H, equal to D (the book's 650).
        dropout_ratio: The three dropout layers' ratio (the book's 0.5).
        seed: Seed of the initial weights and (derived) of the three
            dropout layers' masks (None: a fresh one, kept in ``config``).
        dtype: Float dtype of the weights (default the backend's, float32).

    Attributes:
        layers, loss_layer, lstm_layers, drop_layers: as the book's.
        params: ``[embed_W, lstm_Wx1, lstm_Wh1, lstm_b1, lstm_Wx2, lstm_Wh2,
            lstm_b2, affine_b]``, the tied ``embed_W`` once; grads: theirs,
            ``grads[0]`` the embedding's gradient plus the affine's transposed.

    Raises:
        ValueError: Bad sizes, ``wordvec_size != hidden_size``, or a
            ``dropout_ratio`` outside ``[0, 1)``.
    """

    _extra_keys = ("dropout_ratio", "seed")
    #: The book's list (its ``BetterRnnlm.pkl``) holds 9 arrays: the affine's
    #: ``embed_W.T`` at position 7, before ``affine_b``; ``params[0]`` here.
    book_aliases = MappingProxyType({7: 0})

    def __init__(
        self,
        vocab_size: int = 10000,
        wordvec_size: int = 650,
        hidden_size: int = 650,
        dropout_ratio: float = 0.5,
        *,
        seed: int | None = None,
        dtype: Any = None,
    ):
        _check_sizes(vocab_size=vocab_size, wordvec_size=wordvec_size, hidden_size=hidden_size)
        if seed is None:
            seed = fresh_seed()
        config = {
            "vocab_size": vocab_size,
            "wordvec_size": wordvec_size,
            "hidden_size": hidden_size,
            "dropout_ratio": dropout_ratio,
            "seed": seed,
        }
        self.array_shapes(config)  # checks it all before drawing
        arrays = self._init_arrays(vocab_size, wordvec_size, hidden_size, seed, dtype)
        self._build(arrays, config)

    @classmethod
    def _checked(cls, config: Any) -> tuple[int, int, int]:
        V, D, H = super()._checked(config)
        if D != H:
            raise ValueError(
                f"{cls.__name__}: weight tying (the affine weight is embed_W.T) needs "
                f"wordvec_size == hidden_size, got {D} and {H}"
            )
        r, seed = config["dropout_ratio"], config["seed"]
        if isinstance(r, bool) or not isinstance(r, numbers.Real) or not 0 <= r < 1:
            raise ValueError(
                f"{cls.__name__} config 'dropout_ratio' must be a number in [0, 1), got {r!r:.80}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ValueError(
                f"{cls.__name__} config 'seed' must be an int in [0, 2**63), got {seed!r:.80}"
            )
        return V, D, H

    @classmethod
    def _shapes(cls, V: int, D: int, H: int) -> dict[str, tuple[int, ...]]:
        return {
            "embed_W": (V, D),
            "lstm_Wx1": (D, 4 * H),
            "lstm_Wh1": (H, 4 * H),
            "lstm_b1": (4 * H,),
            "lstm_Wx2": (H, 4 * H),
            "lstm_Wh2": (H, 4 * H),
            "lstm_b2": (4 * H,),
            "affine_b": (V,),
        }

    def _build(self, arrays: dict[str, Any], config: Any) -> None:
        self._set_arrays(arrays)
        self.hidden_size = int(arrays["lstm_Wh1"].shape[0])
        self.dropout_ratio, self.seed = float(config["dropout_ratio"]), config["seed"]
        a, r = arrays, self.dropout_ratio
        s1, s2, s3 = _dropout_seeds(self.seed, 3)
        self.layers = [
            TimeEmbedding(a["embed_W"]),
            TimeDropout(r, seed=s1),
            TimeLSTM(a["lstm_Wx1"], a["lstm_Wh1"], a["lstm_b1"], stateful=True),
            TimeDropout(r, seed=s2),
            TimeLSTM(a["lstm_Wx2"], a["lstm_Wh2"], a["lstm_b2"], stateful=True),
            TimeDropout(r, seed=s3),
            TimeAffine(a["embed_W"].T, a["affine_b"]),  # weight tying!!
        ]
        self.loss_layer = TimeSoftmaxWithLoss()
        self.lstm_layers = [self.layers[2], self.layers[4]]
        self.drop_layers = [self.layers[1], self.layers[3], self.layers[5]]
        self._recurrent = self.lstm_layers
        embed, lstm1, lstm2, affine = (self.layers[i] for i in (0, 2, 4, 6))
        self.grads: list[Any] = [embed.grads[0], *lstm1.grads, *lstm2.grads, affine.grads[1]]

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "dropout_ratio": self.dropout_ratio, "seed": self.seed}

    def predict(self, xs: Any, train_flg: bool = False) -> Any:
        """Scores ``(N, T, V)``; dropout only when ``train_flg`` (the book's default False)."""
        for layer in self.drop_layers:
            layer.train_flg = train_flg
        # The tied weight, taken afresh: the affine computes with embed_W's values.
        self.layers[-1].params[0] = self._arrays["embed_W"].T
        return super().predict(xs)

    def forward(self, xs: Any, ts: Any, train_flg: bool = True) -> Any:
        """The loss, with dropout unless ``train_flg`` is False (the book's default True)."""
        score = self.predict(xs, train_flg)
        return self.loss_layer.forward(score, self._ids(ts))

    def backward(self, dout: Any = 1) -> Any:
        """Fills ``grads``; ``grads[0]`` = embedding part + the affine's ``dW.T``."""
        out = super().backward(dout)  # the embedding's gradient written last
        dW = self.grads[0]
        _into(dW, dW + self.layers[-1].grads[0].T)
        return out


# ---------------------------------------------------------------- eval_perplexity


def eval_perplexity(
    model: Any, corpus: Any, batch_size: int = 10, time_size: int = 35, *, verbose: bool = True
) -> float:
    """The book's ``eval_perplexity``: ``exp`` of the mean loss over the corpus's batches.

    As the book's: ``max_iters = (len(corpus) - 1) // (batch_size *
    time_size)`` batches, row ``i`` of batch ``k`` starting at ``i * jump +
    k * time_size`` (``jump = (len(corpus) - 1) // batch_size``), positions
    taken modulo the corpus's length; a model whose ``forward`` takes
    ``train_flg`` runs with ``train_flg=False``. The model's state carries
    over between batches (reset it first, as the book's scripts do). The
    batches are cut on the model's device and the losses summed there: one
    read at the end.

    ``corpus``: 1-D integer ids (host or the model's backend); ``verbose``:
    the book's progress lines. Returns a Python float; ValueError for a
    corpus too short for one batch.
    """
    _check_sizes(batch_size=batch_size, time_size=time_size)
    W = model.params[0]
    if not hasattr(corpus, "shape"):
        corpus = np.asarray(corpus)
    corpus = asarray(corpus, backend=backend_of(W))
    xp = get_namespace(corpus)
    corpus_size = int(corpus.shape[0])
    max_iters = (corpus_size - 1) // (batch_size * time_size)
    if corpus.ndim != 1 or max_iters == 0:
        raise ValueError(
            f"eval_perplexity needs a 1-D corpus of more than batch_size * time_size = "
            f"{batch_size * time_size} words, got shape {tuple(corpus.shape)}"
        )
    jump = (corpus_size - 1) // batch_size
    takes_flag = "train_flg" in inspect.signature(model.forward).parameters
    if verbose:
        print("evaluating perplexity ...")
    where = {"dtype": xp.int64, "device": device_of(corpus)}
    starts = xp.reshape(xp.arange(batch_size, **where) * jump, (-1, 1))
    steps = xp.reshape(xp.arange(time_size, **where), (1, -1))
    total = None
    for iters in range(max_iters):
        pos = starts + steps + iters * time_size
        xs = xp.take(corpus, xp.reshape(pos % corpus_size, (-1,)), axis=0)
        ts = xp.take(corpus, xp.reshape((pos + 1) % corpus_size, (-1,)), axis=0)
        xs = xp.reshape(xs, (batch_size, time_size))
        ts = xp.reshape(ts, (batch_size, time_size))
        if takes_flag:
            loss = model.forward(xs, ts, train_flg=False)
        else:
            loss = model.forward(xs, ts)
        total = loss if total is None else total + loss
        if verbose:
            sys.stdout.write(f"\r{iters} / {max_iters}")
            sys.stdout.flush()
    if verbose:
        print("")
    return math.exp(float(to_numpy(total)) / max_iters)


MODELS["SimpleRnnlm"] = SimpleRnnlm
MODELS["Rnnlm"] = Rnnlm
MODELS["BetterRnnlm"] = BetterRnnlm

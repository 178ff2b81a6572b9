"""Vol. 2 ch. 4's word2vec models: ``CBOW`` and ``SkipGram`` with negative sampling.

As the book's ``ch04/cbow.py`` and ``ch04/skip_gram.py``: word ids in,
``Embedding`` input layers sharing ``W_in`` ``(V, H)``, and
:class:`~xpnn.layers.negative_sampling.NegativeSamplingLoss` on ``W_out``
``(V, H)``, both drawn as the book's ``0.01 * np.random.randn(V, H)
.astype('f')`` from xpnn's generator (``seed=``), float32 unless ``dtype``.

* ``contexts``: ``(N, 2 * window_size)`` integer word ids;
* ``target``: ``(N,)`` integer word ids (:func:`xpnn.util.create_contexts_target`).

**Shared weights.** The book lists ``W_in`` once per input layer and
``W_out`` once per EmbeddingDot, and its ``Trainer`` merges them with
``remove_duplicate``. xpnn lists each once: ``params`` ``[W_in, W_out]``,
``grads`` ``[dW_in, dW_out]``, each the sum of its layers' parts (written
by ``backward``), so ``xpnn.Trainer(model, optimizer).fit(contexts, target,
...)`` and ``optimizer.update(model.params, model.grads)`` give the book's
updates.

**Negative samples** are drawn on the device by one
:class:`~xpnn.layers.negative_sampling.UnigramSampler` (``model.sampler``,
shared by a SkipGram's loss layers), seeded by ``seed``.

**Saving.** :func:`xpnn.io.save` writes ``W_in`` and ``W_out`` and the
config ``{vocab_size, hidden_size, window_size, power, sample_size, seed,
word_counts}``: ``word_counts`` is the corpus's count of each word id (V
ints), all the sampler needs of the corpus, so a loaded model samples as the
saved one (from draw 0: the sampler's ``draws`` is a checkpoint's business).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from xpnn.backend import _dtype_name, adopt_host_input, asarray, get_namespace, ops, to_numpy, zeros
from xpnn.functions import check_labels
from xpnn.layers import Embedding
from xpnn.layers.base import _check_config_keys
from xpnn.layers.negative_sampling import NegativeSamplingLoss, UnigramSampler
from xpnn.models.layered import MODELS, _check_sizes, _float_dtype
from xpnn.models.word_vectors import WordVectors
from xpnn.params import ParamList
from xpnn.random import default_rng, fresh_seed

__all__ = ["CBOW", "SkipGram"]

_CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "window_size",
    "power",
    "sample_size",
    "seed",
    "word_counts",
)


class _Word2Vec(WordVectors):
    """What CBOW and SkipGram share: weights, sampler, checks, config and files."""

    #: Trainer.fit takes integer x for these models (the flag admits integer
    #: inputs; here they are word ids, not one-hot rows).
    one_hot_inputs = True

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        window_size: int,
        corpus: Any,
        seed: int | None = None,
        dtype: Any = None,
        *,
        power: float = 0.75,
        sample_size: int = 5,
    ):
        _check_sizes(vocab_size=vocab_size, hidden_size=hidden_size, window_size=window_size)
        dtype = _float_dtype(dtype)
        if seed is None:
            seed = fresh_seed()
        sampler = UnigramSampler(corpus, power, sample_size, seed, vocab_size=vocab_size)
        rng = default_rng(seed)
        V, H = vocab_size, hidden_size
        W_in = 0.01 * rng.standard_normal((V, H), dtype=dtype)
        W_out = 0.01 * rng.standard_normal((V, H), dtype=dtype)
        self._build(W_in, W_out, window_size, sampler)

    def _build(self, W_in: Any, W_out: Any, window_size: int, sampler: UnigramSampler) -> None:
        self.vocab_size, self.hidden_size = (int(d) for d in W_in.shape)
        self.window_size = window_size
        self.sampler = sampler
        # What xpnn.Trainer.fit checks the data against: contexts (N, 2 * window), target (N,).
        self.input_size = (2 * window_size,)
        self.output_size = self.vocab_size
        self._params: Any = ParamList([W_in, W_out], type(self).__name__)

    # ------------------------------------------------------------ saving

    @property
    def config(self) -> dict[str, Any]:
        """What :func:`xpnn.io.save` records (``word_counts`` read to the host here)."""
        s = self.sampler
        return {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "window_size": self.window_size,
            "power": s.power,
            "sample_size": s.sample_size,
            "seed": s.seed,
            "word_counts": [int(c) for c in to_numpy(s.counts).tolist()],
        }

    @classmethod
    def _checked(cls, config: Any) -> tuple[int, int, int]:
        _check_config_keys(cls.__name__, config, _CONFIG_KEYS)
        for name in ("vocab_size", "hidden_size", "window_size", "sample_size"):
            value = config[name]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"{cls.__name__} config {name!r} must be a positive int, got {value!r:.80}"
                )
        power, seed, counts = config["power"], config["seed"], config["word_counts"]
        if (
            isinstance(power, bool)
            or not isinstance(power, numbers.Real)
            or not 0 <= power < math.inf
        ):
            raise ValueError(
                f"{cls.__name__} config 'power' must be a finite number >= 0, got {power!r:.80}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ValueError(
                f"{cls.__name__} config 'seed' must be an int in [0, 2**63), got {seed!r:.80}"
            )
        V = config["vocab_size"]
        if (
            not isinstance(counts, list)
            or len(counts) != V
            or not all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 2**62 for c in counts
            )
        ):
            raise ValueError(
                f"{cls.__name__} config 'word_counts' must be a list of {V} ints >= 0 (each "
                "word's count in the corpus)"
            )
        if sum(c > 0 for c in counts) < config["sample_size"] + 1:
            raise ValueError(
                f"{cls.__name__} config 'word_counts' has fewer than sample_size + 1 = "
                f"{config['sample_size'] + 1} words counted"
            )
        return V, config["hidden_size"], config["window_size"]

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """``{"W_in": (V, H), "W_out": (V, H)}``, allocating nothing.

        Raises:
            ValueError: ``config`` lacks a key or has a bad value (the message names it).
        """
        V, H, _ = cls._checked(config)
        return {"W_in": (V, H), "W_out": (V, H)}

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any = None) -> Any:
        """A model of ``config`` with zero weights and its sampler, on the active backend."""
        V, H, window = cls._checked(config)
        dtype = _float_dtype(dtype)
        counts = asarray(np.asarray(config["word_counts"], dtype=np.int64))
        sampler = UnigramSampler.from_counts(
            counts, config["power"], config["sample_size"], config["seed"]
        )
        model = cls.__new__(cls)
        model._build(zeros((V, H), dtype=dtype), zeros((V, H), dtype=dtype), window, sampler)
        return model

    # ------------------------------------------------------------ the data

    def _words(self, who: str, contexts: Any, target: Any) -> tuple[Any, Any, Any]:
        """``(ops, contexts, target)`` checked; nothing changes before.

        Raises:
            TypeError: Not arrays, or not integer.
            ValueError: Shapes other than ``(N, 2 * window_size)`` and ``(N,)``
                with N > 0, ids out of range (where read).
            xpnn.BackendMismatchError: Another backend or device than the weights.
        """
        W = self._params[0]
        for name, a in (("contexts", contexts), ("target", target)):
            if not (hasattr(a, "shape") and hasattr(a, "dtype")):
                raise TypeError(
                    f"{who}: {name} must be an array on the model's backend, got "
                    f"{type(a).__name__}; make one with xpnn.asarray"
                )
        contexts, target = adopt_host_input(contexts, W), adopt_host_input(target, W)
        k = ops(contexts, target, W)
        for name, a in (("contexts", contexts), ("target", target)):
            if not k.isdtype(a.dtype, "integral"):
                raise TypeError(
                    f"{who} takes integer word ids, got {name} of dtype {_dtype_name(a.dtype)}; "
                    f"convert it with xpnn.asarray({name}, dtype='int64')"
                )
        c, shape = 2 * self.window_size, tuple(contexts.shape)
        if len(shape) != 2 or shape[1] != c or shape[0] == 0 or tuple(target.shape) != shape[:1]:
            raise ValueError(
                f"{who} takes contexts of shape (N, {c}) with N > 0 (window_size "
                f"{self.window_size}) and target of shape (N,), got contexts of shape {shape} "
                f"and target of shape {tuple(target.shape)}"
            )
        check_labels(contexts, self.vocab_size, f"{who} contexts")
        check_labels(target, self.vocab_size, f"{who} target")
        return k, contexts, target

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, hidden_size="
            f"{self.hidden_size}, window_size={self.window_size}, "
            f"dtype={_dtype_name(self._params[0].dtype)})"
        )


class CBOW(_Word2Vec):
    """The book's ``CBOW`` (vol. 2, 4.3): the target word from its context words.

    ``h`` = the mean of the ``2 * window_size`` context words' rows of
    ``W_in``; the loss is ``NegativeSamplingLoss(W_out)`` of ``h`` and the
    target (one positive and ``sample_size`` negative words).

    Args:
        vocab_size: V; hidden_size: H; window_size: context words on each
            side (positive ints).
        corpus: 1-D integer word ids (ids ``0..V-1``), counted for the sampler.
        seed: Seed of the initial weights and of the sampler (None: a fresh
            one, recorded in ``sampler.seed``).
        dtype: Float dtype of the weights (default the backend's, float32).
        power: The sampler's exponent (the book's 0.75).
        sample_size: Negative samples per target (the book's 5).

    Attributes:
        in_layers: ``2 * window_size`` Embedding layers, all of ``W_in``.
        ns_loss: The NegativeSamplingLoss of ``W_out``; sampler: its sampler.
        params: ``[W_in, W_out]``; grads: ``[dW_in, dW_out]`` (``dW_in`` the
            sum of the input layers' parts, which they add into: they share
            it; ``dW_out`` is ``ns_loss.grads[0]``).
        word_vecs: ``W_in``.

    Raises:
        ValueError, TypeError: Bad sizes, corpus, power or sample_size.
    """

    def _build(self, W_in: Any, W_out: Any, window_size: int, sampler: UnigramSampler) -> None:
        super()._build(W_in, W_out, window_size, sampler)
        dW_in = get_namespace(W_in).zeros_like(W_in)  # every input layer adds into it
        self.in_layers = [Embedding(W_in, grad=dW_in) for _ in range(2 * window_size)]
        self.ns_loss = NegativeSamplingLoss.from_sampler(W_out, sampler)
        self.grads: list[Any] = [dW_in, self.ns_loss.grads[0]]

    def forward(self, contexts: Any, target: Any) -> Any:
        """The loss of the batch, a 0-d array in the weights' dtype.

        Raises:
            TypeError: Not integer word ids on the weights' backend.
            ValueError: Shapes that do not fit, or ids out of range (where
                read); everything is checked before any layer changes.
        """
        _, contexts, target = self._words("CBOW.forward", contexts, target)
        h = None
        for i, layer in enumerate(self.in_layers):
            part = layer.forward(contexts[:, i])
            h = part if h is None else h + part
        h = h * (1 / len(self.in_layers))
        return self.ns_loss.forward(h, target)

    def backward(self, dout: Any = 1) -> None:
        """Fills ``grads`` in place; returns None."""
        dout = self.ns_loss.backward(dout)
        dout = dout * (1 / len(self.in_layers))
        Embedding.zero_shared_grad(self.grads[0])
        for layer in self.in_layers:
            layer.backward(dout)  # adds its rows into grads[0]
        return None


class SkipGram(_Word2Vec):
    """The book's ``SkipGram`` (vol. 2, 4.3): the context words from the target word.

    ``h = W_in[target]``; the loss is the sum over the ``2 * window_size``
    context words of ``NegativeSamplingLoss(W_out)`` of ``h`` and that word.

    Args: as :class:`CBOW`.

    Attributes:
        in_layer: The Embedding of ``W_in``.
        loss_layers: ``2 * window_size`` NegativeSamplingLoss layers of
            ``W_out``, drawing from the one ``sampler`` (one after the other).
        params: ``[W_in, W_out]``; grads: ``[dW_in, dW_out]`` (``dW_out`` the
            sum of the loss layers' parts, which they add into).
        word_vecs: ``W_in``.
    """

    def _build(self, W_in: Any, W_out: Any, window_size: int, sampler: UnigramSampler) -> None:
        super()._build(W_in, W_out, window_size, sampler)
        self.in_layer = Embedding(W_in)
        dW_out = get_namespace(W_out).zeros_like(W_out)  # every loss layer adds into it
        self.loss_layers = [
            NegativeSamplingLoss.from_sampler(W_out, sampler, grad=dW_out)
            for _ in range(2 * window_size)
        ]
        self.grads: list[Any] = [self.in_layer.grads[0], dW_out]

    def forward(self, contexts: Any, target: Any) -> Any:
        """The loss of the batch (the sum over context words), a 0-d array."""
        _, contexts, target = self._words("SkipGram.forward", contexts, target)
        h = self.in_layer.forward(target)
        loss = None
        for i, layer in enumerate(self.loss_layers):
            part = layer.forward(h, contexts[:, i])
            loss = part if loss is None else loss + part
        return loss

    def backward(self, dout: Any = 1) -> None:
        """Fills ``grads`` in place; returns None."""
        Embedding.zero_shared_grad(self.grads[1])
        dh = None
        for layer in self.loss_layers:
            part = layer.backward(dout)  # adds into grads[1]
            dh = part if dh is None else dh + part
        self.in_layer.backward(dh)
        return None


MODELS["CBOW"] = CBOW
MODELS["SkipGram"] = SkipGram

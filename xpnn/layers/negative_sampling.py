"""Vol. 2, ch. 4's negative sampling: ``UnigramSampler`` and ``NegativeSamplingLoss``.

As the book's ``ch04/negative_sampling_layer.py``: the same names, arguments,
attributes (``sample_size``, ``vocab_size``, ``word_p``, ``sampler``,
``loss_layers``, ``embed_dot_layers``, ``params``, ``grads``) and math. Two
things differ, each said where it is done:

* the negative samples are drawn on the device (no host round trip inside a
  training step), with the same ids on every backend for one seed
  (:meth:`UnigramSampler.get_negative_sample`, by
  :func:`xpnn.sampling.choice_without_replacement`);
* the weight ``W`` that the ``sample_size + 1`` EmbeddingDot layers share is
  listed once in ``params``, its gradient the sum of their parts (what the
  book's ``Trainer`` makes with ``remove_duplicate``), as
  :mod:`xpnn.models.word2vec_simple` does with ``W_in``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from xpnn.backend import _dtype_name, adopt_host_input, device_of, get_namespace, ops
from xpnn.backend.scatter import bincount
from xpnn.functions import check_labels
from xpnn.layers.base import _check_input
from xpnn.layers.embedding import Embedding, EmbeddingDot, SigmoidWithLoss
from xpnn.random import fresh_seed
from xpnn.sampling import choice_without_replacement, cumulative_table

__all__ = ["NegativeSamplingLoss", "UnigramSampler"]


def _positive_int(value: Any, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{who} must be a positive int, got {value!r:.80}")
    return int(value)


def _power(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"power must be a number (the book's 0.75), got {type(value).__name__}")
    if not (math.isfinite(float(value)) and float(value) >= 0):
        raise ValueError(f"power must be a finite number >= 0 (the book's 0.75), got {value!r}")
    return float(value)


def _seed(value: Any) -> int:
    if value is None:
        return fresh_seed()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {type(value).__name__}")
    if not 0 <= value < 2**63:
        raise ValueError(f"seed must be in 0 <= seed < 2**63, got {value}")
    return int(value)


class UnigramSampler:
    """Negative samples drawn as the book's: word ``i`` with probability ``p_i``.

    ``p_i = count_i ** power / sum_j count_j ** power``, the counts of each
    word id in ``corpus`` (:func:`xpnn.backend.scatter.bincount`, on the
    corpus's device). ``word_p`` holds them (float64, ``(vocab_size,)``).

    :meth:`get_negative_sample` draws, for each target word, ``sample_size``
    distinct words other than the target: distributed as the book's CPU path
    (``np.random.choice(V, sample_size, replace=False, p)`` with ``p[target]
    = 0`` renormalised, i.e. drawing one word after the other, each from the
    words not drawn yet), computed on the device without a loop over rows.

    Args:
        corpus: 1-D integer word ids of any backend (xpnn.datasets.ptb's, or
            :func:`xpnn.util.preprocess`'s).
        power: The exponent (the book's 0.75), a finite number >= 0.
        sample_size: Negative samples per target, a positive int; at most
            the number of words in ``corpus`` less one.
        seed: An int in ``0 <= seed < 2**63``: the samples are a function of
            ``(seed, draws, target)``, the same on every backend. None takes
            one from :func:`xpnn.random.fresh_seed` (recorded in ``seed``).
        vocab_size: The words V (ids ``0..V-1``); default the largest id in
            ``corpus`` plus one. Words absent from the corpus are never drawn.

    Attributes:
        sample_size, vocab_size, seed: As given (``seed`` an int).
        counts: ``(V,)`` int64, each word's count, on the corpus's device.
        word_p: ``(V,)`` float64 probabilities, on the corpus's device.
        draws: Calls of :meth:`get_negative_sample` so far. The next call
            draws with key ``(seed, draws)``: a checkpoint that records
            ``seed`` and ``draws`` (and sets ``draws`` back) resumes the
            very samples an uninterrupted run would draw.

    Building reads three numbers to the host once (the largest and smallest
    id, the words counted): never during a training step.

    Raises:
        TypeError: ``corpus`` is not an integer array, ``power`` not a
            number, ``seed`` not an int.
        ValueError: ``corpus`` is not 1-D or is empty, holds a negative id or
            one ``>= vocab_size``; ``power`` or ``sample_size`` out of range;
            fewer than ``sample_size + 1`` distinct words.
    """

    def __init__(
        self,
        corpus: Any,
        power: float,
        sample_size: int,
        seed: int | None = None,
        *,
        vocab_size: int | None = None,
    ):
        if not (hasattr(corpus, "shape") and hasattr(corpus, "dtype")):
            raise TypeError(
                f"UnigramSampler: corpus must be an array of word ids, got "
                f"{type(corpus).__name__}; make one with xpnn.asarray(ids, dtype='int64')"
            )
        xp = get_namespace(corpus)
        if not xp.isdtype(corpus.dtype, "integral"):
            raise TypeError(
                f"UnigramSampler: corpus must hold integer word ids, got dtype "
                f"{_dtype_name(corpus.dtype)}; convert it with xpnn.asarray(corpus, dtype='int64')"
            )
        if corpus.ndim != 1 or corpus.shape[0] == 0:
            raise ValueError(
                f"UnigramSampler: corpus must be 1-D and not empty, got shape {tuple(corpus.shape)}"
            )
        power, sample_size = _power(power), _positive_int(sample_size, "sample_size")
        low, high = int(xp.min(corpus)), int(xp.max(corpus))  # read once, at build
        if vocab_size is None:
            vocab_size = high + 1
        vocab_size = _positive_int(vocab_size, "vocab_size")
        if low < 0 or high >= vocab_size:
            raise ValueError(
                f"UnigramSampler: corpus holds word ids from {low} to {high}, outside "
                f"0..{vocab_size - 1}; pass the vocabulary's size as vocab_size"
            )
        counts = bincount(corpus, vocab_size)
        self._setup(counts, power, sample_size, _seed(seed))

    @classmethod
    def from_counts(
        cls, counts: Any, power: float, sample_size: int, seed: int | None = None
    ) -> UnigramSampler:
        """A sampler of word counts ``(V,)`` (non-negative integers), as a model file keeps them.

        Raises:
            TypeError, ValueError: As the constructor (the message names counts).
        """
        xp = get_namespace(counts)
        if not xp.isdtype(counts.dtype, "integral") or counts.ndim != 1 or counts.shape[0] == 0:
            raise ValueError(
                f"UnigramSampler: counts must be a 1-D integer array (V,), got shape "
                f"{tuple(counts.shape)} of {_dtype_name(counts.dtype)}"
            )
        if int(xp.min(counts)) < 0:
            raise ValueError("UnigramSampler: counts must be >= 0")
        sampler = cls.__new__(cls)
        sampler._setup(
            xp.astype(counts, xp.int64),
            _power(power),
            _positive_int(sample_size, "sample_size"),
            _seed(seed),
        )
        return sampler

    def _setup(self, counts: Any, power: float, sample_size: int, seed: int) -> None:
        xp = get_namespace(counts)
        words = int(xp.sum(xp.astype(counts > 0, xp.int64)))  # read once, at build
        if sample_size > words - 1:
            raise ValueError(
                f"UnigramSampler: sample_size {sample_size} needs at least {sample_size + 1} "
                f"distinct words (a target and that many others), the corpus has {words}; "
                "lower sample_size"
            )
        self.sample_size = sample_size
        self.vocab_size = int(counts.shape[0])
        self.power = power
        self.seed = seed
        self.draws = 0
        self.counts = counts
        # The book's np.power(counts, power) / sum (words never seen keep p = 0),
        # built on the host once: the same table on every backend.
        self._table = cumulative_table(counts, power, sample_size)
        self.word_p = self._table.p

    def _check_target(self, target: Any) -> Any:
        """``target`` ``(N,)`` integer ids on the sampler's device, checked (nothing changes)."""
        if not (hasattr(target, "shape") and hasattr(target, "dtype")):
            raise TypeError(
                f"get_negative_sample: target must be an array of word ids, got "
                f"{type(target).__name__}; make one with xpnn.asarray(ids, dtype='int64')"
            )
        target = adopt_host_input(target, self.word_p)
        k = ops(target, self.word_p)
        if not k.isdtype(target.dtype, "integral"):
            raise TypeError(
                f"get_negative_sample: target must hold integer word ids, got dtype "
                f"{_dtype_name(target.dtype)}; convert it with xpnn.asarray(t, dtype='int64')"
            )
        if target.ndim != 1:
            raise ValueError(
                f"get_negative_sample: target must be 1-D (N,), got shape {tuple(target.shape)}"
            )
        check_labels(target, self.vocab_size, "get_negative_sample target")
        return target

    def get_negative_sample(self, target: Any) -> Any:
        """``sample_size`` distinct negative words for each target word, drawn on the device.

        The book's CPU path, for all rows at once: each row draws one word
        after the other, each from the words not drawn yet and not the
        target, in proportion to ``word_p``
        (:func:`xpnn.sampling.choice_without_replacement`, keyed ``(seed,
        draws)``). So: no duplicate in a row, never the target, words absent
        from the corpus never. Nothing is read to the host and nothing of
        size ``(N, V)`` is made; ``draws`` goes up by one.

        Args:
            target: ``(N,)`` integer word ids on the sampler's device.

        Returns:
            ``(N, sample_size)`` int64 word ids on that device.

        Raises:
            TypeError: ``target`` is not an integer array.
            ValueError: ``target`` is not 1-D, or holds an id outside
                ``0..vocab_size-1`` (where reading it is free).
            xpnn.BackendMismatchError: ``target`` is on another device.
        """
        target = self._check_target(target)
        key = (self.seed, self.draws)
        sample = choice_without_replacement(self._table, self.sample_size, target, key)
        self.draws += 1
        return sample

    def __repr__(self) -> str:
        return (
            f"UnigramSampler(vocab_size={self.vocab_size}, power={self.power}, "
            f"sample_size={self.sample_size}, seed={self.seed}, draws={self.draws})"
        )


class NegativeSamplingLoss:
    """The book's negative sampling loss: one positive and ``sample_size`` negative words.

    ``forward(h, target)``: ``h`` ``(N, D)`` in W's float dtype, ``target``
    ``(N,)`` integer ids; draws ``negative_sample`` ``(N, sample_size)`` from
    ``sampler`` and returns the 0-d loss ``L(target, 1) + sum_i L(neg_i, 0)``,
    each ``L`` the mean :class:`SigmoidWithLoss` of the scores
    ``EmbeddingDot(h, ids)``. ``backward(dout=1)`` returns ``dh`` ``(N, D)``
    and writes ``grads``.

    Args:
        W: The output weight ``(V, D)``, floating point.
        corpus: 1-D integer word ids (for :class:`UnigramSampler`, whose
            ``vocab_size`` is V).
        power: The sampler's exponent, as the book's (0.75).
        sample_size: Negative samples per target, as the book's (5).
        seed: The sampler's seed (see :class:`UnigramSampler`).

    Attributes:
        sampler: The :class:`UnigramSampler`.
        loss_layers: ``sample_size + 1`` SigmoidWithLoss layers (positive first).
        embed_dot_layers: ``sample_size + 1`` EmbeddingDot layers, all of W.
        params: ``[W]``: the book lists W ``sample_size + 1`` times (one per
            EmbeddingDot); xpnn once, so an optimizer updates it once.
        grads: ``[dW]``, the sum of the EmbeddingDot layers' gradients:
            they share it and add their rows into it in :meth:`backward`
            (no ``(V, D)`` gradient per layer).
        negative_sample: The last draw, ``(N, sample_size)`` int64.
    """

    def __init__(
        self,
        W: Any,
        corpus: Any,
        power: float = 0.75,
        sample_size: int = 5,
        seed: int | None = None,
    ):
        vocab = int(W.shape[0]) if getattr(W, "ndim", 0) == 2 else None
        if vocab is None:
            raise ValueError(
                f"NegativeSamplingLoss: W must be a 2-D array (V, D), got "
                f"{getattr(W, 'shape', type(W).__name__)}"
            )
        sampler = UnigramSampler(corpus, power, sample_size, seed, vocab_size=vocab)
        self._build(W, sampler)

    @classmethod
    def from_sampler(
        cls, W: Any, sampler: UnigramSampler, *, grad: Any = None
    ) -> NegativeSamplingLoss:
        """A loss of W ``(V, D)`` drawing from ``sampler`` (one sampler may serve several).

        ``grad``: a gradient of W that several losses share (SkipGram's);
        :meth:`backward` then adds into it, and its owner zeroes it first.

        Raises:
            ValueError: ``sampler.vocab_size`` is not V.
        """
        if getattr(W, "ndim", 0) != 2 or int(W.shape[0]) != sampler.vocab_size:
            raise ValueError(
                f"NegativeSamplingLoss: W must be ({sampler.vocab_size}, D) for a sampler of "
                f"{sampler.vocab_size} words, got shape {tuple(getattr(W, 'shape', ()))}"
            )
        loss = cls.__new__(cls)
        loss._build(W, sampler, grad)
        return loss

    def _build(self, W: Any, sampler: UnigramSampler, grad: Any = None) -> None:
        self.sample_size = sampler.sample_size
        self.sampler = sampler
        self.loss_layers = [SigmoidWithLoss() for _ in range(self.sample_size + 1)]
        self._owns_grad = grad is None
        dW = get_namespace(W).zeros_like(W) if grad is None else grad
        # One gradient that every EmbeddingDot adds its rows into: the book's
        # sum over its sample_size + 1 copies of W (remove_duplicate).
        self.embed_dot_layers = [EmbeddingDot(W, grad=dW) for _ in range(self.sample_size + 1)]
        self.params = [W]
        self.grads = [dW]
        self.negative_sample: Any = None
        self._labels: dict[int, tuple[Any, Any]] = {}

    def _check(self, h: Any, target: Any) -> tuple[Any, Any]:
        """``h`` and ``target`` checked, on W's device; nothing changes before."""
        (W,) = self.params
        for name, a in (("h", h), ("target", target)):
            if not (hasattr(a, "shape") and hasattr(a, "dtype")):
                raise TypeError(
                    f"NegativeSamplingLoss: {name} must be an array on W's backend, got "
                    f"{type(a).__name__}; make one with xpnn.asarray"
                )
        h, target = adopt_host_input(h, W), adopt_host_input(target, W)
        k = ops(W, h, target)
        _check_input(k, h, "NegativeSamplingLoss", W)
        if not k.isdtype(target.dtype, "integral"):
            raise TypeError(
                f"NegativeSamplingLoss takes integer target ids, got dtype "
                f"{_dtype_name(target.dtype)}; convert them with xpnn.asarray(t, dtype='int64')"
            )
        n = int(h.shape[0])
        if (
            h.ndim != 2
            or tuple(h.shape) != (n, W.shape[1])
            or n == 0
            or tuple(target.shape) != (n,)
        ):
            raise ValueError(
                f"NegativeSamplingLoss takes h (N, {W.shape[1]}) with N > 0 and target (N,), "
                f"got h of shape {tuple(h.shape)} and target of shape {tuple(target.shape)}"
            )
        check_labels(target, int(W.shape[0]), "NegativeSamplingLoss target")
        return h, target

    def _labels_for(self, n: int, like: Any) -> tuple[Any, Any]:
        """The book's ``correct_label`` (ones) and ``negative_label`` (zeros), ``(n,)`` int64."""
        if n not in self._labels:
            xp, dev = get_namespace(like), device_of(like)
            self._labels = {
                n: (
                    xp.ones((n,), dtype=xp.int64, device=dev),
                    xp.zeros((n,), dtype=xp.int64, device=dev),
                )
            }
        return self._labels[n]

    def forward(self, h: Any, target: Any) -> Any:
        """The loss of ``h`` ``(N, D)`` against ``target`` ``(N,)``: a 0-d array in W's dtype.

        Raises:
            TypeError: ``h`` not in W's float dtype, or ``target`` not integer.
            ValueError: Shapes that do not fit, N = 0, an id out of range
                (where read). Nothing (the sampler's ``draws`` included)
                changes before these checks pass.
            xpnn.BackendMismatchError: Inputs on another device than W.
        """
        h, target = self._check(h, target)
        batch_size = target.shape[0]
        negative_sample = self.sampler.get_negative_sample(target)
        self.negative_sample = negative_sample

        # The positive word.
        correct_label, negative_label = self._labels_for(batch_size, h)
        score = self.embed_dot_layers[0].forward(h, target)
        loss = self.loss_layers[0].forward(score, correct_label)

        # The negative words.
        for i in range(self.sample_size):
            negative_target = negative_sample[:, i]
            score = self.embed_dot_layers[1 + i].forward(h, negative_target)
            loss = loss + self.loss_layers[1 + i].forward(score, negative_label)
        return loss

    def backward(self, dout: Any = 1) -> Any:
        """``dh`` ``(N, D)``; writes ``grads[0]``, the sum of every EmbeddingDot's dW.

        Raises:
            RuntimeError: No forward pass before.
        """
        if self.negative_sample is None:
            raise RuntimeError(
                "NegativeSamplingLoss.backward needs a forward pass first: call forward(h, target)"
            )
        if self._owns_grad:
            Embedding.zero_shared_grad(self.grads[0])
        dh = None
        for l0, l1 in zip(self.loss_layers, self.embed_dot_layers, strict=True):
            dscore = l0.backward(dout)
            part = l1.backward(dscore)  # adds its rows into grads[0]
            dh = part if dh is None else dh + part
        return dh

    def __repr__(self) -> str:
        W = self.params[0]
        return (
            f"NegativeSamplingLoss(W of shape {tuple(W.shape)}, sample_size={self.sample_size}, "
            f"seed={self.sampler.seed})"
        )

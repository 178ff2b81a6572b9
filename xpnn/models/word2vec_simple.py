"""Vol. 2 ch. 3's word2vec models: ``SimpleCBOW`` and ``SimpleSkipGram``.

Both read words as one-hot rows, window size 1 as the book's ``ch03``: each
target word has two context words, the one before and the one after it.

* ``contexts``: ``(N, 2, V)``, the two context words of each sample;
* ``target``: ``(N, V)``, the target word of each sample;

V is ``vocab_size``. Both models have an input weight ``W_in`` ``(V, H)``,
whose rows are the word vectors (``word_vecs``), and an output weight
``W_out`` ``(H, V)``, drawn as the book's ``0.01 * np.random.randn(...)
.astype('f')`` from xpnn's generator (``seed=``), in float32 unless
``dtype`` is given.

**Shared weights.** The book's ``SimpleCBOW`` gives ``W_in`` to both of its
input ``MatMul`` layers and lists it twice (``params`` ``[W_in, W_in,
W_out]``, ``grads`` ``[dW_in0, dW_in1, dW_out]``); its ``Trainer`` merges the
two with ``remove_duplicate`` (one ``W_in``, gradient ``dW_in0 + dW_in1``)
before each update. xpnn lists each array once instead: ``params`` ``[W_in,
W_out]`` and ``grads`` ``[dW_in0 + dW_in1, dW_out]`` (the sum written in place
by :meth:`SimpleCBOW.backward`), what ``remove_duplicate`` makes of the
book's lists. So ``xpnn.Trainer(model, optimizer).fit(...)`` and a loop of
``optimizer.update(model.params, model.grads)`` give the book's updates with
any optimizer: one listed twice would be updated twice per step, and Adam
would keep two moments for it. Each input layer keeps its own part in its
``grads`` (``model.in_layer0.grads[0]``). ``SimpleSkipGram`` shares nothing;
its lists are the book's.

Both save and load with :mod:`xpnn.io` (config ``{"vocab_size": V,
"hidden_size": H}``, arrays ``W_in`` and ``W_out``) and have the book's
``save_params``/``load_params`` (vol. 2's: ``ClassName.pkl`` in float16).
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import _dtype_name, adopt_host_input, get_namespace, ops, zeros
from xpnn.layers import MatMul, SoftmaxWithLoss
from xpnn.layers.base import _config_sizes, _into
from xpnn.models.layered import _WIDER, MODELS, _check_sizes, _float_dtype
from xpnn.models.word_vectors import WordVectors
from xpnn.params import ParamList
from xpnn.random import default_rng

__all__ = ["CONTEXT_WORDS", "SimpleCBOW", "SimpleSkipGram"]

#: Context words per target: window size 1, one word on either side (the book's ch. 3).
CONTEXT_WORDS = 2


class _SimpleWord2Vec(WordVectors):
    """What SimpleCBOW and SimpleSkipGram share: weights, checks, config and files."""

    #: The inputs are one-hot words: integer and boolean arrays are taken too (the
    #: book's ``convert_one_hot`` gives int32), converted exactly to the weights' dtype.
    one_hot_inputs = True

    def __init__(
        self, vocab_size: int, hidden_size: int, *, seed: int | None = None, dtype: Any = None
    ):
        _check_sizes(vocab_size=vocab_size, hidden_size=hidden_size)
        dtype = _float_dtype(dtype)
        rng = default_rng(seed)
        V, H = vocab_size, hidden_size
        # The book's 0.01 * np.random.randn(V, H).astype('f'): draws rounded to
        # the dtype first, then scaled in it.
        W_in = 0.01 * rng.standard_normal((V, H), dtype=dtype)
        W_out = 0.01 * rng.standard_normal((H, V), dtype=dtype)
        self._build(W_in, W_out)

    def _build(self, W_in: Any, W_out: Any) -> None:
        """The layers around ``W_in`` ``(V, H)`` and ``W_out`` ``(H, V)`` (subclasses add them)."""
        self.vocab_size, self.hidden_size = (int(d) for d in W_in.shape)
        # What xpnn.Trainer.fit checks the data against: contexts (N, 2, V),
        # target (N, V) one-hot.
        self.input_size = (CONTEXT_WORDS, self.vocab_size)
        self.output_size = self.vocab_size
        self._params: Any = ParamList([W_in, W_out], type(self).__name__)
        self._buffers: dict[str, Any] = {}

    # ------------------------------------------------------------ saving

    @property
    def config(self) -> dict[str, Any]:
        """``{"vocab_size": V, "hidden_size": H}``: what :func:`xpnn.io.save` records."""
        return {"vocab_size": self.vocab_size, "hidden_size": self.hidden_size}

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """``{"W_in": (V, H), "W_out": (H, V)}`` for ``config``, allocating nothing.

        Raises:
            ValueError: ``config`` is not ``{"vocab_size": V, "hidden_size":
                H}`` of positive ints (the message names the key).
        """
        V, H = _config_sizes(cls, config, "vocab_size", "hidden_size")
        return {"W_in": (V, H), "W_out": (H, V)}

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any = None) -> Any:
        """A model of ``config`` with zero weights, on the active backend.

        Raises:
            ValueError: As :meth:`array_shapes`.
        """
        V, H = cls.array_shapes(config)["W_in"]
        dtype = _float_dtype(dtype)
        model = cls.__new__(cls)
        model._build(zeros((V, H), dtype=dtype), zeros((H, V), dtype=dtype))
        return model

    # ------------------------------------------------------------ the data

    def _words(self, who: str, contexts: Any, target: Any) -> tuple[Any, Any, Any]:
        """``(ops, contexts, target)`` checked, in ``W_in``'s dtype; nothing changes before.

        Raises:
            TypeError: Not arrays, or a float dtype wider than the weights'.
            ValueError: Shapes other than ``(N, 2, V)`` and ``(N, V)``, N > 0.
            xpnn.BackendMismatchError: On another backend or device than the weights.
        """
        W = self._params[0]
        for name, a in (("contexts", contexts), ("target", target)):
            if not (hasattr(a, "shape") and hasattr(a, "dtype")):
                raise TypeError(
                    f"{who}: {name} must be an array on the model's backend, got "
                    f"{type(a).__name__}; make one with xpnn.asarray"
                )
        # NumPy data and a PyTorch CPU model share host memory: wrapped, not copied.
        contexts, target = adopt_host_input(contexts, W), adopt_host_input(target, W)
        k = ops(contexts, target, W)
        V, c = self.vocab_size, CONTEXT_WORDS
        shape = tuple(contexts.shape)
        if len(shape) != 3 or shape[1:] != (c, V) or shape[0] == 0:
            raise ValueError(
                f"{who} takes one-hot contexts of shape (N, {c}, {V}) with N > 0 (window "
                f"size 1: the word before and the word after each target, of {V} words), "
                f"got shape {shape}"
            )
        n = shape[0]
        if tuple(target.shape) != (n, V):
            raise ValueError(
                f"{who} takes one-hot targets of shape ({n}, {V}) for contexts of shape "
                f"{shape}, got shape {tuple(target.shape)}"
            )
        return (
            k,
            self._in_dtype(k, who, "contexts", contexts),
            self._in_dtype(k, who, "target", target),
        )

    def _in_dtype(self, k: Any, who: str, name: str, a: Any) -> Any:
        """One-hot words ``a`` in the weights' dtype (the checks are done before any cast).

        Integers and booleans (the book's ``convert_one_hot`` gives int32)
        become the weights' dtype (0 and 1 are exact in every float), as do
        narrower floats; a wider float is refused, not rounded.
        """
        W = self._params[0]
        if a.dtype == W.dtype:
            return a
        got, want = _dtype_name(a.dtype), _dtype_name(W.dtype)
        exact = k.isdtype(a.dtype, "bool") or k.isdtype(a.dtype, "integral")
        if not (exact or want in _WIDER.get(got, ())):
            raise TypeError(
                f"{who} computes in {want} (its parameters), but {name} is {got}: convert "
                f"it with xpnn.asarray({name}, dtype='{want}'), or build the model with "
                f"dtype='{got}'"
            )
        return k.xp.astype(a, W.dtype)

    def _buffer(self, k: Any, name: str, like: Any) -> Any:
        """A reused array of ``like``'s shape and dtype (NumPy, CuPy), else None."""
        return k.buffer(self._buffers, name, tuple(like.shape), like.dtype, like)

    def __repr__(self) -> str:
        W_in = self._params[0]
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, hidden_size="
            f"{self.hidden_size}, dtype={_dtype_name(W_in.dtype)})"
        )


class SimpleCBOW(_SimpleWord2Vec):
    """The book's ``SimpleCBOW`` (vol. 2, 3.4): the target word from its two context words.

    ``h = (c0 @ W_in + c1 @ W_in) * 0.5``, scores ``h @ W_out``, softmax with
    cross-entropy against the target.

    Args:
        vocab_size: V, the words (a positive int).
        hidden_size: H, the size of a word vector (a positive int).
        seed: Seed of the initial weights (the same weights on every backend).
        dtype: Float dtype of the weights (the backend's default, float32,
            if omitted; ``"float64"`` for gradient checks).

    Attributes:
        in_layer0, in_layer1: The ``MatMul`` layers of the two context words,
            holding the same ``W_in`` ``(V, H)``.
        out_layer: The ``MatMul`` of ``W_out`` ``(H, V)``; ``loss_layer``: SoftmaxWithLoss.
        params: ``[W_in, W_out]``, each once (the book lists ``W_in`` twice:
            see the module docs).
        grads: ``[dW_in, dW_out]``: ``dW_in`` is ``in_layer0.grads[0] +
            in_layer1.grads[0]``, written by :meth:`backward`; ``dW_out`` is
            ``out_layer.grads[0]``.
        word_vecs: ``W_in``.
        vocab_size, hidden_size: V and H.

    Raises:
        ValueError: A size that is not a positive int.
    """

    def _build(self, W_in: Any, W_out: Any) -> None:
        super()._build(W_in, W_out)
        self.in_layer0 = MatMul(W_in)
        self.in_layer1 = MatMul(W_in)
        self.out_layer = MatMul(W_out)
        self.loss_layer = SoftmaxWithLoss()
        # The shared W_in's gradient: both input layers' parts, summed by backward.
        dW_in = get_namespace(W_in).zeros_like(W_in)
        self.grads: list[Any] = [dW_in, self.out_layer.grads[0]]

    def forward(self, contexts: Any, target: Any) -> Any:
        """The mean loss of the batch, a 0-d array on the weights' device.

        Args:
            contexts: One-hot ``(N, 2, V)``: the word before and the word
                after each target (float, or integer/boolean one-hot, which
                is converted to the weights' dtype).
            target: One-hot ``(N, V)``.

        Raises:
            ValueError: Other shapes, or N = 0.
            TypeError: Not arrays, or floats wider than the weights.
            xpnn.BackendMismatchError: Another backend or device than the weights.

        Everything is checked before any layer changes: after a refusal,
        :meth:`backward` still answers for the last batch taken.
        """
        k, contexts, target = self._words("SimpleCBOW.forward", contexts, target)
        h0 = self.in_layer0.forward(contexts[:, 0, :])
        h1 = self.in_layer1.forward(contexts[:, 1, :])
        h = self._buffer(k, "h", h0)
        h = k.multiply(k.add(h0, h1, out=h), 0.5, out=h)
        score = self.out_layer.forward(h)
        return self.loss_layer.forward(score, target)

    def backward(self, dout: Any = 1) -> None:
        """Backpropagate after :meth:`forward`: fills ``grads`` (and each layer's) in place.

        ``dout``: the gradient of the loss (a number, or a 0-d array on the
        weights' device). Returns None, as the book's.

        Raises:
            RuntimeError: No forward pass before.
        """
        ds = self.loss_layer.backward(dout)
        da = self.out_layer.backward(ds)
        k = ops(da)
        da = k.multiply(da, 0.5, out=self._buffer(k, "da", da))
        self.in_layer1.backward(da, input_grad=False)
        self.in_layer0.backward(da, input_grad=False)
        # What the book's remove_duplicate does: the two parts of W_in's gradient summed.
        dW_in = self.grads[0]
        _into(dW_in, k.add(self.in_layer0.grads[0], self.in_layer1.grads[0], out=dW_in))
        return None


class SimpleSkipGram(_SimpleWord2Vec):
    """The book's ``SimpleSkipGram`` (vol. 2, 3.5.2): the two context words from the target.

    ``h = target @ W_in``, scores ``s = h @ W_out``, and the loss is the sum
    of the two context words' softmax cross-entropies against ``s``.

    Args: as :class:`SimpleCBOW`.

    Attributes:
        in_layer: The ``MatMul`` of ``W_in`` ``(V, H)``; ``out_layer``: of
            ``W_out`` ``(H, V)``.
        loss_layer1, loss_layer2: SoftmaxWithLoss of the first and second
            context word.
        params: ``[W_in, W_out]``; grads: ``[dW_in, dW_out]``, the layers'
            own arrays (nothing is shared: the book's lists).
        word_vecs: ``W_in``.
        vocab_size, hidden_size: V and H.

    Raises:
        ValueError: A size that is not a positive int.
    """

    def _build(self, W_in: Any, W_out: Any) -> None:
        super()._build(W_in, W_out)
        self.in_layer = MatMul(W_in)
        self.out_layer = MatMul(W_out)
        self.loss_layer1 = SoftmaxWithLoss()
        self.loss_layer2 = SoftmaxWithLoss()
        self.grads: list[Any] = [self.in_layer.grads[0], self.out_layer.grads[0]]

    def forward(self, contexts: Any, target: Any) -> Any:
        """The loss of the batch: the sum of both context words' mean losses (0-d array).

        Args and Raises: as :meth:`SimpleCBOW.forward` (``target`` is the
        input here, ``contexts`` the labels).
        """
        _, contexts, target = self._words("SimpleSkipGram.forward", contexts, target)
        h = self.in_layer.forward(target)
        s = self.out_layer.forward(h)
        l1 = self.loss_layer1.forward(s, contexts[:, 0, :])
        l2 = self.loss_layer2.forward(s, contexts[:, 1, :])
        return l1 + l2

    def backward(self, dout: Any = 1) -> None:
        """Backpropagate after :meth:`forward`: fills ``grads`` in place; returns None.

        Raises:
            RuntimeError: No forward pass before.
        """
        dl1 = self.loss_layer1.backward(dout)
        dl2 = self.loss_layer2.backward(dout)
        k = ops(dl1, dl2)
        ds = k.add(dl1, dl2, out=self._buffer(k, "ds", dl1))
        dh = self.out_layer.backward(ds)
        self.in_layer.backward(dh, input_grad=False)
        return None


MODELS["SimpleCBOW"] = SimpleCBOW
MODELS["SimpleSkipGram"] = SimpleSkipGram

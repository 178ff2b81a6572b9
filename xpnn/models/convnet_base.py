"""What SimpleConvNet and DeepConvNet share once built: the book's API and saving.

:class:`_ConvNet` is the base class of :class:`~xpnn.models.convnet.SimpleConvNet`
and :class:`~xpnn.models.convnet.DeepConvNet`. A subclass says which
arguments it takes, how it checks them and which layers they give (its
*plan*: sizes only, see :meth:`_ConvNet.layer_plan`), and
:mod:`xpnn.models.convnet` builds it from that plan; the base class gives
both nets their read-only settings, the book's ``loss``, ``gradient``,
``numerical_gradient``, batched ``accuracy`` and what :mod:`xpnn.io` needs
to save and load them.
"""

from __future__ import annotations

import inspect
from typing import Any

from xpnn.backend import adopt_host_input, get_namespace, ops, to_numpy
from xpnn.layers.base import _check_config_keys
from xpnn.layers.losses import label_column
from xpnn.models.layered import LayeredNet
from xpnn.models.multilayer_settings import _positive_int
from xpnn.models.numerical_gradient import held_numerical_gradient

__all__: list[str] = []


class _ConvNet(LayeredNet):
    """What SimpleConvNet and DeepConvNet share once built: the book's API, saving.

    A subclass gives ``_CONFIG_KEYS`` (the constructor's arguments but
    ``dtype``), ``_settings(given)`` (them checked), ``_scale(settings,
    fan_in)`` (a layer's initial weights' scale) and ``_plan(settings)``:
    the layers input to output as tuples ``("conv", key, W_shape, fan_in,
    stride, pad)``, ``("affine", key, W_shape, fan_in)``, ``("relu",)``,
    ``("pool",)``, ``("dropout",)``, computed without allocating. Its
    constructor builds the net from them (``_build`` of
    :mod:`xpnn.models.convnet`), which sets ``_cfg`` (the checked settings),
    the layers, ``params``, ``grads`` and ``_dropouts``.
    """

    _CONFIG_KEYS: tuple[str, ...] = ()
    _cfg: dict[str, Any]  # the checked settings (the config), set when built
    _dropouts: list[Any]  # the Dropout layers (numerical_gradient holds their masks)
    _batchnorms: list[Any]  # none here; numerical_gradient restores their statistics

    @classmethod
    def layer_plan(cls, **kwargs: Any) -> list[tuple[Any, ...]]:
        """The layers the constructor would make with ``kwargs``, without making them.

        Input to output, as tuples: ``("conv", key, W_shape, fan_in, stride,
        pad)``, ``("affine", key, W_shape, fan_in)``, ``("relu",)``,
        ``("pool",)`` (2x2 max pooling, stride 2) and ``("dropout",)``. The
        arguments are the constructor's (but ``dtype``), its defaults for
        those not given, checked as it checks them; no array is allocated,
        so sizes (e.g. for a memory estimate) are known before any is.

        Raises:
            TypeError, ValueError: As the constructor for the same arguments.
        """
        given = {
            name: p.default
            for name, p in inspect.signature(cls).parameters.items()
            if name in cls._CONFIG_KEYS
        }
        unknown = set(kwargs) - set(cls._CONFIG_KEYS)
        if unknown:
            raise TypeError(f"{cls.__name__}.layer_plan got unknown arguments {sorted(unknown)}")
        given.update(kwargs)
        try:
            return cls._plan(cls._settings(given))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{cls.__name__}: {exc}") from None

    @classmethod
    def _settings(cls, given: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def _plan(cls, s: dict[str, Any]) -> list[tuple[Any, ...]]:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def _scale(cls, s: dict[str, Any], fan_in: int) -> float:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------ settings (read-only)

    @property
    def input_dim(self) -> tuple[int, int, int]:
        """A sample's shape ``(C, H, W)``."""
        return self._cfg["input_dim"]

    @property
    def hidden_size(self) -> int:
        """Units of the hidden Affine layer."""
        return self._cfg["hidden_size"]

    @property
    def output_size(self) -> int:
        """Classes."""
        return self._cfg["output_size"]

    @property
    def seed(self) -> int:
        """The seed of the initial weights (and of the Dropout layers' seeds)."""
        return self._cfg["seed"]

    @property
    def last_layer(self) -> Any:
        """The book's name of :attr:`loss_layer` (SoftmaxWithLoss)."""
        return self.loss_layer

    # ------------------------------------------------------------ the book's API

    def loss(self, x: Any, t: Any, train_flg: bool = True) -> Any:
        """The book's ``loss``: mean cross-entropy of the batch, a NumPy scalar.

        Read to the host once, in the parameters' dtype (it prints as the
        book's number on every backend); :meth:`forward` gives the 0-d
        device array without a read.

        Training mode by default, as the book's DeepConvNet (whose Dropout
        layers then draw new masks; SimpleConvNet has no layer that cares);
        ``train_flg=False`` for the test-mode loss. Keeps what
        :meth:`backward` needs.

        Args:
            x: Images ``(N, C, H, W)`` of the parameters' dtype.
            t: Integer labels ``(N,)`` or one-hot ``(N, output_size)``.
            train_flg: Training (True) or test mode.
        """
        return to_numpy(self.forward(x, t, train_flg))[()]

    def gradient(self, x: Any, t: Any) -> dict[str, Any]:
        """Gradients of the training-mode loss by backpropagation, keyed like ``params``.

        One training forward pass (Dropout draws its next masks), one
        backward pass.

        Returns:
            :attr:`grads`, the layers' gradient arrays: the next call
            overwrites them (copy them to keep them).
        """
        self.forward(x, t, True)
        self.backward(input_grad=False)
        return self.grads

    def numerical_gradient(self, x: Any, t: Any) -> dict[str, Any]:
        """Gradients of the training-mode loss by central differences, keyed like ``params``.

        The book's ``(L(p + h) - L(p - h)) / 2h`` with ``h = 1e-4``, element
        by element through the whole net (two forward passes each: use a
        tiny net), every Dropout mask held fixed (those the next training
        pass would draw). The Dropout layers' ``draws``, ``mask`` and
        ``hold_mask`` and the parameters are as before afterwards, so
        :meth:`gradient` on the same ``x`` backpropagates through the same
        masks. Build the net with ``dtype="float64"`` (float32 warns).

        Returns:
            New arrays of the parameters' shapes, dtype and device.
        """
        return held_numerical_gradient(self, x, t)

    def accuracy(self, x: Any, t: Any, batch_size: int = 100) -> float:
        """Fraction of correctly classified samples, in test mode, ``batch_size`` at a time.

        Each batch is predicted and compared on the device, the counts are
        summed there, and the total is read once at the end. Every sample
        counts, the last partial batch too (the book's loop skips it but
        still divides by ``N``).

        Args:
            x: Images ``(N, C, H, W)`` of the parameters' dtype, N >= 1.
            t: Integer labels ``(N,)`` or one-hot ``(N, output_size)``.
            batch_size: Samples per forward pass, a positive int.

        Returns:
            The accuracy, a Python float in ``[0, 1]``.

        Raises:
            ValueError: ``batch_size`` not a positive int, no samples, or
                ``t`` of another length or shape.
        """
        size = _positive_int(batch_size, "batch_size")
        first = self.params_list()[0]
        x, t = adopt_host_input(x, first), adopt_host_input(t, first)  # NumPy into torch:cpu
        xp = get_namespace(x, t)
        t = label_column(ops(x), t, self.output_size)  # (N, 1) integer labels: (N,)
        n = int(x.shape[0]) if x.ndim else 0
        if n == 0:
            raise ValueError(f"{type(self).__name__}.accuracy needs at least one sample")
        if t.ndim not in (1, 2) or t.shape[0] != n:
            raise ValueError(
                f"{type(self).__name__}.accuracy: t must be labels ({n},) or one-hot ({n}, "
                f"{self.output_size}) for x of {n} samples, got shape {tuple(t.shape)}"
            )
        if t.ndim == 2:
            t = xp.argmax(t, axis=1)
        total = None
        for start in range(0, n, size):
            stop = min(start + size, n)
            y = xp.argmax(self._run(x[start:stop, ...], False), axis=1)
            hits = xp.sum(xp.astype(y == t[start:stop], xp.int64))
            total = hits if total is None else total + hits
        return int(to_numpy(total)) / n  # the one host read

    # ------------------------------------------------------------ saving

    @property
    def config(self) -> dict[str, Any]:
        """Every constructor argument but ``dtype`` (``seed`` as an int): JSON data."""
        s = self._cfg
        return {
            k: list(v) if k == "input_dim" else dict(v) if isinstance(v, dict) else v
            for k, v in s.items()
        }

    @classmethod
    def _checked_config(cls, config: Any) -> dict[str, Any]:
        """A config from a file checked as the constructor checks its arguments.

        Raises:
            ValueError: Not a dict of exactly the constructor's keys, or a
                value the constructor refuses (the message names the key).
        """
        _check_config_keys(cls.__name__, config, cls._CONFIG_KEYS)
        if config["seed"] is None:
            raise ValueError(f"{cls.__name__} config 'seed' must be an int, got None")
        try:
            s = cls._settings(config)
            cls._plan(s)
        except (TypeError, ValueError) as exc:  # from a file: a ValueError, as for every layer
            raise ValueError(f"{cls.__name__} config: {exc}") from None
        return s

    @classmethod
    def array_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """The names and shapes of the arrays a model of ``config`` saves, allocating nothing.

        ``params`` by the book's keys, ``W1``, ``b1``, ``W2``, ...

        Raises:
            ValueError: ``config`` is not one :attr:`config` gives.
        """
        shapes: dict[str, tuple[int, ...]] = {}
        for step in cls._plan(cls._checked_config(config)):
            if step[0] in ("conv", "affine"):
                key, shape = step[1], step[2]
                shapes[key] = shape
                shapes["b" + key[1:]] = (shape[0] if step[0] == "conv" else shape[1],)
        return shapes

    @classmethod
    def from_config(cls, config: Any, *, dtype: Any = None) -> Any:
        """A model of ``config`` (its seed's initial weights), on the active backend.

        Args:
            config: As :attr:`config` gives it.
            dtype: Float dtype (the backend's default if omitted).

        Raises:
            ValueError: As :meth:`array_shapes`.
        """
        s = cls._checked_config(config)
        return cls(**s, dtype=dtype)

    def named_arrays(self) -> dict[str, Any]:
        """The arrays a saved file holds: ``params`` (Dropout has no arrays)."""
        return dict(self.params)

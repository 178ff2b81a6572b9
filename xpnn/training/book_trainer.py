"""The book's chapter-6 Trainer (vol. 1, ``common/trainer.py``) on xpnn's Trainer.

``Trainer(network, x_train, t_train, x_test, t_test, epochs=20,
mini_batch_size=100, optimizer='SGD', optimizer_param={'lr': 0.01},
evaluate_sample_num_per_epoch=None, verbose=True).train()`` is the same class
as vol. 2's ``Trainer(model, optimizer).fit(...)``: :class:`xpnn.Trainer`
picks the form from its second argument, and :class:`BookForm` (its base
class) holds what the book's form adds: checking its settings at
construction and :meth:`BookForm.train`, which runs ``fit`` with them (one
training loop), keeping every iteration's loss and printing the book's lines.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable
from typing import Any

from xpnn.backend import _dtype_name
from xpnn.optimizers import OPTIMIZERS, get_optimizer
from xpnn.training.callbacks import (
    Callback,
    CallbackList,
    Evaluator,
    FitState,
    IterationLosses,
    accuracy,
)

__all__ = ["BOOK_OPTIMIZER_PARAM", "BookForm"]

#: The book's default ``optimizer_param`` (for whichever optimizer is named).
BOOK_OPTIMIZER_PARAM = {"lr": 0.01}

#: ``fit`` arguments that ``train()`` sets from the book's settings.
_TRAIN_SETS = (
    "x",
    "t",
    "max_epoch",
    "batch_size",
    "eval_interval",
    "validation_data",
    "accuracy_at",
    "verbose",
)


class BookForm:
    """The book's ch. 6 form of :class:`xpnn.Trainer`: its settings and :meth:`train`."""

    @property
    def network(self) -> Any:
        """The model (the book's name for it)."""
        return self.model

    def _book_settings(
        self,
        x_train: Any,
        t_train: Any,
        x_test: Any,
        t_test: Any,
        epochs: Any,
        mini_batch_size: Any,
        samples: Any,
        verbose: Any,
    ) -> None:
        """Check the book form's data and settings (all before anything trains)."""
        missing = [
            name
            for name, value in (("t_train", t_train), ("x_test", x_test), ("t_test", t_test))
            if value is None
        ]
        if missing:
            raise TypeError(
                f"Trainer(network, x_train, t_train, x_test, t_test, ...) (the book's ch. 6 "
                f"form) is missing {', '.join(missing)}"
            )
        for name, value in (
            ("x_train", x_train),
            ("t_train", t_train),
            ("x_test", x_test),
            ("t_test", t_test),
        ):
            if not hasattr(value, "shape"):
                raise TypeError(
                    f"{name} must be an array (xpnn.asarray(...), load_mnist()), got "
                    f"{type(value).__name__}"
                )
        for name, value in (("epochs", epochs), ("mini_batch_size", mini_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(verbose, bool):
            raise TypeError(f"verbose must be True or False, got {verbose!r}")
        if not (hasattr(self.model, "accuracy") or hasattr(self.model, "predict")):
            raise TypeError(
                f"{type(self.model).__name__} has neither accuracy(x, t) nor predict(x): "
                "train() measures the accuracies once an epoch"
            )
        Evaluator(x_test, t_test, samples)  # checks the count
        if x_train.ndim >= 1 and x_train.shape[0] > 0:
            batch = min(mini_batch_size, x_train.shape[0])
        else:
            batch = mini_batch_size  # the data check below names what is wrong
        state = self._new_state(x_train, t_train, epochs, batch, None, batch, 0)
        self._check_validation(state, (x_test, t_test))
        self._book = True
        self.x_train, self.t_train, self.x_test, self.t_test = x_train, t_train, x_test, t_test
        self.epochs, self.batch_size = epochs, batch
        self.evaluate_sample_num_per_epoch, self.verbose = samples, verbose
        self.train_size = state.data_size
        self.iter_per_epoch = state.max_iters
        self.max_iter = epochs * state.max_iters
        self.final_test_acc: float | None = None

    def train(self, *, seed: int | None = 0, progress: bool = False, **options: Any) -> Any:
        """Train as the book's ch. 6 ``Trainer.train()`` does, by running :meth:`fit`.

        It runs ``fit(x_train, t_train, max_epoch=epochs,
        batch_size=batch_size, eval_interval=iter_per_epoch,
        validation_data=(x_test, t_test), ...)`` with a callback that keeps
        every iteration's loss in ``train_loss_list``; ``train_acc_list``
        and ``test_acc_list`` get the accuracies after the first iteration of
        each epoch (on the first ``evaluate_sample_num_per_epoch`` samples,
        if set). At the end
        it measures the test accuracy on all of ``x_test`` (kept in
        ``final_test_acc``). With ``verbose`` it prints the book's lines:
        ``train loss:...`` for each iteration, ``=== epoch:1, train
        acc:..., test acc:... ===`` after each epoch, and
        ``=============== Final Test Accuracy ===============`` /
        ``test acc:...`` at the end.

        How it differs from the book's loop (same model, same optimizer,
        same kind of curves):

        * Mini-batches: each epoch is one permutation of the training data
          (each sample once), ``iter_per_epoch = train_size //
          mini_batch_size`` iterations (a last partial batch is dropped);
          the book draws every batch with replacement
          (``np.random.choice``) and runs ``int(epochs * train_size /
          mini_batch_size)`` iterations. With fewer training samples than
          ``mini_batch_size``, every iteration takes all of them (one
          iteration an epoch), where the book draws ``mini_batch_size``
          samples with replacement (the same expected gradient).
        * Randomness: the shuffling comes from xpnn's generator seeded with
          ``seed`` (0): a rerun is identical, on every backend; the book
          uses NumPy's global state.
        * Accuracies: measured as the book's, after the first iteration of
          each epoch (``fit(..., accuracy_at="first_iteration")``), so the
          last entry is not the trained model's: ``final_test_acc`` is.
          Both give ``epochs`` entries when ``mini_batch_size`` divides the
          training size. The lines come in
          the book's order (an epoch's ``=== epoch:`` line after its first
          ``train loss:`` line) and the accuracies print as the book's:
          ``str()`` of the float64 ratio correct / samples (66 of 100:
          ``0.66``; 2 of 3: ``0.6666666666666666``), whatever the dtype.
        * ``train_loss_list``: the loss of the forward pass that gave the
          gradients (training mode: Dropout active, batch statistics),
          before the update; the book runs a second forward pass after the
          update, in test mode. The losses are kept on the device and read
          once an epoch, so the ``train loss:`` lines come in a block after
          each epoch (the book prints and reads each iteration).
        * The NaN and divergence guard of ``fit`` stops a run whose loss
          becomes NaN or diverges (FloatingPointError); pass
          ``on_nan="ignore"`` to go on as the book does.
        * ``fit``'s own lines and progress bar are off unless asked for
          (``progress=True``).

        Args:
            seed: Seed of the shuffling.
            progress: Show fit's progress bar (in a terminal or notebook).
            **options: Further :meth:`fit` arguments (``checkpoint``,
                ``resume``, ``precision``, ``callbacks``, ``on_nan``,
                ``max_grad``, ``cuda_graph``...). After ``resume``,
                ``train_loss_list`` holds the iterations run since.

        Returns:
            The trainer itself (its lists hold the curves).

        Raises:
            TypeError: The trainer was made as ``Trainer(model,
                optimizer)`` (use :meth:`fit`), or ``options`` sets what the
                book's settings set (``max_epoch``...).
            ValueError, FloatingPointError, xpnn.io.ModelFileError: As :meth:`fit`.
        """
        if not self._book:
            raise TypeError(
                "train() is the book's ch. 6 form: make the trainer as Trainer(network, "
                "x_train, t_train, x_test, t_test, epochs=..., ...), or call fit(x, t, ...) "
                "on this Trainer(model, optimizer)"
            )
        taken = [name for name in _TRAIN_SETS if name in options]
        if taken:
            raise TypeError(
                f"train() sets {', '.join(taken)} from the trainer's settings (epochs, "
                "mini_batch_size, x_test, t_test, verbose); set them there, or call fit()"
            )
        losses = IterationLosses(self.train_loss_list)
        callbacks = [losses, _BookLines(losses)] if self.verbose else [losses]
        extra = options.pop("callbacks", ())
        if isinstance(extra, (Callback, str)) or not isinstance(extra, Iterable):
            CallbackList((), extra)  # its error
        self.fit(
            self.x_train,
            self.t_train,
            max_epoch=self.epochs,
            batch_size=self.batch_size,
            eval_interval=self.iter_per_epoch,
            validation_data=(self.x_test, self.t_test),
            eval_samples=self.evaluate_sample_num_per_epoch,
            accuracy_at="first_iteration",
            seed=seed,
            progress=progress,
            verbose=False,
            callbacks=[*callbacks, *extra],
            **options,
        )
        self.final_test_acc = accuracy(self.model, self.x_test, self.t_test)
        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            shown = _shown_as(self.x_test.dtype)
            print("test acc:" + _as_ratio(self.final_test_acc, self.x_test, None, shown))
        return self


def _vol2_optimizer(optimizer: Any, keyword: Any) -> Any:
    """The optimizer of ``Trainer(model, optimizer)`` (positional or keyword)."""
    if optimizer is not None and keyword != "SGD":
        raise TypeError(
            "Trainer(model, optimizer) got an optimizer twice (positionally and as optimizer=)"
        )
    optimizer = keyword if optimizer is None else optimizer
    if isinstance(optimizer, str):
        raise TypeError(
            f"Trainer(model, optimizer) needs an optimizer object, such as xpnn.SGD(lr=0.01); "
            f"a name ({optimizer!r}) is for the book's form Trainer(network, x_train, t_train, "
            "x_test, t_test, optimizer=..., optimizer_param={...})"
        )
    if not hasattr(optimizer, "update"):
        raise TypeError(
            f"optimizer must have update(params, grads), got {optimizer!r:.80}; or, the book's "
            "ch. 6 form: Trainer(network, x_train, t_train, x_test, t_test, ...) with arrays"
        )
    return optimizer


def _no_book_arguments(**given: Any) -> None:
    """The vol. 2 form takes none of the book form's settings (fit takes them)."""
    defaults = {
        "t_train": None,
        "x_test": None,
        "t_test": None,
        "epochs": 20,
        "mini_batch_size": 100,
        "optimizer_param": None,
        "evaluate_sample_num_per_epoch": None,
        "verbose": True,
    }
    # An array is given whatever it holds; other values when not the default.
    extra = [n for n, v in given.items() if hasattr(v, "shape") or v != defaults[n]]
    if extra:
        raise TypeError(
            f"Trainer(model, optimizer) takes no {', '.join(extra)}: they belong to the book's "
            "form Trainer(network, x_train, t_train, x_test, t_test, ...); with an optimizer "
            "object pass the data and settings to fit(x, t, max_epoch=..., batch_size=..., "
            "validation_data=..., verbose=...)"
        )


def _book_optimizer(optimizer: Any, param: Any) -> Any:
    """The book form's optimizer: by name with ``optimizer_param``, or an object."""
    if isinstance(optimizer, str):
        if param is None:
            param = BOOK_OPTIMIZER_PARAM
        if not isinstance(param, dict) or not all(isinstance(k, str) for k in param):
            raise TypeError(
                f"optimizer_param must be a dict of hyper-parameters such as {{'lr': 0.01}}, "
                f"got {param!r:.80}"
            )
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {optimizer!r}; the names are "
                f"{', '.join(map(repr, OPTIMIZERS))} (in any case), or pass an optimizer object"
            )
        return get_optimizer(optimizer, **param)
    if not hasattr(optimizer, "update"):
        raise TypeError(
            f"optimizer must be a name ({', '.join(map(repr, OPTIMIZERS))}) or have "
            f"update(params, grads), got {optimizer!r:.80}"
        )
    if param is not None:
        raise TypeError(
            f"optimizer_param is for an optimizer given by name; this {type(optimizer).__name__} "
            "object has its hyper-parameters already"
        )
    return optimizer


class _BookLines(Callback):
    """The book's printed lines of ``Trainer.train`` (after each epoch's one read).

    In the book's order: an epoch's ``=== epoch:`` line follows the
    ``train loss:`` line of its first iteration (the book's ``Trainer``
    evaluates when ``current_iter % iter_per_epoch == 0``), then come the
    epoch's other ``train loss:`` lines. Every number is a Python float.
    """

    def __init__(self, losses: IterationLosses):
        self.losses, self.printed = losses, len(losses.losses)
        self.first_iter = 0  # the iteration this fit's first epoch starts at

    def on_fit_start(self, state: FitState) -> None:
        self.printed = len(self.losses.losses)
        self.first_iter = state.start_iter

    def on_epoch_end(self, state: FitState) -> None:
        new = self.losses.losses[self.printed :]
        self.printed += len(new)
        shown = _shown_as(state.x.dtype)
        lines = ["train loss:" + shown(loss) for loss in new]
        trainer = state.trainer
        if trainer.train_acc_list:
            samples = trainer.evaluate_sample_num_per_epoch
            train_acc = _as_ratio(trainer.train_acc_list[-1], state.x, samples, shown)
            test_acc = _as_ratio(trainer.test_acc_list[-1], trainer.x_test, samples, shown)
            # After the epoch's first iteration (a resumed epoch has printed it already).
            at = 1 if self.first_iter == 0 else 0
            epoch = f"=== epoch:{trainer.current_epoch}, train acc:{train_acc}, test acc:"
            lines.insert(min(at, len(lines)), f"{epoch}{test_acc} ===")
        self.first_iter = 0
        print("\n".join(lines))


def _as_ratio(value: float, x: Any, samples: int | None, shown: Callable[[float], str]) -> str:
    """An accuracy as the book prints it: ``str()`` of the float64 ratio.

    The book's accuracy is ``np.sum(y == t) / float(N)``, a float64: 66
    correct of 100 prints ``0.66``, 2 of 3 ``0.6666666666666666``. xpnn's is
    computed in the data's dtype; the count of correct samples is recovered
    on the host from it and the ``N`` samples measured (the first ``samples``
    of ``x``, or all) and divided in Python, when that count is the only one
    whose ratio reads back as ``value`` in that dtype. Otherwise (a float16
    accuracy of many samples, a model whose accuracy is no ratio) ``value``
    prints as ``shown`` gives it.
    """
    n = int(x.shape[0]) if samples is None else min(samples, int(x.shape[0]))
    same = _same_in(x.dtype)
    if n <= 0 or same is None or not math.isfinite(value):
        return shown(value)
    correct = round(value * n)
    if not same(correct / n, value) or any(
        0 <= c <= n and same(c / n, value) for c in (correct - 1, correct + 1)
    ):
        return shown(value)
    return str(correct / n)


def _same_in(dtype: Any) -> Callable[[float, float], bool] | None:
    """Whether two floats are the same number in ``dtype`` (float64, float32; None: other)."""
    name = _dtype_name(dtype)
    if name == "float64":
        return lambda a, b: a == b
    if name == "float32":
        return lambda a, b: _as_float32(a) == _as_float32(b)
    return None


def _as_float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def _shown_as(dtype: Any) -> Callable[[float], str]:
    """How the book's lines print a number computed in ``dtype``: float64 in
    full (as the book's NumPy prints), narrower floats to their precision
    (the shortest text that reads back as the same float32: a float32 0.16
    is 0.16, not 0.1599999964237213)."""
    if _dtype_name(dtype) == "float64":
        return str

    def shown(value: float) -> str:
        if not math.isfinite(value):
            return str(value)
        for digits in range(6, 9):
            text = f"{value:.{digits}g}"
            if _as_float32(float(text)) == _as_float32(value):
                return text
        return f"{value:.9g}"  # 9 significant digits always read back

    return shown

"""The learning-rate schedule of the book's ``ch06/train_better_rnnlm.py``, as a part of ``fit``.

The book's script runs ``trainer.fit(..., max_epoch=1)`` forty times and,
after each epoch, measures the validation perplexity; when it is not better
than the best so far, it divides the learning rate by 4 (and saves the
model whenever it is). :class:`PerplexitySchedule` is that loop's body, run
by :class:`xpnn.training.RnnlmTrainer` after each epoch
(``fit(validation_data=corpus_val, lr_decay=4.0, save_best=...)``), before
the epoch's checkpoint is written, so a checkpoint holds its state and a
resumed run lowers the rate exactly when the uninterrupted one would.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

from xpnn.backend import asarray, backend_of, get_namespace, to_numpy
from xpnn.models.rnnlm import eval_perplexity
from xpnn.training.events import Callback, FitState

__all__ = ["PerplexitySchedule"]


class PerplexitySchedule(Callback):
    """Validation perplexity after each epoch; lower the learning rate when it stalls.

    After each epoch: reset the model's state, measure the perplexity of
    ``corpus`` (:func:`xpnn.models.rnnlm.eval_perplexity`, the book's batch 10
    and time 35), append it to ``ppl_list``; when it is below the best so far
    keep it as the best (and ``model.save_params(save_best)`` if given), else
    divide ``optimizer.lr`` by ``lr_decay``; reset the state again. The
    book's ``train_better_rnnlm.py``, line for line.

    Args:
        corpus: The validation corpus, 1-D integer ids (host or the model's
            backend; moved to the model's device once, by :meth:`check`).
        lr_decay: The divisor (> 1), or None to only measure.
        save_best: A file for ``model.save_params`` at each new best.
        verbose: Print the book's ``valid perplexity:`` and rule lines.
        batch_size: ``eval_perplexity``'s batch size (the book's 10).
        time_size: ``eval_perplexity``'s time size (the book's 35).

    Attributes:
        ppl_list: The validation perplexity of each epoch (floats).
        best: The best so far (None before the first epoch).

    Raises:
        ValueError: ``lr_decay`` is not None or a number above 1.
    """

    def __init__(
        self,
        corpus: Any,
        lr_decay: float | None = 4.0,
        save_best: str | os.PathLike[str] | None = None,
        verbose: bool = True,
        batch_size: int = 10,
        time_size: int = 35,
    ):
        if lr_decay is not None and (
            isinstance(lr_decay, bool)
            or not isinstance(lr_decay, numbers.Real)
            or not (1 < float(lr_decay) < math.inf)
        ):
            raise ValueError(f"lr_decay must be a number above 1 or None, got {lr_decay!r}")
        self.corpus, self.lr_decay, self.save_best = corpus, lr_decay, save_best
        self.verbose, self.batch_size, self.time_size = verbose, batch_size, time_size
        self.ppl_list: list[float] = []
        self.best: float | None = None

    def check(self, model: Any) -> None:
        """Check the corpus against ``model`` and move it to the model's device (once).

        Raises:
            ValueError: Not 1-D integer ids, too short for one batch of
                ``batch_size * time_size`` words, or ids outside the model's
                vocabulary.
            TypeError: ``save_best`` given for a model without ``save_params``.
        """
        corpus = self.corpus
        if not hasattr(corpus, "shape"):
            raise ValueError(f"validation_data must be 1-D word ids, got {type(corpus).__name__}")
        corpus = asarray(corpus, backend=backend_of(model.params[0]))  # explicit, once a fit
        xp = get_namespace(corpus)
        need = self.batch_size * self.time_size + 1
        if corpus.ndim != 1 or not xp.isdtype(corpus.dtype, "integral") or corpus.shape[0] < need:
            raise ValueError(
                f"validation_data must be 1-D integer word ids of at least {need} words "
                f"(eval_perplexity's batch {self.batch_size} x time {self.time_size} + 1), got "
                f"shape {tuple(corpus.shape)} and dtype {corpus.dtype}"
            )
        vocab = getattr(model, "vocab_size", None)
        if isinstance(vocab, int):
            low, high = (int(v) for v in to_numpy(xp.stack([xp.min(corpus), xp.max(corpus)])))
            if low < 0 or high >= vocab:
                raise ValueError(
                    f"validation_data holds word ids from {low} to {high}, outside the "
                    f"vocabulary 0..{vocab - 1}: use the training corpus's word_to_id"
                )
        if self.save_best is not None and not callable(getattr(model, "save_params", None)):
            raise TypeError(f"save_best: {type(model).__name__} has no save_params")
        self.corpus = corpus

    def on_fit_start(self, state: FitState) -> None:
        state.trainer.val_ppl_list = self.ppl_list  # restored by a resume, else empty

    def on_epoch_end(self, state: FitState) -> None:
        trainer = state.trainer
        model = trainer.model
        model.reset_state()
        ppl = eval_perplexity(
            model, self.corpus, self.batch_size, self.time_size, verbose=self.verbose
        )
        if self.verbose:
            print("valid perplexity: ", ppl)
        self.ppl_list.append(ppl)
        if self.best is None or self.best > ppl:
            self.best = ppl
            if self.save_best is not None:
                model.save_params(self.save_best)
        elif self.lr_decay is not None:
            trainer.optimizer.lr = trainer.optimizer.lr / self.lr_decay
        model.reset_state()
        if self.verbose:
            print("-" * 50)

    # ------------------------------------------------ checkpoints (JSON data)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the best perplexity and the curve."""
        return {"best": self.best, "ppl_list": list(self.ppl_list)}

    def check_state_dict(self, state: Any) -> None:
        """Raises ValueError when ``state`` is not what :meth:`state_dict` writes."""
        if not isinstance(state, dict) or set(state) != {"best", "ppl_list"}:
            raise ValueError(f"must be {{'best', 'ppl_list'}}, got {state!r:.120}")
        best, curve = state["best"], state["ppl_list"]
        if not isinstance(curve, list) or not all(isinstance(v, float) for v in curve):
            raise ValueError(f"'ppl_list' must be a list of floats, got {curve!r:.120}")
        if (best is None) != (not curve) or (
            best is not None
            and (not isinstance(best, float) or (not math.isnan(best) and best not in curve))
        ):
            raise ValueError(f"'best' {best!r} is not the best of 'ppl_list'")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave (checked by :meth:`check_state_dict`)."""
        self.best, self.ppl_list = state["best"], list(state["ppl_list"])

"""What a run of ``Trainer.fit`` prints: the book's lines, the progress bar, Ctrl-C.

:class:`Reporter` is the part of ``fit`` made from its ``verbose`` and
``progress`` arguments. It only writes to the terminal (or the notebook):
it reads nothing from the device, every number it prints was read by the
loop or by another part.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from xpnn.training.events import Callback, FitState

__all__ = ["PerplexityReporter", "Reporter"]


class Reporter(Callback):
    """The book's printed lines, the progress bar, and the Ctrl-C message.

    Prints ``| epoch 1 |  iter 1 / 10 | time 0[s] | loss 1.10`` at each
    record (the book's ``%d`` seconds: whole seconds, truncated) and, with
    validation data, ``| epoch 1 | train acc, test acc | 0.3400, 0.3300``
    after each epoch; shows a tqdm bar over the iterations
    in a terminal or a notebook; on Ctrl-C says on stderr where the run
    stopped and which checkpoint resumes it.

    Args:
        verbose: Print the book's lines (stdout, or above the bar).
        progress: Show the bar (when tqdm is installed and someone watches).
    """

    def __init__(self, verbose: bool = True, progress: bool = True):
        self.verbose, self.progress = verbose, progress
        self.bar: Any = None
        self.start = 0.0

    def on_fit_start(self, state: FitState) -> None:
        done = state.epoch * state.max_iters + state.start_iter
        self.bar = _progress_bar(state.max_epoch * state.max_iters, self.progress, done)
        self.start = time.perf_counter()

    def say(self, line: str) -> None:
        """Print a line (above the progress bar, when there is one)."""
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line)

    def on_batch_end(self, state: FitState, loss: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_record(self, state: FitState, avg_loss: float) -> None:
        if self.verbose:
            self.say(
                f"| epoch {state.trainer.current_epoch + 1} |  iter {state.iteration + 1} / "
                f"{state.max_iters} | time {int(time.perf_counter() - self.start)}[s] "
                f"| {self.measure(avg_loss)}"
            )

    def measure(self, avg_loss: float) -> str:
        """The last field of a record's line: ``loss 1.10``."""
        return f"loss {avg_loss:.2f}"

    def on_epoch_end(self, state: FitState) -> None:
        trainer = state.trainer
        if self.verbose and state.validation_data is not None and trainer.train_acc_list:
            self.say(
                f"| epoch {trainer.current_epoch} | train acc, test acc | "
                f"{trainer.train_acc_list[-1]:.4f}, {trainer.test_acc_list[-1]:.4f}"
            )

    def on_fit_end(self, state: FitState) -> None:
        if isinstance(state.error, KeyboardInterrupt):
            where = (
                f"{state.where_saved()}; continue with fit(..., resume=<that file>)"
                if state.last_checkpoint
                else "no checkpoint was written yet (pass checkpoint=PATH to fit to keep one)"
            )
            print(
                f"xpnn: training interrupted in epoch {state.epoch + 1}, iteration "
                f"{state.iteration}; {where}",
                file=sys.stderr,
            )
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class PerplexityReporter(Reporter):
    """:class:`Reporter` with the book's ``RnnlmTrainer`` lines.

    ``| epoch 1 |  iter 1 / 13 | time 0[s] | perplexity 999.00``: the
    perplexity is exp of the recorded average loss (inf when that overflows).
    """

    def measure(self, avg_loss: float) -> str:
        return f"perplexity {perplexity(avg_loss):.2f}"


def perplexity(avg_loss: float) -> float:
    """exp(``avg_loss``), inf when it overflows (a diverging run), NaN for NaN."""
    try:
        return math.exp(avg_loss)
    except OverflowError:
        return math.inf


def _progress_bar(total: int, enabled: bool, initial: int = 0) -> Any:
    """A tqdm bar (notebook-aware), or None when disabled or tqdm is missing."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are a nicety, not a requirement
        return None
    # In a terminal or a notebook a live bar; in a log file or a pipe it would
    # only add noise (tqdm's disable=None turns it off off a TTY).
    interactive = "ipykernel" in sys.modules
    return tqdm(
        total=total,
        initial=initial,
        unit="iter",
        leave=False,
        dynamic_ncols=True,
        disable=False if interactive else None,
    )

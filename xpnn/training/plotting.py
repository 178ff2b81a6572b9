"""``Trainer.plot``: the loss curve and the accuracy curves of a run, drawn.

:class:`TrainingPlot` is a base class of :class:`xpnn.Trainer` that draws
what ``fit`` recorded (``loss_list`` every ``eval_interval`` iterations, and
``train_acc_list``/``test_acc_list`` after each epoch) with
:func:`xpnn.plot.training_figure`, as the book's ``trainer.plot()`` does.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TrainingPlot"]


class TrainingPlot:
    """The ``plot`` method of :class:`xpnn.Trainer` (host-side matplotlib)."""

    loss_list: list[float]
    train_acc_list: list[float]
    test_acc_list: list[float]
    eval_interval: int | None

    def plot(
        self,
        path: str | os.PathLike[str] | None = None,
        ylim: tuple[float, float] | None = None,
    ) -> Path | None:
        """Draw the loss curve (and the accuracy curves, if recorded).

        Args:
            path: Write the figure here (``.png``, ``.svg`` or ``.pdf``).
                Without it, as the book's ``plot()``, the figure is shown
                when matplotlib can show it (an interactive backend, or a
                notebook's inline one); otherwise it is written to
                ``xpnn_training.png`` in the current directory
                (``xpnn_training-2.png``... if that exists: no file is
                overwritten) and a line says where.
            ylim: ``(low, high)`` range of the loss axis (the book's ``ylim``).

        Returns:
            The file written, or None when the figure was shown.

        Raises:
            ValueError: Nothing recorded yet, a bad extension or ``ylim``.
        """
        if not self.loss_list:
            raise ValueError("nothing to plot: call fit() first (with enough iterations)")
        accuracies = (self.train_acc_list, self.test_acc_list) if self.train_acc_list else ()
        return self._draw((self.loss_list, *accuracies), path, ylim, default="xpnn_training.png")

    def _draw(
        self,
        curves: tuple[list[float], ...],
        path: str | os.PathLike[str] | None,
        ylim: tuple[float, float] | None,
        *,
        default: str,
        ylabel: str | None = None,
    ) -> Path | None:
        """Draw ``curves`` (recorded every ``eval_interval`` iterations), show or write them."""
        from xpnn.plot import can_show, show_or_save, training_figure

        if path is not None:
            from xpnn.plot import _output_path

            _output_path(path)  # a bad extension fails before any drawing
        fig = training_figure(
            *curves,
            xlabel=f"iterations (x{self.eval_interval})",
            ylim=ylim,
            pyplot=path is None and can_show(),
        )
        if ylabel is not None:
            fig.axes[0].set_ylabel(ylabel)
        return show_or_save(fig, path, default=default)

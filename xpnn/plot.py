"""The book's figures (ch. 4 on), drawn on the host with matplotlib.

Every function takes host data or arrays of any backend (they are copied to
the host with :func:`xpnn.backend.to_numpy`: plotting is host-side), writes
one image file whose format follows the extension (``.png``, ``.svg`` or
``.pdf``), creates the parent directories, and returns the path.

Figures are built with :class:`matplotlib.figure.Figure` directly, not with
``pyplot``: no GUI backend, no display and no global figure state is needed,
so this works on headless machines and inside tests, and it never changes the
matplotlib backend a user has chosen.

Callables (``f``, ``grad_f``) are called with host NumPy float64 arrays and
may return arrays of any backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from xpnn.backend import Backend, asarray, backend_of, get_namespace, to_numpy

__all__ = [
    "attention_map",
    "filters_figure",
    "misclassified_figure",
    "plot_accuracy",
    "plot_decision_boundary",
    "plot_descent_path",
    "plot_filters",
    "plot_gradient_field",
    "plot_loss",
    "plot_misclassified",
    "plot_search",
    "plot_tangent",
    "plot_tangents",
    "plot_training",
    "plot_word_vectors",
    "search_figure",
    "show_or_save",
    "training_figure",
]

#: File extensions :func:`_output_path` accepts (matplotlib picks the writer).
FORMATS = (".png", ".svg", ".pdf")

# A grid finer than this per axis is almost surely a wrong ``step`` and
# would only make matplotlib crawl.
_MAX_GRID = 1000

# --------------------------------------------------------------------------
# Shared helpers: checking inputs, bringing data to the host, saving
# --------------------------------------------------------------------------


def _output_path(path: str | os.PathLike[str]) -> Path:
    """Check the extension before any work is done; returns ``Path(path)``."""
    out = Path(path)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(
            f"cannot tell the image format of {os.fspath(path)!r}: "
            f"the extension must be one of {', '.join(FORMATS)}"
        )
    return out


def _save(fig: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def _interval(bounds: Sequence[float], name: str) -> tuple[float, float]:
    """Check ``(low, high)``: two finite numbers, low < high."""
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers (low, high), got {bounds!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name} must be finite with low < high, got {bounds!r}")
    return low, high


def _series(values: Any, name: str) -> np.ndarray:
    """A non-empty 1-D sequence of numbers as a ``(n,)`` float64 host array.

    A list may hold Python numbers or 0-d arrays of any backend (a training
    loop often appends the loss as a device scalar); each is copied over.
    """
    if isinstance(values, (list, tuple)):
        host = np.asarray([to_numpy(v) for v in values], dtype=np.float64)
    else:
        host = to_numpy(values).astype(np.float64)
    if host.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got shape {host.shape}")
    if host.size == 0:
        raise ValueError(f"{name} is empty: there is nothing to plot")
    return host


def _points(values: Any, name: str) -> np.ndarray:
    """A non-empty ``(S, 2)`` array of points as float64 on the host."""
    host = to_numpy(values).astype(np.float64)
    if host.ndim != 2 or host.shape[1] != 2:
        raise ValueError(f"{name} must have shape (S, 2), got {host.shape}")
    if host.shape[0] == 0:
        raise ValueError(f"{name} is empty: there is nothing to plot")
    return host


def _call(fn: Callable[[Any], Any], x: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Call ``fn(x)`` and check that it returned an array of ``shape``."""
    y = to_numpy(fn(x)).astype(np.float64)
    if y.shape != shape:
        raise ValueError(
            f"{what} must return shape {shape} for input of shape {x.shape}, got {y.shape}"
        )
    return y


def _mesh(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid over ticks ``xs`` (n,) and ``ys`` (m,).

    Returns:
        ``(gx, gy, points)``: the ``(m, n)`` coordinate arrays of
        :func:`numpy.meshgrid` and the same points as an ``(m*n, 2)`` array
        (the input layout of the callables), x varying fastest.
    """
    gx, gy = np.meshgrid(xs, ys)
    return gx, gy, np.stack([gx.ravel(), gy.ravel()], axis=1)


def _tangent_line(f: Callable[[Any], Any], x0: float, h: float) -> tuple[float, float]:
    """Slope (central difference) and intercept of the tangent of ``f`` at ``x0``."""
    y = _call(f, np.array([x0 - h, x0, x0 + h]), (3,), "f")
    slope = (y[2] - y[0]) / (2 * h)
    return float(slope), float(y[1] - slope * x0)


def _accuracies(train_acc: Any, test_acc: Any) -> tuple[np.ndarray, np.ndarray]:
    train, test = _series(train_acc, "train_acc"), _series(test_acc, "test_acc")
    if train.shape != test.shape:
        raise ValueError(
            f"train_acc has {train.size} values but test_acc has {test.size}: "
            "they must be measured at the same epochs"
        )
    return train, test


def _draw_loss(ax: Axes, loss: np.ndarray, xlabel: str) -> None:
    ax.plot(np.arange(loss.size), loss)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")


def _draw_accuracy(ax: Axes, train: np.ndarray, test: np.ndarray) -> None:
    epochs = np.arange(1, train.size + 1)  # recorded after each epoch: 1, 2, ...
    ax.plot(epochs, train, label="train acc")
    ax.plot(epochs, test, label="test acc", linestyle="--")
    ax.set_xlabel("epochs")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 0.5
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.0)
    ax.legend(loc="lower right")


# --------------------------------------------------------------------------
# The figures
# --------------------------------------------------------------------------


def plot_tangent(
    f: Callable[[Any], Any],
    x0: Any,
    path: str | os.PathLike[str],
    x_range: tuple[float, float] = (0.0, 20.0),
    h: float = 1e-4,
) -> Path:
    """Draw ``f`` and its tangent at ``x0`` (the book's ``gradient_1d``).

    The slope is the central difference ``(f(x0+h) - f(x0-h)) / 2h``,
    computed on host float64 values: it is only drawn, never trained with.

    Args:
        f: A function of one variable, called with a ``(n,)`` float64 host
            array and returning ``(n,)`` values (host or any backend).
        x0: Where the tangent touches (a number or a 0-d array).
        path: Output file (``.png``, ``.svg`` or ``.pdf``).
        x_range: ``(low, high)`` of the x axis.
        h: The central-difference step.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension, range, ``x0`` or ``h``, or ``f`` returned
            the wrong shape.
    """
    return plot_tangents(f, [float(to_numpy(x0))], path, x_range, h)


def plot_gradient_field(
    grad_f: Callable[[Any], Any],
    path: str | os.PathLike[str],
    x_range: tuple[float, float] = (-2.0, 2.5),
    step: float = 0.25,
) -> Path:
    """Draw the arrows ``-grad f`` over a grid (the book's ``gradient_2d``).

    Args:
        grad_f: The gradient of a function of two variables, called with an
            ``(N, 2)`` float64 host array of points ``(x0, x1)`` and returning
            the ``(N, 2)`` gradients there (host or any backend).
        path: Output file (``.png``, ``.svg`` or ``.pdf``).
        x_range: ``[low, high)`` of both grid axes (the book: -2 to 2.5).
        step: Grid spacing (the book: 0.25).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension, range or step, or ``grad_f`` returned the
            wrong shape.
    """
    out = _output_path(path)
    bounds = _interval(x_range, "x_range")
    step = float(step)
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be finite and > 0, got {step!r}")
    ticks = np.arange(*bounds, step)
    if ticks.size > _MAX_GRID:
        raise ValueError(f"step {step} gives more than {_MAX_GRID} grid points per axis")
    _, _, points = _mesh(ticks, ticks)
    grad = _call(grad_f, points, points.shape, "grad_f")

    fig = Figure()
    ax = fig.add_subplot()
    # Minus the gradient: the arrows show where gradient descent goes.
    ax.quiver(points[:, 0], points[:, 1], -grad[:, 0], -grad[:, 1], angles="xy", color="#666666")
    ax.set_xlim(bounds)
    ax.set_ylim(bounds)
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    ax.grid()
    return _save(fig, out)


def plot_descent_path(
    path_xy: Any,
    path: str | os.PathLike[str],
    f: Callable[[Any], Any] | None = None,
    xlim: tuple[float, float] = (-3.5, 3.5),
    ylim: tuple[float, float] = (-4.5, 4.5),
) -> Path:
    """Draw the points visited by gradient descent (the book's ``gradient_method``).

    Args:
        path_xy: The ``(S, 2)`` points ``(x0, x1)``, one per step (host or
            any backend).
        path: Output file (``.png``, ``.svg`` or ``.pdf``).
        f: Optional function of two variables to draw as contour lines,
            called with an ``(N, 2)`` float64 host array of points and
            returning their ``(N,)`` values (host or any backend).
        xlim: Range of the x0 axis.
        ylim: Range of the x1 axis.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension or limits, ``path_xy`` not ``(S, 2)`` or
            empty, or ``f`` returned the wrong shape.
    """
    out = _output_path(path)
    points = _points(path_xy, "path_xy")
    xlim, ylim = _interval(xlim, "xlim"), _interval(ylim, "ylim")

    fig = Figure()
    ax = fig.add_subplot()
    if f is not None:
        gx, gy, grid = _mesh(np.linspace(*xlim, 101), np.linspace(*ylim, 101))
        z = _call(f, grid, (grid.shape[0],), "f")
        ax.contour(gx, gy, z.reshape(gx.shape), levels=15, colors="0.75", linewidths=0.8)
    # The coordinate axes, dashed, reaching past the view as in the book.
    reach = 1.5 * max(map(abs, (*xlim, *ylim)))
    ax.plot([-reach, reach], [0, 0], "--b")
    ax.plot([0, 0], [-reach, reach], "--b")
    ax.plot(points[:, 0], points[:, 1], "o")
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_xlabel("X0")
    ax.set_ylabel("X1")
    return _save(fig, out)


def plot_loss(
    loss_list: Any,
    path: str | os.PathLike[str],
    xlabel: str = "iteration",
    ylim: Sequence[float] | None = None,
) -> Path:
    """Draw a loss curve.

    Args:
        loss_list: ``(n,)`` losses: a list of numbers or 0-d arrays, or a 1-D
            array (host or any backend).
        path: Output file (``.png``, ``.svg`` or ``.pdf``).
        xlabel: Label of the x axis (what one value stands for).
        ylim: ``(low, high)`` of the loss axis (the book's ``ylim``).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension, ``ylim``, or ``loss_list`` empty or not 1-D.
    """
    out = _output_path(path)
    return _save(training_figure(loss_list, xlabel=xlabel, ylim=ylim), out)


def plot_accuracy(train_acc: Any, test_acc: Any, path: str | os.PathLike[str]) -> Path:
    """Draw train and test accuracy per epoch (the book's figure 4-12).

    Args:
        train_acc: ``(n,)`` training accuracies in [0, 1], one per epoch
            (list of numbers or 0-d arrays, or a 1-D array of any backend).
        test_acc: ``(n,)`` test accuracies at the same epochs.
        path: Output file (``.png``, ``.svg`` or ``.pdf``).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension, empty data, or the two differ in length.
    """
    out = _output_path(path)
    train, test = _accuracies(train_acc, test_acc)
    fig = Figure()
    _draw_accuracy(fig.add_subplot(), train, test)
    return _save(fig, out)


def plot_training(
    loss_list: Any,
    train_acc: Any,
    test_acc: Any,
    path: str | os.PathLike[str],
    xlabel: str = "iteration",
    ylim: Sequence[float] | None = None,
) -> Path:
    """Draw the loss curve and the accuracy curves side by side.

    Args:
        loss_list: ``(m,)`` losses, one per iteration (see :func:`plot_loss`).
        train_acc: ``(n,)`` training accuracies, one per epoch.
        test_acc: ``(n,)`` test accuracies at the same epochs.
        path: Output file (``.png``, ``.svg`` or ``.pdf``).
        xlabel: Label of the loss curve's x axis.
        ylim: ``(low, high)`` of the loss axis.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension or ``ylim``, empty data, or the accuracies
            differ in length.
    """
    out = _output_path(path)
    return _save(training_figure(loss_list, train_acc, test_acc, xlabel=xlabel, ylim=ylim), out)


def training_figure(
    loss_list: Any,
    train_acc: Any = None,
    test_acc: Any = None,
    *,
    xlabel: str = "iteration",
    ylim: Sequence[float] | None = None,
    pyplot: bool = False,
) -> Figure:
    """The loss curve, and the accuracy curves beside it when given.

    Args:
        loss_list: ``(m,)`` losses (see :func:`plot_loss`).
        train_acc: ``(n,)`` training accuracies per epoch, or None.
        test_acc: ``(n,)`` test accuracies at the same epochs (with ``train_acc``).
        xlabel: Label of the loss curve's x axis.
        ylim: ``(low, high)`` of the loss axis, or None.
        pyplot: Make the figure through ``matplotlib.pyplot`` (so that
            ``plt.show()`` shows it); else a plain Figure, for files.

    Raises:
        ValueError: Empty or non-1-D data, accuracies of different lengths,
            or a bad ``ylim``.
    """
    limits = None if ylim is None else _interval(ylim, "ylim")
    loss = _series(loss_list, "loss_list")
    accuracies = None if train_acc is None else _accuracies(train_acc, test_acc)
    if pyplot:
        import matplotlib.pyplot as plt

        make_figure: Any = plt.figure
    else:
        make_figure = Figure
    if accuracies is None:
        fig = make_figure()
        loss_ax = fig.add_subplot()
    else:
        fig = make_figure(figsize=(11, 4), layout="constrained")
        loss_ax, acc_ax = fig.subplots(1, 2)
        _draw_accuracy(acc_ax, *accuracies)
    _draw_loss(loss_ax, loss, xlabel)
    if limits is not None:
        loss_ax.set_ylim(limits)
    return fig


#: matplotlib backends that only write files (plt.show() would show nothing).
_FILE_BACKENDS = frozenset({"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"})


def can_show() -> bool:
    """Whether ``plt.show()`` shows a figure here: an interactive or notebook backend."""
    import matplotlib

    # Resolving the default backend falls back to Agg without a display.
    return matplotlib.get_backend().lower() not in _FILE_BACKENDS


def show_or_save(
    fig: Figure, path: str | os.PathLike[str] | None = None, *, default: str = "figure.png"
) -> Path | None:
    """Write ``fig`` to ``path``; without one, show it, or write a new file and say where.

    Without ``path`` the figure is shown when matplotlib can show it (see
    :func:`can_show`; make it with ``pyplot=True`` then). Otherwise it goes
    to ``default`` in the current folder, or ``stem-2.png``... if that exists
    (no file is overwritten), and a line on stdout names the file.

    Returns:
        The file written, or None when the figure was shown.
    """
    if path is not None:
        return _save(fig, _output_path(path))
    if can_show():
        import matplotlib.pyplot as plt

        plt.show()
        return None
    written = _save_new_file(fig, Path(default))
    print(f"xpnn: no display to show the figure on; it was written to {written}")
    return written


def _save_new_file(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path``, or to ``stem-2.png``... if it exists."""
    for n in range(1, 10_000):
        candidate = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        try:
            file = open(candidate, "xb")  # "x": never overwrite, even in a race
        except FileExistsError:
            continue
        try:
            with file:
                fig.savefig(file, format="png")
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
        return candidate.resolve()
    raise FileExistsError(f"{path} and 9,998 numbered variants exist; pass a path")


def plot_tangents(
    f: Callable[[Any], Any],
    x0s: Any,
    path: str | os.PathLike[str],
    x_range: tuple[float, float] = (0.0, 20.0),
    h: float = 1e-4,
) -> Path:
    """Draw ``f`` with its tangent at each of ``x0s``, one panel per point.

    The book's figure 4-7 (tangents of ``function_1`` at 5 and 10, side by
    side). Slopes are central differences on host float64 values, as in
    :func:`plot_tangent`.

    Args:
        f: A function of one variable, called with a ``(n,)`` float64 host
            array and returning ``(n,)`` values (host or any backend).
        x0s: Where the tangents touch: a sequence of numbers (or 0-d arrays)
            or a 1-D array of any backend.
        path: Output file (``.png``, ``.svg`` or ``.pdf``).
        x_range: ``(low, high)`` of the x axes.
        h: The central-difference step.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension, range, ``x0s`` (empty, not 1-D, not
            finite) or ``h``, or ``f`` returned the wrong shape.
    """
    out = _output_path(path)
    low, high = _interval(x_range, "x_range")
    points = _series(x0s, "x0s")
    h = float(h)
    if not (np.all(np.isfinite(points)) and math.isfinite(h) and h > 0):
        raise ValueError(
            f"x0 (each of x0s) must be finite and h finite and > 0, got {points!r}, h={h!r}"
        )
    x = np.linspace(low, high, 201)
    y = _call(f, x, x.shape, "f")

    fig = Figure(figsize=(5 * points.size, 4), layout="constrained")
    for ax, x0 in zip(fig.subplots(1, points.size, squeeze=False)[0], points, strict=True):
        slope, intercept = _tangent_line(f, float(x0), h)
        ax.plot(x, y, label="f(x)")
        ax.plot(x, slope * x + intercept, linestyle="--", label=f"tangent at x={x0:g}")
        ax.plot([x0], [slope * x0 + intercept], "o")
        ax.set_title(f"slope {slope:.4g} at x={x0:g}")
        ax.set_xlabel("x")
        ax.set_ylabel("f(x)")
        ax.legend(loc="upper left")
    return _save(fig, out)


#: Markers of the classes in :func:`plot_decision_boundary` (the book's o, x, ^ first).
_CLASS_MARKERS = ("o", "x", "^", "s", "D", "v", "P", "*")

# The book's grid (spacing 0.001 over the spiral) has about 5 million points;
# far more is almost surely a wrong ``h`` and would exhaust host memory.
_MAX_BOUNDARY_POINTS = 25_000_000


def _class_labels(t: Any, n: int) -> np.ndarray:
    """One-hot ``(n, C)`` or integer ``(n,)`` labels of any backend as host ints ``(n,)``."""
    labels = to_numpy(t)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if labels.shape != (n,):
        raise ValueError(f"t must be one-hot (N, C) or labels (N,) with N={n}, got {labels.shape}")
    if labels.dtype.kind not in "iub" and not np.array_equal(labels, np.round(labels)):
        raise ValueError("t must hold integer class labels")
    return labels.astype(np.int64)


def plot_decision_boundary(
    predict: Callable[[Any], Any],
    x: Any,
    t: Any,
    path: str | os.PathLike[str],
    h: float = 0.01,
    *,
    margin: float = 0.1,
    chunk_size: int = 65536,
    backend: Backend | None = None,
) -> Path:
    """Colour the plane by the class a model predicts, and draw the data on it.

    The book's spiral figure (vol. 2, figure 1-33): the argmax of the scores
    over a grid of spacing ``h`` reaching ``margin`` beyond the data, filled
    by class, with the points marked o, x, ^ by their true class.

    The model runs where its data lives: the grid is made on the host and
    sent with :func:`xpnn.asarray` in chunks of ``chunk_size`` points (a
    fine grid would not fit a GPU at once), and only each chunk's predicted
    classes come back with :func:`xpnn.to_numpy`, not the scores.

    Args:
        predict: Maps an ``(M, 2)`` array on the model's backend to scores
            ``(M, C)`` there (e.g. ``model.predict``).
        x: The ``(N, 2)`` data points. If ``backend`` is omitted, ``x`` must
            be an array of the model's backend: the grid goes to its backend
            and device in its dtype.
        t: Their classes: one-hot ``(N, C)`` or integers ``(N,)``, any backend.
        path: Output file (``.png``, ``.svg`` or ``.pdf``).
        h: Grid spacing (the book: 0.001).
        margin: How far the grid reaches beyond the data on each side (the
            book: 0.1).
        chunk_size: Grid points per ``predict`` call.
        backend: Where to send the grid (in its default float dtype), when
            ``x`` is not on the model's backend.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension, ``h``, ``margin`` or ``chunk_size``, a grid
            over 25 million points, ``x``/``t`` of the wrong shape, or
            ``predict`` returned the wrong shape.
        TypeError: ``backend`` is omitted and ``x`` is not an array.
    """
    out = _output_path(path)
    points = _points(x, "x")
    labels = _class_labels(t, points.shape[0])
    h, margin = float(h), float(margin)
    if not (math.isfinite(h) and h > 0 and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"need h > 0 and margin >= 0, both finite; got h={h!r}, margin={margin!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    low, high = points.min(axis=0) - margin, points.max(axis=0) + margin
    xs, ys = np.arange(low[0], high[0], h), np.arange(low[1], high[1], h)
    if xs.size * ys.size > _MAX_BOUNDARY_POINTS:
        raise ValueError(
            f"h={h} gives a grid of {xs.size} x {ys.size} points, more than "
            f"{_MAX_BOUNDARY_POINTS}: choose a larger h"
        )
    gx, gy, grid = _mesh(xs, ys)
    target = backend if backend is not None else backend_of(x)
    dtype = backend.float_dtype if backend is not None else x.dtype

    predicted = []
    num_classes = 0
    for start in range(0, grid.shape[0], chunk_size):
        chunk = grid[start : start + chunk_size]
        scores = predict(asarray(chunk, dtype=dtype, backend=target))
        if scores.ndim != 2 or scores.shape[0] != chunk.shape[0]:
            raise ValueError(
                f"predict must return scores (M, C) for input of shape {chunk.shape}, "
                f"got {tuple(scores.shape)}"
            )
        num_classes = scores.shape[1]
        xp = get_namespace(scores)
        predicted.append(to_numpy(xp.argmax(scores, axis=1)))  # M ints, not M x C floats
    z = np.concatenate(predicted).reshape(gx.shape)
    num_classes = max(num_classes, int(labels.max()) + 1)

    colors = [colormaps["tab10"](i % 10) for i in range(num_classes)]
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.add_subplot()
    # One filled level per class: boundaries at half-integers between class numbers.
    ax.contourf(gx, gy, z, levels=np.arange(num_classes + 1) - 0.5, colors=colors, alpha=0.3)
    for cls in range(num_classes):
        mine = points[labels == cls]
        ax.scatter(
            mine[:, 0],
            mine[:, 1],
            s=40,
            marker=_CLASS_MARKERS[cls % len(_CLASS_MARKERS)],
            color=colors[cls],
            label=f"class {cls}",
        )
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_aspect("equal")
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    ax.legend(loc="upper right", framealpha=0.9)
    return _save(fig, out)


# --------------------------------------------------------------------------
# The hyper-parameter search (vol. 1, 6.5)
# --------------------------------------------------------------------------


def search_figure(
    records: Sequence[Any], *, top: int = 20, cols: int = 5, pyplot: bool = False
) -> Figure:
    """The book's search figure: one panel per trial, best first.

    Each panel ``Best-i`` shows the trial's validation accuracy per epoch
    (solid) and its training accuracy (dashed) on a 0..1 axis; y ticks on
    the first panel of each row only, as the book draws it.

    Args:
        records: Trial records ranked best first (dicts with
            ``val_acc_list`` and ``train_acc_list``, as
            :meth:`xpnn.search.SearchResult.ranked` gives), or a
            :class:`~xpnn.search.SearchResult`.
        top: Panels: the first ``top`` records (1..20).
        cols: Panels per row (5 as the book).
        pyplot: Make the figure through ``matplotlib.pyplot`` (to show it).

    Raises:
        ValueError: No records, a bad ``top`` or ``cols``, or a record
            without curves.
    """
    if hasattr(records, "ranked"):
        records = records.ranked()
    for name, value, most in (("top", top, 20), ("cols", cols, 20)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise ValueError(f"{name} must be an int from 1 to {most}, got {value!r}")
    shown = list(records)[:top]
    if not shown:
        raise ValueError("no trials to draw")
    curves = []
    for record in shown:
        val, train = record.get("val_acc_list"), record.get("train_acc_list")
        if not val:
            raise ValueError(
                f"trial {record.get('trial')} has no validation curve (val_acc_list) to draw"
            )
        val = _series(val, "val_acc_list")
        curves.append((record, val, None if not train else _series(train, "train_acc_list")))
    rows = math.ceil(len(shown) / cols)
    if pyplot:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(2.4 * cols, 2.0 * rows), layout="constrained")
    else:
        fig = Figure(figsize=(2.4 * cols, 2.0 * rows), layout="constrained")
    for i, (record, val, train) in enumerate(curves):
        ax = fig.add_subplot(rows, cols, i + 1)
        score = record.get("val_acc")
        ax.set_title(f"Best-{i + 1}" + ("" if score is None else f" ({score:.2f})"), fontsize=9)
        ax.set_ylim(0.0, 1.0)
        if i % cols:
            ax.set_yticks([])
        ax.set_xticks([])
        ax.plot(np.arange(val.size), val)
        if train is not None:
            ax.plot(np.arange(train.size), train, "--")
    return fig


def plot_search(
    records: Sequence[Any], path: str | os.PathLike[str], *, top: int = 20, cols: int = 5
) -> Path:
    """Write the book's search figure (see :func:`search_figure`): the best trials' curves.

    Args:
        records: Trial records ranked best first, or a
            :class:`~xpnn.search.SearchResult`.
        path: Output file (``.png``, ``.svg`` or ``.pdf``).
        top: Panels (at most 20, the book's ``graph_draw_num``).
        cols: Panels per row (the book's ``col_num``, 5).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension, ``top`` or ``cols``, or no curves to draw.
    """
    out = _output_path(path)
    return _save(search_figure(records, top=top, cols=cols), out)


# --------------------------------------------------------------------------
# Convolutional networks (vol. 1, ch. 7 and 8)
# --------------------------------------------------------------------------


def _new_figure(pyplot: bool, **kwargs: Any) -> Figure:
    """A plain Figure, or one made through ``matplotlib.pyplot`` (to show it)."""
    if pyplot:
        import matplotlib.pyplot as plt

        return plt.figure(**kwargs)
    return Figure(**kwargs)


def _positive_int(value: Any, name: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ValueError(f"{name} must be an int from 1 to {most}, got {value!r}")
    return value


def filters_figure(
    filters: Any, *, nx: int = 8, title: str | None = None, pyplot: bool = False
) -> Figure:
    """The book's ``filter_show`` (figure 7-24): each filter's first channel as a grey image.

    One panel per filter, ``nx`` per row, no ticks; dark is a large weight
    (the book's ``gray_r``), each panel scaled to its own range as
    ``imshow`` does.

    Args:
        filters: Convolution weights ``(FN, C, FH, FW)`` of any backend (a
            network's ``params['W1']``); channel 0 is drawn, as in the book.
        nx: Panels per row (the book: 8).
        title: A title above the grid, or None.
        pyplot: Make the figure through ``matplotlib.pyplot`` (to show it).

    Returns:
        The figure, with ``FN`` axes (one per filter).

    Raises:
        ValueError: ``filters`` is not 4-D or has no filter, or a bad ``nx``.
    """
    host = to_numpy(filters)
    if host.ndim != 4 or 0 in host.shape:
        raise ValueError(
            f"filters must be convolution weights (FN, C, FH, FW), got shape {host.shape}"
        )
    nx = _positive_int(nx, "nx", 100)
    host = host.astype(np.float64)
    fn = host.shape[0]
    cols = min(nx, fn)
    rows = math.ceil(fn / cols)
    height = 0.8 * rows + (0.4 if title else 0.0)  # inches; 0.4 for the title
    fig = _new_figure(pyplot, figsize=(0.8 * cols, height))
    top = 1 - 0.4 / height if title else 0.99
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top, hspace=0.05, wspace=0.05)
    for i in range(fn):
        ax = fig.add_subplot(rows, cols, i + 1, xticks=[], yticks=[])
        ax.imshow(host[i, 0], cmap="gray_r", interpolation="nearest")
    if title:
        fig.suptitle(title)
    return fig


def plot_filters(
    filters: Any, path: str | os.PathLike[str], *, nx: int = 8, title: str | None = None
) -> Path:
    """Write the book's filter figure (see :func:`filters_figure`).

    Args:
        filters: Convolution weights ``(FN, C, FH, FW)`` of any backend.
        path: Output file (``.png``, ``.svg`` or ``.pdf``).
        nx: Panels per row (the book: 8).
        title: A title above the grid, or None.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension, ``filters`` not 4-D, or a bad ``nx``.
    """
    out = _output_path(path)
    return _save(filters_figure(filters, nx=nx, title=title), out)


def _images(x: Any) -> np.ndarray:
    """Images ``(N, 1, H, W)``, ``(N, H, W)`` or square rows ``(N, H*W)`` as host ``(N, H, W)``."""
    host = to_numpy(x).astype(np.float64)
    if host.ndim == 4 and host.shape[1] == 1:
        return host[:, 0]
    if host.ndim == 3:
        return host
    if host.ndim == 2:
        side = math.isqrt(host.shape[1])
        if side * side == host.shape[1]:
            return host.reshape(host.shape[0], side, side)
    raise ValueError(
        "x must be grey images (N, 1, H, W) or (N, H, W), or square ones as rows "
        f"(N, H*W), got shape {host.shape}"
    )


def misclassified_figure(
    x: Any,
    t: Any,
    y: Any,
    *,
    max_view: int = 20,
    cols: int = 5,
    pyplot: bool = False,
) -> Figure:
    """The book's ``misclassified_mnist`` figure: the first wrongly classified images.

    The first ``max_view`` images whose predicted class differs from the
    true one, in order, ``cols`` per row, each titled with the prediction
    and the true class (``"3 (true 5)"``), grey, no ticks. When every image
    is classified right, the figure says so in one panel.

    Args:
        x: The images: ``(N, 1, H, W)``, ``(N, H, W)`` or square rows
            ``(N, H*W)``, any backend.
        t: True classes, integers ``(N,)`` or one-hot ``(N, C)``, any backend.
        y: Predicted classes ``(N,)`` or scores ``(N, C)`` (argmax taken),
            any backend.
        max_view: The most images drawn (the book: 20).
        cols: Panels per row (the book: 5).
        pyplot: Make the figure through ``matplotlib.pyplot`` (to show it).

    Returns:
        The figure: one axes per image drawn.

    Raises:
        ValueError: Shapes that do not match, or a bad ``max_view`` or ``cols``.
    """
    images = _images(x)
    n = images.shape[0]
    labels = _class_labels(t, n)
    try:
        predicted = _class_labels(y, n)
    except ValueError as exc:
        raise ValueError(f"y: {exc}".replace("t must", "y must")) from None
    max_view = _positive_int(max_view, "max_view", 1000)
    cols = _positive_int(cols, "cols", 100)
    wrong = np.flatnonzero(predicted != labels)[:max_view]
    if wrong.size == 0:
        fig = _new_figure(pyplot, figsize=(4, 1.5))
        fig.text(0.5, 0.5, f"all {n} images classified right", ha="center", va="center")
        return fig
    cols = min(cols, wrong.size)
    rows = math.ceil(wrong.size / cols)
    fig = _new_figure(pyplot, figsize=(1.4 * cols, 1.6 * rows), layout="constrained")
    for k, i in enumerate(wrong):
        ax = fig.add_subplot(rows, cols, k + 1, xticks=[], yticks=[])
        ax.imshow(images[i], cmap="gray_r", interpolation="nearest")
        ax.set_title(f"{predicted[i]} (true {labels[i]})", fontsize=9)
    return fig


def plot_misclassified(
    x: Any,
    t: Any,
    y: Any,
    path: str | os.PathLike[str],
    *,
    max_view: int = 20,
    cols: int = 5,
) -> Path:
    """Write the misclassified images (see :func:`misclassified_figure`).

    Args:
        x: The images ``(N, 1, H, W)``, ``(N, H, W)`` or ``(N, H*W)``.
        t: True classes ``(N,)`` or one-hot ``(N, C)``.
        y: Predicted classes ``(N,)`` or scores ``(N, C)``.
        path: Output file (``.png``, ``.svg`` or ``.pdf``).
        max_view: The most images drawn (the book: 20).
        cols: Panels per row (the book: 5).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension, shapes that do not match, or a bad
            ``max_view`` or ``cols``.
    """
    out = _output_path(path)
    return _save(misclassified_figure(x, t, y, max_view=max_view, cols=cols), out)


def plot_word_vectors(
    word_vecs: Any,
    id_to_word: dict[int, str],
    path: str | os.PathLike[str],
    words: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Words as points of the plane, labelled (the book's ``count_method_small.py`` figure).

    The book draws ``U[:, 0]`` against ``U[:, 1]`` of its SVD, each point
    annotated with its word. Vectors of more than two dimensions (word2vec's
    ``word_vecs``) are projected on their first two principal axes (the SVD
    of the centred vectors of the words shown, on the host), so neighbours
    in the plane are neighbours in the space as far as two axes can tell.

    Args:
        word_vecs: ``(V, D)`` vectors, ``D >= 2``, of any backend (read to the
            host once).
        id_to_word: The vocabulary, id to word.
        path: Output file (``.png``, ``.svg`` or ``.pdf``).
        words: The words to draw (default: all, at most 300 of them); each
            must be in the vocabulary.
        title: The figure's title.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: Bad extension, ``word_vecs`` not ``(V, D)`` with ``D >=
            2``, a word not in the vocabulary, more than 300 words.
    """
    out = _output_path(path)
    vecs = to_numpy(word_vecs).astype(np.float64)
    if vecs.ndim != 2 or vecs.shape[1] < 2 or vecs.shape[0] == 0:
        raise ValueError(f"word_vecs must have shape (V, D) with D >= 2, got {vecs.shape}")
    word_to_id = {w: i for i, w in id_to_word.items()}
    if words is None:
        words = [id_to_word[i] for i in sorted(id_to_word) if i < vecs.shape[0]]
    missing = [w for w in words if w not in word_to_id or word_to_id[w] >= vecs.shape[0]]
    if missing:
        raise ValueError(f"not in the vocabulary: {', '.join(map(repr, missing[:5]))}")
    if not 0 < len(words) <= 300:
        raise ValueError(f"plot_word_vectors draws 1 to 300 words, got {len(words)}")
    points = vecs[[word_to_id[w] for w in words]]
    if points.shape[1] > 2:
        centred = points - points.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        points = centred @ vt[:2].T
    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot()
    ax.scatter(points[:, 0], points[:, 1], alpha=0.5)
    for word, (x, y) in zip(words, points[:, :2], strict=True):
        ax.annotate(word, (x, y))
    if title:
        ax.set_title(title)
    return _save(fig, out)


def attention_map(
    weights: Any,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    ax: Axes | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Axes:
    """The book's attention heat map (``ch08/visualize_attention.py``, figure 8-26).

    One row per decoder step, one column per encoder step; a cell is the
    weight the step gave that input character, white 1 and black 0 (the
    book's ``Greys_r`` from ``vmin=0`` to ``vmax=1``), the first step on
    top. A model that learned to align shows a bright cell per row, on the
    characters the output copies (``1994`` from ``1994``, ``09`` from
    ``september``).

    Args:
        weights: ``(T_dec, T_enc)`` weights in ``[0, 1]``, any backend: one
            sample's rows of ``model.decoder.attention.attention_weights``
            stacked (``[w[0] for w in attention_weights]``).
        row_labels: ``T_dec`` labels of the rows (y axis): the characters
            each decoder step answers (the book's ``t[0][1:]``).
        col_labels: ``T_enc`` labels of the columns (x axis): the input
            characters, in the order of the columns.
        ax: Draw here (one panel of a larger figure); None: on a new figure.
        path: Also write the axes' figure to this file (``.png``, ``.svg``
            or ``.pdf``). A new figure is made through ``matplotlib.pyplot``
            (so that ``plt.show()`` shows it) only when neither ``ax`` nor
            ``path`` is given.

    Returns:
        The axes drawn on (its ``.figure`` is the figure).

    Raises:
        ValueError: Bad extension, ``weights`` not 2-D and non-empty, a
            weight not finite or outside ``[0, 1]`` (it would be drawn as
            0 or 1), or labels whose counts differ from the shape.
    """
    out = None if path is None else _output_path(path)
    host = to_numpy(weights).astype(np.float64)
    if host.ndim != 2 or 0 in host.shape:
        raise ValueError(
            f"weights must be one map (T_dec, T_enc) with both sizes > 0, got shape {host.shape}; "
            "stack one sample's rows: [w[0] for w in attention_weights]"
        )
    if not np.all(np.isfinite(host)) or host.min() < -1e-6 or host.max() > 1 + 1e-6:
        raise ValueError(
            "weights must be finite and in [0, 1] (softmax weights), got values from "
            f"{host.min():g} to {host.max():g}"
        )
    rows, cols = list(row_labels), list(col_labels)
    if len(rows) != host.shape[0] or len(cols) != host.shape[1]:
        raise ValueError(
            f"weights of shape {host.shape} need {host.shape[0]} row_labels and "
            f"{host.shape[1]} col_labels, got {len(rows)} and {len(cols)}"
        )
    if ax is None:
        fig = _new_figure(
            pyplot=out is None, figsize=(0.3 * host.shape[1] + 1, 0.3 * host.shape[0] + 1)
        )
        ax = fig.add_subplot()
    ax.imshow(host, cmap="Greys_r", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.set_xticks(np.arange(host.shape[1]), [str(c) for c in cols])
    ax.set_yticks(np.arange(host.shape[0]), [str(r) for r in rows])
    ax.tick_params(length=0)
    if out is not None:
        _save(ax.figure, out)
    return ax

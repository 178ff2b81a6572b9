"""The book's figures: each writes a valid PNG and SVG, from any backend's arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn import plot
from xpnn.plot import (
    plot_accuracy,
    plot_descent_path,
    plot_gradient_field,
    plot_loss,
    plot_tangent,
    plot_training,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_image(path: Path) -> None:
    """The file exists, is non-empty and starts like a file of its format."""
    data = path.read_bytes()
    if path.suffix == ".png":
        assert data.startswith(PNG_SIGNATURE)
        assert data[12:16] == b"IHDR"  # the first chunk of every PNG
        assert len(data) > 1000  # a real picture, not just a header
    elif path.suffix == ".svg":
        assert data.lstrip().startswith(b"<?xml")
        assert b"<svg" in data and data.rstrip().endswith(b"</svg>")
    else:
        assert data.startswith(b"%PDF-")


# The book's example functions, written against the namespace of the data so
# that they run on host arrays as well as on any backend's.
def function_1(x):
    return 0.01 * x**2 + 0.1 * x


def on_backend(fn):
    """``fn`` applied to its (host) input moved to the active backend."""
    return lambda x: fn(xpnn.asarray(x))


def function_2_rows(points):
    """f(x0, x1) = x0^2 + x1^2 for each row of an (N, 2) array -> (N,)."""
    xp = xpnn.get_namespace(points)
    return xp.sum(points**2, axis=1)


def gradient_2_rows(points):
    """The gradient (2 x0, 2 x1) of function_2 for each row -> (N, 2)."""
    return 2 * points


def descent_history(steps: int = 20, lr: float = 0.1) -> np.ndarray:
    """The book's gradient_method path from (-3, 4): shape (steps, 2)."""
    x = np.array([-3.0, 4.0])
    history = []
    for _ in range(steps):
        history.append(x.copy())
        x = x - lr * 2 * x
    return np.array(history)


LOSS = [2.3, 1.5, 0.9, 0.6, 0.5, 0.45]
TRAIN_ACC = [0.1, 0.78, 0.88, 0.9]
TEST_ACC = [0.1, 0.79, 0.87, 0.89]

# Every function, called with host data: name -> call(path).
CALLS = {
    "tangent": lambda p: plot_tangent(function_1, 5.0, p),
    "gradient_field": lambda p: plot_gradient_field(gradient_2_rows, p),
    "descent_path": lambda p: plot_descent_path(descent_history(), p),
    "descent_path_contour": lambda p: plot_descent_path(descent_history(), p, f=function_2_rows),
    "loss": lambda p: plot_loss(LOSS, p),
    "accuracy": lambda p: plot_accuracy(TRAIN_ACC, TEST_ACC, p),
    "training": lambda p: plot_training(LOSS, TRAIN_ACC, TEST_ACC, p),
}


@pytest.mark.parametrize("suffix", [".png", ".svg"])
@pytest.mark.parametrize("name", list(CALLS))
def test_writes_a_valid_image(tmp_path, name, suffix):
    path = tmp_path / f"{name}{suffix}"
    assert CALLS[name](path) == path
    assert_image(path)


def test_pdf_and_str_path_and_parent_directories(tmp_path):
    path = tmp_path / "new" / "dir" / "loss.pdf"
    assert plot_loss(LOSS, str(path)) == path
    assert_image(path)


def test_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "acc.png"
    path.write_bytes(b"old")
    plot_accuracy(TRAIN_ACC, TEST_ACC, path)
    assert_image(path)


@pytest.mark.parametrize("name", list(CALLS))
def test_unknown_extension_is_rejected_before_drawing(tmp_path, name):
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf"):
        CALLS[name](tmp_path / "figure.jpeg")
    assert not (tmp_path / "figure.jpeg").exists()


# ----------------------------------------------------------- other backends


def test_with_backend_arrays(backend, tmp_path):
    x = xpnn.asarray
    history = x(descent_history())
    calls = {
        "tangent": lambda p: plot_tangent(on_backend(function_1), x(5.0), p),
        "gradient_field": lambda p: plot_gradient_field(on_backend(gradient_2_rows), p),
        "descent_path": lambda p: plot_descent_path(history, p, f=on_backend(function_2_rows)),
        "loss_array": lambda p: plot_loss(x(LOSS), p),
        # A training loop appends the loss as a 0-d array of its backend.
        "loss_scalars": lambda p: plot_loss([x(v) for v in LOSS], p),
        "accuracy": lambda p: plot_accuracy(x(TRAIN_ACC), [x(v) for v in TEST_ACC], p),
        "training": lambda p: plot_training(x(LOSS), x(TRAIN_ACC), x(TEST_ACC), p),
    }
    for name, call in calls.items():
        path = tmp_path / f"{name}.png"
        assert call(path) == path
        assert_image(path)


# ------------------------------------------------------------------- values


def test_tangent_slope_is_the_central_difference():
    # The book: the derivative of 0.01x^2 + 0.1x at 5 is 0.2 (0.1999999999990898).
    slope, intercept = plot._tangent_line(function_1, 5.0, 1e-4)
    assert slope == pytest.approx(0.2, abs=1e-9)
    assert slope * 5.0 + intercept == pytest.approx(function_1(5.0))


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: plot_accuracy([0.1, 0.2], [0.1], p), "2 values but test_acc has 1"),
        (lambda p: plot_training(LOSS, [0.1], [0.1, 0.2], p), "1 values but test_acc has 2"),
        (lambda p: plot_accuracy([], [], p), "train_acc is empty"),
        (lambda p: plot_training([], TRAIN_ACC, TEST_ACC, p), "loss_list is empty"),
        (lambda p: plot_loss([], p), "loss_list is empty"),
        (lambda p: plot_loss(np.array([]), p), "loss_list is empty"),
        (lambda p: plot_loss(np.ones((2, 3)), p), r"1-D .* shape \(2, 3\)"),
        (lambda p: plot_descent_path(np.zeros((0, 2)), p), "path_xy is empty"),
        (lambda p: plot_descent_path(np.zeros((4, 3)), p), r"\(S, 2\), got \(4, 3\)"),
        (lambda p: plot_descent_path(np.zeros(4), p), r"\(S, 2\), got \(4,\)"),
        (lambda p: plot_descent_path(descent_history(), p, f=gradient_2_rows), "f must return"),
        (lambda p: plot_gradient_field(function_2_rows, p), "grad_f must return"),
        (lambda p: plot_gradient_field(gradient_2_rows, p, step=0), "step"),
        (lambda p: plot_gradient_field(gradient_2_rows, p, step=1e-5), "grid points"),
        (lambda p: plot_tangent(lambda x: x[:1], 5.0, p), "f must return"),
        (lambda p: plot_tangent(function_1, 5.0, p, x_range=(3.0, 1.0)), "low < high"),
        (lambda p: plot_tangent(function_1, 5.0, p, x_range=(0.0,)), "two numbers"),
        (lambda p: plot_tangent(function_1, 5.0, p, h=0.0), "h"),
        (lambda p: plot_tangent(function_1, float("nan"), p), "x0"),
        (lambda p: plot_descent_path(descent_history(), p, xlim=(1.0, 1.0)), "xlim"),
    ],
)
def test_bad_input_is_a_value_error_and_writes_nothing(tmp_path, call, match):
    path = tmp_path / "figure.png"
    with pytest.raises(ValueError, match=match):
        call(path)
    assert not path.exists()


def test_loss_axis_takes_the_books_ylim(tmp_path):
    from xpnn.plot import plot_loss, training_figure

    fig = training_figure([2.0, 1.0, 0.5], [0.3, 0.6], [0.2, 0.5], ylim=(0, 2.5))
    assert len(fig.axes) == 2 and fig.axes[0].get_ylim() == (0.0, 2.5)
    assert plot_loss([2.0, 1.0], tmp_path / "l.png", ylim=(0, 3)).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="ylim"):
        plot_loss([2.0, 1.0], tmp_path / "bad.png", ylim=(3, 0))
    assert not (tmp_path / "bad.png").exists()


def test_plot_word_vectors_draws_the_words_and_refuses_bad_input(backend, tmp_path):
    from xpnn.plot import plot_word_vectors

    id_to_word = {0: "you", 1: "say", 2: "goodbye", 3: "hello"}
    vecs = xpnn.asarray(np.arange(12, dtype=np.float32).reshape(4, 3) ** 1.5)
    out = plot_word_vectors(vecs, id_to_word, tmp_path / "w.png", words=["you", "hello"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_word_vectors(vecs[:, :2], id_to_word, tmp_path / "all.svg").exists()
    with pytest.raises(ValueError, match="not in the vocabulary: 'car'"):
        plot_word_vectors(vecs, id_to_word, tmp_path / "x.png", words=["you", "car"])
    with pytest.raises(ValueError, match=r"shape \(V, D\) with D >= 2"):
        plot_word_vectors(vecs[:, :1], id_to_word, tmp_path / "x.png")
    with pytest.raises(ValueError, match="extension"):
        plot_word_vectors(vecs, id_to_word, tmp_path / "x.txt")
    assert not (tmp_path / "x.png").exists()


def test_attention_map_draws_the_weights_with_the_characters(backend, tmp_path):
    from matplotlib.figure import Figure

    from xpnn.plot import attention_map

    rng = np.random.default_rng(0)
    scores = rng.standard_normal((3, 5))
    host = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)  # softmax rows
    weights = xpnn.asarray(host.astype(np.float32))
    rows, cols = list("1-0"), list("may 3")
    ax = attention_map(weights, rows, cols, path=tmp_path / "a.png")
    assert_image(tmp_path / "a.png")
    [image] = ax.images
    np.testing.assert_allclose(image.get_array(), host, rtol=1e-6)
    assert image.get_clim() == (0.0, 1.0)  # the book's vmin=0, vmax=1: 1 is white
    assert [t.get_text() for t in ax.get_xticklabels()] == cols
    assert [t.get_text() for t in ax.get_yticklabels()] == rows
    # One panel of a larger figure: drawn there, nothing written.
    fig = Figure()
    axes = fig.subplots(2, 1)
    assert attention_map(host, rows, cols, ax=axes[1]) is axes[1]
    assert len(axes[1].images) == 1 and len(axes[0].images) == 0


@pytest.mark.parametrize(
    ("weights", "rows", "cols", "match"),
    [
        (np.full((2, 3), 0.5), "ab", "abc", None),  # the extension
        (np.full((6,), 0.5), "ab", "abc", r"one map \(T_dec, T_enc\)"),
        (np.full((2, 0), 0.5), "ab", "", r"one map \(T_dec, T_enc\)"),
        (np.full((2, 3), 1.5), "ab", "abc", r"in \[0, 1\]"),
        (np.full((2, 3), -0.5), "ab", "abc", r"in \[0, 1\]"),
        (np.full((2, 3), np.nan), "ab", "abc", "finite"),
        (np.full((2, 3), 0.5), "a", "abc", "need 2 row_labels and 3 col_labels, got 1 and 3"),
        (np.full((2, 3), 0.5), "ab", "abcd", "need 2 row_labels and 3 col_labels, got 2 and 4"),
    ],
)
def test_attention_map_refuses_what_it_would_draw_wrong(tmp_path, weights, rows, cols, match):
    from xpnn.plot import attention_map

    name = tmp_path / ("map.txt" if match is None else "map.png")
    with pytest.raises(ValueError, match=match or "extension"):
        attention_map(weights, list(rows), list(cols), path=name)
    assert not name.exists()


def test_attention_map_without_ax_or_path_is_a_pyplot_figure():
    import matplotlib.pyplot as plt

    from xpnn.plot import attention_map

    ax = attention_map(np.eye(2), ["a", "b"], ["x", "y"])
    try:
        assert plt.fignum_exists(ax.figure.number)  # plt.show() would show it
    finally:
        plt.close(ax.figure)

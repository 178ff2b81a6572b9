"""xpnn.util: the book's common/util.py helpers, on every backend.

Each is checked against the book's definition, written out here in NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import util


def _book_smooth_curve(x: np.ndarray) -> np.ndarray:
    """The book's formula by hand: mirror 10 points at each end, Kaiser(11, 2) average."""
    window_len = 11
    s = np.r_[x[window_len - 1 : 0 : -1], x, x[-1:-window_len:-1]]
    w = np.kaiser(window_len, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5 : len(y) - 5]


def test_util_has_the_books_names():
    assert set(util.__all__) == {
        "smooth_curve",
        "shuffle_dataset",
        "conv_output_size",
        "im2col",
        "col2im",
        # vol. 2's text tools (xpnn.text, re-exported)
        "preprocess",
        "create_co_matrix",
        "cos_similarity",
        "most_similar",
        "analogy",
        "ppmi",
        "convert_one_hot",
        "create_contexts_target",
        "normalize",
        # vol. 2's to_cpu/to_gpu (xpnn.to_numpy, xpnn.asarray under the book's names)
        "to_cpu",
        "to_gpu",
        # vol. 2 ch. 6's eval_perplexity (xpnn.models.rnnlm's, re-exported)
        "eval_perplexity",
        # ch. 6's clip_grads and ch. 7's eval_seq2seq (re-exported), with xpnn's batched one
        "clip_grads",
        "eval_seq2seq",
        "eval_seq2seq_batch",
    }
    assert util.clip_grads is xpnn.training.clipping.clip_grads
    assert util.eval_seq2seq is xpnn.models.seq2seq.eval_seq2seq
    assert util.eval_perplexity is xpnn.models.rnnlm.eval_perplexity
    assert util.im2col is xpnn.layers.conv.im2col
    assert util.col2im is xpnn.layers.conv.col2im
    assert xpnn.util is util and "util" in xpnn.__all__


@pytest.mark.parametrize("n", [11, 12, 200])
def test_smooth_curve_is_the_books_formula(backend, n):
    host = np.random.default_rng(n).random(n) * 3.0
    curve = xpnn.asarray(host, dtype="float64")  # on the backend under test
    got = util.smooth_curve(curve)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    assert got.shape == (n,)
    np.testing.assert_allclose(got, _book_smooth_curve(host), rtol=1e-12, atol=0)


def test_smooth_curve_takes_a_list_and_keeps_a_constant_curve():
    losses = [2.5] * 30
    np.testing.assert_allclose(util.smooth_curve(losses), losses, rtol=1e-12)
    values = list(np.linspace(0.0, 1.0, 40))
    np.testing.assert_allclose(
        util.smooth_curve(values), _book_smooth_curve(np.asarray(values)), rtol=1e-12
    )


def test_smooth_curve_leaves_a_curve_shorter_than_the_window_as_it_is():
    short = [3.0, 2.0, 1.0]
    got = util.smooth_curve(short)
    np.testing.assert_array_equal(got, short)
    assert got.dtype == np.float64
    with pytest.raises(ValueError, match="1-D"):
        util.smooth_curve(np.zeros((20, 2)))


def _data(n: int = 10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    t = np.arange(n, dtype=np.int64)
    return x, t


def test_shuffle_dataset_is_one_permutation_of_x_and_t(backend, xp):
    x_host, t_host = _data(25)
    x, t = xpnn.asarray(x_host), xpnn.asarray(t_host)
    xs, ts = util.shuffle_dataset(x, t, seed=3)
    assert xpnn.backend_of(xs) == backend and xpnn.backend_of(ts) == backend
    assert xs.dtype == x.dtype and ts.dtype == t.dtype
    order = xpnn.to_numpy(ts)
    assert sorted(order.tolist()) == list(range(25))  # a permutation
    assert not np.array_equal(order, t_host)
    # x's rows in the same order as t's (row i of x_host is sample i).
    np.testing.assert_array_equal(xpnn.to_numpy(xs), x_host[order])


def test_shuffle_dataset_keeps_images_and_one_hot_labels_together(backend, xp):
    n = 8
    x_host = np.arange(n * 2 * 3 * 3, dtype=np.float32).reshape(n, 2, 3, 3)
    t_host = np.eye(n, dtype=np.float32)  # one-hot: sample i has label i
    xs, ts = util.shuffle_dataset(xpnn.asarray(x_host), xpnn.asarray(t_host), seed=0)
    order = np.argmax(xpnn.to_numpy(ts), axis=1)
    assert tuple(xs.shape) == (n, 2, 3, 3)
    np.testing.assert_array_equal(xpnn.to_numpy(xs), x_host[order])


def test_shuffle_dataset_gives_the_same_order_on_every_backend(backend):
    x_host, t_host = _data(40)
    _, ts = util.shuffle_dataset(xpnn.asarray(x_host), xpnn.asarray(t_host), seed=11)
    expected = np.random.default_rng(11).permutation(40)  # xpnn.default_rng's draw
    np.testing.assert_array_equal(xpnn.to_numpy(ts), expected)
    with xpnn.use_backend("numpy"):
        _, on_numpy = util.shuffle_dataset(x_host, t_host, seed=11)
    np.testing.assert_array_equal(xpnn.to_numpy(ts), on_numpy)


def test_shuffle_dataset_does_not_touch_numpys_global_state():
    x, t = _data()
    before = np.random.get_state()  # noqa: NPY002
    util.shuffle_dataset(x, t)
    after = np.random.get_state()  # noqa: NPY002
    assert before[2:] == after[2:]
    np.testing.assert_array_equal(after[1], before[1])


def test_shuffle_dataset_refuses_mismatched_lengths():
    x, t = _data(10)
    with pytest.raises(ValueError, match="10 samples but t has 9"):
        util.shuffle_dataset(x, t[:9])
    with pytest.raises(ValueError, match="first axis"):
        util.shuffle_dataset(np.float32(1.0) + np.zeros(()), t)


@pytest.mark.parametrize(
    ("input_size", "filter_size", "stride", "pad"),
    [(28, 5, 1, 0), (24, 2, 2, 0), (7, 3, 2, 1), (6, 3, 2, 0)],
)
def test_conv_output_size_is_the_books_formula(input_size, filter_size, stride, pad):
    book = (input_size + 2 * pad - filter_size) / stride + 1  # a float, as in the book
    assert util.conv_output_size(input_size, filter_size, stride, pad) == book
    assert util.conv_output_size(input_size, filter_size, stride=stride, pad=pad) == book


def test_conv_output_size_defaults_and_float_result():
    assert util.conv_output_size(28, 5) == 24.0
    assert isinstance(util.conv_output_size(28, 5), float)
    assert util.conv_output_size(6, 3, 2) == 2.5  # the book's true division

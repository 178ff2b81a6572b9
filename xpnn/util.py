"""The book's ``common/util.py`` (vol. 1 and 2): its helpers under their names.

``from common.util import smooth_curve`` becomes ``from xpnn.util import
smooth_curve``; the same for :func:`shuffle_dataset`,
:func:`conv_output_size`, :func:`im2col` and :func:`col2im` (the last two are
:mod:`xpnn.layers.conv`'s, re-exported), and for vol. 2's text tools
(:func:`preprocess`, :func:`create_co_matrix`, :func:`cos_similarity`,
:func:`most_similar`, :func:`analogy`, :func:`ppmi`,
:func:`convert_one_hot`, :func:`create_contexts_target`,
:func:`normalize`: :mod:`xpnn.text`'s, re-exported), and vol. 2 ch. 6's
:func:`eval_perplexity` (:mod:`xpnn.models.rnnlm`'s, re-exported) and ch. 7's
:func:`eval_seq2seq` (with xpnn's batched :func:`eval_seq2seq_batch`,
:mod:`xpnn.models.seq2seq`'s, re-exported), and
:func:`clip_grads` (:mod:`xpnn.training.clipping`'s, re-exported: the book's
``common/util.py`` has it).

Where they differ from the book:

- :func:`smooth_curve` is plotting help on the host: it computes with NumPy
  and returns a NumPy array. It takes a list, a NumPy array or an array of
  any backend (moved to the host explicitly with :func:`xpnn.to_numpy`).
- :func:`shuffle_dataset` follows the data: the shuffled arrays are on the
  inputs' backend and device, and the permutation comes from xpnn's seeded
  generator, not from NumPy's global state (see its docstring).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.backend import asarray, backend_of, get_namespace, to_numpy
from xpnn.layers.conv import col2im, im2col
from xpnn.models.rnnlm import eval_perplexity
from xpnn.models.seq2seq import eval_seq2seq, eval_seq2seq_batch
from xpnn.random import default_rng
from xpnn.text import (
    analogy,
    convert_one_hot,
    cos_similarity,
    create_co_matrix,
    create_contexts_target,
    most_similar,
    normalize,
    ppmi,
    preprocess,
)
from xpnn.training.clipping import clip_grads

__all__ = [
    "analogy",
    "clip_grads",
    "col2im",
    "conv_output_size",
    "convert_one_hot",
    "cos_similarity",
    "create_co_matrix",
    "create_contexts_target",
    "eval_perplexity",
    "eval_seq2seq",
    "eval_seq2seq_batch",
    "im2col",
    "most_similar",
    "normalize",
    "ppmi",
    "preprocess",
    "shuffle_dataset",
    "smooth_curve",
    "to_cpu",
    "to_gpu",
]

#: The points of :func:`smooth_curve`'s window (the book's ``window_len``).
_WINDOW_LEN = 11
#: The Kaiser window's shape parameter (the book's ``np.kaiser(window_len, 2)``).
_KAISER_BETA = 2


def smooth_curve(x: Any) -> np.ndarray:
    """A loss curve smoothed for plotting: the book's ``smooth_curve``.

    A moving average weighted by an 11-point Kaiser window (beta 2), with
    10 points of the curve mirrored at each end so that the result has
    ``x``'s length: the book's formula, in float64 on the host.

    Args:
        x: A 1-D sequence of numbers: a list, a NumPy array, or an array of
            any backend (copied to the host with :func:`xpnn.to_numpy`;
            this is host-side plotting help, it reads a device array once).

    Returns:
        A float64 NumPy array of ``len(x)`` values. A curve shorter than the
        window (11 points) is returned as it is, in float64 (the book's
        formula has no meaning there: quick runs record few losses).

    Raises:
        ValueError: ``x`` is not 1-D.
    """
    x = np.asarray(to_numpy(x), dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"smooth_curve() takes a 1-D curve, got shape {x.shape}")
    n = _WINDOW_LEN
    if x.size < n:
        return x.copy()
    # The curve mirrored at both ends, n - 1 points each, as the book's
    # np.r_[x[n-1:0:-1], x, x[-1:-n:-1]]: the first point is not repeated, the last is.
    s = np.concatenate([x[n - 1 : 0 : -1], x, x[-1:-n:-1]])
    w = np.kaiser(n, _KAISER_BETA)
    y = np.convolve(w / w.sum(), s, mode="valid")
    half = n // 2
    return y[half : len(y) - half]


def shuffle_dataset(x: Any, t: Any, *, seed: int | None = None) -> tuple[Any, Any]:
    """``x`` and ``t`` with their rows in one random order: the book's ``shuffle_dataset``.

    The book draws ``np.random.permutation(x.shape[0])`` from NumPy's global
    state, so ``np.random.seed`` fixes it. Here the permutation comes from
    ``xpnn.default_rng(seed)``: the same order on every backend for the same
    ``seed``; without one, from the global seed's sequence while one is set
    (:func:`xpnn.random.seed`, ``XPNN_SEED``), else fresh entropy. NumPy's
    global state is neither read nor changed. The rows are taken with
    ``xp.take(..., axis=0)`` on the inputs' backend and device.

    Args:
        x: Data, first axis the samples: ``(N, D)`` or images ``(N, C, H,
            W)`` as in the book (any number of axes works).
        t: Labels ``(N,)`` or one-hot ``(N, classes)``, on ``x``'s backend
            and device.
        seed: Seed of the permutation (an xpnn addition; keyword only).

    Returns:
        ``(x, t)`` shuffled: new arrays, both rows in the same order.

    Raises:
        ValueError: ``x`` or ``t`` is 0-d, or their first axes differ.
        BackendMismatchError: ``x`` and ``t`` are on different backends or
            devices.
    """
    xp = get_namespace(x, t)
    if x.ndim == 0 or t.ndim == 0:
        raise ValueError("shuffle_dataset() needs arrays with a first axis (the samples)")
    n = x.shape[0]
    if t.shape[0] != n:
        raise ValueError(f"x has {n} samples but t has {t.shape[0]}")
    idx = default_rng(seed, backend=backend_of(x)).permutation(n)
    return xp.take(x, idx, axis=0), xp.take(t, idx, axis=0)


def conv_output_size(input_size: int, filter_size: int, stride: int = 1, pad: int = 0) -> float:
    """The output size of a convolution or pooling: the book's ``conv_output_size``.

    ``(input_size + 2*pad - filter_size) / stride + 1``, with the book's true
    division: a float (``24.0``), not an integer where the windows do not fit
    evenly. :func:`im2col` and the layers round down (``//``) instead.
    """
    return (input_size + 2 * pad - filter_size) / stride + 1


def to_cpu(x: Any) -> np.ndarray:
    """The book's ``to_cpu``: ``x`` as a NumPy array (the explicit device-to-host copy).

    :func:`xpnn.to_numpy` under the book's name: a NumPy array comes back as
    it is, an array of any backend as a host copy. With
    :data:`xpnn.config.GPU` it makes the book's ``if config.GPU: word_vecs =
    to_cpu(word_vecs)`` right on every backend that is not NumPy.
    """
    return to_numpy(x)


def to_gpu(x: Any) -> Any:
    """The book's ``to_gpu``: ``x`` on the active backend (the explicit host-to-device copy).

    :func:`xpnn.asarray` under the book's name: on the active backend and
    device (CuPy, PyTorch, ...; NumPy when that is the one), not copied when
    ``x`` is already there. Arrays xpnn makes (``create_contexts_target`` of
    a corpus from :mod:`xpnn.datasets`) are there already.
    """
    return asarray(x)

"""Vol. 2, chapters 2 and 3: the text tools of the book's ``common/util.py``.

``from common.util import preprocess`` becomes ``from xpnn.util import
preprocess`` (:mod:`xpnn.util` re-exports every name here): the book's names,
signatures, results and printed lines. Where they differ:

- They follow the data: results stay on the inputs' backend and device, and
  the book's loops over the corpus and the cells are array operations (the
  co-occurrence counts: one scatter-add, :func:`xpnn.backend.scatter.bincount`).
- Word IDs are checked against ``vocab_size`` where reading them is free
  (:func:`xpnn.functions.check_labels`); on a device they are not read, and an
  ID outside ``0..vocab_size-1`` counts nowhere (:func:`create_co_matrix`) or
  gives a row of zeros (:func:`convert_one_hot`), where the book raises
  IndexError (or counts a negative ID from the end).
- :func:`most_similar` and :func:`analogy` compute on the device and read the
  V similarities to the host once, to rank and print them with NumPy as the
  book does (ties in its order). Digits can differ in the last place where a
  backend sums in another order than NumPy (PyTorch, long vectors).
- What the book would misuse silently is refused with an error naming it
  (``window_size < 1``, ``top < 1``, a matrix that is not 2-D).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.backend import _dtype_name, asarray, device_of, get_namespace, ops, to_numpy
from xpnn.backend.scatter import bincount
from xpnn.backend.selection import note_selection_unused
from xpnn.functions import check_labels

__all__ = [
    "analogy",
    "convert_one_hot",
    "cos_similarity",
    "create_co_matrix",
    "create_contexts_target",
    "most_similar",
    "normalize",
    "ppmi",
    "preprocess",
]

#: The cells :func:`ppmi` computes at once (float64 work arrays of 32 MiB):
#: a 10,000-word matrix is done in 25 blocks of 400 rows.
PPMI_BLOCK_CELLS = 1 << 22


def preprocess(text: str) -> tuple[Any, dict[str, int], dict[int, str]]:
    """Split a text into words and number them: the book's ``preprocess``.

    Lower case, a space put before every ``.``, then split at every single
    space (two spaces in a row give an empty word, as in the book).

    Returns:
        ``(corpus, word_to_id, id_to_word)``: the word IDs in text order, an
        int64 array ``(number of words,)`` on the active backend
        (:func:`xpnn.asarray`); the dicts number the words in order of
        first appearance, from 0.

    Raises:
        TypeError: ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"preprocess() takes the text as a str, got {type(text).__name__}")
    words = text.lower().replace(".", " .").split(" ")
    word_to_id: dict[str, int] = {}
    id_to_word: dict[int, str] = {}
    for word in words:
        if word not in word_to_id:
            new_id = len(word_to_id)
            word_to_id[word] = new_id
            id_to_word[new_id] = word
    # The IDs are made on the host, then moved once to the active backend.
    corpus = asarray(np.array([word_to_id[w] for w in words], dtype=np.int64))
    return corpus, word_to_id, id_to_word


def create_co_matrix(corpus: Any, vocab_size: int, window_size: int = 1) -> Any:
    """The co-occurrence matrix: the book's ``create_co_matrix``.

    ``C[w, c]`` counts the times word ``c`` stands at most ``window_size``
    words left or right of word ``w`` in ``corpus`` (no wrapping at the
    ends: the first word has no left context). The pairs of each distance
    are two shifted slices of the corpus, and all are counted in one
    scatter-add on the corpus's device.

    Args:
        corpus: Word IDs, a 1-D integer array ``(N,)`` of any backend.
        vocab_size: The number of words V (``len(word_to_id)``), >= 1.
        window_size: The context's reach on each side, >= 1.

    Returns:
        ``(V, V)`` int32 counts on ``corpus``'s backend and device.

    Raises:
        TypeError: ``corpus`` is not an integer array, or a size is not an int.
        ValueError: ``corpus`` is not 1-D, a size is below 1, or an ID read
            is outside ``0..vocab_size-1``.
    """
    xp = _namespace(corpus, "corpus")
    _check_ids(xp, corpus, "corpus", (1,))
    vocab_size = _check_size(vocab_size, "vocab_size")
    window_size = _check_size(window_size, "window_size")
    _check_id_range(corpus, vocab_size)
    n = corpus.shape[0]
    ids = xp.astype(corpus, xp.int64)
    # An ID out of range (not read on a device) takes -V*V, which makes every
    # cell number of its pairs negative: bincount counts them nowhere.
    ids = xp.where((ids >= 0) & (ids < vocab_size), ids, -vocab_size * vocab_size)
    cells = []
    for i in range(1, min(window_size, n - 1) + 1):
        cells.append(ids[i:] * vocab_size + ids[: n - i])  # word at idx, its left context
        cells.append(ids[: n - i] * vocab_size + ids[i:])  # word at idx, its right context
    if not cells:  # a corpus of one word (or none) has no pairs
        return xp.zeros((vocab_size, vocab_size), dtype=xp.int32, device=device_of(corpus))
    counts = bincount(xp.concat(cells), vocab_size * vocab_size, dtype=xp.int32)
    return xp.reshape(counts, (vocab_size, vocab_size))


def cos_similarity(x: Any, y: Any, eps: float = 1e-8) -> Any:
    """The cosine similarity of two vectors: the book's ``cos_similarity``.

    ``dot(x / (|x| + eps), y / (|y| + eps))``, ``eps`` keeping a zero vector
    from dividing by 0.

    Args:
        x, y: 1-D arrays of one length, on one backend and device. Integer
            vectors (co-occurrence counts) are computed on in float64, as
            NumPy does; float vectors in their own dtype.
        eps: Added to each norm.

    Returns:
        A 0-d float array on the vectors' device (float64 for integer
        vectors, as the book's NumPy scalar). Read it with ``float(...)``
        or print it.

    Raises:
        TypeError: Not arrays, or not of a real number dtype.
        ValueError: Not 1-D, or of different lengths.
        xpnn.BackendMismatchError: On different backends or devices.
    """
    _namespace(x, "x")
    _namespace(y, "y")
    xp = get_namespace(x, y)
    for name, v in (("x", x), ("y", y)):
        _check_numbers(xp, v, name)
        if v.ndim != 1:
            raise ValueError(
                f"cos_similarity() compares vectors: {name} must be 1-D, got shape {tuple(v.shape)}"
            )
    if x.shape != y.shape:
        raise ValueError(f"x and y must have one length, got {x.shape[0]} and {y.shape[0]}")
    nx = _unit(xp, _floats(xp, x), eps)
    ny = _unit(xp, _floats(xp, y), eps)
    if nx.dtype != ny.dtype:
        dtype = xp.result_type(nx.dtype, ny.dtype)
        nx, ny = xp.astype(nx, dtype), xp.astype(ny, dtype)
    return xp.vecdot(nx, ny)


def most_similar(
    query: str,
    word_to_id: dict[str, int],
    id_to_word: dict[int, str],
    word_matrix: Any,
    top: int = 5,
) -> None:
    """Print the ``top`` words most similar to ``query``: the book's ``most_similar``.

    Prints ``[query] WORD`` after an empty line, then `` word: similarity``
    for the ``top`` words of highest cosine similarity (the query itself
    left out), or ``WORD is not found``. The similarities of all V words
    (:func:`cos_similarity` of each row with the query's row) are computed
    on ``word_matrix``'s device, then read to the host once (V numbers) and
    ranked there with NumPy's ``argsort``, as the book does (float64, ties
    in its order).

    Args:
        query: The word.
        word_to_id, id_to_word: The dicts of :func:`preprocess`.
        word_matrix: ``(V', D)`` word vectors, row i the word ``id_to_word[i]``,
            V' >= V = ``len(id_to_word)`` (rows past V are not used), of any
            backend; integer (co-occurrence counts) or float.
        top: How many words to print, >= 1.

    Returns None, as the book's.

    Raises:
        TypeError: ``word_matrix`` is not a number array, ``top`` not an int.
        ValueError: ``word_matrix`` is not 2-D or has fewer than V rows, or
            ``top`` < 1.
    """
    vocab_size = len(id_to_word)
    xp = _check_matrix(word_matrix, vocab_size)
    top = _check_size(top, "top")
    if query not in word_to_id:
        print(f"{query} is not found")
        return
    print("\n[query] " + query)
    eps = 1e-8  # cos_similarity's default, as the book's call
    words = _floats(xp, word_matrix[:vocab_size, ...])
    norms = xp.sqrt(xp.sum(words**2, axis=1))
    unit_rows = words / (xp.reshape(norms, (-1, 1)) + eps)
    query_vec = _unit(xp, words[word_to_id[query], ...], eps)
    # One row at a time as the book's dot (NumPy: the same BLAS dot, bit for bit).
    similarity = to_numpy(xp.vecdot(unit_rows, query_vec)).astype(np.float64)
    count = 0
    for i in (-1 * similarity).argsort():
        if id_to_word[int(i)] == query:
            continue
        print(f" {id_to_word[int(i)]}: {similarity[i]}")  # float64: as the book's "%s"
        count += 1
        if count >= top:
            return


def analogy(
    a: str,
    b: str,
    c: str,
    word_to_id: dict[str, int],
    id_to_word: dict[int, str],
    word_matrix: Any,
    top: int = 5,
    answer: str | None = None,
) -> None:
    """Print the words that complete ``a:b = c:?``: the book's ``analogy``.

    The query is ``normalize(b - a + c)`` of the words' rows; each word's
    score is its row's dot product with it (rows are expected normalized).
    Prints ``[analogy] a:b = c:?`` after an empty line, ``==>answer:score``
    if ``answer`` is given, then `` word: score`` for the ``top`` best
    words other than a, b and c (NaN scores skipped); or ``WORD is not
    found`` for the first of a, b, c missing. The scores are computed on
    the device and read to the host once, then ranked with NumPy.

    Args:
        a, b, c: The words.
        word_to_id, id_to_word: The dicts of :func:`preprocess`.
        word_matrix: ``(V, D)`` word vectors of any backend, float
            (integer rows are computed on in float64, where the book fails).
        top: How many words to print, >= 1.
        answer: A word whose score to print first.

    Returns None, as the book's.

    Raises:
        TypeError: ``word_matrix`` is not a number array, ``top`` not an int.
        ValueError: ``word_matrix`` is not 2-D or has fewer than
            ``len(id_to_word)`` rows, ``top`` < 1, or ``answer`` is not in
            ``word_to_id`` (the book raises KeyError after its first line).
    """
    xp = _check_matrix(word_matrix, len(id_to_word))
    top = _check_size(top, "top")
    if answer is not None and answer not in word_to_id:
        raise ValueError(f"answer {answer!r} is not in word_to_id: give a word of the vocabulary")
    for word in (a, b, c):
        if word not in word_to_id:
            print(f"{word} is not found")
            return
    print("\n[analogy] " + a + ":" + b + " = " + c + ":?")
    a_vec, b_vec, c_vec = (word_matrix[word_to_id[w], ...] for w in (a, b, c))
    query_vec = normalize(_floats(xp, b_vec - a_vec + c_vec))
    words = xp.astype(word_matrix, query_vec.dtype, copy=False)  # integers: float64
    similarity = xp.matmul(words, query_vec)  # NumPy: the book's np.dot, bit for bit
    if answer is not None:
        # The book's own dot of one row; read with the scores, in one transfer.
        score = xp.vecdot(words[word_to_id[answer], ...], query_vec)
        read = to_numpy(xp.concat([similarity, xp.reshape(score, (1,))]))
        similarity = read[:-1]
        print("==>" + answer + ":" + str(read[-1]))
    else:
        similarity = to_numpy(similarity)
    count = 0
    for i in (-1 * similarity).argsort():
        if np.isnan(similarity[i]):
            continue
        if id_to_word[int(i)] in (a, b, c):
            continue
        print(f" {id_to_word[int(i)]}: {similarity[i]}")  # the book's "{1}".format: float64 digits
        count += 1
        if count >= top:
            return


def ppmi(C: Any, verbose: bool = False, eps: float = 1e-8) -> Any:
    """Positive pointwise mutual information: the book's ``ppmi``.

    ``M[i, j] = max(0, log2(C[i, j] * N / (S[j] * S[i]) + eps))``, with ``N``
    the sum of ``C`` and ``S`` its column sums; a cell whose words never
    occur (0 / 0) is 0, as the book's ``max(0, nan)``. Integer counts are
    computed on in float64 (as NumPy divides integers), float ones in their
    dtype; the result is float32. The cells are computed in blocks of rows
    (:data:`PPMI_BLOCK_CELLS`), on ``C``'s device.

    Args:
        C: A square co-occurrence matrix ``(V, V)`` of any backend, integer
            or float (:func:`create_co_matrix`).
        verbose: Print the book's progress lines (``1.0% done`` ... ``100.0%
            done``, the same lines at the same counts, printed per block).
        eps: Added inside the log, so a 0 count gives a large negative
            number instead of -inf.

    Returns:
        ``(V, V)`` float32 on ``C``'s backend and device.

    Raises:
        TypeError: ``C`` is not an array of real numbers.
        ValueError: ``C`` is not a square matrix.
    """
    xp = _namespace(C, "C")
    _check_numbers(xp, C, "C")
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(
            f"ppmi() needs a square co-occurrence matrix (V, V), got shape {tuple(C.shape)}"
        )
    counts = _floats(xp, C)
    rows, cols = C.shape
    total_sum = xp.sum(counts)
    col_sums = xp.sum(counts, axis=0)
    M = xp.zeros((rows, cols), dtype=xp.float32, device=device_of(C))
    total = rows * cols
    step = total // 100 + 1  # the book prints when its cell count is a multiple of this
    block = max(1, PPMI_BLOCK_CELLS // max(cols, 1))
    with ops(C).quiet():  # 0 / 0 in a word's empty row is expected: it gives 0
        for r0 in range(0, rows, block):
            r1 = min(rows, r0 + block)
            pmi = xp.log2(
                counts[r0:r1, :] * total_sum / (col_sums * xp.reshape(col_sums[r0:r1], (-1, 1)))
                + eps
            )
            M[r0:r1, :] = xp.astype(xp.where(pmi > 0, pmi, 0.0), xp.float32)
            if verbose:
                for cnt in range((r0 * cols // step + 1) * step, r1 * cols + 1, step):
                    print(f"{100 * cnt / total:.1f}% done")
    return M


def convert_one_hot(corpus: Any, vocab_size: int) -> Any:
    """Word IDs as one-hot vectors: the book's ``convert_one_hot``.

    Args:
        corpus: Word IDs ``(N,)`` or contexts ``(N, C)``, integer, any backend.
        vocab_size: The number of words V, >= 1.

    Returns:
        ``(N, V)`` or ``(N, C, V)`` int32 on ``corpus``'s device: 1 at each
        ID, 0 elsewhere (built by comparing the IDs with ``arange(V)``).

    Raises:
        TypeError: ``corpus`` is not an integer array, ``vocab_size`` not an int.
        ValueError: ``corpus`` is not 1-D or 2-D, ``vocab_size`` < 1, or an
            ID read is outside ``0..vocab_size-1``.
    """
    xp = _namespace(corpus, "corpus")
    _check_ids(xp, corpus, "corpus", (1, 2))
    vocab_size = _check_size(vocab_size, "vocab_size")
    _check_id_range(corpus, vocab_size)
    words = xp.arange(vocab_size, dtype=corpus.dtype, device=device_of(corpus))
    return xp.astype(xp.expand_dims(corpus, axis=-1) == words, xp.int32)


def create_contexts_target(corpus: Any, window_size: int = 1) -> tuple[Any, Any]:
    """The contexts and the target of every word: the book's ``create_contexts_target``.

    Every word with ``window_size`` words on each side is a target; its
    contexts are those words, left to right.

    Args:
        corpus: Word IDs ``(N,)``, integer, of any backend.
        window_size: The words on each side, >= 1.

    Returns:
        ``(contexts, target)``: ``(N - 2w, 2w)`` and ``(N - 2w,)`` (w the
        window size), new arrays of ``corpus``'s dtype on its device. A
        corpus of at most 2w words gives ``(0, 2w)`` and ``(0,)`` (the book's
        contexts are then a float64 ``(0,)``).

    Raises:
        TypeError: ``corpus`` is not an integer array, ``window_size`` not an int.
        ValueError: ``corpus`` is not 1-D, or ``window_size`` < 1.
    """
    xp = _namespace(corpus, "corpus")
    _check_ids(xp, corpus, "corpus", (1,))
    n, w = corpus.shape[0], _check_size(window_size, "window_size")
    m = max(n - 2 * w, 0)
    if m == 0:
        empty = xp.zeros((0, 2 * w), dtype=corpus.dtype, device=device_of(corpus))
        return empty, xp.astype(corpus[0:0], corpus.dtype, copy=True)
    columns = [corpus[w + t : w + t + m] for t in range(-w, w + 1) if t != 0]
    return xp.stack(columns, axis=1), xp.astype(corpus[w : w + m], corpus.dtype, copy=True)


def normalize(x: Any) -> Any:
    """Scale to length 1, in place: the book's ``normalize``.

    Each row of a matrix, or a vector, divided by its norm: ``x`` itself is
    changed (the book's ``x /= s``). A zero row gives NaN, as in the book.

    Args:
        x: A float array ``(N, D)`` or ``(D,)`` of any backend; returned,
            divided in place.

    Raises:
        TypeError: ``x`` is not a float array (the division in place would
            not fit its dtype).
        ValueError: ``x`` is not 1-D or 2-D (the book returns it unchanged).
    """
    xp = _namespace(x, "x")
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"normalize() divides x in place, so x must be a float array, got "
            f"{_dtype_name(x.dtype)}; convert it first, e.g. xp.astype(x, xp.float32)"
        )
    if x.ndim == 2:
        s = xp.sqrt(xp.sum(x * x, axis=1))
        x /= xp.reshape(s, (s.shape[0], 1))
    elif x.ndim == 1:
        x /= xp.sqrt(xp.sum(x * x))
    else:
        raise ValueError(f"normalize() takes a vector or a matrix, got shape {tuple(x.shape)}")
    return x


def _namespace(x: Any, name: str) -> Any:
    """``x``'s namespace, or a TypeError naming the argument and the fix."""
    note_selection_unused(x)  # NumPy data while another backend is selected: said once
    try:
        return get_namespace(x)
    except TypeError:
        raise TypeError(
            f"{name} must be an array (NumPy or of an xpnn backend), got {type(x).__name__}; "
            f"make one with xpnn.asarray({name})"
        ) from None


def _check_ids(xp: Any, corpus: Any, name: str, ndims: tuple[int, ...]) -> None:
    """Refuse a corpus that is not an integer array of one of ``ndims`` dimensions."""
    if not xp.isdtype(corpus.dtype, "integral"):
        raise TypeError(
            f"{name} must hold integer word IDs, got dtype {_dtype_name(corpus.dtype)}; "
            f'convert it, e.g. xpnn.asarray({name}, dtype="int64")'
        )
    if corpus.ndim not in ndims:
        shapes = " or ".join(("(N,)", "(N, C)")[d - 1] for d in ndims)
        raise ValueError(f"{name} must have shape {shapes}, got {tuple(corpus.shape)}")


def _check_size(value: Any, name: str) -> int:
    """``value`` as an int, or an error if it is not an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be 1 or more, got {value}")
    return int(value)


def _check_id_range(corpus: Any, vocab_size: int) -> None:
    """Refuse IDs outside ``0..vocab_size-1`` where reading them is free (see check_labels)."""
    try:
        check_labels(corpus, vocab_size, who="corpus")
    except ValueError as exc:
        found = str(exc).rpartition("found values in ")[2]
        raise ValueError(
            f"corpus holds word IDs outside 0..{vocab_size - 1} (found {found}): vocab_size "
            "must be the number of words, len(word_to_id), and every ID below it"
        ) from None


def _check_numbers(xp: Any, x: Any, name: str) -> None:
    """Refuse arrays that are not of real numbers (bool and complex are not)."""
    if not (xp.isdtype(x.dtype, "integral") or xp.isdtype(x.dtype, "real floating")):
        raise TypeError(f"{name} must hold real numbers, got dtype {_dtype_name(x.dtype)}")


def _check_matrix(word_matrix: Any, vocab_size: int) -> Any:
    """Refuse word vectors that are not ``(V' >= vocab_size, D)``; returns their namespace."""
    xp = _namespace(word_matrix, "word_matrix")
    _check_numbers(xp, word_matrix, "word_matrix")
    if word_matrix.ndim != 2 or word_matrix.shape[0] < vocab_size:
        raise ValueError(
            f"word_matrix must be (V, D), a row for each of the {vocab_size} words of id_to_word, "
            f"got shape {tuple(word_matrix.shape)}"
        )
    return xp


def _floats(xp: Any, x: Any) -> Any:
    """``x`` itself if it is float, else in float64 (as NumPy computes on integers)."""
    return x if xp.isdtype(x.dtype, "real floating") else xp.astype(x, xp.float64)


def _unit(xp: Any, v: Any, eps: float) -> Any:
    """The book's ``v / (sqrt(sum(v ** 2)) + eps)``."""
    return v / (xp.sqrt(xp.sum(v**2)) + eps)

"""xpnn.text (vol. 2 ch. 2-3's text tools, re-exported by xpnn.util), on every backend.

The book's numbers are those its ch. 2 scripts print on "You say goodbye and
I say hello." (similarity.py, most_similar.py, ppmi.py); the references
below are small NumPy loops written here, as the book states its formulas.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import text, util
from xpnn.backend.scatter import bincount

TEXT = "You say goodbye and I say hello."
WORDS = ["you", "say", "goodbye", "and", "i", "hello", "."]

#: ppmi.py's co-occurrence matrix.
BOOK_C = np.array(
    [
        [0, 1, 0, 0, 0, 0, 0],
        [1, 0, 1, 0, 1, 1, 0],
        [0, 1, 0, 1, 0, 0, 0],
        [0, 0, 1, 0, 1, 0, 0],
        [0, 1, 0, 1, 0, 0, 0],
        [0, 1, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 1, 0],
    ]
)
#: ppmi.py's printed lines: the co-occurrence matrix, and the PPMI (precision=3).
BOOK_C_TEXT = """[[0 1 0 0 0 0 0]
 [1 0 1 0 1 1 0]
 [0 1 0 1 0 0 0]
 [0 0 1 0 1 0 0]
 [0 1 0 1 0 0 0]
 [0 1 0 0 0 0 1]
 [0 0 0 0 0 1 0]]"""
BOOK_PPMI_TEXT = """[[0.    1.807 0.    0.    0.    0.    0.   ]
 [1.807 0.    0.807 0.    0.807 0.807 0.   ]
 [0.    0.807 0.    1.807 0.    0.    0.   ]
 [0.    0.    1.807 0.    1.807 0.    0.   ]
 [0.    0.807 0.    1.807 0.    0.    0.   ]
 [0.    0.807 0.    0.    0.    0.    2.807]
 [0.    0.    0.    0.    0.    2.807 0.   ]]"""
#: most_similar.py's output.
BOOK_MOST_SIMILAR = """
[query] you
 goodbye: 0.7071067691154799
 hello: 0.7071067691154799
 i: 0.7071067691154799
 and: 0.0
 say: 0.0
"""


def _reads_values(backend) -> bool:
    """Whether word IDs are read (checked) on this backend: host memory only."""
    if backend.is_gpu:
        return False
    return not (backend.name == "array_api_strict" and "CPU_DEVICE" not in repr(backend.device))


def _same_device(a, b) -> bool:
    return xpnn.backend.backend_of(a).spec == xpnn.backend.backend_of(b).spec


# --- independent NumPy references (loops, as the book states them) ---------------


def ref_co_matrix(corpus, vocab_size, window_size):
    c = np.zeros((vocab_size, vocab_size), dtype=np.int32)
    n = len(corpus)
    for idx in range(n):
        for d in range(-window_size, window_size + 1):
            if d != 0 and 0 <= idx + d < n:
                c[corpus[idx], corpus[idx + d]] += 1
    return c


def ref_ppmi(c, eps=1e-8):
    """(M, printed progress lines)."""
    m = np.zeros(c.shape, dtype=np.float32)
    n, s = np.sum(c), np.sum(c, axis=0)
    total, cnt, lines = c.size, 0, []
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            with np.errstate(divide="ignore", invalid="ignore"):
                pmi = np.log2(c[i, j] * n / (s[j] * s[i]) + eps)
            m[i, j] = pmi if pmi > 0 else 0
            cnt += 1
            if cnt % (total // 100 + 1) == 0:
                lines.append("%.1f%% done" % (100 * cnt / total))
    return m, lines


def ref_similarities(w, q, eps=1e-8):
    out = np.zeros(w.shape[0])
    nq = q / (np.sqrt(np.sum(q**2)) + eps)
    for i in range(w.shape[0]):
        out[i] = np.dot(w[i] / (np.sqrt(np.sum(w[i] ** 2)) + eps), nq)
    return out


def ref_most_similar_lines(query, id_to_word, w, top):
    sim = ref_similarities(w, w[{v: k for k, v in id_to_word.items()}[query]])
    lines = ["", "[query] " + query]
    for i in (-1 * sim).argsort():
        if id_to_word[i] != query and len(lines) < top + 2:
            lines.append(f" {id_to_word[i]}: {sim[i]}")  # "%s" of float64
    return lines


def ref_analogy_lines(a, b, c, word_to_id, id_to_word, w, top, answer):
    q = w[word_to_id[b]] - w[word_to_id[a]] + w[word_to_id[c]]
    q = q / np.sqrt((q * q).sum())
    sim = np.dot(w, q)
    lines = ["", f"[analogy] {a}:{b} = {c}:?"]
    if answer is not None:
        lines.append("==>" + answer + ":" + str(np.dot(w[word_to_id[answer]], q)))
    shown = 0
    for i in (-1 * sim).argsort():
        if not np.isnan(sim[i]) and id_to_word[i] not in (a, b, c) and shown < top:
            lines.append(f" {id_to_word[i]}: {sim[i]}")  # float32 in float64 digits
            shown += 1
    return lines


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.split("\n")[:-1]


# --- names -------------------------------------------------------------------------


def test_util_reexports_the_text_tools():
    for name in text.__all__:
        assert name in util.__all__
        assert getattr(util, name) is getattr(text, name)


# --- preprocess ----------------------------------------------------------------


def test_preprocess_is_the_books(backend, xp):
    corpus, word_to_id, id_to_word = util.preprocess(TEXT)
    assert xpnn.backend.backend_of(corpus).spec == backend.spec
    assert corpus.dtype == xp.int64
    np.testing.assert_array_equal(xpnn.to_numpy(corpus), [0, 1, 2, 3, 4, 1, 5, 6])
    assert word_to_id == {w: i for i, w in enumerate(WORDS)}
    assert id_to_word == dict(enumerate(WORDS))


def test_preprocess_splits_at_single_spaces_as_the_book():
    corpus, word_to_id, _ = util.preprocess("A  b.")  # two spaces: an empty word
    assert list(word_to_id) == ["a", "", "b", "."]
    np.testing.assert_array_equal(xpnn.to_numpy(corpus), [0, 1, 2, 3])


def test_preprocess_refuses_bytes():
    with pytest.raises(TypeError, match="str"):
        util.preprocess(b"you say")


# --- create_co_matrix ----------------------------------------------------------


def test_co_matrix_is_the_books(backend, xp):
    corpus, word_to_id, _ = util.preprocess(TEXT)
    c = util.create_co_matrix(corpus, len(word_to_id))
    assert c.dtype == xp.int32 and c.shape == (7, 7)
    assert _same_device(c, corpus)
    np.testing.assert_array_equal(xpnn.to_numpy(c), BOOK_C)


@pytest.mark.parametrize("window_size", [1, 2, 3, 50])
def test_co_matrix_matches_the_loop(backend, window_size):
    host = np.random.default_rng(window_size).integers(0, 9, size=40)
    host[:3] = host[-3:] = 4  # repeated words at both ends
    c = util.create_co_matrix(xpnn.asarray(host), 9, window_size=window_size)
    np.testing.assert_array_equal(xpnn.to_numpy(c), ref_co_matrix(host, 9, window_size))


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([2], np.zeros((3, 3))),  # one word: no context
        ([0, 0, 0], [[6, 0, 0], [0, 0, 0], [0, 0, 0]]),  # a word next to itself
        ([1, 2], [[0, 0, 0], [0, 0, 1], [0, 1, 0]]),
    ],
)
def test_co_matrix_corpus_ends(backend, words, expected):
    c = util.create_co_matrix(xpnn.asarray(np.array(words, dtype=np.int64)), 3, window_size=5)
    np.testing.assert_array_equal(xpnn.to_numpy(c), np.asarray(expected))


def test_co_matrix_of_an_int32_corpus(backend, xp):
    host = np.array([2, 0, 1, 0, 2], dtype=np.int32)
    c = util.create_co_matrix(xpnn.asarray(host), 3, window_size=2)
    assert c.dtype == xp.int32
    np.testing.assert_array_equal(xpnn.to_numpy(c), ref_co_matrix(host, 3, 2))


def test_co_matrix_refuses_bad_arguments(backend, xp):
    corpus = xpnn.asarray(np.array([0, 1, 2], dtype=np.int64))
    with pytest.raises(TypeError, match="integer word IDs"):
        util.create_co_matrix(xp.astype(corpus, xp.float32), 3)
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        util.create_co_matrix(xp.reshape(corpus, (1, 3)), 3)
    with pytest.raises(TypeError, match=r"xpnn\.asarray"):
        util.create_co_matrix([0, 1, 2], 3)
    with pytest.raises(ValueError, match="window_size must be 1 or more"):
        util.create_co_matrix(corpus, 3, window_size=0)
    with pytest.raises(ValueError, match="vocab_size must be 1 or more"):
        util.create_co_matrix(corpus, 0)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        util.create_co_matrix(corpus, 3.0)
    with pytest.raises(TypeError, match="window_size must be an int"):
        util.create_co_matrix(corpus, 3, window_size=True)


@pytest.mark.parametrize("bad", [3, -1])
def test_co_matrix_ids_outside_the_vocabulary(backend, bad):
    host = np.array([0, 1, bad, 2, 0], dtype=np.int64)
    corpus = xpnn.asarray(host)
    if _reads_values(backend):
        with pytest.raises(ValueError, match=r"outside 0\.\.2 .*len\(word_to_id\)"):
            util.create_co_matrix(corpus, 3)
    else:  # not read on a device: the pairs of the bad ID count nowhere
        c = xpnn.to_numpy(util.create_co_matrix(corpus, 3))
        expected = ref_co_matrix(np.array([0, 1, 9, 2, 0]), 10, 1)[:3, :3]
        np.testing.assert_array_equal(c, expected)


# --- bincount (xpnn.backend.scatter) -----------------------------------------------


@pytest.mark.parametrize("length", [0, 5, 1000])  # 1000: NumPy's np.add.at path
def test_bincount_counts_in_range_values(backend, xp, length):
    host = np.array([3, 1, 3, -2, 7, 3, 0, 1000, 999], dtype=np.int64)
    got = bincount(xpnn.asarray(host), length, dtype=xp.int32)
    assert got.dtype == xp.int32 and got.shape == (length,)
    inside = host[(host >= 0) & (host < length)]
    np.testing.assert_array_equal(xpnn.to_numpy(got), np.bincount(inside, minlength=length))


def test_bincount_of_nothing_and_its_errors(backend, xp):
    empty = xpnn.asarray(np.zeros(0, dtype=np.int32))
    np.testing.assert_array_equal(xpnn.to_numpy(bincount(empty, 3)), [0, 0, 0])
    with pytest.raises(TypeError, match="integers"):
        bincount(xp.astype(empty, xp.float32), 3)
    with pytest.raises(ValueError, match="1-D"):
        bincount(xp.reshape(empty, (0, 1)), 3)
    with pytest.raises(ValueError, match="length"):
        bincount(empty, -1)


# --- cos_similarity --------------------------------------------------------------


def test_cos_similarity_is_the_books(backend, xp):
    corpus, word_to_id, _ = util.preprocess(TEXT)
    c = util.create_co_matrix(corpus, len(word_to_id))
    got = util.cos_similarity(c[word_to_id["you"], :], c[word_to_id["i"], :])
    assert got.dtype == xp.float64 and got.shape == ()  # the book's NumPy float64
    assert _same_device(got, corpus)
    assert float(xpnn.to_numpy(got)) == 0.7071067691154799  # similarity.py's line


def test_cos_similarity_of_floats_keeps_their_dtype(backend, xp):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 30)).astype(np.float32)
    got = util.cos_similarity(xpnn.asarray(x), xpnn.asarray(y))
    assert got.dtype == xp.float32
    nx = x / (np.sqrt(np.sum(x**2)) + 1e-8)
    ny = y / (np.sqrt(np.sum(y**2)) + 1e-8)
    np.testing.assert_allclose(xpnn.to_numpy(got), np.dot(nx, ny), rtol=1e-6)
    zero = util.cos_similarity(xpnn.asarray(np.zeros(3)), xpnn.asarray(np.ones(3)))
    assert float(xpnn.to_numpy(zero)) == 0.0  # eps: no division by zero


def test_cos_similarity_refuses_bad_vectors(backend, xp):
    v = xpnn.asarray(np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match="one length"):
        util.cos_similarity(v, xpnn.asarray(np.ones(4, dtype=np.float32)))
    with pytest.raises(ValueError, match="y must be 1-D"):
        util.cos_similarity(v, xp.reshape(v, (1, 3)))
    with pytest.raises(TypeError, match="real numbers"):
        util.cos_similarity(v > 0, v)


# --- most_similar ----------------------------------------------------------------


def test_most_similar_prints_the_books_lines(backend, capsys):
    corpus, word_to_id, id_to_word = util.preprocess(TEXT)
    c = util.create_co_matrix(corpus, len(word_to_id))
    assert util.most_similar("you", word_to_id, id_to_word, c, top=5) is None
    assert capsys.readouterr().out == BOOK_MOST_SIMILAR


def test_most_similar_matches_the_loop_on_float_vectors(backend, capsys):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((40, 16)).astype(np.float32)
    id_to_word = {i: f"w{i}" for i in range(40)}
    word_to_id = {v: k for k, v in id_to_word.items()}
    util.most_similar("w7", word_to_id, id_to_word, xpnn.asarray(w), top=6)
    got, want = _lines(capsys), ref_most_similar_lines("w7", id_to_word, w, 6)
    if backend.name == "numpy":
        assert got == want  # the same BLAS dot, bit for bit
    else:
        assert [g.split(":")[0] for g in got] == [x.split(":")[0] for x in want]
        np.testing.assert_allclose(
            [float(g.split(": ")[1]) for g in got[2:]],
            [float(x.split(": ")[1]) for x in want[2:]],
            rtol=1e-6,
        )


def test_most_similar_not_found_and_errors(backend, xp, capsys):
    corpus, word_to_id, id_to_word = util.preprocess(TEXT)
    c = util.create_co_matrix(corpus, len(word_to_id))
    assert util.most_similar("cat", word_to_id, id_to_word, c) is None
    assert capsys.readouterr().out == "cat is not found\n"
    with pytest.raises(ValueError, match="top must be 1 or more"):
        util.most_similar("you", word_to_id, id_to_word, c, top=0)
    with pytest.raises(ValueError, match="a row for each of the 7 words"):
        util.most_similar("you", word_to_id, id_to_word, c[:6, :])
    with pytest.raises(ValueError, match=r"\(V, D\)"):
        util.most_similar("you", word_to_id, id_to_word, xp.reshape(c, (-1,)))
    assert capsys.readouterr().out == ""  # refused before printing anything


# --- analogy ---------------------------------------------------------------------


@pytest.mark.parametrize("answer", [None, "w5"])
def test_analogy_matches_the_loop(backend, capsys, answer):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((30, 8)).astype(np.float32)
    w /= np.sqrt((w * w).sum(1)).reshape(-1, 1)
    w[9] = np.nan  # a NaN score is skipped
    id_to_word = {i: f"w{i}" for i in range(30)}
    word_to_id = {v: k for k, v in id_to_word.items()}
    args = ("w1", "w2", "w3", word_to_id, id_to_word)
    on_device = xpnn.asarray(w)
    util.analogy(*args, on_device, top=4, answer=answer)
    got, want = _lines(capsys), ref_analogy_lines(*args, w, 4, answer)
    np.testing.assert_array_equal(xpnn.to_numpy(on_device), w)  # the matrix is left as it was
    if backend.name == "numpy":
        assert got == want
    else:
        assert [g.split(":")[0] for g in got] == [x.split(":")[0] for x in want]
        np.testing.assert_allclose(
            [float(g.rpartition(":")[2]) for g in got[2:]],
            [float(x.rpartition(":")[2]) for x in want[2:]],
            rtol=1e-5,
        )


def test_analogy_on_counts_and_its_refusals(backend, capsys):
    corpus, word_to_id, id_to_word = util.preprocess(TEXT)
    c = util.create_co_matrix(corpus, len(word_to_id))
    util.analogy("you", "i", "say", word_to_id, id_to_word, c, top=2)  # the book fails here
    lines = _lines(capsys)
    assert lines[:2] == ["", "[analogy] you:i = say:?"] and len(lines) == 4
    util.analogy("you", "cat", "say", word_to_id, id_to_word, c)
    assert capsys.readouterr().out == "cat is not found\n"
    with pytest.raises(ValueError, match="answer 'cat' is not in word_to_id"):
        util.analogy("you", "i", "say", word_to_id, id_to_word, c, answer="cat")
    assert capsys.readouterr().out == ""


# --- ppmi ------------------------------------------------------------------------


def test_ppmi_is_the_books(backend, xp):
    c = xpnn.asarray(BOOK_C.astype(np.int32))
    m = util.ppmi(c)
    assert m.dtype == xp.float32 and _same_device(m, c)
    got = xpnn.to_numpy(m)
    assert np.array2string(got, precision=3) == BOOK_PPMI_TEXT  # ppmi.py's lines
    assert np.array2string(xpnn.to_numpy(c)) == BOOK_C_TEXT
    ref, _ = ref_ppmi(BOOK_C.astype(np.int32))
    if backend.name == "numpy":
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)


def test_ppmi_verbose_prints_the_books_lines_in_blocks(backend, monkeypatch, capsys):
    host = ref_co_matrix(np.random.default_rng(3).integers(0, 23, size=300), 23, 2)
    host[5, :] = host[:, 5] = 0  # a word never seen: 0 / 0, which the book's max makes 0
    monkeypatch.setattr(text, "PPMI_BLOCK_CELLS", 50)  # blocks of 2 rows
    m = util.ppmi(xpnn.asarray(host), verbose=True)
    ref, lines = ref_ppmi(host)
    assert _lines(capsys) == lines and len(lines) == 529 // 6  # a line every 529 // 100 + 1 cells
    got = xpnn.to_numpy(m)
    assert not np.isnan(got).any() and (got[5] == 0).all()
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)


def test_ppmi_of_float_counts_and_refusals(backend, xp):
    m = util.ppmi(xpnn.asarray(BOOK_C.astype(np.float32)))
    np.testing.assert_allclose(xpnn.to_numpy(m), ref_ppmi(BOOK_C)[0], rtol=1e-6)
    with pytest.raises(ValueError, match="square"):
        util.ppmi(xpnn.asarray(np.ones((2, 3), dtype=np.int32)))
    with pytest.raises(TypeError, match="real numbers"):
        util.ppmi(xpnn.asarray(np.ones((2, 2), dtype=bool)))


# --- convert_one_hot, create_contexts_target, normalize ----------------------------


def test_contexts_target_and_one_hot_are_the_books(backend, xp):
    corpus, _, _ = util.preprocess(TEXT)
    contexts, target = util.create_contexts_target(corpus, window_size=1)
    assert contexts.dtype == target.dtype == xp.int64 and _same_device(contexts, corpus)
    np.testing.assert_array_equal(
        xpnn.to_numpy(contexts), [[0, 2], [1, 3], [2, 4], [3, 1], [4, 5], [1, 6]]
    )
    np.testing.assert_array_equal(xpnn.to_numpy(target), [1, 2, 3, 4, 1, 5])
    one_t, one_c = util.convert_one_hot(target, 7), util.convert_one_hot(contexts, 7)
    assert one_t.dtype == one_c.dtype == xp.int32 and _same_device(one_c, corpus)
    ref = np.zeros((6, 2, 7), dtype=np.int32)
    for i, row in enumerate(xpnn.to_numpy(contexts)):
        for j, word in enumerate(row):
            ref[i, j, word] = 1
    np.testing.assert_array_equal(xpnn.to_numpy(one_c), ref)
    np.testing.assert_array_equal(
        xpnn.to_numpy(one_t), np.eye(7, dtype=np.int32)[[1, 2, 3, 4, 1, 5]]
    )


@pytest.mark.parametrize(("n", "w"), [(9, 2), (7, 3), (6, 3), (1, 1)])
def test_contexts_target_window_and_corpus_ends(backend, n, w):
    host = np.arange(n, dtype=np.int64) * 10
    contexts, target = util.create_contexts_target(xpnn.asarray(host), window_size=w)
    rows = [[host[i + t] for t in range(-w, w + 1) if t] for i in range(w, n - w)]
    assert contexts.shape == (max(n - 2 * w, 0), 2 * w)
    np.testing.assert_array_equal(xpnn.to_numpy(contexts).reshape(-1), np.ravel(rows))
    np.testing.assert_array_equal(xpnn.to_numpy(target), host[w : n - w] if n > 2 * w else [])


def test_contexts_target_returns_copies(backend):
    corpus = xpnn.asarray(np.arange(5, dtype=np.int64))
    _, target = util.create_contexts_target(corpus)
    target[0] = 99
    assert int(xpnn.to_numpy(corpus)[1]) == 1


def test_one_hot_and_contexts_refusals(backend, xp):
    corpus = xpnn.asarray(np.array([0, 1, 5], dtype=np.int64))
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, C\)"):
        util.convert_one_hot(xp.reshape(corpus, (1, 1, 3)), 6)
    with pytest.raises(ValueError, match="window_size must be 1 or more"):
        util.create_contexts_target(corpus, window_size=0)
    if _reads_values(backend):
        with pytest.raises(ValueError, match=r"outside 0\.\.4"):
            util.convert_one_hot(corpus, 5)
    else:  # not read on a device: a row of zeros
        got = xpnn.to_numpy(util.convert_one_hot(corpus, 5))
        np.testing.assert_array_equal(got.sum(axis=1), [1, 1, 0])


def test_normalize_in_place(backend, xp):
    host = np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    x = xpnn.asarray(host)
    assert util.normalize(x) is x
    np.testing.assert_allclose(xpnn.to_numpy(x), [[0.6, 0.8], [1.0, 0.0]], rtol=1e-7)
    v = xpnn.asarray(np.array([0.0, 2.0]))
    np.testing.assert_array_equal(xpnn.to_numpy(util.normalize(v)), [0.0, 1.0])
    with pytest.raises(TypeError, match="float array"):
        util.normalize(xpnn.asarray(np.array([3, 4])))
    with pytest.raises(ValueError, match="vector or a matrix"):
        util.normalize(xpnn.asarray(np.ones((1, 1, 2), dtype=np.float32)))

"""Vol. 2 ch. 3's SimpleCBOW and SimpleSkipGram on every backend.

Shapes and dtypes, backprop against numerical gradients and PyTorch
autograd, the shared ``W_in`` (listed once, its gradient the sum of both
input layers' parts, so a book-style loop with Adam gives the book's
``remove_duplicate`` result), training on the book's corpus, saving and
loading, and refused inputs that change nothing. The one-hot data are built
here (not with ``xpnn.text``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn
from xpnn.gradient import numerical_gradient
from xpnn.models import MODELS, SimpleCBOW, SimpleSkipGram

CLASSES = [SimpleCBOW, SimpleSkipGram]
IDS = ["cbow", "skipgram"]

#: "You say goodbye and I say hello." as the book's preprocess gives it:
#: you 0, say 1, goodbye 2, and 3, i 4, hello 5, . 6.
BOOK_CORPUS = np.array([0, 1, 2, 3, 4, 1, 5, 6])
BOOK_VOCAB = 7


def host(a) -> np.ndarray:
    """A float64 host copy (a layer's output may be a reused buffer)."""
    return np.array(xpnn.to_numpy(a), dtype=np.float64, copy=True)


def one_hot_words(words: np.ndarray, vocab: int, dtype: str = "float32"):
    """Window-1 contexts ``(N, 2, V)`` and targets ``(N, V)`` of ``(N, 3)`` word ids."""
    eye = np.eye(vocab, dtype=dtype)
    return xpnn.asarray(eye[words[:, [0, 2]]]), xpnn.asarray(eye[words[:, 1]])


def book_data(dtype: str = "float32"):
    """The book's ch03 contexts and targets (window 1) of its corpus, one-hot."""
    words = np.stack([BOOK_CORPUS[:-2], BOOK_CORPUS[1:-1], BOOK_CORPUS[2:]], axis=1)
    return one_hot_words(words, BOOK_VOCAB, dtype)


def random_data(seed: int, n: int, vocab: int, dtype: str):
    rng = np.random.default_rng(seed)
    return one_hot_words(rng.integers(0, vocab, size=(n, 3)), vocab, dtype)


def rel_error(a, b) -> float:
    a, b = host(a), host(b)
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-12)
    return float(np.max(np.abs(a - b))) / scale


# ------------------------------------------------------------ shapes and dtypes


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_shapes_dtypes_and_the_book_init(backend, xp, cls):
    model = cls(7, 5, seed=3)
    W_in, W_out = model.params
    assert len(model.params) == len(model.grads) == 2
    assert tuple(W_in.shape) == (7, 5) and tuple(W_out.shape) == (5, 7)
    assert W_in.dtype == W_out.dtype == xp.float32
    assert [tuple(g.shape) for g in model.grads] == [(7, 5), (5, 7)]
    assert model.word_vecs is W_in
    assert (model.vocab_size, model.hidden_size) == (7, 5)
    # The book's 0.01 * randn(...).astype('f'), from xpnn's seeded generator.
    rng = xpnn.default_rng(3)
    expect_in = 0.01 * xpnn.to_numpy(rng.standard_normal((7, 5), dtype="float32"))
    expect_out = 0.01 * xpnn.to_numpy(rng.standard_normal((5, 7), dtype="float32"))
    np.testing.assert_array_equal(xpnn.to_numpy(W_in), expect_in)
    np.testing.assert_array_equal(xpnn.to_numpy(W_out), expect_out)
    np.testing.assert_array_equal(host(cls(7, 5, seed=3).params[0]), host(W_in))

    contexts, target = book_data()
    loss = model.forward(contexts, target)
    assert tuple(loss.shape) == () and loss.dtype == xp.float32
    assert xpnn.backend_of(loss) == xpnn.backend_of(W_in)  # on the weights' device
    assert model.backward() is None
    assert all(g.dtype == xp.float32 for g in model.grads)

    wide = cls(7, 5, seed=3, dtype="float64")
    assert wide.params[0].dtype == xp.float64
    assert wide.forward(*book_data("float64")).dtype == xp.float64


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_untrained_loss_is_ln_v_per_context_word(backend, cls):
    loss = float(host(cls(BOOK_VOCAB, 5, seed=0).forward(*book_data())))
    words = 1 if cls is SimpleCBOW else 2  # the skip-gram sums two losses
    assert loss == pytest.approx(words * math.log(BOOK_VOCAB), abs=1e-3)


def test_registered_and_exported():
    assert MODELS["SimpleCBOW"] is SimpleCBOW and MODELS["SimpleSkipGram"] is SimpleSkipGram
    assert {"SimpleCBOW", "SimpleSkipGram"} <= set(xpnn.models.__all__)


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "7"])
def test_bad_sizes_are_refused(size):
    with pytest.raises(ValueError, match="vocab_size must be a positive int"):
        SimpleCBOW(size, 5)
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        SimpleSkipGram(7, size)


# ------------------------------------------------------------ gradients


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_backprop_equals_numerical_gradient(backend, cls):
    model = cls(6, 4, seed=1, dtype="float64")
    for p in model.params:  # larger than the book's 0.01: gradients well above rounding
        p[...] = p * 50
    contexts, target = random_data(2, 5, 6, "float64")
    model.forward(contexts, target)
    model.backward()
    grads = [host(g) for g in model.grads]
    for p, g in zip(model.params, grads, strict=True):
        numeric = numerical_gradient(lambda _: model.forward(contexts, target), p)
        assert rel_error(g, numeric) <= 1e-7


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_matches_torch_autograd(backend, cls, dtype):
    torch = pytest.importorskip("torch")
    model = cls(8, 3, seed=4, dtype=dtype)
    for p in model.params:
        p[...] = p * 100
    contexts, target = random_data(5, 6, 8, dtype)
    loss = host(model.forward(contexts, target))
    model.backward(2.0)
    grads = [host(g) for g in model.grads]

    W_in, W_out = (torch.tensor(host(p), requires_grad=True) for p in model.params)
    c, t = (torch.tensor(host(a)) for a in (contexts, target))

    def cross_entropy(s, labels):
        return -(labels * torch.log_softmax(s, dim=1)).sum(dim=1).mean()

    if cls is SimpleCBOW:
        h = (c[:, 0] @ W_in + c[:, 1] @ W_in) * 0.5
        want = cross_entropy(h @ W_out, t)
    else:
        s = (t @ W_in) @ W_out
        want = cross_entropy(s, c[:, 0]) + cross_entropy(s, c[:, 1])
    (2.0 * want).backward()
    tol = {"float64": 1e-10, "float32": 1e-5}[dtype]
    np.testing.assert_allclose(loss, want.item(), rtol=tol)
    for got, ref in zip(grads, (W_in.grad, W_out.grad), strict=True):
        ref = ref.numpy()
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.max(np.abs(ref)))


def test_shared_W_in_is_listed_once_with_the_summed_gradient(backend):
    model = SimpleCBOW(7, 5, seed=0, dtype="float64")
    W_in = model.params[0]
    assert model.in_layer0.params[0] is W_in and model.in_layer1.params[0] is W_in
    assert model.out_layer.params[0] is model.params[1]
    assert model.grads[1] is model.out_layer.grads[0]
    contexts, target = random_data(1, 4, 7, "float64")
    model.forward(contexts, target)
    model.backward()
    g0, g1 = host(model.in_layer0.grads[0]), host(model.in_layer1.grads[0])
    # Each layer keeps its own part: c_k.T @ da, da = (dscore @ W_out.T) * 0.5.
    c = host(contexts)
    da = host(model.loss_layer.backward()) @ host(model.params[1]).T * 0.5
    np.testing.assert_allclose(g0, c[:, 0].T @ da, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g1, c[:, 1].T @ da, rtol=1e-12, atol=1e-15)
    assert np.abs(g0 - g1).max() > 0
    np.testing.assert_array_equal(host(model.grads[0]), g0 + g1)  # remove_duplicate's sum

    before = host(W_in)
    xpnn.SGD(lr=0.5).update(model.params, model.grads)
    np.testing.assert_allclose(host(W_in), before - 0.5 * (g0 + g1), rtol=1e-14)
    assert model.word_vecs is W_in


def _book_cbow_grads(W_in, W_out, c, t):
    """The book's SimpleCBOW forward/backward on the host: loss, [dW_in0, dW_in1, dW_out]."""
    h = (c[:, 0] @ W_in + c[:, 1] @ W_in) * 0.5
    s = h @ W_out
    y = np.exp(s - s.max(axis=1, keepdims=True))
    y /= y.sum(axis=1, keepdims=True)
    n = len(t)
    loss = -np.sum(t * np.log(y)) / n
    ds = (y - t) / n
    da = ds @ W_out.T * 0.5
    return loss, [c[:, 0].T @ da, c[:, 1].T @ da, h.T @ ds]


def _book_adam_step(state, params, grads, lr=0.001, beta1=0.9, beta2=0.999):
    """The book's common/optimizer.py Adam, after its Trainer's remove_duplicate."""
    if params[0] is params[1]:  # remove_duplicate: W_in once, the gradients summed
        params, grads = [params[0], params[2]], [grads[0] + grads[1], grads[2]]
    if not state:
        state.update(iter=0, m=[np.zeros_like(p) for p in params])
        state["v"] = [np.zeros_like(p) for p in params]
    state["iter"] += 1
    i = state["iter"]
    lr_t = lr * np.sqrt(1.0 - beta2**i) / (1.0 - beta1**i)
    for p, g, m, v in zip(params, grads, state["m"], state["v"], strict=True):
        m += (1 - beta1) * (g - m)
        v += (1 - beta2) * (g**2 - v)
        p -= lr_t * m / (np.sqrt(v) + 1e-7)


def test_book_style_adam_loop_equals_the_books_remove_duplicate(backend):
    model = SimpleCBOW(BOOK_VOCAB, 5, seed=7, dtype="float64")
    W_in, W_out = (host(p) for p in model.params)
    book_params, state = [W_in, W_in, W_out], {}
    contexts, target = book_data("float64")
    c, t = host(contexts), host(target)
    optimizer = xpnn.Adam()
    for step in range(20):
        rows = [(2 * step) % 6, (2 * step + 3) % 6, (step + 1) % 6]
        batch = xpnn.asarray(np.asarray(rows), dtype="int64")
        loss = model.forward(
            xpnn.backend.get_namespace(contexts).take(contexts, batch, axis=0),
            xpnn.backend.get_namespace(target).take(target, batch, axis=0),
        )
        model.backward()
        optimizer.update(model.params, model.grads)
        book_loss, book_grads = _book_cbow_grads(W_in, W_out, c[rows], t[rows])
        _book_adam_step(state, book_params, book_grads)
        assert float(host(loss)) == pytest.approx(book_loss, rel=1e-12)
    np.testing.assert_allclose(host(model.params[0]), W_in, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(host(model.params[1]), W_out, rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------ training


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_trainer_fit_on_the_books_corpus_lowers_the_loss(backend, cls):
    # The book's ch03/train.py: window 1, hidden 5, batch 3, Adam (fewer epochs).
    model = cls(BOOK_VOCAB, 5, seed=0)
    contexts, target = book_data()
    trainer = xpnn.Trainer(model, xpnn.Adam())
    trainer.fit(contexts, target, max_epoch=300, batch_size=3, verbose=False, progress=False)
    words = 1 if cls is SimpleCBOW else 2
    first, last = trainer.loss_list[0], trainer.loss_list[-1]
    assert first == pytest.approx(words * math.log(BOOK_VOCAB), abs=1e-3)
    assert last < first - 0.5 * words
    # A trained CBOW puts most probability on the one target after "you" ... "goodbye".
    if cls is SimpleCBOW:
        model.forward(contexts[:1, ...], target[:1, ...])
        y = host(model.loss_layer.y)[0]
        assert int(np.argmax(y)) == 1 and y[1] > 0.5  # "say"


def test_trainer_refuses_contexts_of_another_vocabulary(backend):
    model = SimpleCBOW(8, 5, seed=0)
    contexts, target = book_data()
    with pytest.raises(ValueError, match=r"expects samples of shape \(2, 8\)"):
        xpnn.Trainer(model, xpnn.Adam()).fit(contexts, target, 1, 3, verbose=False)


def test_an_interrupted_fit_resumes_to_the_uninterrupted_result(backend, tmp_path):
    from xpnn.training.callbacks import Callback

    class Interrupt(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 4:
                raise KeyboardInterrupt

    contexts, target = book_data()
    path = tmp_path / "cbow.ckpt.npz"
    run = {"batch_size": 3, "verbose": False, "progress": False, "checkpoint": path}
    with pytest.raises(KeyboardInterrupt):
        xpnn.Trainer(SimpleCBOW(7, 5, seed=0), xpnn.Adam()).fit(
            contexts, target, 10, callbacks=[Interrupt()], **run
        )
    resumed = SimpleCBOW(7, 5, seed=9)
    xpnn.Trainer(resumed, xpnn.Adam()).fit(contexts, target, 10, resume=path, **run)
    whole = SimpleCBOW(7, 5, seed=0)
    xpnn.Trainer(whole, xpnn.Adam()).fit(contexts, target, 10, **{**run, "checkpoint": None})
    for a, b in zip(resumed.params, whole.params, strict=True):
        np.testing.assert_array_equal(host(a), host(b))
    assert resumed.in_layer0.params[0] is resumed.in_layer1.params[0] is resumed.word_vecs


# ------------------------------------------------------------ saving


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_save_and_load_round_trip(backend, tmp_path, cls):
    model = cls(BOOK_VOCAB, 5, seed=2)
    contexts, target = book_data()
    loss = float(host(model.forward(contexts, target)))
    path = xpnn.io.save(model, tmp_path / "w2v.npz")
    loaded = xpnn.io.load(path)
    assert type(loaded) is cls and loaded.config == {"vocab_size": 7, "hidden_size": 5}
    for a, b in zip(loaded.params, model.params, strict=True):
        np.testing.assert_array_equal(host(a), host(b))
    if cls is SimpleCBOW:  # still one array in both input layers
        assert loaded.in_layer0.params[0] is loaded.in_layer1.params[0] is loaded.word_vecs
    else:
        assert loaded.in_layer.params[0] is loaded.word_vecs
    assert float(host(loaded.forward(contexts, target))) == loss


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_the_books_save_params_and_load_params(backend, tmp_path, monkeypatch, cls):
    monkeypatch.chdir(tmp_path)
    model, other = cls(BOOK_VOCAB, 5, seed=2), cls(BOOK_VOCAB, 5, seed=3)
    model.save_params()  # vol. 2's default: ClassName.pkl, float16
    assert (tmp_path / f"{cls.__name__}.pkl").is_file()
    other.load_params()
    for a, b in zip(other.params, model.params, strict=True):
        assert a.dtype == b.dtype
        expect = xpnn.to_numpy(b).astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(xpnn.to_numpy(a), expect)
    W_in = other.params[0]
    assert other.word_vecs is W_in  # loaded in place


def test_a_file_of_another_size_is_refused_and_changes_nothing(backend, tmp_path):
    small, model = SimpleCBOW(6, 5, seed=0), SimpleCBOW(7, 5, seed=1)
    path = xpnn.io.save(small, tmp_path / "small.npz")
    before = [host(p) for p in model.params]
    with pytest.raises(xpnn.io.ModelFileError, match="wrong shapes"):
        model.load_params(path)
    for p, b in zip(model.params, before, strict=True):
        np.testing.assert_array_equal(host(p), b)


@pytest.mark.parametrize(
    "config",
    [{"vocab_size": 7}, {"vocab_size": 0, "hidden_size": 5}, [7, 5], None],
    ids=["missing", "zero", "list", "none"],
)
def test_bad_configs_are_refused(config):
    with pytest.raises(ValueError, match="SimpleCBOW config"):
        SimpleCBOW.array_shapes(config)


# ------------------------------------------------------------ refused inputs


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_a_refused_input_changes_nothing(backend, cls):
    model = cls(BOOK_VOCAB, 5, seed=0, dtype="float32")
    contexts, target = book_data()
    loss = host(model.forward(contexts, target))
    model.backward()
    grads = [host(g) for g in model.grads]
    params = [host(p) for p in model.params]
    eye = np.eye(8, dtype=np.float32)
    bad = [
        (xpnn.asarray(eye[np.zeros((6, 2), int)]), target, ValueError, r"\(N, 2, 7\)"),
        (xpnn.asarray(np.zeros((6, 4, 7), np.float32)), target, ValueError, r"\(N, 2, 7\)"),
        (xpnn.asarray(np.zeros((0, 2, 7), np.float32)), target, ValueError, "N > 0"),
        (contexts, target[:5, ...], ValueError, r"targets of shape \(6, 7\)"),
        (xpnn.asarray(host(contexts)), target, TypeError, "convert it with xpnn.asarray"),
        (host(contexts).tolist(), target, TypeError, "contexts must be an array"),
    ]
    for c, t, error, match in bad:
        with pytest.raises(error, match=match):
            model.forward(c, t)
    with pytest.raises(ValueError, match=r"params\[0\] has shape \(7, 5\)"):
        model.params[0] = xpnn.asarray(np.zeros((5, 7), np.float32))
    # The model is as the good batch left it: backward gives the same gradients.
    model.backward()
    for g, want in zip(model.grads, grads, strict=True):
        np.testing.assert_array_equal(host(g), want)
    for p, want in zip(model.params, params, strict=True):
        np.testing.assert_array_equal(host(p), want)
    assert np.array_equal(host(model.forward(contexts, target)), loss)


def test_data_on_another_device_is_refused_not_moved(backend):
    if backend.name == "numpy" or backend.spec == "torch:cpu":
        pytest.skip("NumPy data are this backend's own (torch:cpu wraps them, no copy)")
    model = SimpleCBOW(BOOK_VOCAB, 5, seed=0)
    contexts, target = book_data()
    with pytest.raises(xpnn.BackendMismatchError):
        model.forward(xpnn.to_numpy(contexts), target)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_integer_one_hot_gives_the_float_loss(backend, cls):
    # The book's convert_one_hot gives int32; 0 and 1 are exact in every float.
    model = cls(BOOK_VOCAB, 5, seed=0)
    assert model.one_hot_inputs
    contexts, target = book_data()
    want = host(model.forward(contexts, target))
    as_int = [xpnn.asarray(xpnn.to_numpy(a).astype(np.int32)) for a in (contexts, target)]
    np.testing.assert_array_equal(host(model.forward(*as_int)), want)
    if backend.spec.startswith("array_api_strict"):  # the standard has no float16
        return
    as_f16 = [xpnn.asarray(xpnn.to_numpy(a).astype(np.float16)) for a in (contexts, target)]
    np.testing.assert_array_equal(host(model.forward(*as_f16)), want)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_backward_before_forward_is_refused(backend, cls):
    with pytest.raises(RuntimeError, match="forward pass first"):
        cls(BOOK_VOCAB, 5, seed=0).backward()


def test_trainer_takes_the_books_int32_one_hot_words(backend):
    """ch03/train.py feeds convert_one_hot's int32 arrays to Trainer.fit, as they are."""
    from xpnn.util import convert_one_hot, create_contexts_target, preprocess

    corpus, word_to_id, _ = preprocess("You say goodbye and I say hello.")
    contexts, target = create_contexts_target(corpus, window_size=1)
    vocab = len(word_to_id)
    contexts, target = convert_one_hot(contexts, vocab), convert_one_hot(target, vocab)
    assert contexts.dtype == xpnn.get_namespace(contexts).int32  # the book's dtype
    fit = {"max_epoch": 20, "batch_size": 3, "verbose": False, "progress": False}
    ints = xpnn.Trainer(SimpleCBOW(vocab, 5, seed=0), xpnn.Adam()).fit(contexts, target, **fit)
    floats = xpnn.Trainer(SimpleCBOW(vocab, 5, seed=0), xpnn.Adam()).fit(*book_data(), **fit)
    assert ints.loss_list == pytest.approx(floats.loss_list, rel=1e-6)
    # A model that takes no one-hot words still refuses integer x, with the fix.
    with pytest.raises(TypeError, match=r'x must be floating point, got int32; .*dtype="float32"'):
        xpnn.Trainer(xpnn.MultiLayerNet(7, [4], 7, seed=0), xpnn.SGD()).fit(target, target, **fit)

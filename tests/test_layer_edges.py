"""Every layer refuses a backward pass it cannot answer, before anything changes.

For each registered layer kind (:data:`xpnn.layers.LAYERS`), on every backend:
``backward`` before any ``forward`` is a RuntimeError, and a ``dout`` whose
shape is not that of the last output (even one that would broadcast) is a
ValueError naming both shapes, with the layer's gradients left as they were.
The checks come from :class:`xpnn.layers.Layer`, so a user's subclass has
them too.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnn
from xpnn.backend import to_numpy
from xpnn.layers import (
    LAYERS,
    Affine,
    BatchNormalization,
    Convolution,
    Dropout,
    Embedding,
    EmbeddingDot,
    Flatten,
    Layer,
    MatMul,
    Pooling,
    Relu,
    Sigmoid,
    SigmoidWithLoss,
    Softmax,
    SoftmaxWithLoss,
    TimeAffine,
    TimeBiLSTM,
    TimeDropout,
    TimeEmbedding,
    TimeGRU,
    TimeLSTM,
    TimeRNN,
    TimeSigmoidWithLoss,
    TimeSoftmaxWithLoss,
)


def arr(a, dtype="float32"):
    """``a`` on the active backend (the ``backend`` fixture's)."""
    return xpnn.asarray(np.asarray(a), dtype=dtype)


def normal(shape, seed=0):
    return arr(np.random.default_rng(seed).standard_normal(shape))


def labels(values):
    return xpnn.asarray(np.asarray(values, dtype=np.int64))


# id -> (a new layer, the arguments of its forward pass). Small shapes, batch N = 2.
CASES = {
    "MatMul": lambda: (MatMul(normal((4, 3), 1)), (normal((2, 4)),)),
    "Affine": lambda: (Affine(normal((4, 3), 1), normal((3,), 2)), (normal((2, 4)),)),
    # dout has the OUTPUT's shape (2, 3), not the input's (2, 1, 2, 2).
    "Affine-4d": lambda: (Affine(normal((4, 3), 1), normal((3,), 2)), (normal((2, 1, 2, 2)),)),
    "Flatten": lambda: (Flatten(), (normal((2, 1, 2, 2)),)),
    "Sigmoid": lambda: (Sigmoid(), (normal((2, 3)),)),
    "Relu": lambda: (Relu(), (normal((2, 3)),)),
    "Softmax": lambda: (Softmax(), (normal((2, 3)),)),
    "BatchNormalization": lambda: (
        BatchNormalization(arr(np.ones(3)), arr(np.zeros(3))),
        (normal((2, 3)), True),
    ),
    "BatchNormalization-test": lambda: (
        BatchNormalization(arr(np.ones(3)), arr(np.zeros(3))),
        (normal((2, 3)), False),
    ),
    "BatchNormalization-images": lambda: (
        BatchNormalization(arr(np.ones(2)), arr(np.zeros(2))),
        (normal((2, 2, 2, 2)), True),
    ),
    "Dropout": lambda: (Dropout(0.5, seed=0), (normal((2, 3)), True)),
    "Dropout-test": lambda: (Dropout(0.5, seed=0), (normal((2, 3)), False)),
    "SoftmaxWithLoss": lambda: (SoftmaxWithLoss(), (normal((2, 3)), labels([0, 2]))),
    "SoftmaxWithLoss-one-hot": lambda: (
        SoftmaxWithLoss(),
        (normal((2, 3)), arr(np.eye(3)[[0, 2]])),
    ),
    "Convolution": lambda: (
        Convolution(normal((2, 1, 3, 3), 1), normal((2,), 2)),
        (normal((2, 1, 4, 4)),),
    ),
    "Pooling": lambda: (Pooling(2, 2, stride=2), (normal((2, 1, 4, 4)),)),
    # vol. 2's word2vec layers: word ids in, a repeated one too.
    "Embedding": lambda: (Embedding(normal((5, 3), 1)), (labels([0, 3, 3]),)),
    "EmbeddingDot": lambda: (EmbeddingDot(normal((5, 3), 1)), (normal((2, 3)), labels([4, 4]))),
    "SigmoidWithLoss": lambda: (SigmoidWithLoss(), (normal((2,)), labels([0, 1]))),
    # vol. 2's recurrent layers over (N, T, D) sequences.
    "TimeRNN": lambda: (
        TimeRNN(normal((4, 3), 1), normal((3, 3), 2), normal((3,), 5)),
        (normal((2, 3, 4)),),
    ),
    "TimeLSTM": lambda: (
        TimeLSTM(normal((4, 12), 1), normal((3, 12), 2), normal((12,), 5), stateful=True),
        (normal((2, 3, 4)),),
    ),
    "TimeGRU": lambda: (
        TimeGRU(normal((4, 9), 1), normal((3, 9), 2), normal((9,), 5), stateful=True),
        (normal((2, 3, 4)),),
    ),
    "TimeBiLSTM": lambda: (
        TimeBiLSTM(
            *(normal((4, 12), 1), normal((3, 12), 2), normal((12,), 5)),
            *(normal((4, 12), 6), normal((3, 12), 7), normal((12,), 8)),
            stateful=True,
        ),
        (normal((2, 3, 4)),),
    ),
    # vol. 2's time-distributed layers (the book's common/time_layers.py).
    "TimeEmbedding": lambda: (TimeEmbedding(normal((5, 3), 1)), (labels([[0, 3], [3, 4]]),)),
    "TimeAffine": lambda: (
        TimeAffine(normal((4, 3), 1), normal((3,), 2)),
        (normal((2, 3, 4)),),
    ),
    "TimeSoftmaxWithLoss": lambda: (
        TimeSoftmaxWithLoss(),
        (normal((2, 3, 4)), labels([[0, -1, 3], [2, 1, -1]])),
    ),
    "TimeSoftmaxWithLoss-one-hot": lambda: (
        TimeSoftmaxWithLoss(),
        (normal((2, 3, 4)), arr(np.eye(4)[[[0, 1, 3], [2, 1, 0]]])),
    ),
    "TimeDropout": lambda: (TimeDropout(0.5, seed=0), (normal((2, 3, 4)),)),
    "TimeDropout-test": lambda: (TimeDropout(0.5, seed=0), (normal((2, 3, 4)), False)),
    "TimeSigmoidWithLoss": lambda: (
        TimeSigmoidWithLoss(),
        (normal((2, 3)), labels([[0, 1, 1], [1, 0, 0]])),
    ),
}

#: Layers these generic cases cannot drive, and why; tests/test_recurrent.py checks
#: their refusals (backward before forward, wrong shapes, dtypes) instead.
OWN_TESTS = {
    "RNN": "the book's cell: backward(dh_next) returns (dx, dh_prev)",
    "LSTM": "the book's cell: forward returns (h_next, c_next), backward takes dc_next too",
    "GRU": "the book's cell: backward(dh_next) returns (dx, dh_prev) (tests/test_gru.py)",
    # vol. 2 ch. 8's attention layers: two inputs, and backward returns two gradients
    # (tests/test_attention.py checks the same refusals).
    "WeightSum": "the book's: forward(hs, a), backward(dc) returns (dhs, da)",
    "AttentionWeight": "the book's: forward(hs, h), backward(da) returns (dhs, dh)",
    "Attention": "the book's: forward(hs, h), backward(dout) returns (dhs, dh)",
    "TimeAttention": "the book's: forward(hs_enc, hs_dec), backward returns (dhs_enc, dhs_dec)",
}


def kind_of(case: str) -> str:
    return case.split("-")[0]


def test_every_layer_of_xpnn_has_a_case():
    # A layer added to xpnn.layers joins these tests by a line in CASES.
    ours = {name for name, cls in LAYERS.items() if cls.__module__.startswith("xpnn.")}
    missing = ours - {kind_of(case) for case in CASES} - set(OWN_TESTS)
    assert not missing, sorted(missing)


def host_grads(layer):
    return [to_numpy(g).copy() for g in layer.grads]


def backward_result(layer, dout):
    """What a backward pass gives: its input gradient, or (Embedding, which gives
    None as the book's) the parameter gradients it filled."""
    dx = layer.backward(dout)
    return host_grads(layer) if dx is None else [to_numpy(dx).copy()]


def dout_like(out, seed=3):
    """A valid upstream gradient: of the output's shape (1 for a loss)."""
    shape = tuple(out.shape)
    return 1 if shape == () else normal(shape, seed)


def wrong_douts(shape):
    """``(one that broadcasts to shape, one that does not)``."""
    broadcasts = shape[1:] if len(shape) >= 2 else (1,)
    does_not = (*shape[:-1], shape[-1] + 1) if shape else (2,)
    return {"broadcastable": broadcasts, "not-broadcastable": does_not}


@pytest.mark.parametrize("case", CASES)
def test_backward_before_forward_is_refused(backend, case):
    layer, args = CASES[case]()
    fresh = host_grads(layer)
    out_shape = tuple(CASES[case]()[0].forward(*args).shape)  # a twin's output
    dout = 1 if out_shape == () else normal(out_shape)
    with pytest.raises(
        RuntimeError, match=rf"^{kind_of(case)}\.backward needs a forward pass first"
    ):
        layer.backward(dout)
    for before, after in zip(fresh, host_grads(layer), strict=True):
        np.testing.assert_array_equal(after, before)
    # The refusal changed nothing: a forward pass now makes backward work.
    layer.forward(*args)
    assert any(np.any(g != 0) for g in backward_result(layer, dout))


@pytest.mark.parametrize("which", ["broadcastable", "not-broadcastable"])
@pytest.mark.parametrize("case", CASES)
def test_dout_of_another_shape_is_refused(backend, case, which):
    layer, args = CASES[case]()
    out = layer.forward(*args)
    shape = tuple(out.shape)
    good = dout_like(out)
    first = backward_result(layer, good)  # the gradients now hold values
    grads = host_grads(layer)
    bad = wrong_douts(shape)[which]
    with pytest.raises(ValueError) as caught:
        layer.backward(normal(bad, 4))
    message = str(caught.value)
    assert message.startswith(f"{kind_of(case)}.backward: ")
    assert str(bad) in message and str(shape) in message, message
    for before, after in zip(grads, host_grads(layer), strict=True):
        np.testing.assert_array_equal(after, before)
    # Nothing else changed either: the same dout gives the same gradient.
    for again, before in zip(backward_result(layer, good), first, strict=True):
        np.testing.assert_array_equal(again, before)


@pytest.mark.parametrize("case", ["MatMul", "Affine", "Affine-4d"])
def test_the_first_layer_skips_its_input_gradient_still(backend, case):
    layer, args = CASES[case]()
    out = layer.forward(*args)
    assert layer.backward(dout_like(out), input_grad=False) is None
    assert any(np.any(g != 0) for g in host_grads(layer))
    with pytest.raises(ValueError, match=r"dout of shape \(3,\)"):
        layer.backward(normal((3,)), input_grad=False)


@pytest.mark.parametrize("dout", [1, 1.0, "0-d array"], ids=["int", "float", "0-d-array"])
def test_a_loss_takes_a_scalar_dout(backend, dout):
    layer, args = CASES["SoftmaxWithLoss"]()
    layer.forward(*args)
    if isinstance(dout, str):
        dout = arr(2.0)
    assert tuple(layer.backward(dout).shape) == (2, 3)
    assert tuple(layer.backward().shape) == (2, 3)  # dout=1
    with pytest.raises(ValueError, match=r"a number or a 0-d array"):
        layer.backward(normal((2, 3)))


# ------------------------------------------------------------ a user's layers


class Double(Layer):
    """A layer of a user: out = 2 x."""

    def forward(self, x):
        return 2 * x

    def backward(self, dout, *, input_grad=True):
        return 2 * dout


class FlatRelu(Relu):
    """A subclass whose super() calls see other shapes than its callers."""

    def forward(self, x):
        xp = xpnn.get_namespace(x)
        return xp.reshape(super().forward(xp.reshape(x, (-1,))), tuple(x.shape))

    def backward(self, dout, *, input_grad=True):
        xp = xpnn.get_namespace(dout)
        dx = super().backward(xp.reshape(dout, (-1,)), input_grad=input_grad)
        return xp.reshape(dx, tuple(dout.shape))


@pytest.mark.parametrize("cls", [Double, FlatRelu], ids=lambda c: c.__name__)
def test_a_users_layer_gets_the_checks(backend, cls):
    layer = cls()
    with pytest.raises(RuntimeError, match=rf"^{cls.__name__}\.backward needs a forward pass"):
        layer.backward(normal((2, 3)))
    x = normal((2, 3))
    out = layer.forward(x)
    with pytest.raises(ValueError, match=re.escape("dout of shape (3,) does not fit")):
        layer.backward(normal((3,)))
    dx = layer.backward(normal((2, 3)))  # the super() call passes its (6,) dout
    assert tuple(dx.shape) == tuple(out.shape) == (2, 3)


def test_the_checks_wrap_each_method_once():
    # Affine's own methods are wrapped, MatMul's too, and nothing twice.
    for cls in (MatMul, Affine, Relu, Convolution):
        for name in ("forward", "backward"):
            method = cls.__dict__[name]
            assert method._xpnn_checked
            assert not hasattr(method.__wrapped__, "_xpnn_checked")


@pytest.mark.parametrize("x_dtype, w_dtype", [("float32", "float64"), ("float64", "float32")])
@pytest.mark.parametrize("kind", ["MatMul", "Affine"])
def test_dense_layers_refuse_inputs_of_another_dtype_than_their_weights(
    backend, kind, x_dtype, w_dtype
):
    # NumPy would silently compute in float64, PyTorch raise its own error:
    # one xpnn TypeError on every backend, as Convolution gives, before any change.
    W = arr(np.ones((3, 2)), w_dtype)
    layer = MatMul(W) if kind == "MatMul" else Affine(W, arr(np.zeros(2), w_dtype))
    with pytest.raises(TypeError, match=f"W is {w_dtype}, x is {x_dtype}") as err:
        layer.forward(arr(np.ones((4, 3)), x_dtype))
    assert f'dtype="{w_dtype}"' in str(err.value)
    assert layer.x is None

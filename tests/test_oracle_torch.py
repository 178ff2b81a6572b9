"""PyTorch as the oracle: every layer, function, optimizer step and the
two-layer net's gradient against torch.autograd / torch.optim.

Data is made on the backend under test (``backend`` fixture), the results
are read back and compared on the host with PyTorch computing in float64
from the very same values. Cases: random shapes from fixed seeds, a batch of
one, and scores of about +-1000. Tolerances are relative to each array's
largest element: 1e-10 for float64, 1e-5 for float32.

Where the book's optimizers differ from torch.optim (vol. 2's Nesterov, Adam) the
tests pin the exact relation instead (see docs/porting.md).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn
from xpnn.functions import (
    cross_entropy_error,
    mean_squared_error,
    relu,
    sigmoid,
    softmax,
    softmax_cross_entropy,
)
from xpnn.layers import Affine, MatMul, Relu, Sigmoid, Softmax, SoftmaxWithLoss

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = ["float64", "float32"]
TOL = {"float64": 1e-10, "float32": 1e-5}

#: (seed, batch size, scale of the inputs): random shapes, a batch of one,
#: and scores of +-1000 (where softmax and sigmoid saturate).
CASES = [
    pytest.param((0, 1, 1.0), id="batch1"),
    pytest.param((1, 7, 1.0), id="batch7"),
    pytest.param((2, 5, 1000.0), id="scale1000"),
    pytest.param((3, 1, 1000.0), id="batch1-scale1000"),
]


def host(a) -> np.ndarray:
    """A float64 host copy (NumPy results may be a layer's reused buffer)."""
    return np.array(xpnn.to_numpy(a), dtype=np.float64, copy=True)


def close(got, want, dtype: str) -> None:
    """Equal up to TOL, relative to the largest element of ``want``.

    The float64 oracle also has values below float32's range (a gradient of
    sigmoid(-700)): those may be 0 in float32.
    """
    want = np.asarray(want, dtype=np.float64)
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    tol = TOL[dtype]
    atol = max(tol * scale, float(np.finfo(dtype).tiny))
    np.testing.assert_allclose(got, want, rtol=tol, atol=atol)


def draw(rng, shape, scale: float, dtype: str) -> np.ndarray:
    """Random normal values, rounded to ``dtype`` (torch gets the same numbers)."""
    return (rng.normal(size=shape) * scale).astype(dtype)


def leaf(a: np.ndarray):
    """A float64 torch tensor that autograd differentiates."""
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def dev(a: np.ndarray, dtype: str):
    return xpnn.asarray(a, dtype=dtype)


# ----------------------------------------------------------------- layers


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", ["Affine", "MatMul"])
def test_affine_and_matmul_match_autograd(backend, dtype, case, kind):
    seed, n, scale = case
    rng = np.random.default_rng(seed)
    d, h = (int(v) for v in rng.integers(1, 7, size=2))
    x, W, b = draw(rng, (n, d), scale, dtype), draw(rng, (d, h), 1, dtype), draw(rng, h, 1, dtype)
    dout = draw(rng, (n, h), 1, dtype)
    layer = Affine(dev(W, dtype), dev(b, dtype)) if kind == "Affine" else MatMul(dev(W, dtype))
    out = host(layer.forward(dev(x, dtype)))
    dx = host(layer.backward(dev(dout, dtype)))

    tx, tW, tb = leaf(x), leaf(W), leaf(b)
    tout = tx @ tW + tb if kind == "Affine" else tx @ tW
    tout.backward(torch.tensor(dout, dtype=torch.float64))
    close(out, tout.detach(), dtype)
    close(dx, tx.grad, dtype)
    close(host(layer.grads[0]), tW.grad, dtype)
    if kind == "Affine":
        close(host(layer.grads[1]), tb.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    ("kind", "reference"),
    [
        (Sigmoid, torch.sigmoid),
        (Relu, torch.relu),
        (Softmax, lambda z: torch.softmax(z, dim=-1)),
    ],
    ids=["Sigmoid", "Relu", "Softmax"],
)
def test_activation_layers_match_autograd(backend, dtype, case, kind, reference):
    seed, n, scale = case
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 8))
    x, dout = draw(rng, (n, c), scale, dtype), draw(rng, (n, c), 1, dtype)
    layer = kind()
    out = host(layer.forward(dev(x, dtype)))
    dx = host(layer.backward(dev(dout, dtype)))
    tx = leaf(x)
    tout = reference(tx)
    tout.backward(torch.tensor(dout, dtype=torch.float64))
    close(out, tout.detach(), dtype)
    close(dx, tx.grad, dtype)


def test_relu_nan_matches_autograd(backend):
    """NaN in, NaN out; the gradient at NaN passes, as torch's backward does."""
    x = np.array([np.nan, -1.0, 0.0, 2.0])
    layer = Relu()
    out = host(layer.forward(dev(x, "float64")))
    dx = host(layer.backward(dev(np.array([1.0, 2.0, 3.0, 4.0]), "float64")))
    tx = leaf(x)
    tout = torch.relu(tx)
    tout.backward(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    np.testing.assert_array_equal(out, tout.detach().numpy())
    np.testing.assert_array_equal(dx, tx.grad.numpy())
    np.testing.assert_array_equal(host(relu(dev(x, "float64"))), tout.detach().numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("one_hot", [False, True], ids=["labels", "one-hot"])
@pytest.mark.parametrize("dout", [1, 0.5])
def test_softmax_with_loss_matches_autograd(backend, dtype, case, one_hot, dout):
    seed, n, scale = case
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 8))
    x = draw(rng, (n, c), scale, dtype)
    labels = rng.integers(0, c, size=n)
    t = dev(np.eye(c)[labels], dtype) if one_hot else xpnn.asarray(labels)
    layer = SoftmaxWithLoss()
    loss = host(layer.forward(dev(x, dtype), t))
    dx = host(layer.backward(dout))

    tx = leaf(x)
    target = torch.tensor(np.eye(c)[labels]) if one_hot else torch.tensor(labels)
    tloss = F.cross_entropy(tx, target)  # the mean over the batch
    (tloss * dout).backward()
    close(loss, tloss.detach(), dtype)
    close(dx, tx.grad, dtype)
    close(host(layer.y), torch.softmax(tx.detach(), dim=-1), dtype)


# -------------------------------------------------------------- functions


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_functions_match_torch(backend, dtype, case):
    seed, n, scale = case
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 8))
    x = draw(rng, (n, c), scale, dtype)
    labels = rng.integers(0, c, size=n)
    tx = torch.tensor(x, dtype=torch.float64)
    xd = dev(x, dtype)
    close(host(softmax(xd)), torch.softmax(tx, dim=-1), dtype)
    close(host(softmax(dev(x[0], dtype))), torch.softmax(tx[0], dim=-1), dtype)
    close(host(sigmoid(xd)), torch.sigmoid(tx), dtype)
    close(host(relu(xd)), torch.relu(tx), dtype)

    for t in (xpnn.asarray(labels), dev(np.eye(c)[labels], dtype)):
        close(host(softmax_cross_entropy(xd, t)), F.cross_entropy(tx, torch.tensor(labels)), dtype)
        p = softmax(xd)
        tp = torch.softmax(tx, dim=-1)
        expected = -torch.log(tp[torch.arange(n), torch.tensor(labels)] + 1e-7).mean()
        close(host(cross_entropy_error(p, t)), expected, dtype)

    target = draw(rng, (n, c), 1, dtype)
    expected = 0.5 * torch.sum((tx - torch.tensor(target, dtype=torch.float64)) ** 2)
    close(host(mean_squared_error(xd, dev(target, dtype))), expected, dtype)


# ------------------------------------------------------------- optimizers

STEPS = 4


def _run_both(backend, dtype, seed, make_xpnn, make_torch, grad_scale=1.0, before_step=None):
    """Run STEPS updates with the same gradients; yield both parameter sets per step."""
    rng = np.random.default_rng(seed)
    shapes = {"W": (3, 4), "b": (4,)}
    start = {k: draw(rng, s, 1, dtype) for k, s in shapes.items()}
    grads = [{k: draw(rng, s, grad_scale, dtype) for k, s in shapes.items()} for _ in range(STEPS)]
    params = {k: dev(v, dtype) for k, v in start.items()}
    tparams = {k: leaf(v) for k, v in start.items()}
    opt, topt = make_xpnn(), make_torch(list(tparams.values()))
    for step, g in enumerate(grads, start=1):
        opt.update(params, {k: dev(v, dtype) for k, v in g.items()})
        for k, tp in tparams.items():
            tp.grad = torch.tensor(g[k], dtype=torch.float64)
        if before_step is not None:
            before_step(topt, step)
        topt.step()
        yield step, opt, {k: host(v) for k, v in params.items()}, tparams, g


EQUAL_TO_TORCH = {
    "SGD": (lambda: xpnn.SGD(lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "Momentum": (
        lambda: xpnn.Momentum(lr=0.1, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    ),
    "AdaGrad": (
        lambda: xpnn.AdaGrad(lr=0.1),
        lambda ps: torch.optim.Adagrad(ps, lr=0.1, eps=1e-7),
    ),
    "RMSprop": (
        lambda: xpnn.RMSprop(lr=0.1, decay_rate=0.9),
        lambda ps: torch.optim.RMSprop(ps, lr=0.1, alpha=0.9, eps=1e-7),
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(EQUAL_TO_TORCH))
def test_optimizers_equal_to_torch_optim(backend, dtype, name):
    make_xpnn, make_torch = EQUAL_TO_TORCH[name]
    for _, _, params, tparams, _ in _run_both(backend, dtype, 5, make_xpnn, make_torch):
        for k, tp in tparams.items():
            close(params[k], tp.detach(), dtype)


def test_nesterov_vol1_is_torchs_and_vol2_is_not(backend):
    """Vol. 1's (corrected) Nesterov is SGD(nesterov=True): first step
    -(1 + mu) lr g. Vol. 2's moves -(1 + mu + mu**2) lr g first, and after
    every step p_vol2 = p_torch + mu**2 v."""
    lr, mu = 0.1, 0.9
    for _, _, params, tparams, _ in _run_both(
        backend,
        "float64",
        6,
        lambda: xpnn.Nesterov(lr=lr, momentum=mu),
        lambda ps: torch.optim.SGD(ps, lr=lr, momentum=mu, nesterov=True),
    ):
        for k, tp in tparams.items():
            close(params[k], tp.detach(), "float64")
    runs = _run_both(
        backend,
        "float64",
        6,
        lambda: xpnn.optimizers.NesterovVol2(lr=lr, momentum=mu),
        lambda ps: torch.optim.SGD(ps, lr=lr, momentum=mu, nesterov=True),
    )
    rng = np.random.default_rng(6)
    start = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
    for step, opt, params, tparams, g in runs:
        for k, tp in tparams.items():
            torch_p = tp.detach().numpy()
            if step == 1:
                close(params[k] - start[k], -(1 + mu + mu * mu) * lr * g[k], "float64")
                close(torch_p - start[k], -(1 + mu) * lr * g[k], "float64")
                assert not np.allclose(params[k], torch_p, rtol=1e-3)
            close(params[k], torch_p + mu * mu * host(opt.v[k]), "float64")


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_is_torchs_with_the_books_eps_moved_inside(backend, dtype):
    """Update t of the book's Adam is torch.optim.Adam's with eps = 1e-7 / sqrt(1 - beta2**t)."""
    b1, b2 = 0.9, 0.999

    def book_eps(topt, step):
        topt.param_groups[0]["eps"] = 1e-7 / math.sqrt(1 - b2**step)

    for grad_scale in (1.0, 1e-6):  # eps matters with tiny gradients
        runs = _run_both(
            backend,
            dtype,
            7,
            lambda: xpnn.Adam(lr=0.01, beta1=b1, beta2=b2),
            lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(b1, b2)),
            grad_scale=grad_scale,
            before_step=book_eps,
        )
        for _, _, params, tparams, _ in runs:
            for k, tp in tparams.items():
                close(params[k], tp.detach(), dtype)


def test_adam_differs_from_torch_with_a_fixed_eps(backend):
    """With torch's own rule (eps after the bias correction) tiny gradients
    move the parameters much further: the book's eps is 3.2e-6 at step 1."""
    runs = _run_both(
        backend,
        "float64",
        7,
        lambda: xpnn.Adam(lr=0.01),
        lambda ps: torch.optim.Adam(ps, lr=0.01, eps=1e-7),
        grad_scale=1e-6,
    )
    rng = np.random.default_rng(7)
    start = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
    _, _, params, tparams, _ = next(runs)
    book_move = np.abs(params["W"] - start["W"])
    torch_move = np.abs(tparams["W"].detach().numpy() - start["W"])
    assert np.all(torch_move > 1.5 * book_move)


# ----------------------------------------------------------- TwoLayerNet


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("one_hot", [False, True], ids=["labels", "one-hot"])
@pytest.mark.parametrize("seed", [0, 1])
def test_two_layer_net_gradient_matches_autograd(backend, dtype, one_hot, seed):
    rng = np.random.default_rng(seed)
    d, h, c = (int(v) for v in rng.integers(2, 9, size=3))
    n = 1 if seed == 0 else 6
    net = xpnn.TwoLayerNet(d, h, c, weight_init_std=1.0, seed=seed, dtype=dtype)
    start = {k: host(v) for k, v in net.params.items()}
    x = draw(rng, (n, d), 1, dtype)
    labels = rng.integers(0, c, size=n)
    t = dev(np.eye(c)[labels], dtype) if one_hot else xpnn.asarray(labels)
    grads = {k: host(v) for k, v in net.gradient(dev(x, dtype), t).items()}
    loss = host(net.loss_layer.loss)

    tp = {k: leaf(v) for k, v in start.items()}
    z = torch.sigmoid(torch.tensor(x, dtype=torch.float64) @ tp["W1"] + tp["b1"])
    tloss = F.cross_entropy(z @ tp["W2"] + tp["b2"], torch.tensor(labels))
    tloss.backward()
    close(loss, tloss.detach(), dtype)
    for k in ("W1", "b1", "W2", "b2"):
        close(grads[k], tp[k].grad, dtype)

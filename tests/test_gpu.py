"""GPU-only checks (CuPy): a training step never waits for the device."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.datasets import load_spiral

pytestmark = pytest.mark.gpu


def test_training_step_has_no_host_synchronisation(cupy_backend):
    import cupyx

    rng = np.random.default_rng(0)
    x = xpnn.asarray(rng.random((1000, 784)))
    t = xpnn.asarray(rng.integers(0, 10, 1000))
    net = xpnn.TwoLayerNet(784, 50, 10, seed=0)
    opt = xpnn.SGD(lr=0.1)
    order = xpnn.default_rng(1).permutation(1000)  # made on the device once, as fit does
    xp = xpnn.get_namespace(x)

    def step(i, total):
        idx = order[i * 100 : (i + 1) * 100]
        grads = net.gradient(xp.take(x, idx, axis=0), xp.take(t, idx, axis=0))
        opt.update(net.params, grads)
        return total + net.loss_layer.loss

    total = step(0, 0)  # warm up: kernels compile, buffers are allocated
    with cupyx.allow_synchronize(False):
        for i in range(1, 10):
            total = step(i, total)
    assert np.isfinite(float(xpnn.to_numpy(total)))  # reading it is the one sync


def test_trainer_reads_the_device_only_at_eval_intervals(cupy_backend, monkeypatch):
    import cupyx

    x, t = load_spiral()
    net = xpnn.LayeredTwoLayerNet(2, 10, 3, seed=0)
    trainer = xpnn.Trainer(net, xpnn.SGD(lr=1.0))
    trainer.fit(x, t, max_epoch=1, batch_size=30, progress=False, verbose=False)  # warm up
    real = xpnn.training.trainer.to_numpy

    def allowed(a):  # the trainer's own reads: eval intervals, the label check
        with cupyx.allow_synchronize(True):
            return real(a)

    monkeypatch.setattr(xpnn.training.trainer, "to_numpy", allowed)
    with cupyx.allow_synchronize(False):
        trainer.fit(
            x, t, max_epoch=3, batch_size=30, eval_interval=10, progress=False, verbose=False
        )
    assert len(trainer.loss_list) == 1 + 3


def _blobs(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 10, n)
    x = rng.normal(0, 1, (n, 784)) + 0.5 * t[:, None] * (np.arange(784) % 10 == t[:, None])
    return xpnn.asarray(x), xpnn.asarray(t)


@pytest.mark.parametrize(
    "make_opt", [lambda: xpnn.SGD(lr=0.1), lambda: xpnn.Momentum(lr=0.05)], ids=["SGD", "Momentum"]
)
@pytest.mark.parametrize("max_grad", [None, 0.5])
def test_cuda_graph_training_equals_eager_training(cupy_backend, make_opt, max_grad):
    x, t = _blobs()
    runs = []
    for graph in (False, True):
        net = xpnn.TwoLayerNet(784, 50, 10, seed=0)
        opt = make_opt()
        trainer = xpnn.Trainer(net, opt)
        trainer.fit(
            x,
            t,
            max_epoch=3,
            batch_size=100,
            eval_interval=5,
            max_grad=max_grad,
            # The accuracies run the layers on 1000 and 300 rows between
            # iterations: the layers make new buffers, the graph must keep its own.
            validation_data=(x[:300, ...], t[:300]),
            progress=False,
            verbose=False,
            cuda_graph=graph,
        )
        runs.append(
            (
                trainer.loss_list + trainer.test_acc_list,
                {k: xpnn.to_numpy(v) for k, v in net.params.items()},
                opt.iter,
            )
        )
    (loss_e, params_e, iter_e), (loss_g, params_g, iter_g) = runs
    assert iter_g == iter_e == 30
    np.testing.assert_allclose(loss_g, loss_e, rtol=1e-6)
    assert loss_g[-1] < loss_g[0]  # it trained
    for k in params_e:
        np.testing.assert_allclose(params_g[k], params_e[k], rtol=1e-5, atol=1e-7, err_msg=k)


def test_cuda_graph_replays_without_host_synchronisation(cupy_backend):
    import cupyx

    from xpnn.training.trainer import _GraphStep

    x, t = _blobs()
    trainer = xpnn.Trainer(xpnn.TwoLayerNet(784, 50, 10, seed=0), xpnn.SGD(lr=0.1))
    step = _GraphStep(trainer, x, t, 100, None)
    order = xpnn.default_rng(1).permutation(1000)
    total = step(order[:100])  # eager warm-up
    with cupyx.allow_synchronize(False):  # recording and replays wait for nothing
        for i in range(1, 10):
            total = total + step(order[i * 100 : (i + 1) * 100])
    assert step.graph is not None
    assert np.isfinite(float(xpnn.to_numpy(total)))


def test_cuda_graph_refuses_adam(cupy_backend):
    x, t = _blobs(200)
    trainer = xpnn.Trainer(xpnn.TwoLayerNet(784, 50, 10, seed=0), xpnn.Adam())
    with pytest.raises(ValueError, match="Adam"):
        trainer.fit(
            x, t, max_epoch=1, batch_size=100, progress=False, verbose=False, cuda_graph=True
        )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("a_transposed", [False, True])
@pytest.mark.parametrize("b_transposed", [False, True])
def test_cublas_matmul_equals_numpy_for_every_layout(
    cupy_backend, dtype, a_transposed, b_transposed
):
    import cupy

    from xpnn.backend import _cupy_gemm, ops

    rng = np.random.default_rng(0)
    a, b = rng.random((70, 30)), rng.random((30, 20))

    def on_gpu(m, transposed):  # a transposed view has column-major strides
        return cupy.asarray(m.T, dtype=dtype).T if transposed else cupy.asarray(m, dtype=dtype)

    ga, gb = on_gpu(a, a_transposed), on_gpu(b, b_transposed)
    out = cupy.full((70, 20), np.nan, dtype=dtype)
    assert _cupy_gemm(ga, gb, out)  # the direct cuBLAS path applies to these layouts
    out[...] = np.nan
    assert ops(ga).matmul(ga, gb, out=out) is out
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(cupy.asnumpy(out), a @ b, rtol=tol)

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
    real = xpnn.trainer.to_numpy

    def allowed(a):  # the trainer's own reads: eval intervals, the label check
        with cupyx.allow_synchronize(True):
            return real(a)

    monkeypatch.setattr(xpnn.trainer, "to_numpy", allowed)
    with cupyx.allow_synchronize(False):
        trainer.fit(
            x, t, max_epoch=3, batch_size=30, eval_interval=10, progress=False, verbose=False
        )
    assert len(trainer.loss_list) == 1 + 3

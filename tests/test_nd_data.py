"""Samples of any shape: (N, 1, 28, 28) images through Flatten, Affine, the Trainer,
checkpoints and resume, and saved models, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from test_checkpoint import Interrupt

import xpnn
from xpnn.datasets import load_mnist5k
from xpnn.io import ModelFileError, load, save
from xpnn.layers import Affine, Flatten, Relu, SoftmaxWithLoss
from xpnn.models import LayeredNet
from xpnn.optimizers import SGD
from xpnn.training.checkpointer import fingerprint

FIT = {"max_epoch": 3, "batch_size": 20, "eval_interval": 2, "seed": 3, "progress": False}
FIT["verbose"] = False


def images(n=120, shape=(1, 4, 4), classes=3, seed=0):
    """Separable little "images" ``(n, *shape)`` with integer labels, on the active backend."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, classes, n)
    x = rng.normal(0, 1, (n, *shape)).astype(np.float32)
    x.reshape(n, -1)[np.arange(n), t] += 3.0  # the class shows in one pixel
    return xpnn.asarray(x), xpnn.asarray(t)


def weights(d, h, c, seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.1, (d, h)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (h, c)).astype(np.float32)
    return w1, w2


def cnn_shaped_net(shape=(1, 4, 4), hidden=8, classes=3, seed=0, flatten=True):
    """Flatten - Affine - Relu - Affine: a model that takes ``(N, *shape)`` samples."""
    w1, w2 = weights(int(np.prod(shape)), hidden, classes, seed)
    layers = [
        Affine(xpnn.asarray(w1), xpnn.zeros(hidden)),
        Relu(),
        Affine(xpnn.asarray(w2), xpnn.zeros(classes)),
    ]
    if flatten:
        return LayeredNet([Flatten(), *layers], SoftmaxWithLoss(), input_size=shape)
    return LayeredNet(layers, SoftmaxWithLoss(), input_size=int(np.prod(shape)))


def host(a):
    return np.array(xpnn.to_numpy(a))


# ------------------------------------------------------------------ loaders


def test_load_mnist5k_unflattened_is_the_same_images(backend, xp):
    (x, t), (x_test, _) = load_mnist5k(flatten=False)
    (xf, tf), (xf_test, _) = load_mnist5k()
    assert tuple(x.shape) == (4000, 1, 28, 28) and tuple(x_test.shape) == (1000, 1, 28, 28)
    assert x.dtype == xp.float32 and t.dtype == xp.int64 and xpnn.device_of(x) == backend.device
    np.testing.assert_array_equal(host(x).reshape(4000, 784), host(xf))
    np.testing.assert_array_equal(host(x_test).reshape(1000, 784), host(xf_test))
    np.testing.assert_array_equal(host(t), host(tf))
    (raw, _), _ = load_mnist5k(normalize=False, flatten=False)
    assert raw.dtype == xp.uint8 and tuple(raw.shape) == (4000, 1, 28, 28)


def test_load_mnist_dir_unflattened(backend, mnist_dir):
    (x, t), (x_test, _) = xpnn.datasets.load_mnist_dir(mnist_dir, flatten=False)
    assert x.ndim == 4 and tuple(x.shape[1:]) == (1, 28, 28) and x.shape[0] == t.shape[0]
    assert tuple(x_test.shape[1:]) == (1, 28, 28)


# ------------------------------------------------------------------- layers


def test_flatten_forward_and_backward(backend, xp):
    x, _ = images(5, (2, 3, 4))
    layer = Flatten()
    out = layer.forward(x)
    assert tuple(out.shape) == (5, 24) and out.dtype == x.dtype
    np.testing.assert_array_equal(host(out), host(x).reshape(5, 24))
    dx = layer.backward(out * 2)
    assert tuple(dx.shape) == (5, 2, 3, 4)
    np.testing.assert_array_equal(host(dx), host(x) * 2)
    assert layer.backward(out, input_grad=False) is None
    flat = xp.reshape(x, (5, 24))
    assert layer.forward(flat) is flat  # rows pass unchanged
    with pytest.raises(ValueError, match=r"Flatten needs samples \(N, \.\.\.\).*\(24,\)"):
        layer.forward(flat[0, ...])
    assert Flatten.param_shapes({}) == {} and Flatten().config() == {}


def test_affine_flattens_images_as_the_book_ch7(backend):
    """Affine on (N, C, H, W) equals Affine on the flattened rows, and dx keeps the shape."""
    x, _ = images(6, (2, 2, 3))
    w, _ = weights(12, 5, 3)
    a, b = Affine(xpnn.asarray(w), xpnn.zeros(5)), Affine(xpnn.asarray(w), xpnn.zeros(5))
    xp = xpnn.get_namespace(x)
    out_nd, out_2d = host(a.forward(x)), host(b.forward(xp.reshape(x, (6, 12))))
    np.testing.assert_array_equal(out_nd, out_2d)
    dout = xpnn.asarray(np.ones((6, 5), dtype=np.float32))
    dx_nd, dx_2d = host(a.backward(dout)), host(b.backward(dout))
    assert dx_nd.shape == (6, 2, 2, 3) and a.original_x_shape == (6, 2, 2, 3)
    np.testing.assert_array_equal(dx_nd.reshape(6, 12), dx_2d)
    for ga, gb in zip(a.grads, b.grads, strict=True):
        np.testing.assert_array_equal(host(ga), host(gb))
    b.forward(xp.reshape(x, (6, 12)))
    assert b.original_x_shape is None


def test_training_skips_the_input_gradient_behind_a_flatten(backend, monkeypatch):
    net = cnn_shaped_net()
    calls = []
    real = Affine.backward

    def spy(self, dout, *, input_grad=True):
        calls.append(input_grad)
        return real(self, dout, input_grad=input_grad)

    monkeypatch.setattr(Affine, "backward", spy)
    x, t = images(10)
    net.forward(x, t)
    assert net.backward(input_grad=False) is None
    assert calls == [True, False]  # the first Affine's dx would only feed Flatten
    calls.clear()
    net.forward(x, t)
    assert tuple(net.backward().shape) == (10, 1, 4, 4)
    assert calls == [True, True]


# ------------------------------------------------------------------- models


def test_input_size_as_a_sample_shape(backend):
    net = cnn_shaped_net()
    assert net.input_size == (1, 4, 4)
    x, _ = images(7)
    assert tuple(net.predict(x).shape) == (7, 3)
    xp = xpnn.get_namespace(x)
    with pytest.raises(ValueError, match=r"expects x of shape \(N, 1, 4, 4\), got \(7, 16\)"):
        net.predict(xp.reshape(x, (7, 16)))
    with pytest.raises(ValueError, match=r"expects x of shape \(N, 1, 4, 4\), got \(1, 4, 4\)"):
        net.predict(x[0, ...])
    for bad in (0, (1, 0, 4), (), "16", (1.0, 4, 4), True):
        with pytest.raises(ValueError, match="input_size must be a positive int"):
            LayeredNet(net.layers, SoftmaxWithLoss(), input_size=bad)
    # An int stays "features of 2-D rows", with the messages it had.
    two_d = xpnn.TwoLayerNet(16, 5, 3)
    with pytest.raises(ValueError, match=r"TwoLayerNet expects x of shape \(N, 16\) or \(16,\)"):
        two_d.predict(x)


def test_a_model_of_images_saves_and_loads(backend, tmp_path):
    net = cnn_shaped_net()
    x, t = images()
    xpnn.Trainer(net, SGD(lr=0.5)).fit(x, t, **FIT)
    path = save(net, tmp_path / "cnn.npz")
    loaded = load(path)
    assert type(loaded) is LayeredNet and loaded.input_size == (1, 4, 4)
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Flatten",
        "Affine",
        "Relu",
        "Affine",
    ]
    assert loaded.config == net.config and net.config["input_size"] == [1, 4, 4]
    np.testing.assert_array_equal(host(loaded.predict(x)), host(net.predict(x)))


# ------------------------------------------------------------------ trainer


def test_images_train_exactly_as_their_flattened_rows(backend):
    """Flatten + (N, 1, 4, 4) gives the very numbers of the same model on (N, 16) rows."""
    x, t = images()
    xp = xpnn.get_namespace(x)
    x_val, t_val = images(40, seed=1)
    runs = []
    for flatten in (True, False):
        data = x if flatten else xp.reshape(x, (120, 16))
        val = x_val if flatten else xp.reshape(x_val, (40, 16))
        net = cnn_shaped_net(flatten=flatten)
        trainer = xpnn.Trainer(net, SGD(lr=0.5))
        trainer.fit(data, t, validation_data=(val, t_val), **FIT)
        runs.append((trainer, [host(p) for p in net.params]))
    (nd, nd_params), (flat, flat_params) = runs
    assert nd.loss_list == flat.loss_list and len(nd.loss_list) == 3 * 3
    assert nd.test_acc_list == flat.test_acc_list and len(nd.test_acc_list) == 3
    for a, b in zip(nd_params, flat_params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert nd.loss_list[-1] < nd.loss_list[0]  # it learns
    assert nd.test_acc_list[-1] > 0.8


def test_mnist5k_images_train_through_fit(backend):
    (x, t), (x_test, t_test) = load_mnist5k(flatten=False)
    net = cnn_shaped_net((1, 28, 28), hidden=20, classes=10)
    trainer = xpnn.Trainer(net, SGD(lr=0.1))
    fit = {**FIT, "max_epoch": 2, "batch_size": 100, "eval_interval": 20}
    trainer.fit(x, t, validation_data=(x_test, t_test), **fit)
    assert len(trainer.loss_list) == 4 and trainer.loss_list[-1] < trainer.loss_list[0]
    assert trainer.test_acc_list[-1] > 0.5  # from 0.1 by chance


def test_fit_checks_image_shapes(backend):
    x, t = images()
    xp = xpnn.get_namespace(x)
    net = cnn_shaped_net()
    trainer = xpnn.Trainer(net, SGD())
    with pytest.raises(ValueError, match=r"x has samples of shape \(16,\) .* expects samples"):
        trainer.fit(xp.reshape(x, (120, 16)), t, **FIT)
    x_val, t_val = images(10, (1, 2, 8))
    with pytest.raises(ValueError, match=r"x_test has samples of shape \(1, 2, 8\)"):
        trainer.fit(x, t, validation_data=(x_val, t_val), **FIT)
    # A model of rows (input_size an int) says to flatten images.
    rows = xpnn.Trainer(xpnn.TwoLayerNet(16, 5, 3), SGD())
    with pytest.raises(ValueError, match=r"x has shape \(120, 1, 4, 4\) .* expects \(120, 16\)"):
        rows.fit(x, t, **FIT)
    # A model without input_size takes any samples its layers take.
    free = LayeredNet(net.layers, SoftmaxWithLoss())
    xpnn.Trainer(free, SGD()).fit(x, t, **FIT)
    assert trainer.loss_list == []


def test_images_resume_exactly(backend, tmp_path):
    x, t = images()
    x_val, t_val = images(30, seed=2)
    whole = xpnn.Trainer(cnn_shaped_net(), SGD(lr=0.5))
    whole.fit(x, t, validation_data=(x_val, t_val), **FIT)
    path = tmp_path / "run.npz"
    interrupted = xpnn.Trainer(cnn_shaped_net(), Interrupt(SGD(lr=0.5), 9))
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(
            x, t, validation_data=(x_val, t_val), checkpoint=path, checkpoint_every=2, **FIT
        )
    resumed = xpnn.Trainer(cnn_shaped_net(seed=9), SGD(lr=0.5))
    resumed.fit(x, t, validation_data=(x_val, t_val), resume=path, checkpoint=path, **FIT)
    assert resumed.loss_list == whole.loss_list
    assert resumed.test_acc_list == whole.test_acc_list
    for a, b in zip(resumed.model.params, whole.model.params, strict=True):
        np.testing.assert_array_equal(host(a), host(b))
    # The fingerprint knows the images' shape: the same numbers as rows are other data.
    xp = xpnn.get_namespace(x)
    rows = xpnn.Trainer(cnn_shaped_net(flatten=False), SGD(lr=0.5))
    with pytest.raises(ModelFileError, match=r"x has shape \(120, 16\), the checkpoint's \(120, 1"):
        rows.fit(xp.reshape(x, (120, 16)), t, resume=path, **FIT)


def test_the_fingerprint_of_images_is_the_same_on_every_backend(backend):
    x, t = images(200, (3, 5, 2))
    with xpnn.use_backend("numpy"):
        reference = fingerprint(*images(200, (3, 5, 2)))
    got = fingerprint(x, t)
    assert got == reference
    assert got["x"]["shape"] == [200, 3, 5, 2] and got["rows"] == 64

"""The Trainer prints the books' lines: their format, their order, their digits.

Vol. 1's ``common/trainer.py`` prints ``"train loss:" + str(loss)`` every
iteration and, when ``current_iter % iter_per_epoch == 0`` (the first
iteration of each epoch), ``"=== epoch:" + str(epoch) + ", train acc:" +
str(train_acc) + ", test acc:" + str(test_acc) + " ==="``, its accuracies
being float64 ratios (``np.sum(y == t) / float(N)``); at the end
``"=============== Final Test Accuracy ==============="`` and ``"test acc:" +
str(test_acc)``. Vol. 2's prints ``'| epoch %d |  iter %d / %d | time %d[s] |
loss %.2f'``. Every number is a Python float on every backend: no
``tensor(...)`` on PyTorch.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnn

#: Vol. 2's line, as its common/trainer.py formats it.
VOL2_LINE = "| epoch %d |  iter %d / %d | time %d[s] | loss %.2f"


def blobs(n, seed):
    """Three noisy clusters in 3-D (labels 0, 1, 2); float32 and int64, on the backend."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centers = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    x = centers[labels] + rng.normal(scale=1.5, size=(n, 3))
    return xpnn.asarray(x.astype(np.float32)), xpnn.asarray(labels)


def host(a):
    return np.asarray(xpnn.to_numpy(a))


def books_order(iterations, iter_per_epoch):
    """The kinds of vol. 1's lines, in its order (its train_step's two prints)."""
    kinds = []
    for i in range(iterations):
        kinds.append("loss")
        if i % iter_per_epoch == 0:
            kinds.append("epoch")
    return [*kinds, "final", "final acc"]


def kind_of(line):
    if line.startswith("train loss:"):
        return "loss"
    if line.startswith("=== epoch:"):
        return "epoch"
    if line == "=============== Final Test Accuracy ===============":
        return "final"
    return "final acc" if line.startswith("test acc:") else line


def test_vol1_lines_come_in_the_books_order_and_format(backend, capsys):
    x, t = blobs(300, 0)
    xv, tv = blobs(60, 1)
    net = xpnn.LayeredTwoLayerNet(3, 5, 3, seed=0)
    trainer = xpnn.Trainer(
        net, x, t, xv, tv, epochs=2, mini_batch_size=100, optimizer_param={"lr": 0.5}
    )
    trainer.train()
    out = capsys.readouterr().out
    assert "tensor(" not in out
    lines = out.splitlines()
    # 3 iterations an epoch: loss, === epoch:1 ===, loss, loss, loss, === epoch:2 ===, ...
    assert [kind_of(line) for line in lines] == books_order(6, 3)
    assert lines[1].startswith("=== epoch:1, train acc:")
    assert lines[5].startswith("=== epoch:2, train acc:")
    for line in lines:
        if line.startswith("train loss:"):
            float(line.removeprefix("train loss:"))  # a plain number
    # The accuracies as the book's str() of its float64 ratio of the counts.
    for k, line in enumerate(line for line in lines if line.startswith("=== epoch:")):
        match = re.fullmatch(r"=== epoch:(\d+), train acc:(\S+), test acc:(\S+) ===", line)
        assert match is not None and match[1] == str(k + 1)
        for text, value, n in (
            (match[2], trainer.train_acc_list[k], 300),
            (match[3], trainer.test_acc_list[k], 60),
        ):
            correct = round(value * n)
            assert text == str(correct / n)
    predicted = host(net.predict(xv)).argmax(axis=1)
    assert lines[-1] == "test acc:" + str(int((predicted == host(tv)).sum()) / 60)


class FixedAccuracy(xpnn.LayeredTwoLayerNet):
    """A net whose accuracy is 66 of 100 or 200 of 300 correct, a float32 0-d array."""

    def accuracy(self, x, t):
        n = x.shape[0]
        correct = {100: 66, 300: 200}[n]
        return xpnn.asarray(np.asarray(correct / n, dtype=np.float32))


def test_vol1_accuracies_print_with_the_books_digits(backend, capsys):
    x, t = blobs(300, 0)
    xv, tv = blobs(100, 1)
    net = FixedAccuracy(3, 5, 3, seed=0)
    xpnn.Trainer(net, x, t, xv, tv, epochs=1, mini_batch_size=300).train()
    lines = capsys.readouterr().out.splitlines()
    # The book: 200 / 300.0 and 66 / 100.0 (float64), not the float32 0.6666667.
    assert lines[1] == "=== epoch:1, train acc:0.6666666666666666, test acc:0.66 ==="
    assert lines[-1] == "test acc:0.66"
    # evaluate_sample_num_per_epoch: the ratio of the samples measured.
    xpnn.Trainer(
        net, x, t, xv, tv, epochs=1, mini_batch_size=300, evaluate_sample_num_per_epoch=100
    ).train()
    out = capsys.readouterr().out
    assert "tensor(" not in out
    assert out.splitlines()[1] == "=== epoch:1, train acc:0.66, test acc:0.66 ==="


def test_vol2_lines_have_the_books_format(backend, capsys):
    x, t = blobs(300, 0)
    net = xpnn.LayeredTwoLayerNet(3, 5, 3, seed=0)
    trainer = xpnn.Trainer(net, xpnn.SGD(lr=1.0))
    trainer.fit(x, t, max_epoch=2, batch_size=30, eval_interval=5, progress=False)
    out = capsys.readouterr().out
    assert "tensor(" not in out
    lines = out.splitlines()
    assert len(lines) == len(trainer.loss_list) == 4
    iters = [1, 6, 1, 6]  # the book's: iters % eval_interval == 0, printed as iters + 1
    for k, line in enumerate(lines):
        seconds = int(re.search(r"time (\d+)\[s\]", line)[1])
        expected = VOL2_LINE % (k // 2 + 1, iters[k], 10, seconds, trainer.loss_list[k])
        assert line == expected


@pytest.mark.parametrize(
    "make",
    [
        lambda: xpnn.TwoLayerNet(3, 5, 3, seed=0),
        lambda: xpnn.TwoLayerNetReLU(3, 5, 3, seed=0),
        lambda: xpnn.LayeredTwoLayerNet(3, 5, 3, seed=0),
        lambda: xpnn.MultiLayerNet(3, [5, 4], 3, seed=0),
        lambda: xpnn.MultiLayerNetExtend(3, [5], 3, use_batchnorm=True, seed=0),
    ],
    ids=["TwoLayerNet", "TwoLayerNetReLU", "LayeredTwoLayerNet", "MultiLayerNet", "Extend"],
)
def test_accuracy_prints_as_the_books_float(backend, make, capsys):
    x, t = blobs(300, 0)
    net = make()
    scores = np.asarray(xpnn.to_numpy(net.predict(x)))
    correct = int(np.sum(np.argmax(scores, axis=1) == np.asarray(xpnn.to_numpy(t))))
    acc = net.accuracy(x, t)
    assert type(acc) is float and acc == correct / 300  # the book's np.sum(y == t) / float(N)
    print(acc)
    assert capsys.readouterr().out == f"{correct / 300}\n"  # no tensor(...), no float32 digits


@pytest.mark.parametrize(
    "make",
    [
        lambda: xpnn.TwoLayerNet(3, 5, 3, seed=0),
        lambda: xpnn.MultiLayerNet(3, [5, 4], 3, seed=0),
        lambda: xpnn.MultiLayerNetExtend(3, [5], 3, use_batchnorm=True, seed=0),
    ],
    ids=["TwoLayerNet", "MultiLayerNet", "Extend"],
)
def test_loss_is_the_books_host_number_and_forward_stays_on_the_device(backend, make, capsys):
    x, t = blobs(30, 0)
    net = make()
    loss = net.loss(x, t)
    on_device = net.forward(
        x, t, **({} if isinstance(net, xpnn.TwoLayerNet) else {"train_flg": False})
    )
    assert isinstance(loss, np.generic) and loss.dtype == np.dtype(str(host(on_device).dtype))
    assert xpnn.backend_of(on_device).name == backend.name  # no read
    assert loss == host(on_device)[()]
    print("SGD:" + str(loss))  # ch06/optimizer_compare_mnist.py's line
    assert capsys.readouterr().out == "SGD:" + str(host(on_device)[()]) + "\n"  # no tensor(

"""The book's ch. 6 Trainer (vol. 1, ``common/trainer.py``) on xpnn's Trainer.

``Trainer(network, x_train, t_train, x_test, t_test, epochs, mini_batch_size,
optimizer='SGD', optimizer_param={'lr': 0.01}, evaluate_sample_num_per_epoch,
verbose).train()`` runs ``Trainer.fit``; the optimizers by name.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnn
import xpnn.training.callbacks
import xpnn.training.checkpointer
import xpnn.training.trainer
from xpnn.optimizers import (
    OPTIMIZERS,
    SGD,
    AdaGrad,
    Adam,
    Momentum,
    Nesterov,
    RMSprop,
    get_optimizer,
)

FIT_MODULES = (xpnn.training.trainer, xpnn.training.callbacks, xpnn.training.checkpointer)


def count_reads(monkeypatch):
    """A list that gets an entry at each device read of the Trainer and its parts."""
    reads = []
    real = xpnn.to_numpy
    for module in FIT_MODULES:
        monkeypatch.setattr(module, "to_numpy", lambda a: reads.append(1) or real(a))
    return reads


def host(a):
    return np.asarray(xpnn.to_numpy(a))


def blobs(n, seed):
    """Three noisy clusters in 3-D (labels 0, 1, 2), shuffled; float32 and int64."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centers = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    x = centers[labels] + rng.normal(scale=0.6, size=(n, 3))
    return xpnn.asarray(x.astype(np.float32)), xpnn.asarray(labels)


def data(n_test=60):
    """300 training samples and ``n_test`` test samples, on the active backend."""
    return (*blobs(300, 0), *blobs(n_test, 1))


def net_of(seed=0, hidden=5):
    return xpnn.LayeredTwoLayerNet(3, hidden, 3, seed=seed)


def book_records(losses, iters_per_epoch, interval):
    """What vol. 2's Trainer records from per-iteration losses: at ``iters % interval
    == 0`` of each epoch, the mean since the last record (carried across epochs)."""
    records, total, count = [], 0.0, 0
    for n, loss in enumerate(losses):
        total, count = total + loss, count + 1
        if n % iters_per_epoch % interval == 0:
            records.append(total / count)
            total, count = 0.0, 0
    return records


def book_iterations(train_size, batch, epochs):
    """The book's loop: its iterations and the iterations where it measures accuracy."""
    iter_per_epoch = max(train_size / batch, 1)
    max_iter = int(epochs * iter_per_epoch)
    return max_iter, sum(1 for i in range(max_iter) if i % iter_per_epoch == 0)


def test_the_books_call_gives_the_books_curves(backend, capsys):
    x, t, xv, tv = data()
    net = net_of(hidden=10)
    trainer = xpnn.Trainer(
        net,
        x,
        t,
        xv,
        tv,
        epochs=5,
        mini_batch_size=30,
        optimizer="sgd",
        optimizer_param={"lr": 1.0},
        verbose=True,
    )
    assert trainer.network is net and isinstance(trainer.optimizer, SGD)
    assert trainer.optimizer.lr == 1.0
    assert (trainer.iter_per_epoch, trainer.max_iter, trainer.batch_size) == (10, 50, 30)

    class FirstIterations(xpnn.Callback):
        """The model's test accuracy after the first update of each epoch."""

        def __init__(self):
            self.seen = []

        def on_batch_end(self, state, loss):
            if state.iteration == 0:
                self.seen.append(float(host(net.accuracy(xv, tv))))

    first = FirstIterations()
    assert trainer.train(callbacks=[first]) is trainer
    iterations, evaluations = book_iterations(300, 30, 5)
    assert len(trainer.train_loss_list) == iterations == 50  # one loss per iteration
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == evaluations == 5
    for curve in (trainer.train_loss_list, trainer.train_acc_list, trainer.test_acc_list):
        assert all(type(v) is float for v in curve)
    # It learns: the loss falls, the accuracy rises above chance (1/3).
    assert np.mean(trainer.train_loss_list[-10:]) < np.mean(trainer.train_loss_list[:10])
    assert trainer.train_acc_list[-1] > 0.5
    final = float(host(net.accuracy(xv, tv)))
    assert trainer.final_test_acc == pytest.approx(final)
    # Measured as the book's, after the first iteration of each epoch: the last one is
    # not the trained model's (final_test_acc is).
    assert trainer.test_acc_list == pytest.approx(first.seen)
    assert trainer.test_acc_list[0] < 0.9 < final

    lines = capsys.readouterr().out.splitlines()
    losses = [line for line in lines if line.startswith("train loss:")]
    # Printed as the float32 numbers they are: the shortest text that reads back.
    printed = [np.float32(line.split(":")[1]) for line in losses]
    assert printed == [np.float32(v) for v in trainer.train_loss_list]
    assert all(len(line.split(":")[1]) <= 11 for line in losses)
    epochs = [line for line in lines if line.startswith("=== epoch:")]
    assert len(epochs) == 5
    assert re.fullmatch(r"=== epoch:1, train acc:[0-9.]+, test acc:[0-9.]+ ===", epochs[0])
    shown = re.fullmatch(r"=== epoch:5, train acc:([0-9.]+), test acc:([0-9.]+) ===", epochs[-1])
    assert [np.float32(v) for v in shown.groups()] == [
        np.float32(trainer.train_acc_list[-1]),
        np.float32(trainer.test_acc_list[-1]),
    ]
    assert lines[-2] == "=============== Final Test Accuracy ==============="
    assert np.float32(lines[-1].removeprefix("test acc:")) == np.float32(trainer.final_test_acc)
    assert len(lines) == 50 + 5 + 2  # no other lines (fit's own are off)


def test_quiet_training_prints_nothing(capsys):
    x, t, xv, tv = data()
    net = net_of()
    xpnn.Trainer(net, x, t, xv, tv, epochs=2, mini_batch_size=30, verbose=False).train()
    assert capsys.readouterr() == ("", "")


def test_train_is_fit_with_the_books_settings(backend):
    """Same seed, same settings: the book's call and fit end with the same parameters."""
    x, t, xv, tv = data()
    book_net = net_of(1, hidden=10)
    book = xpnn.Trainer(
        book_net,
        x,
        t,
        xv,
        tv,
        epochs=4,
        mini_batch_size=20,
        optimizer="Momentum",
        optimizer_param={"lr": 0.1, "momentum": 0.8},
        verbose=False,
    ).train(seed=3)
    net = net_of(1, hidden=10)
    fit = xpnn.Trainer(net, Momentum(lr=0.1, momentum=0.8)).fit(
        x,
        t,
        max_epoch=4,
        batch_size=20,
        eval_interval=15,  # a record an epoch, as train() makes them
        validation_data=(xv, tv),
        accuracy_at="first_iteration",
        seed=3,
        progress=False,
        verbose=False,
    )
    for a, b in zip(book_net.params, net.params, strict=True):
        np.testing.assert_array_equal(host(a), host(b))
    assert book.train_acc_list == fit.train_acc_list
    assert book.test_acc_list == fit.test_acc_list
    assert book.loss_list == fit.loss_list
    # The per-iteration losses give fit's records (one an epoch, at its first iteration).
    np.testing.assert_allclose(book_records(book.train_loss_list, 15, 15), fit.loss_list, rtol=1e-5)
    # ... and a different seed shuffles differently.
    other = net_of(1, hidden=10)
    xpnn.Trainer(other, x, t, xv, tv, epochs=4, mini_batch_size=20, verbose=False).train(seed=4)
    assert not np.array_equal(host(other.params[0]), host(book_net.params[0]))


def test_per_iteration_losses_are_read_once_an_epoch(backend, monkeypatch):
    reads = count_reads(monkeypatch)
    x, t, xv, tv = data()

    def reads_of(batch):
        net = net_of()
        trainer = xpnn.Trainer(net, x, t, xv, tv, epochs=3, mini_batch_size=batch, verbose=True)
        reads.clear()
        trainer.train()
        return len(reads), len(trainer.train_loss_list)

    few, many = reads_of(30), reads_of(10)
    assert (few[1], many[1]) == (30, 90)
    # The label ranges of fit's checks (train, test); per epoch the loss record, the
    # per-iteration losses, two accuracies; the final accuracy. Three times the
    # iterations, not one read more.
    assert few[0] == many[0] == 2 + 3 * 4 + 1


def test_evaluate_sample_num_per_epoch_measures_the_first_samples(backend, monkeypatch):
    x, t, xv, tv = data(n_test=120)
    net = net_of()
    seen = []
    real = net.accuracy
    monkeypatch.setattr(net, "accuracy", lambda a, b: seen.append(host(a)) or real(a, b))
    trainer = xpnn.Trainer(
        net,
        x,
        t,
        xv,
        tv,
        epochs=2,
        mini_batch_size=30,
        evaluate_sample_num_per_epoch=50,
        verbose=False,
    )
    trainer.train()
    assert [len(a) for a in seen] == [50, 50, 50, 50, 120]  # 2 epochs x (train, test), final
    np.testing.assert_array_equal(seen[0], host(x)[:50])
    np.testing.assert_array_equal(seen[1], host(xv)[:50])
    np.testing.assert_array_equal(seen[-1], host(xv))
    seen.clear()
    # A count beyond a data set takes all of it.
    xpnn.Trainer(
        net,
        x,
        t,
        xv,
        tv,
        epochs=1,
        mini_batch_size=30,
        evaluate_sample_num_per_epoch=200,
        verbose=False,
    ).train()
    assert [len(a) for a in seen] == [200, 120, 120]


def test_fewer_samples_than_a_mini_batch_train_on_all_of_them(backend):
    x, t, xv, tv = data()
    few_x, few_t = x[:40, ...], t[:40, ...]
    net = net_of()
    trainer = xpnn.Trainer(net, few_x, few_t, xv, tv, epochs=6, mini_batch_size=100, verbose=False)
    assert (trainer.batch_size, trainer.iter_per_epoch, trainer.max_iter) == (40, 1, 6)
    trainer.train()
    iterations, evaluations = book_iterations(40, 100, 6)
    assert len(trainer.train_loss_list) == iterations == 6
    assert len(trainer.test_acc_list) == evaluations == 6
    # Each iteration is a full-batch step: the same as fit with batch_size=40.
    ref = net_of()
    xpnn.Trainer(ref, SGD(lr=0.01)).fit(
        few_x, few_t, max_epoch=6, batch_size=40, progress=False, verbose=False
    )
    for a, b in zip(net.params, ref.params, strict=True):
        np.testing.assert_array_equal(host(a), host(b))


CLASSES = {
    "sgd": SGD,
    "SGD": SGD,
    "momentum": Momentum,
    "Nesterov": Nesterov,
    "AdaGrad": AdaGrad,
    "adagrad": AdaGrad,
    "RMSprop": RMSprop,
    "Adam": Adam,
    "ADAM": Adam,
}


@pytest.mark.parametrize("name", list(CLASSES))
def test_optimizers_by_name(name):
    assert get_optimizer(name, lr=0.05).lr == 0.05
    assert type(get_optimizer(name)) is CLASSES[name]
    x, t, xv, tv = data()
    net = net_of()
    trainer = xpnn.Trainer(net, x, t, xv, tv, optimizer=name, optimizer_param={"lr": 0.2})
    assert type(trainer.optimizer) is CLASSES[name] and trainer.optimizer.lr == 0.2
    # The book's default optimizer_param is {'lr': 0.01}, whatever the optimizer.
    assert xpnn.Trainer(net, x, t, xv, tv, optimizer=name).optimizer.lr == 0.01


def test_the_optimizer_table_is_the_books():
    assert sorted(OPTIMIZERS) == ["adagrad", "adam", "momentum", "nesterov", "rmsprop", "sgd"]
    assert "OPTIMIZERS" in xpnn.optimizers.__all__ and "get_optimizer" in xpnn.optimizers.__all__
    assert get_optimizer("Momentum", lr=0.1, momentum=0.5).momentum == 0.5
    with pytest.raises(ValueError, match=r"unknown optimizer 'adadelta'.*'sgd', 'momentum'"):
        get_optimizer("adadelta")
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        get_optimizer("momentum", momentum=1.5)  # the optimizer's own error
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        get_optimizer("adam", lr=-1.0)
    with pytest.raises(TypeError, match=r"SGD has no hyper-parameter 'momentum'; it takes 'lr'"):
        get_optimizer("sgd", momentum=0.9)
    with pytest.raises(TypeError, match="must be a string"):
        get_optimizer(SGD)


def test_an_optimizer_object_in_the_books_form():
    x, t, xv, tv = data()
    net = net_of()
    opt = Adam(lr=0.003)
    assert xpnn.Trainer(net, x, t, xv, tv, optimizer=opt).optimizer is opt
    with pytest.raises(TypeError, match="optimizer_param is for an optimizer given by name"):
        xpnn.Trainer(net, x, t, xv, tv, optimizer=opt, optimizer_param={"lr": 0.1})


def _bad(**changes):
    return changes


BAD = {
    "short-labels": (_bad(t_train=slice(0, 299)), ValueError, r"300 samples .* \(299,\)"),
    "test-features": (_bad(x_test="wide"), ValueError, r"x_test has 4 features"),
    "test-labels": (_bad(t_test="labels-out-of-range"), ValueError, "t_test holds labels"),
    "unknown-optimizer": (_bad(optimizer="adadelta"), ValueError, "unknown optimizer 'adadelta'"),
    "optimizer-not-a-name": (_bad(optimizer=3), TypeError, "optimizer must be a name"),
    "param-not-a-dict": (_bad(optimizer_param=[0.1]), TypeError, "optimizer_param must be a dict"),
    "param-unknown": (
        _bad(optimizer_param={"lr": 0.1, "beta": 0.9}),
        TypeError,
        "SGD has no hyper-parameter 'beta'",
    ),
    "param-bad-value": (_bad(optimizer_param={"lr": 0.0}), ValueError, "lr must be a finite"),
    "zero-epochs": (_bad(epochs=0), ValueError, "epochs must be a positive int"),
    "float-epochs": (_bad(epochs=2.5), ValueError, "epochs must be a positive int"),
    "negative-batch": (
        _bad(mini_batch_size=-1),
        ValueError,
        "mini_batch_size must be a positive int",
    ),
    "zero-samples": (
        _bad(evaluate_sample_num_per_epoch=0),
        ValueError,
        "evaluate_sample_num_per_epoch",
    ),
    "verbose-string": (_bad(verbose="yes"), TypeError, "verbose must be True or False"),
    "missing-test": (_bad(t_test=None), TypeError, "missing t_test"),
    "test-not-an-array": (_bad(x_test=[[0.0, 0.0]]), TypeError, "x_test must be an array"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_arguments_are_refused_before_anything_trains(backend, monkeypatch, case):
    changes, error, match = BAD[case]
    x, t, xv, tv = data()
    args = {"x_train": x, "t_train": t, "x_test": xv, "t_test": tv}
    for key, value in changes.items():
        if value == "wide":
            value = xpnn.asarray(np.zeros((60, 4)))
        elif value == "labels-out-of-range":
            value = xpnn.asarray(np.full(60, 7, dtype=np.int64))
        elif isinstance(value, slice):
            value = args[key][value, ...]
        args[key] = value
    net = net_of()
    monkeypatch.setattr(xpnn.Trainer, "fit", lambda *a, **k: pytest.fail("fit was called"))
    with pytest.raises(error, match=match):
        xpnn.Trainer(net, **args)


def test_data_on_another_backend_is_refused(backend):
    x, t, xv, tv = data()
    other = "numpy" if backend.name != "numpy" else "array_api_strict:device1"
    with xpnn.use_backend(other):
        ox, ot, _, _ = data()
    net = net_of()
    with pytest.raises(xpnn.BackendMismatchError):
        xpnn.Trainer(net, x, t, ox, ot)
    with pytest.raises(xpnn.BackendMismatchError):
        xpnn.Trainer(net, ox, ot, xv, tv)


def test_the_two_forms_do_not_mix():
    x, t, xv, tv = data()
    net = net_of()
    vol2 = xpnn.Trainer(net, SGD())
    assert xpnn.Trainer(net, optimizer=SGD()).optimizer.lr == 0.01
    with pytest.raises(TypeError, match=r"train\(\) is the book's ch. 6 form"):
        vol2.train()
    with pytest.raises(TypeError, match="takes no epochs"):
        xpnn.Trainer(net, SGD(), epochs=5)
    with pytest.raises(TypeError, match="takes no x_test, t_test"):
        xpnn.Trainer(net, SGD(), x_test=xv, t_test=tv)
    with pytest.raises(TypeError, match="an optimizer twice"):
        xpnn.Trainer(net, SGD(), optimizer=Adam())
    with pytest.raises(TypeError, match="needs an optimizer object"):
        xpnn.Trainer(net, "sgd")
    with pytest.raises(TypeError, match="needs an optimizer object"):
        xpnn.Trainer(net)
    book = xpnn.Trainer(net, x, t, xv, tv, epochs=1, mini_batch_size=30, verbose=False)
    for key in ("max_epoch", "batch_size", "validation_data", "verbose"):
        with pytest.raises(TypeError, match=f"train\\(\\) sets {key}"):
            book.train(**{key: None})
    with pytest.raises(TypeError, match="callbacks must be"):
        book.train(callbacks=object())
    assert book.train_loss_list == []  # nothing ran


def test_train_takes_fits_options(backend, tmp_path):
    x, t, xv, tv = data()
    seen = []

    class Count(xpnn.Callback):
        def on_epoch_end(self, state):
            seen.append(state.epoch)

    net = net_of()
    trainer = xpnn.Trainer(net, x, t, xv, tv, epochs=2, mini_batch_size=30, verbose=False)
    trainer.train(callbacks=[Count()], checkpoint=tmp_path / "run.npz", max_grad=1.0)
    assert seen == [0, 1] and (tmp_path / "run.npz").exists()
    # A second call goes on training and appends to the curves, as the book's does.
    trainer.train()
    assert len(trainer.train_loss_list) == 40 and len(trainer.test_acc_list) == 4


def test_a_nan_loss_stops_the_book_trainer_unless_told_otherwise(backend):
    x, t, xv, tv = data()
    bad = host(x).copy()
    bad[5, 0] = np.nan
    xb = xpnn.asarray(bad)
    net = net_of()
    trainer = xpnn.Trainer(net, xb, t, xv, tv, epochs=2, mini_batch_size=30, verbose=False)
    with pytest.raises(FloatingPointError, match="smaller learning rate"):
        trainer.train()
    # The guard stops the run at the first record after the NaN batch: the first
    # iteration of epoch 1 if the NaN sample is in its first batch, else of epoch 2 (a
    # record comes before its iteration's batch end, which would have kept its loss).
    first_batch = host(xpnn.default_rng(0, backend=xpnn.backend_of(x)).permutation(300))[:30]
    assert len(trainer.train_loss_list) == (0 if 5 in first_batch else 10)
    assert np.isnan(trainer.train_loss_list).any() == (5 not in first_batch)
    other = net_of()
    trainer = xpnn.Trainer(other, xb, t, xv, tv, epochs=2, mini_batch_size=30, verbose=False)
    trainer.train(on_nan="ignore")
    assert len(trainer.train_loss_list) == 20 and np.isnan(trainer.train_loss_list).any()


def test_iteration_losses_callback_alone(backend):
    x, t, _, _ = data()
    losses = xpnn.training.callbacks.IterationLosses()
    net = net_of()
    trainer = xpnn.Trainer(net, SGD(lr=1.0)).fit(
        x,
        t,
        max_epoch=2,
        batch_size=30,
        eval_interval=5,
        callbacks=[losses],
        progress=False,
        verbose=False,
    )
    assert len(losses.losses) == 20
    np.testing.assert_allclose(book_records(losses.losses, 10, 5), trainer.loss_list, rtol=1e-5)


def test_eval_samples_needs_validation_data(backend):
    x, t, _, _ = data()
    trainer = xpnn.Trainer(net_of(), SGD())
    with pytest.raises(ValueError, match="eval_samples=10 needs validation_data"):
        trainer.fit(x, t, eval_samples=10, progress=False)
    with pytest.raises(ValueError, match="evaluate_sample_num_per_epoch"):
        trainer.fit(x, t, validation_data=(x, t), eval_samples=-1, progress=False)


def test_a_book_script_runs_with_xpnn(backend, capsys):
    """The book's ch06/overfit_dropout.py, with xpnn's classes and data."""
    multilayer = pytest.importorskip("xpnn.models.multilayer")
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 2, (4, 20))
    labels = rng.integers(0, 4, 200)
    data = (centers[labels] + rng.normal(0, 1.5, (200, 20))).astype(np.float32)
    x_train, t_train = xpnn.asarray(data[:150]), xpnn.asarray(labels[:150])
    x_test, t_test = xpnn.asarray(data[150:]), xpnn.asarray(labels[150:])

    network = multilayer.MultiLayerNetExtend(
        input_size=20,
        hidden_size_list=[30, 30],
        output_size=4,
        use_dropout=True,
        dropout_ration=0.2,
        use_batchnorm=True,
        seed=0,
    )
    trainer = xpnn.Trainer(
        network,
        x_train,
        t_train,
        x_test,
        t_test,
        epochs=5,
        mini_batch_size=50,
        optimizer="adam",
        optimizer_param={"lr": 0.01},
        verbose=True,
    )
    trainer.train()
    train_acc_list, test_acc_list = trainer.train_acc_list, trainer.test_acc_list
    assert len(train_acc_list) == len(test_acc_list) == 5
    assert len(trainer.train_loss_list) == 15
    assert test_acc_list[-1] > 0.5  # four separable blobs
    assert "test acc:" in capsys.readouterr().out.splitlines()[-1]


def test_cuda_graphs_refuse_dropout_before_anything_trains(backend):
    from test_checkpoint import bn_dropout_net

    from xpnn.training.graph_step import check_graphable

    x, t, _, _ = data()
    x = x[:, :2]
    net = bn_dropout_net()
    before = {k: host(a).copy() for k, a in net.named_arrays().items()}
    with pytest.raises(ValueError, match=r"Dropout layer \(layers 3\) would replay the recorded"):
        xpnn.Trainer(net, SGD(lr=0.1)).fit(
            x, t, max_epoch=1, batch_size=30, cuda_graph=True, progress=False, verbose=False
        )
    for key, a in net.named_arrays().items():
        np.testing.assert_array_equal(host(a), before[key])
    assert net.layers[3].draws == 0
    check_graphable(bn_dropout_net(dropout=False))  # BatchNormalization alone replays fine
    check_graphable(net_of())


def test_train_in_float64_keeps_every_loss(backend):
    # NumPy gives float64 losses as np.float64 scalars (not 0-d arrays): the
    # per-iteration record must take them as well as arrays.
    x, t, xv, tv = data()
    x, xv = xpnn.asarray(x, dtype="float64"), xpnn.asarray(xv, dtype="float64")
    net = xpnn.LayeredTwoLayerNet(3, 5, 3, seed=0, dtype="float64")
    trainer = xpnn.Trainer(net, x, t, xv, tv, epochs=2, mini_batch_size=100, verbose=False)
    trainer.train()
    assert len(trainer.train_loss_list) == 2 * 3
    assert all(isinstance(v, float) and np.isfinite(v) for v in trainer.train_loss_list)
    assert trainer.train_loss_list[-1] < trainer.train_loss_list[0] + 1.0

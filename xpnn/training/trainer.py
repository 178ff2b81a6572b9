"""The Trainer of vol. 2, ch. 1: mini-batch training with an optimizer.

``Trainer(model, optimizer).fit(x, t, ...)`` shuffles the data each epoch with
the seeded xpnn generator, runs forward/backward and ``optimizer.update`` for
each mini-batch, and records the average loss every ``eval_interval``
iterations, as the book does. It accepts both kinds of model:

* layered models (vol. 2): ``forward(x, t)`` returns the loss, ``backward()``
  fills ``grads``; ``params``/``grads`` lists or dicts;
* chapter-4 models: ``gradient(x, t)`` returns a dict of gradients and
  ``loss(x, t)`` the loss.

The data are ``(N, features)`` rows or any ``(N, ...)`` samples (images
``(N, C, H, W)`` for a model that flattens or convolves them).

``fit`` is the book's loop (sample, step, record): it checks the data and
the settings first (:mod:`xpnn.training.checks`), runs each iteration through
:mod:`xpnn.training.step`, and the rest of a run is done by parts told of its
progress through events (:mod:`xpnn.training.callbacks`): the divergence and
NaN guard, the accuracies, the printed lines and the progress bar
(:mod:`xpnn.training.reporter`), and the checkpoints
(:mod:`xpnn.training.checkpointer`). ``fit(callbacks=[...])`` adds your own.

The book's chapter-6 form, ``Trainer(network, x_train, ...).train()``, is
the same class: ``train`` runs ``fit`` (:mod:`xpnn.training.book_trainer`).

Nothing is read back from the device inside an iteration: losses are summed
on the device and read once per ``eval_interval``; mini-batches are taken on
the device with ``xp.take`` from one permutation per epoch; gradient clipping
scales on the device without testing the norm on the host. Checkpoints add
one read each (are the parameters finite?) and, once per fit, 64 rows of the
data for their fingerprint.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from xpnn.backend import backend_of, get_namespace, to_numpy
from xpnn.random import default_rng
from xpnn.training.book_trainer import (
    BookForm,
    _book_optimizer,
    _no_book_arguments,
    _vol2_optimizer,
)
from xpnn.training.callbacks import (
    DIVERGENCE_FACTOR,
    DIVERGENCE_PATIENCE,
    Callback,
    CallbackList,
    Evaluator,
    FitState,
    Guard,
    Reporter,
)
from xpnn.training.checkpointer import Checkpointer
from xpnn.training.checks import (
    check_data,
    check_label_range,
    check_model,
    check_settings,
    check_validation_samples,
)
from xpnn.training.clipping import clip_grads
from xpnn.training.graph_step import GraphStep
from xpnn.training.model_state import _values
from xpnn.training.plotting import TrainingPlot
from xpnn.training.precision import MixedPrecision, mixed_precision
from xpnn.training.step import make_stepper, train_step

__all__ = ["Trainer", "clip_grads"]

_GraphStep = GraphStep  # its name before it had a module of its own


class Trainer(BookForm, TrainingPlot):
    """Train a model with an optimizer on mini-batches, recording the loss.

    Two forms, the books' two trainers:

    * vol. 2: ``Trainer(model, optimizer)``, then ``fit(x, t, max_epoch,
      batch_size, ...)``;
    * vol. 1, ch. 6: ``Trainer(network, x_train, t_train, x_test, t_test,
      epochs=20, mini_batch_size=100, optimizer='SGD', optimizer_param={'lr':
      0.01}, evaluate_sample_num_per_epoch=None, verbose=True)``, then
      :meth:`train` (which runs ``fit``: one training loop).

    Args:
        network: A layered model (``forward``/``backward``/``params``/``grads``)
            or a chapter-4 model (``gradient``/``loss``/``params``); the
            vol. 2 name is ``model``.
        x_train: vol. 2 form: the optimizer (``Trainer(model, optimizer)``).
            Book form: the training inputs ``(N, ...)``, floating point, on
            the model's backend.
        t_train: Book form: the training labels, ``(N,)`` integers or
            ``(N, classes)`` one-hot.
        x_test: Book form: the test inputs, evaluated after each epoch and
            at the end.
        t_test: Book form: the test labels.
        epochs: Book form: epochs to train (a positive int).
        mini_batch_size: Book form: samples per iteration (a positive int);
            with fewer than that many training samples, every iteration
            takes all of them (see :meth:`train`).
        optimizer: Anything with ``update(params, grads)``
            (:mod:`xpnn.optimizers`), or, in the book form, an optimizer's
            name (``'SGD'``, ``'Momentum'``, ``'Nesterov'``, ``'AdaGrad'``,
            ``'RMSprop'``, ``'Adam'``, any case: :data:`xpnn.optimizers.OPTIMIZERS`).
        optimizer_param: Book form: the named optimizer's hyper-parameters,
            a dict; None is the book's default ``{'lr': 0.01}``, whichever
            optimizer is named (Adam too).
        evaluate_sample_num_per_epoch: Book form: measure the per-epoch
            accuracies on the first this many training and test samples
            (None: all of them).
        verbose: Book form: print the book's lines (see :meth:`train`).

    Attributes:
        model: The model (``network``, the book's name, is the same object).
        optimizer: The optimizer (made from its name in the book form).
        loss_list: Average training loss of each ``eval_interval`` (floats).
        train_acc_list, test_acc_list: Accuracy after each epoch, when
            ``fit`` was given validation data (floats).
        train_loss_list: The loss of every iteration of :meth:`train`
            (floats; the book's).
        current_epoch: Epochs run so far.
        divergence_factor, divergence_patience: The divergence guard of
            ``fit`` (defaults DIVERGENCE_FACTOR = 10.0 and
            DIVERGENCE_PATIENCE = 3); set them on a trainer whose model's
            loss is not a mean cross-entropy and lives on another scale.

    Book-form attributes (as the book's): ``x_train``, ``t_train``,
    ``x_test``, ``t_test``, ``epochs``, ``batch_size`` (the samples per
    iteration ``train`` uses), ``evaluate_sample_num_per_epoch``,
    ``verbose``, ``train_size``, ``iter_per_epoch`` and ``max_iter`` (ints:
    the iterations ``train`` runs per epoch and in all).

    Raises:
        TypeError: ``network`` is not a model, the optimizer has no
            ``update``, book-form data are missing or not arrays, or a
            book-form argument is given to the vol. 2 form.
        ValueError: Book form: bad sizes, labels, settings, an unknown
            optimizer name or hyper-parameter values (the optimizer's own
            error). Everything is checked here, before anything trains.
    """

    divergence_factor: float = DIVERGENCE_FACTOR
    divergence_patience: int = DIVERGENCE_PATIENCE

    def __init__(
        self,
        network: Any,
        x_train: Any = None,
        t_train: Any = None,
        x_test: Any = None,
        t_test: Any = None,
        epochs: int = 20,
        mini_batch_size: int = 100,
        optimizer: Any = "SGD",
        optimizer_param: dict[str, Any] | None = None,
        evaluate_sample_num_per_epoch: int | None = None,
        verbose: bool = True,
    ):
        book = hasattr(x_train, "shape") and not hasattr(x_train, "update")
        if not book:  # vol. 2: Trainer(model, optimizer) or Trainer(model, optimizer=...)
            optimizer = _vol2_optimizer(x_train, optimizer)
            _no_book_arguments(
                t_train=t_train,
                x_test=x_test,
                t_test=t_test,
                epochs=epochs,
                mini_batch_size=mini_batch_size,
                optimizer_param=optimizer_param,
                evaluate_sample_num_per_epoch=evaluate_sample_num_per_epoch,
                verbose=verbose,
            )
        model = network
        layered = check_model(model)
        if book:
            optimizer = _book_optimizer(optimizer, optimizer_param)
        self.model = model
        self.optimizer = optimizer
        self._layered = layered
        self.loss_list: list[float] = []
        self.train_acc_list: list[float] = []
        self.test_acc_list: list[float] = []
        self.train_loss_list: list[float] = []
        self.eval_interval: int | None = None
        self.current_epoch = 0
        self._book = False
        if book:
            self._book_settings(
                x_train,
                t_train,
                x_test,
                t_test,
                epochs,
                mini_batch_size,
                evaluate_sample_num_per_epoch,
                verbose,
            )

    def fit(
        self,
        x: Any,
        t: Any,
        max_epoch: int = 10,
        batch_size: int = 32,
        max_grad: float | None = None,
        eval_interval: int = 20,
        *,
        validation_data: tuple[Any, Any] | None = None,
        eval_samples: int | None = None,
        accuracy_at: str = "epoch_end",
        seed: int | str | None = "continue",
        progress: bool = True,
        verbose: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        resume: str | os.PathLike[str] | None = None,
        on_nan: str = "raise",
        cuda_graph: bool = False,
        callbacks: Iterable[Callback] = (),
        precision: str | MixedPrecision | None = None,
    ) -> Trainer:
        """Train for ``max_epoch`` epochs of ``len(x) // batch_size`` iterations.

        Args:
            x: Inputs ``(N, features)``, or ``(N, ...)`` samples of any shape
                (images ``(N, C, H, W)``) for a model that takes them;
                floating point, on the model's backend.
            t: Labels: one-hot ``(N, classes)`` or integers ``(N,)``.
            max_epoch: Epochs (with ``resume``: the epochs of the whole run,
                so the resumed call takes the interrupted call's arguments).
            batch_size: Samples per iteration (the last partial batch of an
                epoch is dropped, as in the book).
            max_grad: Clip the global gradient norm to this, if given.
            eval_interval: Record (and print) the average loss at the
                first iteration of each epoch and every this many iterations
                after it (iterations ``0, k, 2k...`` of an epoch, as the
                book's ``iters % eval_interval == 0``): the average of the
                losses since the last record, carried across epochs, so the
                first record is the first batch's loss and the printed line
                reads ``iter 1 / 10``. The only point where the loss is
                read from the device.
            validation_data: ``(x_test, t_test)``; when given, train and test
                accuracy are recorded after each epoch (the chapter-4 curves).
            eval_samples: Measure those accuracies on the first this many
                samples of ``x`` and of the validation data only (the
                book's ``evaluate_sample_num_per_epoch``); None: all.
            accuracy_at: When those accuracies are measured: ``"epoch_end"``
                (after each epoch: the last entry is the trained model's) or
                ``"first_iteration"`` (after the first iteration of each
                epoch, as the book's ch. 6 ``Trainer``, which ``train()``
                uses).
            seed: Seed of the shuffling (the same on every backend), or
                ``"continue"`` (the default): 0 at this trainer's first fit,
                and each later fit goes on with the same generator, so a
                loop of ``fit(max_epoch=1)`` (as the book's ch. 7-8 scripts
                write) shuffles each epoch anew, as the book's ``np.random``
                does; an int starts over from that seed.
            progress: Show a progress bar (tqdm) over the iterations, in a
                terminal or a notebook.
            verbose: Print the book's ``| epoch 1 | iter 1 / 10 | time 0[s] |
                loss 1.10`` lines.
            checkpoint: Write a checkpoint here (atomically: a crash or Ctrl-C
                never leaves a broken file) after every epoch, and every
                ``checkpoint_every`` iterations of an epoch if given. It
                holds the parameters, the model's state arrays (the running
                statistics of BatchNormalization layers), each Dropout
                layer's seed and count of masks drawn, the optimizer state,
                the position, the curves, the run settings (``max_epoch``,
                ``batch_size``, ``max_grad``, ``eval_interval``) and a
                fingerprint of ``x`` and ``t`` (shapes, dtypes and a SHA-256
                of 64 evenly spaced rows, read once per fit). A checkpoint
                whose parameters, state arrays, optimizer state or running
                loss are NaN or infinite is never written (one on-device
                check per checkpoint): see ``on_nan``.
            checkpoint_every: See ``checkpoint``.
            resume: Continue the run saved in this checkpoint: parameters,
                state arrays, Dropout seeds and draws (the same masks as the
                uninterrupted run), optimizer state, shuffling state,
                position and curves. The
                resumed run ends exactly as an uninterrupted one would. The
                whole file is checked first; it is refused (ModelFileError,
                nothing changed) when it does not fit this model (class,
                sizes, dtype), optimizer (class, hyper-parameters), these
                settings or these data.
            on_nan: The divergence and NaN guard. It acts when a recorded
                loss is NaN or infinite, when ``divergence_patience`` (3)
                records in a row exceed ``divergence_factor`` (10) times the
                untrained loss max(ln C, first batch loss, 1) for C classes,
                and when a checkpoint would hold NaN or infinite values:
                ``"raise"`` (FloatingPointError, the default), ``"warn"``
                (RuntimeWarning once, training goes on) or ``"ignore"``.
                A non-finite checkpoint is never written in any mode: the
                last good file stays.
            cuda_graph: On CuPy, record an iteration (taking the batch,
                forward, backward, clipping, update) once as a CUDA graph and
                replay it: one launch per iteration instead of dozens, which
                is what bounds a GPU at these sizes. The first iteration runs
                eagerly; the graph is recorded again when a hyper-parameter
                (``optimizer.lr``...) changes. The results are those of eager
                training. Needs data on CuPy, an optimizer whose update
                does not depend on the update count (not Adam) and a model
                without Dropout layers (a replay would repeat one mask).
            callbacks: Your own :class:`xpnn.training.callbacks.Callback` instances,
                told of the run's events after fit's own parts (the guard,
                the accuracies, the printed lines, the checkpoints).
            precision: None: compute in the model's dtype. ``"mixed16"``:
                mixed-precision training (:mod:`xpnn.training.precision`): the
                model's float32 weights are the master copy, each step runs
                forward and backward in float16 with dynamic loss scaling
                (a step with non-finite gradients is skipped, on the
                device). ``"mixed_bf16"``: the same in bfloat16 (PyTorch),
                without scaling. A :class:`xpnn.MixedPrecision` for other
                settings. Needs a model made of layers and an optimizer of
                :mod:`xpnn.optimizers`; checkpoints keep the scaler's state.
                The model's layer state follows the twin that computes
                (BatchNormalization's running statistics, Dropout's draws).

        Returns:
            The trainer itself (its lists hold the curves).

        Raises:
            ValueError: Bad sizes, labels or arguments (the message names
                the shapes and dtypes).
            FloatingPointError: The loss became NaN or infinite, training
                diverged, or a checkpoint would not be finite (the message
                names the last good checkpoint).
            xpnn.io.ModelFileError: ``resume`` does not fit this run.
        """
        # Everything is checked before anything changes.
        state = self._new_state(x, t, max_epoch, batch_size, max_grad, eval_interval, seed)
        state.validation_data = self._check_validation(state, validation_data)
        state.precision = self._check_precision(precision, cuda_graph)  # builds the twin
        if validation_data is None:
            Evaluator(None, None, eval_samples, accuracy_at)  # checks both settings
            evaluator = None
        else:
            evaluator = Evaluator(*validation_data, eval_samples, accuracy_at)
        if eval_samples is not None and validation_data is None:
            raise ValueError(
                f"eval_samples={eval_samples!r} needs validation_data: the accuracies are "
                "measured only with it"
            )
        guard = Guard(on_nan)
        keeper = Checkpointer(checkpoint, checkpoint_every, resume=resume, guard=guard)
        saving = checkpoint is not None or resume is not None
        parts = [guard, evaluator, Reporter(verbose, progress), keeper if saving else None]
        events = CallbackList(parts, callbacks)
        step = make_stepper(self, state, cuda_graph, watch=bool(events.user))
        if saving:
            keeper.start(state)  # fingerprints the data; a refused resume changes nothing
        return self._run(state, events, step)

    # ------------------------------------------------- the loop's named parts

    def _run(self, state: FitState, events: CallbackList, step: Any) -> Trainer:
        """The book's loop over epochs and iterations: sample and step, record, tell the parts.

        ``step(order, i)`` trains on the ``i``-th batch of the epoch's
        ``order`` (what :meth:`_shuffle` returned) and gives back its loss.
        """
        self.eval_interval = state.eval_interval
        events.on_fit_start(state)
        try:
            for epoch in range(state.epoch, state.max_epoch):
                state.epoch, order = epoch, self._shuffle(state)
                for i in range(state.start_iter, state.max_iters):
                    state.iteration = i
                    loss = step(order, i)  # sample and step, on the device
                    state.add_loss(loss)
                    if i % state.eval_interval == 0:  # the book's: iterations 0, k, 2k...
                        self._record(state, events)
                    events.on_batch_end(state, loss)
                state.iteration, state.start_iter = state.max_iters, 0
                self.current_epoch += 1
                events.on_epoch_end(state)
        except BaseException as error:
            state.error = error
            raise
        finally:
            events.on_fit_end(state)
        return self

    def _shuffle(self, state: FitState) -> Any:
        """This epoch's order of the samples (one host-to-device copy an epoch)."""
        state.epoch_rng = state.rng.get_state()  # replays this epoch's order on resume
        return state.rng.permutation(state.data_size)

    def _iteration(self, x: Any, t: Any, max_grad: float | None) -> Any:
        """Step, clip and update on one batch; returns the loss (a 0-d array).

        What an eager iteration runs and a CUDA graph records
        (:func:`xpnn.training.step.train_step`).
        """
        return train_step(self, x, t, max_grad)

    def _record(self, state: FitState, events: CallbackList) -> None:
        """Read the average loss of the interval (the one read) and record it."""
        if isinstance(state.initial_loss, float):
            avg = float(to_numpy(state.total_loss)) / state.loss_count
        else:  # the first record reads the untrained loss too, in one read
            both = to_numpy(state.xp.stack([state.total_loss, state.initial_loss]))
            avg, state.initial_loss = float(both[0]) / state.loss_count, float(both[1])
        events.on_record(state, avg)  # the guard (which may stop the run), the printed line
        self.loss_list.append(avg)
        state.total_loss, state.loss_count = 0, 0

    # ------------------------------------------------------------ the checks

    def _check_precision(self, precision: Any, cuda_graph: bool) -> MixedPrecision | None:
        """``precision`` bound to this model and optimizer (None: the model's dtype)."""
        mixed = mixed_precision(precision)
        if mixed is None:
            return None
        if cuda_graph:
            raise ValueError(
                "cuda_graph=True does not record mixed-precision steps yet: pass one of "
                "cuda_graph=True and precision=..."
            )
        mixed.bind(self.model, self.optimizer)
        return mixed

    def _new_state(
        self,
        x: Any,
        t: Any,
        max_epoch: int,
        batch_size: int,
        max_grad: float | None,
        eval_interval: int,
        seed: int | str | None,
    ) -> FitState:
        """Check the data and the settings; the state of a run at its start."""
        xp = get_namespace(x, t, *_values(self.model.params)[:1])
        data_size, classes = self._check_data(xp, x, t, "x", "t")
        check_settings(data_size, max_epoch, batch_size, eval_interval, max_grad)
        max_iters = data_size // batch_size
        return FitState(
            trainer=self,
            x=x,
            t=t,
            xp=xp,
            classes=classes,
            data_size=data_size,
            batch_size=batch_size,
            max_epoch=max_epoch,
            max_grad=max_grad,
            # An interval longer than an epoch records once an epoch (at its
            # first iteration, as the book's), which this says for the plot.
            eval_interval=min(eval_interval, max_iters),
            max_iters=max_iters,
            # The shuffling follows the data: permutations go to x's backend and device.
            rng=self._shuffling(seed, x),
        )

    def _shuffling(self, seed: Any, x: Any) -> Any:
        """This fit's shuffling generator: ``"continue"`` keeps the last fit's (same backend)."""
        backend = backend_of(x)
        if seed == "continue" and getattr(self, "_rng", (None,))[0] == backend.spec:
            return self._rng[1]
        if isinstance(seed, str) and seed != "continue":
            raise ValueError(f"seed must be an int, None or 'continue', got {seed!r}")
        rng = default_rng(0 if seed == "continue" else seed, backend=backend)
        self._rng = (backend.spec, rng)
        return rng

    def _check_validation(self, state: FitState, data: Any) -> tuple[Any, Any] | None:
        if data is None:
            return None
        x_val, t_val = data
        get_namespace(state.x, x_val, t_val)  # same backend and device as the training data
        self._check_data(state.xp, x_val, t_val, "x_test", "t_test")
        check_validation_samples(state.x, x_val)
        return x_val, t_val

    def _check_data(self, xp: Any, x: Any, t: Any, xname: str, tname: str) -> tuple[int, int]:
        """Check a data set (:func:`xpnn.training.checks.check_data`) and its label range.

        Reading the label range is one small host read, once per fit; the
        other checks look only at shapes and dtypes, so an empty or
        misshapen data set is refused before any reduction runs.

        Returns:
            ``(samples, classes)``: the classes are the model's
            ``output_size``, else the one-hot width or the largest label + 1.
        """
        n, classes = check_data(self.model, xp, x, t, xname, tname)
        if t.ndim == 1:
            low, high = (int(v) for v in to_numpy(xp.stack([xp.min(t), xp.max(t)])))
            classes = check_label_range(self.model, tname, low, high, classes)
        return n, classes

"""``xpnn train``: train the book's two-layer net or conv nets and write the results.

The data set's and the model's defaults (the book's settings), loading the
data, building the model and optimizer, the run itself, and writing the model
and figure at the end. The checks made before any work live in :mod:`xpnn.cli.paths` and
:mod:`xpnn.cli.memory`.

``--checkpoint FILE`` hands ``Trainer.fit`` its ``checkpoint=`` (and
``--checkpoint-every`` its ``checkpoint_every=``); ``--resume`` adds
``resume=FILE``, so the same command with ``--resume`` added continues an
interrupted run from FILE and ends with the parameters of an uninterrupted run,
bit for bit (the model is built from ``--seed`` as before, then ``fit``
checks the whole file against the model, the optimizer, the settings and the
data before it changes anything).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from xpnn.backend import threads
from xpnn.cli import memory
from xpnn.cli.memory import (
    CONV_MODELS,
    ITEM_BYTES,
    OPTIMIZER_STATE,
    check_memory,
    estimate_conv_memory,
    estimate_memory,
)
from xpnn.cli.paths import SAMPLE_HINT, check_train_paths, make_output_folders, train_outputs
from xpnn.cli.train_rnnlm import RNN_MODELS, check_rnn_options, run_rnnlm
from xpnn.cli.train_seq2seq import (
    SEQ2SEQ_MODELS,
    SEQUENCE_DATASETS,
    check_seq2seq_options,
    run_seq2seq,
)
from xpnn.cli.train_words import WORD_DATASETS, WORD_MODELS, check_word_options, run_words

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")

#: The book's settings: vol. 2 ch. 1 for the spiral, vol. 1 ch. 4 for MNIST
#: (and for its 5,000-digit sample shipped with xpnn).
DATASET_DEFAULTS = {
    "spiral": {"hidden": 10, "lr": 1.0, "batch_size": 30, "epochs": 300, "eval_interval": 10},
    "mnist5k": {"hidden": 50, "lr": 0.1, "batch_size": 100, "iters": 10_000, "eval_interval": 100},
    "mnist": {"hidden": 50, "lr": 0.1, "batch_size": 100, "iters": 10_000, "eval_interval": 100},
}

#: ``--model``: the book's two-layer net (``LayeredTwoLayerNet`` on the spiral,
#: ``TwoLayerNet`` on MNIST), SimpleConvNet (vol. 1 ch. 7), DeepConvNet (ch. 8),
#: vol. 2 ch. 4's CBOW and SkipGram (:mod:`xpnn.cli.train_words`) and ch. 6's
#: Rnnlm and BetterRnnlm (:mod:`xpnn.cli.train_rnnlm`), ch. 7's Seq2seq and
#: PeekySeq2seq (:mod:`xpnn.cli.train_seq2seq`).
MODEL_CHOICES = ("twolayernet", *CONV_MODELS, *WORD_MODELS, *RNN_MODELS, *SEQ2SEQ_MODELS)

#: ``--dataset``: the classifiers' data sets, the word models' corpora, the
#: seq2seq models' sequence data sets.
DATASET_CHOICES = (*DATASET_DEFAULTS, *WORD_DATASETS, *SEQUENCE_DATASETS)

#: The book's settings per model, over the data set's: ch. 7's
#: ``train_convnet.py`` and ch. 8's ``train_deepnet.py`` (Adam lr 0.001, batch
#: 100, 20 epochs, the accuracies of each epoch on 1,000 samples: the book's
#: ``evaluate_sample_num_per_epoch``) and the nets' default hidden sizes.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "twolayernet": {"optimizer": "sgd"},
    "simpleconvnet": {
        "hidden": 100,
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 100,
        "epochs": 20,
        "eval_samples": 1000,
    },
    "deepconvnet": {
        "hidden": 50,
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 100,
        "epochs": 20,
        "eval_samples": 1000,
    },
}

#: A sample's shape ``(C, H, W)`` for the conv nets, per data set (a
#: ``--data-dir`` may hold others: read from the data then).
DATASET_IMAGES = {"mnist5k": (1, 28, 28), "mnist": (1, 28, 28)}

#: ``(train samples, test samples, input size, classes)`` of each data set
#: (for ``mnist``, the official files; a ``--data-dir`` may hold others).
DATASET_SHAPES = {
    "spiral": (300, 0, 2, 3),
    "mnist5k": (4000, 1000, 784, 10),
    "mnist": (60_000, 10_000, 784, 10),
}


def _make_optimizer(name: str, lr: float) -> Any:
    import xpnn.optimizers as opt

    classes = {
        "sgd": opt.SGD,
        "momentum": opt.Momentum,
        "nesterov": opt.Nesterov,
        "adagrad": opt.AdaGrad,
        "rmsprop": opt.RMSprop,
        "adam": opt.Adam,
    }
    return classes[name](lr=lr)


def _load_data(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, int]:
    """(x_train, t_train, x_test, t_test, classes) on the active backend.

    MNIST images are rows ``(N, 784)`` for the two-layer net and
    ``(N, 1, 28, 28)`` for the conv nets.
    """
    flatten = args.model not in CONV_MODELS
    if args.dataset == "spiral":
        from xpnn.datasets import load_spiral

        x, t = load_spiral(dtype=args.dtype)
        return x, t, None, None, 3
    if args.dataset == "mnist5k":
        from xpnn.datasets import load_mnist5k

        (x, t), (x_test, t_test) = load_mnist5k(flatten=flatten, dtype=args.dtype)
        return x, t, x_test, t_test, 10
    from xpnn.datasets import DownloadError, load_mnist
    from xpnn.datasets.mnist import mnist_data_dir

    directory = mnist_data_dir(args.data_dir)
    try:
        (x, t), (x_test, t_test) = load_mnist(
            data_dir=directory,
            flatten=flatten,
            download=not args.no_download,
            dtype=args.dtype,
            progress=not args.quiet,
        )
    except DownloadError as exc:  # the hint, in the command line's words
        exc.hint = (
            f"Put the four files in {directory} by hand, give --data-dir with a folder that "
            f"holds them, list mirrors you can reach in XPNN_MNIST_MIRRORS, {SAMPLE_HINT}."
        )
        raise
    return x, t, x_test, t_test, 10


def _check_sizes(args: argparse.Namespace, n_train: int) -> None:
    """Refuse a --train-size or --batch-size larger than the ``n_train`` training samples."""
    if args.train_size is not None and args.train_size > n_train:
        raise ValueError(
            f"--train-size {args.train_size} is larger than the data set ({n_train} training "
            "samples)"
        )
    n = n_train if args.train_size is None else args.train_size
    if args.batch_size > n:
        what = f"--train-size {n}" if args.train_size is not None else f"the data set ({n})"
        raise ValueError(f"--batch-size {args.batch_size} is larger than {what}")


def _write_results(args: argparse.Namespace, model: Any, trainer: Any) -> int:
    """Write the model, then the figure; a failure is one line and exit 2, the rest kept."""
    saved, failures = None, []
    if args.save:
        from xpnn.io import save

        try:
            saved = save(model, args.save, dtype=args.save_dtype)
            print(f"parameters: {saved}" + (f" ({args.save_dtype})" if args.save_dtype else ""))
        except (OSError, ValueError) as exc:
            failures.append(f"--save {args.save}: {exc}")
    if args.plot:
        try:
            print(f"figure: {trainer.plot(path=args.plot)}")
        except (OSError, ValueError) as exc:
            failures.append(f"--plot {args.plot}: {exc}")
    if not failures:
        return 0
    kept = (
        f"the parameters were saved to {saved}"
        if saved
        else "the trained parameters were not saved"
        if args.save
        else "nothing else was to be written"
    )
    print(
        f"xpnn train: error: training finished, but writing failed: {'; '.join(failures)}; {kept}",
        file=sys.stderr,
    )
    return 2


def _check_precision(args: argparse.Namespace, backend: Any) -> None:
    """Refuse --dtype and --precision choices the backend cannot run, before any data."""
    from xpnn.backend import resolve_dtype
    from xpnn.training.precision import PRECISIONS

    wanted = [("--dtype", args.dtype)]
    if args.precision is not None:
        if args.dtype != "float32":
            raise ValueError(
                f"--precision {args.precision} trains float32 master weights: drop --dtype "
                f"{args.dtype} (or drop --precision)"
            )
        if args.cuda_graph:
            raise ValueError(f"--cuda-graph does not record --precision {args.precision} steps yet")
        wanted.append((f"--precision {args.precision}:", PRECISIONS[args.precision]))
    for option, dtype in wanted:
        try:
            resolve_dtype(backend.xp, dtype)
        except ValueError as exc:
            raise ValueError(f"{option} {dtype} on {backend.spec}: {exc}") from None


def _apply_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """Fill the options not given with the model's, else the data set's, defaults.

    Returns:
        The defaults that applied (``"iters"``: MNIST's length in iterations
        for the two-layer net, when neither --epochs nor --iters was given).
    """
    model = MODEL_DEFAULTS[args.model]
    settings = {**DATASET_DEFAULTS[args.dataset], **model}
    if "epochs" in model:  # the conv nets count epochs, as the book's ch. 7-8 code
        settings.pop("iters", None)
    if args.iters is not None:  # --iters sets the length: no default epochs
        settings.pop("epochs", None)
    for key, value in settings.items():
        if key != "iters" and getattr(args, key, None) is None:
            setattr(args, key, value)
    return settings


def _check_options(args: argparse.Namespace) -> None:
    """Refuse option combinations that cannot run, before anything is loaded."""
    if args.dataset in WORD_DATASETS:
        raise ValueError(
            f"--dataset {args.dataset} is a text corpus for --model cbow, skipgram, rnnlm or "
            "betterrnnlm, not "
            f"--model {args.model}"
        )
    if args.dataset in SEQUENCE_DATASETS:
        raise ValueError(
            f"--dataset {args.dataset} is a sequence data set for --model "
            f"{' or '.join(SEQ2SEQ_MODELS)}, not --model {args.model}"
        )
    if args.window is not None:
        raise ValueError(f"--window is the context of --model cbow or skipgram, not {args.model}")
    if args.time_size is not None:
        raise ValueError(f"--time-size is the BPTT length of --model rnnlm, not {args.model}")
    if args.model in CONV_MODELS and args.dataset not in DATASET_IMAGES:
        raise ValueError(
            f"--model {args.model} takes images (N, 1, 28, 28), but --dataset {args.dataset} "
            "holds 2-D points: use --dataset mnist5k or mnist (or --model twolayernet)"
        )
    if args.eval_samples is not None and DATASET_SHAPES[args.dataset][1] == 0:
        raise ValueError(
            f"--eval-samples counts test samples, and --dataset {args.dataset} has none: "
            "drop --eval-samples"
        )
    if args.save_dtype and not args.save:
        raise ValueError("--save-dtype stores the parameters --save writes: add --save FILE")
    if args.checkpoint is None:
        if args.resume:
            raise ValueError(
                "--resume continues the run saved in a checkpoint: add --checkpoint FILE (the "
                "interrupted run's)"
            )
        if args.checkpoint_every is not None:
            raise ValueError(
                f"--checkpoint-every {args.checkpoint_every} sets how often --checkpoint is "
                "written: add --checkpoint FILE"
            )
    if args.cuda_graph:
        from xpnn.optimizers import OPTIMIZERS as CLASSES

        if not getattr(CLASSES[args.optimizer], "graph_safe", False):
            raise ValueError(
                f"--cuda-graph cannot replay --optimizer {args.optimizer} updates (they depend "
                "on the update count): choose --optimizer sgd, momentum, nesterov, adagrad or "
                "rmsprop, or drop --cuda-graph"
            )
        if args.model == "deepconvnet":
            raise ValueError(
                "--cuda-graph cannot train --model deepconvnet: a recorded graph would replay "
                "its Dropout masks instead of drawing new ones; drop --cuda-graph"
            )


def _build_model(args: argparse.Namespace, x: Any, classes: int) -> Any:
    """The model of --model for inputs like ``x`` (the book's initial weights, --seed)."""
    import xpnn

    if args.model in CONV_MODELS:
        import xpnn.models.convnet

        cls = getattr(xpnn.models.convnet, CONV_MODELS[args.model])
        return cls(
            input_dim=tuple(x.shape[1:]),
            hidden_size=args.hidden,
            output_size=classes,
            seed=args.seed,
            dtype=args.dtype,
        )
    if args.dataset == "spiral":
        return xpnn.LayeredTwoLayerNet(2, args.hidden, classes, seed=args.seed, dtype=args.dtype)
    return xpnn.TwoLayerNet(x.shape[1], args.hidden, classes, seed=args.seed, dtype=args.dtype)


def _run_text(args: argparse.Namespace) -> int:
    """``--model cbow|skipgram|rnnlm|betterrnnlm|seq2seq|peeky``: checks first, then the run.

    :func:`xpnn.cli.train_words.run_words`, :func:`xpnn.cli.train_rnnlm.run_rnnlm`
    or :func:`xpnn.cli.train_seq2seq.run_seq2seq`.
    """
    import xpnn

    words, seq2seq = args.model in WORD_MODELS, args.model in SEQ2SEQ_MODELS
    if seq2seq:
        check_seq2seq_options(args)
    else:
        (check_word_options if words else check_rnn_options)(args)
    if args.time_size is not None and words:
        raise ValueError(f"--time-size is the BPTT length of --model rnnlm, not {args.model}")
    check_train_paths(args)
    if args.backend:
        xpnn.set_backend(args.backend, dtype=args.dtype)
    backend = xpnn.get_backend()
    threads.refresh()
    _check_precision(args, backend)
    runner = run_seq2seq if seq2seq else run_words if words else run_rnnlm
    return runner(args, backend, _write_results)


def run(args: argparse.Namespace) -> int:
    """Run ``xpnn train`` with the parsed ``args``; returns the exit status."""
    import xpnn

    if getattr(args, "reverse", False) and args.model not in SEQ2SEQ_MODELS:
        raise ValueError(
            "--reverse reverses the questions of --model "
            f"{' or '.join(k for k, m in SEQ2SEQ_MODELS.items() if not m.always_reversed)}, "
            f"not --model {args.model}; drop it"
        )
    if args.model in WORD_MODELS or args.model in RNN_MODELS or args.model in SEQ2SEQ_MODELS:
        return _run_text(args)
    if args.dataset is None:
        args.dataset = "spiral"
    if args.dataset in WORD_DATASETS or args.dataset in SEQUENCE_DATASETS:
        _check_options(args)
    defaults = _apply_defaults(args)
    _check_options(args)
    check_train_paths(args)  # before any backend, download or training
    if args.backend:
        xpnn.set_backend(args.backend, dtype=args.dtype)
    backend = xpnn.get_backend()
    threads.refresh()  # the --threads limit reaches a library the backend just loaded (PyTorch)
    if args.cuda_graph and backend.name != "cupy":  # before loading (maybe downloading) data
        raise ValueError(f"--cuda-graph needs --backend cupy, not {backend.spec}")
    _check_precision(args, backend)
    n_train, n_test, input_size, classes = DATASET_SHAPES[args.dataset]
    image = DATASET_IMAGES.get(args.dataset)
    if args.data_dir is not None:  # unknown until read: count the model and a batch only
        n_train = n_test = 0
    else:
        _check_sizes(args, n_train)
    available, where = memory.memory_available(backend)  # via the module: tests replace it

    def check(n: int, n_test: int, image: Any) -> int:
        """Refuse a run that does not fit; returns the model's parameter count."""
        common = {
            "optimizer": args.optimizer,
            "dtype": args.dtype,
            "n_train": n,
            "n_test": n_test,
            "precision": args.precision,
        }
        if args.model in CONV_MODELS:
            parts = estimate_conv_memory(
                args.model, image, args.hidden, classes, args.batch_size, **common
            )
            fixes = ["a smaller --batch-size", "--hidden"]
        else:
            parts = estimate_memory(input_size, args.hidden, classes, args.batch_size, **common)
            fixes = ["a smaller --hidden", "--batch-size"]
        if args.dtype != "float32":
            fixes.append("--dtype float32")
        if OPTIMIZER_STATE[args.optimizer]:
            fixes.append("--optimizer sgd")
        check_memory(parts, available, where, f"{', '.join(fixes[:-1])} or {fixes[-1]}")
        return parts["parameters"] // ITEM_BYTES[args.dtype]

    params = check(n_train, n_test, image)  # before loading (maybe downloading) data
    most = getattr(xpnn.io, "MAX_ELEMENTS", None)  # what xpnn.io.save writes and load reads
    if args.save and most is not None and params > most:
        raise ValueError(
            f"--save: a model of {params} parameters is more than xpnn.io saves ({most}); "
            "choose a smaller --hidden"
        )
    x, t, x_test, t_test, classes = _load_data(args)
    if args.data_dir is not None:
        check(x.shape[0], 0 if x_test is None else x_test.shape[0], tuple(x.shape[1:]))
        _check_sizes(args, x.shape[0])
    if args.train_size is not None:  # the first --train-size samples
        x, t = x[: args.train_size, ...], t[: args.train_size, ...]
    n = x.shape[0]
    iters_per_epoch = n // args.batch_size
    if args.epochs is None:  # MNIST is counted in iterations, as in ch. 4
        iters = args.iters or defaults.get("iters", iters_per_epoch)
        args.epochs = max(1, math.ceil(iters / iters_per_epoch))
    model = _build_model(args, x, classes)
    optimizer = _make_optimizer(args.optimizer, args.lr)
    say = (lambda *a, **k: None) if args.quiet else print
    say(
        f"xpnn train: {args.dataset} ({n} samples) on {backend.spec}, {args.dtype}"
        + (f" ({args.precision})" if args.precision else "")
        + ", "
        f"{type(model).__name__}(hidden={args.hidden}), {args.optimizer} lr={args.lr}, "
        f"batch {args.batch_size}, {args.epochs} epochs x {iters_per_epoch} iterations"
        + (f", gradients clipped to norm {args.max_grad}" if args.max_grad else "")
        + (
            f", accuracies of each epoch on the first {args.eval_samples} samples"
            if args.eval_samples is not None and x_test is not None
            else ""
        )
    )
    if args.checkpoint is not None:
        every = args.checkpoint_every
        say(
            ("resuming the run saved in " if args.resume else "checkpoint: ")
            + f"{args.checkpoint}, written at the end of each epoch"
            + (f" and every {every} iterations of an epoch" if every else "")
        )
    # After the command's checks: a refused run creates no folder.
    make_output_folders("train", train_outputs(args))
    trainer = xpnn.Trainer(model, optimizer)
    start = time.perf_counter()
    validation = (x_test, t_test) if x_test is not None else None
    trainer.fit(
        x,
        t,
        max_epoch=args.epochs,
        batch_size=args.batch_size,
        max_grad=args.max_grad,
        eval_interval=args.eval_interval,
        validation_data=validation,
        eval_samples=args.eval_samples if validation is not None else None,
        seed=args.seed,
        progress=not args.quiet,
        verbose=not args.quiet,
        cuda_graph=args.cuda_graph,
        precision=args.precision,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.checkpoint if args.resume else None,
    )
    wall = time.perf_counter() - start
    train_acc = float(xpnn.to_numpy(model.accuracy(x, t)))
    summary = f"final loss {trainer.loss_list[-1]:.4f} | train accuracy {train_acc:.4f}"
    if validation is not None:
        test_acc = trainer.test_acc_list[-1]
        if args.eval_samples is not None and args.eval_samples < x_test.shape[0]:
            test_acc = float(xpnn.to_numpy(model.accuracy(x_test, t_test)))  # all of them
        summary += f" | test accuracy {test_acc:.4f}"
    print(f"{summary} | {wall:.1f} s")
    return _write_results(args, model, trainer)

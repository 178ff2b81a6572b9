"""``xpnn train --model seq2seq|peeky [--reverse]|attention``: vol. 2 ch. 7-8 as the book.

What the book's ``ch07/train_seq2seq.py`` does, as one command: the addition
data set (:func:`xpnn.datasets.sequence.load_data`, generated in the book's
format, seed 1984, 10 % test), questions reversed with ``--reverse`` (the
book's ``is_reverse``), :class:`xpnn.models.Seq2seq` or
:class:`xpnn.models.PeekySeq2seq` (wordvec 16, hidden 128) trained by
:class:`xpnn.Trainer` with the book's settings (Adam lr 0.001, batch 128, 25
epochs, gradients clipped to norm 5.0); after each epoch every test question
is answered (:func:`xpnn.models.seq2seq.eval_seq2seq_batch`, decoded in
batches) and ``val acc`` printed as the book prints it.

``--model attention`` is the book's ``ch08/train.py``:
:class:`xpnn.models.AttentionSeq2seq` (wordvec 16, hidden 256, 10 epochs, the
other settings as above) on the date data set, its questions always reversed
as the book reverses them; ``--reverse`` is refused for it (one line: they
are reversed already).

A model is one entry of :data:`SEQ2SEQ_MODELS` (its class and the book's
settings for it), so another seq2seq model is one more line there and in
``--model``'s choices.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import time
from typing import Any, NamedTuple

from xpnn.cli.train_words import fill_defaults, refuse_options


class Seq2seqModel(NamedTuple):
    """A ``--model`` of this command: where its class is, and the book's settings for it."""

    module: str
    cls: str
    dataset: str  # the data set the book trains it on (--dataset's default)
    hidden: int
    epochs: int
    # The book always reverses this model's questions (ch08/train.py): no --reverse then.
    always_reversed: bool = False


#: ``--model`` names of the seq2seq models, their classes and the book's settings.
SEQ2SEQ_MODELS: dict[str, Seq2seqModel] = {
    "seq2seq": Seq2seqModel("xpnn.models.seq2seq", "Seq2seq", "addition", 128, 25),
    "peeky": Seq2seqModel("xpnn.models.seq2seq", "PeekySeq2seq", "addition", 128, 25),
    "attention": Seq2seqModel(
        "xpnn.models.attention_seq2seq", "AttentionSeq2seq", "date", 256, 10, always_reversed=True
    ),
}

#: ``--dataset`` names of the sequence data sets, and their files (:mod:`xpnn.datasets.sequence`).
SEQUENCE_DATASETS = {"addition": "addition.txt", "date": "date.txt"}

#: The book's word vector size (``wordvec_size = 16``), not an option of the command.
WORDVEC_SIZE = 16

#: ``ch07/train_seq2seq.py``'s settings, common to the models.
SEQ2SEQ_DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 0.001,
    "batch_size": 128,
    "max_grad": 5.0,
    "eval_interval": 20,
}

#: Options of the other models that a seq2seq model does not take, and why.
_NOT_FOR_SEQ2SEQ = {
    "eval_samples": "every test question is answered after each epoch",
    "window": "--window is the context of --model cbow or skipgram",
    "time_size": "--time-size is the BPTT length of --model rnnlm or betterrnnlm",
    "precision": "mixed precision is not built for the embedding layers yet",
    "cuda_graph": "Trainer does not record CUDA graphs of the seq2seq models yet",
    "checkpoint": "checkpoints of the seq2seq runs are not wired yet (--save keeps the model)",
    "checkpoint_every": "checkpoints of the seq2seq runs are not wired yet",
    "resume": "checkpoints of the seq2seq runs are not wired yet",
    "data_dir": "the sequence data sets are generated, not read",
    "download": "the sequence data sets are generated, not downloaded",
    "no_download": "the sequence data sets are generated, not downloaded",
}


def check_seq2seq_options(args: argparse.Namespace) -> None:
    """Fill the book's defaults and refuse what a seq2seq model cannot take, before any data."""
    spec = SEQ2SEQ_MODELS[args.model]
    if spec.always_reversed:
        if args.reverse:
            raise ValueError(
                f"--reverse: --model {args.model} always reads its questions reversed, as the "
                "book's ch08/train.py; drop it"
            )
        args.reverse = True
    if args.dataset is None:
        args.dataset = spec.dataset
    if args.dataset not in SEQUENCE_DATASETS:
        raise ValueError(
            f"--model {args.model} trains on a sequence data set, not --dataset {args.dataset}: "
            f"use --dataset {' or '.join(SEQUENCE_DATASETS)} (default: {spec.dataset})"
        )
    refuse_options(args, _NOT_FOR_SEQ2SEQ)
    if args.dtype in ("float16", "bfloat16"):
        raise ValueError(
            f"--dtype {args.dtype}: train the seq2seq models in float32 or float64; drop --dtype"
        )
    fill_defaults(args, {**SEQ2SEQ_DEFAULTS, "hidden": spec.hidden, "epochs": spec.epochs})


def _validation(model: Any, x_test: Any, t_test: Any, say: Any) -> Any:
    """A callback answering every test question after each epoch; its ``acc_list``."""
    from xpnn.models.seq2seq import eval_seq2seq_batch
    from xpnn.training.callbacks import Callback

    start_id = int(t_test[0, 0])  # the decoder's start symbol, "_"

    class ValAccuracy(Callback):
        def __init__(self) -> None:
            self.acc_list: list[float] = []

        def on_epoch_end(self, state: Any) -> None:
            acc = eval_seq2seq_batch(model, x_test, t_test, start_id)
            self.acc_list.append(acc)
            say("val acc %.3f%%" % (acc * 100))

    return ValAccuracy()


def run_seq2seq(args: argparse.Namespace, backend: Any, write_results: Any) -> int:
    """Train a seq2seq ``--model``; ``write_results(args, model, trainer)`` writes the files."""
    import xpnn
    from xpnn.cli.paths import make_output_folders, train_outputs
    from xpnn.datasets import sequence
    from xpnn.optimizers import OPTIMIZERS

    spec = SEQ2SEQ_MODELS[args.model]
    (x_train, t_train), (x_test, t_test) = sequence.load_data(SEQUENCE_DATASETS[args.dataset])
    char_to_id, _ = sequence.get_vocab()
    n = int(x_train.shape[0])
    if args.train_size is not None:
        if args.train_size > n:
            raise ValueError(
                f"--train-size {args.train_size} is larger than the {n} training questions of "
                f"--dataset {args.dataset}"
            )
        x_train, t_train = x_train[: args.train_size, ...], t_train[: args.train_size, ...]
        n = args.train_size
    if args.batch_size > n:
        raise ValueError(
            f"--batch-size {args.batch_size} is more than the {n} training questions: use a "
            "smaller one"
        )
    if args.reverse:  # the book's x[:, ::-1]; a negative step is no portable slice
        from xpnn.backend import get_namespace

        xp = get_namespace(x_train)
        x_train, x_test = xp.flip(x_train, axis=1), xp.flip(x_test, axis=1)
    per_epoch = n // args.batch_size
    if args.epochs is None:
        args.epochs = max(1, math.ceil(args.iters / per_epoch))
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    model = cls(len(char_to_id), WORDVEC_SIZE, args.hidden, seed=args.seed, dtype=args.dtype)
    optimizer = OPTIMIZERS[args.optimizer](lr=args.lr)
    say = (lambda *a, **k: None) if args.quiet else print
    say(
        f"xpnn train: {args.dataset} ({n} questions, {int(x_test.shape[0])} for validation, "
        + (
            f"read from {sequence.SEQUENCE_DIR_ENV}={os.environ[sequence.SEQUENCE_DIR_ENV]}, "
            if os.environ.get(sequence.SEQUENCE_DIR_ENV)
            else ""
        )
        + f"vocabulary {len(char_to_id)}"
        + (", reversed" if args.reverse else "")
        + f") on {backend.spec}, {args.dtype}, {type(model).__name__}(wordvec={WORDVEC_SIZE}, "
        f"hidden={args.hidden}), {args.optimizer} lr={args.lr:g}, batch {args.batch_size}, "
        f"{args.epochs} epochs x {per_epoch} iterations, gradients clipped to norm "
        f"{args.max_grad}"
    )
    make_output_folders("train", train_outputs(args))
    validation = _validation(model, x_test, t_test, say)
    trainer = xpnn.Trainer(model, optimizer)
    start = time.perf_counter()
    trainer.fit(
        x_train,
        t_train,
        max_epoch=args.epochs,
        batch_size=args.batch_size,
        max_grad=args.max_grad,
        eval_interval=args.eval_interval,
        seed=args.seed,
        progress=not args.quiet,
        verbose=not args.quiet,
        callbacks=[validation],
    )
    wall = time.perf_counter() - start
    print(f"final val acc {validation.acc_list[-1] * 100:.3f}% | {wall:.1f} s")
    return write_results(args, model, trainer)

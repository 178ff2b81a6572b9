"""Draw where an attention model looks: the book's ``ch08/visualize_attention.py`` (vol. 2).

The book loads the model ``ch08/train.py`` saved, picks five test dates at
random (``np.random.seed(1984)``), runs ``model.forward(x, t)`` on each and
draws ``model.decoder.attention.attention_weights``: one row per character
of the answer, one column per character of the question (turned back from
the reversed input the model reads), white where the step attends. A
trained model answers ``1994`` by looking at ``1994`` and the month by
looking at the month's name or number: the bright cells run diagonally
through the parts it copies::

    python examples/train_attention.py --save attention.npz
    python examples/visualize_attention.py --load attention.npz   # attention_map.png

Without ``--load`` a small model is trained first (a few seconds, it has
not learned to align yet). Differences from the book: the five maps are
drawn into one figure file (``--plot``, :func:`xpnn.plot.attention_map`),
not shown one after the other; the model file is xpnn's ``.npz``
(:func:`xpnn.io.save`), not ``AttentionSeq2seq.pkl``; each date is printed
with the model's answer.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np

import xpnn
from xpnn.backend import get_namespace
from xpnn.datasets import sequence
from xpnn.models.attention_seq2seq import AttentionSeq2seq
from xpnn.optimizers import Adam
from xpnn.plot import attention_map, show_or_save
from xpnn.training import Trainer

#: Without ``--load``: the small model trained first (questions, epochs, hidden size).
QUICK_TRAIN, QUICK_EPOCHS, QUICK_HIDDEN = 1000, 1, 32


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None, help="numpy, cupy, torch:cuda, ... (default: active)")
    p.add_argument(
        "--load",
        metavar="FILE",
        default=None,
        help="a trained AttentionSeq2seq (examples/train_attention.py --save FILE); "
        "without it a small model is trained first",
    )
    p.add_argument("--dates", type=int, default=5, help="test dates drawn (default: 5)")
    p.add_argument(
        "--seed", type=int, default=1984, help="seed of the choice of dates (default: 1984)"
    )
    p.add_argument(
        "--plot",
        "--out",
        dest="out",
        metavar="FILE",
        default="attention_map.png",
        help="figure of the maps, .png, .svg or .pdf (default: %(default)s)",
    )
    args = p.parse_args(argv)
    if not 1 <= args.dates <= 20:
        p.error("--dates must be from 1 to 20")
    if args.seed < 0:
        p.error("--seed must be 0 or more")
    # Before loading or training, not after.
    if Path(args.out).suffix.lower() not in (".png", ".svg", ".pdf"):
        p.error(f"--plot {args.out}: the extension must be .png, .svg or .pdf")
    if Path(args.out).is_dir():
        p.error(f"--plot {args.out} is a folder; give a file name")
    if args.load is not None and not Path(args.load).is_file():
        p.error(f"--load {args.load}: no such file; write one with train_attention.py --save")
    return args


def quick_model(x_train, t_train, vocab_size: int) -> AttentionSeq2seq:
    """A small model trained a little (the maps are drawn, the alignment not learned yet)."""
    model = AttentionSeq2seq(vocab_size, 16, QUICK_HIDDEN, seed=0)
    trainer = Trainer(model, Adam())
    trainer.fit(
        x_train[:QUICK_TRAIN, ...],
        t_train[:QUICK_TRAIN, ...],
        max_epoch=QUICK_EPOCHS,
        batch_size=128,
        max_grad=5.0,
        progress=False,
        verbose=False,
    )
    return model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with xpnn.use_backend(args.backend) if args.backend else contextlib.nullcontext():
        (x_train, t_train), (x_test, t_test) = sequence.load_data("date.txt")
        char_to_id, id_to_char = sequence.get_vocab()

        # Reverse input, as the model was trained (a negative step is no portable slice).
        xp = get_namespace(x_train)
        x_train, x_test = xp.flip(x_train, axis=1), xp.flip(x_test, axis=1)

        if args.load is not None:
            model = xpnn.io.load(args.load)
            if not isinstance(model, AttentionSeq2seq):
                raise SystemExit(
                    f"--load {args.load} holds a {type(model).__name__}, not an "
                    "AttentionSeq2seq: save one with examples/train_attention.py --save"
                )
            if model.vocab_size != len(char_to_id):
                raise SystemExit(
                    f"--load {args.load}: the model's vocabulary has {model.vocab_size} "
                    f"characters, the date data set's {len(char_to_id)}"
                )
        else:
            model = quick_model(x_train, t_train, len(char_to_id))

        # The book's np.random.seed(1984) and randint: the same draws.
        rng = np.random.RandomState(args.seed)
        picks = [int(rng.randint(0, int(x_test.shape[0]))) for _ in range(args.dates)]

        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.2 * len(picks)), layout="constrained")
        axes = fig.subplots(len(picks), 1, squeeze=False)[:, 0]
        for ax, idx in zip(axes, picks, strict=True):
            x, t = x_test[idx : idx + 1, ...], t_test[idx : idx + 1, ...]
            model.forward(x, t)
            d = model.decoder.attention.attention_weights
            weights = np.stack([xpnn.to_numpy(w)[0] for w in d])  # (T_dec, T_enc)

            # Turned back for print: the columns in the question's reading order.
            weights = weights[:, ::-1]
            question = [id_to_char[int(i)] for i in xpnn.to_numpy(x)[0, ::-1]]
            answer = [id_to_char[int(i)] for i in xpnn.to_numpy(t)[0, 1:]]
            start_id = int(xpnn.to_numpy(t)[0, 0])
            guess = "".join(id_to_char[int(i)] for i in model.generate(x, start_id, len(answer)))

            attention_map(weights, answer, question, ax=ax)
            ax.set_title(f"{''.join(question).strip()} -> {''.join(answer)}", fontsize=10)
            print(f"{''.join(question).strip()!r}: {''.join(answer)} (model: {guess})")

    print(f"figure written to {show_or_save(fig, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

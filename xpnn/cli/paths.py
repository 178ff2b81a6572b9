"""The paths of ``xpnn train``, checked before anything is loaded or trained.

``--plot``, ``--save`` and ``--checkpoint`` must be writable files (three
different ones), and ``--data-dir`` (or, without it, the MNIST cache folder)
must hold MNIST or be a folder it can be downloaded into. ``--checkpoint``
must not exist yet, unless ``--resume`` continues it; with ``--resume`` it
must. Each problem is a ``ValueError`` with a one-line message in the command
line's words.

An output file's missing parent folder is not a problem: once every check
has passed, :func:`make_output_folders` creates it and says so on stderr (as
``xpnn.io.save`` and the other writers create it, silently, in a program).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from xpnn.io.npz import check_output_path, missing_folder, nearest_existing

#: Image formats of ``--plot`` (matplotlib picks the writer from the extension).
PLOT_FORMATS = (".png", ".svg", ".pdf")

SAMPLE_HINT = "or use --dataset mnist5k, the 5,000-digit MNIST sample shipped with xpnn"


def check_train_paths(args: argparse.Namespace) -> None:
    """Every path of ``xpnn train``, checked before anything is loaded or trained."""
    if args.dataset == "ptb":
        _check_ptb(args)
    elif args.dataset != "mnist":
        for option, given in (
            ("--data-dir", args.data_dir is not None),
            ("--download", args.download),
            ("--no-download", args.no_download),
        ):
            if given:
                why = "it is generated" if args.dataset == "spiral" else "it ships with xpnn"
                raise ValueError(
                    f"{option} applies only to --dataset mnist or ptb, not {args.dataset} ({why})"
                )
    if args.plot is not None:
        check_output_path(args.plot, "--plot", PLOT_FORMATS, example="loss.png")
    if args.save is not None:
        check_output_path(args.save, "--save", example="net.npz", links=False)
    if args.checkpoint is not None:
        _check_checkpoint(args.checkpoint, args.resume)
    outputs = train_outputs(args)
    for i, (option, path) in enumerate(outputs):
        for other, other_path in outputs[i + 1 :]:
            if os.path.realpath(path) == os.path.realpath(other_path):
                raise ValueError(
                    f"{option} and {other} name the same file ({other_path}); give two names"
                )
    if args.dataset == "ptb":
        pass
    elif args.data_dir is not None:
        _check_data_dir(args)
    elif args.dataset == "mnist":
        from xpnn.datasets.mnist import mnist_data_dir

        _check_cache(mnist_data_dir(), args.no_download)


def train_outputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(option, path)`` of each file ``xpnn train`` writes."""
    options = (("--plot", args.plot), ("--save", args.save), ("--checkpoint", args.checkpoint))
    return [(option, path) for option, path in options if path]


def _check_checkpoint(path: str, resume: bool) -> None:
    """``--checkpoint``: a new file, or with ``--resume`` the existing one it continues."""
    check_output_path(path, "--checkpoint", example="run.npz", links=False)
    exists = os.path.lexists(path)
    if resume and not exists:
        raise ValueError(
            f"--resume: the checkpoint {path} does not exist; give the --checkpoint of the "
            "interrupted run, or drop --resume to start a new run that writes it"
        )
    if not resume and exists:
        raise ValueError(
            f"--checkpoint {path} exists: pass --resume to continue its run, or remove it "
            f"(rm {path}) to start a new one"
        )
    if resume and not os.access(path, os.R_OK):
        raise ValueError(f"--resume: the checkpoint {path} is not readable (permission denied)")


def make_output_folders(command: str, outputs: Sequence[tuple[str, str | None]]) -> list[Path]:
    """Create the missing parent folders of output files, one line on stderr each.

    Call it once every check has passed, just before the work: a refused run
    creates nothing. ``outputs`` are ``(option, path)`` pairs (a None path is
    skipped), e.g. ``make_output_folders("bench", [("--json", args.json)])``.
    Returns the folders created.
    """
    made = []
    for option, path in outputs:
        folder = None if not path else missing_folder(path)
        if folder is None:
            continue
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        made.append(folder)
        print(
            f"xpnn {command}: created the folder {folder} for {option} {path} (it did not exist)",
            file=sys.stderr,
        )
    return made


def _check_data_dir(args: argparse.Namespace) -> None:
    """``--data-dir`` must be an existing folder; it holds MNIST or ``--download`` fills it."""
    from xpnn.datasets.mnist import FILES, _missing_files, mnist_data_dir

    directory = Path(args.data_dir).expanduser()
    if not args.data_dir or not directory.exists():
        raise ValueError(
            f"--data-dir {args.data_dir or repr('')} does not exist; check the path, or create the "
            "folder (mkdir) and add --download to download MNIST into it, or omit --data-dir "
            f"to use the cache folder {mnist_data_dir()}, {SAMPLE_HINT}"
        )
    if not directory.is_dir():
        raise ValueError(
            f"--data-dir {args.data_dir} is a file, not a folder; give the folder that holds "
            f"the four MNIST files ({', '.join(FILES.values())})"
        )
    missing = _missing_files(directory)
    if not missing:
        return
    if not args.download:
        raise ValueError(
            f"--data-dir {args.data_dir} lacks {_count(missing)} MNIST files: "
            f"{', '.join(missing)}; add --download to download them into it (about 11 MB, "
            f"checked against the official SHA-256), copy them there, {SAMPLE_HINT}"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"--data-dir {args.data_dir}: cannot download into it (permission denied)")


def _check_ptb(args: argparse.Namespace) -> None:
    """``--dataset ptb``: its training file is there, or may be downloaded where it goes."""
    from xpnn.datasets.ptb import MIRRORS_ENV, key_file, ptb_data_dir

    offline = "or train on the corpus shipped with xpnn: --dataset english (no network)"
    name = key_file["train"]
    if args.data_dir is not None:
        directory = Path(args.data_dir).expanduser()
        if not args.data_dir or not directory.is_dir():
            what = "is a file, not a folder" if directory.exists() else "does not exist"
            raise ValueError(
                f"--data-dir {args.data_dir or repr('')} {what}; give the folder that holds "
                f"PTB's {name}, {offline}"
            )
        if not (directory / name).is_file() and not args.download:
            raise ValueError(
                f"--data-dir {args.data_dir} lacks PTB's {name}: add --download to download it "
                f"into it, copy it there, {offline}"
            )
        return
    directory = ptb_data_dir()
    if not (directory / name).is_file() and args.no_download:
        raise ValueError(
            f"PTB's {name} is not in the cache folder {directory} and --no-download forbids "
            f"downloading it; drop --no-download (mirrors: {MIRRORS_ENV}), give --data-dir, "
            f"{offline}"
        )


def _count(missing: Sequence[str]) -> str:
    return "all four" if len(missing) == 4 else f"{len(missing)} of the four"


def _check_cache(directory: Path, no_download: bool) -> None:
    """Without ``--data-dir``: the cache folder holds MNIST, or it can be downloaded there."""
    from xpnn.datasets.download import MIRRORS_ENV
    from xpnn.datasets.mnist import DATA_DIR_ENV, _missing_files

    missing = _missing_files(directory)
    if not missing:
        return
    if no_download:
        raise ValueError(
            f"MNIST is not in the cache folder {directory} (missing: {', '.join(missing)}) "
            "and --no-download forbids downloading it; drop --no-download to download it "
            "there (about 11 MB, checked against the official SHA-256), give --data-dir with "
            f"a folder that holds the files, {SAMPLE_HINT}"
        )
    ancestor = nearest_existing(directory.absolute())
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        problem = "is a file" if not ancestor.is_dir() else "is not writable"
        raise ValueError(
            f"cannot download MNIST into the cache folder {directory}: {ancestor} {problem}; "
            f"set {DATA_DIR_ENV} to a writable folder, or give --data-dir "
            f"(downloads honour {MIRRORS_ENV}), {SAMPLE_HINT}"
        )

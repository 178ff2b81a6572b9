"""Saving and loading trained models as ``.npz`` files, without pickle.

A saved file holds each array of the model as a plain ``.npy`` member and one
JSON string of metadata: the model class and its ``config`` (for a
:class:`~xpnn.models.LayeredNet`, each layer's kind and sizes), the dtype and
the xpnn version. It loads onto any backend: a model trained on the GPU opens
on a laptop.

    xpnn.io.save(net, "net.npz")
    net = xpnn.io.load("net.npz")            # on the active backend

A file from someone else is hostile until checked, and checking costs
little: :func:`load` reads the metadata (at most :data:`MODEL_META_CHARS`
characters), computes from it the names, shapes and dtype of every array
without building the model, checks each zip entry (stored or deflated, not
encrypted, no duplicate names, sizes that fit the file and the declared
shape) and each ``.npy`` header against them, and only then reads the data
and builds the model. Nothing is unpickled. Limits: :data:`MAX_ELEMENTS`
parameters per model, :data:`MAX_MEMBERS` arrays per file, a deflated member
larger than 16 MiB may not inflate more than :data:`MAX_RATIO` times.

Writing goes to a temporary ``.NAME.XXXXXXXX.part`` beside the target, which
is renamed into place (mode ``0o666 & ~umask``), so an interrupted save never
leaves a half-written file; a temporary file of the same target left by a
killed save (untouched for a minute) is removed by the next save. Links,
devices, FIFOs and directories are never replaced.

Saving in a narrower dtype (``dtype="float16"``) warns once
(:class:`PrecisionLossWarning`) when values are stored as 0 or as subnormal
numbers, naming each array and its counts; ``strict=True`` refuses instead
(:class:`PrecisionLossError`, a ValueError) and writes nothing. Loading
refuses a layer's state array that breaks its constraint (a
BatchNormalization ``running_var`` below 0) before building the model.

The package's modules: :mod:`xpnn.io.npz` (reading hostile files cheaply,
writing atomically), :mod:`xpnn.io.saving` (models), :mod:`xpnn.io.checks`
(the values: precision lost in storage, layers' state constraints) and
:mod:`xpnn.io.checkpoints` (training checkpoints) and :mod:`xpnn.io.book_pickle` (the
book's weight files: a restricted unpickler, and the models' ``save_params`` and
``load_params``).
"""

from xpnn.io.book_pickle import MAX_PICKLE_BYTES, BookPickleError, load_book_pickle
from xpnn.io.book_pickle import load_params as _load_book_params
from xpnn.io.book_pickle import save_params as _save_book_params
from xpnn.io.checkpoints import _parse_checkpoint as _parse_checkpoint  # Trainer and tests
from xpnn.io.checkpoints import _restore_checkpoint as _restore_checkpoint
from xpnn.io.checkpoints import read_checkpoint, write_checkpoint
from xpnn.io.checks import PrecisionLossError, PrecisionLossWarning
from xpnn.io.npz import (
    FORMAT,
    MAX_ELEMENTS,
    MAX_MEMBERS,
    MAX_RATIO,
    MODEL_FORMAT,
    MODEL_META_CHARS,
    ModelFileError,
    check_output_path,
)
from xpnn.io.saving import _file_arrays as _file_arrays  # for tests
from xpnn.io.saving import _named_params as _named_params
from xpnn.io.saving import load, load_params, save
from xpnn.models.book_params import set_params_files

# The book's net.save_params/net.load_params (xpnn.models.book_params) write and read here.
set_params_files(_save_book_params, _load_book_params)

__all__ = [
    "FORMAT",
    "MAX_ELEMENTS",
    "MAX_PICKLE_BYTES",
    "MAX_MEMBERS",
    "MAX_RATIO",
    "MODEL_FORMAT",
    "MODEL_META_CHARS",
    "BookPickleError",
    "ModelFileError",
    "PrecisionLossError",
    "PrecisionLossWarning",
    "check_output_path",
    "load",
    "load_book_pickle",
    "load_params",
    "read_checkpoint",
    "save",
    "write_checkpoint",
]

"""Data files shipped inside xpnn, checked before they are read.

The MNIST sample (:func:`xpnn.datasets.load_mnist5k`) and the English corpus
(:mod:`xpnn.datasets.english`) come with the package; a broken install or a
changed file must not give other numbers silently. :func:`read_shipped`
compares a file's size first (a stat: a truncated file costs nothing to
refuse), then its SHA-256, and says to reinstall.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

__all__ = ["REINSTALL", "read_shipped"]

#: The fix every message of a damaged or missing shipped file ends with.
REINSTALL = "reinstall xpnn (pip install --force-reinstall xpnn, or pip install . in a checkout)"


def read_shipped(path: Path, size: int, sha256: str, what: str, error: Any) -> bytes:
    """The bytes of the shipped file ``path``, checked against its ``size`` and ``sha256``.

    Args:
        path: The file.
        size: Its size in bytes.
        sha256: Its SHA-256, hexadecimal.
        what: What it belongs to, for messages ("the MNIST sample").
        error: The exception class of a damaged file, called ``error(path, message)``.

    Raises:
        FileNotFoundError: The file is missing (a broken install).
        error: The size or the SHA-256 differs; the message names the file,
            what was found and what was expected, and says to reinstall.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing: {what} shipped with xpnn is incomplete; {REINSTALL}"
        )
    found = path.stat().st_size
    if found != size:
        raise error(
            path,
            f"{found} bytes instead of {size}: this file of {what} shipped with xpnn is "
            f"damaged; {REINSTALL}",
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise error(
            path,
            f"SHA-256 {digest} instead of the expected {sha256}: this file of {what} shipped "
            f"with xpnn is damaged; {REINSTALL}",
        )
    return data

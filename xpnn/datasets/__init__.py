"""Data sets, read from local files (or downloaded) onto the active backend.

``load_mnist`` is the book's loader of the full MNIST (downloaded once);
``load_mnist5k`` reads the 5,000-digit MNIST sample shipped inside xpnn
(no network); ``load_spiral`` makes the spiral of vol. 2, ch. 1; the module
``ptb`` is vol. 2's ``dataset/ptb.py`` (``from xpnn.datasets import ptb``,
then ``ptb.load_data('train')``), also as ``load_ptb``; the module
``english`` reads the English corpus shipped with xpnn the same way, offline
(``from xpnn.datasets import english as ptb``).
"""

from xpnn.datasets import english, ptb
from xpnn.datasets.download import DownloadError
from xpnn.datasets.mnist import (
    IDXFormatError,
    load_mnist,
    load_mnist5k,
    load_mnist_dir,
    read_idx,
)
from xpnn.datasets.ptb import PTBFormatError
from xpnn.datasets.ptb import load_data as load_ptb
from xpnn.datasets.spiral import load_spiral

__all__ = [
    "DownloadError",
    "IDXFormatError",
    "PTBFormatError",
    "english",
    "load_mnist",
    "load_mnist5k",
    "load_mnist_dir",
    "load_ptb",
    "load_spiral",
    "ptb",
    "read_idx",
]

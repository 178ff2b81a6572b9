"""Data sets, read from local files (or downloaded) onto the active backend."""

from xpnn.datasets.download import DownloadError
from xpnn.datasets.mnist import IDXFormatError, load_mnist, load_mnist_dir, read_idx
from xpnn.datasets.spiral import load_spiral

__all__ = [
    "DownloadError",
    "IDXFormatError",
    "load_mnist",
    "load_mnist_dir",
    "load_spiral",
    "read_idx",
]

"""Data sets, read from local files onto the active backend."""

from xpnn.datasets.mnist import IDXFormatError, load_mnist_dir, read_idx

__all__ = ["IDXFormatError", "load_mnist_dir", "read_idx"]

"""The version of xpnn, in a module of its own so that any module can read it
without importing the package (which imports most of them)."""

__version__ = "0.1.0"

"""The package version (one place; `talkface.__version__` re-exports it)."""
__version__ = "0.1.0"
__version_tuple__ = (0, 1, 0)

"""TAML pipeline: the `taml` command, configuration, storage and the data layout."""

__version__ = "0.1.0"

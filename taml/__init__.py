"""TAML pipeline: the core layer (``taml.core``) and the ``taml`` command (``taml.cli``)."""

__version__ = "0.1.0"

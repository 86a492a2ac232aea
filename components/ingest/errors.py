"""Failures of the ingest step a person can act on (the CLI prints them without a traceback)."""

from __future__ import annotations

from taml.core.errors import TamlError


class IngestError(TamlError):
    """The ingest of a day cannot complete; the message names what and where."""


class MissingInputError(IngestError):
    """A partition the run needs is absent."""


class IncompleteLabelsError(MissingInputError):
    """The clicks/conversions of D+1 have not landed: the labels of D are incomplete."""


class CorruptFileError(IngestError):
    """A raw file cannot be read whole (damaged or truncated compression)."""


class BalanceError(IngestError):
    """Lines read != accepted + other_day + dead-lettered for some source and partition."""

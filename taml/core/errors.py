"""Errors a user can act on. The CLI prints their message without a traceback."""


class TamlError(RuntimeError):
    """Base of every expected failure: bad arguments, bad data, a failed gate."""


class UsageError(TamlError, ValueError):
    """Impossible arguments (negative counts, unknown names, end before start)."""

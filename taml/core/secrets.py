"""Secrets (the Redis password, ...) come from the environment and never show in text we produce.

A secret is read with :func:`from_env` at the moment a connection is made; it never enters the
typed configuration, so ``taml config show``, run records and pipeline parameters cannot carry
it. Whatever text might still hold one (an error from a client library, a log line) goes through
:func:`redact`: every value read so far, and anything shaped like a password in a connection
string or URL, becomes ``***``. :func:`from_env` also turns on redaction of every log record of
the process (message and traceback), so a library that logs its connection settings is covered.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping

MASK = "***"
#: ``password=...`` in Feast/redis connection strings (up to the next comma, space or quote) and
#: the ``user:password@`` part of a URL.
_PATTERNS = (
    re.compile(r"(?i)(password['\"]?\s*[=:]\s*['\"]?)([^,\s'\"}]+)"),
    re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/:@\s]*:)([^@/\s]+)(@)"),
)
_known: set[str] = set()
_lock = threading.Lock()
_installed = False


def redact(text: object) -> str:
    """``text`` with every known secret and password-shaped value replaced by ``***``."""
    out = str(text)
    for value in sorted(_known, key=len, reverse=True):
        out = out.replace(value, MASK)
    out = _PATTERNS[0].sub(lambda m: m.group(1) + MASK if m.group(2) != MASK else m.group(0), out)
    return _PATTERNS[1].sub(lambda m: m.group(1) + MASK + m.group(3), out)


def remember(value: str) -> None:
    """Treat ``value`` as a secret from now on (redacted from text and log records)."""
    if not value:
        return
    with _lock:
        _known.add(value)
    _install_log_redaction()


def from_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The secret in environment variable ``name`` (None when unset or empty), remembered."""
    if not name:
        return None
    value = (os.environ if environ is None else environ).get(name) or None
    if value:
        remember(value)
    return value


def _install_log_redaction() -> None:
    """Wrap the log record factory once: each record's message and traceback are redacted."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: leave it to logging's own error path
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)

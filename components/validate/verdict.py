"""Reading a day's verdict: where validation writes it, and the gate later steps apply.

Kept apart from the run (``run.py``), which imports Great Expectations: the steps that only ask
"did day D pass?" (features, train) do not pay for importing GX (seconds per task process).
"""

from __future__ import annotations

import datetime as dt

from components.validate.result import RESULT_FILE, ValidationResult
from taml.core import layout as L
from taml.core import storage
from taml.core.errors import TamlError


class ValidationGateError(TamlError):
    """A day's validation failed or never ran, so downstream steps must not use it."""


def validation_dir(artifact_root: str, day: dt.date | str) -> str:
    """Default home of a day's validation artifacts: ``{artifact_root}/validation/dt=D``."""
    return storage.join(artifact_root, "validation", L.partition(day))


def read_verdict(out_dir: str) -> ValidationResult:
    """The result a previous :func:`run_validation` wrote to ``out_dir``."""
    uri = storage.join(out_dir, RESULT_FILE)
    if not storage.exists(uri):
        raise ValidationGateError(f"no validation result at {uri}: run `taml validate` for that day first")
    return ValidationResult.from_dict(storage.read_json(uri))


def require_passed(artifact_root: str, date: dt.date | str, out_dir: str | None = None) -> ValidationResult:
    """Raise :class:`ValidationGateError` unless the day's validation ran and passed."""
    day = L.parse_date(date)
    result = read_verdict(out_dir or validation_dir(artifact_root, day))
    if not result.passed:
        failed = "; ".join(o.message() for o in result.failed_critical)
        raise ValidationGateError(f"validation of {day} failed, refusing to use the day: {failed}")
    return result

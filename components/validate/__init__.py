"""Step 2 of the daily run: the validation gate (Great Expectations 1.x).

Public API (the KFP component and ``taml validate`` call these):

- :func:`run_validation` (config, date, data_root=None, out_dir=None) -> :class:`ValidationResult`
  (``passed``; ``critical`` and ``warnings``: every :class:`Outcome` of each suite;
  ``failed_critical`` / ``failed_warnings``). Artifacts: result.json, report.md, report.html.
- :func:`validation_dir` (artifact_root, date): the default ``{artifact_root}/validation/dt=D``.
- :func:`read_verdict` (out_dir) and :func:`require_passed` (artifact_root, date): the gate later
  steps use; the latter raises :class:`ValidationGateError` unless the day passed.
"""

from components.validate.result import Outcome, ValidationResult
from components.validate.verdict import ValidationGateError, read_verdict, require_passed, validation_dir


def __getattr__(name: str):
    # The run imports Great Expectations (seconds); the verdict readers above do not need it.
    if name == "run_validation":
        from components.validate.run import run_validation

        return run_validation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Outcome",
    "ValidationGateError",
    "ValidationResult",
    "read_verdict",
    "require_passed",
    "run_validation",
    "validation_dir",
]

"""A validation's verdict: one :class:`Outcome` per expectation, the :class:`ValidationResult` of a day,
and how a value is written in messages and reports. The run (``run.py``) builds it, the report
(``report.py``) renders it; both import this module and not each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RESULT_FILE = "result.json"


@dataclass
class Outcome:
    """One expectation's verdict: what was checked, what was seen, what was wanted."""

    suite: str
    name: str
    expectation: str
    description: str
    success: bool
    observed: Any
    expected: dict[str, Any]
    error: str | None = None

    def message(self) -> str:
        verdict = "ok" if self.success else "FAILED"
        text = f"[{self.suite}] {self.name} {verdict}: {self.description}; observed {fmt(self.observed)}"
        text += f", expected {fmt(self.expected)} ({self.expectation})"
        return text + (f"; error: {self.error}" if self.error else "")


@dataclass
class ValidationResult:
    """``critical`` and ``warnings`` hold every outcome of their suite (passed ones included)."""

    date: str
    passed: bool
    critical: list[Outcome]
    warnings: list[Outcome]
    skipped: list[str] = field(default_factory=list)
    rows: int = 0
    out_dir: str = ""
    seconds: float = 0.0

    @property
    def failed_critical(self) -> list[Outcome]:
        return [o for o in self.critical if not o.success]

    @property
    def failed_warnings(self) -> list[Outcome]:
        return [o for o in self.warnings if not o.success]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failed_critical"] = [o.name for o in self.failed_critical]
        d["failed_warnings"] = [o.name for o in self.failed_warnings]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidationResult:
        return cls(
            date=d["date"],
            passed=bool(d["passed"]),
            critical=[Outcome(**o) for o in d.get("critical", [])],
            warnings=[Outcome(**o) for o in d.get("warnings", [])],
            skipped=list(d.get("skipped", [])),
            rows=int(d.get("rows", 0)),
            out_dir=d.get("out_dir", ""),
            seconds=float(d.get("seconds", 0.0)),
        )


def fmt(v: Any) -> str:
    """A value as messages and reports show it: floats to six significant digits, dicts inline."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {fmt(x)}" for k, x in v.items()) + "}"
    return str(v)

"""The day's status from the Evidently test results: ok, warn or alert.

A failed critical test is an alert; a failed non-critical test (Evidently reports it as WARNING)
is a warning; a test that could not run (ERROR) is a warning too, since nothing was checked.
Run facts can raise the floor (validation failed, no reference): see ``MonitorConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "alert"]
STATUS_ORDER: dict[str, int] = {"ok": 0, "warn": 1, "alert": 2}

_FROM_EVIDENTLY: dict[str, Status] = {"SUCCESS": "ok", "WARNING": "warn", "FAIL": "alert", "ERROR": "warn"}


@dataclass(frozen=True)
class TestOutcome:
    name: str
    description: str
    status: Status  # what this test contributes to the day's status
    evidently_status: str


def worst(*statuses: Status) -> Status:
    return max(statuses, key=lambda s: STATUS_ORDER[s], default="ok")


def outcomes(test_results: list[Any]) -> list[TestOutcome]:
    """Evidently ``MetricTestResult`` objects -> outcomes (SKIPPED tests contribute nothing)."""
    out = []
    for t in test_results:
        raw = str(getattr(t.status, "value", t.status)).upper()
        if raw not in _FROM_EVIDENTLY:
            continue
        out.append(TestOutcome(t.name, t.description, _FROM_EVIDENTLY[raw], raw))
    return out


def day_status(tests: list[TestOutcome], floors: list[Status] = ()) -> Status:
    return worst(*(t.status for t in tests), *floors)

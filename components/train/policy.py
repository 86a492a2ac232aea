"""Which days the candidate trains on (DESIGN.md, step 4).

Both a warm update and a cold start train on a sliding window ending with D−1: the last
``window_days`` days, extended back a day at a time (up to ``max_window_days``) while the window
holds fewer than ``window_min_conversions`` conversions. Only days whose validation passed and
whose feature table exists count; the others are left out and named in the plan. A warm update
starts from the production model and needs at least one such day after production's
trained-through date (else there is nothing new to learn); a cold start (no production model)
needs ``cold_start_days`` of them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["warm", "cold", "skip"]


@dataclass(frozen=True)
class DayStatus:
    """What the policy knows about one earlier day."""

    usable: bool
    conversions: int = 0
    why_not: str = ""  # when not usable: no feature table, no validation result, validation failed


@dataclass(frozen=True)
class WindowPolicy:
    window_days: int
    min_conversions: int
    max_window_days: int
    cold_start_days: int

    @property
    def lookback(self) -> int:
        """How many days before D the policy may look at."""
        return max(self.window_days, self.max_window_days if self.min_conversions else 0)


@dataclass(frozen=True)
class TrainingPlan:
    mode: Mode
    days: list[dt.date] = field(default_factory=list)
    parent_version: str | None = None
    reason: str = ""
    conversions: int = 0
    excluded: dict[str, str] = field(default_factory=dict)  # day -> why it was not trained on


def plan_training(
    date: dt.date,
    production_version: str | None,
    production_trained_through: dt.date | None,
    status: dict[dt.date, DayStatus],
    policy: WindowPolicy,
) -> TrainingPlan:
    """Pure decision from the alias and what is known of the days before D; never trains on D or later.

    ``status`` may omit a day: it counts as having no feature table.
    """
    warm = production_version is not None and production_trained_through is not None
    last = date - dt.timedelta(days=1)
    if warm and production_trained_through >= last:
        return TrainingPlan(
            "skip",
            parent_version=production_version,
            reason=f"production {production_version} is already trained through {production_trained_through}",
        )
    days, excluded, conversions = [], {}, 0
    for back in range(1, policy.lookback + 1):
        if back > policy.window_days and conversions >= policy.min_conversions:
            break
        day = date - dt.timedelta(days=back)
        s = status.get(day, DayStatus(False, why_not="no feature table"))
        if s.usable:
            days.append(day)
            conversions += s.conversions
        else:
            excluded[day.isoformat()] = s.why_not
    days.sort()
    left_out = f"; left out: {_excluded(excluded)}" if excluded else ""
    if warm:
        new = [d for d in days if d > production_trained_through]
        if not new:
            return TrainingPlan(
                "skip",
                parent_version=production_version,
                reason=f"no validated day after production's trained-through {production_trained_through}"
                + left_out,
                excluded=excluded,
            )
        return TrainingPlan(
            "warm",
            days,
            production_version,
            f"warm start from {production_version} on {len(days)} day(s) {days[0]}..{days[-1]} "
            f"({conversions} conversions){left_out}",
            conversions,
            excluded,
        )
    if len(days) < policy.cold_start_days:
        return TrainingPlan(
            "skip",
            reason=f"cold start needs {policy.cold_start_days} validated day(s) with feature tables "
            f"before {date}; found {len(days)}{left_out}",
            excluded=excluded,
        )
    return TrainingPlan(
        "cold",
        days,
        None,
        f"cold start on {len(days)} day(s) {days[0]}..{days[-1]} ({conversions} conversions){left_out}",
        conversions,
        excluded,
    )


def _excluded(excluded: dict[str, str]) -> str:
    by_reason: dict[str, list[str]] = {}
    for day, why in sorted(excluded.items()):
        by_reason.setdefault(why, []).append(day)
    return "; ".join(f"{why}: {', '.join(days)}" for why, days in by_reason.items())

"""Which days the candidate trains on (DESIGN.md, step 4).

Warm start: from the production model, on the days after its trained-through date up to D−1
(at most ``max_warm_days`` of them). Cold start (no production model): the last
``cold_start_days`` days before D that have a feature table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["warm", "cold", "skip"]


@dataclass(frozen=True)
class TrainingPlan:
    mode: Mode
    days: list[dt.date] = field(default_factory=list)
    parent_version: str | None = None
    reason: str = ""


def plan_training(
    date: dt.date,
    production_version: str | None,
    production_trained_through: dt.date | None,
    available: set[dt.date],
    cold_start_days: int,
    max_warm_days: int,
    min_train_days: int = 1,
) -> TrainingPlan:
    """Pure decision from the alias and the days whose tables exist; never trains on D or later."""
    if production_version is not None and production_trained_through is not None:
        first = production_trained_through + dt.timedelta(days=1)
        last = date - dt.timedelta(days=1)
        wanted = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        wanted = wanted[-max_warm_days:]
        days = [d for d in wanted if d in available]
        if not wanted:
            return TrainingPlan(
                "skip",
                [],
                production_version,
                f"production {production_version} is already trained through {production_trained_through}",
            )
        missing = sorted(set(wanted) - set(days))
        if missing:
            return TrainingPlan(
                "skip",
                [],
                production_version,
                f"feature tables missing for {', '.join(map(str, missing))}: re-run those days first",
            )
        return TrainingPlan(
            "warm", days, production_version, f"warm start from {production_version} on {days[0]}..{days[-1]}"
        )
    window = [date - dt.timedelta(days=i) for i in range(cold_start_days, 0, -1)]
    days = [d for d in window if d in available]
    if len(days) < min_train_days:
        return TrainingPlan(
            "skip",
            [],
            None,
            f"cold start needs {min_train_days} day(s) with feature tables before {date}; found {len(days)}",
        )
    return TrainingPlan("cold", days, None, f"cold start on {days[0]}..{days[-1]}")

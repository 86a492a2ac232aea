"""Scenarios: how the world departs from ``clean`` from the scenario day on.

- ``calibration_break``: conversion tracking loses a share of postbacks (labels drop, truth does not).
- ``new_item_flood``: many more new items, and they take a large share of impressions.
- ``ctr_shift``: every click logit moves by a constant (users click more, or less).
"""

from __future__ import annotations

from dataclasses import dataclass

from taml.core.config import SimulatorConfig
from taml.core.errors import UsageError

SCENARIOS = ("clean", "calibration_break", "new_item_flood", "ctr_shift")


@dataclass(frozen=True)
class Scenario:
    name: str = "clean"
    start_index: int | None = None  # day index (from the epoch) the scenario starts on

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise UsageError(f"unknown scenario {self.name!r}: expected one of {', '.join(SCENARIOS)}")
        if self.name != "clean" and self.start_index is None:
            raise UsageError(f"scenario {self.name!r} needs --scenario-day")

    def active(self, name: str, day_index: int) -> bool:
        return self.name == name and self.start_index is not None and day_index >= self.start_index

    def new_item_multiplier(self, cfg: SimulatorConfig, day_index: int) -> float:
        return cfg.scenarios.new_item_flood_multiplier if self.active("new_item_flood", day_index) else 1.0

    def max_new_item_multiplier(self, cfg: SimulatorConfig) -> float:
        # Id blocks are sized for the largest day, so ids never depend on which days were asked for.
        return max(1.0, cfg.scenarios.new_item_flood_multiplier)

    def new_item_share(self, cfg: SimulatorConfig, day_index: int) -> float:
        return (
            cfg.scenarios.new_item_flood_share
            if self.active("new_item_flood", day_index)
            else cfg.new_item_share
        )

    def click_shift(self, cfg: SimulatorConfig, day_index: int) -> float:
        return cfg.scenarios.ctr_shift_logit if self.active("ctr_shift", day_index) else 0.0

    def postback_loss(self, cfg: SimulatorConfig, day_index: int) -> float:
        return cfg.scenarios.calibration_break_loss if self.active("calibration_break", day_index) else 0.0

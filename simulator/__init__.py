"""The synthetic ad platform: raw event logs with ground truth, scenarios and corruptions."""

from simulator.generate import DaySummary, SimulationSummary, simulate, write_corruption_manifest
from simulator.scenarios import SCENARIOS

__all__ = ["SCENARIOS", "DaySummary", "SimulationSummary", "simulate", "write_corruption_manifest"]

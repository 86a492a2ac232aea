"""Step 7: the day's drift and calibration report (monitoring/) as a pipeline step."""

from components.monitor.run import MonitorOutcome, run_monitor_step

__all__ = ["MonitorOutcome", "run_monitor_step"]

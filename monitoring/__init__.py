"""Step 7 of the daily run: Evidently drift and calibration report of day D, its status, the history.

Public API: :func:`run_monitor` -> :class:`MonitorResult`; :data:`Scorer` (the injectable
fallback scorer); :class:`MonitorInputError`. See DESIGN.md and docs/MONITORING.md.
"""

from monitoring.inputs import MonitorInputError
from monitoring.run import MonitorResult, Scorer, run_monitor
from monitoring.status import Status

__all__ = ["MonitorInputError", "MonitorResult", "Scorer", "Status", "run_monitor"]

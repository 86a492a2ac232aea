"""Step 1 of the daily run: raw event logs -> labeled samples, dead letters, manifest, 7-day stats.

Public API (the KFP component and ``taml ingest`` call these):

- :func:`run_ingest` (config, date, data_root, beam_args) -> :class:`IngestResult`
- :func:`run_aliccp_ingest` (config, date, data_root, skeleton, common_features, beam_args)
"""

from components.ingest.aliccp import run_aliccp_ingest
from components.ingest.errors import (
    BalanceError,
    CorruptFileError,
    IncompleteLabelsError,
    IngestError,
    MissingInputError,
)
from components.ingest.run import IngestResult, run_ingest

__all__ = [
    "BalanceError",
    "CorruptFileError",
    "IncompleteLabelsError",
    "IngestError",
    "IngestResult",
    "MissingInputError",
    "run_aliccp_ingest",
    "run_ingest",
]

"""Step 3 of the daily run: the Feast feature store (DESIGN.md "Features (Feast)").

Public API (the KFP component, ``taml features`` and the trainer call these):

- :func:`build_features` (config, date, data_root=None) -> :class:`FeaturesResult`: check the
  sources, apply the repo, materialize the window ending with D (online rows checked), write
  the point-in-time table of D to ``features/training/dt=D/part-00000.parquet``.
- :func:`build_tables` (config, days, data_root=None) -> paths (read them back with
  ``components.common.tables.read_table``; the folder is ``taml.core.layout.training_table_dir``).
- :func:`feature_store` / :func:`apply` (config, data_root) -> ``feast.FeatureStore``;
  :func:`ensure_applied` (config, data_root) -> bool: apply only when the definitions changed.
- :func:`online_reader` (config, data_root) -> reader with ``lookup(user_id, item_ids)``;
  :class:`OnlineFeatureReader` (SQLite direct, what serving uses); :func:`feast_lookup`.
- :func:`materialize` (config, date, data_root) -> online rows per view.
"""

from components.features.build import (
    FeaturesResult,
    TrainingTableError,
    build_features,
    build_table,
    build_tables,
    materialize,
    point_in_time,
    windows,
)
from components.features.online import OnlineFeatureReader, feast_lookup, online_reader
from components.features.sources import FeatureSourceError, check_sources
from components.features.store import FeatureStoreError, apply, ensure_applied, feature_store, repo_config

__all__ = [
    "FeatureSourceError",
    "FeatureStoreError",
    "FeaturesResult",
    "OnlineFeatureReader",
    "TrainingTableError",
    "apply",
    "build_features",
    "build_table",
    "build_tables",
    "check_sources",
    "ensure_applied",
    "feast_lookup",
    "feature_store",
    "materialize",
    "online_reader",
    "point_in_time",
    "repo_config",
    "windows",
]

"""Step 3 of the daily run: the Feast feature store (DESIGN.md "Features (Feast)").

Public API (the KFP component, ``taml features`` and the trainer call these):

- :func:`build_features` (config, date, data_root=None) -> :class:`FeaturesResult`: check the
  sources, apply the repo, materialize the window ending with D (online rows checked), write
  the point-in-time table of D to ``features/training/dt=D/part-00000.parquet``.
- :func:`build_tables` (config, days, data_root=None) -> paths (read them back with
  ``components.common.tables.read_table``; the folder is ``taml.core.layout.training_table_dir``).
- :func:`feature_store` / :func:`apply` (config, data_root) -> ``feast.FeatureStore``;
  :func:`ensure_applied` (config, data_root) -> bool: apply only when the definitions changed.
- :func:`read_samples` (data_root, day) -> D's curated samples; :func:`point_in_time` (config,
  store, samples, data_root) -> the samples joined with the feature service (the evaluate step
  scores a day without a table with these two).
- :func:`materialize` (config, date, data_root) -> online rows per view, written in the online
  format of ``featurestore`` (which also holds the direct readers: ``featurestore.online_reader``);
  :func:`feast_lookup` reads the same rows through Feast.
"""

from components.features.build import (
    FeaturesResult,
    TrainingTableError,
    build_features,
    build_table,
    build_tables,
    materialize,
    point_in_time,
    read_samples,
    windows,
)
from components.features.online import feast_lookup
from components.features.sources import FeatureSourceError, check_sources
from components.features.store import apply, ensure_applied, feature_store, repo_config
from featurestore import FeatureStoreError, online_reader

__all__ = [
    "FeatureSourceError",
    "FeatureStoreError",
    "FeaturesResult",
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
    "read_samples",
    "repo_config",
    "windows",
]

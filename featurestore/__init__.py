"""The feature-store format: Feast's online tables, written and read without Feast.

The features step writes the online store with this package, serving reads it, and neither
imports the other (DESIGN.md "Layout": below components/, above the core, importable by
serving). What it owns:

- :mod:`featurestore.encoding`: entity keys (``serialize_entity_key`` v3), ValueProto values,
  timestamps, byte for byte as Feast stores them;
- :mod:`featurestore.layout`: the online store's file and table names, :class:`OnlineRows`
  (what a writer takes) and the one batching both writers use;
- :mod:`featurestore.sqlite_store` and :mod:`featurestore.redis_store`: each store's writer
  (``write_rows``) and direct reader (``lookup(user_id, item_ids)``);
- :mod:`featurestore.feast_version`: the Feast release the format mirrors (``FEAST_VERSION``) and
  the guard that refuses another release series.

tests/featurestore/ proves that Feast's own ``FeatureStore.get_online_features`` reads what the
writers write, for SQLite and Redis. Importing this package does not import Feast.
"""

from __future__ import annotations

from featurestore.errors import FeastVersionError, FeatureStoreError, RedisStoreError
from featurestore.feast_version import FEAST_VERSION, check_feast
from featurestore.layout import (
    OnlineRows,
    entity_columns,
    online_db_path,
    registry_path,
    sqlite_table,
    store_dir,
    view_columns,
)
from featurestore.redis_store import RedisOnlineReader
from featurestore.sqlite_store import SqliteOnlineReader
from taml.core.config import Config


def online_reader(config: Config, data_root: str) -> SqliteOnlineReader | RedisOnlineReader:
    """The direct reader of the configured online store (SQLite or Redis; both Feast's format)."""
    if config.features.online_store == "sqlite":
        return SqliteOnlineReader(config, data_root)
    return RedisOnlineReader(config, data_root)


__all__ = [
    "FEAST_VERSION",
    "FeastVersionError",
    "FeatureStoreError",
    "OnlineRows",
    "RedisOnlineReader",
    "RedisStoreError",
    "SqliteOnlineReader",
    "check_feast",
    "entity_columns",
    "online_db_path",
    "online_reader",
    "registry_path",
    "sqlite_table",
    "store_dir",
    "view_columns",
]

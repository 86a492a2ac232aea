"""A Feast FeatureStore for a data root, built from the typed config (no feature_store.yaml needed).

The repository's definitions live in ``feature_repo/definitions.py``; this module loads that file
by path (``feature_repo`` is a Feast repo, not an installed package) and builds the objects for
the data root at hand. ``apply`` also writes ``{data_root}/feature_store/feature_store.yaml``
so people can point the ``feast`` CLI at the same registry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from featurestore import FeatureStoreError, online_db_path, registry_path, sqlite_table, store_dir
from featurestore import redis_store as R
from featurestore.layout import ONLINE_FILE, local_root
from taml.core import storage
from taml.core.config import Config
from taml.core.feature_repo import FEATURE_REPO, definitions
from taml.core.secrets import redact

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

log = logging.getLogger(__name__)

APPLIED_FILE = "applied.json"
#: ``features.*`` settings the applied objects or the RepoConfig are built from (a change re-applies).
APPLY_SETTINGS = (
    "project",
    "feature_service",
    "stats_ttl_hours",
    "online_write_batch_size",
    "offline_store",
    "online_store",
    "bigquery_dataset",
    "redis_connection_string",
    "redis_password_env",
    "registry_path",
)


def repo_config(config: Config, data_root: str, *, password_ref: bool = False) -> RepoConfig:
    """Feast's RepoConfig of ``data_root``. Redis: the password from the environment, in memory only
    (``password_ref``: ``${VAR}`` in its place, for files); a Feast error never echoes it."""
    from feast.repo_config import RepoConfig

    try:
        return _repo_config(RepoConfig, config, data_root, password_ref)
    except FeatureStoreError:
        raise
    except Exception as e:  # Feast's validation quotes its input, the connection string included
        raise FeatureStoreError(redact(f"Feast rejected the feature store settings: {e}")) from None


def _repo_config(RepoConfig, config: Config, data_root: str, password_ref: bool) -> RepoConfig:
    f = config.features
    root = store_dir(data_root)
    if f.online_store == "sqlite" and storage.is_gcs(root):
        raise FeatureStoreError(
            f"data root {data_root} is on GCS but features.online_store is sqlite: select the gcp profile "
            "(redis online, bigquery offline) or use a local data root"
        )
    registry = registry_path(config, data_root)
    online: dict = (
        {"type": "sqlite", "path": storage.join(root, ONLINE_FILE)}
        if f.online_store == "sqlite"
        else {
            "type": "redis",
            "connection_string": R.feast_connection_string(config, password_ref=password_ref),
        }
    )
    offline: dict = {"type": "duckdb"} if f.offline_store == "duckdb" else {"type": "bigquery"}
    if f.offline_store == "bigquery":
        project, _, dataset = f.bigquery_dataset.partition(".")
        offline.update({"project_id": project, "dataset": dataset})
    return RepoConfig(
        project=f.project,
        provider="local" if f.offline_store == "duckdb" else "gcp",
        registry={"registry_type": "file", "path": registry, "cache_ttl_seconds": 60},
        online_store=online,
        offline_store=offline,
        entity_key_serialization_version=3,
        repo_path=None if storage.is_gcs(root) else Path(root),
        materialization={"online_write_batch_size": f.online_write_batch_size, "pull_latest_features": True},
    )


def feature_store(config: Config, data_root: str) -> FeatureStore:
    """The FeatureStore of ``data_root`` (registry and online store under its feature_store/)."""
    from feast import FeatureStore

    if not storage.is_gcs(data_root):
        storage.makedirs(store_dir(data_root))
    return FeatureStore(config=repo_config(config, data_root))


def feast_objects(config: Config, data_root: str) -> dict[str, object]:
    f = config.features
    return definitions().build_objects(
        local_root(data_root),
        offline_store=f.offline_store,
        bigquery_dataset=f.bigquery_dataset,
        stats_ttl=dt.timedelta(hours=f.stats_ttl_hours),
        feature_service=f.feature_service,
    )


def apply(config: Config, data_root: str) -> FeatureStore:
    """Register entities, views and the service (idempotent) and write feature_store.yaml."""
    store = feature_store(config, data_root)
    store.apply(list(feast_objects(config, data_root).values()))
    if not storage.is_gcs(data_root):
        write_yaml(config, data_root)
    _record_applied(config, data_root)
    log.info("applied Feast repo %s to %s", config.features.project, store_dir(data_root))
    return store


def ensure_applied(config: Config, data_root: str) -> bool:
    """Apply unless this exact repo is already applied to ``data_root``; True when it applied.

    "Exact": same definitions.py, Feast version, ``features`` settings and data root as the last
    apply recorded in ``{feature_store}/applied.json``, and the registry, feature_store.yaml and
    (SQLite) every view's online table still exist. Skipping saves importing Feast (~18 s here).
    """
    if _applied_current(config, data_root):
        log.info(
            "Feast repo %s already applied to %s (definitions unchanged)",
            config.features.project,
            store_dir(data_root),
        )
        return False
    apply(config, data_root)
    return True


def definitions_hash(config: Config, data_root: str) -> str:
    """Hash of everything the applied objects and the RepoConfig are built from."""
    h = hashlib.sha256()
    h.update((FEATURE_REPO / "definitions.py").read_bytes())
    h.update(importlib.metadata.version("feast").encode())
    settings = config.features.model_dump(mode="json", include=set(APPLY_SETTINGS))
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(local_root(data_root).encode())
    return h.hexdigest()


def _applied_path(data_root: str) -> Path | None:
    if storage.is_gcs(data_root):
        return None
    return Path(store_dir(data_root)) / APPLIED_FILE


def _local_registry(config: Config, data_root: str) -> Path | None:
    path = registry_path(config, data_root)
    return None if storage.is_gcs(path) else Path(path)


def _record_applied(config: Config, data_root: str) -> None:
    marker = _applied_path(data_root)
    if marker is not None and _local_registry(config, data_root) is not None:
        marker.write_text(json.dumps({"hash": definitions_hash(config, data_root)}) + "\n")


def _applied_current(config: Config, data_root: str) -> bool:
    marker, registry = _applied_path(data_root), _local_registry(config, data_root)
    if marker is None or registry is None or not marker.exists() or not registry.exists():
        return False
    if not (marker.parent / "feature_store.yaml").exists():
        return False
    try:
        if json.loads(marker.read_text()).get("hash") != definitions_hash(config, data_root):
            return False
    except ValueError:
        return False
    if config.features.online_store == "sqlite":
        db = Path(online_db_path(data_root))
        if not db.exists():
            return False
        want = {sqlite_table(config.features.project, v) for v in definitions().VIEWS}
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
        return want <= have
    return True


def write_yaml(config: Config, data_root: str) -> str:
    """``{data_root}/feature_store/feature_store.yaml`` for the feast CLI (absolute paths).

    RepoConfig.write_to_path writes field names Feast cannot load back (registry_config, ...),
    so the file is written from the same settings by hand. A Redis password appears only as
    ``${VAR}`` (Feast expands environment variables when it reads the file).
    """
    import yaml

    rc = repo_config(config, data_root, password_ref=True)
    data = {
        "project": rc.project,
        "provider": rc.provider,
        "registry": rc.registry.path,
        "online_store": rc.online_store.model_dump(mode="json", exclude_none=True),
        "offline_store": rc.offline_store.model_dump(mode="json", exclude_none=True),
        "entity_key_serialization_version": rc.entity_key_serialization_version,
    }
    uri = storage.join(store_dir(data_root), "feature_store.yaml")
    storage.write_text(uri, yaml.safe_dump(data, sort_keys=False))
    return uri


def feast_env(data_root: str) -> dict[str, str]:
    """Environment for running the ``feast`` CLI from feature_repo/ against ``data_root``."""
    env = dict(os.environ)
    env[definitions().ENV_DATA_ROOT] = local_root(data_root)
    return env

"""Where the online store lives, what its tables are called, and the rows a writer takes.

The views and feature names come from the Feast repository's plain definitions
(``taml.core.feature_repo``); the file names under ``{data_root}/feature_store/`` are the ones
the features step's RepoConfig hands Feast (``registry.db``, ``online_store.db``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from taml.core import layout as L
from taml.core import storage
from taml.core.config import Config
from taml.core.feature_repo import definitions

REGISTRY_FILE = "registry.db"
ONLINE_FILE = "online_store.db"
#: The column of an :class:`OnlineRows` table holding each row's event time (epoch microseconds).
TS_COLUMN = "_ts"


def local_root(data_root: str) -> str:
    """A local data root made absolute (Feast resolves relative paths against its repo); GCS as is."""
    if storage.is_gcs(data_root):
        return data_root
    return str(Path(data_root).resolve())


def store_dir(data_root: str) -> str:
    return L.feature_store_dir(local_root(data_root))


def online_db_path(data_root: str) -> str:
    """The SQLite online store of ``data_root`` (the local profile)."""
    return storage.join(store_dir(data_root), ONLINE_FILE)


def registry_path(config: Config, data_root: str) -> str:
    """Feast's registry file: ``features.registry_path`` when set, else under the data root."""
    return config.features.registry_path or storage.join(store_dir(data_root), REGISTRY_FILE)


def sqlite_table(project: str, view: str) -> str:
    """Feast's SQLite table of a feature view (``_table_id``: ``{project}_{view}``)."""
    return f"{project}_{view}"


def view_columns() -> dict[str, tuple[str, list[str]]]:
    """Feature view -> (entity, its feature names in definition order)."""
    d = definitions()
    return {
        v: (entity, list(d.feature_columns(entity, kind).values())) for v, (entity, kind) in d.VIEWS.items()
    }


def entity_columns() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The feature names of the user views and of the item views."""
    user: list[str] = []
    item: list[str] = []
    for entity, cols in view_columns().values():
        (user if entity == "user" else item).extend(cols)
    return tuple(user), tuple(item)


@dataclass(frozen=True)
class OnlineRows:
    """One row per entity of one feature view, as a writer takes them.

    ``table`` holds the INT64 join key, :data:`TS_COLUMN` (event time, epoch µs) and one column
    per feature named as the feature; ``dtypes`` maps each feature to its ``feast.types`` name.
    """

    view: str
    join_key: str
    table: pa.Table
    dtypes: dict[str, str]

    @property
    def features(self) -> list[str]:
        return list(self.dtypes)

    def __len__(self) -> int:
        return self.table.num_rows


def batches(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` bounds of consecutive batches of at most ``size`` over ``n`` rows."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    for lo in range(0, n, size):
        yield lo, min(n, lo + size)

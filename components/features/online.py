"""Online feature lookup: one user and N items -> one feature row per item.

Two paths with the same answer:

- :class:`OnlineFeatureReader` reads Feast's SQLite online store directly: one prepared query
  for the user and one for all items, entity keys serialized the way Feast writes them, values
  decoded without protobuf. Serving uses this (see docs/FEATURES.md for its latency next to Feast's).
- :class:`RedisOnlineReader` reads Feast's Redis online store directly (Feast's hash layout, see
  ``components.features.redis_store``): one pipelined round trip of HMGETs per lookup.
- :func:`feast_lookup` goes through ``FeatureStore.get_online_features`` (any online store).
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.features import redis_store as R
from components.features.direct import decode_value, entity_key_prefix
from components.features.store import FeatureStoreError, definitions, feature_store, online_db_path
from taml.core.config import Config

_INT64 = struct.Struct("<q")
MMAP_BYTES = 1 << 30
CACHE_KIB = 64 * 1024
#: Decoded values by their ValueProto bytes (a few thousand distinct small ints and rates per store).
DECODE_CACHE_MAX = 200_000


class OnlineFeatureReader:
    """Direct reader of the SQLite online store of ``data_root`` (read-only; safe to share across threads).

    Per lookup: one prepared query for the user (both user views) and one for all items (both item
    views); entity keys are built from Feast's v3 serialization prefix, values decoded without
    protobuf for int64/double. Each thread gets its own read-only connection (opened on first use).
    Importing this does not import Feast.
    """

    def __init__(self, config: Config, data_root: str):
        path = online_db_path(data_root)
        if not Path(path).exists():
            raise FeatureStoreError(f"no online store at {path}: run `taml features build --date D` first")
        d = definitions()
        self._uri = f"file:{path}?mode=ro"
        project = config.features.project
        self.views = {v: (entity, d.feature_columns(entity, kind)) for v, (entity, kind) in d.VIEWS.items()}
        self.columns = [f for _, cols in self.views.values() for f in cols.values()]
        self._user_views = [v for v, (e, _) in self.views.items() if e == "user"]
        self._item_views = [v for v, (e, _) in self.views.items() if e == "item"]
        self._tables = {v: f'"{project}_{v}"' for v in self.views}
        self._user_prefix = entity_key_prefix("user_id")
        self._item_prefix = entity_key_prefix("item_id")
        self._user_sql = " UNION ALL ".join(
            f"SELECT feature_name, value FROM {self._tables[v]} WHERE entity_key = ?1"
            for v in self._user_views
        )
        self._item_sql_cache: dict[int, str] = {}
        self._decoded: dict[bytes, Any] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cons: list[sqlite3.Connection] = []
        self._con()  # fail early on an unreadable file

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self._uri, uri=True, check_same_thread=False, cached_statements=256)
            # Reads straight from the OS page cache (no read() copy per page), and a larger page cache.
            con.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            con.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            self._local.con = con
            with self._lock:
                self._cons.append(con)
        return con

    def _item_sql(self, n_items: int) -> str:
        sql = self._item_sql_cache.get(n_items)
        if sql is None:
            marks = ",".join(f"?{i + 1}" for i in range(n_items))
            sql = self._item_sql_cache[n_items] = " UNION ALL ".join(
                f"SELECT entity_key, feature_name, value FROM {self._tables[v]} WHERE entity_key IN ({marks})"
                for v in self._item_views
            )
        return sql

    def lookup(self, user_id: int, item_ids: Sequence[int]) -> list[dict[str, Any]]:
        """One dict per item (in order): user_id, item_id and every feature (None when missing)."""
        pack, ip = _INT64.pack, self._item_prefix
        item_ids = [int(i) for i in item_ids]
        item_keys = [ip + pack(i) for i in item_ids]
        unique_keys = list(dict.fromkeys(item_keys))
        con = self._con()
        try:
            user_rows = con.execute(self._user_sql, (self._user_prefix + pack(int(user_id)),)).fetchall()
            item_rows = (
                con.execute(self._item_sql(len(unique_keys)), unique_keys).fetchall() if unique_keys else []
            )
        except sqlite3.OperationalError as e:
            raise FeatureStoreError(f"online store not materialized ({e}): run `taml features build`") from e
        cache = self._decoded
        if len(cache) > DECODE_CACHE_MAX:
            cache.clear()
        base: dict[str, Any] = dict.fromkeys(self.columns)
        for name, blob in user_rows:
            base[name] = decode_value(blob)
        items: dict[bytes, dict[str, Any]] = {}
        for key, name, blob in item_rows:
            row = items.get(key)
            if row is None:
                row = items[key] = {}
            try:
                row[name] = cache[blob]
            except KeyError:
                row[name] = cache[blob] = decode_value(blob)
        uid = int(user_id)
        out = []
        for item_id, key in zip(item_ids, item_keys, strict=True):
            row = {"user_id": uid, "item_id": item_id, **base}
            found = items.get(key)
            if found:
                row.update(found)
            out.append(row)
        return out

    def close(self) -> None:
        with self._lock:
            for con in self._cons:
                con.close()
            self._cons.clear()
        self._local = threading.local()


class RedisOnlineReader:
    """Direct reader of Feast's Redis online store (safe to share across threads: a connection pool).

    Per lookup one pipeline: HMGET of the user's hash (the fields of both user views) and one
    HMGET per distinct item (both item views); values decoded without protobuf for int64/double.
    Missing entities and features come back as None, as from Feast. Importing this does not
    import Feast.
    """

    def __init__(self, config: Config, data_root: str | None = None):
        d = definitions()
        self._config = config
        self._project = config.features.project
        self._suffix = self._project.encode("utf-8")
        self.views = {v: (entity, d.feature_columns(entity, kind)) for v, (entity, kind) in d.VIEWS.items()}
        self.columns = [f for _, cols in self.views.values() for f in cols.values()]
        self._fields: dict[str, tuple[list[bytes], list[str]]] = {}
        for entity in ("user", "item"):
            fields, names = [], []
            for view, (e, cols) in self.views.items():
                if e == entity:
                    for feat in cols.values():
                        fields.append(R.feature_field(view, feat))
                        names.append(feat)
            self._fields[entity] = (fields, names)
        self._user_prefix = entity_key_prefix("user_id")
        self._item_prefix = entity_key_prefix("item_id")
        self._decoded: dict[bytes, Any] = {}
        self._client = R.connect(config)
        try:
            self._client.ping()  # fail early on a wrong address or password
        except Exception as e:
            raise R.store_error(config, e, "connecting") from None

    def lookup(self, user_id: int, item_ids: Sequence[int]) -> list[dict[str, Any]]:
        """One dict per item (in order): user_id, item_id and every feature (None when missing)."""
        pack, sfx = _INT64.pack, self._suffix
        item_ids = [int(i) for i in item_ids]
        uid = int(user_id)
        unique = list(dict.fromkeys(item_ids))
        user_fields, user_names = self._fields["user"]
        item_fields, item_names = self._fields["item"]
        try:
            with self._client.pipeline(transaction=False) as pipe:
                pipe.hmget(self._user_prefix + pack(uid) + sfx, user_fields)
                for i in unique:
                    pipe.hmget(self._item_prefix + pack(i) + sfx, item_fields)
                replies = pipe.execute()
        except Exception as e:
            raise R.store_error(self._config, e, "reading features") from None
        cache = self._decoded
        if len(cache) > DECODE_CACHE_MAX:
            cache.clear()

        def decoded(blob):
            if blob is None:
                return None
            try:
                return cache[blob]
            except KeyError:
                v = cache[blob] = decode_value(blob)
                return v

        base: dict[str, Any] = dict.fromkeys(self.columns)
        for name, blob in zip(user_names, replies[0], strict=True):
            base[name] = decoded(blob)
        items = {
            i: {n: decoded(b) for n, b in zip(item_names, reply, strict=True)}
            for i, reply in zip(unique, replies[1:], strict=True)
        }
        return [{"user_id": uid, "item_id": i, **base, **items[i]} for i in item_ids]

    def version(self) -> str:
        """Moves whenever the project's materialization writes (the generation counter)."""
        try:
            got = self._client.get(R.generation_key(self._project))
        except Exception as e:
            raise R.store_error(self._config, e, "reading the generation") from None
        return "redis:" + (got.decode() if got else "0")

    def close(self) -> None:
        self._client.close()


def feast_lookup(store, config: Config, user_id: int, item_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The same rows through Feast's own online read path (works with any online store)."""
    service = store.get_feature_service(config.features.feature_service)
    got = store.get_online_features(
        features=service, entity_rows=[{"user_id": int(user_id), "item_id": int(i)} for i in item_ids]
    ).to_dict()
    return [{k: got[k][j] for k in got} for j in range(len(item_ids))]


class FeastReader:
    """``lookup`` through Feast's ``get_online_features`` (benchmarks and ``--via-feast``)."""

    def __init__(self, config: Config, data_root: str):
        self._config = config
        self._store = feature_store(config, data_root)

    def lookup(self, user_id: int, item_ids: Sequence[int]) -> list[dict[str, Any]]:
        return feast_lookup(self._store, self._config, user_id, item_ids)

    def close(self) -> None:
        pass


def online_reader(config: Config, data_root: str) -> OnlineFeatureReader | RedisOnlineReader:
    """The direct reader of the configured online store (SQLite or Redis; both Feast's format)."""
    if config.features.online_store == "sqlite":
        return OnlineFeatureReader(config, data_root)
    return RedisOnlineReader(config, data_root)

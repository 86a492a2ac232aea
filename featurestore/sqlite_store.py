"""Feast's SQLite online store (``SqliteOnlineStore``, Feast 0.67), written and read directly.

One table per feature view, ``{project}_{view}``: one row per (entity key, feature) with the
serialized ValueProto, its text, and ``event_ts`` as Feast's sqlite3 adapter stores it;
:func:`write_rows` upserts as ``online_write_batch`` does, :class:`SqliteOnlineReader` reads
with one prepared query for the user and one for all items. Neither imports Feast.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from featurestore import encoding as E
from featurestore.errors import FeatureStoreError
from featurestore.feast_version import check_feast
from featurestore.layout import TS_COLUMN, OnlineRows, batches, online_db_path, sqlite_table, view_columns
from taml.core.config import Config

_INT64 = struct.Struct("<q")
MMAP_BYTES = 1 << 30
CACHE_KIB = 64 * 1024
#: Decoded values by their ValueProto bytes (a few thousand distinct small ints and rates per store).
DECODE_CACHE_MAX = 200_000


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table(con: sqlite3.Connection, table: str) -> None:
    """Feast's SqliteOnlineStore.update DDL (no value_num: enable_openai_compatible_store is off)."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {quote(table)} (entity_key BLOB, feature_name TEXT, value BLOB, value_text TEXT,  "
        "vector_value BLOB, event_ts timestamp, created_ts timestamp,  PRIMARY KEY(entity_key, feature_name))"
    )
    con.execute(f"CREATE INDEX IF NOT EXISTS {quote(table + '_ek')} ON {quote(table)} (entity_key);")


def _upsert_sql(table: str) -> str:
    return (
        f"INSERT INTO {quote(table)} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
        "value = excluded.value, value_text = excluded.value_text, event_ts = excluded.event_ts, "
        "created_ts = excluded.created_ts;"
    )


def write_rows(con: sqlite3.Connection, project: str, rows: OnlineRows, batch_size: int) -> int:
    """Upsert ``rows`` into the view's table (created when missing) as Feast does; returns rows written.

    The caller owns the transaction (the features step commits rows and its own state together).
    """
    check_feast()
    table = sqlite_table(project, rows.view)
    create_table(con, table)
    n = len(rows)
    if not n:
        return 0
    keys = E.entity_keys(rows.join_key, rows.table.column(rows.join_key).to_numpy())
    ts = E.sqlite_event_ts(rows.table.column(TS_COLUMN).to_numpy())
    encoded = [
        (feat, *E.encode_column(rows.table.column(feat), dtype)) for feat, dtype in rows.dtypes.items()
    ]
    sql = _upsert_sql(table)
    for lo, hi in batches(n, batch_size):
        nones = [None] * (hi - lo)
        for feat, blobs, texts in encoded:
            con.executemany(
                sql,
                zip(
                    keys[lo:hi], [feat] * (hi - lo), blobs[lo:hi], texts[lo:hi], ts[lo:hi], nones, strict=True
                ),
            )
    return n


class SqliteOnlineReader:
    """Direct reader of the SQLite online store of ``data_root`` (read-only; safe to share across threads).

    Per lookup: one prepared query for the user (both user views) and one for all items (both item
    views); entity keys are built from Feast's v3 serialization prefix, values decoded without
    protobuf for int64/double. Each thread gets its own read-only connection (opened on first use).
    """

    def __init__(self, config: Config, data_root: str):
        check_feast()
        path = online_db_path(data_root)
        if not Path(path).exists():
            raise FeatureStoreError(f"no online store at {path}: run `taml features build --date D` first")
        self._uri = f"file:{path}?mode=ro"
        project = config.features.project
        self.views = view_columns()
        self.columns = [f for _, cols in self.views.values() for f in cols]
        tables = {v: quote(sqlite_table(project, v)) for v in self.views}
        self._item_views = [tables[v] for v, (e, _) in self.views.items() if e == "item"]
        self._user_prefix = E.entity_key_prefix("user_id")
        self._item_prefix = E.entity_key_prefix("item_id")
        self._user_sql = " UNION ALL ".join(
            f"SELECT feature_name, value FROM {tables[v]} WHERE entity_key = ?1"
            for v, (e, _) in self.views.items()
            if e == "user"
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
                f"SELECT entity_key, feature_name, value FROM {table} WHERE entity_key IN ({marks})"
                for table in self._item_views
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
            base[name] = E.decode_value(blob)
        items: dict[bytes, dict[str, Any]] = {}
        for key, name, blob in item_rows:
            row = items.get(key)
            if row is None:
                row = items[key] = {}
            try:
                row[name] = cache[blob]
            except KeyError:
                row[name] = cache[blob] = E.decode_value(blob)
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

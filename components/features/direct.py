"""Direct I/O in Feast's own formats: bulk SQLite materialization and the DuckDB point-in-time join.

Feast stays the definition of the features (``feature_repo/definitions.py``: views, sources,
field mappings, TTLs) and the SQLite online-store format; this module only does the two heavy
operations without Feast's per-row Python loops, and without importing Feast at all (``import
feast`` takes ~18 s here because it imports torch):

- :func:`materialize_view` writes the latest row per key of a window into the view's SQLite table
  exactly as ``SqliteOnlineStore.online_write_batch`` would (same entity-key serialization v3,
  same ValueProto bytes, same ``value_text``, ``event_ts`` and upsert), in one transaction, and
  optionally only what changed since the previous run (:class:`MaterializationState`).
- :func:`point_in_time` is Feast's ``get_historical_features`` (DuckDB offline store) as DuckDB
  ASOF joins: for each view the latest feature row stamped at or before the entity timestamp,
  dropped when older than the view's TTL (``feature_ts + ttl >= entity_ts``, as Feast's ibis join).

tests/components/features/test_features.py proves both equal to Feast's own paths.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

_VT_STRING, _VT_INT64 = 2, 4  # feast ValueType.STRING / INT64
_TAG_INT64, _TAG_DOUBLE = b"\x20", b"\x29"  # ValueProto field 4 (varint) / field 5 (64-bit)
NULL_VALUE = b""  # ValueProto() with no field set: what Feast writes for a missing value
STATE_TABLE = "_taml_materialized"
_EPOCH_NAIVE = dt.datetime(1970, 1, 1)
WRITE_CACHE_KIB = 256 * 1024  # SQLite page cache of the writer: a view's table and indexes stay in memory


# --- Feast's encodings ---------------------------------------------------------------------------


def entity_key_prefix(join_key: str) -> bytes:
    """``serialize_entity_key`` v3 of one INT64 join key, without the 8 value bytes."""
    k = join_key.encode("utf8")
    return struct.pack("<III", 1, _VT_STRING, len(k)) + k + struct.pack("<II", _VT_INT64, 8)


def entity_key(join_key: str, value: int) -> bytes:
    return entity_key_prefix(join_key) + struct.pack("<q", int(value))


def entity_keys(join_key: str, values: np.ndarray) -> list[bytes]:
    prefix = entity_key_prefix(join_key)
    raw = np.ascontiguousarray(values, dtype="<i8").tobytes()
    return [prefix + raw[i : i + 8] for i in range(0, len(raw), 8)]


def _varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # proto int64: negatives are 10-byte two's complement
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_int64(v: int) -> bytes:
    """``ValueProto(int64_val=v).SerializeToString()``."""
    return _TAG_INT64 + _varint(int(v))


def encode_double(x: float) -> bytes:
    """``ValueProto(double_val=x).SerializeToString()``."""
    return _TAG_DOUBLE + struct.pack("<d", x)


def decode_value(blob: bytes):
    """A stored ValueProto as a Python value (None when unset); int64 and double fast, else protobuf."""
    if not blob:
        return None
    tag = blob[0]
    if tag == 0x29 and len(blob) == 9:
        return struct.unpack_from("<d", blob, 1)[0]
    if tag == 0x20:
        n, shift = 0, 0
        for b in blob[1:]:
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return n - (1 << 64) if n >= 1 << 63 else n
    from feast.protos.feast.types.Value_pb2 import Value

    v = Value.FromString(blob)
    kind = v.WhichOneof("val")
    return getattr(v, kind) if kind and kind != "null_val" else None


def encode_column(col: pa.ChunkedArray | pa.Array, dtype: str) -> tuple[list[bytes], list[str | None]]:
    """(value bytes, value_text) per row, as Feast's online_write_batch stores them."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    valid = None if col.null_count == 0 else ~np.asarray(col.is_null())
    kind = "Float64" if dtype in ("Float64", "Float32") else "Int64"
    values = (
        col.fill_null(0).to_numpy(zero_copy_only=False).astype("float64" if kind == "Float64" else "int64")
    )
    uniq, inverse = np.unique(values, return_inverse=True)
    if kind == "Float64":
        enc = [encode_double(float(x)) for x in uniq]
        txt = [str(float(x)) for x in uniq]
    else:
        enc = [encode_int64(int(x)) for x in uniq]
        txt = [str(int(x)) for x in uniq]
    blobs = np.array(enc, dtype=object)[inverse]
    texts = np.array(txt, dtype=object)[inverse]
    if valid is not None:
        blobs[~valid] = NULL_VALUE
        texts[~valid] = None
    return blobs.tolist(), texts.tolist()


def event_ts(us: np.ndarray) -> list[int]:
    """Feast's stored event_ts: ``int(naive_utc_datetime.timestamp())`` (its sqlite3 adapter)."""
    uniq, inverse = np.unique(us, return_inverse=True)
    conv = np.array(
        [int((_EPOCH_NAIVE + dt.timedelta(microseconds=int(u))).timestamp()) for u in uniq], dtype=np.int64
    )
    return conv[inverse].tolist()


# --- SQLite online store -------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table(con: sqlite3.Connection, table: str) -> None:
    """Feast's SqliteOnlineStore.update DDL (no value_num: enable_openai_compatible_store is off)."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {_q(table)} (entity_key BLOB, feature_name TEXT, value BLOB, value_text TEXT,  "
        "vector_value BLOB, event_ts timestamp, created_ts timestamp,  PRIMARY KEY(entity_key, feature_name))"
    )
    con.execute(f"CREATE INDEX IF NOT EXISTS {_q(table + '_ek')} ON {_q(table)} (entity_key);")


def _upsert_sql(table: str) -> str:
    return (
        f"INSERT INTO {_q(table)} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
        "value = excluded.value, value_text = excluded.value_text, event_ts = excluded.event_ts, "
        "created_ts = excluded.created_ts;"
    )


def _us(t: dt.datetime) -> int:
    return (t.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def _from_us(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


def file_fingerprint(files: Sequence[str]) -> dict[str, list[int]]:
    out = {}
    for f in files:
        st = os.stat(f)
        out[f] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


def sql_list(files: Sequence[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


@dataclass
class ViewWrite:
    view: str
    start: dt.datetime  # the window actually read (later than the requested start when incremental)
    end: dt.datetime
    rows: int  # entities written
    incremental: bool


class MaterializationState:
    """What the previous direct materialization of each view wrote, kept in the online store itself.

    A later window may then read only rows stamped after the previous end when that is exact:
    the previous window started no later and ended no later, no source file it saw changed or
    went away, every new file holds only rows stamped after the previous end, and the table is
    as that run left it (same row count and sum of event_ts: nothing else wrote to it).
    """

    def __init__(self, con: sqlite3.Connection):
        self.con = con
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (view TEXT PRIMARY KEY, start_us INTEGER, end_us INTEGER, "
            "files TEXT, n INTEGER, ts_sum INTEGER)"
        )

    def get(self, view: str) -> tuple[int, int, dict, int, int] | None:
        row = self.con.execute(
            f"SELECT start_us, end_us, files, n, ts_sum FROM {STATE_TABLE} WHERE view = ?", (view,)
        ).fetchone()
        return None if row is None else (row[0], row[1], json.loads(row[2]), row[3], row[4])

    def put(self, view: str, start_us: int, end_us: int, files: dict, guard: tuple[int, int]) -> None:
        self.con.execute(
            f"INSERT OR REPLACE INTO {STATE_TABLE} VALUES (?, ?, ?, ?, ?, ?)",
            (view, start_us, end_us, json.dumps(files, sort_keys=True), guard[0], guard[1]),
        )


def forget(db_path: str, view: str) -> None:
    """Drop the recorded state of ``view``: its next materialization writes the whole window."""
    con = sqlite3.connect(db_path)
    try:
        with con:
            MaterializationState(con)
            con.execute(f"DELETE FROM {STATE_TABLE} WHERE view = ?", (view,))
    finally:
        con.close()


def _guard(con: sqlite3.Connection, table: str) -> tuple[int, int]:
    n, s = con.execute(f"SELECT count(*), coalesce(sum(event_ts), 0) FROM {_q(table)}").fetchone()
    return int(n), int(s)


def incremental_start(
    state: MaterializationState,
    duck: duckdb.DuckDBPyConnection,
    view: str,
    table: str,
    files: Sequence[str],
    fingerprint: dict,
    start: dt.datetime,
    end: dt.datetime,
) -> dt.datetime | None:
    """The first instant still to write, when an incremental write is exact; None otherwise."""
    prev = state.get(view)
    if prev is None:
        return None
    p_start, p_end, p_files, n, ts_sum = prev
    if p_start > _us(start) or p_end > _us(end) or _guard(state.con, table) != (n, ts_sum):
        return None
    if any(fingerprint.get(f) != v for f, v in p_files.items()):
        return None
    new = [f for f in files if f not in p_files]
    if new:
        first = duck.execute(
            f"SELECT min(epoch_us(event_timestamp)) FROM read_parquet({sql_list(new)})"
        ).fetchall()[0][0]
        if first is not None and first <= p_end:
            return None
    return max(start, _from_us(p_end + 1))


def latest_rows(
    duck: duckdb.DuckDBPyConnection,
    key: str,
    files: Sequence[str],
    columns: dict[str, str],
    start: dt.datetime,
    end: dt.datetime,
) -> pa.Table:
    """The latest source row per key stamped in [start, end]: the key, ``_ts`` (epoch µs), the source columns.

    What Feast's materialize writes with ``pull_latest_features`` (bounds inclusive, as Feast's).
    """
    select = ", ".join(f"{_q(src)}" for src in columns)
    return duck.sql(
        f"SELECT {_q(key)}, epoch_us(event_timestamp) AS _ts, {select} FROM read_parquet({sql_list(files)}) "
        "WHERE event_timestamp >= ? AND event_timestamp <= ? "
        f"QUALIFY row_number() OVER (PARTITION BY {_q(key)} ORDER BY event_timestamp DESC) = 1",
        params=[start, end],
    ).to_arrow_table()


def materialize_view(
    db_path: str,
    table: str,
    view: str,
    key: str,
    files: Sequence[str],
    columns: dict[str, str],
    dtypes: dict[str, str],
    start: dt.datetime,
    end: dt.datetime,
    incremental: bool = True,
    duck: duckdb.DuckDBPyConnection | None = None,
) -> ViewWrite:
    """Write the latest row per key stamped in [start, end] (inclusive, as Feast) into ``table``.

    ``columns`` maps source columns to feature names (the view's field mapping), ``dtypes`` feature
    names to ``feast.types`` names. Rows, state and table creation commit in one transaction.
    """
    fingerprint = file_fingerprint(files)
    con = sqlite3.connect(db_path, isolation_level=None)
    con.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")  # this connection only; the file is unchanged
    own_duck = duck is None
    duck = duck or duckdb.connect()
    try:
        con.execute("BEGIN IMMEDIATE")
        create_table(con, table)
        state = MaterializationState(con)
        read_from = (
            incremental_start(state, duck, view, table, files, fingerprint, start, end)
            if incremental
            else None
        )
        is_incremental = read_from is not None
        read_from = read_from or start
        rows = 0
        if read_from <= end:
            got = latest_rows(duck, key, files, columns, read_from, end)
            rows = got.num_rows
            if rows:
                keys = entity_keys(key, got.column(key).to_numpy())
                ts = event_ts(got.column("_ts").to_numpy())
                sql = _upsert_sql(table)
                nones = [None] * rows
                for src, feat in columns.items():
                    blobs, texts = encode_column(got.column(src), dtypes[feat])
                    con.executemany(sql, zip(keys, [feat] * rows, blobs, texts, ts, nones, strict=True))
        state.put(view, _us(start), _us(end), fingerprint, _guard(con, table))
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
        if own_duck:
            duck.close()
    return ViewWrite(view, read_from, end, rows, is_incremental)


# --- point-in-time join --------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinView:
    view: str
    key: str
    files: list[str]
    columns: dict[str, str]  # source column -> feature name
    ttl: dt.timedelta  # 0: none


def point_in_time(entities: pa.Table, views: Sequence[JoinView]) -> pa.Table:
    """Feature columns for ``entities`` (join keys + ``event_timestamp``), one row per entity row, in order.

    Per view: the latest feature row with ``feature_ts <= entity_ts`` for the entity's key, null
    when there is none or when ``feature_ts + ttl < entity_ts`` (ttl > 0), as Feast's join.
    """
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        ent = entities.append_column("_row", pa.array(np.arange(entities.num_rows, dtype=np.int64)))
        con.register("_entities", ent)
        joins, select = [], []
        for i, v in enumerate(views):
            cols = ", ".join(f"{_q(src)} AS _f{i}_{j}" for j, src in enumerate(v.columns))
            joins.append(
                f"ASOF LEFT JOIN (SELECT {_q(v.key)} AS _k{i}, event_timestamp AS _t{i}, {cols} "
                f"FROM read_parquet({sql_list(v.files)})) v{i} "
                f"ON e.{_q(v.key)} = v{i}._k{i} AND e.event_timestamp >= v{i}._t{i}"
            )
            us = v.ttl // dt.timedelta(microseconds=1)
            for j, feat in enumerate(v.columns.values()):
                if us:
                    select.append(
                        f"CASE WHEN v{i}._t{i} + to_microseconds({us}) >= e.event_timestamp THEN v{i}._f{i}_{j} END "
                        f"AS {_q(feat)}"
                    )
                else:
                    select.append(f"v{i}._f{i}_{j} AS {_q(feat)}")
        sql = f"SELECT {', '.join(select)} FROM _entities e {' '.join(joins)} ORDER BY e._row"
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def entity_table(user_id: np.ndarray, item_id: np.ndarray, ts: pd.Series) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(user_id, pa.int64()),
            "item_id": pa.array(item_id, pa.int64()),
            "event_timestamp": pa.Array.from_pandas(ts),
        }
    )

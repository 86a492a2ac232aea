"""Materialization into the online store: the latest row per key of a window, written in Feast's format.

The rows are selected here (a DuckDB query over the view's source files, what Feast's
materialize with ``pull_latest_features`` writes: bounds inclusive); the format belongs to
:mod:`featurestore` (``sqlite_store.write_rows``, ``redis_store.write_rows``). One
:class:`OnlineTarget` per store kind, behind the same three calls (write a view, count what it
holds, finish the run), so the step has one materialization loop for both stores:

- SQLite: all rows, upserted, in one transaction per view, and optionally only what changed since
  the previous run (:class:`MaterializationState`, kept in the online store file itself);
- Redis: rows strictly newer than the store's only (Feast's rule), then the windows and a
  generation counter recorded (serving watches the counter).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from components.features.sources import SourceInfo, sql_list
from featurestore import FeatureStoreError, OnlineRows, online_db_path, sqlite_table
from featurestore import redis_store as R
from featurestore import sqlite_store as Q
from featurestore.layout import TS_COLUMN
from featurestore.sqlite_store import quote as _q
from taml.core.config import Config

STATE_TABLE = "_taml_materialized"
WRITE_CACHE_KIB = 256 * 1024  # SQLite page cache of the writer: a view's table and indexes stay in memory


@dataclass(frozen=True)
class ViewSlice:
    """One view's source and the window of it to write (``columns``: source column -> feature)."""

    source: SourceInfo
    dtypes: dict[str, str]  # feature -> feast.types name
    start: dt.datetime
    end: dt.datetime

    @property
    def view(self) -> str:
        return self.source.view


@dataclass
class ViewWrite:
    view: str
    start: dt.datetime  # the window actually read (later than the requested start when incremental)
    end: dt.datetime
    rows: int  # entities with a row in the window read
    written: int  # of those, written (Redis: strictly newer than the store's)
    incremental: bool = False
    holding: int | None = None  # Redis: entities holding their row or a newer one afterwards


def latest_rows(
    duck: duckdb.DuckDBPyConnection, s: ViewSlice, start: dt.datetime | None = None
) -> OnlineRows:
    """The latest source row per key stamped in [start, end] (inclusive, as Feast), features by name."""
    src = s.source
    select = ", ".join(f"{_q(col)} AS {_q(feat)}" for col, feat in src.columns.items())
    table = duck.sql(
        f"SELECT {_q(src.key)}, epoch_us(event_timestamp) AS {TS_COLUMN}, {select} "
        f"FROM read_parquet({sql_list(src.files)}) WHERE event_timestamp >= ? AND event_timestamp <= ? "
        f"QUALIFY row_number() OVER (PARTITION BY {_q(src.key)} ORDER BY event_timestamp DESC) = 1",
        params=[start or s.start, s.end],
    ).to_arrow_table()
    return OnlineRows(s.view, src.key, table, {feat: s.dtypes[feat] for feat in src.columns.values()})


# --- SQLite: incremental state -------------------------------------------------------------------


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
    s: ViewSlice,
    table: str,
    fingerprint: dict,
) -> dt.datetime | None:
    """The first instant still to write, when an incremental write is exact; None otherwise."""
    prev = state.get(s.view)
    if prev is None:
        return None
    p_start, p_end, p_files, n, ts_sum = prev
    if p_start > _us(s.start) or p_end > _us(s.end) or _guard(state.con, table) != (n, ts_sum):
        return None
    if any(fingerprint.get(f) != v for f, v in p_files.items()):
        return None
    new = [f for f in s.source.files if f not in p_files]
    if new:
        first = duck.execute(
            f"SELECT min(epoch_us(event_timestamp)) FROM read_parquet({sql_list(new)})"
        ).fetchall()[0][0]
        if first is not None and first <= p_end:
            return None
    return max(s.start, _from_us(p_end + 1))


def sqlite_held(db_path: str, table: str, feature: str, start: dt.datetime, end: dt.datetime) -> int:
    """Entities of ``table`` whose ``feature`` row is stamped in [start, end] (the after-write check)."""
    # Feast stores event_ts as int(naive_utc.timestamp()); the same conversion bounds the window.
    lo, hi = (int(t.astimezone(dt.UTC).replace(tzinfo=None).timestamp()) for t in (start, end))
    lo += 1 if start.microsecond else 0  # an open start: (end - ttl, end] in whole seconds
    with sqlite3.connect(db_path) as con:
        return con.execute(
            f"SELECT count(*) FROM {_q(table)} WHERE feature_name = ? AND event_ts >= ? AND event_ts <= ?",
            (feature, lo, hi),
        ).fetchone()[0]


# --- the two targets -----------------------------------------------------------------------------


class SqliteTarget:
    """The SQLite online store of a data root; each view's rows and state commit in one transaction."""

    def __init__(self, config: Config, data_root: str):
        self.project = config.features.project
        self.batch_size = config.features.online_write_batch_size
        self.incremental = config.features.incremental_materialize
        self.db_path = online_db_path(data_root)
        self.where = self.db_path

    def write(self, s: ViewSlice, duck: duckdb.DuckDBPyConnection) -> ViewWrite:
        table = sqlite_table(self.project, s.view)
        fingerprint = file_fingerprint(s.source.files)
        con = sqlite3.connect(self.db_path, isolation_level=None)
        con.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")  # this connection only; the file is unchanged
        try:
            con.execute("BEGIN IMMEDIATE")
            Q.create_table(con, table)
            state = MaterializationState(con)
            read_from = incremental_start(state, duck, s, table, fingerprint) if self.incremental else None
            is_incremental = read_from is not None
            read_from = read_from or s.start
            rows = 0
            if read_from <= s.end:
                rows = Q.write_rows(con, self.project, latest_rows(duck, s, read_from), self.batch_size)
            state.put(s.view, _us(s.start), _us(s.end), fingerprint, _guard(con, table))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        return ViewWrite(s.view, read_from, s.end, rows, rows, is_incremental)

    def held(self, s: ViewSlice, done: ViewWrite) -> int:
        feature = next(iter(s.source.columns.values()))
        return sqlite_held(self.db_path, sqlite_table(self.project, s.view), feature, s.start, s.end)

    def failed(self, view: str) -> None:
        forget(self.db_path, view)  # the next run writes the whole window again

    def finish(self, windows: dict[str, tuple[str, str]]) -> None:
        pass

    def close(self) -> None:
        pass


class RedisTarget:
    """Feast's Redis online store: newer rows only; redis-py errors become one redacted line."""

    def __init__(self, config: Config, data_root: str | None = None):
        self.config = config
        self.project = config.features.project
        self.batch_size = config.features.online_write_batch_size
        self.where = R.target(config).where
        self.client = R.connect(config)

    def _redis(self, doing: str, fn, *args):
        try:
            return fn(*args)
        except FeatureStoreError:
            raise
        except Exception as e:
            if type(e).__module__.split(".")[0] != "redis":
                raise
            raise R.store_error(self.config, e, doing) from None

    def write(self, s: ViewSlice, duck: duckdb.DuckDBPyConnection) -> ViewWrite:
        rows = latest_rows(duck, s)
        out = self._redis("materializing", R.write_rows, self.client, self.project, rows, self.batch_size)
        return ViewWrite(s.view, s.start, s.end, len(rows), out.written, holding=out.holding)

    def held(self, s: ViewSlice, done: ViewWrite) -> int:
        return done.holding or 0

    def failed(self, view: str) -> None:
        pass  # nothing recorded per view: the next run reads the whole window anyway

    def finish(self, windows: dict[str, tuple[str, str]]) -> None:
        self._redis("materializing", R.record_materialization, self.client, self.project, windows)

    def close(self) -> None:
        self.client.close()


OnlineTarget = SqliteTarget | RedisTarget


def open_target(config: Config, data_root: str) -> OnlineTarget:
    """The writer of the configured online store (SQLite or Redis)."""
    if config.features.online_store == "sqlite":
        return SqliteTarget(config, data_root)
    return RedisTarget(config, data_root)

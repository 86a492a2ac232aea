"""Feast's own reader (``FeatureStore.get_online_features``) reads what featurestore writes.

For SQLite and for Redis (tests/redis_fixtures.py): rows written by hand through the format's
writers (negative and large ids, nulls, doubles, every view of the feature service), then read
back by Feast and by the format's direct readers; both must give exactly the rows written.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from redis_fixtures import PASSWORD_ENV

from components.features import apply, feast_lookup, feature_store
from featurestore import OnlineRows, online_db_path, online_reader, view_columns
from featurestore import redis_store as R
from featurestore import sqlite_store as Q
from featurestore.layout import TS_COLUMN
from simulator.curated import SyntheticSpec, write_history
from taml.core.config import load_config
from taml.core.feature_repo import definitions

USERS = [0, 7, 2**40]
ITEMS = [3, 2**33, 11]
ABSENT = 999  # an id no row was written for
BATCH = 2  # smaller than the rows: the writers' batching is exercised
NOW_US = int(dt.datetime.now(dt.UTC).timestamp() * 1e6)  # fresh rows: inside every view's TTL


def _rows(view: str, ids: list[int], seed: int, ts_us: int = NOW_US) -> OnlineRows:
    """One row per id; each feature null on one row, ints negative and large, rates as doubles."""
    d = definitions()
    entity, kind = d.VIEWS[view]
    dtypes = d.feature_dtypes(entity, kind)
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array] = {f"{entity}_id": pa.array(ids, pa.int64())}
    cols[TS_COLUMN] = pa.array([ts_us - 1_000_000 * i for i in range(len(ids))], pa.int64())
    for j, (feat, dtype) in enumerate(dtypes.items()):
        if dtype == "Float64":
            values = [float(x) for x in rng.random(len(ids))]
        else:
            values = [int(x) for x in rng.integers(-(2**40), 2**40, len(ids))]
        values[j % len(ids)] = None
        cols[feat] = pa.array(values, pa.float64() if dtype == "Float64" else pa.int64())
    return OnlineRows(view, f"{entity}_id", pa.table(cols), dtypes)


def _written(seed: int = 0) -> dict[str, OnlineRows]:
    return {
        view: _rows(view, USERS if entity == "user" else ITEMS, seed + i)
        for i, (view, (entity, _)) in enumerate(view_columns().items())
    }


def _expected(rows: dict[str, OnlineRows], user: int, items: list[int]) -> list[dict]:
    """The rows a lookup must return: what was written, None for absent entities."""

    def values(entity: str, ident: int) -> dict:
        out = {}
        for r in rows.values():
            if r.join_key != f"{entity}_id":
                continue
            ids = r.table.column(r.join_key).to_pylist()
            i = ids.index(ident) if ident in ids else None
            out.update({f: None if i is None else r.table.column(f)[i].as_py() for f in r.features})
        return out

    return [{"user_id": user, "item_id": i, **values("user", user), **values("item", i)} for i in items]


def _cfg(tmp: Path, *overrides: str):
    return load_config(env={}, overrides=[f"paths.artifact_root={tmp / 'art'}", *overrides])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("featurestore") / "data"
    write_history(
        str(root), dt.date(2026, 11, 1), 1, SyntheticSpec(samples_per_day=100, users=10, items=10, seed=3)
    )
    return str(root)


def _check_reads(cfg, root: str, rows: dict[str, OnlineRows]) -> None:
    store = feature_store(cfg, root)
    reader = online_reader(cfg, root)
    try:
        for user in [*USERS, ABSENT]:
            items = [*ITEMS, ABSENT, ITEMS[0]]
            want = _expected(rows, user, items)
            assert feast_lookup(store, cfg, user, items) == want
            assert reader.lookup(user, items) == want
    finally:
        reader.close()


def test_feast_reads_what_the_sqlite_writer_writes(data_root, tmp_path):
    cfg = _cfg(tmp_path)
    apply(cfg, data_root)  # Feast's own tables first: the writer must fit into them
    rows = _written()
    with sqlite3.connect(online_db_path(data_root)) as con:
        assert [Q.write_rows(con, cfg.features.project, r, BATCH) for r in rows.values()] == [3, 3, 3, 3]
    _check_reads(cfg, data_root, rows)
    newer = _written(seed=10)  # an upsert replaces every feature of a key, nulls included
    with sqlite3.connect(online_db_path(data_root)) as con:
        for r in newer.values():
            Q.write_rows(con, cfg.features.project, r, BATCH)
    _check_reads(cfg, data_root, newer)


def test_feast_reads_what_the_redis_writer_writes(data_root, tmp_path, redis_server, redis_password):
    db = redis_server.fresh_db()
    cfg = _cfg(
        tmp_path,
        "features.online_store=redis",
        f"features.redis_connection_string={redis_server.connection_string(db)}",
    )
    assert cfg.features.redis_password_env == PASSWORD_ENV
    apply(cfg, data_root)
    rows = _written()
    client = R.connect(cfg)
    try:
        done = [R.write_rows(client, cfg.features.project, r, BATCH) for r in rows.values()]
        assert done == [R.RedisWrite(written=3, holding=3)] * 4
        _check_reads(cfg, data_root, rows)
        # Older rows are skipped as Feast skips them: the store keeps the newer ones.
        older = {
            v: _rows(v, r.table.column(r.join_key).to_pylist(), 99, NOW_US - 3_600_000_000)
            for v, r in rows.items()
        }
        assert [R.write_rows(client, cfg.features.project, r, BATCH) for r in older.values()] == [
            R.RedisWrite(written=0, holding=3)
        ] * 4
        _check_reads(cfg, data_root, rows)
    finally:
        client.close()

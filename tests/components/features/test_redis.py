"""Feast's Redis online store with a real redis-server (tests/redis_fixtures.py), password from the environment.

One history is materialized three ways and shared: the project's direct Redis writer (the
default with ``--profile redis``), Feast's own ``materialize`` into Redis
(``features.direct_io=false``), and the direct SQLite writer (the local default). The Redis
hashes must be equal byte for byte, every reader must give the same rows, and the online rows
must be the offline store's latest rows as of the end of the day.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from redis_fixtures import PASSWORD_ENV

from components.features import (
    build_features,
    feast_lookup,
    feature_store,
    materialize,
    online_reader,
)
from components.features import direct as D
from components.features.build import day_end, join_views
from featurestore import FeatureStoreError, RedisOnlineReader
from featurestore import redis_store as R
from simulator.curated import SyntheticSpec, write_history
from taml.cli.main import main
from taml.core.config import load_config

START = dt.date(2026, 11, 1)
DAY = dt.date(2026, 11, 3)
SPEC = SyntheticSpec(samples_per_day=1500, users=200, items=80, seed=5)
ITEMS = [0, 1, 2, 3, 17, 79, 10_000]  # 10_000: an item the store has never seen


def _cfg(tmp: Path, connection: str | None, *overrides: str):
    redis = (
        ["features.online_store=redis", f"features.redis_connection_string={connection}"]
        if connection
        else []
    )
    return load_config(
        env={},
        overrides=[
            f"paths.artifact_root={tmp / 'art'}",
            "features.require_validation=false",
            *redis,
            *overrides,
        ],
    )


def _dump(client) -> dict[bytes, dict[bytes, bytes]]:
    """Every Feast hash of the database (the project's own ``_taml:*`` keys left out)."""
    return {k: client.hgetall(k) for k in sorted(client.keys()) if not k.startswith(b"_taml:")}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("redis_history")
    root = tmp / "data"
    write_history(str(root), START, 3, SPEC)
    return tmp, root


@pytest.fixture(scope="module")
def stores(history, redis_server):
    """D-1 then D through the direct Redis writer, Feast's materialize into Redis, and direct SQLite."""
    tmp, root = history
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PASSWORD_ENV, redis_server.password)
        for name, overrides in (
            ("direct", ()),
            ("feast", ("features.direct_io=false",)),
            ("sqlite", ()),
        ):
            db = redis_server.fresh_db()
            here = tmp / name
            data = here / "data"
            shutil.copytree(root, data)
            cfg = _cfg(here, None if name == "sqlite" else redis_server.connection_string(db), *overrides)
            build_features(cfg, DAY - dt.timedelta(days=1), str(data))
            result = build_features(cfg, DAY, str(data))
            out[name] = {"cfg": cfg, "root": data, "db": db, "result": result}
    return out


def test_direct_redis_writes_exactly_what_feast_materialize_writes(stores, redis_server):
    direct, feast = stores["direct"], stores["feast"]
    assert (
        direct["result"].online_rows == feast["result"].online_rows == stores["sqlite"]["result"].online_rows
    )
    got, want = _dump(redis_server.client(direct["db"])), _dump(redis_server.client(feast["db"]))
    assert len(got) == SPEC.users + SPEC.items and got == want
    # One hash per entity holds both of its views: 4 profile + 5 stats features + 2 timestamps (or fewer
    # when the entity has no stats row).
    assert max(len(h) for h in got.values()) == 11 and min(len(h) for h in got.values()) >= 5
    # The training tables agree too (the offline side does not depend on the online store).
    assert direct["result"].null_share == feast["result"].null_share


def test_every_reader_gives_the_same_rows_feast_included(stores, redis_password):
    """The project's Redis reader, Feast's get_online_features on that Redis, and the SQLite reader."""
    direct, sqlite = stores["direct"], stores["sqlite"]
    cfg, root = direct["cfg"], str(direct["root"])
    reader = online_reader(cfg, root)
    assert isinstance(reader, RedisOnlineReader)
    store = feature_store(cfg, root)
    lite = online_reader(sqlite["cfg"], str(sqlite["root"]))
    for user in (0, 7, 199, 5_000):
        fast = reader.lookup(user, ITEMS)
        assert fast == lite.lookup(user, ITEMS)
        slow = feast_lookup(store, cfg, user, ITEMS)
        assert fast == [{k: s[k] for k in f} for f, s in zip(fast, slow, strict=True)]
    row = reader.lookup(5_000, ITEMS)[-1]
    assert row["gender"] is None and row["category_id"] is None and row["item_id"] == 10_000
    assert reader.lookup(7, []) == [] and reader.lookup(7, [3, 3])[0] == reader.lookup(7, [3])[0]


def test_online_rows_are_the_offline_rows_as_of_the_end_of_the_day(stores, redis_password):
    """Point-in-time consistency: what serving reads after materializing D is what the offline store
    (DuckDB over the same sources, Feast's join) holds for an entity row at the end of D."""
    direct = stores["direct"]
    cfg, root = direct["cfg"], str(direct["root"])
    reader = online_reader(cfg, root)
    users, items = list(range(SPEC.users)), list(range(SPEC.items))
    end = day_end(DAY)
    # No TTL here: the online store keeps an entity's last stats until newer ones arrive (serving
    # does not apply TTLs), the offline join with TTLs would null them after 24 h.
    views = [D.JoinView(v.view, v.key, v.files, v.columns, dt.timedelta(0)) for v in join_views(cfg, root)]
    n = len(users) * len(items)
    entities = pa.table(
        {
            "user_id": pa.array([u for u in users for _ in items], pa.int64()),
            "item_id": pa.array(items * len(users), pa.int64()),
            "event_timestamp": pa.array([end] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    offline = D.point_in_time(entities, views).to_pylist()
    online = [row for u in users for row in reader.lookup(u, items)]
    assert len(online) == len(offline) == n
    for on, off in zip(online, offline, strict=True):
        assert {k: on[k] for k in off} == off
    # And with the TTLs: every entity whose stats of D exist sees exactly those.
    fresh = D.point_in_time(entities.slice(0, len(items)), join_views(cfg, root)).to_pylist()
    for on, off in zip(reader.lookup(0, items), fresh, strict=True):
        if off["item_impressions_7d"] is not None:
            assert on["item_impressions_7d"] == off["item_impressions_7d"]


def test_rerun_writes_nothing_and_a_backfill_never_moves_an_entity_back(
    stores, redis_server, redis_password, caplog
):
    direct = stores["direct"]
    cfg, root = direct["cfg"], str(direct["root"])
    client = redis_server.client(direct["db"])
    before = _dump(client)
    generation = int(client.get(R.generation_key("taml")))
    with caplog.at_level(logging.INFO, logger="components.features.build"):
        assert materialize(cfg, DAY, root) == direct["result"].online_rows
    assert caplog.text.count("(full; 0 written of ") == len(direct["result"].online_rows)
    assert _dump(client) == before and int(client.get(R.generation_key("taml"))) == generation + 1
    # A backfill of D-1: every key still holds a row at least as new as its D-1 row (Feast's rule).
    materialize(cfg, DAY - dt.timedelta(days=1), root)
    assert _dump(client) == before
    windows = json.loads(client.hget(R.materialization_key("taml"), "user_stats_7d"))
    assert windows[1] == day_end(DAY - dt.timedelta(days=1)).isoformat()
    assert redis_password not in caplog.text


def test_taml_features_online_reads_redis(stores, redis_password, capsys):
    direct = stores["direct"]
    root = str(direct["root"])
    args = [
        "features", "online", "--user", "7", "--items", "1,2,10000", "--json", "--data-root", root,
        "--profile", "redis", "--set", f"features.redis_connection_string={direct['cfg'].features.redis_connection_string}",
    ]  # fmt: skip
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == online_reader(direct["cfg"], root).lookup(7, [1, 2, 10_000])
    assert main([*args, "--via-feast"]) == 0
    assert json.loads(capsys.readouterr().out) == rows
    assert rows[0]["gender"] is not None and rows[2]["category_id"] is None


def test_unreachable_or_refused_redis_is_one_clear_error(
    stores, redis_server, redis_password, tmp_path, capsys
):
    cfg = stores["direct"]["cfg"]
    from redis_fixtures import _free_port

    closed = _cfg(tmp_path, f"127.0.0.1:{_free_port()}")
    with pytest.raises(
        FeatureStoreError, match=r"online store redis 127\.0\.0\.1:\d+ db 0: connecting failed"
    ):
        online_reader(closed, str(tmp_path))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PASSWORD_ENV, "wrong-" + redis_password)
        with pytest.raises(
            FeatureStoreError, match=r"AuthenticationError.*password from \$TAML_REDIS_PASSWORD"
        ) as e:
            online_reader(cfg, str(tmp_path))
        assert redis_password not in str(e.value)
    empty = _cfg(tmp_path, None, "features.online_store=redis")
    with pytest.raises(FeatureStoreError, match="redis_connection_string is empty"):
        online_reader(empty, str(tmp_path))

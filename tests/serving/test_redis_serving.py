"""Serving from Feast's Redis online store (a real redis-server with a password) next to SQLite.

The same curated history is materialized by the features step into Redis and into SQLite; two
real uvicorn servers (one per store) with the same model must answer every request identically.
A re-materialization into Redis moves the store's token (the item cache is dropped); an
unreachable Redis makes the server not ready, with an error naming the server and no password.
"""

from __future__ import annotations

import httpx
import pytest
import serving_fixtures as F
from redis_fixtures import PASSWORD_ENV, _free_port

from components.features import materialize
from serving import Runtime, create_app
from serving.features import feast_features
from simulator.curated import SyntheticSpec, write_history

ITEMS = [0, 1, 5, 17, 79, 10_000]


@pytest.fixture(scope="module")
def world(tmp_path_factory, redis_server):
    tmp = tmp_path_factory.mktemp("redis_serving")
    db = redis_server.fresh_db()
    common = ("serving.log_enabled=false",)
    cfgs = {
        "sqlite": F.serving_config(tmp / "sqlite", *common),
        "redis": F.serving_config(
            tmp / "redis",
            *common,
            "features.online_store=redis",
            f"features.redis_connection_string={redis_server.connection_string(db)}",
        ),
    }
    spec = SyntheticSpec(samples_per_day=1500, users=F.USERS, items=F.ITEMS, seed=5)
    version = F.make_version(cfgs["sqlite"], tmp / "models", "v1", seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PASSWORD_ENV, redis_server.password)
        for cfg in cfgs.values():
            write_history(cfg.paths.data_root, F.START, 3, spec)
            materialize(cfg, F.DAY, cfg.paths.data_root)
            F.publish(cfg.paths.artifact_root, "taml", version)
        runtimes = {k: Runtime(c, c.paths.data_root, c.paths.artifact_root) for k, c in cfgs.items()}
        with (
            F.running_server(create_app(runtimes["sqlite"])) as lite,
            F.running_server(create_app(runtimes["redis"])) as red,
        ):
            for url in (lite, red):
                assert F.wait_until(lambda u=url: httpx.get(f"{u}/v1/models/taml").status_code == 200, 30)
            yield {"cfgs": cfgs, "urls": {"sqlite": lite, "redis": red}, "runtimes": runtimes, "db": db}


def _both(world, path, body):
    out = {}
    for k, url in world["urls"].items():
        r = httpx.post(url + path, json=body, timeout=20)
        assert r.status_code == 200, (k, r.text)
        out[k] = r.json()
    return out


def test_redis_and_sqlite_servers_answer_identically(world):
    for user in (0, 7, 199, 5_000):
        got = _both(
            world, "/v1/models/taml:rank", {"user_id": user, "items": ITEMS, "ts": "2026-11-04T10:00:00Z"}
        )
        assert got["redis"] == got["sqlite"]
        assert got["redis"]["unknown_user"] is (user == 5_000)
        assert [p["unknown_item"] for p in got["redis"]["predictions"]] == [i == 10_000 for i in ITEMS]
    instances = [
        {"user_id": u, "item_id": i, "ts": "2026-11-04T10:00:00Z"} for u, i in [(1, 2), (3, 79), (9, 10_000)]
    ]
    got = _both(world, "/v1/models/taml:predict", {"instances": instances})
    assert got["redis"] == got["sqlite"] and len(got["redis"]["predictions"]) == 3


def test_rematerializing_redis_moves_the_token_and_drops_the_item_cache(world, redis_server):
    features = world["runtimes"]["redis"].features
    cfg = world["cfgs"]["redis"]
    httpx.post(
        world["urls"]["redis"] + "/v1/models/taml:rank", json={"user_id": 1, "items": [1, 2]}, timeout=20
    )
    assert features.refresh() is False  # nothing changed
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PASSWORD_ENV, redis_server.password)
        materialize(cfg, F.DAY, cfg.paths.data_root)
        assert features.refresh() is True
        assert features.refresh() is False


def test_unreachable_redis_is_not_ready_and_names_the_server(world, tmp_path, redis_password):
    cfg = F.serving_config(
        tmp_path, "serving.log_enabled=false", "features.online_store=redis",
        f"features.redis_connection_string=127.0.0.1:{_free_port()}",
    )  # fmt: skip
    features = feast_features(cfg, cfg.paths.data_root)
    assert features.refresh() is False and not features.ready
    assert (
        "online store redis 127.0.0.1:" in features.last_error and "connecting failed" in features.last_error
    )
    assert redis_password not in features.last_error
    rt = Runtime(cfg, cfg.paths.data_root, cfg.paths.artifact_root, features=features)
    with F.running_server(create_app(rt)) as url:
        r = httpx.get(f"{url}/readyz", timeout=10)
        assert r.status_code == 503 and r.json()["features_ready"] is False
        assert redis_password not in r.text
        r = httpx.post(f"{url}/v1/models/taml:rank", json={"user_id": 1, "items": [1]}, timeout=10)
        assert r.status_code == 503

"""The prediction server as a real uvicorn server on 127.0.0.1, with a real Feast store and registry."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import httpx
import pytest
import serving_fixtures as F

from serving import Runtime, create_app
from serving.features import FeastOnlineSource, OnlineFeatures
from taml.core import registry


class CountingSource(FeastOnlineSource):
    """The Feast-backed source, counting lookups (so tests can see what a request costs)."""

    calls = {"user": 0, "items": 0, "item_rows": 0}

    def user(self, user_id):
        CountingSource.calls["user"] += 1
        return super().user(user_id)

    def items(self, item_ids):
        CountingSource.calls["items"] += 1
        CountingSource.calls["item_rows"] += len(item_ids)
        return super().items(item_ids)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    cfg = F.serving_config(
        tmp, "serving.max_instances=50", "serving.max_rank_items=200", "serving.max_body_bytes=20000"
    )
    data, art = str(tmp / "data"), str(tmp / "art")
    F.build_store(cfg, data)
    models = tmp / "models"
    v1, v2 = F.make_version(cfg, models, "v1", seed=1), F.make_version(cfg, models, "v2", seed=2)
    broken = models / "v3"
    shutil.copytree(v2, broken)
    (broken / "weights.safetensors").write_bytes(b"not a safetensors file")
    for v in (v1, v2, broken):
        F.publish(art, "taml", v, promote=False)
    features = OnlineFeatures(lambda: CountingSource(cfg, data), cfg.serving.item_cache_size)
    rt = Runtime(cfg, data, art, features=features)
    with F.running_server(create_app(rt)) as url:
        yield {"cfg": cfg, "url": url, "rt": rt, "art": art, "data": data, "tmp": tmp}


def _get(url, path):
    return httpx.get(url + path, timeout=10)


def _post(url, path, body=None, **kw):
    if body is not None:
        kw["json"] = body
    return httpx.post(url + path, timeout=10, **kw)


def test_not_ready_until_a_model_is_loaded_then_ready(world):
    url, art = world["url"], world["art"]
    # No production alias yet: alive, but not ready, and predictions are refused with 503.
    assert _get(url, "/healthz").status_code == 200 and _get(url, "/").json() == {"status": "alive"}
    assert _get(url, "/v1/models/taml").status_code == 503
    assert _get(url, "/readyz").json()["ready"] is False
    r = _post(url, "/v1/models/taml:predict", {"instances": [{"user_id": 1, "item_id": 2}]})
    assert r.status_code == 503 and "not ready" in r.json()["error"]
    registry.promote(art, "taml", "v1")
    assert F.wait_until(lambda: _get(url, "/v1/models/taml").status_code == 200, 20)
    assert _get(url, "/v1/models/taml").json() == {"name": "taml", "ready": True, "version": "v1"}
    assert _get(url, "/v1/models").json() == {"models": ["taml"]}


def test_predict_scores_each_instance_and_flags_unknown_entities(world):
    url = world["url"]
    body = {
        "instances": [
            {"user_id": 1, "item_id": 2, "position": 3, "device": "ios", "ts": "2026-11-04T10:00:00Z"},
            {"user_id": 1, "item_id": 5},
            {"user_id": 999_999, "item_id": 999_999, "extra_key": "ignored"},
        ]
    }
    r = _post(url, "/v1/models/taml:predict", body)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 3
    for p in preds:
        assert set(p) == {"p_ctr", "p_cvr", "p_ctcvr", "model_version", "unknown_user", "unknown_item"}
        assert 0 < p["p_ctcvr"] <= p["p_ctr"] < 1 and 0 < p["p_cvr"] < 1 and p["model_version"] == "v1"
    assert [(p["unknown_user"], p["unknown_item"]) for p in preds] == [
        (False, False),
        (False, False),
        (True, True),
    ]


def test_rank_costs_one_user_lookup_and_items_come_from_the_cache(world):
    url, rt = world["url"], world["rt"]
    items = list(range(60)) + [123_456]
    _post(url, "/v1/models/taml:rank", {"user_id": 4, "items": items})  # fills the item cache
    before = dict(CountingSource.calls)
    r = _post(url, "/v1/models/taml:rank", {"user_id": 4, "items": items, "device": "web", "position": 2})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_version"] == "v1" and out["user_id"] == 4 and out["unknown_user"] is False
    assert [p["item_id"] for p in out["predictions"]] == items
    assert [p["unknown_item"] for p in out["predictions"]] == [False] * 60 + [True]
    assert CountingSource.calls["user"] == before["user"] + 1
    assert CountingSource.calls["items"] == before["items"]  # unknown items are cached too
    # The same pairs through :predict give the same scores (one model, one feature path).
    same = _post(
        url,
        "/v1/models/taml:predict",
        {"instances": [{"user_id": 4, "item_id": i, "device": "web", "position": 2} for i in items[:5]]},
    ).json()["predictions"]
    ts_free = [p["p_ctr"] for p in out["predictions"][:5]]
    assert [p["p_ctr"] for p in same] == pytest.approx(ts_free, rel=1e-6)  # batch size changes float sums
    assert rt.features.hits > 0


BAD = [
    ("not json", {"content": b"{nope", "headers": {"content-type": "application/json"}}, 400, None),
    ("a list body", {"json": [1, 2]}, 400, None),
    ("no instances", {"json": {"inputs": []}}, 400, "instances"),
    ("instances not a list", {"json": {"instances": {"user_id": 1}}}, 400, "instances"),
    ("empty instances", {"json": {"instances": []}}, 400, "instances"),
    ("instance not an object", {"json": {"instances": [5]}}, 400, "instances[0]"),
    ("missing item_id", {"json": {"instances": [{"user_id": 1}]}}, 400, "instances[0].item_id"),
    ("string id", {"json": {"instances": [{"user_id": "7", "item_id": 1}]}}, 400, "instances[0].user_id"),
    ("float id", {"json": {"instances": [{"user_id": 1, "item_id": 1.5}]}}, 400, "instances[0].item_id"),
    ("negative id", {"json": {"instances": [{"user_id": -1, "item_id": 1}]}}, 400, "instances[0].user_id"),
    (
        "bad device",
        {"json": {"instances": [{"user_id": 1, "item_id": 1, "device": "tv"}]}},
        400,
        "instances[0].device",
    ),
    (
        "position out of range",
        {"json": {"instances": [{"user_id": 1, "item_id": 1, "position": 0}]}},
        400,
        "instances[0].position",
    ),
    (
        "bad ts",
        {"json": {"instances": [{"user_id": 1, "item_id": 1, "ts": "yesterday"}]}},
        400,
        "instances[0].ts",
    ),
    (
        "naive ts",
        {"json": {"instances": [{"user_id": 1, "item_id": 1, "ts": "2026-11-04T10:00:00"}]}},
        400,
        "instances[0].ts",
    ),
    ("too many instances", {"json": {"instances": [{"user_id": 1, "item_id": 1}] * 51}}, 400, "instances"),
    ("oversized body", {"content": b'{"instances": [' + b" " * 30000 + b"]}"}, 413, None),
]


@pytest.mark.parametrize("case,kwargs,status,field", BAD, ids=[b[0] for b in BAD])
def test_bad_predict_input_is_a_4xx_naming_the_field(world, case, kwargs, status, field):
    r = _post(world["url"], "/v1/models/taml:predict", **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] and body["field"] == field
    if field:
        assert field in body["error"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"items": [1]}, "user_id"),
        ({"user_id": 1}, "items"),
        ({"user_id": 1, "items": []}, "items"),
        ({"user_id": 1, "items": [1, "x"]}, "items[1]"),
        ({"user_id": 1, "items": list(range(201))}, "items"),
        ({"user_id": 1, "items": [1], "device": 3}, "device"),
    ],
)
def test_bad_rank_input_is_a_400_naming_the_field(world, body, field):
    r = _post(world["url"], "/v1/models/taml:rank", body)
    assert r.status_code == 400 and r.json()["field"] == field, r.text


def test_chunked_oversized_body_is_refused_without_reading_it_all(world):
    def chunks():
        for _ in range(100):
            yield b" " * 1000

    r = httpx.post(world["url"] + "/v1/models/taml:predict", content=chunks(), timeout=10)
    assert r.status_code == 413


def test_hot_swap_under_concurrent_requests_drops_nothing(world):
    url, art, rt = world["url"], world["art"], world["rt"]
    assert _get(url, "/v1/models/taml").json()["version"] == "v1"
    stop = threading.Event()
    seen: list[list[str]] = []
    failures: list[str] = []

    def client(k: int) -> None:
        mine: list[str] = []
        seen.append(mine)
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                try:
                    if k % 2:
                        r = c.post(
                            url + "/v1/models/taml:rank", json={"user_id": k, "items": list(range(40))}
                        )
                        v = r.json()["model_version"] if r.status_code == 200 else None
                    else:
                        r = c.post(
                            url + "/v1/models/taml:predict",
                            json={"instances": [{"user_id": k, "item_id": 1}]},
                        )
                        v = r.json()["predictions"][0]["model_version"] if r.status_code == 200 else None
                except httpx.HTTPError as e:
                    failures.append(repr(e))
                    continue
                if v is None:
                    failures.append(f"{r.status_code} {r.text}")
                else:
                    mine.append(v)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        assert F.wait_until(lambda: sum(map(len, seen)) >= 20, 20)
        registry.promote(art, "taml", "v2")
        assert F.wait_until(lambda: all(s and s[-1] == "v2" for s in seen), 30), "v2 never served"
        n = sum(map(len, seen))
        assert F.wait_until(lambda: sum(map(len, seen)) >= n + 20, 20)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert failures == []
    for s in seen:  # each client saw v1 then v2, never back
        assert s == sorted(s) and set(s) <= {"v1", "v2"}
    assert any("v1" in s for s in seen)
    assert rt.holder.current.version == "v2"


def test_a_version_that_fails_to_load_is_not_swapped_in(world):
    url, art, rt = world["url"], world["art"], world["rt"]
    registry.promote(art, "taml", "v3")
    assert F.wait_until(lambda: rt.follower.last_error is not None and "v3" in rt.follower.last_error, 20)
    assert _get(url, "/v1/models/taml").json() == {"name": "taml", "ready": True, "version": "v2"}
    r = _post(url, "/v1/models/taml:predict", {"instances": [{"user_id": 1, "item_id": 1}]})
    assert r.status_code == 200 and r.json()["predictions"][0]["model_version"] == "v2"
    registry.rollback(art, "taml")  # back to v2: the follower is content again
    assert F.wait_until(lambda: rt.follower.check() == "unchanged", 10)


def test_rematerialized_store_refreshes_the_item_cache(world):
    cfg, data, rt = world["cfg"], world["data"], world["rt"]
    import pandas as pd

    from simulator.curated import profile_table, write_parquet
    from taml.core import layout as L

    item = 7
    old = rt.features.items([item])[0]
    day = F.DAY + __import__("datetime").timedelta(days=1)
    row = pd.DataFrame(
        {
            "item_id": [item],
            "event_timestamp": [pd.Timestamp(f"{day} 06:00", tz="UTC")],
            "category_id": [old["category_id"] + 1000],
            "shop_id": [1],
            "brand_id": [1],
            "price_level": [1],
        }
    )
    row["event_timestamp"] = row["event_timestamp"].astype("datetime64[us, UTC]")
    write_parquet(profile_table(row, "item"), L.curated_dir(data, "items", day))
    F.rematerialize(cfg, data)
    assert F.wait_until(lambda: rt.features.items([item])[0]["category_id"] == old["category_id"] + 1000, 20)


def test_prediction_log_is_json_lines_the_monitor_reads(world):
    url, rt, art = world["url"], world["rt"], world["art"]
    r = _post(
        url,
        "/v1/models/taml:rank",
        {"user_id": 3, "items": [1, 2, 424242], "device": "android", "position": 4},
    )
    assert r.status_code == 200
    rt.log.flush()
    files = sorted(Path(art, "serving_log").glob("dt=*/*.jsonl"))
    assert files and rt.log.dropped == 0
    lines = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    mine = [x for x in lines if x["user_id"] == 3 and x["device"] == "android"][-3:]
    assert [x["item_id"] for x in mine] == [1, 2, 424242]
    assert set(mine[0]) >= {
        "ts",
        "model_version",
        "user_id",
        "item_id",
        "position",
        "device",
        "p_ctr",
        "p_cvr",
        "p_ctcvr",
        "unknown_user",
        "unknown_item",
    }
    assert mine[2]["unknown_item"] is True and mine[0]["position"] == 4
    from monitoring.inputs import load_serving_log, serving_log_dir

    day = __import__("datetime").date.fromisoformat(files[-1].parent.name[3:])
    df = load_serving_log(serving_log_dir(world["cfg"], art, day))
    assert df is not None and len(df) >= 3 and df["p_ctr"].between(0, 1).all()

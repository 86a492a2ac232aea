"""Plain pieces of the server: encoder parity with model.encode, the log, the cache, the follower."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import serving_fixtures as F

from serving import ModelHolder, PredictionLog, load_serving_model
from serving.encoding import RowEncoder
from serving.features import OnlineFeatures, StaticSource
from serving.models import AliasFollower, ModelLoadError
from serving.runtime import resolve_port
from serving.schemas import RequestError, parse_json, parse_predict
from taml.core import registry
from taml.core.config import load_config


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("units")
    return F.make_version(F.serving_config(tmp), tmp / "models", "u1")


def test_row_encoder_equals_model_encode_on_awkward_values(version):
    from model import load_model_version
    from model.encode import encode

    loaded = load_model_version(version)
    table = F.training_table(n=300, seed=9)
    table = table.drop(columns=["click", "conversion"]).astype(object)
    rng = np.random.default_rng(0)
    for c in table.columns:  # nulls, NaN, unknown values, text in numeric fields, fractions
        idx = rng.choice(len(table), 40, replace=False)
        table.loc[idx[:10], c] = None
        table.loc[idx[10:20], c] = math.nan
        table.loc[idx[20:25], c] = 10_000_019
        table.loc[idx[25:30], c] = "abc"
        table.loc[idx[30:35], c] = 2.5
        table.loc[idx[35:40], c] = "3"
    want = encode(table, loaded.spec, loaded.vocab)
    got = RowEncoder(loaded.spec, loaded.vocab).encode(table.to_dict("records"))
    np.testing.assert_array_equal(got, want)


def test_encode_items_equals_encode_of_the_merged_rows_with_and_without_its_cache(version):
    from model import load_model_version

    loaded = load_model_version(version)
    enc = RowEncoder(loaded.spec, loaded.vocab)
    table = F.training_table(n=60, seed=3).drop(columns=["click", "conversion"]).astype(object)
    table.loc[[1, 5], "price_level"] = None
    table.loc[[2, 6], "item_ctr_7d"] = math.nan
    table.loc[[3], "brand_id"] = "abc"  # text in an integer field: OOV
    table.loc[[4], "category_id"] = 2.5  # a fraction: OOV
    item_features = ("category_id", "shop_id", "brand_id", "price_level")
    item_cols = [c for c in table.columns if c.startswith("item_") or c in item_features]
    records = table.to_dict("records")
    ids = [int(r["item_id"]) for r in records]
    items: list = [{c: r[c] for c in item_cols if c != "item_id"} for r in records]
    items[7], items[8] = None, {}  # unknown item; an empty row
    items[9] = {"shop_id": items[9]["shop_id"]}  # a row with only some of the item columns
    shared = {c: v for c, v in records[0].items() if c not in item_cols}
    shared["device"] = "tablet"  # unknown value of a shared field

    def merged(item_ids, rows, shared=shared):
        return [{"item_id": i, **shared, **(r or {})} for i, r in zip(item_ids, rows, strict=True)]

    want = enc.encode(merged(ids, items))
    np.testing.assert_array_equal(enc.encode_items(shared, ids, items), want)  # codes computed
    np.testing.assert_array_equal(enc.encode_items(shared, ids, items), want)  # codes reused
    # An equal row that is a new object is encoded afresh, a changed one gives its new codes.
    changed = [dict(r) if r else r for r in items]
    changed[0]["price_level"] = 10_000_019
    np.testing.assert_array_equal(enc.encode_items(shared, ids, changed), enc.encode(merged(ids, changed)))
    # The same item twice in one request, and a shared row that names the item id itself.
    twice = [ids[0], ids[0]]
    np.testing.assert_array_equal(
        enc.encode_items(shared, twice, [items[0], items[0]]), enc.encode(merged(twice, [items[0], items[0]]))
    )
    with_id = {**shared, "item_id": 12345}
    np.testing.assert_array_equal(
        enc.encode_items(with_id, ids, items), enc.encode(merged(ids, items, with_id))
    )


def test_serving_model_scores_like_model_score(version):
    from model.scoring import score

    served = load_serving_model(version)
    table = F.training_table(n=50, seed=4)
    pd.testing.assert_frame_equal(served.score_frame(table), score(served.loaded, table), rtol=1e-6)
    assert served.score_rows([{}])["p_ctr"].shape == (1,)  # all-null row: index 0 everywhere


def test_broken_version_dir_is_a_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError):
        load_serving_model(tmp_path / "nothing")


def test_follower_keeps_the_old_model_and_backs_off_a_broken_version(version, tmp_path):
    import shutil

    art = str(tmp_path / "art")
    F.publish(art, "taml", version)
    broken = tmp_path / "u2"
    shutil.copytree(version, broken)
    (broken / "model.json").write_text("{}")
    F.publish(art, "taml", broken, promote=False)
    holder = ModelHolder()
    f = AliasFollower(holder, art, "taml", poll_interval_s=60, cache_dir=str(tmp_path / "cache"))
    assert f.check() == "swapped" and holder.current.version == "u1"
    assert f.check() == "unchanged"
    registry.promote(art, "taml", "u2")
    assert f.check() == "failed" and holder.current.version == "u1" and "u2" in f.last_error
    assert f.check() == "backoff"  # not downloaded again every poll
    assert [p.name for p in (tmp_path / "cache").iterdir()][0].startswith("u1-")


def test_item_cache_is_used_and_dropped_when_the_store_changes():
    src = StaticSource(users={1: {"gender": 1}}, items_by_id={5: {"category_id": 3}})
    feats = OnlineFeatures(lambda: src, item_cache_size=2)
    assert feats.items([5, 6, 5]) == [{"category_id": 3}, None, {"category_id": 3}]
    assert feats.items([5, 6]) == [{"category_id": 3}, None] and src.calls["items"] == 1
    feats.items([7, 8])  # over capacity: the oldest entries go
    assert src.calls["items"] == 2
    src.items_by_id = {5: {"category_id": 4}}
    src.token = "1"
    assert feats.refresh() is True and feats.items([5]) == [{"category_id": 4}]
    assert feats.refresh() is False


def test_prediction_log_rotates_and_keeps_at_most_max_files(tmp_path):
    log = PredictionLog(
        str(tmp_path / "log"), max_file_bytes=1024, max_files=3, queue_size=1000, flush_interval_s=0.05
    )
    log.start()
    for i in range(60):
        assert log.submit([{"user_id": i, "item_id": i, "p_ctr": 0.5, "pad": "x" * 100}])
        if i % 5 == 4:
            log.flush()
    log.close()
    files = sorted((tmp_path / "log").glob("dt=*/*.jsonl"))
    assert len(files) == 3 and all(f.stat().st_size < 2048 for f in files)
    rows = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    assert rows[-1]["user_id"] == 59 and log.written == 60 and log.dropped == 0


def test_full_log_queue_drops_and_counts_instead_of_blocking(tmp_path):
    log = PredictionLog(
        str(tmp_path / "log"), max_file_bytes=10**6, max_files=3, queue_size=2, flush_interval_s=1
    )
    assert log.submit([{"a": 1}]) and log.submit([{"a": 2}])
    assert not log.submit([{"a": 3}, {"a": 4}]) and log.dropped == 2
    log.close()
    assert log.written == 2


def test_request_parsing_errors_name_the_field():
    with pytest.raises(RequestError) as e:
        parse_json(b"")
    assert e.value.status == 400
    with pytest.raises(RequestError) as e:
        parse_predict({"instances": [{"user_id": 1, "item_id": True}]}, 10)
    assert e.value.field == "instances[0].item_id"


def test_port_precedence():
    cfg = load_config(env={})
    assert resolve_port(cfg, None, {}) == 8080
    assert resolve_port(cfg, None, {"AIP_HTTP_PORT": "9000"}) == 9000
    assert resolve_port(cfg, 7000, {"AIP_HTTP_PORT": "9000"}) == 7000

"""The feature store step with real Feast (DuckDB offline, SQLite online) on tiny data roots.

One history is built twice and shared by most tests: through the direct paths (the default:
bulk SQLite writes, DuckDB ASOF join, day D-1 then D incrementally) and through Feast's own
materialize / get_historical_features (``features.direct_io=false``); the two must agree exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from components.common.tables import read_table
from components.features import (
    FeatureSourceError,
    apply,
    build_features,
    feast_lookup,
    materialize,
    online_reader,
    point_in_time,
)
from components.features import online_write as W
from components.features.store import FEATURE_REPO, ensure_applied, feast_env
from components.validate import ValidationGateError
from simulator.curated import (
    SyntheticSpec,
    make_profiles,
    profile_table,
    samples_table,
    stats_table,
    write_history,
    write_parquet,
)
from taml.cli.main import main
from taml.core import layout as L
from taml.core.config import load_config

START = dt.date(2026, 11, 1)
DAY = dt.date(2026, 11, 3)
SPEC = SyntheticSpec(samples_per_day=1500, users=200, items=80, seed=5)


def _cfg(tmp: Path, *overrides: str):
    return load_config(
        env={},
        overrides=[f"paths.artifact_root={tmp / 'art'}", "features.require_validation=false", *overrides],
    )


def _build(tmp: Path, *overrides: str):
    """History of START..DAY under tmp/data, then build D-1 and D (D is the daily, incremental case)."""
    root = tmp / "data"
    samples = write_history(str(root), START, 3, SPEC)
    cfg = _cfg(tmp, *overrides)
    build_features(cfg, DAY - dt.timedelta(days=1), str(root))
    return cfg, root, samples[DAY], build_features(cfg, DAY, str(root))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("feat"))


@pytest.fixture(scope="module")
def feast_built(tmp_path_factory):
    """The same history through Feast's own materialize and point-in-time join."""
    return _build(tmp_path_factory.mktemp("feast"), "features.direct_io=false")


def _online(root: Path) -> dict[str, list[tuple]]:
    """Every row of every Feast table of the online store, all columns, sorted."""
    con = sqlite3.connect(root / "feature_store" / "online_store.db")
    try:
        tables = [
            r[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'taml_%'")
        ]
        return {
            t: con.execute(
                f'SELECT *, typeof(event_ts) FROM "{t}" ORDER BY entity_key, feature_name'
            ).fetchall()
            for t in sorted(tables)
        }
    finally:
        con.close()


def test_build_writes_one_row_per_sample_with_point_in_time_features(built):
    cfg, root, samples, r = built
    df = pd.read_parquet(r.table_path)
    assert r.table_path == f"{root}/features/training/dt={DAY}/part-00000.parquet"
    assert len(df) == len(samples) == r.rows and df["impression_id"].is_unique
    assert list(df.columns[:9]) == list(samples.columns)
    assert {"gender", "price_level", "user_ctr_7d", "item_impressions_7d"} <= set(r.feature_columns)
    assert len(r.feature_columns) == 18
    # Every sample of D sees the stats of D-1 (stamped D 00:00), which the ground truth recomputes.
    stats = pq.read_table(L.stats_dir(str(root), "user", DAY - dt.timedelta(days=1))).to_pandas()
    want = df[["user_id"]].merge(stats[["user_id", "impressions"]], on="user_id", how="left")["impressions"]
    assert (df["user_impressions_7d"].fillna(-1).to_numpy() == want.fillna(-1).to_numpy()).all()
    # Online: every profile key, and exactly the entities in D's stats.
    day_stats = pq.read_table(L.stats_dir(str(root), "item", DAY)).num_rows
    assert r.online_rows == {
        "user_profile": SPEC.users,
        "item_profile": SPEC.items,
        "user_stats_7d": r.online_rows["user_stats_7d"],
        "item_stats_7d": day_stats,
    }
    assert read_table(str(root), [DAY]).shape == df.shape


def test_rerun_is_exact(built, tmp_path):
    cfg, root, _, r = built
    before = _online(root)
    again = build_features(cfg, DAY, str(root))
    assert again.online_rows == r.online_rows
    pd.testing.assert_frame_equal(pd.read_parquet(again.table_path), pd.read_parquet(r.table_path))
    assert _online(root) == before


def test_direct_paths_write_and_join_exactly_what_feast_does(built, feast_built):
    """Online rows byte for byte (keys, ValueProto bytes, value_text, event_ts) and the table row for row."""
    _, root, _, r = built
    _, feast_root, _, fr = feast_built
    assert r.online_rows == fr.online_rows
    direct, feast = _online(root), _online(feast_root)
    assert list(direct) == [f"taml_{v}" for v in sorted(r.online_rows)] and direct == feast
    assert sum(len(v) for v in direct.values()) == 4 * (SPEC.users + SPEC.items) + 5 * (
        r.online_rows["user_stats_7d"] + r.online_rows["item_stats_7d"]
    )
    pd.testing.assert_frame_equal(pd.read_parquet(r.table_path), pd.read_parquet(fr.table_path))
    assert r.columns == fr.columns and r.null_share == fr.null_share


def test_incremental_materialization_equals_the_whole_window(built, tmp_path, caplog):
    """Daily runs, a backfill, a re-run and a rewritten old partition: same online store either way."""
    _, root, _, _ = built
    roots = {}
    for mode in ("incremental", "full"):
        roots[mode] = tmp_path / mode / "data"
        shutil.copytree(root, roots[mode])
    cfgs = {"incremental": _cfg(tmp_path), "full": _cfg(tmp_path, "features.incremental_materialize=false")}

    def step(day: dt.date) -> None:
        rows = {m: materialize(cfgs[m], day, str(roots[m])) for m in cfgs}
        assert rows["incremental"] == rows["full"]
        assert _online(roots["incremental"]) == _online(roots["full"])

    step(DAY)  # copied files: the fingerprints differ, so the whole window again
    step(DAY - dt.timedelta(days=1))  # backfill: an older end, the whole window
    with caplog.at_level(logging.INFO, logger="components.features.build"):
        step(DAY)  # the daily case: only rows stamped after D-1
    assert "user_profile: 200 entities" in caplog.text and "(incremental; 4 written" in caplog.text
    step(DAY)  # re-run: nothing new
    W.forget(str(roots["incremental"] / "feature_store" / "online_store.db"), "user_profile")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="components.features.build"):
        step(DAY)  # no recorded state (e.g. after a failed count check): the whole window
    assert "(full; 200 written" in caplog.text and "(incremental; 0 written" in caplog.text
    for m in cfgs:  # an old partition rewritten (re-ingest): its mtime changes, the whole window again
        f = next(Path(L.curated_dir(str(roots[m]), "users", START)).glob("*.parquet"))
        pq.read_table(f).to_pandas().assign(gender=9).to_parquet(f, index=False)
    step(DAY)
    assert {r[2] for r in _online(roots["incremental"])["taml_user_profile"] if r[1] == "gender"} >= {b" \t"}


def test_apply_runs_only_when_the_definitions_change(built, tmp_path):
    cfg, root, _, _ = built
    assert ensure_applied(cfg, str(root)) is False
    changed = _cfg(tmp_path, "features.stats_ttl_hours=48")
    assert ensure_applied(changed, str(root)) is True and ensure_applied(changed, str(root)) is False
    (root / "feature_store" / "feature_store.yaml").unlink()
    assert ensure_applied(cfg, str(root)) is True and ensure_applied(cfg, str(root)) is False


def test_online_reader_matches_feast_and_reports_missing_as_null(built, capsys):
    cfg, root, _, _ = built
    items = [1, 2, 3, 10_000]
    fast = online_reader(cfg, str(root)).lookup(7, items)
    slow = feast_lookup(apply(cfg, str(root)), cfg, 7, items)
    assert fast == [{k: s[k] for k in f} for f, s in zip(fast, slow, strict=True)]
    assert fast[3]["category_id"] is None and fast[3]["gender"] is not None
    # One reader shared by a threaded server: each thread reads through its own connection.
    from concurrent.futures import ThreadPoolExecutor

    reader = online_reader(cfg, str(root))
    requests = [(u, [u % 80, (u * 7) % 80, 10_000, u % 80]) for u in range(40)]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda r: reader.lookup(*r), requests))
    assert threaded == [online_reader(cfg, str(root)).lookup(*r) for r in requests]
    reader.close()
    assert (
        main(["features", "online", "--user", "7", "--items", "1,2", "--json", "--data-root", str(root)]) == 0
    )
    assert json.loads(capsys.readouterr().out)[1]["item_id"] == 2


def _tiny_root(root: Path) -> None:
    """One user and one item; profile rows before, exactly at, and after the impression."""
    t = pd.Timestamp("2026-11-03 12:00:00", tz="UTC")
    users = make_profiles(
        "user",
        pd.Series([1, 1, 1]).to_numpy(),
        pd.Series([t - pd.Timedelta("1h"), t, t + pd.Timedelta("1s")]).to_numpy(),
        __import__("numpy").random.default_rng(0),
    )
    users["gender"] = [10, 20, 30]
    write_parquet(profile_table(users, "user"), L.curated_dir(str(root), "users", DAY))
    items = make_profiles(
        "item",
        pd.Series([5]).to_numpy(),
        pd.Series([t]).to_numpy(),
        __import__("numpy").random.default_rng(0),
    )
    write_parquet(profile_table(items, "item"), L.curated_dir(str(root), "items", DAY))
    for entity, key in (("user", 1), ("item", 5)):
        s = pd.DataFrame(
            {
                f"{entity}_id": [key, key],
                "event_timestamp": [t - pd.Timedelta("1us"), t],
                "impressions": [7, 8],
                "clicks": [1, 1],
                "conversions": [0, 0],
                "ctr": [0.1, 0.2],
                "cvr": [0.0, 0.0],
            }
        )
        s["event_timestamp"] = s["event_timestamp"].astype("datetime64[us, UTC]")
        write_parquet(stats_table(s, entity), L.stats_dir(str(root), entity, DAY))
    samples = pd.DataFrame(
        {
            "impression_id": ["a", "b", "c"],
            "event_timestamp": [t, t, t - pd.Timedelta("2h")],
            "user_id": [1, 1, 1],
            "item_id": [5, 6, 5],
            "position": [1, 1, 1],
            "device": ["ios"] * 3,
            "hour": [12, 12, 10],
            "click": [0, 0, 0],
            "conversion": [0, 0, 0],
        }
    )
    samples["event_timestamp"] = samples["event_timestamp"].astype("datetime64[us, UTC]")
    write_parquet(samples_table(samples), L.curated_dir(str(root), "samples", DAY))


@pytest.mark.parametrize("direct_io", ["true", "false"])
def test_no_leakage_rows_stamped_at_or_after_the_impression_are_never_joined(tmp_path, direct_io):
    root = tmp_path / "data"
    _tiny_root(root)
    cfg = _cfg(tmp_path, f"features.direct_io={direct_io}")
    store = apply(cfg, str(root))
    samples = pq.read_table(L.curated_dir(str(root), "samples", DAY)).to_pandas()
    df = point_in_time(cfg, store, samples).set_index("impression_id")
    # Profile rows at t (20) and t+1s (30) are invisible at t; the one at t-1h (10) is seen.
    assert df.loc["a", "gender"] == 10 and df.loc["b", "gender"] == 10
    # Stats stamped exactly at t are not joined; those stamped 1 us before are.
    assert df.loc["a", "user_impressions_7d"] == 7 and df.loc["a", "item_ctr_7d"] == 0.1
    # Nothing stamped before 10:00: nulls, and the row is still there (one row per sample).
    assert pd.isna(df.loc["c", "gender"]) and pd.isna(df.loc["c", "user_impressions_7d"])
    # An item with no profile at all: nulls for item features only.
    assert pd.isna(df.loc["b", "category_id"]) and df.loc["b", "user_impressions_7d"] == 7
    assert len(df) == 3


@pytest.mark.parametrize(
    "damage, match",
    [
        ("null_key", r"user_profile: 1 row\(s\) with a null user_id"),
        ("duplicate", r"item_stats_7d: 1 key\(s\) have several rows at one event_timestamp.*item_id=5"),
        ("renamed", r"user_stats_7d: .* lacks column\(s\) \['impressions'\]"),
        ("missing", r"item_profile: no parquet file matches"),
    ],
)
def test_bad_sources_are_named(tmp_path, damage, match):
    root = tmp_path / "data"
    _tiny_root(root)
    if damage == "null_key":
        f = next(Path(L.curated_dir(str(root), "users", DAY)).glob("*.parquet"))
        t = pq.read_table(f).to_pandas().astype({"user_id": "Int64"})
        t.loc[0, "user_id"] = None
        t.to_parquet(f, index=False)
    elif damage == "duplicate":
        f = next(Path(L.stats_dir(str(root), "item", DAY)).glob("*.parquet"))
        t = pq.read_table(f).to_pandas()
        pd.concat([t, t.iloc[[1]].assign(ctr=0.9)]).to_parquet(f, index=False)
    elif damage == "renamed":
        f = next(Path(L.stats_dir(str(root), "user", DAY)).glob("*.parquet"))
        pq.read_table(f).to_pandas().rename(columns={"impressions": "impressions_7d"}).to_parquet(
            f, index=False
        )
    else:
        shutil.rmtree(L.curated_dir(str(root), "items", DAY))
    with pytest.raises(FeatureSourceError, match=match):
        build_features(_cfg(tmp_path), DAY, str(root))


def test_a_day_that_failed_validation_gets_no_table(built, tmp_path):
    _, root, _, _ = built
    cfg = _cfg(tmp_path, "features.require_validation=true", "validation.critical.ctr_min=0.9")
    from components.validate import run_validation

    with pytest.raises(ValidationGateError, match="no validation result"):
        build_features(cfg, DAY, str(root))
    assert not run_validation(cfg, DAY, str(root)).passed
    with pytest.raises(ValidationGateError, match="day.ctr"):
        build_features(cfg, DAY, str(root))
    assert (
        main(
            [
                "features",
                "build",
                "--date",
                str(DAY),
                "--data-root",
                str(root),
                "--artifact-root",
                str(tmp_path / "art"),
                "--set",
                "features.require_validation=true",
            ]
        )
        == 2
    )


def test_plain_feast_cli_reads_the_generated_repo(built, monkeypatch):
    """`feast -f {data_root}/feature_store/feature_store.yaml feature-views list` (in-process click)."""
    from click.testing import CliRunner
    from feast.cli.cli import cli

    _, root, _, _ = built
    yaml = root / "feature_store" / "feature_store.yaml"
    out = CliRunner().invoke(cli, ["-f", str(yaml), "feature-views", "list"], env=feast_env(str(root)))
    assert out.exit_code == 0, out.output
    assert all(v in out.output for v in ("user_profile", "item_profile", "user_stats_7d", "item_stats_7d"))
    assert FEATURE_REPO.joinpath("definitions.py").exists()
    # `feast apply` from feature_repo/ sees the module-level objects (built lazily on access).
    from feast.repo_operations import parse_repo

    monkeypatch.setenv("TAML_DATA_ROOT", str(root))
    repo = parse_repo(FEATURE_REPO)
    assert sorted(v.name for v in repo.feature_views) == [
        "item_profile",
        "item_stats_7d",
        "user_profile",
        "user_stats_7d",
    ]
    assert [s.name for s in repo.feature_services] == ["taml_v1"]
    assert {"user", "item"} <= {e.name for e in repo.entities}

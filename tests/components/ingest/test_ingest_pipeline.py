"""Whole-day ingests with real Beam runs (FnApiRunner) on simulated and hand-written raw data."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from ingest_helpers import DAYS, START, ev, imp, item, minimal_day, read_dir, user, write_raw

from components.ingest import CorruptFileError, IncompleteLabelsError, MissingInputError, run_ingest
from taml.core import layout as L
from taml.core import storage

ONE = dt.timedelta(days=1)


def manifest(root, day):
    return storage.read_json(L.manifest_path(root, day))


def test_dead_letters_match_the_corruption_manifest_reason_by_reason(simulated):
    root, _, results = simulated
    injected = storage.read_json(L.corruption_manifest(root))["partitions"]
    for day in DAYS:
        m = manifest(root, day)
        assert m == results[day].manifest
        part = L.partition(day)
        for source in L.SOURCES:
            assert m["sources"][source][part]["dead_letter"] == injected.get(source, {}).get(part, {}), (
                source,
                part,
            )
        # The dead-letter files hold exactly those lines, with their raw text and position.
        dead = read_dir(L.curated_dir(root, "dead_letter", day)).to_pandas()
        got = dead.groupby(["source", "reason"]).size().to_dict()
        want = {(s, r): n for s, parts in injected.items() for r, n in parts.get(part, {}).items()}
        assert got == want
        assert (dead["dt"] == day.isoformat()).all()
        assert dead["raw"].map(len).gt(0).all() and dead["line_number"].gt(0).all()
        for _, row in dead.head(50).iterrows():  # the raw line is the file's line, verbatim
            assert storage.exists(row["file"])


def test_nothing_lost_every_partition_balances(simulated):
    root, _, _ = simulated
    for day in DAYS:
        for source, parts in manifest(root, day)["sources"].items():
            for part, c in parts.items():
                assert c["read"] == c["accepted"] + c["other_day"] + sum(c["dead_letter"].values()), (
                    source,
                    part,
                )
                assert c["read"] > 0 or source in (L.USERS, L.ITEMS)
    # Over the history every line of dt=D+1 (day 2) is accepted or dead-lettered exactly once:
    # what day 1 called other_day is day 2's to judge, and day 2 judged all of it.
    m1, m2 = manifest(root, DAYS[0]), manifest(root, DAYS[1])
    p2 = L.partition(DAYS[1])
    for source in (L.CLICKS, L.CONVERSIONS):
        seen_by_1, own_2 = m1["sources"][source][p2], m2["sources"][source][p2]
        assert seen_by_1["read"] == own_2["read"]
        # Day 1 accepted some of dt=D+1's lines; day 2 calls exactly those other_day.
        assert seen_by_1["accepted"] == own_2["other_day"]


def test_labels_equal_the_simulated_truth(simulated):
    root, summary, results = simulated
    for s in summary.days[:2]:
        samples = read_dir(L.curated_dir(root, "samples", s.day)).to_pandas()
        assert len(samples) == s.impressions and samples["impression_id"].is_unique
        assert samples["click"].sum() == s.clicks
        assert samples["conversion"].sum() == s.conversions
        assert (samples["conversion"] <= samples["click"]).all()
        assert results[s.day].summary()["clicks"] == s.clicks
        assert results[s.day].summary()["conversions"] == s.conversions
        ts = samples["event_timestamp"]
        assert str(ts.dt.tz) == "UTC" and (ts.dt.date == s.day).all()
        assert (samples["hour"] == ts.dt.hour).all()


def test_stats_are_the_trailing_window_with_smoothing(simulated, ingest_config):
    root, _, _ = simulated
    day = DAYS[1]
    window = pd.concat([read_dir(L.curated_dir(root, "samples", d)).to_pandas() for d in DAYS])
    k_ctr, k_cvr = ingest_config.ingest.stats_prior_impressions, ingest_config.ingest.stats_prior_clicks
    ctr0 = window["click"].sum() / len(window)
    cvr0 = window["conversion"].sum() / window["click"].sum()
    for entity in ("user", "item"):
        stats = read_dir(L.stats_dir(root, entity, day)).to_pandas().set_index(f"{entity}_id").sort_index()
        want = window.groupby(f"{entity}_id").agg(
            impressions=("click", "size"), clicks=("click", "sum"), conversions=("conversion", "sum")
        )
        assert stats.index.is_unique
        pd.testing.assert_frame_equal(
            stats[["impressions", "clicks", "conversions"]], want, check_dtype=False, check_names=False
        )
        assert (
            stats["ctr"] - (want["clicks"] + k_ctr * ctr0) / (want["impressions"] + k_ctr)
        ).abs().max() < 1e-12
        assert (
            stats["cvr"] - (want["conversions"] + k_cvr * cvr0) / (want["clicks"] + k_cvr)
        ).abs().max() < 1e-12
        assert (stats["event_timestamp"] == pd.Timestamp(day + ONE, tz="UTC")).all()
    assert manifest(root, day)["inputs"]["stats_days"] == [d.isoformat() for d in DAYS]


def snapshot(root: str) -> dict[str, bytes]:
    out = {}
    for name in ("curated", "features"):
        for f in storage.list_files(storage.join(root, name)):
            if not f.endswith(".json"):
                out[f] = Path(f).read_bytes()
    return out


def test_rerun_replaces_the_day_whole_and_a_failed_run_leaves_it_intact(simulated, ingest_config, tmp_path):
    src, _, _ = simulated
    root = str(tmp_path / "copy")
    shutil.copytree(src, root)
    day = DAYS[1]
    first = run_ingest(ingest_config, day, root)  # dead letters name this copy's files
    assert first.manifest["sources"] == manifest(src, day)["sources"]
    before = snapshot(root)
    stale = Path(L.curated_dir(root, "samples", day)) / "part-99999.parquet"
    shutil.copy(next(Path(L.curated_dir(root, "samples", day)).glob("*.parquet")), stale)

    run_ingest(ingest_config, day, root)
    assert not stale.exists()  # replaced whole, never appended to
    assert snapshot(root) == before  # byte-identical outputs

    # A run that dies midway (a damaged file deep in the pipeline) publishes nothing.
    bad = write_raw(root, L.CLICKS, day, [ev("x", f"{day}T01:00:00Z")] * 500, name="zz-late-upload.jsonl.gz")
    Path(bad).write_bytes(Path(bad).read_bytes()[:-30])
    old_manifest = manifest(root, day)
    with pytest.raises(CorruptFileError, match="zz-late-upload.jsonl.gz: gzip stream truncated"):
        run_ingest(ingest_config, day, root)
    assert snapshot(root) == before and manifest(root, day) == old_manifest
    leftovers = [p for p in Path(root).rglob("_tmp*")]
    assert leftovers == []


def test_missing_next_day_means_incomplete_labels(tmp_path, ingest_config):
    minimal_day(tmp_path, START, with_next=False)
    with pytest.raises(
        IncompleteLabelsError, match=r"labels of 2026-11-01 are incomplete: .*clicks/dt=2026-11-02"
    ):
        run_ingest(ingest_config, START, str(tmp_path))
    with pytest.raises(MissingInputError, match="no impressions for 2026-11-05"):
        run_ingest(ingest_config, START + 4 * ONE, str(tmp_path))


def test_empty_partitions_and_hand_written_bad_input(tmp_path, ingest_config):
    root = str(tmp_path)
    d = START.isoformat()
    cfg = ingest_config.model_copy(deep=True)
    cfg.ingest.max_line_bytes = 400
    latin1 = (
        b'{"impression_id":"caf\xe9","ts":"'
        + d.encode()
        + b'T01:00:00Z","user_id":1,"item_id":2,"position":1,"device":"ios"}'
    )
    long_line = imp("long", f"{d}T01:00:00Z", padding="x" * 500)
    write_raw(
        root,
        L.IMPRESSIONS,
        START,
        [
            imp("a", f"{d}T10:00:00Z", extra_key={"ignored": True}),
            latin1,
            long_line,
            imp("a", f"{d}T10:00:00Z"),
        ],
    )
    write_raw(root, L.IMPRESSIONS, START, [], name="part-1.jsonl")  # an empty file
    write_raw(root, L.CLICKS, START, [ev("a", f"{d}T10:01:00Z")])
    Path(L.raw_dir(root, L.CONVERSIONS, START)).mkdir(parents=True)  # an empty partition
    write_raw(root, L.USERS, START, [user(1), user("abc"), user(-4)])
    write_raw(root, L.ITEMS, START, [item(2), item(2.5)])
    for source in (L.CLICKS, L.CONVERSIONS):
        write_raw(root, source, START + ONE, [])

    res = run_ingest(cfg, START, root)
    src = res.manifest["sources"]
    p = L.partition(START)
    assert src[L.IMPRESSIONS][p] == {
        "read": 4,
        "accepted": 1,
        "other_day": 0,
        "dead_letter": {L.DUPLICATE_IMPRESSION: 1, L.LINE_TOO_LONG: 1, L.MALFORMED_JSON: 1},
    }
    assert src[L.CONVERSIONS][p] == {"read": 0, "accepted": 0, "other_day": 0, "dead_letter": {}}
    assert src[L.USERS][p]["dead_letter"] == {L.BAD_TYPE: 1, L.OUT_OF_RANGE: 1}
    assert src[L.ITEMS][p]["dead_letter"] == {L.BAD_TYPE: 1}
    dead = read_dir(L.curated_dir(root, "dead_letter", START)).to_pandas().set_index("reason")
    assert dead.loc[L.MALFORMED_JSON, "raw"] == latin1  # bytes verbatim
    assert dead.loc[L.MALFORMED_JSON, "raw_text"] == latin1.decode("utf-8", "backslashreplace")
    assert dead.loc[L.LINE_TOO_LONG, "raw"] == long_line
    assert dead.loc[L.DUPLICATE_IMPRESSION, "line_number"] == 4
    samples = read_dir(L.curated_dir(root, "samples", START)).to_pandas()
    assert samples[["impression_id", "click", "conversion"]].values.tolist() == [["a", 1, 0]]
    users = read_dir(L.curated_dir(root, "users", START))
    assert users["user_id"].to_pylist() == [1]


def test_all_empty_day_publishes_schema_only_files(tmp_path, ingest_config):
    root = str(tmp_path)
    for source in L.SOURCES:
        write_raw(root, source, START, [])
    for source in (L.CLICKS, L.CONVERSIONS):
        write_raw(root, source, START + ONE, [])
    res = run_ingest(ingest_config, START, root)
    assert res.manifest["outputs"]["samples"]["rows"] == 0
    for name, folder in res.outputs.items():
        assert read_dir(folder).num_rows == 0, name


def test_cli_runs_a_day_and_reports_errors_without_traceback(tmp_path, capsys):
    from taml.cli.main import main

    minimal_day(tmp_path, START)
    rc = main(
        [
            "ingest",
            "--date",
            START.isoformat(),
            "--data-root",
            str(tmp_path),
            "--set",
            "ingest.shards=2",
            "--beam-option=--direct_num_workers=1",
            "--",
            "--runner=FnApiRunner",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and json.loads(out)["samples"] == 1 and json.loads(out)["clicks"] == 1
    minimal_day(tmp_path, START + ONE, with_next=False)
    rc = main(["ingest", "--date", (START + ONE).isoformat(), "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "labels of 2026-11-02 are incomplete" in err and "Traceback" not in err


def test_raw_and_curated_lookups_of_the_previous_day_agree(simulated, ingest_config, tmp_path):
    src, _, results = simulated
    root = str(tmp_path / "copy")
    shutil.copytree(src, root)
    # Without D-1's manifest its curated samples do not count: D-1 is looked up in the raw logs.
    Path(L.manifest_path(root, DAYS[0])).unlink()
    res = run_ingest(ingest_config, DAYS[1], root)
    prev = L.partition(DAYS[0])
    assert res.manifest["inputs"]["lookups"]["impressions"] == {prev: "raw"}
    assert results[DAYS[1]].manifest["inputs"]["lookups"]["impressions"] == {prev: "curated"}
    assert res.manifest["sources"] == results[DAYS[1]].manifest["sources"]
    assert res.manifest["inputs"]["stats_days"] == [DAYS[1].isoformat()]  # D-1 is not complete

"""The simulator's promises: format, determinism, realism, scenarios and exact corruption counts."""

import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from simdata import START, read_lines, read_records, small_config, truth
from sklearn.metrics import roc_auc_score

from simulator import simulate
from taml.core import layout as L
from taml.core.errors import UsageError

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
D1, D2, D3 = START, START + dt.timedelta(days=1), START + dt.timedelta(days=2)


def _digest(root: Path, day: dt.date) -> dict[str, str]:
    """sha256 of every file that day D's generation wrote (its partitions and its spillover)."""
    tag = day.strftime("%Y%m%d")
    out = {}
    for f in sorted(root.rglob(f"*{tag}*")):
        if f.is_file():
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def test_raw_format_matches_the_design(history):
    imp = read_records(history, L.IMPRESSIONS, D2)
    genuine = imp[imp.impression_id.str.fullmatch(r"\d{17}").fillna(False)].drop_duplicates("impression_id")
    assert len(genuine) == 30_000
    assert set(genuine.columns) >= set(L.REQUIRED_FIELDS[L.IMPRESSIONS])
    assert genuine.ts.map(lambda t: bool(RFC3339.match(t)) and t.startswith(D2.isoformat())).all()
    assert genuine.position.between(1, 100).all()
    assert set(genuine.device) <= set(L.DEVICES)
    assert (genuine.user_id >= 0).all() and (genuine.item_id >= 0).all()
    clicks = read_records(history, L.CLICKS, D2)
    assert {"impression_id", "ts"} <= set(clicks.columns)
    conv = read_records(history, L.CONVERSIONS, D2)
    assert {"impression_id", "ts", "value"} <= set(conv.columns)
    users = read_records(history, L.USERS, D1)
    assert set(L.REQUIRED_FIELDS[L.USERS]) <= set(users.columns)
    items = read_records(history, L.ITEMS, D1)
    assert set(L.REQUIRED_FIELDS[L.ITEMS]) <= set(items.columns)


def _labels(root, day):
    """Genuine labels of day D rebuilt from the raw clicks/conversions of D and D+1."""
    imp = read_records(root, L.IMPRESSIONS, day).drop_duplicates("impression_id")
    imp = imp[imp.impression_id.str.fullmatch(r"\d{17}").fillna(False)]
    tag = day.strftime("%Y%m%d")
    ev = {}
    for source in (L.CLICKS, L.CONVERSIONS):
        frames = [read_records(root, source, d) for d in (day, day + dt.timedelta(days=1))]
        rows = [f for f in frames if len(f)]
        df = __import__("pandas").concat(rows) if rows else None
        ev[source] = df
    t = truth(root, day).set_index("impression_id")
    imp = imp.set_index("impression_id").join(t)
    imp_ts = imp.ts.map(lambda s: np.datetime64(s[:-1]))
    clicks = ev[L.CLICKS].dropna(subset=["impression_id", "ts"])
    clicks = clicks[clicks.impression_id.astype(str).str.startswith(tag)]
    clicks = clicks[clicks.ts.map(lambda s: bool(RFC3339.match(str(s))))]
    delay = (
        clicks.ts.map(lambda s: np.datetime64(s[:-1])).values - imp_ts.reindex(clicks.impression_id).values
    )
    ok = (delay > np.timedelta64(0, "ms")) & (delay <= np.timedelta64(60, "m"))
    clicked = set(clicks.impression_id[ok])
    imp["click"] = imp.index.isin(clicked)
    conv = ev[L.CONVERSIONS].dropna(subset=["impression_id", "ts"])
    conv = conv[conv.impression_id.astype(str).isin(clicked) & (conv.get("value", 0) >= 0)]
    cdelay = conv.ts.map(lambda s: np.datetime64(s[:-1])).values - imp_ts.reindex(conv.impression_id).values
    conv = conv[cdelay <= np.timedelta64(24, "h")]
    imp["conversion"] = imp.index.isin(set(conv.impression_id))
    return imp


def test_rates_and_oracle_auc_are_realistic(tmp_path):
    simulate(str(tmp_path), START, 1, 120_000, seed=3, config=small_config(chunk_size=40_000))
    df = _labels(tmp_path, START)
    ctr = df.click.mean()
    cvr = df.conversion.sum() / df.click.sum()
    assert 0.03 <= ctr <= 0.05, ctr
    assert 0.01 <= cvr <= 0.03, cvr
    # The truth carries real signal, and the tasks differ (the oracle is far from perfect).
    ctr_auc = roc_auc_score(df.click, df.p_click)
    clicked = df[df.click]
    cvr_auc = roc_auc_score(clicked.conversion, clicked.p_conv)
    assert 0.70 <= ctr_auc <= 0.90, ctr_auc
    assert 0.65 <= cvr_auc <= 0.92, cvr_auc
    # Click-bait: p_click and p_conv are only loosely related.
    assert np.corrcoef(df.p_click, df.p_conv)[0, 1] < 0.6


def test_lower_cvr_target_is_met(tmp_path):
    simulate(
        str(tmp_path), START, 1, 120_000, seed=4, config=small_config(target_cvr=0.005, chunk_size=40_000)
    )
    df = _labels(tmp_path, START)
    assert df.p_conv[df.click].mean() == pytest.approx(0.005, rel=0.35)


def test_activity_is_power_law_and_impressions_are_not_random(history):
    imp = read_records(history, L.IMPRESSIONS, D2)
    imp = imp[imp.impression_id.str.fullmatch(r"\d{17}").fillna(False)]
    per_user = imp.user_id.value_counts()
    top = per_user.iloc[: len(per_user) // 100].sum() / per_user.sum()
    assert top > 0.08  # the top 1% of users see far more than 1% of impressions
    per_item = imp.item_id.value_counts()
    assert per_item.iloc[: len(per_item) // 100].sum() / per_item.sum() > 0.08
    # Favourite categories: a user's impressions concentrate on few categories.
    items = read_records(history, L.ITEMS, D1).drop_duplicates("item_id").set_index("item_id").category_id
    cat = imp.item_id.map(items)
    heavy = per_user.index[per_user >= 20]
    share_top = (
        imp[imp.user_id.isin(heavy)]
        .assign(cat=cat)
        .groupby("user_id")
        .cat.agg(lambda c: c.value_counts().iloc[:5].sum() / len(c))
    )
    assert share_top.mean() > 0.5
    # Position bias: the first position is clicked more than deep positions.
    df = _labels(history, D2)
    assert df[df.position <= 2].click.mean() > 1.5 * df[df.position >= 20].click.mean()


def test_events_cross_midnight_into_the_next_partition(history):
    spill = [f for f in Path(L.raw_dir(str(history), L.CLICKS, D3)).glob("part-20261102-*")]
    assert spill and sum(len(read_lines(history, L.CLICKS, D3)) for _ in [0]) > 0
    df = _labels(history, D2)
    assert df.click.sum() > 0


def test_deterministic_and_independent_of_the_range(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    cfg = small_config()
    simulate(str(a), START, 3, 5_000, seed=5, corrupt_rate=0.05, config=cfg)
    simulate(str(b), START, 2, 5_000, seed=5, corrupt_rate=0.05, config=cfg)
    simulate(str(c), START, 2, 5_000, seed=6, corrupt_rate=0.05, config=cfg)
    for day in (D1, D2):
        assert _digest(a, day) == _digest(b, day)
        assert _digest(a, day) != _digest(c, day)


def test_new_items_every_day_and_profiles_as_a_slowly_changing_dimension(history):
    users1 = read_records(history, L.USERS, D1)
    users2 = read_records(history, L.USERS, D2)
    assert users1.user_id.nunique() >= 4_000  # the first day of a call is a full snapshot
    assert 0 < len(users2) < 200  # later days: changed rows only
    items1 = read_records(history, L.ITEMS, D1)
    items2 = read_records(history, L.ITEMS, D2).drop_duplicates("item_id")
    new = set(items2.item_id) - set(items1.item_id)
    assert len(new) >= 60
    imp2 = read_records(history, L.IMPRESSIONS, D2)
    assert imp2.item_id.isin(new).any()  # new items get traffic on their first day
    assert (items2.ts == f"{D2.isoformat()}T00:00:00.000Z").all()


def _classify(root: Path, source: str, day: dt.date) -> Counter:
    """An independent reading of which injected lines a partition holds."""
    tag = day.strftime("%Y%m%d")
    imp = read_records(root, L.IMPRESSIONS, day)
    seen, counts = set(), Counter()
    imp_ts = {
        r.impression_id: r.ts
        for r in imp.drop_duplicates("impression_id").itertuples()
        if isinstance(r.impression_id, str) and re.fullmatch(r"\d{17}", r.impression_id)
    }
    genuine_clicks = {
        json.loads(line)["impression_id"]
        for d in (day, day + dt.timedelta(days=1))
        for line in read_lines(root, L.CLICKS, d)
        if _ok(line) and re.fullmatch(r"\d{17}", str(json.loads(line).get("impression_id")))
    }
    for line in read_lines(root, source, day):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            counts[L.MALFORMED_JSON] += 1
            continue
        required = L.REQUIRED_FIELDS[source]
        if any(k not in rec for k in required):
            counts[L.MISSING_FIELD] += 1
            continue
        if source == L.IMPRESSIONS:
            if not isinstance(rec["position"], int) or not isinstance(rec["user_id"], int):
                counts[L.BAD_TYPE] += 1
            elif not 1 <= rec["position"] <= 100 or rec["device"] not in L.DEVICES or rec["item_id"] < 0:
                counts[L.OUT_OF_RANGE] += 1
            elif not (RFC3339.match(rec["ts"]) and rec["ts"].startswith(day.isoformat())):
                counts[L.BAD_TIMESTAMP] += 1
            elif rec["impression_id"] in seen:
                counts[L.DUPLICATE_IMPRESSION] += 1
            seen.add(rec["impression_id"])
        elif source in (L.USERS, L.ITEMS):
            key = "user_id" if source == L.USERS else "item_id"
            if not isinstance(rec[key], int):
                counts[L.BAD_TYPE] += 1
            elif rec[key] < 0:
                counts[L.OUT_OF_RANGE] += 1
        else:
            iid = rec["impression_id"]
            if not isinstance(iid, str):
                counts[L.BAD_TYPE] += 1
            elif not RFC3339.match(rec["ts"]):
                counts[L.BAD_TIMESTAMP] += 1
            elif "value" in rec and rec["value"] < 0:
                counts[L.OUT_OF_RANGE] += 1
            elif not iid.startswith(tag) or not re.fullmatch(r"\d{17}", iid):
                prev = (day - dt.timedelta(days=1)).strftime("%Y%m%d")
                if not iid.startswith(prev):
                    counts[L.ORPHAN_CLICK if source == L.CLICKS else L.ORPHAN_CONVERSION] += 1
            elif source == L.CLICKS:
                delta = np.datetime64(rec["ts"][:-1]) - np.datetime64(imp_ts[iid][:-1])
                if delta < np.timedelta64(0):
                    counts[L.TIME_TRAVEL] += 1
                elif delta > np.timedelta64(60, "m"):
                    counts[L.LATE_EVENT] += 1
            elif iid not in genuine_clicks:
                counts[L.CONVERSION_WITHOUT_CLICK] += 1
    return counts


def _ok(line: bytes) -> bool:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(rec, dict) and isinstance(rec.get("ts"), str) and bool(RFC3339.match(rec["ts"]))


def test_corruption_manifest_is_exact(history):
    manifest = json.loads((history / "corruption_manifest.json").read_text())["partitions"]
    d4 = D3 + dt.timedelta(days=1)  # holds only D3's spillover
    total = 0
    for source in (L.IMPRESSIONS, L.CLICKS, L.CONVERSIONS, L.USERS, L.ITEMS):
        for day in (D1, D2, D3):
            expected = dict(manifest.get(source, {}).get(L.partition(day), {}))
            if source == L.CONVERSIONS:
                # Late conversions sit in D+1 (owned by D+1's run); they were injected by D's generation.
                injected_before = (
                    json.loads(
                        (
                            history
                            / "corruption"
                            / L.partition(day)
                            / f"from-{L.partition(day - dt.timedelta(days=1))}.json"
                        ).read_text()
                    )
                    if day != D1
                    else {}
                )
                late = injected_before.get(L.CONVERSIONS, {}).get(L.LATE_EVENT, 0)
                if late:
                    assert expected.pop(L.LATE_EVENT) == late
            assert dict(_classify(history, source, day)) == expected, (source, day)
            total += sum(expected.values())
        if source != L.CONVERSIONS:
            assert not _classify(history, source, d4) if source == L.CLICKS else True
    assert total > 300
    spill = manifest[L.CONVERSIONS].get(L.partition(d4), {})
    assert set(spill) <= {L.LATE_EVENT}


def test_clean_run_has_an_empty_manifest(tmp_path):
    simulate(str(tmp_path), START, 1, 2_000, seed=1, config=small_config())
    assert json.loads((tmp_path / "corruption_manifest.json").read_text()) == {"partitions": {}}


def _scenario_frames(tmp_path, scenario, **cfg):
    root = tmp_path / scenario
    simulate(
        str(root),
        START,
        2,
        40_000,
        seed=9,
        scenario=scenario,
        scenario_day=D2,
        config=small_config(chunk_size=40_000, **cfg),
    )
    return root, _labels(root, D1), _labels(root, D2)


def test_calibration_break_loses_conversions_not_truth(tmp_path):
    _, before, after = _scenario_frames(tmp_path, "calibration_break")
    ratio = lambda df: df.conversion.sum() / df.p_conv[df.click].sum()  # noqa: E731
    assert ratio(before) == pytest.approx(1.0, abs=0.25)
    assert ratio(after) == pytest.approx(0.65, abs=0.2)


def test_ctr_shift_moves_the_click_rate(tmp_path):
    _, before, after = _scenario_frames(tmp_path, "ctr_shift")
    assert after.click.mean() > 1.5 * before.click.mean()


def test_new_item_flood(tmp_path):
    root, _, _ = _scenario_frames(tmp_path, "new_item_flood")
    items1 = read_records(root, L.ITEMS, D1)
    items2 = read_records(root, L.ITEMS, D2)
    imp2 = read_records(root, L.IMPRESSIONS, D2)
    new = set(items2.item_id) - set(items1.item_id)
    assert len(new) >= 500
    assert imp2.item_id.isin(new).mean() > 0.25


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(days=0), "--days"),
        (dict(impressions_per_day=-5), "--impressions-per-day"),
        (dict(scenario="meteor"), "unknown scenario"),
        (dict(scenario="ctr_shift"), "needs --scenario-day"),
        (dict(scenario_day=START), "without --scenario"),
        (dict(corrupt_rate=2.0), "--corrupt-rate"),
        (dict(start=dt.date(2019, 1, 1)), "epoch"),
    ],
)
def test_impossible_arguments(tmp_path, kwargs, message):
    args = dict(data_root=str(tmp_path), start=START, days=1, impressions_per_day=10, seed=0) | kwargs
    with pytest.raises(UsageError, match=message):
        simulate(**args)


def test_cli_reports_bad_arguments_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "taml.cli",
            "simulate",
            "--out",
            str(tmp_path),
            "--start",
            "2026-11-01",
            "--days",
            "-1",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "--days must be a positive" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "taml.cli", "simulate", "--out", str(tmp_path), "--start", "2026-13-01"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "YYYY-MM-DD" in proc.stderr


def test_writes_to_gcs(gcs_root):
    from taml.core import storage

    simulate(gcs_root, START, 1, 1_000, seed=2, config=small_config())
    files = storage.list_files(gcs_root)
    assert any("/raw/impressions/dt=2026-11-01/" in f for f in files)
    assert any("/truth/dt=2026-11-01/" in f for f in files)

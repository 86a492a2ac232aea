"""The validation gate on synthetic curated days in the ingest contract format (real GX)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from components.validate import ValidationGateError, read_verdict, require_passed, run_validation
from simulator.curated import SyntheticSpec, write_history
from taml.cli.main import main
from taml.core import layout as L
from taml.core import storage
from taml.core.config import load_config

START = dt.date(2026, 11, 1)
DAY = dt.date(2026, 11, 4)


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("val") / "data"
    write_history(str(root), START, 4, SyntheticSpec(samples_per_day=1500, seed=3))
    for day in L.day_range(START, 4):
        # A landed D+1 holds about a day of clicks and conversions (the synthetic manifests
        # list only D's spill-over there, which reads as a partial partition).
        _set_next_day(
            root,
            day,
            lambda this, nxt: dict(nxt, read=this["read"], other_day=this["read"] - nxt["accepted"]),
        )
    return root


def _set_next_day(root: Path, day: dt.date, fn, sources=("clicks", "conversions")) -> None:
    m = storage.read_json(L.manifest_path(str(root), day))
    this, nxt = L.partition(day), L.partition(day + dt.timedelta(days=1))
    for source in sources:
        parts = m["sources"][source]
        parts[nxt] = fn(parts[this], parts[nxt])
    storage.write_json(L.manifest_path(str(root), day), m)


@pytest.fixture
def root(history: Path, tmp_path: Path) -> Path:
    """A private copy each test may damage."""
    dst = tmp_path / "data"
    shutil.copytree(history, dst)
    return dst


def _cfg(tmp_path: Path, *overrides: str):
    return load_config(env={}, overrides=[f"paths.artifact_root={tmp_path / 'art'}", *overrides])


def _samples_file(root: Path) -> Path:
    return next(Path(L.curated_dir(str(root), "samples", DAY)).glob("*.parquet"))


def _rewrite_samples(root: Path, fn) -> None:
    f = _samples_file(root)
    pq.write_table(
        fn(pq.read_table(f).to_pandas()).pipe(
            lambda df: __import__("pyarrow").Table.from_pandas(df, preserve_index=False)
        ),
        f,
    )


def test_clean_day_passes_and_writes_offline_artifacts(root: Path, tmp_path: Path):
    r = run_validation(_cfg(tmp_path), DAY, str(root))
    assert r.passed and not r.failed_critical
    names = {o.name for o in r.critical}
    assert {
        "schema.event_timestamp",
        "domain.conversion_implies_click",
        "day.volume",
        "labels.complete",
        "manifest.dead_letter_share",
        "nulls.user_id",
    } <= names
    ctr = next(o for o in r.critical if o.name == "day.ctr")
    assert 0.03 < ctr.observed < 0.07 and ctr.expected == {"min_value": 0.005, "max_value": 0.2}
    out = Path(tmp_path / "art" / "validation" / f"dt={DAY}")
    assert read_verdict(str(out)).passed
    html = (out / "report.html").read_text()
    assert "PASSED" in html and "http://" not in html and "https://" not in html and "<style>" in html
    assert "| `day.ctr` | ok |" in (out / "report.md").read_text()
    require_passed(str(tmp_path / "art"), DAY)


def test_conversion_without_click_fails_with_observed_and_expected(root: Path, tmp_path: Path):
    def breach(df):
        df.loc[df.index[:3], ["click", "conversion"]] = [0, 1]
        return df

    _rewrite_samples(root, breach)
    r = run_validation(_cfg(tmp_path), DAY, str(root))
    assert not r.passed
    [o] = [o for o in r.failed_critical if o.name == "domain.conversion_implies_click"]
    assert o.observed["unexpected_count"] == 3 and o.expected == {"or_equal": True}
    assert "conversion = 1 implies click = 1" in o.message()
    with pytest.raises(ValidationGateError, match="conversion_implies_click"):
        require_passed(str(tmp_path / "art"), DAY)


def test_renamed_column_and_wrong_type_fail_the_schema(root: Path, tmp_path: Path):
    _rewrite_samples(root, lambda df: df.rename(columns={"click": "clicked"}).assign(device=1))
    r = run_validation(_cfg(tmp_path), DAY, str(root))
    failed = {o.name: o for o in r.failed_critical}
    assert "column 'click' is missing" in failed["schema.click"].error
    assert failed["schema.device"].observed == "int64"
    assert failed["domain.device"].observed["unexpected_count"] == 1500


def test_missing_next_day_labels_and_manifest(root: Path, tmp_path: Path):
    m = storage.read_json(L.manifest_path(str(root), DAY))
    del m["sources"]["conversions"][L.partition(DAY + dt.timedelta(days=1))]
    storage.write_json(L.manifest_path(str(root), DAY), m)
    r = run_validation(_cfg(tmp_path), DAY, str(root))
    [o] = [o for o in r.failed_critical if o.name == "labels.complete"]
    assert o.observed["examples"] == ["conversions dt=2026-11-05: not read by the ingest"]
    Path(L.manifest_path(str(root), DAY)).unlink()
    r = run_validation(_cfg(tmp_path), DAY, str(root))
    assert [o.name for o in r.failed_critical] == ["manifest.present"]


def test_bounds_come_from_config_and_warnings_do_not_stop(root: Path, tmp_path: Path):
    r = run_validation(_cfg(tmp_path, "validation.warning.ctr_min=0.2"), DAY, str(root))
    assert r.passed and [o.name for o in r.failed_warnings] == ["day.ctr"]
    r = run_validation(_cfg(tmp_path, "validation.critical.volume_max_ratio=0.9"), DAY, str(root))
    [o] = r.failed_critical
    assert o.name == "day.volume" and o.observed == pytest.approx(1.0)
    r = run_validation(_cfg(tmp_path, "validation.volume_min_history=9"), DAY, str(root))
    assert r.passed and any(s.startswith("day.volume") for s in r.skipped)


def test_dead_letter_share_and_missing_samples(root: Path, tmp_path: Path):
    m = storage.read_json(L.manifest_path(str(root), DAY))
    part = m["sources"]["impressions"][L.partition(DAY)]
    part["dead_letter"] = {"malformed_json": 200}
    part["read"] += 200
    storage.write_json(L.manifest_path(str(root), DAY), m)
    shutil.rmtree(L.curated_dir(str(root), "samples", DAY))
    r = run_validation(_cfg(tmp_path), DAY, str(root))
    failed = {o.name: o for o in r.failed_critical}
    assert set(failed) == {"samples.present", "manifest.dead_letter_share"}
    assert failed["manifest.dead_letter_share"].observed == pytest.approx(200 / 1700)


def test_cli_exit_codes(root: Path, tmp_path: Path, capsys):
    args = ["validate", "--date", str(DAY), "--data-root", str(root), "--artifact-root", str(tmp_path / "a")]
    assert main(args) == 0
    assert main([*args, "--set", "validation.critical.ctr_min=0.5"]) == 1
    assert "day.ctr FAILED" in capsys.readouterr().out


def _marker(root: Path, source: str, present: bool = True) -> None:
    m = storage.read_json(L.manifest_path(str(root), DAY))
    files = m.setdefault("inputs", {}).setdefault("files", {})
    files.setdefault(source, {})[L.partition(DAY + dt.timedelta(days=1))] = {
        "read": [],
        "skipped": [],
        "marker": present,
    }
    m.setdefault("config", {})["landing_marker"] = "_SUCCESS"
    storage.write_json(L.manifest_path(str(root), DAY), m)


# How a D+1 label partition can look, and whether it counts as landed under each rule.
# share: D+1 lines / D lines (clicks and conversions alike); marker: its _SUCCESS was seen.
LANDING = {
    "empty_folder": (0.0, False, {"marker": False, "volume": False, "marker_or_volume": False}),
    "partial_tenth": (0.1, False, {"marker": False, "volume": False, "marker_or_volume": False}),
    "just_under_half": (0.49, False, {"marker": False, "volume": False, "marker_or_volume": False}),
    "landed_by_volume": (0.9, False, {"marker": False, "volume": True, "marker_or_volume": True}),
    "empty_with_marker": (0.0, True, {"marker": True, "volume": False, "marker_or_volume": True}),
    "full_with_marker": (1.0, True, {"marker": True, "volume": True, "marker_or_volume": True}),
}


@pytest.mark.parametrize("rule", ["marker", "volume", "marker_or_volume"])
@pytest.mark.parametrize("case", sorted(LANDING))
def test_labels_complete_needs_a_landed_next_day(root: Path, tmp_path: Path, case: str, rule: str):
    share, marker, landed = LANDING[case]
    _set_next_day(
        root, DAY, lambda this, nxt: dict(nxt, read=int(this["read"] * share), other_day=0, accepted=0)
    )
    for source in ("clicks", "conversions"):
        _marker(root, source, marker)
    r = run_validation(_cfg(tmp_path, f"validation.labels_landing={rule}"), DAY, str(root))
    [o] = [o for o in r.critical if o.name == "labels.complete"]
    assert o.success is landed[rule], o.message()
    if not o.success:
        # dt=D has 75 clicks but only 7 conversions: too few (< labels_min_lines) to judge by volume.
        assert r.passed is False and o.observed["unexpected_count"] == (2 if rule == "marker" else 1)
        why = o.observed["examples"][0]
        assert why.startswith("clicks dt=2026-11-05: ")
        assert ("no _SUCCESS marker" in why) is (rule != "volume")
        if rule != "marker":
            assert "of 75 on dt=D (< validation.labels_min_volume_share = 0.5)" in why


def test_only_the_partial_source_fails_and_few_lines_are_not_judged(root: Path, tmp_path: Path):
    _set_next_day(root, DAY, lambda this, nxt: dict(nxt, read=0), sources=("conversions",))
    r = run_validation(_cfg(tmp_path, "validation.labels_min_lines=5"), DAY, str(root))
    [o] = [o for o in r.failed_critical if o.name == "labels.complete"]
    assert o.observed["unexpected_count"] == 1
    assert o.observed["examples"] == [
        "conversions dt=2026-11-05: 0 lines = 0 of 7 on dt=D (< validation.labels_min_volume_share = 0.5)"
        " and no _SUCCESS marker: an empty or partial partition, not landed yet?"
    ]
    # By default 7 conversions on dt=D are too few to judge D+1's volume by (labels_min_lines).
    r = run_validation(_cfg(tmp_path), DAY, str(root))
    assert r.passed, [x.message() for x in r.failed_critical]

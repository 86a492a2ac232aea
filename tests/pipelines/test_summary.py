"""The per-day summary of `taml run` / `taml backfill`, built from the steps' run records."""

import datetime as dt

from pipelines.local import DayRun, format_summary, gate_verdict, summary_rows

DAY = dt.date(2026, 11, 3)


def _row(records: dict, ok: bool = True) -> dict:
    return summary_rows([DayRun(DAY, ok, 12.0, "log", records)])[0]


def test_the_gate_column_names_the_deciding_rule_with_its_interval():
    rule = {
        "rule": "no_regression",
        "metric": "ctcvr_auc",
        "value": -0.012,
        "low": -0.020,
        "high": -0.004,
        "threshold": -0.01,
        "verdict": "fail",
    }
    ev = {"blessed": False, "failed_rules": ["no_regression:ctcvr_auc"], "deciding_rule": rule}
    assert gate_verdict(ev) == "rejected: no_regression:ctcvr_auc -0.012 [-0.020,-0.004]"
    ok = {**rule, "value": 0.004, "low": -0.002, "high": 0.01, "verdict": "pass"}
    assert gate_verdict({"blessed": True, "deciding_rule": ok}) == (
        "blessed: no_regression:ctcvr_auc +0.004 [-0.002,0.010]"
    )
    # A rule without an interval (a count, a NaN check) shows its value alone.
    count = {"rule": "min_conversions", "metric": "conversions", "value": 3, "low": None, "high": None}
    assert (
        gate_verdict({"blessed": False, "deciding_rule": count})
        == "rejected: min_conversions:conversions +3.000"
    )
    # Records from before the field existed still read.
    assert gate_verdict({"blessed": False, "failed_rules": ["floor:cvr_auc"]}) == "rejected: floor:cvr_auc"
    assert gate_verdict({"blessed": True}) == "blessed"


def test_each_day_reads_as_what_happened():
    assert _row({}, ok=False)["gate"] == "run failed"
    failed = _row({"validate": {"passed": False, "failed": ["labels complete: dt=D+1 missing"]}})
    assert failed["gate"] == "validation failed: labels complete: dt=D+1 missing"
    skipped = {
        "train": {"trained": False, "reason": "nothing new"},
        "deploy": {"version": "", "promoted": False},
    }
    assert _row(skipped)["gate"] == "not trained: nothing new" and _row(skipped)["deployed"] == "-"
    # The first days of a history: the days before it are counted, not listed.
    before = {f"2026-10-{d}": "no feature table" for d in range(26, 32)}
    reason = "cold start needs 3 validated day(s) with feature tables before 2026-11-02; found 1"
    first = {
        "train": {
            "trained": False,
            "reason": f"{reason}; left out: no feature table: ...",
            "excluded": before,
        }
    }
    assert _row(first)["gate"] == f"not trained: {reason} (6 day(s) left out: see train.json)"
    done = {
        "train": {"trained": True, "mode": "warm"},
        "evaluate": {
            "blessed": True,
            "candidate_metrics": {"ctr_auc": 0.71, "cvr_auc": 0.65, "ctcvr_auc": 0.74},
        },
        "deploy": {"version": "20261102-abc", "promoted": True},
        "monitor": {"status": "ok"},
    }
    row = _row(done)
    assert (row["train"], row["gate"], row["deployed"], row["drift"]) == (
        "warm",
        "blessed",
        "20261102-abc",
        "ok",
    )
    assert row["cand ctr/cvr/ctcvr"] == "0.710/0.650/0.740"
    assert "20261102-abc" in format_summary([DayRun(DAY, True, 1.0, "log", done)], "/art")

"""The monitor against the simulator's scenarios: clean days stay quiet, each break is caught."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FIRST_PREDICTED, REFERENCE_DAYS

from monitoring import run_monitor


def _alerting(result) -> str:
    return "\n".join(p for p in result.problems if p.startswith("alert"))


def test_five_clean_days_give_no_alert(sim, artifact_root, monitor_config):
    days = sim.days[FIRST_PREDICTED + REFERENCE_DAYS :]
    assert len(days) >= 5
    for day in days:
        r = run_monitor(monitor_config, day, "unused", artifact_root, write_history=False)
        assert r.status != "alert", f"{day}: {r.problems}"
        assert len(r.reference_days) == REFERENCE_DAYS
        for task in ("ctr", "cvr", "ctcvr"):
            assert 0.85 < r.headline_metrics[f"{task}_calibration"] < 1.15
            assert r.headline_metrics[f"{task}_auc"] > 0.7
        assert r.headline_metrics["input_drift_share"] < monitor_config.monitor.input_drift_share.alert_max
        assert r.headline_metrics["ctcvr_above_ctr_share"] == 0.0
        assert max(r.headline_metrics[f"{c}_drift"] for c in ("p_ctr", "p_cvr", "p_ctcvr")) < 0.1


def test_calibration_break_alerts_on_cvr_and_ctcvr_calibration_that_day(sim, artifact_root, monitor_config):
    day = sim.days[-1]
    clean = run_monitor(monitor_config, day, "unused", artifact_root, write_history=False)
    broken = run_monitor(
        monitor_config,
        day,
        "unused",
        artifact_root,
        predictions=sim.scenario_predictions("calibration_break", day),
    )
    assert broken.status == "alert"
    alerts = _alerting(broken)
    assert "Calibration ratio" in alerts and "CVR (clicked" in alerts and "CTCVR" in alerts
    # Postbacks lost: the model predicts more conversions than are logged; clicks are untouched.
    m = broken.headline_metrics
    assert m["cvr_calibration"] > monitor_config.monitor.calibration.alert_max
    assert m["ctcvr_calibration"] > monitor_config.monitor.calibration.alert_max
    assert m["cvr_calibration"] > clean.headline_metrics["cvr_calibration"] * 1.3
    assert abs(m["ctr_calibration"] - clean.headline_metrics["ctr_calibration"]) < 1e-9
    assert "Input drift" not in alerts and "Unseen" not in alerts


def test_ctr_shift_is_flagged_as_calibration_drift(sim, artifact_root, monitor_config):
    day = sim.days[-1]
    r = run_monitor(
        monitor_config,
        day,
        "unused",
        artifact_root,
        predictions=sim.scenario_predictions("ctr_shift", day),
        write_history=False,
    )
    assert r.status == "alert"
    assert "Calibration ratio (mean prediction / observed rate): CTR" in _alerting(r)
    # Users click more, the model does not know: it under-predicts CTR, its scores do not move.
    assert r.headline_metrics["ctr_calibration"] < monitor_config.monitor.calibration.alert_min
    assert r.headline_metrics["p_ctr_drift"] < 0.1


def test_new_item_flood_is_flagged_as_input_drift(sim, artifact_root, monitor_config):
    day = sim.days[-1]
    r = run_monitor(
        monitor_config,
        day,
        "unused",
        artifact_root,
        predictions=sim.scenario_predictions("new_item_flood", day),
        write_history=False,
    )
    assert r.status == "alert"
    alerts = _alerting(r)
    assert "Input drift: share of drifted input columns" in alerts
    assert "Unseen item_id" in alerts
    assert r.headline_metrics["input_drift_share"] >= monitor_config.monitor.input_drift_share.alert_max
    assert r.headline_metrics["item_id_unseen_share"] > 0.4
    # The item stats of brand-new items are missing: those are the columns that drifted.
    report = json.loads(Path(r.json_uri).read_text())
    scores = {
        m["metric_name"].split("column=")[1].split(",")[0]: m["value"]
        for m in report["metrics"]
        if m.get("metric_name", "").startswith("ValueDrift(column=item_")
    }
    assert scores and all(v >= monitor_config.monitor.cat_drift_threshold for v in scores.values()), scores

"""run_monitor and `taml drift` on small synthetic days: inputs, outputs, status rules, errors."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from monitor_fixtures import synthetic_predictions, write_predictions

from monitoring import MonitorInputError, run_monitor
from taml.cli.main import main
from taml.core.config import Config
from taml.core.errors import TamlError

DAY = dt.date(2026, 11, 10)


def _config(**monitor) -> Config:
    cfg = Config()
    cfg.monitor.features = ["device", "position", "item_id", "user_ctr_7d"]
    cfg.monitor.reference_days = 3
    for k, v in monitor.items():
        setattr(cfg.monitor, k, v)
    return cfg


@pytest.fixture
def root(tmp_path: Path) -> str:
    for k in range(1, 4):
        write_predictions(str(tmp_path), DAY - dt.timedelta(days=k), synthetic_predictions(4000, seed=k))
    write_predictions(str(tmp_path), DAY, synthetic_predictions(4000, seed=99))
    return str(tmp_path)


def test_outputs_status_and_self_contained_html(root):
    r = run_monitor(_config(), DAY, "unused", root)
    out = Path(root) / "monitoring" / f"dt={DAY}"
    assert {p.name for p in out.iterdir()} >= {"report.html", "report.json", "status.json"}
    assert r.html_uri == str(out / "report.html") and r.status in ("ok", "warn")
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == r.status and status["reference_days"] == [
        str(DAY - dt.timedelta(days=k)) for k in (3, 2, 1)
    ]
    for key in (
        "ctr_calibration",
        "cvr_calibration",
        "ctcvr_calibration",
        "ctr_ece",
        "ctr_auc",
        "ctcvr_auc",
        "ctcvr_above_ctr_share",
        "input_drift_share",
        "p_ctr_drift",
        "item_id_unseen_share",
    ):
        assert key in status["headline_metrics"], key
    # The synthetic model is calibrated by construction.
    assert abs(status["headline_metrics"]["ctr_calibration"] - 1) < 0.1
    html = (out / "report.html").read_text()
    # Opens offline: no script or stylesheet is fetched from anywhere (plotly and CSS are inlined).
    assert re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", html) is None
    assert "plotly" in html.lower() and len(html) > 500_000
    report = json.loads((out / "report.json").read_text())
    reliability = [m for m in report["metrics"] if m.get("metric_name", "").startswith("ReliabilityTable")]
    assert len(reliability) == 3 and len(reliability[0]["value"]["rows"]) == 10
    assert Path(r.history_uri).exists() and (Path(root) / "monitoring" / "history.png").stat().st_size > 1000


def test_ctcvr_above_ctr_alerts(root):
    df = synthetic_predictions(4000, seed=5)
    df.loc[:9, "p_ctcvr"] = df.loc[:9, "p_ctr"] + 0.01
    r = run_monitor(_config(), DAY, "unused", root, predictions=df, write_history=False)
    assert r.status == "alert"
    assert r.headline_metrics["ctcvr_above_ctr_share"] == pytest.approx(10 / 4000)
    assert any("pCTCVR > pCTR" in p for p in r.problems)


def test_validation_failed_day_is_reported_and_at_least_warns(root):
    r = run_monitor(_config(), DAY, "unused", root, validation_failed=True, write_history=False)
    assert r.status in ("warn", "alert") and r.validation_failed
    assert any("VALIDATION FAILED" in n for n in r.notes)
    assert "VALIDATION FAILED" in Path(r.html_uri).read_text()
    r = run_monitor(
        _config(validation_failed_status="alert"),
        DAY,
        "unused",
        root,
        validation_failed=True,
        write_history=False,
    )
    assert r.status == "alert"


def test_no_reference_warns_and_skips_drift(tmp_path):
    write_predictions(str(tmp_path), DAY, synthetic_predictions(3000))
    # Also: with fewer positives than min_positives, calibration and AUC may warn, never alert.
    few = {"ctr": 10_000, "cvr": 10_000, "ctcvr": 10_000}
    r = run_monitor(_config(min_positives=few), DAY, "unused", str(tmp_path), write_history=False)
    assert r.status == "warn" and r.reference_days == []
    assert any("NO REFERENCE" in n for n in r.notes)
    assert "input_drift_share" not in r.headline_metrics and "ctr_calibration" in r.headline_metrics


def _drift_columns(result) -> set[str]:
    report = json.loads(Path(result.json_uri).read_text())
    names = [m.get("metric_name", "") for m in report["metrics"]]
    return {n.split("column=")[1].split(",")[0] for n in names if n.startswith("ValueDrift(column=")}


def test_stats_leave_drift_while_their_window_fills(root, tmp_path):
    # The stats of a day's rows come from the window ending the day before; ingest records its days.
    data = tmp_path / "data"

    def manifests(window_days):
        for k in range(0, 5):
            d = DAY - dt.timedelta(days=k)
            days = [str(d - dt.timedelta(days=i)) for i in range(window_days)]
            path = data / "curated" / "manifest" / f"dt={d}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"inputs": {"stats_days": days}}))

    manifests(window_days=3)  # the first days of a history: 3 of 7
    r = run_monitor(_config(), DAY, str(data), root, write_history=False)
    assert "user_ctr_7d" not in _drift_columns(r) and "device" in _drift_columns(r)
    assert any("stats window still filling" in n and "3 of 7 days" in n for n in r.notes)

    manifests(window_days=7)  # full windows: the stats are watched again
    r = run_monitor(_config(), DAY, str(data), root, write_history=False)
    assert "user_ctr_7d" in _drift_columns(r)
    assert not any("stats window" in n for n in r.notes)

    manifests(window_days=3)  # and the switch turns the exclusion off
    r = run_monitor(_config(stats_warmup_exclude=False), DAY, str(data), root, write_history=False)
    assert "user_ctr_7d" in _drift_columns(r)


def test_sampling_above_max_rows_is_said(root):
    r = run_monitor(_config(max_rows=1000), DAY, "unused", root, write_history=False)
    assert r.sampled and r.rows == 4000 and r.rows_used == 1000
    assert any(n.startswith("SAMPLED") for n in r.notes)


def test_missing_day_uses_the_scorer_and_persists_it(tmp_path):
    calls = []

    def scorer(config, date, data_root, artifact_root):
        calls.append((date, data_root))
        return synthetic_predictions(2000)

    with pytest.raises(MonitorInputError, match=f"no predictions for {DAY}.*no scorer available"):
        run_monitor(_config(), DAY, "data", str(tmp_path))
    r = run_monitor(_config(), DAY, "data", str(tmp_path), scorer=scorer, write_history=False)
    assert calls == [(DAY, "data")] and r.predictions_source == "scored by the monitor"
    assert list((tmp_path / "predictions" / f"dt={DAY}").glob("*.parquet"))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda df: df.drop(columns=["p_cvr", "click"]), "missing column.*click.*p_cvr"),
        (lambda df: df.iloc[:0], "no rows"),
        (lambda df: df.assign(p_ctr=np.nan), "'p_ctr' has no finite value"),
        (lambda df: df.assign(click=2), "'click' must be 0/1"),
        (lambda df: df.assign(click=0, conversion=1), "conversion = 1 without click"),
    ],
)
def test_bad_input_names_what_is_wrong(root, mutate, message):
    with pytest.raises(TamlError, match=message):
        run_monitor(_config(), DAY, "unused", root, predictions=mutate(synthetic_predictions(500)))


def test_some_nan_predictions_alert_but_do_not_crash(root):
    df = synthetic_predictions(4000, seed=3)
    df.loc[:19, "p_cvr"] = np.nan
    r = run_monitor(_config(), DAY, "unused", root, predictions=df, write_history=False)
    assert r.status == "alert" and r.headline_metrics["nan_prediction_share"] == pytest.approx(20 / 4000)
    assert np.isfinite(r.headline_metrics["cvr_calibration"])


def test_serving_log_is_used_when_present(root):
    log_dir = Path(root) / "serving_log" / f"dt={DAY}"
    log_dir.mkdir(parents=True)
    df = synthetic_predictions(1000, seed=8, with_features=False)
    lines = [
        json.dumps(
            {
                "ts": "2026-11-10T01:00:00Z",
                "model_version": "v9",
                "user_id": 1,
                "item_id": 2,
                "p_ctr": 2 * a,
                "p_cvr": b,
                "p_ctcvr": 2 * a * b,
            }
        )
        for a, b in zip(df.p_ctr, df.p_cvr, strict=True)
    ]
    (log_dir / "part-0.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\nnot json\n").encode()))
    r = run_monitor(_config(), DAY, "unused", root, write_history=False)
    assert any("serving log: 1,000 predictions" in n and "v9" in n for n in r.notes)
    assert r.headline_metrics["serving_skew_ctr"] == pytest.approx(2.0, rel=0.15)
    assert any("Serving skew CTR" in p for p in r.problems)


def test_cli_exit_status_and_history(root, capsys):
    args = [
        "drift",
        "--date",
        str(DAY),
        "--artifact-root",
        root,
        "--data-root",
        root,
        "--set",
        "monitor.features=[device, position]",
        "--set",
        "monitor.reference_days=3",
    ]
    assert main(args) == 0
    assert "history" in capsys.readouterr().out
    bad = synthetic_predictions(4000, seed=4)
    bad["p_ctcvr"] = bad["p_ctr"] * 1.5
    write_predictions(root, DAY, bad)
    assert main(args) == 1
    assert "ALERT" in capsys.readouterr().out
    assert main(["drift", "--date", "2026-12-01", "--artifact-root", root]) == 2
    # Nothing was written for that day and nothing can score it: the error says why.
    assert "cannot score 2026-12-01: there is no production model yet" in capsys.readouterr().err

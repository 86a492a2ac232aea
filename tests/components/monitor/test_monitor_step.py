"""components.monitor: the monitoring step the pipeline and `taml drift` share, and its record."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from components.common.records import read_records
from components.monitor import run_monitor_step
from taml.cli.main import main
from taml.core.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "monitoring"))  # the monitoring fixtures
from monitor_fixtures import synthetic_predictions, write_predictions  # noqa: E402

DAY = dt.date(2026, 11, 10)


def _config() -> Config:
    cfg = Config()
    cfg.monitor.features = ["device", "position"]
    cfg.monitor.reference_days = 2
    return cfg


def test_a_day_with_predictions_is_reported_and_recorded(tmp_path):
    root = str(tmp_path)
    for k in (1, 2):
        write_predictions(root, DAY - dt.timedelta(days=k), synthetic_predictions(3000, seed=k))
    write_predictions(root, DAY, synthetic_predictions(3000, seed=9))
    out = run_monitor_step(_config(), DAY, root, root, validation_failed=True, write_history=False)
    assert out.result is not None and out.status == out.result.status
    # A failed validation floors the status at warn (monitor.validation_failed_status).
    assert out.status in ("warn", "alert")
    record = read_records(root, DAY)["monitor"]
    assert record["status"] == out.status and record["validation_failed"] is True
    assert record["report"] == out.result.html_uri and Path(record["report"]).exists()
    assert set(record["headline"]) == set(out.result.headline_metrics)


def test_a_day_no_model_served_is_recorded_not_raised(tmp_path):
    root = str(tmp_path)
    out = run_monitor_step(_config(), DAY, root, root)
    assert out.status == "no model" and out.result is None
    assert "no production model" in out.reason
    assert read_records(root, DAY)["monitor"] == {
        **read_records(root, DAY)["monitor"],
        "status": "no model",
        "reason": out.reason,
    }


def test_taml_drift_runs_the_same_step(tmp_path, capsys):
    root = str(tmp_path)
    write_predictions(root, DAY, synthetic_predictions(3000, seed=9))
    args = ["drift", "--date", str(DAY), "--data-root", root, "--artifact-root", root, "--no-history"]
    code = main([*args, "--set", "monitor.features=[device]"])
    assert code in (0, 1)
    # The CLI wrote the same run record the pipeline's monitor task writes.
    assert read_records(root, DAY)["monitor"]["status"] in capsys.readouterr().out.lower()

"""`taml bench model`: the day plan of the tuned protocol and its settings (no training here)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
from pathlib import Path

import pytest

from taml.core.errors import TamlError

_SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "model_compare.py"
_spec = importlib.util.spec_from_file_location("model_compare", _SCRIPT)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

D = dt.date(2026, 11, 2)


def args(**kw) -> argparse.Namespace:
    base = {"train_start": D, "train_days": 3, "test_day": None, "no_tune": False, "budget": None,
            "tune_seeds": None, "select": None, "tune_config": None}  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


def test_validation_day_precedes_the_test_day_with_equal_windows():
    days = bench.plan_days(args())
    (valid,), (test,) = days["valid"], days["test"]
    assert valid < test and test == valid + dt.timedelta(days=1)
    assert days["valid_train"] == [D, D + dt.timedelta(days=1), D + dt.timedelta(days=2)]
    assert days["train"] == [d + dt.timedelta(days=1) for d in days["valid_train"]]
    assert max(days["valid_train"]) < valid and max(days["train"]) < test
    assert test not in days["valid_train"] + days["valid"]  # nothing is chosen on the test day


def test_no_tune_plan_and_bad_days():
    days = bench.plan_days(args(no_tune=True))
    assert set(days) == {"train", "test"} and days["test"] == [D + dt.timedelta(days=3)]
    with pytest.raises(TamlError, match="day after the validation day"):
        bench.plan_days(args(test_day=D + dt.timedelta(days=9)))
    with pytest.raises(TamlError, match="must come after"):
        bench.plan_days(args(no_tune=True, test_day=D))


def test_tune_settings_from_flags_and_file(tmp_path):
    f = tmp_path / "tune.yaml"
    f.write_text("budget: 4\nselect: mean_eauc\ncommon_space: {train.lr: [0.001, 0.002]}\n")
    tune = bench.tune_settings(args(tune_config=str(f), budget=3))
    assert (tune.budget, tune.select, tune.common_space) == (3, "mean_eauc", {"train.lr": [0.001, 0.002]})
    with pytest.raises(TamlError, match="tuning settings"):
        bench.tune_settings(args(select="best_guess"))


def test_summary_states_what_the_test_day_resolves():
    entry = {m: [0.7, 0.72] for m in ("ctr_auc", "cvr_auc", "ctcvr_auc", "rho_cvr_ctr_clicked")}
    entry |= {"cvr_auc_se": [0.0040, 0.0048], "samples_per_s": 1000.0}
    report = {
        "models": {"taml": entry, "esmm": entry},
        "setup": {"test_rows": 1_000_000, "test_clicks": 79_336, "test_conversions": 5_856},
    }
    text = bench.summarize(report)
    assert "1000000 rows, 79336 clicks, 5856 conversions" in text
    assert "DeLong SE of CVR AUC median 0.0044 (max 0.0048)" in text

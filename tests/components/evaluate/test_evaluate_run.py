"""The evaluate step's plumbing around the gate: base rates of the training window, KFP figures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.evaluate import Scores, base_rate_scores
from components.evaluate.gate import Blessing, ModelMetrics, RuleResult
from components.evaluate.run import EvaluateError, EvaluateOutcome, training_base_rates
from taml.core import layout

D1 = dt.date(2026, 11, 1)


def _table(data: Path, day: dt.date, click, conversion) -> None:
    out = Path(layout.training_table_dir(str(data), day))
    out.mkdir(parents=True)
    pd.DataFrame({"click": click, "conversion": conversion, "user_id": 1}).to_parquet(out / "part-0.parquet")


def test_base_rates_pool_the_training_window_and_skip_missing_days(tmp_path):
    _table(tmp_path, D1, [1, 0, 0, 0], [1, 0, 0, 0])
    _table(tmp_path, D1 + dt.timedelta(days=2), [1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0])  # day 2 missing
    ctr, cvr = training_base_rates(str(tmp_path), D1, D1 + dt.timedelta(days=2))
    assert ctr == pytest.approx(3 / 10) and cvr == pytest.approx(1 / 3)
    ref = base_rate_scores(5, ctr, cvr)
    assert isinstance(ref, Scores) and np.allclose(ref.p_ctcvr, 0.1) and ref.model_id.startswith("base-rate")


def test_base_rates_need_labeled_training_rows(tmp_path):
    with pytest.raises(EvaluateError, match="no labeled training rows"):
        training_base_rates(str(tmp_path), D1, D1)
    with pytest.raises(EvaluateError, match="no training window"):
        training_base_rates(str(tmp_path), None, D1)


def test_gate_metrics_are_the_deciding_rule_and_min_conversions():
    rule = RuleResult("no_regression", "ctcvr_auc", 0.01, -0.02, 0.04, -0.04, "pass", "")
    blessing = Blessing(True, ModelMetrics("c", {}), None, [rule], "", min_conversions=31.5, deciding=rule)
    out = EvaluateOutcome(True, "", "", "", None, None, blessing)
    assert out.gate_metrics() == {
        "deciding_value": 0.01,
        "deciding_low": -0.02,
        "deciding_high": 0.04,
        "deciding_threshold": -0.04,
        "min_conversions": 31.5,
    }
    assert EvaluateOutcome(False, "", "", "", None, None).gate_metrics() == {}
    diag = {"candidate": {"cvr_ctr_spearman": 0.4, "clicked_rows": 10.0, "gate_cvr_task": float("nan")}}
    assert EvaluateOutcome(False, "", "", "", None, None, None, diag).gate_metrics() == {
        "candidate_cvr_ctr_spearman": 0.4
    }

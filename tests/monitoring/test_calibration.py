"""The plain calibration functions: task definitions, reliability table, consistency shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model.metrics import ece
from monitoring import calibration as C
from monitoring.status import TestOutcome as Outcome
from monitoring.status import day_status


def _frame():
    return pd.DataFrame(
        {
            "click": [1, 1, 0, 0, 1, 0],
            "conversion": [1, 0, 0, 0, 0, 0],
            "p_ctr": [0.5, 0.5, 0.1, 0.1, 0.3, np.nan],
            "p_cvr": [0.4, 0.2, 0.9, 0.9, 0.1, 0.1],
            "p_ctcvr": [0.2, 0.1, 0.09, 0.2, 0.03, 0.01],
        }
    )


def test_tasks_follow_the_evaluate_step_definitions():
    df = _frame()
    y, p = C.task_arrays(df, "cvr")  # clicked rows only
    assert y.tolist() == [1, 0, 0] and p.tolist() == [0.4, 0.2, 0.1]
    y, p = C.task_arrays(df, "ctr")  # the NaN prediction is left out
    assert len(y) == 5
    assert C.task_calibration(df, "cvr") == pytest.approx((0.7 / 3) / (1 / 3))
    assert C.task_calibration(df, "ctcvr") == pytest.approx(
        np.mean([0.2, 0.1, 0.09, 0.2, 0.03, 0.01]) / (1 / 6)
    )
    assert C.ctcvr_above_ctr_share(df) == pytest.approx(1 / 6)
    assert C.nan_prediction_share(df) == pytest.approx(1 / 6)


def test_reliability_table_matches_ece():
    rng = np.random.default_rng(1)
    p = rng.random(5000) * 0.6
    y = (rng.random(5000) < p * 0.8).astype(int)
    df = pd.DataFrame({"click": y, "conversion": 0, "p_ctr": p, "p_cvr": 0.1, "p_ctcvr": p * 0.1})
    t = C.reliability_table(df, "ctr", 10)
    assert len(t) == 10 and t["rows"].sum() == 5000 and t.loc[7:, "rows"].sum() == 0
    assert (t["rows"] * t["gap"].abs()).sum() / 5000 == pytest.approx(ece(y, p, 10))
    assert C.task_ece(df, "ctr", 10) == pytest.approx(ece(y, p, 10))


def test_status_is_the_worst_outcome_and_floors():
    ok = Outcome("a", "", "ok", "SUCCESS")
    warn = Outcome("b", "", "warn", "WARNING")
    alert = Outcome("c", "", "alert", "FAIL")
    assert day_status([ok]) == "ok"
    assert day_status([ok, warn]) == "warn"
    assert day_status([warn, alert]) == "alert"
    assert day_status([ok], ["warn"]) == "warn"

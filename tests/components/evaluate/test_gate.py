import math

import pytest

from components.evaluate import ModelMetrics, judge
from taml.config import GateRules

GOOD = {
    "ctr_auc": 0.74,
    "cvr_auc": 0.70,
    "ctcvr_auc": 0.80,
    "ctr_calibration": 1.02,
    "cvr_calibration": 0.97,
    "ctcvr_calibration": 0.99,
    "nan_predictions": 0,
    "ctcvr_above_ctr_share": 0.0,
    "clicks": 3000,
    "conversions": 80,
}


def _m(model_id: str, **changes) -> ModelMetrics:
    return ModelMetrics(model_id, {**GOOD, **changes})


def _failed(blessing) -> set[tuple[str, str]]:
    return {(r.rule, r.metric) for r in blessing.failed}


def test_a_good_candidate_without_production_is_blessed():
    b = judge(_m("cand"), None, GateRules())
    assert b.blessed and b.reason.startswith("all")
    skipped = [r for r in b.rules if r.verdict == "skipped"]
    assert {r.metric for r in skipped} == {"ctr_auc", "cvr_auc", "ctcvr_auc"}  # regression needs production


def test_better_on_one_metric_worse_on_another_is_not_blessed():
    production = _m("prod", ctr_auc=0.74, cvr_auc=0.70)
    candidate = _m("cand", ctr_auc=0.76, cvr_auc=0.68)  # +0.02 CTR, -0.02 CVR (tolerance 0.01)
    b = judge(candidate, production, GateRules())
    assert not b.blessed
    assert _failed(b) == {("no_regression", "cvr_auc")}
    rule = next(r for r in b.rules if r.rule == "no_regression" and r.metric == "cvr_auc")
    assert rule.threshold == pytest.approx(0.69) and rule.value == 0.68
    # The same candidate against a weaker production passes: the comparison uses production's numbers.
    assert judge(candidate, _m("prod2", cvr_auc=0.685), GateRules()).blessed


def test_regression_within_tolerance_passes():
    assert judge(_m("cand", ctcvr_auc=0.795), _m("prod", ctcvr_auc=0.80), GateRules()).blessed


@pytest.mark.parametrize(
    "changes, failed",
    [
        ({"ctr_auc": 0.55}, {("floor", "ctr_auc")}),
        ({"cvr_calibration": 1.4}, {("calibration_max", "cvr_calibration")}),
        ({"ctcvr_calibration": 0.5}, {("calibration_min", "ctcvr_calibration")}),
        ({"nan_predictions": 3}, {("no_nan", "nan_predictions")}),
        ({"ctcvr_above_ctr_share": 0.01}, {("ctcvr_le_ctr", "ctcvr_above_ctr_share")}),
        ({"conversions": 5}, {("min_conversions", "conversions")}),
        ({"cvr_auc": math.nan}, {("floor", "cvr_auc")}),
    ],
)
def test_each_rule_can_fail(changes, failed):
    b = judge(_m("cand", **changes), None, GateRules())
    assert not b.blessed and _failed(b) == failed
    assert "failed:" in b.reason


def test_no_rules_means_not_blessed():
    none = GateRules(
        floors={},
        max_regression={},
        calibration_min=None,
        calibration_max=None,
        max_nan_predictions=None,
        max_ctcvr_above_ctr_share=None,
        min_clicks=None,
        min_conversions=None,
    )
    b = judge(_m("cand"), _m("prod"), none)
    assert not b.blessed and "no rules configured" in b.reason


def test_blessing_records_both_models_and_every_rule():
    d = judge(_m("cand"), _m("prod"), GateRules()).to_dict()
    assert d["candidate"]["model_id"] == "cand" and d["production"]["model_id"] == "prod"
    assert all({"rule", "metric", "value", "threshold", "verdict"} <= set(r) for r in d["rules"])
    assert len(d["rules"]) == 2 + 2 + 3 + 6 + 3

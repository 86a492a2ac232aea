"""The blessing gate: candidate and production metrics on the same unseen day -> a verdict.

Every rule yields a :class:`RuleResult` (value, threshold, verdict) so the blessing artifact
explains itself; the candidate is blessed only when at least one rule ran and none failed.
Regression rules compare against the production model's own metrics on the same day, never
against numbers recorded when production was trained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from taml.config import GateRules

TASKS = ("ctr", "cvr", "ctcvr")
Verdict = Literal["pass", "fail", "skipped"]


@dataclass(frozen=True)
class ModelMetrics:
    """What evaluation measured for one model on the evaluation day."""

    model_id: str
    metrics: dict[str, float]  # ctr_auc, cvr_auc, ctcvr_auc, *_logloss, *_calibration, nan_predictions, ...


@dataclass(frozen=True)
class RuleResult:
    rule: str
    metric: str
    value: float | None
    threshold: float | None
    verdict: Verdict
    detail: str


@dataclass
class Blessing:
    blessed: bool
    candidate: ModelMetrics
    production: ModelMetrics | None
    rules: list[RuleResult] = field(default_factory=list)
    reason: str = ""

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.rules if r.verdict == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "blessed": self.blessed,
            "reason": self.reason,
            "candidate": asdict(self.candidate),
            "production": asdict(self.production) if self.production else None,
            "rules": [asdict(r) for r in self.rules],
        }


def _num(metrics: dict[str, float], key: str) -> float | None:
    value = metrics.get(key)
    return None if value is None else float(value)


def _bad(value: float | None) -> bool:
    return value is None or math.isnan(value) or math.isinf(value)


def judge(candidate: ModelMetrics, production: ModelMetrics | None, rules: GateRules) -> Blessing:
    """Apply every configured rule; see the module docstring for the decision."""
    results: list[RuleResult] = []
    cm = candidate.metrics

    def add(
        rule: str, metric: str, value: float | None, threshold: float | None, ok: bool | None, detail: str
    ) -> None:
        verdict: Verdict = "skipped" if ok is None else ("pass" if ok else "fail")
        results.append(RuleResult(rule, metric, value, threshold, verdict, detail))

    if rules.min_clicks is not None:
        v = _num(cm, "clicks")
        add(
            "min_clicks",
            "clicks",
            v,
            rules.min_clicks,
            v is not None and v >= rules.min_clicks,
            "enough clicks on the evaluation day for a verdict",
        )
    if rules.min_conversions is not None:
        v = _num(cm, "conversions")
        add(
            "min_conversions",
            "conversions",
            v,
            rules.min_conversions,
            v is not None and v >= rules.min_conversions,
            "enough conversions on the evaluation day for a verdict",
        )
    if rules.max_nan_predictions is not None:
        v = _num(cm, "nan_predictions")
        add(
            "no_nan",
            "nan_predictions",
            v,
            rules.max_nan_predictions,
            not _bad(v) and v <= rules.max_nan_predictions,
            "NaN or infinite predictions",
        )
    if rules.max_ctcvr_above_ctr_share is not None:
        v = _num(cm, "ctcvr_above_ctr_share")
        add(
            "ctcvr_le_ctr",
            "ctcvr_above_ctr_share",
            v,
            rules.max_ctcvr_above_ctr_share,
            not _bad(v) and v <= rules.max_ctcvr_above_ctr_share,
            "share of rows with pCTCVR > pCTR",
        )
    for metric, floor in sorted(rules.floors.items()):
        v = _num(cm, metric)
        add("floor", metric, v, floor, not _bad(v) and v >= floor, f"{metric} >= {floor}")
    for task in TASKS:
        metric = f"{task}_calibration"
        v = _num(cm, metric)
        if rules.calibration_min is not None:
            add(
                "calibration_min",
                metric,
                v,
                rules.calibration_min,
                not _bad(v) and v >= rules.calibration_min,
                "mean prediction / observed rate",
            )
        if rules.calibration_max is not None:
            add(
                "calibration_max",
                metric,
                v,
                rules.calibration_max,
                not _bad(v) and v <= rules.calibration_max,
                "mean prediction / observed rate",
            )
    for metric, tolerance in sorted(rules.max_regression.items()):
        v = _num(cm, metric)
        if production is None:
            add("no_regression", metric, v, None, None, "no production model to compare with")
            continue
        p = _num(production.metrics, metric)
        if _bad(p):
            add("no_regression", metric, v, None, None, f"production {metric} is undefined on this day")
            continue
        threshold = p - tolerance
        add(
            "no_regression",
            metric,
            v,
            threshold,
            not _bad(v) and v >= threshold,
            f"candidate >= production ({p:.4f}) - {tolerance}",
        )

    ran = [r for r in results if r.verdict != "skipped"]
    failed = [r for r in ran if r.verdict == "fail"]
    if not ran:
        reason = "no rules configured: nothing is blessed without a rule"
        blessed = False
    elif failed:
        reason = "failed: " + ", ".join(
            f"{r.rule}({r.metric}={_fmt(r.value)} vs {_fmt(r.threshold)})" for r in failed
        )
        blessed = False
    else:
        reason = f"all {len(ran)} rules passed"
        blessed = True
    return Blessing(blessed, candidate, production, results, reason)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"

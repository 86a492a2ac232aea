"""The blessing gate: candidate vs production on the same rows of an unseen day -> a verdict.

A verdict on one day of data is a statistical test, so every rule reads a one-sided bound at
``GateRules.confidence`` (``components.evaluate.evidence``), never a bare point estimate:

* a regression fails only when the data show the candidate worse than the reference by more
  than the tolerance: upper bound of the improvement < -tolerance;
* a floor fails only when the upper bound of the candidate's AUC is below it;
* a calibration bound fails only when the ratio's interval lies wholly outside it;
* no NaN, pCTCVR <= pCTR: exact checks;
* ``min_conversions``: the conversions the lead rules' intervals need to resolve their
  tolerances, computed from the day (a day too small to show non-inferiority is not blessed).

The reference is production scored on the same rows; before the first deployment it is the
base-rate model (constant training base rates), and the lead metrics must then beat it (lower
bound of the improvement > 0); calibration is then judged by its bounds alone (the base rates are
calibrated by construction). Order of the rules = order of the blessing: sanity, lead regressions,
the other regressions, floors, calibration, events. The deciding rule is the first that
failed, or, when blessed, the first lead rule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from components.evaluate.evidence import Day, Evidence, Scores
from model.intervals import Interval, events_to_resolve
from taml.core.config import GATE_CALIBRATION_METRICS, GateRules

TASKS = ("ctr", "cvr", "ctcvr")
Verdict = Literal["pass", "fail", "skipped"]


@dataclass(frozen=True)
class ModelMetrics:
    """What evaluation measured for one model on the evaluation day (point estimates)."""

    model_id: str
    metrics: dict[str, float]  # ctr_auc, cvr_auc, ctcvr_auc, *_log_loss, *_calibration, nan_predictions, ...


@dataclass(frozen=True)
class RuleResult:
    rule: str
    metric: str
    value: float | None
    low: float | None
    high: float | None
    threshold: float | None
    verdict: Verdict
    detail: str

    def summary(self) -> dict[str, Any]:
        return {
            k: _finite(getattr(self, k)) for k in ("rule", "metric", "value", "low", "high", "threshold")
        } | {"verdict": self.verdict}


@dataclass
class Blessing:
    blessed: bool
    candidate: ModelMetrics
    production: ModelMetrics | None
    rules: list[RuleResult] = field(default_factory=list)
    reason: str = ""
    reference: str = ""  # what the candidate was compared with: production's id or the base-rate model
    confidence: float = math.nan
    min_conversions: float | None = None
    deciding: RuleResult | None = None

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.rules if r.verdict == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "blessed": self.blessed,
            "reason": self.reason,
            "reference": self.reference,
            "confidence": self.confidence,
            "min_conversions": _finite(self.min_conversions),
            "deciding_rule": self.deciding.summary() if self.deciding else None,
            "candidate": asdict(self.candidate),
            "production": asdict(self.production) if self.production else None,
            "rules": [{k: _finite(v) for k, v in asdict(r).items()} for r in self.rules],
        }


def _finite(v: Any) -> Any:
    """JSON has no NaN/inf: an undefined figure is recorded as null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4g}"


def judge(
    day: Day,
    candidate: Scores,
    reference: Scores,
    rules: GateRules,
    *,
    first_deployment: bool,
    candidate_metrics: ModelMetrics,
    production_metrics: ModelMetrics | None = None,
) -> Blessing:
    """Apply every configured rule; see the module docstring for the decision."""
    ev = Evidence(rules.confidence, rules.bootstrap_resamples, rules.bootstrap_seed, rules.bootstrap_blocks)
    results: list[RuleResult] = []
    conf = f"{rules.confidence:.0%}"

    def add(rule: str, metric: str, iv: Interval | None, value, threshold, ok: bool | None, detail: str):
        verdict: Verdict = "skipped" if ok is None else ("pass" if ok else "fail")
        low = iv.low if iv else None
        high = iv.high if iv else None
        results.append(RuleResult(rule, metric, value, low, high, threshold, verdict, detail))

    finite = bool(candidate.finite.all())
    cm = candidate_metrics.metrics
    if rules.max_nan_predictions is not None:
        v = float((~candidate.finite).sum())
        add("no_nan", "nan_predictions", None, v, rules.max_nan_predictions,
            v <= rules.max_nan_predictions, "NaN or infinite predictions")  # fmt: skip
    if rules.max_ctcvr_above_ctr_share is not None:
        v = float(np.mean(candidate.p_ctcvr > candidate.p_ctr)) if candidate.p_ctr.size else math.nan
        add("ctcvr_le_ctr", "ctcvr_above_ctr_share", None, v, rules.max_ctcvr_above_ctr_share,
            _ok(v) and v <= rules.max_ctcvr_above_ctr_share, "share of rows with pCTCVR > pCTR")  # fmt: skip

    # Regressions: lead metrics first (in the configured order), then the rest by name.
    order = [m for m in rules.lead] + sorted(m for m in rules.max_regression if m not in rules.lead)
    regression: list[RuleResult] = []
    needed: list[float] = []
    for metric in order:
        tolerance = rules.max_regression[metric]
        lead = metric in rules.lead
        iv = ev.improvement(day, candidate, reference, metric) if finite else None
        defined = iv is not None and _ok(iv.value) and _ok(iv.low) and _ok(iv.high)
        what = _improvement_words(metric)
        if lead and not first_deployment:  # beating the base rates needs no resolution: it is shown or not
            needed.append(events_to_resolve(day.conversions, iv, tolerance) if defined else math.inf)
        if not defined:
            regression.append(RuleResult("no_regression", metric, iv.value if iv else None, None, None,
                                         -tolerance, "fail", f"{what} is undefined on this day"))  # fmt: skip
            continue
        if first_deployment and metric in GATE_CALIBRATION_METRICS:
            # The base rates are the training means: calibrated by construction, so comparing with
            # them only restates calibration_min/max, which judge a first deployment's calibration.
            regression.append(RuleResult("no_regression", metric, iv.value, iv.low, iv.high, -tolerance,
                                         "skipped", f"{what}: not compared with the base-rate reference "
                                         "(calibrated by construction); see calibration_min/max"))  # fmt: skip
            continue
        if first_deployment and lead:
            regression.append(RuleResult(
                "beats_reference", metric, iv.value, iv.low, iv.high, 0.0,
                "pass" if iv.low > 0 else "fail",
                f"{what} vs {reference.model_id}: lower bound at {conf} must be > 0 (a first "
                "deployment must beat the base rates)",
            ))  # fmt: skip
            continue
        regression.append(RuleResult(
            "no_regression", metric, iv.value, iv.low, iv.high, -tolerance,
            "fail" if iv.high < -tolerance else "pass",
            f"{what} vs {reference.model_id}: fails when its upper bound at {conf} is below -{tolerance:g}",
        ))  # fmt: skip

    results.extend(regression)

    for metric, floor in sorted(rules.floors.items()):
        iv = ev.value(day, candidate, metric) if finite else None
        ok = iv is not None and _ok(iv.value) and not (iv.high < floor)
        add("floor", metric, iv, iv.value if iv else cm.get(metric), floor, ok,
            f"fails when the upper bound at {conf} is below {floor:g}")  # fmt: skip

    for metric in GATE_CALIBRATION_METRICS:
        if rules.calibration_min is None and rules.calibration_max is None:
            break
        iv = ev.value(day, candidate, metric) if finite else None
        defined = iv is not None and not math.isnan(iv.low)
        if rules.calibration_min is not None:
            add("calibration_min", metric, iv, iv.value if iv else None, rules.calibration_min,
                defined and not (iv.high < rules.calibration_min),
                f"mean prediction / observed rate: fails when the upper bound at {conf} is below it")  # fmt: skip
        if rules.calibration_max is not None:
            add("calibration_max", metric, iv, iv.value if iv else None, rules.calibration_max,
                defined and not (iv.low > rules.calibration_max),
                f"mean prediction / observed rate: fails when the lower bound at {conf} is above it")  # fmt: skip

    # Last: a day too small to resolve the lead tolerances cannot show non-inferiority, but a
    # rule above may already have shown a regression (that is then the deciding rule).
    min_conversions = max(needed) if needed else None
    if rules.require_resolution and needed:
        have = float(day.conversions)
        add("min_conversions", "conversions", None, have, _finite(min_conversions),
            _ok(min_conversions) and have >= math.ceil(min_conversions),
            f"conversions needed for the lead rules' intervals ({', '.join(rules.lead)}) to resolve "
            f"their tolerances at {conf}")  # fmt: skip

    ran = [r for r in results if r.verdict != "skipped"]
    failed = [r for r in ran if r.verdict == "fail"]
    deciding = (
        failed[0] if failed else next((r for r in ran if r.metric in rules.lead), ran[0] if ran else None)
    )
    if not ran:
        reason, blessed, deciding = "no rules configured: nothing is blessed without a rule", False, None
    elif failed:
        reason = "failed: " + ", ".join(
            f"{r.rule}({r.metric}={_fmt(r.value)} [{_fmt(r.low)}, {_fmt(r.high)}] vs {_fmt(r.threshold)})"
            for r in failed
        )
        blessed = False
    else:
        reason = f"all {len(ran)} rules passed (vs {reference.model_id})"
        blessed = True
    return Blessing(
        blessed,
        candidate_metrics,
        production_metrics,
        results,
        reason,
        reference=reference.model_id,
        confidence=rules.confidence,
        min_conversions=min_conversions,
        deciding=deciding,
    )


def _improvement_words(metric: str) -> str:
    if metric.endswith("_auc"):
        return f"{metric}: candidate - reference"
    if metric in GATE_CALIBRATION_METRICS:
        return f"{metric}: |ln ratio| of the reference - of the candidate"
    return f"{metric}: relative reduction against the reference"

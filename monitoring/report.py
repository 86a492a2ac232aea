"""Assembling and running the Evidently report of one day.

Which metrics, with which thresholds, comes from ``MonitorConfig``; the custom metrics live in
``monitoring.evidently_metrics``. The report is run on (possibly sampled) frames prepared by the
caller, and hands back the snapshot plus the headline figures picked out of it by name.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

# Evidently only phones home from `evidently ui`; set anyway so no code path ever tries.
os.environ.setdefault("DO_NOT_TRACK", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.core.metric_types import CountValue, Metric, SingleValue  # noqa: E402
from evidently.metrics import ValueDrift  # noqa: E402
from evidently.tests import lte  # noqa: E402

from monitoring import calibration as C  # noqa: E402
from monitoring import evidently_metrics as M  # noqa: E402
from monitoring.inputs import FeatureColumns  # noqa: E402
from taml.core.config import MonitorBounds, MonitorConfig  # noqa: E402


@dataclass
class ExternalFigure:
    """A figure computed outside the datasets, shown and tested in the report."""

    key: str
    name: str
    value: float
    bounds: MonitorBounds = field(default_factory=MonitorBounds)
    note: str = ""


@dataclass
class ReportRun:
    snapshot: object  # evidently Snapshot
    headline: dict[str, float]


def _bounds(b: MonitorBounds) -> dict[str, float | None]:
    return {
        "warn_min": b.warn_min,
        "warn_max": b.warn_max,
        "alert_min": b.alert_min,
        "alert_max": b.alert_max,
    }


def _max_tests(b: MonitorBounds) -> list:
    """Upper bounds as plain Evidently tests (for Evidently's own metrics)."""
    tests = []
    if b.alert_max is not None:
        tests.append(lte(b.alert_max, is_critical=True))
    if b.warn_max is not None:
        tests.append(lte(b.warn_max, is_critical=False))
    return tests


def data_definition(features: FeatureColumns, extra_categorical: list[str]) -> DataDefinition:
    return DataDefinition(
        numerical_columns=[*features.numerical, *C.PREDICTIONS, *C.SERVED.values(), *C.LABELS],
        categorical_columns=[*features.categorical, *features.bucketized, *extra_categorical],
    )


def build_metrics(
    cfg: MonitorConfig,
    features: FeatureColumns,
    has_reference: bool,
    task_positives: dict[str, int],
    external: list[ExternalFigure],
    notes: list[str],
    unseen_columns: frozenset[str] = frozenset(),
    overdispersion: dict[str, float] | None = None,
) -> dict[str, Metric]:
    """Every metric of the report, keyed by its headline name (dict order = report order).

    ``overdispersion`` (per task, ``C.day_overdispersion``) widens the calibration checks' intervals.
    """
    overdispersion = overdispersion or {}
    metrics: dict[str, Metric] = {"notes": M.RunNotes(notes=notes)}
    for fig in external:
        metrics[fig.key] = M.ExternalValue(
            name=fig.name, value=fig.value, note=fig.note, **_bounds(fig.bounds)
        )
    metrics["nan_prediction_share"] = M.NanPredictionShare(alert_max=cfg.max_nan_prediction_share)
    metrics["ctcvr_above_ctr_share"] = M.CtcvrAboveCtrShare(alert_max=cfg.max_ctcvr_above_ctr_share)
    metrics["cvr_ctr_spearman"] = M.CvrCtrSpearman(**_bounds(cfg.cvr_ctr_spearman))
    for task in C.TASKS:
        # Too few positives make these figures noise: they may still warn, never alert.
        enough = task_positives.get(task, 0) >= cfg.min_positives.get(task, 0)
        # The estimates are shown; the checks read their one-sided bounds (docs/MONITORING.md).
        metrics[f"{task}_calibration"] = M.CalibrationRatio(task=task)
        limits, od = cfg.calibration, overdispersion.get(task, 1.0)
        metrics[f"{task}_calibration_over"] = M.CalibrationBound(
            task=task, side="over", confidence=cfg.confidence, critical=enough,
            warn_max=limits.warn_max, alert_max=limits.alert_max, overdispersion=od,
        )  # fmt: skip
        metrics[f"{task}_calibration_under"] = M.CalibrationBound(
            task=task, side="under", confidence=cfg.confidence, critical=enough,
            warn_min=limits.warn_min, alert_min=limits.alert_min, overdispersion=od,
        )  # fmt: skip
        if has_reference:
            shift = cfg.calibration_shift
            metrics[f"{task}_calibration_shift_over"] = M.CalibrationShift(
                task=task, side="over", confidence=cfg.confidence, critical=enough,
                warn_max=shift.warn_max, alert_max=shift.alert_max, overdispersion=od,
            )  # fmt: skip
            metrics[f"{task}_calibration_shift_under"] = M.CalibrationShift(
                task=task, side="under", confidence=cfg.confidence, critical=enough,
                warn_min=shift.warn_min, alert_min=shift.alert_min, overdispersion=od,
            )  # fmt: skip
        metrics[f"{task}_ece"] = M.ExpectedCalibrationError(task=task, bins=cfg.reliability_bins)
        metrics[f"{task}_ece_check"] = M.RelativeEceBound(
            task=task, bins=cfg.reliability_bins, confidence=cfg.confidence, critical=enough,
            **_bounds(cfg.relative_ece),
        )  # fmt: skip
        metrics[f"{task}_auc"] = M.TaskAuc(task=task)
        metrics[f"{task}_auc_check"] = M.TaskAucBound(
            task=task,
            confidence=cfg.confidence,
            critical=enough,
            warn_min=cfg.auc_warn_min.get(task),
            alert_min=cfg.auc_alert_min.get(task),
        )
        if has_reference:
            metrics[f"{task}_auc_drop_check"] = M.AucDrop(
                task=task, confidence=cfg.confidence, critical=enough, **_bounds(cfg.auc_drop)
            )
    for task in C.TASKS:
        metrics[f"{task}_reliability"] = M.ReliabilityTable(task=task, bins=cfg.reliability_bins)
    if has_reference:
        for col in C.PREDICTIONS:
            metrics[f"{col}_drift"] = ValueDrift(
                column=col, method=cfg.prediction_drift_method, tests=_max_tests(cfg.prediction_drift)
            )
        for col, bounds in cfg.unseen_share.items():
            if col in unseen_columns:
                metrics[f"{col}_unseen_share"] = M.UnseenValueShare(column=col, **_bounds(bounds))
        if features.all:
            numerical = set(features.numerical)
            methods = {
                c: cfg.num_drift_method if c in numerical else cfg.cat_drift_method for c in features.all
            }
            thresholds = {
                c: cfg.num_drift_threshold if c in numerical else cfg.cat_drift_threshold
                for c in features.all
            }
            share = M.DriftedInputShare(
                columns=features.all, methods=methods, thresholds=thresholds, **_bounds(cfg.input_drift_share)
            )
            metrics["input_drift_share"] = share
            # Per-column detail for the reader (computed once, shared with the share above).
            for m in share.column_metrics():
                metrics[f"{m.column}_drift"] = m
    return metrics


def _headline_value(result) -> float:
    if isinstance(result, CountValue):
        return float(result.share.value)
    if isinstance(result, SingleValue):
        return float(result.value)
    return math.nan


def run_report(
    current: pd.DataFrame,
    reference: pd.DataFrame | None,
    cfg: MonitorConfig,
    features: FeatureColumns,
    external: list[ExternalFigure],
    notes: list[str],
    metadata: dict[str, str],
) -> ReportRun:
    task_positives = {t: C.positives(current, t) for t in C.TASKS}
    frames = [current] if reference is None else [current, reference]
    unseen = frozenset(c for c in cfg.unseen_share if all(c in f.columns for f in frames))
    overdispersion = {}
    if reference is not None and cfg.calibration_overdispersion:
        overdispersion = C.day_overdispersion(reference)
        notes = [
            *notes,
            "calibration intervals widened by the reference days' overdispersion (Laney sigma_z, "
            "at least 1): " + ", ".join(f"{t} x{f:.2f}" for t, f in overdispersion.items()),
        ]
    metrics = build_metrics(
        cfg, features, reference is not None, task_positives, external, notes, unseen, overdispersion
    )
    extra = sorted(unseen - set(features.all))
    definition = data_definition(features, extra)
    columns = [*features.all, *extra, *C.LABELS, *C.PREDICTIONS, *C.SERVED.values()]
    cur = Dataset.from_pandas(_prepare(current, columns, features), data_definition=definition)
    ref = None
    if reference is not None:
        ref = Dataset.from_pandas(_prepare(reference, columns, features), data_definition=definition)
    report = Report(list(metrics.values()), include_tests=True, metadata=metadata)
    snapshot = report.run(cur, ref)
    results = snapshot.metric_results
    headline = {}
    for key, metric in metrics.items():
        if key == "notes" or key.endswith("_reliability"):
            continue
        if key.endswith("_drift") and key[: -len("_drift")] not in C.PREDICTIONS:
            continue  # per-input drift scores stay in report.json, not among the headline figures
        result = results.get(metric.get_metric_id())
        if result is not None:
            headline[key] = _headline_value(result)
    for task, n in task_positives.items():
        headline[f"{task}_positives"] = float(n)
    return ReportRun(snapshot, headline)


def _prepare(df: pd.DataFrame, columns: list[str], features: FeatureColumns) -> pd.DataFrame:
    """Only the columns the report reads, typed for Evidently (and for speed: integer codes)."""
    out = df[[c for c in columns if c in df.columns]].copy()
    for col, served in C.SERVED.items():
        if served not in out.columns:  # both datasets carry them: scored as served unless re-scored
            out[served] = out[col]
    for c in out.columns:
        if c in features.bucketized:
            # The model's own bucketing: 0 = missing, bucket i = [b[i-1], b[i]) shifted by one.
            x = pd.to_numeric(out[c], errors="coerce").to_numpy(np.float64)
            codes = np.searchsorted(np.asarray(features.bucketized[c]), x, side="right") + 1
            out[c] = np.where(np.isnan(x), 0, codes).astype(np.int64)
        elif c in features.numerical:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
        elif c in C.LABELS or c in C.PREDICTIONS or c in C.SERVED.values():
            continue
        elif pd.api.types.is_numeric_dtype(out[c]):
            # Integer codes count far faster than strings; ids and codes are non-negative.
            out[c] = out[c].fillna(-1).astype(np.int64)
        else:
            out[c] = out[c].astype("string").fillna("<missing>").astype(object)
    return out

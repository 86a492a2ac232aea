"""Custom Evidently 0.7 metrics: calibration, AUC, consistency of the joint predictions.

Evidently has no calibration metrics, so each figure of ``monitoring.calibration`` is wrapped as
a ``SingleValueMetric`` + ``SingleValueCalculation`` pair. Thresholds are fields of the metric
(filled from ``MonitorConfig``) and turn into Evidently tests in ``_default_tests``: an alert
bound is a critical test (FAIL), a warn bound a non-critical one (WARNING). Evidently asks a
metric for ``_default_tests_with_reference`` instead when a reference dataset is present, so both
return the same tests; otherwise the tests would silently vanish on every day with a reference.
"""

# Evidently models are pydantic v1 (its compat layer): keep typing.Optional/List/Dict in fields.
# ruff: noqa: UP006, UP035, UP045
from __future__ import annotations

import math
from abc import ABC
from typing import ClassVar, Dict, Generic, List, Optional, TypeVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from evidently.core.datasets import Dataset
from evidently.core.metric_types import (
    BoundTest,
    DataframeCalculation,
    DataframeMetric,
    DataframeValue,
    SingleValueCalculation,
    SingleValueMetric,
)
from evidently.core.report import Context
from evidently.legacy.model.widget import BaseWidgetInfo
from evidently.legacy.renderers.html_widgets import (
    CounterData,
    WidgetSize,
    counter,
    plotly_figure,
    table_data,
    text_widget,
)
from evidently.metrics import ValueDrift
from evidently.tests import gte, lte

from monitoring import calibration as C
from taml.core import shims

# The custom metrics subclass Evidently's metric and calculation types, override the hooks its
# report calls (_default_tests, _default_tests_with_reference) and draw with its legacy widgets:
# none of that is a stable API, so another release must be re-checked before it runs.
shims.require("evidently", "the custom Evidently metrics (monitoring/evidently_metrics.py)")

TASK_TITLES = {
    "ctr": "CTR (all impressions)",
    "cvr": "CVR (clicked impressions)",
    "ctcvr": "CTCVR (all impressions)",
}


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


class BoundedMetric(SingleValueMetric):
    """A single value with two-level bounds; ``critical=False`` turns every alert into a warning."""

    warn_min: Optional[float] = None
    warn_max: Optional[float] = None
    alert_min: Optional[float] = None
    alert_max: Optional[float] = None
    critical: bool = True

    def _bound_tests(self) -> List[BoundTest]:
        fp = self.get_fingerprint()
        tests = []
        if self.alert_min is not None:
            tests.append(gte(self.alert_min, is_critical=self.critical).bind_single(fp))
        if self.alert_max is not None:
            tests.append(lte(self.alert_max, is_critical=self.critical).bind_single(fp))
        if self.warn_min is not None:
            tests.append(gte(self.warn_min, is_critical=False).bind_single(fp))
        if self.warn_max is not None:
            tests.append(lte(self.warn_max, is_critical=False).bind_single(fp))
        return tests

    def _default_tests(self, context: Context) -> List[BoundTest]:
        return self._bound_tests()

    def _default_tests_with_reference(self, context: Context) -> List[BoundTest]:
        return self._bound_tests()


class TaskMetric(BoundedMetric):
    task: str


TBounded = TypeVar("TBounded", bound=BoundedMetric)


class _TaskCalculation(SingleValueCalculation[TBounded], Generic[TBounded], ABC):
    """Computes one figure on current and (when given) reference data, shown side by side."""

    title: ClassVar[str] = ""

    def value(self, df: pd.DataFrame) -> float:
        raise NotImplementedError

    def calculate(self, context: Context, current_data: Dataset, reference_data: Optional[Dataset]):
        current = self.result(self.value(current_data.as_dataframe()))
        reference = None
        if reference_data is not None:
            reference = self.result(self.value(reference_data.as_dataframe()))
        current.widget = [
            counter(
                title=self.display_name(),
                size=WidgetSize.FULL,
                counters=[
                    CounterData(label="day D", value=_fmt(current.value)),
                    CounterData(label="reference", value=_fmt(reference.value if reference else math.nan)),
                ],
            )
        ]
        return current, reference

    def display_name(self) -> str:
        return f"{self.title}: {TASK_TITLES.get(self.metric.task, self.metric.task)}"


class CalibrationRatio(TaskMetric):
    """Mean prediction / observed rate of one task (1 is calibrated)."""


class CalibrationRatioCalculation(_TaskCalculation[CalibrationRatio]):
    title: ClassVar[str] = "Calibration ratio (mean prediction / observed rate)"

    def value(self, df: pd.DataFrame) -> float:
        return C.task_calibration(df, self.metric.task)


class ExpectedCalibrationError(TaskMetric):
    """ECE of one task over equal-width prediction bins."""

    bins: int = 10


class ExpectedCalibrationErrorCalculation(_TaskCalculation[ExpectedCalibrationError]):
    title: ClassVar[str] = "Expected calibration error"

    def value(self, df: pd.DataFrame) -> float:
        return C.task_ece(df, self.metric.task, self.metric.bins)


class RelativeEceBound(TaskMetric):
    """ECE / observed rate against its limits: ``evidence()`` of its joint per-bin interval."""

    bins: int = 10
    confidence: float = 0.95


class RelativeEceBoundCalculation(_TaskCalculation[RelativeEceBound]):
    title: ClassVar[str] = "Expected calibration error / observed rate"

    def value(self, df: pd.DataFrame) -> float:
        m = self.metric
        return evidence(m, C.task_relative_ece_interval(df, m.task, m.bins, m.confidence))

    def display_name(self) -> str:
        return f"{super().display_name()}, {_side(self.metric)}"


class TaskAuc(TaskMetric):
    """ROC AUC of one task (CVR on clicked impressions only)."""


class TaskAucCalculation(_TaskCalculation[TaskAuc]):
    title: ClassVar[str] = "AUC"

    def value(self, df: pd.DataFrame) -> float:
        return C.task_auc(df, self.metric.task)


def evidence(metric: BoundedMetric, iv) -> float:
    """The figure a check tests: the estimate where the data show it beyond the warn limit, else
    the interval's bound nearest to the limits (which then passes).

    So a check warns only when the one-sided interval lies wholly beyond its warn limit, and
    alerts when, in addition, the estimate is beyond the alert limit (significant and large).
    A check with only an alert limit needs the interval beyond that. Upper limits read the
    lower bound, lower limits the upper bound.
    """
    upper = metric.warn_max if metric.warn_max is not None else metric.alert_max
    lower = metric.warn_min if metric.warn_min is not None else metric.alert_min
    if upper is not None:
        return iv.value if iv.low > upper else iv.low
    if lower is not None:
        return iv.value if iv.high < lower else iv.high
    return iv.value


class CalibrationBound(TaskMetric):
    """Calibration ratio check on one side (``side="over"``: upper limits, ``"under"``: lower).

    Its value is ``evidence()`` of the ratio's Poisson interval, not the bare estimate.
    """

    side: str
    confidence: float = 0.95
    #: the reference days' overdispersion the interval is widened by (C.day_overdispersion)
    overdispersion: float = 1.0


class CalibrationBoundCalculation(_TaskCalculation[CalibrationBound]):
    title: ClassVar[str] = "Calibration ratio (mean prediction / observed rate)"

    def value(self, df: pd.DataFrame) -> float:
        m = self.metric
        return evidence(m, C.task_calibration_interval(df, m.task, m.confidence, m.overdispersion))

    def display_name(self) -> str:
        return f"{super().display_name()}, {_side(self.metric)}{_widened(self.metric)}"


class CalibrationShift(TaskMetric):
    """Day D's calibration ratio / the reference window's, checked on one side as above."""

    side: str
    confidence: float = 0.95
    overdispersion: float = 1.0


class CalibrationShiftCalculation(SingleValueCalculation[CalibrationShift]):
    def calculate(self, context: Context, current_data: Dataset, reference_data: Optional[Dataset]):
        if reference_data is None:
            raise ValueError("CalibrationShift needs reference data")
        iv = C.calibration_shift_interval(
            reference_data.as_dataframe(),
            current_data.as_dataframe(),
            self.metric.task,
            self.metric.confidence,
            self.metric.overdispersion,
        )
        result = self.result(evidence(self.metric, iv))
        result.widget = [
            counter(
                title=self.display_name(),
                counters=[
                    CounterData(label="day D / reference", value=_fmt(iv.value)),
                    CounterData(label=f"lower bound at {self.metric.confidence:.0%}", value=_fmt(iv.low)),
                    CounterData(label="upper bound", value=_fmt(iv.high)),
                ],
            )
        ]
        return result

    def display_name(self) -> str:
        task = TASK_TITLES.get(self.metric.task, self.metric.task)
        return f"Calibration ratio shift (day D / reference window): {task}, {_side(self.metric)}{_widened(self.metric)}"


class TaskAucBound(TaskMetric):
    """One task's AUC against its floors: ``evidence()`` of its DeLong interval."""

    confidence: float = 0.95


class TaskAucBoundCalculation(_TaskCalculation[TaskAucBound]):
    title: ClassVar[str] = "AUC"

    def value(self, df: pd.DataFrame) -> float:
        return evidence(self.metric, C.task_auc_interval(df, self.metric.task, self.metric.confidence))

    def display_name(self) -> str:
        return f"{super().display_name()}, {_side(self.metric)}"


def _widened(metric) -> str:
    f = getattr(metric, "overdispersion", 1.0)
    return f" (interval widened x{f:.2f} for the reference days' overdispersion)" if f > 1 else ""


def _side(metric: BoundedMetric) -> str:
    conf = f"{getattr(metric, 'confidence', 0.95):.0%}"
    if metric.warn_max is not None or metric.alert_max is not None:
        return f"checked where its lower bound at {conf} is above the limit"
    return f"checked where its upper bound at {conf} is below the limit"


class AucDrop(TaskMetric):
    """Reference-window AUC minus day D's AUC (positive: the model ranks worse than it did).

    The value is ``evidence()`` of the drop's DeLong interval (the days are independent rows),
    so a warn or alert limit is crossed only by a drop the data show.
    """

    confidence: float = 0.95


class AucDropCalculation(SingleValueCalculation[AucDrop]):
    def calculate(self, context: Context, current_data: Dataset, reference_data: Optional[Dataset]):
        if reference_data is None:
            raise ValueError("AucDrop needs reference data")
        iv = C.auc_drop_interval(
            reference_data.as_dataframe(),
            current_data.as_dataframe(),
            self.metric.task,
            self.metric.confidence,
        )
        result = self.result(evidence(self.metric, iv))
        result.widget = [
            counter(
                title=self.display_name(),
                counters=[
                    CounterData(label="drop (reference - day D)", value=_fmt(iv.value)),
                    CounterData(label=f"lower bound at {self.metric.confidence:.0%}", value=_fmt(iv.low)),
                    CounterData(label="upper bound", value=_fmt(iv.high)),
                ],
            )
        ]
        return result

    def display_name(self) -> str:
        task = TASK_TITLES.get(self.metric.task, self.metric.task)
        return f"AUC drop against the reference window: {task}, {_side(self.metric)}"


class CtcvrAboveCtrShare(BoundedMetric):
    """Share of rows with pCTCVR > pCTR (pCTCVR = pCTR·pCVR, so this must be 0)."""


class CtcvrAboveCtrShareCalculation(_TaskCalculation[CtcvrAboveCtrShare]):
    title: ClassVar[str] = "Share of rows with pCTCVR > pCTR"

    def value(self, df: pd.DataFrame) -> float:
        return C.ctcvr_above_ctr_share(df)

    def display_name(self) -> str:
        return self.title


class CvrCtrSpearman(BoundedMetric):
    """Spearman ρ(pCVR, pCTR) on clicked rows: the CVR-collapse diagnostic (model.diagnostics)."""


class CvrCtrSpearmanCalculation(_TaskCalculation[CvrCtrSpearman]):
    title: ClassVar[str] = "CVR collapse: Spearman rho(pCVR, pCTR | clicked)"

    def value(self, df: pd.DataFrame) -> float:
        return C.cvr_ctr_spearman(df)

    def display_name(self) -> str:
        return self.title


class NanPredictionShare(BoundedMetric):
    """Share of rows with a NaN or infinite p_ctr, p_cvr or p_ctcvr."""


class NanPredictionShareCalculation(_TaskCalculation[NanPredictionShare]):
    title: ClassVar[str] = "Share of rows with a NaN or infinite prediction"

    def value(self, df: pd.DataFrame) -> float:
        return C.nan_prediction_share(df)

    def display_name(self) -> str:
        return self.title


class ExternalValue(BoundedMetric):
    """A figure computed outside the datasets (serving log, run facts), tested like the others.

    ``note`` is shown under the value in the HTML report.
    """

    name: str
    value: float
    note: str = ""


class ExternalValueCalculation(SingleValueCalculation[ExternalValue]):
    def calculate(self, context: Context, current_data: Dataset, reference_data: Optional[Dataset]):
        result = self.result(self.metric.value)
        widgets: list[BaseWidgetInfo] = [
            counter(
                title=self.display_name(), counters=[CounterData(label="", value=_fmt(self.metric.value))]
            )
        ]
        if self.metric.note:
            widgets.append(text_widget(title="", text=self.metric.note))
        result.widget = widgets
        return result

    def display_name(self) -> str:
        return self.metric.name


class RunNotes(DataframeMetric):
    """Facts about the run the reader must see first (sampling, validation, missing inputs)."""

    notes: List[str]


class RunNotesCalculation(DataframeCalculation[RunNotes]):
    def calculate(self, context: Context, current_data: Dataset, reference_data: Optional[Dataset]):
        result = self.result(pd.DataFrame({"note": list(self.metric.notes)}))
        text = "\n".join(f"• {n}" for n in self.metric.notes) or "nothing to note"
        result.widget = [text_widget(title=self.display_name(), text=text)]
        return result

    def display_name(self) -> str:
        return "About this report"


class ReliabilityTable(DataframeMetric):
    """Reliability diagram and table of one task (equal-width bins, as the ECE)."""

    task: str
    bins: int = 10


class ReliabilityTableCalculation(DataframeCalculation[ReliabilityTable]):
    def calculate(self, context: Context, current_data: Dataset, reference_data: Optional[Dataset]):
        table = C.reliability_table(current_data.as_dataframe(), self.metric.task, self.metric.bins)
        result: DataframeValue = self.result(table)
        filled = table[table["rows"] > 0]
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dash"}))
        fig.add_trace(
            go.Scatter(
                x=filled["mean_prediction"],
                y=filled["observed_rate"],
                mode="lines+markers",
                name="day D",
                text=[f"{r:,} rows" for r in filled["rows"]],
            )
        )
        top = float(np.nanmax([filled["mean_prediction"].max(), filled["observed_rate"].max(), 0.01]))
        fig.update_layout(
            xaxis_title="mean prediction",
            yaxis_title="observed rate",
            xaxis_range=[0, top * 1.05],
            yaxis_range=[0, top * 1.05],
        )
        rows = [
            [r.bin, f"{r.rows:,}", _fmt(r.mean_prediction), _fmt(r.observed_rate), _fmt(r.gap)]
            for r in table.itertuples()
        ]
        result.widget = [
            plotly_figure(title=self.display_name(), figure=fig, size=WidgetSize.HALF),
            table_data(
                title=f"{self.display_name()}: bins",
                column_names=["bin", "rows", "mean prediction", "observed rate", "gap"],
                data=rows,
                size=WidgetSize.HALF,
            ),
        ]
        return result

    def display_name(self) -> str:
        return f"Reliability: {TASK_TITLES.get(self.metric.task, self.metric.task)}"


class DriftedInputShare(BoundedMetric):
    """Share of input columns whose Evidently drift score reaches its threshold.

    Each column is an Evidently ``ValueDrift`` computed through the context, so the per-column
    widgets of the report and this share come from one computation. Methods are distances
    (``MonitorConfig`` allows no p-value test), so "drifted" is score >= threshold.
    """

    columns: List[str]
    methods: Dict[str, str]
    thresholds: Dict[str, float]

    def column_metrics(self) -> List[ValueDrift]:
        return [
            ValueDrift(column=c, method=self.methods[c], threshold=self.thresholds[c], tests=[])
            for c in self.columns
        ]


class DriftedInputShareCalculation(SingleValueCalculation[DriftedInputShare]):
    def calculate(self, context: Context, current_data: Dataset, reference_data: Optional[Dataset]):
        if reference_data is None:
            raise ValueError("DriftedInputShare needs reference data")
        rows, drifted = [], 0
        for m in self.metric.column_metrics():
            score = float(context.calculate_metric(m.to_calculation()).value)
            hit = math.isfinite(score) and score >= m.threshold
            drifted += hit
            rows.append([m.column, m.method, _fmt(score), f"{m.threshold:g}", "DRIFT" if hit else ""])
        share = drifted / len(rows) if rows else 0.0
        result = self.result(share)
        rows.sort(key=lambda r: (r[4] != "DRIFT", r[0]))
        result.widget = [
            counter(
                title=self.display_name(),
                counters=[
                    CounterData(label="drifted columns", value=f"{drifted} of {len(rows)}"),
                    CounterData(label="share", value=_fmt(share)),
                ],
            ),
            table_data(
                title="Input drift by column",
                column_names=["column", "method", "score", "threshold", ""],
                data=rows,
            ),
        ]
        return result

    def display_name(self) -> str:
        return "Input drift: share of drifted input columns"


class UnseenValueShare(BoundedMetric):
    """Share of day D's rows whose ``column`` value never occurs in the reference window.

    For ids that turn over by design (new items every day) this is the meaningful drift figure:
    the cold-start share the model faces, where a distribution distance over ids is mostly noise.
    """

    column: str


class UnseenValueShareCalculation(SingleValueCalculation[UnseenValueShare]):
    def calculate(self, context: Context, current_data: Dataset, reference_data: Optional[Dataset]):
        if reference_data is None:
            raise ValueError("UnseenValueShare needs reference data")
        cur = current_data.as_dataframe()[self.metric.column]
        seen = pd.unique(reference_data.as_dataframe()[self.metric.column].dropna())
        unseen = ~cur.isin(seen)
        share = float(unseen.mean()) if len(cur) else math.nan
        result = self.result(share)
        result.widget = [
            counter(
                title=self.display_name(),
                counters=[
                    CounterData(label="rows", value=f"{int(unseen.sum()):,} of {len(cur):,}"),
                    CounterData(label="share", value=_fmt(share)),
                    CounterData(label="distinct unseen values", value=f"{cur[unseen].nunique():,}"),
                ],
            )
        ]
        return result

    def display_name(self) -> str:
        return f"Unseen {self.metric.column}: share of rows with a value absent from the reference"

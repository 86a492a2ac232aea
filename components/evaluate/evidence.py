"""The gate's figures with their intervals, from the rows of the evaluation day.

Two models' predictions on the same rows (candidate and production, or candidate and the
base-rate reference) give each metric's estimate and the paired improvement of one over the
other, oriented so that positive means "the candidate is better":

* AUC: AUC(candidate) - AUC(reference), DeLong on the correlated pair.
* log loss: (LL(reference) - LL(candidate)) / LL(reference), the relative reduction, by the
  paired bootstrap (rows resampled with both models' losses on them).
* calibration: |ln ratio(reference)| - |ln ratio(candidate)|, the reduction of the calibration
  error, bounded over the Poisson interval of the observed positives.

Metric names are ``taml.core.config.GATE_METRICS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from model import intervals as I
from taml.core.config import GATE_AUC_METRICS, GATE_CALIBRATION_METRICS, GATE_LOG_LOSS_METRICS

_EPS = 1e-7  # the clipping of model.metrics.log_loss, so the figures agree


@dataclass(frozen=True)
class Scores:
    """One model's predictions on the evaluation rows (row order = the labels' order)."""

    model_id: str
    p_ctr: np.ndarray
    p_cvr: np.ndarray
    p_ctcvr: np.ndarray

    @classmethod
    def of(cls, model_id: str, frame) -> Scores:
        return cls(model_id, *(np.asarray(frame[k], dtype=np.float64) for k in ("p_ctr", "p_cvr", "p_ctcvr")))

    @property
    def finite(self) -> np.ndarray:
        return np.isfinite(self.p_ctr) & np.isfinite(self.p_cvr) & np.isfinite(self.p_ctcvr)


@dataclass(frozen=True)
class Day:
    """The evaluation day's labels."""

    click: np.ndarray
    conversion: np.ndarray

    @cached_property
    def clicked(self) -> np.ndarray:
        return self.click > 0.5

    @cached_property
    def ctcvr(self) -> np.ndarray:
        return self.click * self.conversion

    @property
    def conversions(self) -> int:
        return int(round(float(self.ctcvr.sum())))

    @property
    def clicks(self) -> int:
        return int(round(float(self.click.sum())))

    def task(self, task: str, s: Scores) -> tuple[np.ndarray, np.ndarray]:
        """(labels, predictions) of one task: CVR on clicked rows only."""
        if task == "ctr":
            return self.click, s.p_ctr
        if task == "cvr":
            return self.conversion[self.clicked], s.p_cvr[self.clicked]
        if task == "ctcvr":
            return self.ctcvr, s.p_ctcvr
        raise ValueError(f"unknown task {task!r}")

    def row_losses(self, metric: str, s: Scores) -> np.ndarray:
        """Per-row log loss of a log-loss metric (``log_loss``: CTR + CTCVR, every impression)."""

        def bce(y: np.ndarray, p: np.ndarray) -> np.ndarray:
            p = np.clip(p, _EPS, 1 - _EPS)
            return -(y * np.log(p) + (1 - y) * np.log1p(-p))

        if metric == "log_loss":
            return bce(self.click, s.p_ctr) + bce(self.ctcvr, s.p_ctcvr)
        return bce(*self.task(_task(metric), s))


def _task(metric: str) -> str:
    return metric.split("_", 1)[0]


@dataclass(frozen=True)
class Evidence:
    """How the figures are bounded: the one-sided confidence and the bootstrap's settings."""

    confidence: float
    resamples: int
    seed: int
    blocks: int

    def value(self, day: Day, s: Scores, metric: str) -> I.Interval:
        """The candidate's own figure with its bounds."""
        if metric in GATE_AUC_METRICS:
            return I.auc_interval(*day.task(_task(metric), s), self.confidence)
        if metric in GATE_CALIBRATION_METRICS:
            return I.calibration_interval(*day.task(_task(metric), s), self.confidence)
        if metric in GATE_LOG_LOSS_METRICS:
            losses = day.row_losses(metric, s)
            return self._bootstrap(_mean, [losses, np.ones_like(losses)])
        raise ValueError(f"unknown gate metric {metric!r}")

    def improvement(self, day: Day, cand: Scores, ref: Scores, metric: str) -> I.Interval:
        """How much better the candidate is than ``ref`` on the same rows (see the module doc)."""
        if metric in GATE_AUC_METRICS:
            y, pc = day.task(_task(metric), cand)
            _, pr = day.task(_task(metric), ref)
            return I.auc_difference(y, pc, pr, self.confidence)
        if metric in GATE_CALIBRATION_METRICS:
            y, pc = day.task(_task(metric), cand)
            _, pr = day.task(_task(metric), ref)
            return I.calibration_error_improvement(y, pc, pr, self.confidence)
        if metric in GATE_LOG_LOSS_METRICS:
            lc, lr = day.row_losses(metric, cand), day.row_losses(metric, ref)
            return self._bootstrap(_relative_reduction, [lc, lr])
        raise ValueError(f"unknown gate metric {metric!r}")

    def _bootstrap(self, statistic, arrays) -> I.Interval:
        return I.paired_bootstrap(statistic, arrays, self.confidence, self.resamples, self.seed, self.blocks)


def _mean(total, count):
    return total / count


def _relative_reduction(cand_sum, ref_sum):
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ref_sum - cand_sum) / ref_sum


def base_rate_scores(n: int, ctr: float, cvr: float) -> Scores:
    """The reference of a first deployment: constant training base rates on every row."""
    full: Callable[[float], np.ndarray] = lambda v: np.full(n, float(v))  # noqa: E731
    return Scores(f"base-rate(ctr={ctr:.4g}, cvr={cvr:.4g})", full(ctr), full(cvr), full(ctr * cvr))

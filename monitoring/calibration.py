"""Calibration and ranking figures of the three tasks, as plain functions over a predictions frame.

The task definitions are the evaluate step's (DESIGN.md step 5): CTR on all impressions, CVR on
clicked impressions only, CTCVR (pCTR·pCVR) on all impressions against click & conversion. The
numbers themselves come from ``model.metrics`` so that monitoring and the blessing gate can never
disagree about what "calibration 1.3" means.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import pandas as pd

from model import intervals as I
from model.diagnostics import spearman
from model.metrics import auc, calibration_ratio, ece

CLICK: Final = "click"
CONVERSION: Final = "conversion"
P_CTR: Final = "p_ctr"
P_CVR: Final = "p_cvr"
P_CTCVR: Final = "p_ctcvr"
PREDICTIONS: Final = (P_CTR, P_CVR, P_CTCVR)
LABELS: Final = (CLICK, CONVERSION)
TASKS: Final = ("ctr", "cvr", "ctcvr")
TASK_PREDICTION: Final = {"ctr": P_CTR, "cvr": P_CVR, "ctcvr": P_CTCVR}
#: The scores a row was served with, kept beside the re-scored ones (monitoring.run re-scores the
#: reference window with day D's model; the AUC trend reads what was served).
SERVED: Final = {col: f"served_{col}" for col in PREDICTIONS}


def as_served(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the scores it was served with as its predictions (itself when it has no others)."""
    kept = {served: col for col, served in SERVED.items() if served in df.columns}
    if not kept:
        return df
    return df.drop(columns=list(kept.values())).rename(columns=kept)


def task_arrays(df: pd.DataFrame, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of one task; rows with a non-finite prediction are left out.

    Non-finite predictions are counted and alerted on separately (``nan_prediction_share``); here
    they would only turn every figure into NaN and hide what the rest of the day looks like.
    """
    if task not in TASK_PREDICTION:
        raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    click = df[CLICK].to_numpy(dtype=np.float64)
    if task == "ctr":
        y = click
    elif task == "cvr":
        y = df[CONVERSION].to_numpy(dtype=np.float64)
    else:
        y = click * df[CONVERSION].to_numpy(dtype=np.float64)
    p = df[TASK_PREDICTION[task]].to_numpy(dtype=np.float64)
    keep = np.isfinite(p)
    if task == "cvr":
        keep &= click > 0.5
    return y[keep], p[keep]


def positives(df: pd.DataFrame, task: str) -> int:
    y, _ = task_arrays(df, task)
    return int((y > 0.5).sum())


def task_calibration(df: pd.DataFrame, task: str) -> float:
    return calibration_ratio(*task_arrays(df, task))


def task_ece(df: pd.DataFrame, task: str, bins: int) -> float:
    y, p = task_arrays(df, task)
    return ece(y, p, bins) if y.size else math.nan


def task_relative_ece_interval(df: pd.DataFrame, task: str, bins: int, confidence: float) -> I.Interval:
    """ECE / the task's observed rate, with the ECE's joint bounds (``model.intervals.ece_interval``).

    Relative to the base rate, so one limit means the same on CTR (~0.05), CVR on clicks (~0.1)
    and CTCVR (~0.005), and on worlds of other densities; the rate is read as fixed (its own
    noise is the calibration ratio's check).
    """
    y, p = task_arrays(df, task)
    iv = I.ece_interval(y, p, bins, confidence)
    rate = float(y.mean()) if y.size else math.nan
    if not (math.isfinite(rate) and rate > 0):
        return I.undefined(confidence, iv.method)
    return I.Interval(
        iv.value / rate, iv.low / rate, iv.high / rate, confidence, iv.method + ", / observed rate"
    )


def task_auc(df: pd.DataFrame, task: str) -> float:
    return auc(*task_arrays(df, task))


def task_calibration_interval(
    df: pd.DataFrame, task: str, confidence: float, overdispersion: float = 1.0
) -> I.Interval:
    """The calibration ratio with its one-sided Poisson bounds (observed positives are a count),
    widened by ``overdispersion`` (``day_overdispersion``)."""
    return I.widened(I.calibration_interval(*task_arrays(df, task), confidence), overdispersion)


def task_auc_interval(df: pd.DataFrame, task: str, confidence: float) -> I.Interval:
    """The AUC with its one-sided DeLong bounds."""
    return I.auc_interval(*task_arrays(df, task), confidence)


def auc_drop_interval(
    reference: pd.DataFrame, current: pd.DataFrame, task: str, confidence: float
) -> I.Interval:
    """Reference AUC minus day D's AUC: independent rows, so the DeLong variances add.

    The reference side reads the scores each day was *served* with, not the re-scored ones: the
    model of day D was trained on most of the window, and its AUC there is in-sample (optimistic),
    so against it day D would always look like a drop. Served scores are each day's
    out-of-sample AUC, the trend this check is for; a blessed update is no worse than the model
    it replaced, so an update alone does not read as a drop.
    """
    y_ref, p_ref = task_arrays(as_served(reference), task)
    y_cur, p_cur = task_arrays(current, task)
    a_ref, v_ref = I.delong(y_ref, [p_ref])
    a_cur, v_cur = I.delong(y_cur, [p_cur])
    se = (
        math.sqrt(max(v_ref[0, 0] + v_cur[0, 0], 0.0)) if np.isfinite(v_ref[0, 0] + v_cur[0, 0]) else math.nan
    )
    return I.normal_interval(a_ref[0] - a_cur[0], se, confidence, "delong, independent days")


def calibration_shift_interval(
    reference: pd.DataFrame, current: pd.DataFrame, task: str, confidence: float, overdispersion: float = 1.0
) -> I.Interval:
    """Day D's calibration ratio / the reference window's: a break shows against the model's own past."""
    iv = I.calibration_shift(*task_arrays(current, task), *task_arrays(reference, task), confidence)
    return I.widened(iv, overdispersion)


#: Laney's moving-range constant: E|z_i - z_(i-1)| = 1.128 sigma for independent normal z
_MOVING_RANGE_D2: Final = 1.128
#: reference days with positives that an overdispersion estimate needs (two moving ranges)
MIN_OVERDISPERSION_DAYS: Final = 3


def day_overdispersion(reference: pd.DataFrame) -> dict[str, float]:
    """Per task, Laney's sigma_z of the reference days' calibration ratios as served, floored at 1.

    Each day d gives r_d = Σ served prediction / Σ positives and z_d = (ln r_d - mean ln r) · √k_d
    (ln r_d has Poisson variance ≈ 1 / k_d). Were the days' levels only label noise, the z would
    have unit spread; their moving range estimates the spread they have (Laney's p′ chart, robust
    to a slow drift of the level). 1 for a task with fewer than ``MIN_OVERDISPERSION_DAYS`` days
    of positives, and for every task when the window has no day column.
    """
    if "event_timestamp" not in reference.columns or not len(reference):
        return dict.fromkeys(TASKS, 1.0)
    served = as_served(reference)
    days = pd.to_datetime(served["event_timestamp"], utc=True).dt.date.to_numpy()
    by_day = [served[days == day] for day in sorted(set(days))]
    out = {}
    for task in TASKS:
        logs, weights = [], []
        for frame in by_day:
            y, p = task_arrays(frame, task)
            k, total = float(y.sum()), float(p.sum())
            if k > 0 and total > 0:
                logs.append(math.log(total / k))
                weights.append(math.sqrt(k))
        if len(logs) < MIN_OVERDISPERSION_DAYS:
            out[task] = 1.0
            continue
        z = (np.asarray(logs) - np.mean(logs)) * np.asarray(weights)
        out[task] = max(1.0, float(np.abs(np.diff(z)).mean() / _MOVING_RANGE_D2))
    return out


def cvr_ctr_spearman(df: pd.DataFrame) -> float:
    """Spearman ρ(pCVR, pCTR | clicked): near 1, the CVR head only copies the click ranking."""
    clicked = df[CLICK].to_numpy(np.float64) > 0.5
    return spearman(df[P_CVR].to_numpy(np.float64)[clicked], df[P_CTR].to_numpy(np.float64)[clicked])


def ctcvr_above_ctr_share(df: pd.DataFrame) -> float:
    """Share of rows whose pCTCVR exceeds pCTR: impossible for a product of probabilities."""
    if not len(df):
        return math.nan
    return float((df[P_CTCVR].to_numpy(np.float64) > df[P_CTR].to_numpy(np.float64)).mean())


def nan_prediction_share(df: pd.DataFrame) -> float:
    """Share of rows with at least one NaN or infinite prediction."""
    if not len(df):
        return math.nan
    values = df[list(PREDICTIONS)].to_numpy(np.float64)
    return float((~np.isfinite(values)).any(axis=1).mean())


def reliability_table(df: pd.DataFrame, task: str, bins: int) -> pd.DataFrame:
    """Equal-width bins of the prediction: rows, mean prediction, observed rate, and their gap.

    The same bins as ``model.metrics.ece``, so the table's weighted |gap| sums to the ECE.
    """
    y, p = task_arrays(df, task)
    b = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    n = np.bincount(b, minlength=bins)
    sum_p = np.bincount(b, weights=p, minlength=bins)
    sum_y = np.bincount(b, weights=y, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(n > 0, sum_p / np.maximum(n, 1), np.nan)
        rate = np.where(n > 0, sum_y / np.maximum(n, 1), np.nan)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame(
        {
            "bin": [f"[{lo:.1f}, {hi:.1f})" for lo, hi in zip(edges[:-1], edges[1:], strict=True)],
            "rows": n.astype(np.int64),
            "mean_prediction": mean_p,
            "observed_rate": rate,
            "gap": mean_p - rate,
        }
    )

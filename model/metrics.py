"""Evaluation metrics, global over the whole evaluation set (never averaged per batch).

CTR AUC on all impressions; CVR AUC on clicked impressions only; CTCVR AUC of pCTR·pCVR on all
impressions against click & conversion. AUC is the Mann-Whitney statistic with average ranks for
ties (identical to ``sklearn.metrics.roc_auc_score``), O(n log n) in numpy; NaN when one class is
absent.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_ECE_BINS = 10
_EPS = 1e-7


def _arrays(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.shape[0]}) and scores ({s.shape[0]}) differ in length")
    return y, s


def auc(y_true, y_score) -> float:
    """ROC AUC = (sum of positive ranks - n_pos(n_pos+1)/2) / (n_pos n_neg), ties at average rank.

    Returns NaN (not an exception) when only one class is present: the AUC is undefined there.
    """
    y, s = _arrays(y_true, y_score)
    pos = y > 0.5
    n_pos = int(pos.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s)  # stability is irrelevant: tied scores share one rank
    s_sorted = s[order]
    # Average rank of each run of equal scores: ranks first..last of the run -> (first + last) / 2.
    boundaries = np.flatnonzero(np.diff(s_sorted)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [s.size]))
    avg_rank = (starts + ends + 1) / 2.0  # 1-based ranks start+1 .. end
    ranks = np.repeat(avg_rank, ends - starts)
    pos_rank_sum = ranks[pos[order]].sum()
    return float((pos_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(y_true, y_prob) -> float:
    """Mean binary cross-entropy, probabilities clipped to [1e-7, 1 - 1e-7]; NaN on empty input."""
    y, p = _arrays(y_true, y_prob)
    if y.size == 0:
        return math.nan
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def calibration_ratio(y_true, y_prob) -> float:
    """Mean prediction / observed rate (1 is calibrated); NaN when nothing is positive or empty."""
    y, p = _arrays(y_true, y_prob)
    if y.size == 0 or y.sum() == 0:
        return math.nan
    return float(p.mean() / y.mean())


def ece(y_true, y_prob, bins: int = DEFAULT_ECE_BINS) -> float:
    """Expected calibration error over equal-width probability bins: Σ_b (n_b/n) |mean p_b - rate_b|."""
    y, p = _arrays(y_true, y_prob)
    if y.size == 0:
        return math.nan
    if bins < 1:
        raise ValueError("ece needs at least one bin")
    b = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    n = np.bincount(b, minlength=bins)
    sum_p = np.bincount(b, weights=p, minlength=bins)
    sum_y = np.bincount(b, weights=y, minlength=bins)
    filled = n > 0
    return float(np.sum(np.abs(sum_p[filled] - sum_y[filled])) / y.size)


def task_metrics(y_true, y_prob, ece_bins: int = DEFAULT_ECE_BINS) -> dict[str, float]:
    y, p = _arrays(y_true, y_prob)
    return {
        "auc": auc(y, p),
        "log_loss": log_loss(y, p),
        "calibration": calibration_ratio(y, p),
        "ece": ece(y, p, ece_bins),
        "n": int(y.size),
        "positives": int((y > 0.5).sum()),
    }


def evaluate_predictions(
    click, conversion, p_ctr, p_cvr, p_ctcvr=None, ece_bins: int = DEFAULT_ECE_BINS
) -> dict[str, dict[str, float]]:
    """Metrics per task: ctr (all impressions), cvr (clicked only), ctcvr (all, label click & conv)."""
    click = np.asarray(click, dtype=np.float64).ravel()
    conversion = np.asarray(conversion, dtype=np.float64).ravel()
    p_ctr = np.asarray(p_ctr, dtype=np.float64).ravel()
    p_cvr = np.asarray(p_cvr, dtype=np.float64).ravel()
    p_ctcvr = p_ctr * p_cvr if p_ctcvr is None else np.asarray(p_ctcvr, dtype=np.float64).ravel()
    clicked = click > 0.5
    return {
        "ctr": task_metrics(click, p_ctr, ece_bins),
        "cvr": task_metrics(conversion[clicked], p_cvr[clicked], ece_bins),
        "ctcvr": task_metrics(click * conversion, p_ctcvr, ece_bins),
    }

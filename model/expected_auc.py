"""Expected AUC and expected log loss when labels are drawn from known true probabilities.

A simulator knows each row's true probability p_i. An observed AUC on one day of Bernoulli labels
carries label noise (a few thousand conversions give it a sd of ~0.01); scoring a model against
the probabilities themselves removes that noise and leaves only what the model learned.

Definition (ratio of expectations). Labels y_i ~ Bernoulli(p_i) independently; row i enters the
evaluated population with probability w_i (default 1; e.g. CVR is evaluated on clicked rows, so
w_i = p_click_i and p_i = the post-click p_conv_i). Let a_i = w_i p_i (row i is a positive) and
b_i = w_i (1 - p_i) (row i is a negative). Over ordered pairs i != j,

    eAUC = Σ_{i≠j} a_i b_j [1(s_i > s_j) + ½·1(s_i = s_j)]  /  Σ_{i≠j} a_i b_j

i.e. expected concordant positive-negative pairs (ties counted half) over expected
positive-negative pairs. It is computed in O(n log n): sort by score, and for each group of tied
scores add a_group × (b of all lower scores) + ½ (a_group b_group - Σ_group a_i b_i).

How close it is to E[AUC], the expectation of the observed AUC over the label vectors that have
both classes: the two differ because AUC is a ratio (its denominator n_pos·n_neg varies with the
draw). The difference is O(1/n): tests/model/test_expected_auc.py measures it exactly over all
2^n label vectors (0.0005-0.0032 at n = 12 for the probabilities there) and by sampling at n = 2000
(within its Monte Carlo error). At evaluation sizes (10^4-10^6 rows) it is negligible.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-7


def _vectors(p_true, score, weight) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(p_true, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if p.shape != s.shape:
        raise ValueError(f"true probabilities ({p.size}) and scores ({s.size}) differ in length")
    w = np.ones_like(p) if weight is None else np.asarray(weight, dtype=np.float64).ravel()
    if w.shape != p.shape:
        raise ValueError(f"weights ({w.size}) and true probabilities ({p.size}) differ in length")
    for name, v in (("true probabilities", p), ("weights", w)):
        if v.size and (not np.all(np.isfinite(v)) or v.min() < 0 or v.max() > 1):
            raise ValueError(f"{name} must lie in [0, 1]")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return p, s, w


def expected_auc(p_true, score, weight=None) -> float:
    """Expected AUC of ``score`` under labels ~ Bernoulli(``p_true``), rows weighted by ``weight``.

    See the module docstring for the exact definition (ratio of expected concordant pairs to
    expected pairs, i != j, ties counted half). NaN when the expected number of pairs is 0.
    """
    p, s, w = _vectors(p_true, score, weight)
    a, b = w * p, w * (1.0 - p)
    denom = a.sum() * b.sum() - float(np.dot(a, b))
    if not denom > 0:
        return math.nan
    order = np.argsort(s, kind="stable")
    s_sorted, a_sorted, b_sorted = s[order], a[order], b[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(s_sorted)) + 1))
    a_group = np.add.reduceat(a_sorted, starts)
    b_group = np.add.reduceat(b_sorted, starts)
    ab_group = np.add.reduceat(a_sorted * b_sorted, starts)
    b_below = np.concatenate(([0.0], np.cumsum(b_group)[:-1]))  # negatives with a strictly lower score
    concordant = float(np.dot(a_group, b_below))
    tied = 0.5 * float(np.sum(a_group * b_group - ab_group))  # pairs i != j inside a tie group
    return float((concordant + tied) / denom)


def expected_log_loss(p_true, p_pred, weight=None) -> float:
    """E[log loss] of ``p_pred`` under labels ~ Bernoulli(``p_true``): the cross-entropy

        Σ_i w_i [-(p_i log q_i + (1 - p_i) log(1 - q_i))] / Σ_i w_i

    with q clipped to [1e-7, 1 - 1e-7]. Its minimum over q is the true probabilities' entropy
    (reached at q = p), so ``expected_log_loss(p, q) - expected_log_loss(p, p)`` is the KL gap.
    NaN when the total weight is 0.
    """
    p, q, w = _vectors(p_true, p_pred, weight)
    if q.size and (q.min() < 0 or q.max() > 1):
        raise ValueError("predicted probabilities must lie in [0, 1]")
    total = w.sum()
    if not total > 0:
        return math.nan
    q = np.clip(q, _EPS, 1 - _EPS)
    per = -(p * np.log(q) + (1.0 - p) * np.log1p(-q))
    return float(np.dot(w, per) / total)


def truth_figures(p_click, p_conv, p_ctr, p_cvr, p_ctcvr) -> dict[str, float]:
    """Expected AUC, expected log loss and calibration ratio (Σ prediction / Σ true p) of the
    three tasks against the true probabilities.

    CTR on all rows, CVR on clicked rows (a row enters with its true click probability), CTCVR
    on all rows against p_click · p_conv.
    """
    p_click = np.asarray(p_click, dtype=np.float64)
    p_ctcvr_true = p_click * np.asarray(p_conv, dtype=np.float64)
    return {
        "ctr_eauc": expected_auc(p_click, p_ctr),
        "cvr_eauc": expected_auc(p_conv, p_cvr, weight=p_click),
        "ctcvr_eauc": expected_auc(p_ctcvr_true, p_ctcvr),
        "ctr_elogloss": expected_log_loss(p_click, p_ctr),
        "cvr_elogloss": expected_log_loss(p_conv, p_cvr, weight=p_click),
        "ctcvr_elogloss": expected_log_loss(p_ctcvr_true, p_ctcvr),
        "ctr_ratio": _ratio(p_ctr, p_click),
        "cvr_ratio": _ratio(p_click * np.asarray(p_cvr, dtype=np.float64), p_ctcvr_true),
        "ctcvr_ratio": _ratio(p_ctcvr, p_ctcvr_true),
    }


def _ratio(predicted, true) -> float:
    """Calibration in the large against the truth: 1 when the predictions' sum is the true one."""
    denominator = float(np.sum(true))
    return (
        float(np.sum(np.asarray(predicted, dtype=np.float64)) / denominator)
        if denominator > 0
        else float("nan")
    )

"""Diagnostics of a joint CTR/CVR model that a user reads beside the metrics (numpy only).

* CVR collapse: a CVR head that learned nothing of its own ranks clicked impressions the way the
  CTR head does (it copies the click signal, which the entire-space loss rewards cheaply). Two
  figures on the clicked rows, where pCVR is defined:

  - ``spearman``: Spearman's ρ between pCVR and pCTR (Pearson correlation of their midranks);
  - ``concordant_share``: over pairs of clicked rows whose pCTR and pCVR both differ, the share
    ordered the same way by both (pCTR_i > pCTR_j and pCVR_i > pCVR_j, or both <). 0.5 is
    unrelated rankings, 1.0 is pCVR ranking exactly like pCTR. Estimated on ``pairs`` random
    pairs (seeded), so its cost does not grow with the square of the clicks.

* TAML gate weights (paper Fig. 4): the mean gate weight each task's learners put on the general,
  task-specific and learner-specific experts (``model.scoring.gate_weights`` computes them; this
  module only names them).
"""

from __future__ import annotations

import math

import numpy as np

from model.intervals import midranks

GROUPS = ("general", "task", "learner")
TASKS = ("ctr", "cvr")


def spearman(x, y) -> float:
    """Spearman's ρ with ties at average rank; NaN with fewer than 2 rows or a constant input."""
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"spearman: {a.size} and {b.size} values")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 2:
        return math.nan
    ra, rb = midranks(a) - (a.size + 1) / 2, midranks(b) - (b.size + 1) / 2
    denom = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else math.nan


def concordant_share(x, y, pairs: int, seed: int) -> float:
    """Share of concordant pairs among sampled pairs untied in both x and y (see module doc)."""
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 2 or pairs < 1:
        return math.nan
    rng = np.random.default_rng(seed)
    i = rng.integers(0, a.size, pairs)
    j = rng.integers(0, a.size, pairs)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    untied = (sa != 0) & (sb != 0)
    n = int(untied.sum())
    return float((sa[untied] == sb[untied]).sum() / n) if n else math.nan


def cvr_collapse(click, p_ctr, p_cvr, pairs: int, seed: int) -> dict[str, float]:
    """ρ(pCVR, pCTR | clicked) and the concordant-pair share on the clicked rows."""
    clicked = np.asarray(click, dtype=np.float64).ravel() > 0.5
    c = np.asarray(p_ctr, dtype=np.float64).ravel()[clicked]
    v = np.asarray(p_cvr, dtype=np.float64).ravel()[clicked]
    return {
        "cvr_ctr_spearman": spearman(v, c),
        "cvr_ctr_concordant_share": concordant_share(v, c, pairs, seed),
        "clicked_rows": float(clicked.sum()),
    }


def gate_weight_table(weights: np.ndarray) -> dict[str, float]:
    """[tasks, groups] mean gate weights -> flat names ``gate_{task}_{group}`` (each task sums to 1)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(TASKS), len(GROUPS)):
        raise ValueError(f"gate weights of shape {w.shape}, expected {(len(TASKS), len(GROUPS))}")
    return {f"gate_{t}_{g}": float(w[i, k]) for i, t in enumerate(TASKS) for k, g in enumerate(GROUPS)}

"""Uncertainty of one evaluation day's figures: DeLong, paired bootstrap, Poisson intervals.

A decision taken on one day of data is a statistical test, so every figure the gate and the
monitor decide on comes with an interval. Conventions shared by every function here:

* ``confidence`` is ONE-SIDED: ``low`` is a lower bound and ``high`` an upper bound, each holding
  with probability ``confidence`` (so ``[low, high]`` is a two-sided ``2·confidence - 1``
  interval). A rule "fails only when the data show it at 95%" reads one bound at 0.95.
* Comparisons are PAIRED: both models are scored on the same rows, and what is estimated is the
  difference on those rows, whose noise is far smaller than either figure's alone (the models
  share most of their errors).

Methods:

* AUCs (one or several correlated ones on the same rows): DeLong, DeLong & Clarke-Pearson (1988),
  computed with midranks as in Sun & Xu (2014), O(k·n log n). Normal approximation.
* A paired statistic of sums (mean log loss and its relative change): the paired bootstrap,
  rows resampled with replacement, both models keep their pairing; percentile bounds.
* Calibration ratio mean(pred) / observed rate: the observed positives K are a Poisson count
  (exact Garwood bounds for λ; Wilson-Hilferty above ``_EXACT_POISSON_MAX`` events, where it is
  accurate to ~1e-4), and the ratio's bounds are sum(pred) / λ_high and sum(pred) / λ_low. A
  Poisson bound is conservative for a binomial rate that is not small (CVR on clicks).
* Expected calibration error Σ_b |S_p,b - S_y,b| / n: per bin, the observed positives S_y,b vary
  by Var = Σ p(1-p) (at least n_b·r_b(1-r_b), r_b the bin's observed rate), so each bin's |gap|
  has normal bounds (two-sided, continuity-corrected); Bonferroni over the filled bins makes
  the sum of the bins' bounds a joint bound. The bare ECE is biased upward by that noise (a calibrated model on few rows reads as
  miscalibrated); its lower bound is what the data show beyond it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

_EXACT_POISSON_MAX = 2000
_BISECTION_STEPS = 60  # halves the bracket to ~1e-18 of its width: double precision
_BOOTSTRAP_CELLS = 4_000_000  # resampled values held in memory at once


@dataclass(frozen=True)
class Interval:
    """A point estimate with its one-sided lower and upper bounds (see the module docstring)."""

    value: float
    low: float
    high: float
    confidence: float
    method: str

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)

    @property
    def resolution(self) -> float:
        """The larger distance from the estimate to a bound: what the data can tell apart."""
        return max(self.value - self.low, self.high - self.value)


def _check_confidence(confidence: float) -> None:
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1) (one-sided), got {confidence}")


def z_value(confidence: float) -> float:
    """Standard normal quantile of a one-sided bound at ``confidence`` (0.95 -> 1.645)."""
    _check_confidence(confidence)
    return NormalDist().inv_cdf(confidence)


def undefined(confidence: float, method: str) -> Interval:
    return Interval(math.nan, math.nan, math.nan, confidence, method)


def normal_interval(value: float, se: float, confidence: float, method: str) -> Interval:
    if not (math.isfinite(value) and math.isfinite(se)):
        return undefined(confidence, method)
    z = z_value(confidence)
    return Interval(float(value), float(value - z * se), float(value + z * se), confidence, method)


# --------------------------------------------------------------------------------------------
# AUC: DeLong


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties at their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [x.size]))
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def delong(y_true, scores: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of ``scores`` (one array per model, same rows) and their DeLong covariance matrix.

    Returns ``(aucs [k], cov [k, k])``; NaNs when a class has fewer than two rows (the covariance
    needs two of each). Scores must be finite.
    """
    y = np.asarray(y_true, dtype=np.float64).ravel() > 0.5
    s = np.vstack([np.asarray(a, dtype=np.float64).ravel() for a in scores])
    k = s.shape[0]
    if s.shape[1] != y.size:
        raise ValueError(f"labels ({y.size}) and scores ({s.shape[1]}) differ in length")
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        return np.full(k, math.nan), np.full((k, k), math.nan)
    pos, neg = s[:, y], s[:, ~y]
    v01 = np.empty((k, m))
    v10 = np.empty((k, n))
    aucs = np.empty(k)
    for r in range(k):
        tx, ty = midranks(pos[r]), midranks(neg[r])
        tz = midranks(np.concatenate((pos[r], neg[r])))
        aucs[r] = (tz[:m].sum() / m - (m + 1) / 2.0) / n
        v01[r] = (tz[:m] - tx) / n  # per positive: share of negatives ranked below it
        v10[r] = 1.0 - (tz[m:] - ty) / m  # per negative: share of positives ranked above it
    cov = np.atleast_2d(np.cov(v01)) / m + np.atleast_2d(np.cov(v10)) / n
    return aucs, cov


def auc_interval(y_true, score, confidence: float) -> Interval:
    """One AUC with its DeLong bounds (clipped to [0, 1])."""
    aucs, cov = delong(y_true, [score])
    iv = normal_interval(aucs[0], math.sqrt(max(cov[0, 0], 0.0)), confidence, "delong")
    if math.isnan(iv.value):
        return iv
    return Interval(iv.value, max(iv.low, 0.0), min(iv.high, 1.0), confidence, iv.method)


def auc_difference(y_true, score_a, score_b, confidence: float) -> Interval:
    """AUC(a) - AUC(b) on the same rows, with the DeLong variance of the correlated pair."""
    aucs, cov = delong(y_true, [score_a, score_b])
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    return normal_interval(aucs[0] - aucs[1], math.sqrt(max(var, 0.0)), confidence, "delong paired")


# --------------------------------------------------------------------------------------------
# Paired bootstrap


def paired_bootstrap(
    statistic: Callable[..., np.ndarray],
    arrays: Sequence[np.ndarray],
    confidence: float,
    resamples: int,
    seed: int,
    blocks: int,
) -> Interval:
    """Percentile bounds of a statistic of SUMS over row resamples that keep the rows' pairing.

    ``statistic(*sums)`` receives the sum of each array (a mean is ``sum(x) / sum(ones)``: pass a
    ones array), as floats for the estimate and as arrays [B] for a batch of resamples. Because
    only sums matter, rows are first summed into ``blocks`` random blocks of equal size and the
    blocks are resampled: the resampled sums have the same variance as resampled rows (n·σ²),
    at a cost of resamples × blocks instead of resamples × rows.
    """
    _check_confidence(confidence)
    if resamples < 10:
        raise ValueError("paired_bootstrap needs at least 10 resamples")
    cols = np.vstack([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    n = cols.shape[1]
    if any(np.asarray(a).size != n for a in arrays):
        raise ValueError("paired_bootstrap: arrays differ in length")
    method = f"paired bootstrap ({resamples})"
    if n == 0:
        return undefined(confidence, method)
    value = float(statistic(*cols.sum(axis=1)))
    rng = np.random.default_rng(seed)
    g = min(n, blocks)
    block = rng.permutation(n) % g
    sums = np.vstack([np.bincount(block, weights=c, minlength=g) for c in cols])  # [arrays, g]
    batch = max(1, _BOOTSTRAP_CELLS // g)
    draws: list[np.ndarray] = []
    for start in range(0, resamples, batch):
        idx = rng.integers(0, g, size=(min(batch, resamples - start), g))
        draws.append(np.asarray(statistic(*(s[idx].sum(axis=-1) for s in sums)), dtype=np.float64))
    boot = np.concatenate(draws)
    if not np.isfinite(boot).all() or not math.isfinite(value):
        return Interval(value, math.nan, math.nan, confidence, method)
    low, high = np.quantile(boot, [1 - confidence, confidence])
    return Interval(value, float(low), float(high), confidence, method)


# --------------------------------------------------------------------------------------------
# Counts: Poisson bounds and calibration ratios


def _poisson_cdf(k: int, lam: float) -> float:
    """P(X <= k) for X ~ Poisson(lam), summed in log space."""
    if lam <= 0:
        return 1.0
    i = np.arange(k + 1, dtype=np.float64)
    log_factorial = np.concatenate(([0.0], np.cumsum(np.log(i[1:]))))
    log_terms = -lam + i * math.log(lam) - log_factorial
    top = log_terms.max()
    return float(min(1.0, math.exp(top) * np.exp(log_terms - top).sum()))


def _solve_decreasing(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """x in [lo, hi] with f(x) = target for f decreasing in x (bisection)."""
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@lru_cache(maxsize=4096)
def poisson_bounds(k: int, confidence: float) -> tuple[float, float]:
    """One-sided bounds (λ_low, λ_high) of a Poisson mean from one observed count ``k``.

    Exact (Garwood): P(X >= k | λ_low) = 1 - confidence and P(X <= k | λ_high) = 1 - confidence.
    """
    _check_confidence(confidence)
    if k < 0:
        raise ValueError("a count cannot be negative")
    alpha = 1 - confidence
    if k > _EXACT_POISSON_MAX:
        z = z_value(confidence)
        low = k * (1 - 1 / (9 * k) - z / (3 * math.sqrt(k))) ** 3
        k1 = k + 1
        high = k1 * (1 - 1 / (9 * k1) + z / (3 * math.sqrt(k1))) ** 3
        return low, high
    span = k + 10 * math.sqrt(k + 1) + 10
    high = _solve_decreasing(lambda lam: _poisson_cdf(k, lam), alpha, 0.0, span)
    low = 0.0 if k == 0 else _solve_decreasing(lambda lam: _poisson_cdf(k - 1, lam), confidence, 0.0, span)
    return low, high


def calibration_interval(y_true, y_prob, confidence: float) -> Interval:
    """mean(pred) / observed rate with bounds from the Poisson count of observed positives."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    if y.size == 0 or not np.isfinite(p).all():
        return undefined(confidence, "poisson")
    k = int(round(float(y.sum())))
    expected = float(p.sum())
    lam_low, lam_high = poisson_bounds(k, confidence)
    value = expected / k if k else math.inf
    high = expected / lam_low if lam_low > 0 else math.inf
    return Interval(value, expected / lam_high, high, confidence, "poisson")


def widened(iv: Interval, factor: float) -> Interval:
    """``iv`` with its distances to the estimate on the log scale multiplied by ``factor``.

    For a ratio whose log-scale noise is ``factor`` times what its interval assumed (an
    overdispersed count); a factor ≤ 1, or an estimate that is not a positive number, leaves it.
    """
    v = iv.value
    if factor <= 1 or not (math.isfinite(v) and v > 0):
        return iv
    low = v * (iv.low / v) ** factor if iv.low > 0 else iv.low
    high = v * (iv.high / v) ** factor if math.isfinite(iv.high) else iv.high
    return Interval(v, low, high, iv.confidence, f"{iv.method}, widened x{factor:.2f}")


def calibration_shift(y_cur, p_cur, y_ref, p_ref, confidence: float) -> Interval:
    """ratio(current) / ratio(reference) of two independent sets of rows (ratio = mean pred / rate).

    The predicted sums are fixed; the observed counts K are independent Poisson counts, so
    ln(K_ref / K_cur) has variance 1/K_cur + 1/K_ref (normal on the log scale; +0.5 on each count
    keeps a day without positives finite).
    """
    sums = [float(np.asarray(a, dtype=np.float64).sum()) for a in (y_cur, p_cur, y_ref, p_ref)]
    k_cur, s_cur, k_ref, s_ref = sums
    if not all(math.isfinite(v) for v in sums) or s_cur <= 0 or s_ref <= 0:
        return undefined(confidence, "poisson, log-normal")
    k_cur, k_ref = k_cur + 0.5, k_ref + 0.5
    log_value = math.log(s_cur / s_ref) + math.log(k_ref / k_cur)
    iv = normal_interval(log_value, math.sqrt(1 / k_cur + 1 / k_ref), confidence, "poisson, log-normal")
    return Interval(math.exp(iv.value), math.exp(iv.low), math.exp(iv.high), confidence, iv.method)


def calibration_error_improvement(y_true, prob_a, prob_b, confidence: float) -> Interval:
    """|ln ratio_b| - |ln ratio_a| on the same rows (positive: a is better calibrated than b).

    Both ratios divide by the same unknown expected count λ, so the only uncertainty is λ's:
    the bounds are the extremes of the difference over λ in its Poisson interval (the
    difference is piecewise linear in ln λ, so they lie at the ends or at a kink).
    """
    y = np.asarray(y_true, dtype=np.float64).ravel()
    sa = float(np.asarray(prob_a, dtype=np.float64).sum())
    sb = float(np.asarray(prob_b, dtype=np.float64).sum())
    k = int(round(float(y.sum())))
    if y.size == 0 or not (math.isfinite(sa) and math.isfinite(sb)) or sa <= 0 or sb <= 0 or k == 0:
        return undefined(confidence, "poisson")
    lam_low, lam_high = poisson_bounds(k, confidence)
    lam_low = max(lam_low, 1e-12)

    def gain(log_lam: float) -> float:
        return abs(math.log(sb) - log_lam) - abs(math.log(sa) - log_lam)

    lo, hi = math.log(lam_low), math.log(lam_high)
    points = [lo, hi] + [x for x in (math.log(sa), math.log(sb)) if lo < x < hi]
    values = [gain(x) for x in points]
    return Interval(gain(math.log(k)), min(values), max(values), confidence, "poisson")


def ece_interval(y_true, y_prob, bins: int, confidence: float) -> Interval:
    """ECE over ``bins`` equal-width bins with joint one-sided bounds (module docstring)."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    method = f"normal per bin, bonferroni over bins ({bins} bins)"
    if y.size == 0 or y.size != p.size or not np.isfinite(p).all():
        return undefined(confidence, method)
    if bins < 1:
        raise ValueError("ece_interval needs at least one bin")
    b = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    n = np.bincount(b, minlength=bins).astype(np.float64)
    sum_p = np.bincount(b, weights=p, minlength=bins)
    sum_y = np.bincount(b, weights=y, minlength=bins)
    var_p = np.bincount(b, weights=p * (1.0 - p), minlength=bins)
    filled = n > 0
    n, sum_p, sum_y, var_p = n[filled], sum_p[filled], sum_y[filled], var_p[filled]
    rate = sum_y / n
    se = np.sqrt(np.maximum(var_p, n * rate * (1.0 - rate)))
    _check_confidence(confidence)
    # |gap| is two-sided per bin: each bin gets (1 - confidence) / (2 · filled bins).
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / (2 * int(filled.sum())))
    gap = np.abs(sum_p - sum_y)
    total = float(y.size)
    return Interval(
        float(gap.sum() / total),
        # the continuity correction (0.5 event) keeps the bound honest on bins of a few rows
        float(np.maximum(gap - 0.5 - z * se, 0.0).sum() / total),
        float((gap + z * se).sum() / total),
        confidence,
        method,
    )


def events_to_resolve(events: float, interval: Interval, tolerance: float) -> float:
    """Events a day needs for ``interval`` to resolve ``tolerance`` (bound no farther than it).

    An interval's half-width shrinks as 1/sqrt(events), so with ``events`` giving resolution r
    the events needed for resolution ``tolerance`` are events · (r / tolerance)². Returns inf
    when the interval is undefined or the tolerance is not positive.
    """
    r = interval.resolution
    if not math.isfinite(r) or tolerance <= 0 or events <= 0:
        return math.inf
    return float(events * (r / tolerance) ** 2)

"""Intervals of one day's figures: DeLong, paired bootstrap, Poisson bounds, calibration ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model import intervals as I
from model.metrics import auc


def _day(n: int, seed: int, base: float = -3.0):
    rng = np.random.default_rng(seed)
    logit = rng.normal(base, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return rng, logit, y


def _noisy(rng, logit, sd):
    return 1 / (1 + np.exp(-(logit + rng.normal(0, sd, logit.size))))


def test_midranks_average_ties():
    assert I.midranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_delong_matches_the_auc_and_the_brute_force_structural_components():
    rng, logit, y = _day(400, 1, base=-1.0)
    a, b = _noisy(rng, logit, 0.5), np.round(_noisy(rng, logit, 1.0), 2)  # b has ties
    aucs, cov = I.delong(y, [a, b])
    assert aucs[0] == pytest.approx(auc(y, a)) and aucs[1] == pytest.approx(auc(y, b))
    pos, neg = y > 0.5, y < 0.5

    def components(s):
        psi = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        return psi.mean(axis=1), psi.mean(axis=0)

    (va, wa), (vb, wb) = components(a), components(b)
    m, n = pos.sum(), neg.sum()
    expected = np.cov(va, vb)[0, 1] / m + np.cov(wa, wb)[0, 1] / n
    assert cov[0, 1] == pytest.approx(expected)
    assert cov[1, 1] == pytest.approx(np.var(vb, ddof=1) / m + np.var(wb, ddof=1) / n)


def test_delong_is_undefined_without_two_of_each_class():
    aucs, cov = I.delong(np.array([1.0, 0, 0, 0]), [np.arange(4.0)])
    assert math.isnan(aucs[0]) and math.isnan(cov[0, 0])


def test_paired_difference_of_identical_scores_is_exactly_zero():
    rng, logit, y = _day(2000, 2)
    s = _noisy(rng, logit, 0.5)
    iv = I.auc_difference(y, s, s, 0.95)
    assert iv.value == 0 and iv.low == pytest.approx(0, abs=1e-12) and iv.high == pytest.approx(0, abs=1e-12)


def test_paired_difference_is_tighter_than_either_auc_and_covers_at_its_confidence():
    # Two models sharing most of their error: the paired bound is far narrower than one AUC's.
    misses, widths = 0, []
    for seed in range(200):
        rng, logit, y = _day(3000, 100 + seed)
        shared = rng.normal(0, 0.8, logit.size)
        a = _noisy(rng, logit + shared, 0.3)
        b = _noisy(rng, logit + shared, 0.3)  # equally good: the true difference is 0
        iv = I.auc_difference(y, a, b, 0.95)
        misses += iv.high < 0  # a one-sided 95% upper bound is below the truth 5% of the time
        widths.append((iv.resolution, I.auc_interval(y, a, 0.95).resolution))
    assert 2 <= misses <= 20
    assert np.mean([w[0] for w in widths]) < 0.6 * np.mean([w[1] for w in widths])


@pytest.mark.parametrize(
    "k, low, high",
    # Exact one-sided 95% Poisson bounds: chi2 quantiles / 2 (standard tables).
    [(0, 0.0, 2.9957), (1, 0.05129, 4.7439), (10, 5.4254, 16.962), (50, 38.96, 63.29)],
)
def test_poisson_bounds_are_exact(k, low, high):
    lo, hi = I.poisson_bounds(k, 0.95)
    assert lo == pytest.approx(low, rel=2e-3, abs=1e-4) and hi == pytest.approx(high, rel=2e-3)


def test_poisson_bounds_are_continuous_where_the_approximation_takes_over():
    k = I._EXACT_POISSON_MAX
    exact, approx = I.poisson_bounds(k, 0.95), I.poisson_bounds(k + 1, 0.95)
    assert approx[0] - exact[0] == pytest.approx(1, abs=0.05)
    assert approx[1] - exact[1] == pytest.approx(1, abs=0.05)


def test_calibration_interval_covers_a_calibrated_model():
    misses_low = misses_high = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        p = rng.beta(1, 60, 3000)  # ~50 positives a day
        y = (rng.random(p.size) < p).astype(float)
        iv = I.calibration_interval(y, p, 0.95)
        assert iv.low <= iv.value <= iv.high
        misses_low += iv.high < 1
        misses_high += iv.low > 1
    assert misses_low <= 27 and misses_high <= 27  # each at most ~5% (plus noise), Poisson is conservative


def test_calibration_interval_of_a_day_without_positives_is_open_above():
    iv = I.calibration_interval(np.zeros(100), np.full(100, 0.01), 0.95)
    assert math.isinf(iv.value) and math.isinf(iv.high) and iv.low == pytest.approx(1.0 / 2.9957, rel=1e-3)


def test_calibration_error_improvement():
    y = np.zeros(10_000)
    y[:100] = 1  # 100 observed
    over, more_over, under = np.full(y.size, 0.012), np.full(y.size, 0.015), np.full(y.size, 0.009)
    # Both above every plausible rate: which is closer is certain, the interval has no width.
    iv = I.calibration_error_improvement(y, over, more_over, 0.95)
    assert iv.value == pytest.approx(math.log(150 / 120)) and iv.low == pytest.approx(iv.high)
    # On both sides of the observed count: the sign depends on the unknown rate.
    iv = I.calibration_error_improvement(y, under, over, 0.95)
    assert iv.low < 0 < iv.high


def test_paired_bootstrap_of_a_mean_agrees_with_the_normal_bound():
    rng = np.random.default_rng(3)
    x = rng.exponential(1.0, 50_000)
    iv = I.paired_bootstrap(lambda s, n: s / n, [x, np.ones_like(x)], 0.95, 2000, 0, blocks=2000)
    se = x.std() / math.sqrt(x.size)
    assert iv.value == pytest.approx(x.mean())
    assert iv.high - iv.value == pytest.approx(1.645 * se, rel=0.15)
    assert iv.value - iv.low == pytest.approx(1.645 * se, rel=0.15)
    again = I.paired_bootstrap(lambda s, n: s / n, [x, np.ones_like(x)], 0.95, 2000, 0, blocks=2000)
    assert again == iv  # seeded


def test_events_to_resolve_scales_with_the_square_of_the_resolution():
    iv = I.Interval(0.0, -0.02, 0.02, 0.95, "x")
    assert I.events_to_resolve(50, iv, 0.01) == pytest.approx(200)
    assert I.events_to_resolve(50, iv, 0.04) == pytest.approx(12.5)
    assert math.isinf(I.events_to_resolve(50, I.undefined(0.95, "x"), 0.01))


def test_confidence_is_one_sided_and_checked():
    assert I.z_value(0.95) == pytest.approx(1.6449, abs=1e-4)
    with pytest.raises(ValueError, match="one-sided"):
        I.z_value(0.3)


def test_ece_interval_value_is_the_ece_and_its_bounds_bracket_it():
    from model.metrics import ece

    rng = np.random.default_rng(3)
    p = rng.beta(1, 12, 20_000)
    y = (rng.random(p.size) < p).astype(float)
    iv = I.ece_interval(y, p, 10, 0.95)
    assert iv.value == pytest.approx(ece(y, p, 10))
    assert 0.0 <= iv.low <= iv.value <= iv.high


def test_ece_lower_bound_of_a_calibrated_model_is_zero_at_its_confidence():
    # The bare ECE of calibrated predictions is positive on every draw (noise); the joint lower
    # bound must read 0 on at least `confidence` of them.
    rng = np.random.default_rng(11)
    lows, values = [], []
    for _ in range(200):
        p = rng.beta(1, 12, 3000)
        y = (rng.random(p.size) < p).astype(float)
        iv = I.ece_interval(y, p, 10, 0.95)
        lows.append(iv.low)
        values.append(iv.value)
    assert min(values) > 0.0
    assert np.mean(np.asarray(lows) > 0) <= 0.05


def test_ece_lower_bound_sees_a_real_miscalibration_and_stays_below_it():
    rng = np.random.default_rng(5)
    q = rng.beta(1, 12, 50_000)
    y = (rng.random(q.size) < q).astype(float)
    p = np.clip(1.5 * q, 0, 1)  # over-predicts by half: true ECE = 0.5 · mean(q) ≈ 0.038
    true_ece = float(np.mean(p - q))
    iv = I.ece_interval(y, p, 10, 0.95)
    assert 0.0 < iv.low < true_ece < iv.high


def test_ece_interval_of_no_rows_is_undefined():
    assert math.isnan(I.ece_interval(np.array([]), np.array([]), 10, 0.95).low)

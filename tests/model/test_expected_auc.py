"""Expected AUC / log loss against brute force: the O(n²) pair sum and all 2^n label vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.expected_auc import expected_auc, expected_log_loss, truth_figures
from model.metrics import auc, log_loss


def pair_sum(p, s, w=None) -> float:
    """The docstring's definition, literally: a double loop over ordered pairs i != j."""
    w = np.ones_like(p) if w is None else w
    num = den = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i == j:
                continue
            pair = w[i] * p[i] * w[j] * (1 - p[j])
            den += pair
            num += pair * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    return num / den


def exact_expectation(p, s) -> float:
    """E[AUC | both classes present] over all 2^n label vectors, each weighted by its probability."""
    n = len(p)
    y = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(float)  # every label vector
    n_pos = y.sum(1)
    keep = (n_pos > 0) & (n_pos < n)
    y, n_pos = y[keep], n_pos[keep]
    prob = np.prod(np.where(y == 1, p, 1 - p), axis=1)
    concord = (s[:, None] > s[None, :]) + 0.5 * (s[:, None] == s[None, :])
    aucs = np.einsum("ri,ij,rj->r", y, concord, 1 - y) / (n_pos * (n - n_pos))
    assert abs(aucs[0] - auc(y[0], s)) < 1e-12  # the vectorised AUC is the observed one
    return float(np.dot(prob, aucs) / prob.sum())


@pytest.mark.parametrize("seed", range(6))
def test_equals_pair_sum_with_ties_and_weights(seed):
    rng = np.random.default_rng(seed)
    n = 40
    p = rng.uniform(0, 1, n)
    s = rng.integers(0, 6, n).astype(float)  # many ties
    w = rng.uniform(0, 1, n)
    assert expected_auc(p, s) == pytest.approx(pair_sum(p, s), abs=1e-12)
    assert expected_auc(p, s, w) == pytest.approx(pair_sum(p, s, w), abs=1e-12)
    s2 = rng.normal(size=n)  # no ties
    assert expected_auc(p, s2) == pytest.approx(pair_sum(p, s2), abs=1e-12)


def test_deterministic_labels_give_the_observed_auc():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200).astype(float)
    s = rng.integers(0, 10, 200).astype(float)
    assert expected_auc(y, s) == pytest.approx(auc(y, s), abs=1e-12)
    assert expected_log_loss(y, np.full(200, 0.3)) == pytest.approx(log_loss(y, np.full(200, 0.3)))


@pytest.mark.parametrize("seed", range(4))
def test_close_to_exact_expectation_over_all_label_vectors(seed):
    """The ratio of expectations vs the expectation of the ratio, exactly, at n = 12: within 0.005
    (measured 0.0005-0.0032 for these four draws)."""
    rng = np.random.default_rng(seed)
    n = 12
    p = rng.uniform(0.05, 0.6, n)
    s = p + rng.normal(0, 0.1, n)
    exact = exact_expectation(p, s)
    assert abs(expected_auc(p, s) - exact) < 0.005
    assert expected_auc(p, s) != exact  # they are different definitions; the gap is O(1/n)


def test_matches_sampled_auc_at_evaluation_size():
    rng = np.random.default_rng(7)
    n = 2000
    p = rng.beta(1, 8, n)
    s = p + rng.normal(0, 0.05, n)
    sampled = [auc(rng.random(n) < p, s) for _ in range(200)]
    se = np.std(sampled) / math.sqrt(len(sampled))
    assert abs(expected_auc(p, s) - np.mean(sampled)) < 4 * se + 1e-3


def test_perfect_and_reversed_and_constant_scores():
    p = np.array([0.0, 0.0, 1.0, 1.0])
    assert expected_auc(p, [0, 1, 2, 3]) == 1.0
    assert expected_auc(p, [3, 2, 1, 0]) == 0.0
    assert expected_auc(p, [5, 5, 5, 5]) == 0.5
    assert math.isnan(expected_auc([0.0, 0.0], [1, 2]))  # no possible positive


def test_expected_log_loss_is_cross_entropy_minimised_at_truth():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.3, 500)
    w = rng.uniform(0, 1, 500)
    entropy = expected_log_loss(p, p, w)
    assert expected_log_loss(p, np.clip(p * 1.5, 0, 1), w) > entropy
    manual = np.sum(w * -(p * np.log(p) + (1 - p) * np.log(1 - p))) / w.sum()
    assert entropy == pytest.approx(manual)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="differ in length"):
        expected_auc([0.1, 0.2], [1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_auc([1.5, 0.2], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        expected_auc([0.5, 0.2], [float("nan"), 2.0])


def test_truth_figures_score_each_task_on_its_population():
    rng = np.random.default_rng(2)
    pc, pv = rng.beta(2, 20, 500), rng.beta(2, 15, 500)
    s_ctr, s_cvr = (
        np.clip(pc + rng.normal(0, 0.02, 500), 1e-4, 1),
        np.clip(pv + rng.normal(0, 0.05, 500), 1e-4, 1),
    )
    f = truth_figures(pc, pv, s_ctr, s_cvr, s_ctr * s_cvr)
    assert f["ctr_eauc"] == expected_auc(pc, s_ctr)
    assert f["cvr_eauc"] == expected_auc(pv, s_cvr, weight=pc)  # clicked rows: weighted by p_click
    assert f["cvr_eauc"] != expected_auc(pv, s_cvr)
    assert f["ctcvr_eauc"] == expected_auc(pc * pv, s_ctr * s_cvr)
    assert f["ctcvr_elogloss"] == expected_log_loss(pc * pv, s_ctr * s_cvr)
    assert f["cvr_elogloss"] == expected_log_loss(pv, s_cvr, weight=pc)
    # calibration in the large: scaling a task's predictions scales its ratio
    g = truth_figures(pc, pv, 1.2 * pc, 0.8 * pv, 0.96 * pc * pv)
    assert (g["ctr_ratio"], g["cvr_ratio"], g["ctcvr_ratio"]) == pytest.approx((1.2, 0.8, 0.96))
    assert f["cvr_ratio"] == pytest.approx(np.sum(pc * s_cvr) / np.sum(pc * pv))  # on clicked rows

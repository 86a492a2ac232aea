import math

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from model.metrics import auc, calibration_ratio, ece, evaluate_predictions, log_loss


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 3000))
    y = rng.random(n) < 0.3
    y[:2] = [True, False]
    scores = rng.integers(0, 7, n) / 6.0 if seed % 2 else rng.random(n)  # heavy ties vs none
    assert auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_auc_edge_cases():
    assert auc([0, 1], [0.5, 0.5]) == 0.5  # all tied
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert math.isnan(auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(auc([], []))
    with pytest.raises(ValueError, match="differ in length"):
        auc([0, 1], [0.1])


def test_log_loss_and_calibration():
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.2).astype(float)
    p = np.clip(rng.random(500), 0.01, 0.99)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p), rel=1e-9)
    assert calibration_ratio([0, 1, 0, 1], [0.25, 0.25, 0.25, 0.25]) == pytest.approx(0.5)
    assert math.isnan(calibration_ratio([0, 0], [0.1, 0.2]))


def test_ece_by_hand():
    # bin [0.1,0.2): p mean 0.1, rate 0 -> 0.1 weight 2/4; bin [0.9,1]: p mean 0.9, rate 1 -> 0.1 weight 2/4
    assert ece([0, 0, 1, 1], [0.1, 0.1, 0.9, 0.9]) == pytest.approx(0.1)
    assert ece([0, 1], [0.5, 0.5]) == pytest.approx(0.0)
    assert ece([0, 1, 1], [0.05, 0.55, 0.95], bins=2) == pytest.approx((abs(0.05 - 0) + abs(1.5 - 2)) / 3)


def test_task_spaces():
    click = np.array([1, 1, 1, 0, 0, 0])
    conv = np.array([1, 0, 0, 0, 0, 0])
    p_ctr = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3])
    p_cvr = np.array([0.9, 0.1, 0.2, 0.99, 0.99, 0.99])  # high on unclicked rows must not matter for CVR
    m = evaluate_predictions(click, conv, p_ctr, p_cvr)
    assert m["cvr"]["n"] == 3 and m["cvr"]["auc"] == 1.0
    assert m["ctr"]["auc"] == 1.0
    assert m["ctcvr"]["auc"] == pytest.approx(roc_auc_score(click * conv, p_ctr * p_cvr))

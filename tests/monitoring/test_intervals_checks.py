"""The monitor's calibration and AUC checks read intervals: noise stays quiet, a break alerts."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from monitor_fixtures import synthetic_predictions

from model.intervals import Interval
from monitoring import calibration as C
from monitoring import evidently_metrics as M
from monitoring import run_monitor
from taml.core.config import Config

DAY = dt.date(2026, 11, 10)


def _iv(value, low, high):
    return Interval(value, low, high, 0.95, "test")


@pytest.mark.parametrize(
    "iv, expected",
    [
        (_iv(1.35, 1.05, 1.70), 1.05),  # estimate beyond the alert limit, but not shown: passes both
        (_iv(1.20, 1.15, 1.25), 1.20),  # shown beyond the warn limit, estimate below the alert one: warns
        (_iv(1.35, 1.20, 1.50), 1.35),  # shown beyond the warn limit, estimate beyond the alert one: alerts
    ],
)
def test_evidence_of_an_upper_limited_figure(iv, expected):
    m = M.CalibrationBound(task="cvr", side="over", warn_max=1.11, alert_max=1.25)
    assert M.evidence(m, iv) == expected


def test_evidence_of_a_lower_limited_figure_and_an_alert_only_limit():
    floor = M.TaskAucBound(task="ctr", warn_min=0.65, alert_min=0.6)
    assert M.evidence(floor, _iv(0.58, 0.50, 0.66)) == 0.66  # not shown below 0.65
    assert M.evidence(floor, _iv(0.58, 0.52, 0.63)) == 0.58
    alert_only = M.AucDrop(task="ctr", alert_max=0.05)
    assert M.evidence(alert_only, _iv(0.08, 0.04, 0.12)) == 0.04  # needs the interval beyond 0.05
    assert M.evidence(alert_only, _iv(0.08, 0.06, 0.12)) == 0.08


def test_calibration_shift_against_the_reference():
    rng = np.random.default_rng(0)
    ref, cur = synthetic_predictions(20_000, seed=1), synthetic_predictions(4000, seed=4)
    same = C.calibration_shift_interval(ref, cur, "ctr", 0.95)
    assert same.low < 1 < same.high
    lost = cur.copy()
    keep = rng.random(len(lost)) < 0.6
    lost["conversion"] = lost["conversion"] * keep  # 40% of conversions never reported
    broken = C.calibration_shift_interval(ref, lost, "cvr", 0.95)
    ratio = C.task_calibration(lost, "cvr") / C.task_calibration(ref, "cvr")
    assert broken.low > 1.25 and broken.value == pytest.approx(ratio, rel=0.02)  # +0.5 on each count
    assert math.isfinite(C.calibration_shift_interval(ref, cur.assign(conversion=0), "cvr", 0.95).value)


def _config() -> Config:
    cfg = Config()
    cfg.monitor.features = ["device", "position"]
    cfg.monitor.no_reference_status = "ok"
    return cfg


def _problems(r, word: str) -> list[str]:
    return [p for p in r.problems if word in p]


def test_a_noisy_calibration_on_few_events_is_quiet_and_a_real_break_alerts(tmp_path):
    df = synthetic_predictions(6000, seed=3)
    y, p = C.task_arrays(df, "cvr")
    # A calibrated model on a day whose ~70 conversions came out low by chance: the estimate reads
    # 1.3 (beyond the alert limit 1.25), the interval reaches 1.0. The old check alerted.
    target = int(round(p.sum() / 1.3))
    conv_rows = np.flatnonzero(df["conversion"].to_numpy() > 0)
    df.loc[conv_rows[target:], "conversion"] = 0
    assert C.positives(df, "cvr") >= Config().monitor.min_positives["cvr"]
    assert C.task_calibration(df, "cvr") > 1.25
    r = run_monitor(_config(), DAY, "unused", str(tmp_path), predictions=df, write_history=False)
    assert not _problems(r, "Calibration ratio"), r.problems
    assert not _problems(r, "CVR collapse") and abs(r.headline_metrics["cvr_ctr_spearman"]) < 0.2
    assert r.headline_metrics["cvr_calibration"] > 1.25  # the estimate is still reported as it is
    # CTR over-predicted 1.5x on ~540 clicks: shown beyond the limits, it alerts.
    broken = synthetic_predictions(6000, seed=3).assign(p_ctr=lambda d: d.p_ctr * 1.5)
    broken["p_ctcvr"] = broken["p_ctr"] * broken["p_cvr"]
    r = run_monitor(_config(), DAY, "unused", str(tmp_path), predictions=broken, write_history=False)
    assert r.status == "alert"
    assert any(p.startswith("alert") and "Calibration ratio" in p and "CTR (all" in p for p in r.problems)


def test_a_cvr_head_that_copies_the_click_ranking_warns(tmp_path):
    df = synthetic_predictions(6000, seed=4)
    df["p_cvr"] = 0.5 * df["p_ctr"] ** 0.5  # ranks clicked rows exactly as pCTR does
    df["p_ctcvr"] = df["p_ctr"] * df["p_cvr"]
    r = run_monitor(_config(), DAY, "unused", str(tmp_path), predictions=df, write_history=False)
    assert r.headline_metrics["cvr_ctr_spearman"] == pytest.approx(1.0)
    assert any(p.startswith("warn") and "CVR collapse" in p for p in r.problems), r.problems


def test_the_ece_check_is_quiet_on_a_calibrated_day_and_sees_an_over_confident_model(tmp_path):
    df = synthetic_predictions(6000, seed=5)
    r = run_monitor(_config(), DAY, "unused", str(tmp_path), predictions=df, write_history=False)
    assert r.headline_metrics["cvr_ece"] > 0  # the bare ECE of a calibrated model is noise, not 0
    assert not _problems(r, "Expected calibration error"), r.problems
    # The same labels, the CTR logits stretched 2.5x and shifted to keep the mean prediction: the
    # ranking and the calibration in the large do not move, the bins are far off (over-confident,
    # as an overfit model is).
    logit = np.log(df.p_ctr / (1 - df.p_ctr)).to_numpy()
    lo, hi = -10.0, 10.0
    for _ in range(60):  # the shift that keeps mean(p_ctr): the mean is increasing in it
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(mid + 2.5 * logit)))) < df.p_ctr.mean() else (lo, mid)
    stretched = df.assign(p_ctr=1 / (1 + np.exp(-(lo + 2.5 * logit))))
    stretched["p_ctcvr"] = stretched["p_ctr"] * stretched["p_cvr"]
    iv = C.task_relative_ece_interval(stretched, "ctr", 10, 0.95)
    limits = Config().monitor.relative_ece
    assert limits.warn_max < iv.low and iv.value > limits.alert_max
    r = run_monitor(_config(), DAY, "unused", str(tmp_path), predictions=stretched, write_history=False)
    # shown beyond the warn limit, the estimate beyond the alert limit: alerts (evidence())
    assert any(
        p.startswith("alert") and "Expected calibration error" in p and "CTR (all" in p for p in r.problems
    ), r.problems
    assert not _problems(r, "Calibration ratio")


def test_a_widened_interval_keeps_its_estimate_and_stretches_on_the_log_scale():
    from model.intervals import widened

    iv = _iv(1.3, 1.1, 1.5)
    w = widened(iv, 2.0)
    assert w.value == 1.3
    assert w.low == pytest.approx(1.3 * (1.1 / 1.3) ** 2) and w.high == pytest.approx(1.3 * (1.5 / 1.3) ** 2)
    assert widened(iv, 1.0) == iv and widened(iv, 0.5) == iv  # never narrower
    assert widened(_iv(1.3, 0.0, math.inf), 2.0).high == math.inf


def _history(levels: list[float], n: int = 6000, seed: int = 0):
    """One calibrated synthetic day per level, its predictions scaled by the level (served as such)."""
    days = {}
    for k, level in enumerate(levels):
        day = DAY - dt.timedelta(days=len(levels) - k)
        df = synthetic_predictions(n, seed=seed + k)
        df["p_cvr"] = np.clip(df["p_cvr"] * level, 0, 1)
        df["p_ctcvr"] = df["p_ctr"] * df["p_cvr"]
        df["event_timestamp"] = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.arange(n), unit="s")
        days[day] = df
    return days


def test_overdispersion_reads_the_reference_days_level_wobble_beyond_label_noise():
    # Seven days give six moving ranges: one estimate is noisy, so judge the median of five windows.
    def median_factor(sd: float) -> float:
        factors = []
        for k in range(5):
            levels = np.exp(np.random.default_rng(k).normal(0, sd, 7))
            frame = pd.concat(_history(list(levels), seed=10 * k).values(), ignore_index=True)
            factors.append(C.day_overdispersion(frame)["cvr"])
        return float(np.median(factors))

    assert median_factor(0.0) < 1.3  # label noise only (~±10% a day here; floored at 1)
    assert median_factor(0.2) > 1.6  # a level that moves ±20% a day besides
    wobble = np.exp(np.random.default_rng(1).normal(0, 0.2, 7))
    moving = pd.concat(_history(list(wobble)).values(), ignore_index=True)
    assert C.day_overdispersion(moving.drop(columns="event_timestamp"))["cvr"] == 1.0  # no days: no estimate
    two_days = moving[moving["event_timestamp"].dt.date >= DAY - dt.timedelta(days=2)]
    assert C.day_overdispersion(two_days)["cvr"] == 1.0  # too few days to estimate it from


def test_a_level_within_the_reference_days_own_wobble_is_quiet_and_a_break_still_alerts(tmp_path):
    """Reference days whose CVR level moves ±20% from day to day; day D 1.3 high reads as one more
    such day (the Poisson interval alone alerts on it), lost postbacks still alert."""
    from monitor_fixtures import write_predictions

    wobble = np.exp(np.random.default_rng(1).normal(0, 0.2, 7))
    for day, df in _history(list(wobble)).items():
        write_predictions(str(tmp_path), day, df)
    cfg = _config()
    cfg.monitor.reference_days = 7
    today = _history([1.3], n=12000, seed=50)[DAY - dt.timedelta(days=1)]  # ~185 conversions
    today["event_timestamp"] = today["event_timestamp"] + pd.Timedelta(days=1)

    def calibration_alerts(df, overdispersion: bool) -> list[str]:
        cfg.monitor.calibration_overdispersion = overdispersion
        r = run_monitor(cfg, DAY, "unused", str(tmp_path), predictions=df, write_history=False)
        return [p for p in r.problems if p.startswith("alert") and "CVR (clicked" in p and "Calibration" in p]

    assert C.task_calibration(today, "cvr") > 1.25
    assert calibration_alerts(today, overdispersion=False)  # the Poisson interval alone
    assert not calibration_alerts(today, overdispersion=True)
    lost = today.copy()
    keep = np.random.default_rng(2).random(len(lost)) < 0.55  # 45% of the postbacks lost
    lost["conversion"] = lost["conversion"] * keep
    assert calibration_alerts(lost, overdispersion=True)

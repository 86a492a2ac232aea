"""A model update is not drift: the reference window is re-scored with the model that serves day D.

Day D is served by the fixture's clean model. The reference days were served by an earlier,
flatter model (the clean model's logits shrunk towards their mean, as a model trained on fewer
days scores). Compared as served, the update alone reads as prediction drift; re-scored with
D's model, the window holds the model fixed and only the world can move it: a clean day is quiet
and a broken day still alerts.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import FIRST_PREDICTED, REFERENCE_DAYS
from monitor_fixtures import MODEL_VERSION, write_predictions

from monitoring import run_monitor
from monitoring.calibration import PREDICTIONS
from taml.core.errors import TamlError

EARLY = "v-early"
# The earlier model's logits keep this share of their spread around the mean: its score
# distribution differs from the clean model's well beyond the prediction-drift alert limit
# (PSI 0.25), as between the first and the later versions of `make run`.
FLATTEN = 0.3


def _flat(p: np.ndarray) -> np.ndarray:
    logit = np.log(p) - np.log1p(-p)
    return 1.0 / (1.0 + np.exp(-(logit.mean() + FLATTEN * (logit - logit.mean()))))


def served_by_early(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["p_ctr"], out["p_cvr"] = _flat(frame["p_ctr"].to_numpy()), _flat(frame["p_cvr"].to_numpy())
    out["p_ctcvr"] = out["p_ctr"] * out["p_cvr"]
    out["model_version"] = EARLY
    return out


@pytest.fixture
def day(sim, artifact_root):
    """The day checked; its reference days rewritten as the earlier model served them."""
    d = sim.days[FIRST_PREDICTED + REFERENCE_DAYS + 1]
    for k in range(1, REFERENCE_DAYS + 1):
        past = d - dt.timedelta(days=k)
        write_predictions(artifact_root, past, served_by_early(sim.clean_predictions(past)))
    return d


def scorer_of(sim, calls: list):
    """The clean model as a scorer of rows: its scores of those impressions (it is deterministic)."""
    clean = pd.concat([sim.clean_predictions(d) for d in sim.days[FIRST_PREDICTED:]], ignore_index=True)
    by_id = clean.set_index("impression_id")[list(PREDICTIONS)]

    def score(config, artifact_root, version, rows):
        calls.append((version, len(rows)))
        if version != MODEL_VERSION:
            raise TamlError(f"model version {version!r} is not in the registry")
        return by_id.loc[rows["impression_id"]].reset_index(drop=True)

    return score


def _drift(result) -> float:
    return max(result.headline_metrics[f"{c}_drift"] for c in PREDICTIONS)


def test_a_model_update_alone_reads_as_drift_when_compared_as_served(sim, artifact_root, monitor_config, day):
    r = run_monitor(
        monitor_config, day, "unused", artifact_root,
        write_history=False,
    )  # fmt: skip
    assert _drift(r) > monitor_config.monitor.prediction_drift.alert_max
    assert any("reference window as served" in n for n in r.notes)


def test_the_reference_re_scored_with_day_d_model_keeps_a_clean_day_quiet(
    sim, artifact_root, monitor_config, day
):
    calls: list = []
    r = run_monitor(
        monitor_config, day, "unused", artifact_root,
        write_history=False, reference_scorer=scorer_of(sim, calls),
    )  # fmt: skip
    assert r.status != "alert", r.problems
    assert _drift(r) < monitor_config.monitor.prediction_drift.warn_max
    for task in ("ctr", "cvr", "ctcvr"):
        assert not any(f"shift (day D / reference window): {task}" in p for p in r.problems), r.problems
    # One call, for the rows of the window (at most max_rows / reference_days a day).
    assert calls == [(MODEL_VERSION, calls[0][1])]
    assert 0 < calls[0][1] <= monitor_config.monitor.max_rows
    assert any(f"re-scored with {MODEL_VERSION}" in n for n in r.notes)


def test_a_world_change_still_alerts_with_the_re_scored_reference(sim, artifact_root, monitor_config, day):
    broken = sim.scenario_predictions("calibration_break", day)
    r = run_monitor(
        monitor_config, day, "unused", artifact_root, predictions=broken, write_history=False,
        reference_scorer=scorer_of(sim, []),
    )  # fmt: skip
    assert r.status == "alert"
    alerts = "\n".join(p for p in r.problems if p.startswith("alert"))
    assert "Calibration ratio shift" in alerts and "CVR (clicked" in alerts


def test_a_version_that_cannot_be_loaded_leaves_the_window_as_served(sim, artifact_root, monitor_config, day):
    frame = sim.clean_predictions(day)
    frame["model_version"] = "v-gone"
    r = run_monitor(
        monitor_config, day, "unused", artifact_root, predictions=frame, write_history=False,
        reference_scorer=scorer_of(sim, []),
    )  # fmt: skip
    note = next(n for n in r.notes if n.startswith("reference window as served"))
    assert "not re-scored with v-gone" in note and "not in the registry" in note


def test_the_auc_trend_compares_the_days_as_served_not_in_sample(sim, artifact_root, monitor_config, day):
    """Day D's model trained on most of the window: there it ranks far better than on unseen days.

    The scorer here is that extreme, a model that memorised the window's labels (AUC 1 on it).
    Calibration and drift read its scores; the AUC trend reads each day's served, out-of-sample
    scores, so day D is not flagged for ranking worse than the model did on its own training rows.
    """

    def memorised(config, artifact_root, version, rows):
        hit = rows["click"].to_numpy(np.float64)
        out = pd.DataFrame({"p_ctr": np.where(hit > 0, 0.5, 0.02)})
        out["p_cvr"] = np.where(rows["conversion"].to_numpy() > 0, 0.6, 0.05)
        out["p_ctcvr"] = out["p_ctr"] * out["p_cvr"]
        return out

    r = run_monitor(
        monitor_config, day, "unused", artifact_root, write_history=False, reference_scorer=memorised,
    )  # fmt: skip
    assert not any("AUC drop" in p for p in r.problems), r.problems
    assert r.headline_metrics["cvr_auc_drop_check"] < monitor_config.monitor.auc_drop.warn_max
    # Compared in-sample, the same day reads as a large drop.
    from monitoring.calibration import SERVED, auc_drop_interval

    reference = pd.concat(
        [memorised(None, None, None, f).assign(click=f["click"].to_numpy(), conversion=f["conversion"].to_numpy())
         for f in [sim.clean_predictions(day - dt.timedelta(days=k)) for k in range(1, REFERENCE_DAYS + 1)]],
        ignore_index=True,
    )  # fmt: skip
    assert not set(SERVED.values()) & set(reference.columns)
    assert auc_drop_interval(reference, sim.clean_predictions(day), "cvr", 0.95).low > 0.05


def test_the_unseen_item_share_is_tested_only_on_a_full_reference_window(sim, artifact_root, monitor_config):
    flood_day = sim.days[FIRST_PREDICTED + 2]  # two reference days of five
    r = run_monitor(
        monitor_config, flood_day, "unused", artifact_root, write_history=False,
        predictions=sim.scenario_predictions("new_item_flood", flood_day),
    )  # fmt: skip
    assert r.headline_metrics["item_id_unseen_share"] > 0.4
    assert not any("Unseen item_id" in p for p in r.problems), r.problems
    assert any("2 of 5 days" in n and "shown, not tested" in n for n in r.notes)

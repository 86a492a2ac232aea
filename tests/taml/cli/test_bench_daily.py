"""The daily-loop benchmark's verdicts on its targets (benchmarks/daily_loop.py)."""

import datetime as dt
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from components.common.tables import read_table
from model.fitting import holdout_rows

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "daily_loop.py"
spec = importlib.util.spec_from_file_location("daily_loop", SCRIPT)
daily_loop = importlib.util.module_from_spec(spec)
spec.loader.exec_module(daily_loop)
GAP = SCRIPT.with_name("calibration_gap.py")
gap_spec = importlib.util.spec_from_file_location("calibration_gap", GAP)
calibration_gap = importlib.util.module_from_spec(gap_spec)
gap_spec.loader.exec_module(calibration_gap)


def truth(auc: float, ll: float = 0.01) -> dict:
    return {"ctcvr_eauc": auc, "ctcvr_elogloss": ll}


def row(date, blessed, cand=None, prod=None, alert="ok", scenario=False, **extra):
    r = {"date": date, "blessed": blessed, "alert": alert, "scenario": scenario, **extra}
    if cand is not None:
        r["candidate_truth"] = cand
    if prod is not None:
        r["production_truth"] = prod
    return r


def cost(samples: int, seconds: float, full_samples: int, full_seconds: float) -> dict:
    return {
        "train_samples": samples,
        "train_seconds": seconds,
        "full_retrain_samples": full_samples,
        "full_retrain_seconds": full_seconds,
    }


def test_judge_counts_worse_blessings_wrong_rejections_and_the_scenario():
    rows = [
        row("2026-11-04", True, cand=truth(0.70)),  # first deployment: nothing to compare with
        row("2026-11-05", True, cand=truth(0.71), prod=truth(0.70)),
        row("2026-11-06", True, cand=truth(0.69), prod=truth(0.71)),  # worse by 0.02, blessed
        # no worse, rejected
        row(
            "2026-11-07", False, cand=truth(0.712), prod=truth(0.71), alert="warn", **cost(300, 3.0, 600, 5.0)
        ),
        row("2026-11-08", True, cand=truth(0.72, ll=0.0103), prod=truth(0.715)),  # log loss +3%
        row(
            "2026-11-09",
            False,
            cand=truth(0.72),
            prod=truth(0.72),
            alert="alert",
            scenario=True,
            frozen_truth=truth(0.70),
            full_retrain_truth=truth(0.725),
            **cost(300, 2.0, 900, 7.0),
        ),
    ]
    t = daily_loop.judge(rows, dt.date(2026, 11, 9), tol_auc=0.005, tol_ll=0.01)
    assert t["blessed_worse"] == ["2026-11-06", "2026-11-08"] and not t["blessed_worse_ok"]
    assert t["no_worse_candidates"] == 3 and t["rejected_no_worse"] == ["2026-11-07", "2026-11-09"]
    assert t["rejected_no_worse_ok"] is False
    assert t["rejected_no_worse_clean_share"] == 0.5  # 11-09 is the scenario's: 11-07 of 11-05, 11-07
    assert t["scenario_day_rejected_or_alerted"] is True and t["alerts_before_scenario"] == []
    assert t["warnings_before_scenario"] == ["2026-11-07"]
    assert t["training_cost"] == {
        "days": 2,
        "loop_samples": 600,
        "full_retrain_samples": 1500,
        "loop_seconds": 5.0,
        "full_retrain_seconds": 12.0,
        "samples_ratio": 0.4,
    }
    assert t["final_ctcvr_eauc"] == {
        "date": "2026-11-09",
        "production": 0.72,
        "frozen": 0.70,
        "full_retrain": 0.725,
        "deployed_after": 0.72,  # the last candidate was rejected: production stays
    }
    assert t["final_above_frozen"] is True and t["final_within_0_01_of_full_retrain"] is True
    rows[-1] = {**rows[-1], "blessed": True, "candidate_truth": truth(0.74)}
    t = daily_loop.judge(rows, dt.date(2026, 11, 9), 0.005, 0.01)
    assert t["final_ctcvr_eauc"]["deployed_after"] == 0.74
    assert t["deployed_after_above_frozen"] is True and t["deployed_after_within_0_01_of_full_retrain"]


def test_judge_reads_the_served_calibration_against_the_truth_on_clean_days_only():
    def cal(cvr: float) -> dict:
        return {**truth(0.7), "ctr_ratio": 1.0, "cvr_ratio": cvr, "ctcvr_ratio": cvr}

    rows = [
        row("2026-11-05", True, cand=cal(1.0), prod=cal(0.93)),
        row("2026-11-06", True, cand=cal(1.0), prod=cal(1.08)),
        row("2026-11-07", True, cand=cal(1.0), prod=cal(1.6), scenario=True),  # the scenario's own
    ]
    t = daily_loop.judge(rows, dt.date(2026, 11, 7), 0.005, 0.01)
    assert t["served_calibration_vs_truth"]["cvr"] == {"min": 0.93, "max": 1.08}
    assert t["served_calibration_vs_truth"]["ctr"] == {"min": 1.0, "max": 1.0}
    assert "| 1.080 |" in daily_loop.markdown(
        [
            {
                **r,
                "observed": {"production": None, "candidate": None},
                "train": "warm",
                "train_days": 7,
                "validation": True,
            }
            for r in rows
        ],
        t,
    )


def test_the_command_is_registered():
    out = subprocess.run(
        [sys.executable, "-m", "taml.cli", "bench", "daily", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "--scenario-day" in out.stdout


def test_days_are_scored_against_the_truth_for_every_model(tmp_path):
    """Real train/evaluate/deploy steps on synthetic days with truth files; then the bench's scoring."""
    from tiny_history import run_history

    days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(4)]
    cfg, data, artifacts = run_history(
        tmp_path, days, rows=3000, cardinality=25, seed=300, world_seed=4, with_truth=True
    )

    rows = daily_loop.evaluate_days(cfg, data, artifacts, days, scenario_day=days[3])

    def trained(new_days: list[dt.date]) -> int:  # a fit's new rows less the re-centring holdout
        click = np.concatenate([read_table(data, [d])["click"].to_numpy() for d in new_days])
        held = holdout_rows(np.arange(click.size), cfg.train, click)
        return click.size - (0 if held is None else held.size)

    assert [r["date"] for r in rows] == [d.isoformat() for d in days]
    assert "candidate_truth" not in rows[0] and rows[1]["train"] == "cold"
    assert rows[1]["blessed"], rows[1]["failed_rules"]
    for r in rows[1:]:
        assert 0.5 < r["candidate_truth"]["ctcvr_eauc"] < 1 and r["full_retrain_days"] >= 1
        assert r["full_retrain_samples"] == trained(days[: r["full_retrain_days"]]) * cfg.train.epochs
        assert r["train_samples"] > 0 and r["train_seconds"] > 0
        # a cold start trains epochs over its window; a warm update warm_epochs over its new day
        # (production moves daily here) and a warm_replay_share sample of the older ones
        if r["train"] == "cold":
            assert r["train_samples"] == trained(days[: r["train_days"]]) * cfg.train.epochs
        else:
            old = 3000 * (r["train_days"] - 1)
            share = cfg.train.warm_replay_share
            day = dt.date.fromisoformat(r["date"])
            replayed = r["train_samples"] / cfg.train.warm_epochs - trained([day - dt.timedelta(days=1)])
            assert abs(replayed - share * old) < 4 * (share * (1 - share) * old) ** 0.5
    later = rows[2:]
    assert all("production_truth" in r and "frozen_truth" in r for r in later)
    assert later[0]["frozen"] == rows[1]["candidate"]
    # A full retrain on day 1 alone is a cold start on the same day as day 2's candidate.
    assert rows[1]["full_retrain_truth"]["ctcvr_eauc"] == rows[1]["candidate_truth"]["ctcvr_eauc"]
    targets = daily_loop.judge(rows, days[3], 0.005, 0.01)
    assert targets["final_ctcvr_eauc"]["date"] == days[3].isoformat()
    png = tmp_path / "curves.png"
    daily_loop.plot(rows, days[3], str(png))
    assert png.stat().st_size > 10_000
    assert "| 2026-11-04 * |" in daily_loop.markdown(rows, targets)

    # the calibration gap of each published version: the same ratio the bench scored, split by
    # whether the row's id has its own embedding row
    import tempfile

    from model import load_model_version
    from taml.core import registry

    day = next(r for r in rows[1:] if r["blessed"])
    with tempfile.TemporaryDirectory() as tmp:
        local = registry.download_version(
            artifacts, cfg.pipeline.model_name, day["candidate"], Path(tmp) / "v"
        )
        gap = calibration_gap.version_rows(
            data, load_model_version(local), 2, id_column="f0", history_column=None
        )
    first = gap[1]  # the candidate's evaluation day, one after its last training day
    assert first["day"] == day["date"] and first["days_after_training"] == 1
    assert first["all"]["cvr"] == pytest.approx(day["candidate_truth"]["cvr_ratio"], rel=1e-6)
    parts = first["item_in_vocabulary"]["share"] + first["item_out_of_vocabulary"]["share"]
    assert parts == pytest.approx(1.0) and "item_without_history" not in first
    assert "| 1 |" in calibration_gap.markdown(gap)


def test_score_only_follows_the_days_a_run_has_finished(tmp_path):
    """--score-only scores a day once its run log is in place and stops at the run's last day."""
    import json

    from taml.core import layout

    artifacts = str(tmp_path / "artifacts")
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(3)]
    for day in days[:2]:
        folder = Path(layout.run_dir(artifacts, "runs", day))
        folder.mkdir(parents=True)
        (folder / "kfp-local.log").write_text("done\n")
    run = daily_loop.FollowedRun(tmp_path, artifacts, wait_seconds=0)
    assert run.wait(days[0]) and run.wait(days[1])
    assert not run.wait(days[2])  # not run, and no more waiting allowed
    assert [d["date"] for d in run.summary()["days"]] == ["2026-11-01", "2026-11-02"]
    finished = {
        "simulate_seconds": 1.0,
        "pipeline_seconds": 9.0,
        "days": [{"date": "2026-11-01", "seconds": 4.0}],
    }
    (tmp_path / daily_loop.PIPELINE_JSON).write_text(json.dumps(finished))
    waiting = daily_loop.FollowedRun(tmp_path, artifacts, wait_seconds=3600)
    assert not waiting.wait(days[2])  # the finished run's record says it never ran: no wait
    assert waiting.summary() == finished

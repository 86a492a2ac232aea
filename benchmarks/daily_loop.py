"""The daily loop, judged against the truth: does the pipeline ship better models and stop worse ones?

A simulated history (truth files on) with a scenario on one late day runs through the real
pipeline (``pipelines.local.run_day``, the same child-process kfp.local run as ``taml backfill``).
Then every day D is scored against the simulator's true probabilities (closed-form expected AUC
and expected log loss, ``model.expected_auc``) for: the production model that served D, the
candidate trained for D, a model frozen after its first deployment, and a full retrain on every
validated day before D. Beside them: observed AUCs, the gate's verdict, the monitor's status.

    taml bench daily [--days 14] [--impressions 30000] [--scenario calibration_break] \\
        [--scenario-day 11] [--work bench-out/daily] [--out bench-out/daily_loop.json]

Writes the JSON (per day and the targets), a PNG of the per-day curves, and prints Markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.common.records import read_records  # noqa: E402
from components.common.tables import read_table  # noqa: E402
from components.train.run import day_status, warm_update_config  # noqa: E402
from pipelines.local import format_summary, run_day  # noqa: E402
from simulator import simulate  # noqa: E402
from simulator.density import size_world  # noqa: E402
from taml.core import layout, registry, storage  # noqa: E402
from taml.core.config import load_config  # noqa: E402

START = dt.date(2026, 11, 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=14, help="days run through the pipeline (default 14)")
    p.add_argument("--impressions", type=int, default=30_000, help="impressions per day (default 30000)")
    p.add_argument("--density", default="demo", help="simulator density preset (default demo)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--scenario",
        default="calibration_break",
        choices=["clean", "calibration_break", "new_item_flood", "ctr_shift"],
    )
    p.add_argument(
        "--scenario-day", type=int, default=11, help="0-based index of the scenario's first day (default 11)"
    )
    p.add_argument("--tolerance-auc", type=float, default=0.005, help="expected AUC tolerance of 'worse'")
    p.add_argument(
        "--tolerance-logloss",
        type=float,
        default=0.01,
        help="relative expected log loss tolerance of 'worse' (default 1%%)",
    )
    p.add_argument("--work", default="bench-out/daily", help="data and artifacts (made anew)")
    p.add_argument("--out", default="bench-out/daily_loop.json", help="JSON result")
    p.add_argument("--png", default="bench-out/daily_loop.png", help="per-day curves")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    p.add_argument(
        "--score-only",
        action="store_true",
        help="score the run of this benchmark in --work (same arguments; finished, or still going: "
        "each day is scored once it has run) instead of simulating and running the pipeline",
    )
    p.add_argument(
        "--wait-minutes",
        type=float,
        default=30,
        help="--score-only: stop when the next day has not finished within this many minutes",
    )
    return p.parse_args(argv)


# --------------------------------------------------------------------------------------------
# Scoring against the truth


PREDICTIONS = ("p_ctr", "p_cvr", "p_ctcvr")  # the score() columns, in truth_figures order


def truth_of(data_root: str, day: dt.date, table: pd.DataFrame) -> pd.DataFrame:
    truth = pd.read_parquet(layout.truth_dir(data_root, day))
    merged = table[["impression_id"]].merge(truth, on="impression_id", how="left", validate="1:1")
    if merged.p_click.isna().any():
        raise SystemExit(f"{day}: {int(merged.p_click.isna().sum())} samples have no truth row")
    return merged


def vs_truth(model, table: pd.DataFrame, truth: pd.DataFrame, batch: int) -> dict[str, float]:
    from model import score
    from model.expected_auc import truth_figures

    pred = score(model, table, batch_size=batch)
    return truth_figures(
        truth.p_click.to_numpy(), truth.p_conv.to_numpy(), *(pred[c].to_numpy() for c in PREDICTIONS)
    )


class Models:
    """Registry versions and candidate folders, loaded once each."""

    def __init__(self, artifact_root: str, name: str, tmp: Path):
        self.root, self.name, self.tmp, self.cache = artifact_root, name, tmp, {}

    def version(self, version: str):
        from model import load_model_version

        if version not in self.cache:
            local = registry.download_version(self.root, self.name, version, self.tmp / version)
            self.cache[version] = load_model_version(local)
        return self.cache[version]

    def folder(self, path: str):
        from model import load_model_version

        key = f"dir:{path}"
        if key not in self.cache:
            self.cache[key] = load_model_version(path)
        return self.cache[key]


def full_retrain(config, data_root: str, artifact_root: str, day: dt.date, first: dt.date):
    """A cold start on every validated day from ``first`` to D−1 (what a nightly full retrain gives).

    Returns (FitResult or None, the days used, the seconds the fit took).
    """
    from model import fit

    days = [
        first + dt.timedelta(days=i)
        for i in range((day - first).days)
        if day_status(config, data_root, artifact_root, first + dt.timedelta(days=i)).usable
    ]
    if len(days) < config.pipeline.cold_start_days:
        return None, days, 0.0
    frames = [read_table(data_root, [d]) for d in days]
    row_days = np.repeat([d.isoformat() for d in days], [len(f) for f in frames])
    table = pd.concat(frames, ignore_index=True)
    t0 = time.perf_counter()
    result = fit(table, config.feature_spec, config.model, config.train, row_days=row_days)
    return result, days, time.perf_counter() - t0


def as_loaded(result, name: str):
    """A FitResult as a loaded version (what ``model.score`` takes)."""
    from model import LoadedModel, VersionMetadata

    result.model.eval()
    return LoadedModel(result.model, result.config, result.spec, result.vocab, VersionMetadata(version=name))


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.work)
    data, artifacts = str(work / "data"), str(work / "artifacts")
    overrides = ["train.progress=false", *args.overrides]
    config = load_config(
        env={}, overrides=[*overrides, f"paths.data_root={data}", f"paths.artifact_root={artifacts}"]
    )
    days = [START + dt.timedelta(days=i) for i in range(args.days)]
    scenario_day = days[args.scenario_day] if args.scenario != "clean" else None
    sim_cfg = config.simulator.model_copy(update={"density": args.density})
    world = size_world(sim_cfg, args.impressions)
    pipeline: Pipeline | FollowedRun
    if args.score_only:
        pipeline = FollowedRun(work, artifacts, args.wait_minutes * 60)
    else:
        shutil.rmtree(work, ignore_errors=True)
        pipeline = Pipeline(config, work, simulate_history(args, data, scenario_day, sim_cfg))
        # the pipeline runs day after day in child processes while this process scores the
        # days already finished (scoring day D needs only D's run and the tables before D)
        pipeline.start(days)

    t0 = time.perf_counter()
    rows = evaluate_days(config, data, artifacts, days, scenario_day, ready=pipeline.wait)
    summary = pipeline.summary()
    seconds = {d["date"]: d["seconds"] for d in summary["days"]}
    for row in rows:
        row["pipeline_seconds"] = seconds.get(row["date"])
    targets = judge(rows, scenario_day, args.tolerance_auc, args.tolerance_logloss)
    result = {
        "args": vars(args),
        "world": {
            "users": world.users,
            "base_items": world.base_items,
            "new_items_per_day": world.new_items_per_day,
            "target_ctr": world.target_ctr,
            "target_cvr": world.target_cvr,
        },
        "seconds": {
            "simulate": summary["simulate_seconds"],
            "pipeline": summary["pipeline_seconds"],
            "pipeline_and_scoring": round(time.perf_counter() - t0, 1),
        },
        "load_average": list(os.getloadavg()),
        "days": rows,
        "targets": targets,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    plot(rows, scenario_day, args.png)
    print(markdown(rows, targets))
    print(f"wrote {args.out} and {args.png}")
    return 0


PIPELINE_JSON = "pipeline.json"  # in --work: each day's pipeline seconds, for --score-only


def simulate_history(args, data: str, scenario_day, sim_cfg) -> float:
    """Simulate the history (one day more than the pipeline runs: D's labels need D+1); returns seconds."""
    t0 = time.perf_counter()
    world = simulate(
        data,
        START,
        args.days + 1,
        args.impressions,
        args.seed,
        scenario=args.scenario,
        scenario_day=scenario_day,
        config=sim_cfg,
    ).world
    seconds = time.perf_counter() - t0
    print(
        f"simulated {args.days + 1} days x {args.impressions:,} impressions ({world.users:,} users, "
        f"{world.base_items:,} items) in {seconds:.0f} s; scenario {args.scenario} from {scenario_day}",
        flush=True,
    )
    return seconds


class Pipeline:
    """Runs every day through the pipeline on a thread (run_day waits on a child process), stopping
    at the first failed day; ``wait(day)`` blocks until that day has run."""

    def __init__(self, config, work: Path, simulate_seconds: float):
        self.config, self.work, self.simulate_seconds = config, work, simulate_seconds
        self.runs: list = []
        self.finished = False
        self.seconds = 0.0
        self.cond = threading.Condition()

    def start(self, days: list[dt.date]) -> None:
        self.thread = threading.Thread(target=self._run, args=(days,), daemon=True)
        self.thread.start()

    def _run(self, days: list[dt.date]) -> None:
        t0 = time.perf_counter()
        try:
            for day in days:
                run = run_day(self.config, day)
                rec = run.records
                print(
                    f"  {day}: {'ok' if run.ok else 'FAILED'} {run.seconds:.0f} s, train "
                    f"{(rec.get('train') or {}).get('mode', '-')}, "
                    f"blessed {(rec.get('evaluate') or {}).get('blessed')}",
                    flush=True,
                )
                with self.cond:
                    self.runs.append(run)
                    self.cond.notify_all()
                if not run.ok:
                    break
        finally:
            with self.cond:
                self.finished, self.seconds = True, time.perf_counter() - t0
                self.cond.notify_all()

    def wait(self, day: dt.date) -> bool:
        with self.cond:
            self.cond.wait_for(lambda: self.finished or any(r.date == day for r in self.runs))
            return any(r.date == day for r in self.runs)

    def summary(self) -> dict:
        self.thread.join()
        print(format_summary(self.runs, self.config.paths.artifact_root))
        out = {
            "simulate_seconds": round(self.simulate_seconds, 1),
            "pipeline_seconds": round(self.seconds, 1),
            "days": [
                {"date": r.date.isoformat(), "ok": r.ok, "seconds": round(r.seconds, 1)} for r in self.runs
            ],
        }
        (self.work / PIPELINE_JSON).write_text(json.dumps(out, indent=2) + "\n")
        return out


class FollowedRun:
    """A run of this benchmark in --work, finished or still going (--score-only): a day is done
    once run_day has copied the child's log into the day's run folder."""

    POLL_SECONDS = 15  # a day takes minutes; a check every 15 s costs nothing

    def __init__(self, work: Path, artifacts: str, wait_seconds: float):
        self.work, self.artifacts, self.wait_seconds = work, artifacts, wait_seconds
        self.done: list[dt.date] = []

    def _finished(self) -> dict | None:
        path = self.work / PIPELINE_JSON
        return json.loads(path.read_text()) if path.exists() else None

    def wait(self, day: dt.date) -> bool:
        log = storage.join(layout.run_dir(self.artifacts, "runs", day), "kfp-local.log")
        deadline = time.monotonic() + self.wait_seconds
        while not storage.exists(log):
            finished = self._finished()
            if finished is not None or time.monotonic() > deadline:
                return finished is not None and day.isoformat() in {d["date"] for d in finished["days"]}
            time.sleep(self.POLL_SECONDS)
        self.done.append(day)
        return True

    def summary(self) -> dict:
        return self._finished() or {
            "simulate_seconds": None,
            "pipeline_seconds": None,
            "days": [{"date": d.isoformat(), "ok": True, "seconds": None} for d in self.done],
        }


def evaluate_days(
    config, data: str, artifacts: str, days: list[dt.date], scenario_day, ready=lambda day: True
) -> list[dict]:
    """Each day's row; ``ready(day)`` blocks until the pipeline has run the day (False: it never will)."""
    name, batch = config.pipeline.model_name, config.train.eval_batch_size
    rows, frozen_version, first = [], None, days[0]
    with tempfile.TemporaryDirectory(prefix="taml-bench-daily-") as tmp:
        models = Models(artifacts, name, Path(tmp))
        for day in days:
            if not ready(day):
                break
            rec = read_records(artifacts, day)
            tr, ev, dep, mon, val = (
                rec.get(k) or {} for k in ("train", "evaluate", "deploy", "monitor", "validate")
            )
            # a warm update trains train.warm_epochs, a cold start train.epochs (components.train)
            epochs = (warm_update_config(config) if tr.get("mode") == "warm" else config).train.epochs
            row = {
                "date": day.isoformat(),
                "scenario": scenario_day is not None and day >= scenario_day,
                "validation": val.get("passed"),
                "train": tr.get("mode") if tr.get("trained") else "-",
                "train_days": len(tr.get("days") or []),
                # training cost: rows passed through the model (window rows x epochs) and seconds
                "train_samples": tr.get("trained_rows", tr.get("samples", 0)) * epochs
                if tr.get("trained")
                else 0,
                "train_seconds": (
                    round(tr.get("trained_rows", tr["samples"]) * epochs / tr["samples_per_s"], 3)
                    if tr.get("trained") and tr.get("samples_per_s")
                    else 0.0
                ),
                "blessed": bool(ev.get("blessed")),
                "failed_rules": ev.get("failed_rules", []),
                "deciding_rule": ev.get("deciding_rule"),
                "gate_reason": ev.get("reason"),
                "min_conversions": ev.get("min_conversions"),
                "alert": mon.get("status"),
                "alert_reason": mon.get("problems") or mon.get("reason"),
                "production": ev.get("production"),
                "candidate": ev.get("candidate"),
                "observed": {
                    "production": ev.get("production_metrics"),
                    "candidate": ev.get("candidate_metrics"),
                },
            }
            if not val.get("passed"):
                rows.append(row)
                continue
            table = read_table(data, [day])
            truth = truth_of(data, day, table)
            if ev.get("production"):
                row["production_truth"] = vs_truth(models.version(ev["production"]), table, truth, batch)
            if tr.get("trained") and tr.get("model_dir") and Path(tr["model_dir"]).exists():
                row["candidate_truth"] = vs_truth(models.folder(tr["model_dir"]), table, truth, batch)
            if frozen_version is not None:
                row["frozen"] = frozen_version
                row["frozen_truth"] = vs_truth(models.version(frozen_version), table, truth, batch)
            fitted, used, seconds = full_retrain(config, data, artifacts, day, first)
            if fitted is not None:
                row["full_retrain_days"] = len(used)
                row["full_retrain_samples"] = fitted.result.samples
                row["full_retrain_seconds"] = round(seconds, 1)
                row["full_retrain_truth"] = vs_truth(as_loaded(fitted, "full-retrain"), table, truth, batch)
            if dep.get("version") and frozen_version is None:
                frozen_version = dep["version"]
            rows.append(row)
            print(f"  scored {day} against the truth", flush=True)
    return rows


def judge(rows: list[dict], scenario_day, tol_auc: float, tol_ll: float) -> dict:
    """The targets of the issue, measured."""

    def worse(c: dict, p: dict) -> bool:
        return c["ctcvr_eauc"] < p["ctcvr_eauc"] - tol_auc or c["ctcvr_elogloss"] > p["ctcvr_elogloss"] * (
            1 + tol_ll
        )

    judged = [r for r in rows if "candidate_truth" in r and "production_truth" in r]
    blessed_worse = [
        r["date"] for r in judged if r["blessed"] and worse(r["candidate_truth"], r["production_truth"])
    ]
    no_worse = [r for r in judged if not worse(r["candidate_truth"], r["production_truth"])]
    rejected_no_worse = [r["date"] for r in no_worse if not r["blessed"]]
    scen = [r for r in rows if scenario_day is not None and r["date"] == scenario_day.isoformat()]
    scenario_caught = (
        None if not scen else bool(not scen[0]["blessed"] or scen[0]["alert"] in ("warn", "alert"))
    )
    clean_alerts = [r["date"] for r in rows if not r["scenario"] and r["alert"] == "alert"]
    clean_warnings = [r["date"] for r in rows if not r["scenario"] and r["alert"] == "warn"]
    # training cost of the daily loop (its candidates' windows) against a nightly full retrain,
    # over the days the full retrain exists (it needs cold_start_days first)
    costed = [r for r in rows if r.get("full_retrain_samples")]
    cost = {
        "days": len(costed),
        "loop_samples": sum(r.get("train_samples", 0) for r in costed),
        "full_retrain_samples": sum(r["full_retrain_samples"] for r in costed),
        "loop_seconds": round(sum(r.get("train_seconds", 0.0) for r in costed), 1),
        "full_retrain_seconds": round(sum(r.get("full_retrain_seconds", 0.0) for r in costed), 1),
    }
    cost["samples_ratio"] = (
        cost["loop_samples"] / cost["full_retrain_samples"] if cost["full_retrain_samples"] else None
    )
    last = next((r for r in reversed(rows) if "production_truth" in r), None)
    final = {}
    if last is not None:
        final = {
            "date": last["date"],
            "production": last["production_truth"]["ctcvr_eauc"],
            "frozen": (last.get("frozen_truth") or {}).get("ctcvr_eauc"),
            "full_retrain": (last.get("full_retrain_truth") or {}).get("ctcvr_eauc"),
            # what the loop hands to the next day: the last candidate when it was blessed
            "deployed_after": (
                last["candidate_truth"]["ctcvr_eauc"]
                if last["blessed"] and "candidate_truth" in last
                else last["production_truth"]["ctcvr_eauc"]
            ),
        }
    # calibration in the large against the truth of what was served on the clean days: the
    # monitor's alerts read the same ratio against the sampled labels
    served = [r["production_truth"] for r in rows if not r["scenario"] and "production_truth" in r]
    calibration = {
        task: {
            "min": min(t[f"{task}_ratio"] for t in served),
            "max": max(t[f"{task}_ratio"] for t in served),
        }
        for task in ("ctr", "cvr", "ctcvr")
        if served and all(f"{task}_ratio" in t for t in served)
    }
    return {
        "blessed_worse": blessed_worse,
        "blessed_worse_ok": not blessed_worse,
        "no_worse_candidates": len(no_worse),
        "rejected_no_worse": rejected_no_worse,
        "rejected_no_worse_share": len(rejected_no_worse) / len(no_worse) if no_worse else None,
        "rejected_no_worse_ok": (len(rejected_no_worse) <= 0.1 * len(no_worse)) if no_worse else None,
        # the same over the clean days: on a scenario day the gate's labels are the broken ones,
        # and rejecting there is what the scenario target asks for
        "rejected_no_worse_clean_share": _share(
            [r for r in no_worse if not r["scenario"] and not r["blessed"]],
            [r for r in no_worse if not r["scenario"]],
        ),
        "scenario_day_rejected_or_alerted": scenario_caught,
        "alerts_before_scenario": clean_alerts,
        "warnings_before_scenario": clean_warnings,
        "served_calibration_vs_truth": calibration,
        "training_cost": cost,
        "final_ctcvr_eauc": final,
        "final_above_frozen": _gt(final.get("production"), final.get("frozen")),
        "final_within_0_01_of_full_retrain": (
            None
            if final.get("full_retrain") is None
            else bool(final["production"] >= final["full_retrain"] - 0.01)
        ),
        "deployed_after_above_frozen": _gt(final.get("deployed_after"), final.get("frozen")),
        "deployed_after_within_0_01_of_full_retrain": (
            None
            if final.get("full_retrain") is None
            else bool(final["deployed_after"] >= final["full_retrain"] - 0.01)
        ),
    }


def _share(part: list, whole: list) -> float | None:
    return len(part) / len(whole) if whole else None


def _gt(a, b):
    return None if a is None or b is None else bool(a > b)


def _f(x, d: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def markdown(rows: list[dict], targets: dict) -> str:
    lines = [
        "| day | train | verdict | monitor | prod eAUC | cand eAUC | frozen eAUC | full eAUC | prod obs AUC "
        "| cand obs AUC | prod CVR ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:

        def g(k: str, r: dict = r) -> float | None:
            return (r.get(k) or {}).get("ctcvr_eauc")

        obs = r["observed"]
        verdict = "blessed" if r["blessed"] else ("rejected" if r.get("candidate") else "-")
        if r.get("candidate") and not r["blessed"] and r.get("failed_rules"):
            verdict += f" ({', '.join(r['failed_rules'])})"
        if r["validation"] is False:
            verdict = "validation failed"
        lines.append(
            f"| {r['date']}{' *' if r['scenario'] else ''} | {r['train']} ({r['train_days']} d) | {verdict} | "
            f"{r['alert']} | {_f(g('production_truth'))} | {_f(g('candidate_truth'))} | {_f(g('frozen_truth'))} | "
            f"{_f(g('full_retrain_truth'))} | {_f((obs['production'] or {}).get('ctcvr_auc'))} | "
            f"{_f((obs['candidate'] or {}).get('ctcvr_auc'))} | "
            f"{_f((r.get('production_truth') or {}).get('cvr_ratio'), 3)} |"
        )
    lines.append("")
    lines.append(
        "CTCVR expected AUC against the truth (eAUC) and observed AUC; production's CVR calibration "
        "against the truth (Σ pCVR / Σ true p on clicks); * scenario in force."
    )
    lines.append("")
    lines.append("```")
    lines.append(json.dumps(targets, indent=2, default=str))
    lines.append("```")
    return "\n".join(lines)


def _days_axis(ax) -> None:
    import matplotlib.dates as mdates

    ax.xaxis.set_major_locator(mdates.DayLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    ax.tick_params(axis="x", labelrotation=45)


def plot(rows: list[dict], scenario_day, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    dates = [dt.date.fromisoformat(r["date"]) for r in rows]
    for ax, metric, title in (
        (axes[0], "ctcvr_eauc", "CTCVR expected AUC vs truth"),
        (axes[1], "ctr_eauc", "CTR expected AUC vs truth"),
        (axes[2], "ctcvr_elogloss", "CTCVR expected log loss vs truth"),
    ):
        for key, label, style in (
            ("production_truth", "production (served D)", "o-"),
            ("candidate_truth", "candidate", "s"),
            ("frozen_truth", "frozen after 1st deploy", "--"),
            ("full_retrain_truth", "full retrain", ":"),
        ):
            pts = [(d, r[key][metric]) for d, r in zip(dates, rows, strict=True) if key in r]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
        blessed = [
            (d, r["candidate_truth"][metric])
            for d, r in zip(dates, rows, strict=True)
            if r["blessed"] and "candidate_truth" in r
        ]
        if blessed:
            ax.plot(
                [p[0] for p in blessed], [p[1] for p in blessed], "*", ms=12, color="green", label="blessed"
            )
        if scenario_day is not None:
            ax.axvline(scenario_day, color="red", ls="--", lw=1, label="scenario day")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        _days_axis(ax)
    axes[0].legend(fontsize=7, loc="lower right")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

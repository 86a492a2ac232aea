"""Run ``taml-daily`` on this machine through ``kfp.local`` and summarise each day.

Every day runs in a child process whose (very chatty) KFP output goes to
``{artifact_root}/runs/dt=D/kfp-local.log``; the summary is built from the run records the steps
write, so it reads the same whether the steps ran here or on a cluster.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from components.common.records import clear_records, read_records
from pipelines.runtime import config_parameter, read_config_parameter
from taml.core import layout, storage
from taml.core.config import Config


@dataclass
class DayRun:
    date: dt.date
    ok: bool
    seconds: float
    log: str
    records: dict = field(default_factory=dict)
    error: str = ""


def pipeline_root(artifact_root: str) -> str:
    # kfp.local writes only to local folders (a gs:// root becomes a folder named "gs:").
    if storage.is_gcs(artifact_root):
        return str(Path(tempfile.gettempdir()) / "taml-kfp-local")
    return str(Path(artifact_root, "kfp-local").absolute())


def run_day(config: Config, date: dt.date) -> DayRun:
    """Run the whole pipeline for ``date`` with ``config`` in a child process; never raises for a failed run.

    ``config`` is the configuration the caller resolved (profile, files, environment, ``--set``):
    the child passes it to every task as the ``config`` parameter, unchanged.
    """
    import time

    artifact_root = config.paths.artifact_root
    clear_records(artifact_root, date)
    log_dir = Path(tempfile.mkdtemp(prefix="taml-run-"))
    log_path = log_dir / "kfp-local.log"
    args_path = log_dir / "run.json"
    args_path.write_text(json.dumps(child_arguments(config, date)))
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        code = subprocess.call(
            [sys.executable, "-m", "pipelines.local", str(args_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    seconds = time.perf_counter() - t0
    final_log = storage.join(layout.run_dir(artifact_root, "runs", date), "kfp-local.log")
    storage.write_bytes(final_log, log_path.read_bytes())
    error = "" if code == 0 else _error_lines(log_path.read_text(errors="replace"))
    return DayRun(date, code == 0, seconds, final_log, read_records(artifact_root, date), error)


def child_arguments(config: Config, date: dt.date) -> dict:
    """What the child process needs: the pipeline's arguments and where kfp.local keeps its files."""
    return {
        "arguments": {"date": date.isoformat(), "config": config_parameter(config)},
        "pipeline_root": pipeline_root(config.paths.artifact_root),
    }


def _error_lines(text: str, limit: int = 12) -> str:
    keep = [line for line in text.splitlines() if "Error" in line or "error:" in line or "FAILURE" in line]
    return "\n".join((keep or text.splitlines())[-limit:])


def _child(args: dict) -> int:
    """The child process: one kfp.local pipeline run."""
    from kfp import local

    from pipelines.taml_daily import build_pipeline

    arguments = args["arguments"]
    config = read_config_parameter(arguments["config"])
    Path(args["pipeline_root"]).mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=args["pipeline_root"])
    build_pipeline(config)(**arguments)
    return 0


# --------------------------------------------------------------------------------------------
# The summary table


def _fmt(x, digits: int = 4) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def gate_verdict(evaluate: dict) -> str:
    """The gate column: the verdict and the rule that decided it, with its value and interval.

    e.g. ``rejected: no_regression:ctcvr_auc -0.012 [-0.020,-0.004]``. Records written before the
    evaluate step named its deciding rule show the failed rules instead.
    """
    word = "blessed" if evaluate.get("blessed") else "rejected"
    rule = evaluate.get("deciding_rule")
    if isinstance(rule, dict) and rule.get("rule"):
        text = f"{word}: {rule['rule']}" + (f":{rule['metric']}" if rule.get("metric") else "")
        value, low, high = rule.get("value"), rule.get("low"), rule.get("high")
        if isinstance(value, int | float) and value == value:
            text += f" {value:+.3f}"
        if isinstance(low, int | float) and isinstance(high, int | float):
            text += f" [{low:.3f},{high:.3f}]"
        return text
    if evaluate.get("blessed"):
        return word
    return f"{word}: " + ", ".join(evaluate.get("failed_rules", [])[:3])


#: How the training plan's reason starts its list of the days it left out (components/train/policy.py).
LEFT_OUT = "; left out:"


def not_trained(train: dict) -> str:
    """The gate column of a day that trained nothing: the plan's reason, in one line.

    The plan names every day it left out and why (the run record keeps that list); at the start
    of a history those are the days before it, which would fill the table with dates. The table
    counts them instead.
    """
    reason = str(train.get("reason", ""))
    excluded = train.get("excluded") or {}
    if excluded and LEFT_OUT in reason:
        reason = f"{reason.split(LEFT_OUT)[0]} ({len(excluded)} day(s) left out: see train.json)"
    return f"not trained: {reason}"


def summary_rows(runs: list[DayRun]) -> list[dict[str, str]]:
    rows = []
    for run in runs:
        r = run.records
        ing, val, tr = r.get("ingest", {}), r.get("validate", {}), r.get("train", {})
        ev, dep, mon = r.get("evaluate", {}), r.get("deploy", {}), r.get("monitor", {})
        cand, prod = ev.get("candidate_metrics") or {}, ev.get("production_metrics") or {}
        if not run.ok:
            verdict = "run failed"
        elif val and not val.get("passed", True):
            verdict = "validation failed: " + ", ".join(val.get("failed", [])[:3])
        elif tr and not tr.get("trained"):
            verdict = not_trained(tr)
        elif ev:
            verdict = gate_verdict(ev)
        else:
            verdict = "-"
        rows.append(
            {
                "date": run.date.isoformat(),
                "samples": str(ing.get("samples", "-")),
                "dead": str(ing.get("dead_letters", "-")),
                "train": tr.get("mode", "-") if tr.get("trained") else "-",
                "cand ctr/cvr/ctcvr": "/".join(
                    _fmt(cand.get(k), 3) for k in ("ctr_auc", "cvr_auc", "ctcvr_auc")
                )
                if cand
                else "-",
                "prod ctr/cvr/ctcvr": "/".join(
                    _fmt(prod.get(k), 3) for k in ("ctr_auc", "cvr_auc", "ctcvr_auc")
                )
                if prod
                else "-",
                "gate": verdict,
                "deployed": dep.get("version", "-") if dep.get("promoted") or dep.get("version") else "-",
                "drift": mon.get("status", "-"),
                "secs": f"{run.seconds:.0f}",
            }
        )
    return rows


def format_summary(runs: list[DayRun], artifact_root: str) -> str:
    rows = summary_rows(runs)
    if not rows:
        return "no days ran"
    cols = list(rows[0])
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(width[c]) for c in cols), "  ".join("-" * width[c] for c in cols)]
    lines += ["  ".join(r[c].ljust(width[c]) for c in cols) for r in rows]
    lines.append(f"artifacts: {artifact_root} (run records and logs in runs/dt=D/, reports per step)")
    for run in runs:
        if not run.ok:
            lines.append(f"{run.date}: the run failed; log {run.log}\n{run.error}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(_child(json.loads(Path(sys.argv[1]).read_text())))

"""The run report: one HTML page across the days of a backfill (or ``make run``).

Built only from what the steps already wrote: the run records under ``runs/dt=D/`` (ingest,
validate, train, evaluate, deploy, monitor), the served model's scored predictions of each day
(``predictions/dt=D``) and the links to each day's validation, blessing and drift reports. The
page holds the per-day table, the AUC and calibration curves of the model that served each day
with their intervals (the candidate's point estimates beside them), and every gate verdict with
its failing rules. Images are embedded (base64 PNG), so the page opens offline and travels as
one file.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitoring.calibration import TASKS, task_arrays
from taml.core import layout, storage

REPORT_FILE = "run_report.html"
STEPS = ("ingest", "validate", "features", "train", "evaluate", "deploy", "monitor")


@dataclass
class Estimate:
    value: float
    low: float
    high: float


@dataclass
class DayView:
    date: dt.date
    records: dict[str, dict[str, Any]]
    served_version: str | None = None
    auc: dict[str, Estimate] = field(default_factory=dict)  # of the model that served the day
    calibration: dict[str, Estimate] = field(default_factory=dict)

    def rec(self, step: str) -> dict[str, Any]:
        return self.records.get(step) or {}


def report_uri(artifact_root: str) -> str:
    return storage.join(artifact_root, REPORT_FILE)


def read_day_records(artifact_root: str, day: dt.date) -> dict[str, dict[str, Any]]:
    folder = layout.run_dir(artifact_root, "runs", day)
    out = {}
    for uri in storage.list_files(folder, suffix=".json"):
        rec = storage.read_json(uri)
        if isinstance(rec, dict):
            out[rec.get("step", storage.basename(uri)[:-5])] = rec
    return out


def auc_estimate(y: np.ndarray, p: np.ndarray, confidence: float) -> Estimate | None:
    """AUC with its two-sided DeLong interval at ``confidence`` (None without both classes)."""
    from model.intervals import auc_interval

    if not (y > 0.5).any() or not (y <= 0.5).any():
        return None
    iv = auc_interval(y, p, _one_sided(confidence))
    return Estimate(iv.value, iv.low, iv.high)


def calibration_estimate(y: np.ndarray, p: np.ndarray, confidence: float) -> Estimate | None:
    """mean(prediction) / observed rate, with the exact Poisson interval of the positives' count."""
    from model.intervals import calibration_interval

    if not (y > 0.5).any():
        return None
    iv = calibration_interval(y, p, _one_sided(confidence))
    return Estimate(iv.value, iv.low, iv.high)


def _one_sided(confidence: float) -> float:
    # model.intervals gives one-sided bounds; a two-sided interval at c has each at (1 + c) / 2.
    return (1 + confidence) / 2


def collect(artifact_root: str, days: list[dt.date], confidence: float) -> list[DayView]:
    views = []
    for day in days:
        view = DayView(day, read_day_records(artifact_root, day))
        preds = _read_predictions(artifact_root, day)
        if preds is not None and len(preds):
            view.served_version = str(preds["model_version"].iloc[0]) if "model_version" in preds else None
            for task in TASKS:
                y, p = task_arrays(preds, task)
                a = auc_estimate(y, p, confidence)
                c = calibration_estimate(y, p, confidence)
                if a is not None:
                    view.auc[task] = a
                if c is not None:
                    view.calibration[task] = c
        views.append(view)
    return views


def _read_predictions(artifact_root: str, day: dt.date) -> pd.DataFrame | None:
    import pyarrow.dataset as ds

    uri = layout.predictions_dir(artifact_root, day)
    if not storage.list_files(uri, suffix=".parquet", limit=1):
        return None
    fs, path = storage.pyarrow_filesystem(uri)
    cols = ["click", "conversion", "p_ctr", "p_cvr", "p_ctcvr", "model_version"]
    dataset = ds.dataset(path, filesystem=fs, format="parquet")
    return dataset.to_table(columns=[c for c in cols if c in dataset.schema.names]).to_pandas()


# --------------------------------------------------------------------------------------------
# The table


def _fmt(x: Any, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def verdict(view: DayView) -> str:
    val, tr, ev = view.rec("validate"), view.rec("train"), view.rec("evaluate")
    if val and not val.get("passed", True):
        return "validation failed"
    if tr and not tr.get("trained"):
        return "not trained"
    if ev:
        return "blessed" if ev.get("blessed") else "rejected"
    return "-"


def table_rows(views: list[DayView]) -> list[dict[str, str]]:
    rows = []
    for v in views:
        ing, tr, ev, dep, mon = (v.rec(s) for s in ("ingest", "train", "evaluate", "deploy", "monitor"))
        cand, prod = ev.get("candidate_metrics") or {}, ev.get("production_metrics") or {}
        keys = ("ctr_auc", "cvr_auc", "ctcvr_auc")
        rows.append(
            {
                "date": v.date.isoformat(),
                "samples": str(ing.get("samples", "-")),
                "dead letters": str(ing.get("dead_letters", "-")),
                "validation": "-"
                if not v.rec("validate")
                else ("passed" if v.rec("validate").get("passed") else "FAILED"),
                "train": f"{tr.get('mode')} ({len(tr.get('days', []))} d)" if tr.get("trained") else "-",
                "candidate ctr/cvr/ctcvr AUC": "/".join(_fmt(cand.get(k)) for k in keys) if cand else "-",
                "production ctr/cvr/ctcvr AUC": "/".join(_fmt(prod.get(k)) for k in keys) if prod else "-",
                "gate": verdict(v),
                "deployed": dep.get("version", "-") if dep.get("version") else "-",
                "drift": str(mon.get("status", "-")),
            }
        )
    return rows


# --------------------------------------------------------------------------------------------
# The figures


def _days_axis(ax) -> None:
    import matplotlib.dates as mdates

    ax.xaxis.set_major_locator(mdates.DayLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    ax.tick_params(axis="x", labelrotation=45)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def figures(views: list[DayView], confidence: float) -> dict[str, str]:
    """{name: base64 PNG}: AUC per task and calibration per task, day by day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dates = [v.date for v in views]
    out = {}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharex=True)
    for ax, task in zip(axes, TASKS, strict=True):
        _errorbars(ax, dates, [v.auc.get(task) for v in views], "served model", "C0")
        cand = [(v.rec("evaluate").get("candidate_metrics") or {}).get(f"{task}_auc") for v in views]
        xs = [d for d, c in zip(dates, cand, strict=True) if c is not None and math.isfinite(c)]
        ax.plot(
            xs, [c for c in cand if c is not None and math.isfinite(c)], "s", color="C1", label="candidate"
        )
        ax.set_title(f"{task.upper()} AUC ({confidence:.0%} interval)")
        ax.grid(alpha=0.3)
        _days_axis(ax)
    axes[0].legend(loc="lower left", fontsize=8)
    out["auc"] = _png(fig)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharex=True)
    for ax, task in zip(axes, TASKS, strict=True):
        ax.axhline(1.0, color="grey", lw=1, ls="--")
        _errorbars(ax, dates, [v.calibration.get(task) for v in views], "served model", "C2")
        ax.set_title(f"{task.upper()} calibration: mean p / rate")
        ax.grid(alpha=0.3)
        _days_axis(ax)
    axes[0].legend(loc="upper left", fontsize=8)
    out["calibration"] = _png(fig)
    plt.close(fig)
    return out


def _errorbars(ax, dates, estimates: list[Estimate | None], label: str, color: str) -> None:
    pts = [(d, e) for d, e in zip(dates, estimates, strict=True) if e is not None]
    if not pts:
        ax.text(0.5, 0.5, "no scored day yet", transform=ax.transAxes, ha="center", color="grey")
        return
    xs = [d for d, _ in pts]
    ys = np.array([e.value for _, e in pts])
    err = np.array([[e.value - e.low for _, e in pts], [e.high - e.value for _, e in pts]])
    ax.errorbar(xs, ys, yerr=err, fmt="o-", color=color, capsize=3, label=label)


# --------------------------------------------------------------------------------------------
# The page


def _link(target: str | None, text: str, base_dir: str) -> str:
    if not target:
        return "-"
    href = target if storage.is_gcs(target) else os.path.relpath(target, base_dir)
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def render(views: list[DayView], artifact_root: str, confidence: float, title: str) -> str:
    base = artifact_root if not storage.is_gcs(artifact_root) else ""
    rows = table_rows(views)
    images = figures(views, confidence)
    cols = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        f'<tr class="{_css(r["gate"])}">' + "".join(f"<td>{html.escape(r[c])}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    gate_rows, link_rows = [], []
    for v in views:
        ev, val, mon = v.rec("evaluate"), v.rec("validate"), v.rec("monitor")
        blessing = _read_blessing(ev.get("blessing"))
        rules = blessing.get("rules") or []
        failed = [r for r in rules if r.get("verdict") == "fail"]
        detail = "; ".join(
            html.escape(f"{r.get('rule')}:{r.get('metric')} {r.get('detail', '')}".strip()) for r in failed
        )
        gate_rows.append(
            f"<tr><td>{v.date}</td><td>{html.escape(verdict(v))}</td>"
            f"<td>{html.escape(str(ev.get('candidate') or '-'))}</td>"
            f"<td>{html.escape(str(ev.get('production') or '-'))}</td>"
            f"<td>{html.escape(_deciding(blessing.get('deciding_rule') or ev.get('deciding_rule')))}</td>"
            f"<td>{len(rules) - len(failed)}/{len(rules)}</td>"
            f"<td>{detail or html.escape(str(ev.get('reason', v.rec('train').get('reason', '')))[:300])}</td></tr>"
        )
        link_rows.append(
            f"<tr><td>{v.date}</td><td>{_link(val.get('report'), 'validation', base)}</td>"
            f"<td>{_link(ev.get('blessing'), 'blessing', base)}</td>"
            f"<td>{_link(mon.get('report'), 'drift', base)}</td></tr>"
        )
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: left; }}
th {{ background: #f0f0f0; }}
tr.blessed td {{ background: #eef8ee; }} tr.rejected td {{ background: #fdf0e6; }}
tr.failed td {{ background: #fbe4e4; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(views)} day(s), {views[0].date if views else "-"} to {views[-1].date if views else "-"};
generated {generated} from the run records under <code>{html.escape(artifact_root)}</code>.
Curves: the model that served each day, scored on that day, with {confidence:.0%} intervals
(AUC: DeLong; calibration: exact Poisson count of positives); squares: the day's candidate.</p>
<h2>Days</h2>
<table id="days"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>AUC per day</h2>
<img id="auc" alt="AUC per day" src="data:image/png;base64,{images["auc"]}">
<h2>Calibration per day</h2>
<img id="calibration" alt="calibration per day" src="data:image/png;base64,{images["calibration"]}">
<h2>Gate verdicts</h2>
<table id="gate"><thead><tr><th>date</th><th>verdict</th><th>candidate</th><th>production</th>
<th>deciding rule: value [interval] vs threshold</th><th>rules passed</th><th>failing rules / reason</th></tr></thead><tbody>{"".join(gate_rows)}</tbody></table>
<h2>Reports</h2>
<table id="links"><thead><tr><th>date</th><th>validation</th><th>blessing</th><th>drift</th></tr></thead>
<tbody>{"".join(link_rows)}</tbody></table>
</body></html>
"""


def _deciding(rule: dict[str, Any] | None) -> str:
    if not rule:
        return "-"
    return (
        f"{rule.get('rule')}:{rule.get('metric')} {_fmt(rule.get('value'), 4)} "
        f"[{_fmt(rule.get('low'), 4)}, {_fmt(rule.get('high'), 4)}] vs {_fmt(rule.get('threshold'), 4)}: "
        f"{rule.get('verdict')}"
    )


def _css(gate: str) -> str:
    return {"blessed": "blessed", "rejected": "rejected", "validation failed": "failed"}.get(gate, "")


def _read_blessing(uri: str | None) -> dict[str, Any]:
    if not uri or not storage.exists(uri):
        return {}
    data = storage.read_json(uri)
    return data if isinstance(data, dict) else {}


def write_run_report(
    artifact_root: str, days: list[dt.date], confidence: float, title: str = "TAML daily runs"
) -> str:
    """Build the page for ``days`` and write it to ``{artifact_root}/run_report.html``; returns its URI."""
    views = collect(artifact_root, days, confidence)
    uri = report_uri(artifact_root)
    storage.write_text(uri, render(views, artifact_root, confidence, title))
    return uri

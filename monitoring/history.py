"""The history view: calibration ratio and AUC per task over the days, alerts marked.

It reads only the small ``status.json`` of each day, so it is cheap to rebuild after every run.
Output: ``{artifact_root}/monitoring/history.png`` and ``history.html`` (the PNG inlined plus a
table of the days), both openable offline.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math

import pandas as pd

from monitoring.calibration import TASKS
from taml.core import storage

STATUS_COLOURS = {"ok": "#2e7d32", "warn": "#f9a825", "alert": "#c62828"}


def monitoring_root(artifact_root: str) -> str:
    return storage.join(artifact_root, "monitoring")


def load_history(artifact_root: str, until: dt.date | None = None, days: int | None = None) -> pd.DataFrame:
    """One row per monitored day (date, status, headline figures), oldest first."""
    root = monitoring_root(artifact_root)
    rows = []
    for name in storage.list_dirs(root):
        if not name.startswith("dt="):
            continue
        try:
            day = dt.date.fromisoformat(name[3:])
        except ValueError:
            continue
        if until is not None and day > until:
            continue
        uri = storage.join(root, name, "status.json")
        if not storage.exists(uri):
            continue
        try:
            st = storage.read_json(uri)
        except storage.StorageError:
            continue  # a damaged day's file must not take the whole view down
        rows.append({"date": day, "status": st.get("status", "warn"), **(st.get("headline_metrics") or {})})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["date", "status"])
    df = df.sort_values("date").reset_index(drop=True)
    if days is not None:
        df = df.tail(days).reset_index(drop=True)
    return df


def plot_history(history: pd.DataFrame) -> bytes:
    """PNG of calibration ratio and AUC per task; warn/alert days marked on both panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    dates = pd.to_datetime(history["date"]) if len(history) else pd.Series([], dtype="datetime64[ns]")
    for ax, suffix, title in ((axes[0], "calibration", "calibration ratio"), (axes[1], "auc", "AUC")):
        for task in TASKS:
            col = f"{task}_{suffix}"
            if col in history:
                ax.plot(dates, history[col].astype(float), marker="o", ms=3, label=task.upper())
        if suffix == "calibration":
            ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        for status in ("warn", "alert"):
            for d in dates[history["status"] == status] if len(history) else []:
                ax.axvspan(
                    d - pd.Timedelta(hours=12),
                    d + pd.Timedelta(hours=12),
                    color=STATUS_COLOURS[status],
                    alpha=0.18,
                    lw=0,
                )
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[0].set_title("Daily monitoring: shaded days warned (yellow) or alerted (red)")
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _cell(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4f}"
    return html.escape(str(v))


def history_html(history: pd.DataFrame, png: bytes) -> str:
    cols = ["date", "status"] + [f"{t}_{m}" for m in ("calibration", "auc") for t in TASKS]
    cols += [c for c in ("input_drift_share", "p_ctr_drift", "p_cvr_drift", "p_ctcvr_drift") if c in history]
    cols = [c for c in cols if c in history]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for _, row in history.iloc[::-1].iterrows():
        colour = STATUS_COLOURS.get(str(row["status"]), "#555")
        cells = "".join(
            f'<td style="color:{colour};font-weight:bold">{_cell(row[c])}</td>'
            if c == "status"
            else f"<td>{_cell(row[c])}</td>"
            for c in cols
        )
        body.append(f'<tr><td><a href="dt={row["date"]}/report.html">report</a></td>{cells}</tr>')
    img = base64.b64encode(png).decode("ascii")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>TAML monitoring history</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}</style></head><body>"
        "<h1>TAML monitoring history</h1>"
        f"<img alt='calibration and AUC per task over the days' src='data:image/png;base64,{img}'>"
        f"<table><tr><th></th>{head}</tr>{''.join(body)}</table></body></html>\n"
    )


def write_history(
    artifact_root: str, until: dt.date | None = None, days: int | None = None
) -> tuple[str, str]:
    """Rebuild history.png and history.html; returns their URIs."""
    history = load_history(artifact_root, until, days)
    png = plot_history(history)
    root = monitoring_root(artifact_root)
    png_uri, html_uri = storage.join(root, "history.png"), storage.join(root, "history.html")
    storage.write_bytes(png_uri, png)
    storage.write_text(html_uri, history_html(history, png))
    return png_uri, html_uri

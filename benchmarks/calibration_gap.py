"""Where a served model's calibration strays, against the simulator's truth: by day and by row group.

Reads a finished ``taml bench daily`` run (its ``--work`` folder: tables, truth files, registry)
and, for each registered model version, the calibration ratio against the truth (Σ pred / Σ true
p; CVR weighted by the true click probability) on its last training day and on the days after it,
split into the rows whose item has its own embedding row, the out-of-vocabulary ones, and those
whose item has no history yet (null trailing stats: the day's new items). Beside it: the window's
observed CVR against its true CVR (the re-centring's target is the observed rate) and the true
CVR of each day (a moving world moves the target).

    python benchmarks/calibration_gap.py --work bench-out/daily-s7 [--after 2] [--out gap.json]

Prints one JSON line per (version, day) and a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.common.tables import read_table  # noqa: E402
from model import load_model_version, score  # noqa: E402
from model.compare import align_truth  # noqa: E402
from model.errors import ModelError  # noqa: E402
from taml.core import layout, registry  # noqa: E402
from taml.core.config import ConfigError, load_config  # noqa: E402
from taml.core.errors import TamlError  # noqa: E402

#: the item column and the trailing-stats column whose null marks an item without history (the
#: features step's names; --id-column / --history-column for other tables)
ID_COLUMN, HISTORY_COLUMN = "item_id", "item_impressions_7d"


def ratios(pc: np.ndarray, pv: np.ndarray, pred: pd.DataFrame, rows: np.ndarray) -> dict[str, float]:
    """CTR, CVR and CTCVR calibration against the truth on ``rows`` (a boolean mask)."""
    q, r, b = (pred[c].to_numpy(np.float64)[rows] for c in ("p_ctr", "p_cvr", "p_ctcvr"))
    c, v = pc[rows], pv[rows]
    if not rows.any() or c.sum() <= 0 or (c * v).sum() <= 0:
        return {"share": float(rows.mean()), "ctr": float("nan"), "cvr": float("nan"), "ctcvr": float("nan")}
    return {
        "share": float(rows.mean()),
        "true_cvr": float((c * v).sum() / c.sum()),
        "ctr": float(q.sum() / c.sum()),
        "cvr": float((c * r).sum() / (c * v).sum()),
        "ctcvr": float(b.sum() / (c * v).sum()),
    }


@functools.lru_cache(maxsize=32)
def labelled_day(data: str, day: dt.date) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(table, true p_click, true p_conv) of one day, read once for every version that needs it.

    Raises TamlError when the table is missing and FileNotFoundError when its truth file is.
    """
    table = read_table(data, [day])
    truth_dir = layout.truth_dir(data, day)
    if not Path(truth_dir).exists():
        raise FileNotFoundError(f"no truth files for {day} at {truth_dir} (simulate with truth on)")
    pc, pv = align_truth(table, pd.read_parquet(truth_dir))
    return table, pc, pv


def version_rows(
    data: str, model, after: int, id_column: str = ID_COLUMN, history_column: str | None = HISTORY_COLUMN
) -> list[dict]:
    """One row per day from the version's last training day to ``after`` days past it."""
    meta = model.metadata
    through = meta.trained_through
    window = meta.training_window.days or ([through] if through else [])
    observed, true_conv = 0, 0.0
    for d in window:
        f, _, pv = labelled_day(data, d)
        observed += int((f["click"] * f["conversion"]).sum())
        true_conv += float((f["click"].to_numpy(np.float64) * pv).sum())
    target = {"window_observed_cvr_over_truth": observed / true_conv if true_conv else float("nan")}
    known = set(model.vocab.fields[id_column].values)
    out = []
    for k in range(0, after + 1):
        day = through + dt.timedelta(days=k)
        try:
            table, pc, pv = labelled_day(data, day)
        except (TamlError, FileNotFoundError):
            break  # past the end of the history
        pred = score(model, table)
        in_vocab = table[id_column].isin(known).to_numpy()
        row = {
            "version": meta.version,
            "day": day.isoformat(),
            "days_after_training": k,
            **target,
            "all": ratios(pc, pv, pred, np.ones(len(table), dtype=bool)),
            "item_in_vocabulary": ratios(pc, pv, pred, in_vocab),
            "item_out_of_vocabulary": ratios(pc, pv, pred, ~in_vocab),
        }
        if history_column in table.columns:
            row["item_without_history"] = ratios(pc, pv, pred, table[history_column].isna().to_numpy())
        out.append(row)
    return out


GROUPS = ("all", "item_in_vocabulary", "item_out_of_vocabulary", "item_without_history")


def markdown(rows: list[dict]) -> str:
    groups = [g for g in GROUPS if rows and g in rows[0]]
    head = "| version | day | +d | window obs/true CVR | " + " | ".join(
        f"{g} (share, true CVR, CVR ratio)" for g in groups
    )
    lines = [head + " |", "|" + "---|" * (4 + len(groups))]
    for r in rows:
        cells = [
            f"{r[g]['share']:.2f}, {r[g].get('true_cvr', float('nan')):.4f}, {r[g]['cvr']:.3f}"
            for g in groups
        ]
        lines.append(
            f"| {r['version']} | {r['day']} | {r['days_after_training']} | "
            f"{r['window_observed_cvr_over_truth']:.3f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", required=True, help="--work folder of a finished `taml bench daily` run")
    p.add_argument("--after", type=int, default=2, help="days after the last training day (default 2)")
    p.add_argument("--id-column", default=ID_COLUMN, help=f"item column (default {ID_COLUMN})")
    p.add_argument(
        "--history-column",
        default=HISTORY_COLUMN,
        help=f"null: item without history (default {HISTORY_COLUMN})",
    )
    p.add_argument("--out", help="JSON of every row")
    args = p.parse_args(argv)
    try:
        config = load_config(env={}, overrides=[])
        work = Path(args.work)
        data, artifacts = str(work / "data"), str(work / "artifacts")
        name = config.pipeline.model_name
        rows: list[dict] = []
        versions = registry.list_versions(artifacts, name)
        if not versions:
            raise FileNotFoundError(
                f"no {name!r} model versions under {artifacts} (a finished bench daily run?)"
            )
        with tempfile.TemporaryDirectory(prefix="taml-calibration-gap-") as tmp:
            for version in versions:
                local = registry.download_version(artifacts, name, version, Path(tmp) / version)
                model = load_model_version(local)
                for row in version_rows(data, model, args.after, args.id_column, args.history_column):
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    except (TamlError, ModelError, ConfigError, FileNotFoundError) as e:
        print(f"calibration_gap: error: {e}", file=sys.stderr)
        return 2
    print(markdown(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How long a cold start trains, judged against the truth: ranking and calibration per task.

Reads the training tables and truth files of a finished simulated run (``make run`` leaves them
in demo/data), fits the configured model cold on a window of days for each number of epochs, and
scores the day after the window against the simulator's true probabilities: expected AUC and
expected log loss (``model.expected_auc``) and the relative calibration error against the truth
(Σ_bins |Σ pred − Σ true p| / Σ true p, the monitor's ``relative_ece`` without label noise) and
the calibration ratio against the truth (Σ pred / Σ true p).

    python benchmarks/cold_start_epochs.py --data demo/data --start 2026-11-01 --window 3 \\
        --splits 2 --epochs 1 2 3 [--set KEY=VALUE ...]

Split k trains on days start+k .. start+k+window-1 and scores day start+k+window. Prints one JSON
line per (split, epochs) and a Markdown table of the means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.common.tables import read_table  # noqa: E402
from components.train.launch import fit_table  # noqa: E402
from model import score  # noqa: E402
from model.artifacts import LoadedModel  # noqa: E402
from model.compare import align_truth  # noqa: E402
from model.errors import ModelError  # noqa: E402
from model.expected_auc import truth_figures  # noqa: E402
from model.metrics import ece  # noqa: E402
from taml.core import layout  # noqa: E402
from taml.core.config import ConfigError, load_config  # noqa: E402
from taml.core.errors import TamlError  # noqa: E402


def scored(fit, table: pd.DataFrame, truth: pd.DataFrame, bins: int) -> dict[str, float]:
    pred = score(LoadedModel(fit.model, fit.config, fit.spec, fit.vocab, None), table)
    pc, pv = align_truth(table, truth)
    p_ctr, p_cvr, p_ctcvr = (pred[c].to_numpy() for c in ("p_ctr", "p_cvr", "p_ctcvr"))
    return {
        **truth_figures(pc, pv, p_ctr, p_cvr, p_ctcvr),
        # the binned calibration error against the true probabilities, relative to the true rate
        "ctr_relative_ece": ece(pc, p_ctr, bins) / float(pc.mean()),
        "ctcvr_relative_ece": ece(pc * pv, p_ctcvr, bins) / float((pc * pv).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="data root of a finished simulated run")
    p.add_argument("--start", type=dt.date.fromisoformat, required=True, help="first day of split 0")
    p.add_argument("--window", type=int, default=3, help="training days per split (default 3)")
    p.add_argument("--splits", type=int, default=2, help="consecutive splits (default 2)")
    p.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    args = p.parse_args(argv)
    try:
        return run(args)
    except (TamlError, ModelError, ConfigError) as e:  # a missing table or truth, a bad --set
        print(f"cold_start_epochs: error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    config = load_config(env={}, overrides=["train.progress=false", *args.overrides])
    bins = config.monitor.reliability_bins
    rows = []
    for k in range(args.splits):
        days = [args.start + dt.timedelta(days=k + i) for i in range(args.window)]
        test_day = days[-1] + dt.timedelta(days=1)
        frames = [read_table(args.data, [d]) for d in days]
        table = pd.concat(frames, ignore_index=True)
        row_days = np.repeat([d.isoformat() for d in days], [len(f) for f in frames])
        test = read_table(args.data, [test_day])
        truth = pd.read_parquet(layout.truth_dir(args.data, test_day))
        for epochs in args.epochs:
            cfg = config.model_copy(deep=True)
            cfg.train.epochs = epochs
            t = time.perf_counter()
            fit = fit_table(table, cfg, None, row_days)
            row = {"split": k, "test_day": test_day.isoformat(), "epochs": epochs}
            row |= {key: round(v, 5) for key, v in scored(fit, test, truth, bins).items()}
            row["seconds"] = round(time.perf_counter() - t, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    frame = pd.DataFrame(rows).drop(columns=["split", "test_day", "seconds"])
    means = frame.groupby("epochs").mean()
    print("\n| epochs | " + " | ".join(means.columns) + " |")
    print("|---|" + "---|" * len(means.columns))
    for epochs, r in means.iterrows():
        print(f"| {epochs} | " + " | ".join(f"{v:.4f}" for v in r) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

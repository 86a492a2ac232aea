"""The paper's Table 2, Fig. 3 ablations and Fig. 4 gate analysis on any data root in the raw format.

    taml bench model --data-root DIR --train-start 2026-11-01 --train-days 7 --test-day 2026-11-08 \
        --seeds 3 [--models taml,mlp,mmoe,ple,esmm,aitm] --out bench-out/model.json

Tables are built with the project's own ingest and feature steps, exactly as the daily pipeline
builds them (a day whose feature table already exists is reused; ``--rebuild`` redoes it). The
truth files (``truth/dt=D``), when present, give the oracle AUC. The test day is never used for
any choice: no early stopping, no selection.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

from components.common.tables import has_table, read_table
from taml import layout, storage
from taml.config import load_config
from taml.errors import TamlError

ALL_MODELS = ("taml", "mlp", "mmoe", "ple", "esmm", "aitm")
METRICS = ("ctr_auc", "cvr_auc", "ctcvr_auc")


def build_tables(config, data_root: str, days: list[dt.date], rebuild: bool) -> None:
    """Ingest, validate and build features for every day in order, as the daily run does.

    The stats of D-1 feed the table of D, so days go in order. A day that fails validation stops
    the benchmark: a comparison must not train or test on data the pipeline would refuse.
    """
    from components.features import build_features
    from components.ingest import run_ingest
    from components.validate import run_validation

    for day in days:
        if has_table(data_root, day) and not rebuild:
            continue
        t0 = time.perf_counter()
        run_ingest(config, day, data_root, [])
        verdict = run_validation(config, day, data_root)
        if not verdict.passed:
            failed = "; ".join(o.message() for o in verdict.failed_critical)
            raise TamlError(f"{day} fails validation, so it cannot be benchmarked: {failed}")
        build_features(config, day, data_root)
        print(f"built the feature table of {day} ({time.perf_counter() - t0:.0f} s)", flush=True)


def read_truth(data_root: str, day: dt.date) -> pd.DataFrame | None:
    uri = layout.truth_dir(data_root, day)
    if not storage.list_files(uri, suffix=".parquet", limit=1):
        return None
    import pyarrow.dataset as ds

    fs, path = storage.pyarrow_filesystem(uri)
    return ds.dataset(path, filesystem=fs, format="parquet").to_table().to_pandas()


def summarize(report: dict) -> str:
    """Markdown: mean ± sd per model and metric, TAML's margin in seed-sd units, gap to the oracle."""
    lines = ["| model | CTR AUC | CVR AUC | CTCVR AUC | samples/s |", "|---|---|---|---|---:|"]
    rows = {**report.get("models", {}), **report.get("ablations", {})}
    for name, entry in rows.items():
        cells = []
        for m in METRICS:
            vals = entry[m]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.4f} ± {sd:.4f}")
        lines.append(f"| {name} | {' | '.join(cells)} | {entry['samples_per_s']:,.0f} |")
    if "oracle" in report:
        o = report["oracle"]
        lines.append(f"| oracle (truth) | {o['ctr_auc']:.4f} | {o['cvr_auc']:.4f} | {o['ctcvr_auc']:.4f} | |")
    taml = report.get("models", {}).get("taml")
    if taml:
        lines.append("")
        for m in METRICS:
            mean = statistics.mean(taml[m])
            others = {k: v for k, v in report["models"].items() if k != "taml"}
            if not others:
                continue
            best_name, best = max(others.items(), key=lambda kv: statistics.mean(kv[1][m]))
            pooled = [statistics.stdev(v[m]) for v in (taml, best) if len(v[m]) > 1]
            sd = statistics.mean(pooled) if pooled else float("nan")
            margin = (mean - statistics.mean(best[m])) / sd if sd and sd == sd else float("nan")
            gap = f", {report['oracle'][m] - mean:.4f} below the oracle" if "oracle" in report else ""
            lines.append(
                f"- {m}: TAML {mean:.4f} vs best baseline {best_name} {statistics.mean(best[m]):.4f}: "
                f"margin {margin:+.1f} seed sd{gap}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--train-start", required=True, type=dt.date.fromisoformat)
    p.add_argument("--train-days", required=True, type=int)
    p.add_argument("--test-day", required=True, type=dt.date.fromisoformat)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--models", default=",".join(ALL_MODELS))
    p.add_argument(
        "--epochs", type=int, default=1, help="passes over the training days (same for every model)"
    )
    p.add_argument("--no-ablations", action="store_true")
    p.add_argument(
        "--rebuild", action="store_true", help="re-run ingest and features even where tables exist"
    )
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    p.add_argument("--out", default="bench-out/model.json")
    p.add_argument(
        "--artifact-root", help="where the validation reports go (default: beside --out, in artifacts/)"
    )
    args = p.parse_args(argv)
    # Progress lines are printed; the libraries' INFO chatter (Great Expectations, Feast) is not.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("model").setLevel(logging.INFO)
    try:
        return run(args)
    except TamlError as e:
        print(f"taml bench model: error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:

    train_days = [args.train_start + dt.timedelta(days=i) for i in range(args.train_days)]
    if args.test_day <= train_days[-1]:
        raise SystemExit(f"--test-day {args.test_day} must come after the last training day {train_days[-1]}")
    out = Path(args.out)
    artifact_root = args.artifact_root or str(out.parent / "artifacts")
    config = load_config(
        overrides=[
            f"paths.data_root={args.data_root}",
            f"paths.artifact_root={artifact_root}",
            *args.overrides,
        ]
    )
    build_tables(config, args.data_root, [*train_days, args.test_day], args.rebuild)

    from model import compare_models

    train = read_table(args.data_root, train_days)
    test = read_table(args.data_root, [args.test_day])
    truth = read_truth(args.data_root, args.test_day)
    train_cfg = config.train.model_copy(update={"epochs": args.epochs, "progress": False})
    t0 = time.perf_counter()
    report = compare_models(
        train,
        test,
        config.feature_spec,
        args.models.split(","),
        args.seeds,
        train_cfg,
        truth,
        model_config=config.model,
        ablations=not args.no_ablations,
        out_dir=out.parent,
    )
    report["setup"] = {
        "data_root": args.data_root,
        "train_days": [d.isoformat() for d in train_days],
        "test_day": args.test_day.isoformat(),
        "train_rows": len(train),
        "test_rows": len(test),
        "seeds": args.seeds,
        "epochs": args.epochs,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(summarize(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The paper's Table 2, Fig. 3 ablations and Fig. 4 gate analysis on any data root in the raw format.

Default protocol (the paper's): every model's hyperparameters are chosen by a random search with the
same budget (``--budget`` trials each: epochs, learning rate, embedding size and the model's own
counts; TAML's levers included) on a validation day V that precedes the test day T; then each
model's chosen settings train ``--seeds`` times and T is scored once per seed:

    taml bench model --data-root DIR --train-start 2026-11-02 --train-days 3 --seeds 5 \
        --out bench-out/model.json
    #   validation: train on train-start .. V-1, score V = train-start + train-days
    #   test:       train on train-start+1 .. V (the same window length, one day later), score T = V+1

``--no-tune`` is the old protocol: configured (paper) defaults, train on the train days, test the
next day (or ``--test-day``). Tables are built with the project's own ingest, validation and feature
steps, exactly as the daily pipeline builds them (a day whose feature table already exists is
reused; ``--rebuild`` redoes it). The truth files (``truth/dt=D``), when present, give the expected
AUCs (labels drawn from the true probabilities) and the oracle. The test day is never used for any
choice. Every trial is written to ``<out stem>_tuning.json``.
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
import yaml

from components.common.tables import has_table, read_table
from taml.core import layout, storage
from taml.core.config import load_config
from taml.core.errors import TamlError

ALL_MODELS = ("taml", "mlp", "mmoe", "ple", "esmm", "aitm")
METRICS = ("ctr_auc", "cvr_auc", "ctcvr_auc")
EXPECTED = ("ctr_eauc", "cvr_eauc", "ctcvr_eauc")


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


def _cell(vals: list[float]) -> str:
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.4f} ± {sd:.4f}"


def summarize(report: dict) -> str:
    """Markdown: mean ± seed sd per model and metric (observed and expected AUC), ρ, TAML's margins."""
    expected = any("cvr_eauc" in e for e in report.get("models", {}).values())
    cols = [*METRICS, *(EXPECTED if expected else ()), "rho_cvr_ctr_clicked"]
    head = [
        "CTR AUC",
        "CVR AUC",
        "CTCVR AUC",
        *(["CTR eAUC", "CVR eAUC", "CTCVR eAUC"] if expected else []),
        "ρ(pCVR,pCTR|click)",
    ]
    lines = [f"| model | {' | '.join(head)} | samples/s |", "|---|" + "---|" * len(head) + "---:|"]
    rows = {**report.get("models", {}), **report.get("ablations", {})}
    for name, entry in rows.items():
        cells = [_cell(entry[m]) if m in entry else "" for m in cols]
        lines.append(f"| {name} | {' | '.join(cells)} | {entry['samples_per_s']:,.0f} |")
    if "oracle" in report:
        o = report["oracle"]
        lines.append(f"| oracle (truth) | {' | '.join(f'{o[m]:.4f}' if m in o else '' for m in cols)} | |")
    setup = report.get("setup", {})
    ses = [se for e in report.get("models", {}).values() for se in e.get("cvr_auc_se", [])]
    if ses:
        lines.append("")
        lines.append(
            f"Test day: {setup.get('test_rows', '?')} rows, {setup.get('test_clicks', '?')} clicks, "
            f"{setup.get('test_conversions', '?')} conversions; DeLong SE of CVR AUC median "
            f"{statistics.median(ses):.4f} (max {max(ses):.4f})"
        )
    taml = report.get("models", {}).get("taml")
    if taml:
        lines.append("")
        for m in cols[:-1]:
            others = {k: v for k, v in report["models"].items() if k != "taml"}
            if not others:
                continue
            mean = statistics.mean(taml[m])
            best_name, best = max(others.items(), key=lambda kv: statistics.mean(kv[1][m]))
            pooled = [statistics.stdev(v[m]) for v in (taml, best) if len(v[m]) > 1]
            sd = statistics.mean(pooled) if pooled else float("nan")
            margin = (mean - statistics.mean(best[m])) / sd if sd and sd == sd else float("nan")
            gap = (
                f", {report['oracle'][m] - mean:.4f} below the oracle"
                if m in report.get("oracle", {})
                else ""
            )
            lines.append(
                f"- {m}: TAML {mean:.4f} vs best other {best_name} {statistics.mean(best[m]):.4f}: "
                f"margin {margin:+.1f} seed sd{gap}"
            )
    tuning = report.get("tuning", {}).get("rows", {})
    if tuning:
        lines.append("")
        lines.append("Chosen on the validation day (score = " + report["tuning"]["config"]["select"] + "):")
        for name, r in tuning.items():
            lines.append(
                f"- {name}: {json.dumps(r['chosen'])} (score {r['score']:.4f}, {len(r['trials'])} trials)"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--train-start", required=True, type=dt.date.fromisoformat)
    p.add_argument("--train-days", required=True, type=int)
    p.add_argument("--test-day", type=dt.date.fromisoformat, help="default: the day after the validation day")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--ablation-seeds", type=int, help="seeds of the ablation rows (default: --seeds)")
    p.add_argument("--models", default=",".join(ALL_MODELS))
    p.add_argument(
        "--epochs", type=int, default=1, help="with --no-tune: passes over the training days (every model)"
    )
    p.add_argument(
        "--history-days",
        type=int,
        default=0,
        help="days before the first one to ingest (7-day stats warm-up)",
    )
    p.add_argument("--no-tune", action="store_true", help="paper defaults, no validation search")
    p.add_argument("--budget", type=int, help="trials per model on the validation day (tune.budget)")
    p.add_argument("--tune-seeds", type=int, help="training seeds per trial (tune.seeds)")
    p.add_argument("--select", help="validation score to maximise (tune.select, e.g. mean_auc, mean_eauc)")
    p.add_argument("--tune-config", help="YAML file of TuneConfig fields (the grid, budget, ...)")
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


def tune_settings(args: argparse.Namespace):
    from model.spec import TuneConfig

    raw = yaml.safe_load(Path(args.tune_config).read_text()) if args.tune_config else {}
    for key, value in (("budget", args.budget), ("seeds", args.tune_seeds), ("select", args.select)):
        if value is not None:
            raw[key] = value
    try:
        return TuneConfig.model_validate(raw or {})
    except ValueError as e:
        raise TamlError(f"tuning settings: {e}") from e


def plan_days(args: argparse.Namespace) -> dict[str, list[dt.date]]:
    """The days of each role. Tuning: a validation day before the test day, windows of equal length."""
    first = args.train_start
    n = args.train_days
    if n < 1:
        raise TamlError("--train-days must be >= 1")
    if args.no_tune:
        train = [first + dt.timedelta(days=i) for i in range(n)]
        test = args.test_day or train[-1] + dt.timedelta(days=1)
        if test <= train[-1]:
            raise TamlError(f"--test-day {test} must come after the last training day {train[-1]}")
        return {"train": train, "test": [test]}
    valid = first + dt.timedelta(days=n)
    test = valid + dt.timedelta(days=1)
    if args.test_day is not None and args.test_day != test:
        raise TamlError(
            f"--test-day {args.test_day}: with tuning the test day is the day after the validation day "
            f"{valid} (train-start + train-days), i.e. {test}"
        )
    return {
        "valid_train": [first + dt.timedelta(days=i) for i in range(n)],
        "valid": [valid],
        "train": [first + dt.timedelta(days=i + 1) for i in range(n)],
        "test": [test],
    }


def run(args: argparse.Namespace) -> int:
    days = plan_days(args)
    tune = None if args.no_tune else tune_settings(args)
    out = Path(args.out)
    artifact_root = args.artifact_root or str(out.parent / "artifacts")
    config = load_config(
        overrides=[
            f"paths.data_root={args.data_root}",
            f"paths.artifact_root={artifact_root}",
            *args.overrides,
        ]
    )
    # Every day in between too (and --history-days before): the 7-day stats of D read D-7 .. D-1.
    first = min(d for ds in days.values() for d in ds) - dt.timedelta(days=args.history_days)
    last = max(d for ds in days.values() for d in ds)
    every_day = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    build_tables(config, args.data_root, every_day, args.rebuild)

    from model.compare import compare_models, tune_and_compare
    from model.encode import encode_labels

    train = read_table(args.data_root, days["train"])
    test = read_table(args.data_root, days["test"])
    truth = read_truth(args.data_root, days["test"][0])
    models = args.models.split(",")
    t0 = time.perf_counter()
    if tune is None:
        train_cfg = config.train.model_copy(update={"epochs": args.epochs, "progress": False})
        report = compare_models(
            train, test, config.feature_spec, models, args.seeds, train_cfg, truth,
            model_config=config.model, ablations=not args.no_ablations, out_dir=out.parent,
            ablation_seeds=args.ablation_seeds,
        )  # fmt: skip
    else:
        train_cfg = config.train.model_copy(update={"progress": False})
        report = tune_and_compare(
            read_table(args.data_root, days["valid_train"]),
            read_table(args.data_root, days["valid"]),
            train, test, config.feature_spec, models, args.seeds, train_cfg, tune,
            valid_truth=read_truth(args.data_root, days["valid"][0]), test_truth=truth,
            model_config=config.model, ablations=not args.no_ablations, out_dir=out.parent,
            ablation_seeds=args.ablation_seeds,
        )  # fmt: skip
    clicks, conversions = encode_labels(test, config.feature_spec)
    report["setup"] = {
        "data_root": args.data_root,
        "protocol": "paper defaults" if tune is None else "tuned on the validation day, then tested",
        **{f"{role}_days": [d.isoformat() for d in ds] for role, ds in days.items()},
        "test_day": days["test"][0].isoformat(),
        "train_rows": len(train),
        "test_rows": len(test),
        "test_clicks": int(clicks.sum()),
        "test_conversions": int((clicks * conversions).sum()),
        "seeds": args.seeds,
        "ablation_seeds": args.ablation_seeds or args.seeds,
        "epochs": args.epochs if tune is None else "tuned",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    if "tuning" in report:
        tuning_file = out.with_name(out.stem + "_tuning.json")
        tuning_file.write_text(json.dumps(report["tuning"], indent=2, default=float) + "\n")
        print(f"wrote {tuning_file}")
    print(summarize(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

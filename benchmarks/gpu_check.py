"""The model on a GPU beside the CPU, on the same data: speed, AUC at larger batches, one daily train step.

One prepared run for a machine with a GPU (the issue's H200 check). On the same training days and
validation day, per model (TAML and ESMM by default):

1. the CPU reference: ``fit`` at the configured batch (2000), scored on the validation day;
2. the same on the accelerator (CUDA, bf16 autocast: ``train.bf16``) at that batch and at every
   larger ``--batches`` value, the learning rate scaled by sqrt(batch / base batch) (the usual rule
   for Adam); per run the trainer's samples/s, the wall seconds and the observed (and, with truth
   files, expected) AUCs, and the difference to the CPU run;
3. the largest batch whose mean validation AUC (CTR, CVR, CTCVR) stays within ``--auc-tolerance``
   of the accelerator's base-batch run;
4. one daily train step on each device: the pipeline's warm update (the cold-start model of step 1
   or 2 as parent, trained through the last training day, over a window one day later, with the
   configured replay), timed end to end by ``fit``.

    python benchmarks/gpu_check.py --simulate 500000 --data-root /tmp/gpu/data --out gpu.json
    python benchmarks/gpu_check.py --data-root demo/data --start 2026-11-01 --train-days 6 \\
        --device cpu --batches 2000,8192            # a dry run of the same steps on the CPU

``--simulate N`` first writes ``--train-days`` + 2 days of ``make run``'s world at N impressions a
day and builds their tables with the project's own steps (as ``taml bench model`` does); without
it the tables under ``--data-root`` are used. Prints a Markdown table and writes the JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.common.tables import read_table  # noqa: E402
from model.artifacts import VersionMetadata, load_model_version, save_model_version  # noqa: E402
from model.compare import EvalDay, day_metrics  # noqa: E402
from model.encode import encode  # noqa: E402
from model.errors import ModelError  # noqa: E402
from model.fitting import FitResult, fit  # noqa: E402
from model.scoring import predict_encoded  # noqa: E402
from model.trainer import resolve_device  # noqa: E402
from taml.core.config import Config, load_config  # noqa: E402
from taml.core.errors import TamlError  # noqa: E402

AUCS = ("ctr_auc", "cvr_auc", "ctcvr_auc")


@dataclass(frozen=True)
class CheckData:
    """Training days, the validation day and the window of the daily step, as the pipeline reads them."""

    train: pd.DataFrame
    train_days: list[str]  # the day of each training row
    valid: EvalDay
    window: pd.DataFrame  # the daily step's window: the training days less the first, plus the validation day
    window_days: list[str]
    trained_through: dt.date  # the last training day (the parent's)


def timed_fit(data: CheckData, config: Config, arch: str, device: str, batch: int) -> tuple[dict, FitResult]:
    """One cold start on ``device`` at ``batch`` (lr scaled by sqrt(batch / configured batch)), scored."""
    base = config.train
    tc = base.model_copy(
        update={
            "device": device,
            "batch_size": batch,
            "lr": base.lr * math.sqrt(batch / base.batch_size),
            "progress": False,
        }
    )
    model_cfg = config.model.model_copy(update={"architecture": arch})
    t0 = time.perf_counter()
    fitted = fit(data.train, config.feature_spec, model_cfg, tc, row_days=data.train_days)
    seconds = time.perf_counter() - t0
    pred = predict_encoded(fitted.model, encode(data.valid.frame, config.feature_spec, fitted.vocab))
    row = {
        "model": arch,
        "device": fitted.result.device,
        "bf16": bool(tc.bf16 and fitted.result.device.startswith("cuda")),
        "batch": batch,
        "lr": tc.lr,
        "samples_per_s": fitted.result.samples_per_s,
        "fit_seconds": round(seconds, 3),
        **{k: v for k, v in day_metrics(data.valid, pred).items() if not k.endswith("_se")},
    }
    return row, fitted


def daily_step_seconds(data: CheckData, config: Config, parent: FitResult, device: str) -> float:
    """Wall seconds of the pipeline's warm update from ``parent`` over the next window on ``device``."""
    tc = config.train.model_copy(update={"device": device, "progress": False})
    with tempfile.TemporaryDirectory(prefix="taml-gpu-check-") as tmp:
        meta = VersionMetadata(version="parent", trained_through=data.trained_through)
        path = save_model_version(
            Path(tmp) / "parent", parent.model, parent.spec, parent.vocab, meta,
            optimizer_state=parent.optimizer_state,
        )  # fmt: skip
        loaded = load_model_version(path, with_optimizer=True)
        t0 = time.perf_counter()
        fit(data.window, parent.spec, parent.config, tc, parent=loaded, row_days=data.window_days)
        return time.perf_counter() - t0


def mean_auc(row: dict) -> float:
    return float(np.mean([row[k] for k in AUCS]))


def run_check(
    data: CheckData, config: Config, models: list[str], batches: list[int], device: str, tolerance: float
) -> dict[str, Any]:
    """Every run of the module docstring; returns the report (``runs``, per model ``summary``)."""
    base = config.train.batch_size
    if base not in batches:
        batches = [base, *batches]
    batches = sorted(set(batches))
    runs: list[dict] = []
    summary: dict[str, Any] = {}
    for arch in models:
        cpu_row, cpu_fit = timed_fit(data, config, arch, "cpu", base)
        runs.append(cpu_row)
        dev_rows = {}
        dev_base_fit = None
        for b in batches:
            row, fitted = timed_fit(data, config, arch, device, b)
            runs.append(row)
            dev_rows[b] = row
            if b == base:
                dev_base_fit = fitted
        ref = dev_rows[base]
        keeps = [b for b in batches if mean_auc(dev_rows[b]) >= mean_auc(ref) - tolerance]
        summary[arch] = {
            "device": ref["device"],
            "speedup_at_base_batch": ref["samples_per_s"] / cpu_row["samples_per_s"],
            "auc_minus_cpu_at_base_batch": {k: ref[k] - cpu_row[k] for k in AUCS},
            "largest_batch_keeping_auc": max(keeps),
            "samples_per_s_at_largest_batch": dev_rows[max(keeps)]["samples_per_s"],
            "daily_step_seconds": {
                "cpu": round(daily_step_seconds(data, config, cpu_fit, "cpu"), 3),
                "accelerator": round(daily_step_seconds(data, config, dev_base_fit, device), 3),
            },
        }
    return {"runs": runs, "summary": summary, "auc_tolerance": tolerance, "base_batch": base}


def load_data(config: Config, data_root: str, start: dt.date, train_days: int) -> CheckData:
    days = [start + dt.timedelta(days=i) for i in range(train_days + 1)]
    train_d, valid_d = days[:-1], days[-1]
    frames = {d: read_table(data_root, [d]) for d in days}

    def stacked(ds: list[dt.date]) -> tuple[pd.DataFrame, list[str]]:
        table = pd.concat([frames[d] for d in ds], ignore_index=True)
        return table, [d.isoformat() for d in ds for _ in range(len(frames[d]))]

    train, train_rows = stacked(train_d)
    window, window_rows = stacked(days[1:])
    valid = EvalDay(frames[valid_d], config.feature_spec, _model_compare().read_truth(data_root, valid_d))
    return CheckData(train, train_rows, valid, window, window_rows, train_d[-1])


def simulate_and_build(config: Config, data_root: str, start: dt.date, days: int, impressions: int) -> None:
    from simulator.generate import simulate

    sim = config.simulator.model_copy(update={"density": "demo"})
    simulate(data_root, start, days, impressions, seed=7, config=sim)
    _model_compare().build_tables(
        config, data_root, [start + dt.timedelta(days=i) for i in range(days - 1)], rebuild=False
    )


def markdown(report: dict) -> str:
    lines = [
        "| model | device | batch | lr | samples/s | fit s | CTR AUC | CVR AUC | CTCVR AUC |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['model']} | {r['device']}{' bf16' if r['bf16'] else ''} | {r['batch']} | {r['lr']:.2g} | "
            f"{r['samples_per_s']:,.0f} | {r['fit_seconds']:.1f} | "
            + " | ".join(f"{r[k]:.4f}" for k in AUCS)
            + " |"
        )
    for arch, s in report["summary"].items():
        lines.append(
            f"- {arch}: {s['speedup_at_base_batch']:.2f}× the CPU at batch {report['base_batch']}; "
            f"largest batch within {report['auc_tolerance']} mean AUC: {s['largest_batch_keeping_auc']} "
            f"({s['samples_per_s_at_largest_batch']:,.0f} samples/s); one daily train step "
            f"{s['daily_step_seconds']['cpu']:.1f} s on the CPU, {s['daily_step_seconds']['accelerator']:.1f} s "
            f"on {s['device']}"
        )
    return "\n".join(lines)


def _model_compare():
    """``taml bench model``'s script (benchmarks/ is not a package): its table builder and truth reader."""
    name = "benchmarks_model_compare"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("model_compare.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 11, 1))
    p.add_argument("--train-days", type=int, default=4)
    p.add_argument("--simulate", type=int, metavar="IMPRESSIONS", help="simulate the days first, N a day")
    p.add_argument("--models", default="taml,esmm")
    p.add_argument("--batches", default="2000,8192,32768,131072")
    p.add_argument("--device", default="cuda", help="the accelerator (cpu: a dry run of every step)")
    p.add_argument("--auc-tolerance", type=float, default=0.002)
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    p.add_argument("--out", default="bench-out/gpu_check.json")
    args = p.parse_args(argv)
    try:
        if args.train_days < 2:
            raise TamlError("--train-days must be >= 2 (the daily step's window drops the first day)")
        batches = [int(b) for b in args.batches.split(",") if b]
        if not batches or min(batches) < 1:
            raise TamlError(f"--batches must be positive integers (got {args.batches!r})")
        resolve_device(args.device)  # a missing GPU is said before minutes of simulating, not after
        config = load_config(overrides=[f"paths.data_root={args.data_root}", *args.overrides])
        if args.simulate:
            # the days, the validation day, and the next one whose late labels validation waits for
            simulate_and_build(config, args.data_root, args.start, args.train_days + 2, args.simulate)
        data = load_data(config, args.data_root, args.start, args.train_days)
        report = run_check(data, config, args.models.split(","), batches, args.device, args.auc_tolerance)
    except (TamlError, ModelError, ValueError) as e:
        print(f"gpu_check: error: {e}", file=sys.stderr)
        return 2
    report["setup"] = {**vars(args), "start": args.start.isoformat(), "train_rows": len(data.train)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(markdown(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A few planted days run through the real train, evaluate and deploy steps (no Beam, no Feast).

Tests that read what a history leaves behind (the run report, the daily-loop benchmark's scoring)
build it here, so they agree on what "a small history" is.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from planted_data import make_synthetic

from components.common.records import write_record
from components.deploy import run_deploy
from components.evaluate import run_evaluate
from components.train import run_train
from components.validate import ValidationResult, validation_dir
from components.validate.report import write_artifacts
from taml.core import layout
from taml.core.config import Config, load_config

# Small and quick: two epochs, loose calibration bounds and no resolution rule, so that the
# tests see blessed days on a few thousand rows.
OVERRIDES = (
    "train.progress=false",
    "train.epochs=2",
    "train.batch_size=256",
    "pipeline.cold_start_days=1",
    "evaluate.rules.require_resolution=false",
    "evaluate.rules.calibration_min=0.5",
    "evaluate.rules.calibration_max=2.0",
)


def _write(folder: str, table) -> None:
    Path(folder).mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(table), Path(folder) / "part-0.parquet")


def run_history(
    root: Path,
    days: list[dt.date],
    *,
    rows: int,
    cardinality: int,
    seed: int,
    world_seed: int,
    with_truth: bool = False,
) -> tuple[Config, str, str]:
    """Plants ``days`` (validated; truth files too when asked) under ``root`` and runs each through
    train, evaluate and deploy. Returns the config and the data and artifact roots."""
    data, artifacts = str(root / "data"), str(root / "artifacts")
    spec = None
    for i, day in enumerate(days):
        frame, spec, truth = make_synthetic(
            rows, n_fields=5, cardinality=cardinality, seed=seed + i, world_seed=world_seed
        )
        _write(layout.training_table_dir(data, day), frame)
        if with_truth:
            _write(layout.truth_dir(data, day), truth)
        write_artifacts(ValidationResult(day.isoformat(), True, [], []), validation_dir(artifacts, day))
        write_record(artifacts, day, "validate", {"passed": True})
    cfg = load_config(env={}, overrides=list(OVERRIDES))
    cfg.feature_spec = spec
    for day in days:
        cand = root / f"cand-{day}"
        t = run_train(cfg, day, data, artifacts, cand)
        ev = run_evaluate(cfg, day, data, artifacts, cand if t.trained else None)
        if ev.blessed:
            run_deploy(cfg, day, data, artifacts, cand, ev.blessing_uri)
    return cfg, data, artifacts

"""Step 4: train a candidate on the days the policy picks, warm or cold, and save it as a version."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from components.common.production import load_production
from components.common.records import write_record
from components.common.tables import has_table, read_table
from components.train.launch import fit_table
from components.train.policy import DayStatus, TrainingPlan, WindowPolicy, plan_training
from taml.core import layout, storage
from taml.core.config import Config
from taml.core.revision import code_revision

log = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    trained: bool
    mode: str
    reason: str
    days: list[str] = field(default_factory=list)
    version: str | None = None
    parent_version: str | None = None
    samples: int = 0
    #: rows trained on: ``samples`` less the older days' rows a warm update did not replay
    trained_rows: int = 0
    samples_per_s: float = 0.0
    final_loss: float | None = None
    model_dir: str | None = None
    conversions: int = 0
    excluded: dict[str, str] = field(default_factory=dict)
    vocab_sizes: dict[str, int] = field(default_factory=dict)
    vocab_counted_days: int = 0


def warm_update_config(config: Config) -> Config:
    """``config`` with ``train.epochs`` and ``train.lr`` set to ``train.warm_epochs`` and
    ``train.warm_lr`` (where set) for a warm update.

    The epochs chosen on validation fit a model from scratch; a warm update starts from a parent
    that has already fit all but the window's last day, and the window slides one day at a time.
    """
    t = config.train
    update = {
        name: value
        for name, value in (("epochs", t.warm_epochs), ("lr", t.warm_lr))
        if value is not None and value != getattr(t, name)
    }
    if not update:
        return config
    return config.model_copy(update={"train": t.model_copy(update=update)})


def version_id(plan: TrainingPlan, config: Config, weights_sha256: str) -> str:
    """Named for its trained-through day plus a digest of what was trained: its weights and lineage.

    The weights digest makes the id change whenever the trained result does (other data, another
    data root, a code change in an image without .git), so the registry can never hold two models
    under one id; a deterministic re-run of a day still names the same version, published once.
    """
    basis = {
        "parent": plan.parent_version,
        "days": [d.isoformat() for d in plan.days],
        "model": config.model.model_dump(mode="json"),
        "train": config.train.model_dump(
            mode="json", exclude={"progress", "log_every", "device", "num_threads"}
        ),
        "spec": config.feature_spec.model_dump(mode="json"),
        "code": code_revision(),
        "weights": weights_sha256,
    }
    digest = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:10]
    return f"{plan.days[-1]:%Y%m%d}-{digest}"


def window_policy(config: Config) -> WindowPolicy:
    p = config.pipeline
    return WindowPolicy(p.window_days, p.window_min_conversions, p.max_window_days, p.cold_start_days)


def day_status(config: Config, data_root: str, artifact_root: str, day: dt.date) -> DayStatus:
    """Usable when the day's validation result says passed and its feature table exists.

    The validation result is read, not inferred from the table: a day re-ingested since its
    table was built, and now failing validation, must not be trained on.
    """
    from components.validate import ValidationGateError, read_verdict, validation_dir

    if not has_table(data_root, day):
        return DayStatus(False, why_not="no feature table")
    try:
        verdict = read_verdict(validation_dir(artifact_root, day))
    except ValidationGateError:
        return DayStatus(False, why_not="no validation result")
    if not verdict.passed:
        return DayStatus(False, why_not="validation failed")
    return DayStatus(True, conversions=_conversions(data_root, day, config.feature_spec.conversion_column))


def _conversions(data_root: str, day: dt.date, column: str) -> int:
    fs, path = storage.pyarrow_filesystem(layout.training_table_dir(data_root, day))
    table = ds.dataset(path, filesystem=fs, format="parquet").to_table(columns=[column])
    return int(np.nansum(table.column(column).to_numpy(zero_copy_only=False)))


def run_train(
    config: Config, date: dt.date, data_root: str, artifact_root: str, out_dir: str | Path
) -> TrainOutcome:
    from model import VersionMetadata, save_model_version
    from model.artifacts import TrainingWindow, weights_sha256

    parent = load_production(config, artifact_root, with_optimizer=True)
    policy = window_policy(config)
    status = {
        day: day_status(config, data_root, artifact_root, day)
        for day in (date - dt.timedelta(days=i) for i in range(1, policy.lookback + 1))
    }
    plan = plan_training(
        date,
        parent.version if parent else None,
        parent.metadata.trained_through if parent else None,
        status,
        policy,
    )
    log.info("training plan for %s: %s", date, plan.reason)
    if plan.mode == "skip":
        outcome = TrainOutcome(
            False, plan.mode, plan.reason, parent_version=plan.parent_version, excluded=plan.excluded
        )
        write_record(artifact_root, date, "train", asdict(outcome))
        return outcome

    frames = [read_table(data_root, [day]) for day in plan.days]
    row_days = np.repeat([d.isoformat() for d in plan.days], [len(f) for f in frames])
    table = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if plan.mode == "warm":
        config = warm_update_config(config)
    # torchrun over N processes when configured (pipeline.train_processes)
    result = fit_table(table, config, parent if plan.mode == "warm" else None, row_days)
    history = result.result.history
    final_loss = float(history[-1]["loss"]) if history and "loss" in history[-1] else None
    version = version_id(plan, config, weights_sha256(result.model))
    metadata = VersionMetadata(
        version=version,
        parent_version=plan.parent_version,
        trained_through=plan.days[-1],
        training_window=TrainingWindow(
            start=plan.days[0], end=plan.days[-1], days=plan.days, conversions=plan.conversions
        ),
        seed=config.train.seed,
        code_revision=code_revision(),
        metrics={"train_samples": result.rows, "final_loss": final_loss},
    )
    save_model_version(
        out_dir,
        result.model,
        result.spec,
        result.vocab,
        metadata,
        overwrite=True,
        optimizer_state=result.optimizer_state,
    )
    outcome = TrainOutcome(
        trained=True,
        mode=plan.mode,
        reason=plan.reason,
        days=[d.isoformat() for d in plan.days],
        version=version,
        parent_version=plan.parent_version,
        samples=len(table),
        trained_rows=result.rows,
        samples_per_s=round(result.result.samples_per_s, 1),
        final_loss=final_loss,
        model_dir=str(out_dir),
        conversions=plan.conversions,
        excluded=plan.excluded,
        vocab_sizes={name: v.size for name, v in result.vocab.fields.items()},
        vocab_counted_days=len(result.vocab.counted_days),
    )
    write_record(artifact_root, date, "train", asdict(outcome))
    return outcome

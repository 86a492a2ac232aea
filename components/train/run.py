"""Step 4: train a candidate on the days the policy picks, warm or cold, and save it as a version."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from components.common.production import load_production
from components.common.records import write_record
from components.common.tables import has_table, read_table
from components.train.policy import TrainingPlan, plan_training
from taml import code_revision
from taml.config import Config

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
    samples_per_s: float = 0.0
    final_loss: float | None = None
    model_dir: str | None = None


def version_id(plan: TrainingPlan, config: Config) -> str:
    """Named for its trained-through day plus a digest of everything that determines it.

    Re-running a day (after a crash, say) therefore names the same version, which the
    registry publishes once: the registry state does not depend on how many times a day ran.
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
    }
    digest = hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:10]
    return f"{plan.days[-1]:%Y%m%d}-{digest}"


def run_train(
    config: Config, date: dt.date, data_root: str, artifact_root: str, out_dir: str | Path
) -> TrainOutcome:
    from model import VersionMetadata, fit, save_model_version
    from model.artifacts import TrainingWindow

    parent = load_production(config, artifact_root)
    lookback = max(config.pipeline.cold_start_days, config.pipeline.max_warm_days)
    candidates = [date - dt.timedelta(days=i) for i in range(1, lookback + 1)]
    if parent is not None and parent.metadata.trained_through:
        gap = (date - parent.metadata.trained_through).days
        candidates += [date - dt.timedelta(days=i) for i in range(1, gap)]
    available = {d for d in set(candidates) if has_table(data_root, d)}
    plan = plan_training(
        date,
        parent.version if parent else None,
        parent.metadata.trained_through if parent else None,
        available,
        config.pipeline.cold_start_days,
        config.pipeline.max_warm_days,
        config.pipeline.min_train_days,
    )
    log.info("training plan for %s: %s", date, plan.reason)
    if plan.mode == "skip":
        outcome = TrainOutcome(False, plan.mode, plan.reason, parent_version=plan.parent_version)
        write_record(artifact_root, date, "train", asdict(outcome))
        return outcome

    table = read_table(data_root, plan.days)
    result = fit(table, config.feature_spec, config.model, config.train, parent=parent)
    history = result.result.history
    final_loss = float(history[-1]["loss"]) if history and "loss" in history[-1] else None
    version = version_id(plan, config)
    metadata = VersionMetadata(
        version=version,
        parent_version=plan.parent_version,
        trained_through=plan.days[-1],
        training_window=TrainingWindow(start=plan.days[0], end=plan.days[-1]),
        seed=config.train.seed,
        code_revision=code_revision(),
        metrics={"train_samples": len(table), "final_loss": final_loss},
    )
    save_model_version(out_dir, result.model, result.spec, result.vocab, metadata, overwrite=True)
    outcome = TrainOutcome(
        trained=True,
        mode=plan.mode,
        reason=plan.reason,
        days=[d.isoformat() for d in plan.days],
        version=version,
        parent_version=plan.parent_version,
        samples=len(table),
        samples_per_s=round(result.result.samples_per_s, 1),
        final_loss=final_loss,
        model_dir=str(out_dir),
    )
    write_record(artifact_root, date, "train", asdict(outcome))
    return outcome

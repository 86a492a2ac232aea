"""Hyperparameter search on a validation day (the paper's protocol), the same budget for every model.

A trial is an assignment ``{"train.lr": 2e-3, "model.embedding_dim": 16, "taml.n_general": 1, ...}``
applied on top of a row's base configuration. Each row (a model, or a variant such as MMoE in
entire space) gets ``budget`` trials: first its base configuration unchanged, then distinct random
draws from the common grid and its architecture's own grid. Every trial trains on the validation
window and is scored on the validation day only; the best score wins. Nothing here sees a test day.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import statistics
import zlib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from model.errors import ModelConfigError
from model.spec import ModelConfig, TrainConfig, TuneConfig

log = logging.getLogger(__name__)


@dataclass
class Row:
    """One line of the comparison: a name, its base configuration, and the grid it is tuned over."""

    name: str
    model: ModelConfig
    train: TrainConfig
    fixed: tuple[str, ...] = ()  # grid keys this row keeps at its base value (e.g. the paper's TAML)


@dataclass
class TuneResult:
    chosen: dict[str, Any]
    score: float
    trials: list[dict[str, Any]] = field(default_factory=list)


def apply(
    assignment: dict[str, Any], model: ModelConfig, train: TrainConfig
) -> tuple[ModelConfig, TrainConfig]:
    """Configs with ``assignment`` applied; keys train.X, model.X or <architecture>.X (its options)."""
    model_top: dict[str, Any] = {}
    options: dict[str, dict[str, Any]] = {}
    train_update: dict[str, Any] = {}
    for key, value in assignment.items():
        scope, _, name = key.partition(".")
        if not name:
            raise ModelConfigError(f"tuning key {key!r} must look like scope.field")
        if scope == "train":
            target = train_update
        elif scope == "model":
            target = model_top
        elif scope in ModelConfig.model_fields and scope not in ("architecture",):
            target = options.setdefault(scope, {})
        else:
            raise ModelConfigError(f"tuning key {key!r}: unknown scope {scope!r}")
        target[name] = value
    try:
        for scope, change in options.items():
            model_top[scope] = getattr(model, scope).model_validate(
                {**getattr(model, scope).model_dump(), **change}
            )
        new_model = ModelConfig.model_validate({**model.model_dump(), **model_top})
        new_train = TrainConfig.model_validate({**train.model_dump(), **train_update})
    except ValueError as e:
        raise ModelConfigError(f"tuning assignment {assignment} is not a valid configuration: {e}") from e
    return new_model, new_train


def draw_trials(row: Row, tune: TuneConfig) -> list[dict[str, Any]]:
    """``tune.budget`` distinct valid assignments: {} (the base config) first, then random grid points."""
    space = {**tune.common_space, **tune.model_space.get(row.model.architecture, {})}
    space = {k: v for k, v in space.items() if k not in row.fixed}
    keys = sorted(space)
    size = math.prod(len(space[k]) for k in keys)
    rng = random.Random(tune.seed * 1_000_003 + zlib.crc32(row.name.encode()))
    trials: list[dict[str, Any]] = [{}]
    seen = {_key(row.model, row.train)}
    pool: list[tuple] | None = None
    if size <= 4096:  # small grids: sample without replacement from the whole product
        pool = list(itertools.product(*(space[k] for k in keys)))
        rng.shuffle(pool)
    attempts = 0
    while len(trials) < tune.budget and attempts < 50 * tune.budget:
        attempts += 1
        if pool is not None:
            if not pool:
                break
            values = pool.pop()
        else:
            values = tuple(rng.choice(space[k]) for k in keys)
        assignment = dict(zip(keys, values, strict=True))
        try:
            m, t = apply(assignment, row.model, row.train)
        except ModelConfigError:
            continue  # e.g. TAML with no expert at all
        key = _key(m, t)
        if key in seen:
            continue
        seen.add(key)
        trials.append(assignment)
    return trials


def selection_score(metrics: dict[str, float], select: str) -> float:
    """The validation score a trial is ranked by (NaN ranks last)."""
    if select in ("mean_auc", "mean_eauc"):
        suffix = select.removeprefix("mean_")
        values = [metrics.get(f"{task}_{suffix}", math.nan) for task in ("ctr", "cvr", "ctcvr")]
        value = statistics.mean(values)
    else:
        value = metrics.get(select, math.nan)
    return -math.inf if value is None or math.isnan(value) else float(value)


def tune_row(
    row: Row,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    tune: TuneConfig,
    evaluate,
) -> TuneResult:
    """Run every trial of ``row``: ``evaluate(model_cfg, train_cfg, train, valid) -> metrics``.

    The trial's metrics are averaged over ``tune.seeds`` training seeds before ranking.
    """
    trials = draw_trials(row, tune)
    records = []
    for i, assignment in enumerate(trials):
        model_cfg, train_cfg = apply(assignment, row.model, row.train)
        per_seed = []
        for s in range(tune.seeds):
            tc = train_cfg.model_copy(update={"seed": train_cfg.seed + s})
            per_seed.append(evaluate(model_cfg, tc, train, valid))
        metrics = {
            k: statistics.mean(m[k] for m in per_seed) for k in per_seed[0] if _numeric(per_seed[0][k])
        }
        score = selection_score(metrics, tune.select)
        records.append({"assignment": assignment, "metrics": metrics, "score": score})
        log.info(
            "tune %s trial %d/%d: %s -> %s %.4f", row.name, i + 1, len(trials), assignment, tune.select, score
        )
    best = max(records, key=lambda r: r["score"])  # ties: the earlier trial (the base config first)
    return TuneResult(chosen=best["assignment"], score=best["score"], trials=records)


def _key(model: ModelConfig, train: TrainConfig) -> str:
    return repr((model.model_dump(), train.model_dump()))


def _numeric(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)

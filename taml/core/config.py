"""The one typed configuration object.

Layers, later wins: ``config/default.yaml`` (every knob, commented) → ``config/{profile}.yaml`` →
``--config FILE`` (any number) → environment (``TAML__SECTION__KEY=value``) → ``--set a.b=value``.
Values given as strings (environment, ``--set``) are read as YAML scalars, so ``3``, ``0.5``,
``true`` and ``[a, b]`` get their natural types. Every section forbids unknown keys: a typo stops
the run with the key's dotted name and what was expected.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model.spec import FeatureSpec, ModelConfig, TrainConfig, default_feature_spec
from taml.core.secrets import redact

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
ENV_PREFIX = "TAML__"
PROFILE_ENV = "TAML_PROFILE"


class ConfigError(ValueError):
    """A configuration file, override or value is wrong; the message names the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# --------------------------------------------------------------------------------------------
# Sections


class PathsConfig(Section):
    data_root: str = Field(
        "./data", description="Raw, curated and feature data: a folder or gs://bucket/prefix."
    )
    artifact_root: str = Field("./artifacts", description="Models, registry, reports: a folder or gs:// URI.")


class SimulatorScenarios(Section):
    calibration_break_loss: float = Field(
        0.35,
        ge=0,
        le=1,
        description="calibration_break: share of conversion postbacks lost from the scenario day.",
    )
    new_item_flood_multiplier: float = Field(
        10.0, ge=1, description="new_item_flood: new items per day are multiplied by this."
    )
    new_item_flood_share: float = Field(
        0.35, ge=0, le=1, description="new_item_flood: share of impressions given to items born that day."
    )
    ctr_shift_logit: float = Field(
        0.7, description="ctr_shift: added to every click logit from the scenario day."
    )


class WorldDensity(Section):
    """How densely a world is observed: the ratios a data set's statistics table gives."""

    impressions_per_user: float = Field(
        gt=0, description="Impressions per user over simulator.density_days days of traffic."
    )
    impressions_per_item: float = Field(
        gt=0, description="Impressions per item over simulator.density_days days of traffic."
    )
    click_rate: float = Field(gt=0, lt=1, description="Mean CTR (clicks / impressions).")
    conversion_rate: float = Field(gt=0, lt=1, description="Mean post-click CVR (conversions / clicks).")


def _density_presets() -> dict[str, WorldDensity]:
    # Ratios and their sources: docs/SIMULATOR.md ("A world sized to its traffic").
    aliccp = {"impressions_per_user": 210.0, "impressions_per_item": 19.5}
    return {
        "aliccp": WorldDensity(**aliccp, click_rate=0.0405, conversion_rate=0.0053),
        "industrial": WorldDensity(
            impressions_per_user=1500.0, impressions_per_item=19.5, click_rate=0.0405, conversion_rate=0.0053
        ),
        "demo": WorldDensity(**aliccp, click_rate=0.08, conversion_rate=0.07),
    }


class SimulatorConfig(Section):
    epoch: dt.date = Field(dt.date(2020, 1, 1), description="First day the simulated world can be asked for.")
    density: str = Field(
        "aliccp",
        description="Preset of density_presets the population, catalogue and rates follow from "
        "(with the traffic: --impressions-per-day).",
    )
    density_days: int = Field(
        7,
        gt=0,
        description="Days of traffic over which users and items reach the preset's impressions per "
        "user and per item (a training window).",
    )
    density_presets: dict[str, WorldDensity] = Field(
        default_factory=_density_presets,
        description="Named densities: aliccp and industrial from the paper's data sets, demo for make run (ratios and sources: docs/SIMULATOR.md).",
    )
    users: int | None = Field(
        None,
        gt=0,
        description="Size of the user population (null: impressions per day x density_days / impressions_per_user).",
    )
    base_items: int | None = Field(
        None,
        gt=0,
        description="Items that live for the whole history (null: impressions per day x density_days / impressions_per_item).",
    )
    new_items_per_day: int | None = Field(
        None,
        ge=0,
        description="Items born each day, each living item_lifetime_days (null: new_items_rate x base_items).",
    )
    new_items_rate: float = Field(
        0.03, ge=0, description="New items per day as a share of the base catalogue (new_items_per_day null)."
    )
    item_lifetime_days: int = Field(30, gt=0, description="How long a new item stays in the catalogue.")
    categories: int = Field(200, gt=1, description="Item categories; latent factors cluster by category.")
    shops: int | None = Field(
        None, gt=0, description="Shops owning items (null: base_items / items_per_shop)."
    )
    brands: int | None = Field(
        None, gt=0, description="Brands of items (null: base_items / items_per_brand)."
    )
    items_per_shop: float = Field(3.3, gt=0, description="Base items per shop when shops is null.")
    items_per_brand: float = Field(6.7, gt=0, description="Base items per brand when brands is null.")
    occupations: int = Field(20, gt=0, description="Distinct user occupations.")
    latent_shared: int = Field(8, gt=0, description="Latent factors that drive both click and conversion.")
    latent_ctr: int = Field(4, gt=0, description="Latent factors that drive only clicks.")
    latent_cvr: int = Field(4, gt=0, description="Latent factors that drive only conversions.")
    taste_weight: float = Field(
        0.5, ge=0, description="Weight of the user-item shared taste match in both logits (signal strength)."
    )
    clickbait_weight: float = Field(
        0.8, ge=0, description="How strongly an item's click-only appeal lowers its conversion logit."
    )
    target_ctr: float | None = Field(
        None, gt=0, lt=1, description="Mean click rate the world is calibrated to (null: the preset's)."
    )
    target_cvr: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Mean post-click conversion rate the world is calibrated to (null: the preset's).",
    )
    user_activity_alpha: float = Field(
        1.1, gt=0, description="Pareto exponent of user activity (smaller: heavier tail)."
    )
    item_popularity_alpha: float = Field(1.0, gt=0, description="Pareto exponent of item popularity.")
    affinity_share: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Share of candidates drawn from the user's favourite categories (the rest by popularity).",
    )
    favourite_categories: int = Field(
        5, gt=0, description="Categories a user's affinity candidates come from."
    )
    new_item_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of impressions the candidate generator gives to items born today.",
    )
    position_bias: float = Field(0.35, ge=0, description="Click logit lost per unit of log(position).")
    position_decay: float = Field(
        0.08, gt=0, le=1, description="Geometric parameter of the shown position distribution."
    )
    popularity_drift: float = Field(
        0.5, ge=0, description="Amplitude (log scale) of daily item popularity drift."
    )
    profile_change_period_days: int = Field(
        120, gt=1, description="A user's city and an item's price level change once per this many days."
    )
    click_delay_minutes: float = Field(
        6.0, gt=0, description="Mean click delay after the impression (capped at the click window)."
    )
    conversion_delay_hours: float = Field(
        3.0, gt=0, description="Mean conversion delay after the click (capped at 24 h after the impression)."
    )
    click_window_minutes: int = Field(60, gt=0, description="Genuine clicks land within this many minutes.")
    attribution_window_hours: int = Field(
        24, gt=0, le=24, description="Genuine conversions land within this many hours."
    )
    conversion_value_mean: float = Field(40.0, gt=0, description="Mean order value of a conversion.")
    chunk_size: int = Field(
        250_000, gt=0, description="Impressions generated per chunk (bounds memory; part of determinism)."
    )
    gzip: bool = Field(True, description="Write .jsonl.gz (else plain .jsonl).")
    gzip_level: int = Field(1, ge=1, le=9, description="gzip compression level.")
    scenarios: SimulatorScenarios = Field(
        default_factory=SimulatorScenarios,
        description="Parameters of the scenarios (--scenario NAME --scenario-day D).",
    )

    @model_validator(mode="after")
    def _known_density(self) -> SimulatorConfig:
        if self.density not in self.density_presets:
            raise ValueError(
                f"simulator.density {self.density!r} is not one of density_presets "
                f"({', '.join(sorted(self.density_presets))})"
            )
        return self


class IngestConfig(Section):
    click_window_minutes: int = Field(
        60, gt=0, description="A click counts when it follows its impression within this."
    )
    attribution_window_hours: int = Field(
        24,
        gt=0,
        le=24,
        description="A conversion counts when it lands within this of the impression (at most 24 h).",
    )
    runner: str = Field(
        "FnApiRunner", description="Beam runner; never the default DirectRunner (it downloads Prism)."
    )
    pipeline_options: list[str] = Field(
        default_factory=list, description="Extra Beam pipeline options, e.g. --project=p."
    )
    parse_resource_hints: dict[str, str] = Field(
        default_factory=dict,
        description="Beam resource hints of the parse step, e.g. {min_ram: 4GB}; on a portable runner "
        "the step then runs in its own SDK environment (its own worker processes).",
    )
    stats_window_days: int = Field(7, gt=0, description="Trailing window of the user and item stats.")
    stats_prior_impressions: float = Field(
        100.0,
        ge=0,
        description="Smoothed CTR: pseudo-impressions at the window's global CTR added to each entity.",
    )
    stats_prior_clicks: float = Field(
        50.0, ge=0, description="Smoothed CVR: pseudo-clicks at the window's global CVR added to each entity."
    )
    shards: int = Field(
        16, gt=0, description="Hash shards of impression_id for the join (its unit of parallelism)."
    )
    stats_shards: int = Field(8, gt=0, description="Hash shards of user/item ids for the stats aggregation.")
    max_line_bytes: int = Field(
        1_048_576, gt=0, description="Longer raw lines are dead-lettered as line_too_long."
    )
    landing_marker: str = Field(
        "_SUCCESS",
        min_length=1,
        description="A file of this name in a raw partition marks it as completely landed (recorded, not read).",
    )
    line_too_long_keep_bytes: int = Field(
        4096,
        gt=0,
        description="A line_too_long dead letter keeps only this many first bytes (the rest is never buffered).",
    )
    block_bytes: int = Field(
        8_388_608,
        gt=0,
        description="Decompressed bytes parsed per bulk JSON call (memory per worker ~ a few x this).",
    )


class PipelineConfig(Section):
    """The daily run's policy: what to train on, what to call the model."""

    model_name: str = Field("taml", description="Registry name of the model (registry/{model_name}/...).")
    image: str = Field(
        "us-docker.pkg.dev/YOUR_PROJECT/taml/taml-pipeline:0.1.0",
        description="Container image every component runs in (Dockerfile; see docs/PIPELINE.md).",
    )
    schedule_lag_days: int = Field(
        2, ge=1, description="A scheduled run's date D = schedule time minus this (labels of D need D+1)."
    )
    window_days: int = Field(
        7,
        gt=0,
        description="A candidate trains on the validated days among the last this many days before D "
        "(a sliding window ending with D-1; a warm update too, not only the days since its parent).",
    )
    window_min_conversions: int = Field(
        0,
        ge=0,
        description="Extend the window back a day at a time (up to max_window_days) until it holds "
        "this many conversions (0: the window is window_days).",
    )
    max_window_days: int = Field(
        28, gt=0, description="Longest window window_min_conversions may extend to, in days."
    )
    cold_start_days: int = Field(
        3,
        gt=0,
        description="Validated days with feature tables a cold start (no production model) needs in its window.",
    )
    run_report_confidence: float = Field(
        0.95,
        gt=0,
        lt=1,
        description="Confidence of the intervals on the run report page a backfill writes (run_report.html).",
    )
    beam_options: list[str] = Field(
        default_factory=list, description="Extra Beam options the ingest task passes."
    )
    train_cpu: str = Field("4", description="CPU request/limit of the train task on a cluster.")
    train_memory: str = Field("16G", description="Memory limit of the train task on a cluster.")
    train_accelerator: str = Field(
        "nvidia.com/gpu", description="Accelerator type of the train task (Vertex: e.g. NVIDIA_L4)."
    )
    train_accelerator_count: int = Field(1, ge=0, description="Accelerators of the train task (0: none).")
    train_processes: int = Field(
        1,
        ge=0,
        description="Data-parallel processes of the train task (torchrun on its node; gloo on CPU, "
        "NCCL on GPU). 1: in the task's own process; 0: one per visible GPU (1 on CPU).",
    )

    @model_validator(mode="after")
    def _window_fits(self) -> PipelineConfig:
        if self.cold_start_days > self.window_days:
            raise ValueError(
                f"pipeline.cold_start_days ({self.cold_start_days}) exceeds pipeline.window_days "
                f"({self.window_days}): a cold start could never find enough days"
            )
        return self


#: Metrics the gate knows (components/evaluate/evidence.py computes them; docs/PIPELINE.md).
#: AUCs: CTR on all impressions, CVR on clicked ones, CTCVR (pCTR·pCVR) on all. Log losses per
#: task, and ``log_loss``: the joint CTR + CTCVR log loss over all impressions (what training
#: minimizes). Calibration: mean prediction / observed rate per task.
GATE_AUC_METRICS = ("ctr_auc", "cvr_auc", "ctcvr_auc")
GATE_LOG_LOSS_METRICS = ("log_loss", "ctr_log_loss", "cvr_log_loss", "ctcvr_log_loss")
GATE_CALIBRATION_METRICS = ("ctr_calibration", "cvr_calibration", "ctcvr_calibration")
GATE_METRICS = GATE_AUC_METRICS + GATE_LOG_LOSS_METRICS + GATE_CALIBRATION_METRICS


def _known_metrics(names: Iterable[str], known: tuple[str, ...], field: str) -> None:
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"{field}: unknown metric(s) {unknown}; known: {', '.join(known)}")


class GateRules(Section):
    """The blessing rules (components/evaluate, docs/PIPELINE.md "The gate").

    Every comparison is paired on the day's rows and one-sided at ``confidence``: a regression
    fails only when the upper bound of the improvement is below -tolerance, a floor only when the
    upper bound of the metric is below it, a calibration bound only when the interval excludes
    it. Unset (null) rules are skipped; with no rule set at all, nothing is blessed.
    """

    confidence: float = Field(
        0.95, ge=0.5, lt=1, description="One-sided confidence of every bound the gate reads."
    )
    lead: list[str] = Field(
        default_factory=lambda: ["ctcvr_auc", "log_loss"],
        description="Regression metrics with the most signal: checked first, they set min_conversions "
        "and decide a blessing (each must also be in max_regression).",
    )
    max_regression: dict[str, float] = Field(
        default_factory=lambda: {
            "ctcvr_auc": 0.04,
            "log_loss": 0.01,
            # CTR's loss is ~8x CTCVR's in the sum above, so the sum hides a CTCVR regression
            "ctcvr_log_loss": 0.01,
            "ctr_auc": 0.01,
            "cvr_auc": 0.01,
        },
        description="Largest worsening allowed against production (or, before the first deployment, "
        "the base-rate reference) on the same rows: AUC points; log loss as a share of the "
        "reference's; calibration (*_calibration, not set by default: log loss already carries "
        "calibration, and calibration_min/max bound it absolutely) as |ln ratio|.",
    )
    floors: dict[str, float] = Field(
        default_factory=lambda: {"ctr_auc": 0.6, "cvr_auc": 0.55, "ctcvr_auc": 0.6},
        description="Absolute minimum per AUC metric of the candidate on the evaluation day.",
    )
    calibration_min: float | None = Field(
        0.8, description="Lowest mean prediction / observed rate, per task."
    )
    calibration_max: float | None = Field(
        1.25, description="Highest mean prediction / observed rate, per task."
    )
    max_nan_predictions: int | None = Field(0, ge=0, description="NaN or infinite predictions allowed.")
    max_ctcvr_above_ctr_share: float | None = Field(
        0.0, ge=0, description="Share of rows allowed with pCTCVR > pCTR (it is a product: should be 0)."
    )
    require_resolution: bool = Field(
        True,
        description="Not blessed unless the day has min_conversions: the conversions the lead "
        "rules' intervals need to resolve their tolerances (computed each day).",
    )
    bootstrap_resamples: int = Field(
        1000, ge=10, description="Resamples of the paired bootstrap (log-loss comparisons)."
    )
    bootstrap_seed: int = Field(
        0, ge=0, description="Seed of the paired bootstrap (same seed, same verdict)."
    )
    bootstrap_blocks: int = Field(
        2000,
        ge=100,
        description="Random row blocks the bootstrap resamples (its statistics are sums, so blocks "
        "give the variance of resampled rows at a fraction of the cost).",
    )

    @model_validator(mode="after")
    def _metric_names(self) -> GateRules:
        _known_metrics(self.max_regression, GATE_METRICS, "max_regression")
        _known_metrics(self.floors, GATE_AUC_METRICS, "floors")
        _known_metrics(self.lead, GATE_METRICS, "lead")
        missing = [m for m in self.lead if m not in self.max_regression]
        if missing:
            raise ValueError(f"lead: {missing} must also have a tolerance in max_regression")
        bad = {k: v for k, v in {**self.max_regression}.items() if not v > 0}
        if bad:
            raise ValueError(f"max_regression: tolerances must be > 0, got {bad}")
        return self


class EvaluateConfig(Section):
    rules: GateRules = GateRules()
    diagnostic_pairs: int = Field(
        200_000,
        ge=1,
        description="Random pairs of clicked rows behind the concordant-pair share of pCVR and pCTR.",
    )
    diagnostic_seed: int = Field(0, ge=0, description="Seed of those pairs (same seed, same figure).")


class ValidateBounds(Section):
    """Bounds on the day's aggregate figures; one instance per suite (critical stops, warning reports)."""

    min_rows: int = Field(1, ge=0, description="Fewest curated samples the day may have.")
    volume_min_ratio: float = Field(
        0.5, ge=0, description="Lowest samples / trailing median of earlier days."
    )
    volume_max_ratio: float = Field(
        2.0, ge=0, description="Highest samples / trailing median of earlier days."
    )
    ctr_min: float = Field(0.005, ge=0, le=1, description="Lowest base CTR (clicks / impressions).")
    ctr_max: float = Field(0.2, ge=0, le=1, description="Highest base CTR.")
    cvr_min: float = Field(0.001, ge=0, le=1, description="Lowest base CVR (conversions / clicks).")
    cvr_max: float = Field(0.3, ge=0, le=1, description="Highest base CVR.")
    max_dead_letter_share: float = Field(
        0.05, ge=0, le=1, description="Highest dead-lettered / read lines of any source's dt=D partition."
    )


def _warning_bounds() -> ValidateBounds:
    return ValidateBounds(
        min_rows=1000,
        volume_min_ratio=0.8,
        volume_max_ratio=1.25,
        ctr_min=0.01,
        ctr_max=0.1,
        cvr_min=0.005,
        cvr_max=0.1,
        max_dead_letter_share=0.01,
    )


class ValidateConfig(Section):
    critical: ValidateBounds = Field(
        default_factory=ValidateBounds, description="Bounds of the critical suite: a miss stops the run."
    )
    warning: ValidateBounds = Field(
        default_factory=_warning_bounds,
        description="Softer bounds of the warning suite: a miss is only reported.",
    )
    volume_lookback_days: int = Field(
        7, gt=0, description="Earlier days whose median sample count the day's volume is compared with."
    )
    volume_min_history: int = Field(
        3,
        ge=1,
        description="Fewer earlier days with a manifest than this: the volume check is skipped (reported).",
    )
    require_next_day_labels: bool = Field(
        True, description="Fail unless clicks and conversions of dt=D+1 were read and have landed."
    )
    labels_landing: Literal["marker", "volume", "marker_or_volume"] = Field(
        "marker_or_volume",
        description="When dt=D+1 counts as landed: its ingest.landing_marker file, its volume, or either.",
    )
    labels_min_volume_share: float = Field(
        0.5,
        ge=0,
        description="Volume rule: dt=D+1 must hold at least this share of dt=D's lines, per label source.",
    )
    labels_min_lines: int = Field(
        20, ge=0, description="Volume rule: a source with fewer lines on dt=D is not judged by volume."
    )
    warn_min_hours: int = Field(
        24, ge=0, le=24, description="Warning: fewest distinct impression hours the day should cover."
    )


class FeaturesConfig(Section):
    project: str = Field("taml", description="Feast project name (prefix of the online tables).")
    feature_service: str = Field(
        "taml_v1", description="Feature service the training table and serving read."
    )
    stats_ttl_hours: int = Field(
        24,
        gt=0,
        description="Stats older than this are not joined (nulls): stats of D-1 are stamped D 00:00, so 24 h.",
    )
    profile_lookback_days: int | None = Field(
        None,
        ge=1,
        description="Profiles materialized from this many days before D (null: from the first partition).",
    )
    online_write_batch_size: int = Field(
        20_000, gt=0, description="Rows per online-store write during materialization."
    )
    online_check_sample: int = Field(
        100,
        gt=0,
        description="Non-SQLite online stores: keys read back after materializing to check the write.",
    )
    direct_io: bool = Field(
        True,
        description="SQLite or Redis online / DuckDB offline: bulk-write the online store and join point-in-time with "
        "DuckDB in Feast's own formats (same rows; false: through Feast's materialize and get_historical_features).",
    )
    incremental_materialize: bool = Field(
        True,
        description="direct_io, SQLite: write only rows stamped after the previous run's window when that gives the "
        "same online store (unchanged sources and table); false: always the whole window.",
    )
    require_validation: bool = Field(
        True, description="Refuse to build a day's table unless its validation result passed."
    )
    offline_store: Literal["duckdb", "bigquery"] = Field(
        "duckdb", description="Offline store: duckdb (local parquet) or bigquery (gcp profile)."
    )
    online_store: Literal["sqlite", "redis"] = Field(
        "sqlite",
        description="Online store: sqlite under {data_root}/feature_store, or redis (redis and gcp profiles).",
    )
    bigquery_dataset: str = Field(
        "", description="bigquery: project.dataset holding the external tables over the curated parquet."
    )
    redis_connection_string: str = Field(
        "",
        description="redis: host:port[,db=N][,ssl=true] of the online store (Feast's format); never a password: "
        "see redis_password_env.",
    )
    redis_password_env: str = Field(
        "TAML_REDIS_PASSWORD",
        description="redis: environment variable holding the Redis password (unset or empty: no AUTH). The value "
        "is read when connecting, never stored in the configuration or written to a file.",
    )
    redis_timeout_s: float = Field(
        2.0,
        gt=0,
        description="redis: connect and read timeout of the project's own client (a dead server fails fast).",
    )
    redis_retries: int = Field(
        1, ge=0, description="redis: immediate retries of a command after a connection error (no back-off)."
    )
    registry_path: str = Field(
        "",
        description="Feast registry file; empty: {data_root}/feature_store/registry.db (a gs:// URI works).",
    )

    @field_validator("redis_connection_string")
    @classmethod
    def _no_password_in_connection_string(cls, value: str) -> str:
        if any(part.strip().lower().startswith("password=") for part in value.split(",")):
            raise ValueError(
                "holds a password: remove it and put the password in the environment variable named by "
                "features.redis_password_env (default TAML_REDIS_PASSWORD)"
            )
        return value


class MonitorBounds(Section):
    """Two-level bounds of one monitored value: outside warn_* it warns, outside alert_* it alerts.

    Null bounds are not checked. Each bound becomes one Evidently test (alert: critical).
    """

    warn_min: float | None = Field(None, description="Lowest value before a warning (null: none).")
    warn_max: float | None = Field(None, description="Highest value before a warning (null: none).")
    alert_min: float | None = Field(None, description="Lowest value before an alert (null: none).")
    alert_max: float | None = Field(None, description="Highest value before an alert (null: none).")


# Distances only: a column drifts when its score reaches the threshold (p-value tests invert that).
DriftMethod = Literal["jensenshannon", "psi", "wasserstein", "hellinger", "kl_div"]


class MonitorConfig(Section):
    """Step 7: the daily drift and calibration report (monitoring/, docs/MONITORING.md)."""

    reference_days: int = Field(
        7, gt=0, description="Days before D whose predictions form the reference window."
    )
    max_rows: int = Field(
        250_000, gt=0, description="Current day and reference window are each sampled down to this many rows."
    )
    sample_seed: int = Field(0, ge=0, description="Seed of that sampling (same seed, same report).")
    features: list[str] | None = Field(
        None, description="Input columns checked for drift (null: every field of feature_spec)."
    )
    numerical_features: list[str] | None = Field(
        None,
        description="Inputs compared as raw numbers (others: as categories; bucketized fields by bucket).",
    )
    drift_exclude: list[str] = Field(
        default_factory=lambda: ["user_id", "item_id", "shop_id", "brand_id"],
        description="Inputs left out of drift: ids that turn over daily by design (see unseen_share).",
    )
    stats_warmup_exclude: bool = Field(
        True,
        description="Leave the trailing-window stats out of drift while that window is still filling "
        "(the first days of a history, when their counts grow by construction).",
    )
    cat_drift_method: DriftMethod = Field(
        "jensenshannon", description="Evidently drift method of categorical and bucketized inputs."
    )
    cat_drift_threshold: float = Field(
        0.1, gt=0, description="A categorical input drifts at this score or above."
    )
    num_drift_method: DriftMethod = Field(
        "wasserstein", description="Evidently drift method of numerical inputs."
    )
    num_drift_threshold: float = Field(
        0.1, gt=0, description="A numerical input drifts at this score or above."
    )
    unseen_share: dict[str, MonitorBounds] = Field(
        default_factory=lambda: {"item_id": MonitorBounds(warn_max=0.15, alert_max=0.3)},
        description="Per id column: share of day D's rows with an id absent from the reference window.",
    )
    input_drift_share: MonitorBounds = Field(
        default_factory=lambda: MonitorBounds(warn_max=0.1, alert_max=0.25),
        description="Share of drifted input columns.",
    )
    prediction_drift_method: DriftMethod = Field(
        "psi", description="Evidently drift method of p_ctr, p_cvr, p_ctcvr."
    )
    prediction_drift: MonitorBounds = Field(
        default_factory=lambda: MonitorBounds(warn_max=0.1, alert_max=0.25),
        description="Drift score of each prediction column (PSI: 0.1 moderate, 0.25 large).",
    )
    confidence: float = Field(
        0.95,
        ge=0.5,
        lt=1,
        description="One-sided confidence of the intervals the calibration and AUC checks read: a "
        "check fires only when the interval lies wholly beyond its bound.",
    )
    calibration: MonitorBounds = Field(
        default_factory=lambda: MonitorBounds(warn_min=0.9, warn_max=1.11, alert_min=0.8, alert_max=1.25),
        description="Mean prediction / observed rate, per task (CTR all, CVR clicked, CTCVR all); "
        "tested on its Poisson interval.",
    )
    calibration_shift: MonitorBounds = Field(
        default_factory=lambda: MonitorBounds(warn_min=0.9, warn_max=1.11, alert_min=0.8, alert_max=1.25),
        description="Day D's calibration ratio / the reference window's, per task (a break against "
        "the model's own past); tested on its Poisson interval.",
    )
    calibration_overdispersion: bool = Field(
        True,
        description="Widen both calibration checks' intervals (on the log scale) by the reference "
        "days' overdispersion: Laney's sigma_z of their served calibration ratios, floored at 1. A "
        "model's level moves from day to day by more than one day's label noise (the day's new "
        "items, the window's own noise); with the Poisson interval alone that variation alerts on "
        "clean days. Needs 3 reference days with positives.",
    )
    relative_ece: MonitorBounds = Field(
        default_factory=lambda: MonitorBounds(warn_max=0.2, alert_max=0.4),
        description="Expected calibration error / the task's observed rate, per task; tested on "
        "its lower bound (per-bin normal bounds, Bonferroni over bins), since the bare ECE of a "
        "calibrated model on few rows is noise. Relative, so one limit fits every task and density.",
    )
    reliability_bins: int = Field(
        10, ge=2, description="Equal-width bins of ECE and of the reliability table."
    )
    auc_warn_min: dict[str, float] = Field(
        default_factory=lambda: {"ctr": 0.65, "cvr": 0.6, "ctcvr": 0.65},
        description="AUC per task below which it warns (its upper DeLong bound is tested).",
    )
    auc_alert_min: dict[str, float] = Field(
        default_factory=lambda: {"ctr": 0.6, "cvr": 0.55, "ctcvr": 0.6},
        description="AUC per task below which it alerts (the evaluate floors).",
    )
    auc_drop: MonitorBounds = Field(
        default_factory=lambda: MonitorBounds(warn_max=0.02, alert_max=0.05),
        description="Reference-window AUC minus day D's AUC, per task (the AUC trend; its lower "
        "DeLong bound is tested).",
    )
    max_ctcvr_above_ctr_share: float = Field(
        0.0, ge=0, description="Share of rows allowed with pCTCVR > pCTR before an alert (a product: 0)."
    )
    cvr_ctr_spearman: MonitorBounds = Field(
        default_factory=lambda: MonitorBounds(warn_max=0.9),
        description="Spearman rho(pCVR, pCTR | clicked): above it the CVR head only copies the click "
        "ranking (a collapse; model/diagnostics.py).",
    )
    max_nan_prediction_share: float = Field(
        0.0, ge=0, description="Share of rows allowed with a NaN or infinite prediction before an alert."
    )
    min_positives: dict[str, int] = Field(
        default_factory=lambda: {"ctr": 100, "cvr": 50, "ctcvr": 50},
        description="Fewer positives than this in a task: its calibration and AUC tests only warn.",
    )
    validation_failed_status: Literal["warn", "alert"] = Field(
        "warn", description="Status floor of a day whose validation failed (it is scored anyway)."
    )
    no_reference_status: Literal["ok", "warn"] = Field(
        "warn", description="Status floor of a day with no reference predictions (drift not checked)."
    )
    serving_log_dir: str = Field(
        "",
        description="Serving prediction log of day D, {date} filled in (empty: {artifact_root}/serving_log/dt={date}).",
    )
    serving_skew: MonitorBounds = Field(
        default_factory=lambda: MonitorBounds(warn_min=0.9, warn_max=1.11),
        description="Mean served prediction / mean evaluation prediction of the day, per task.",
    )
    persist_scored_predictions: bool = Field(
        True, description="Write predictions the monitor scored itself to predictions/dt=D (later reference)."
    )
    history_days: int = Field(90, gt=0, description="Days shown in the history view.")


class ServingConfig(Section):
    port: int = Field(
        8080, ge=1, le=65535, description="HTTP port (--port, then AIP_HTTP_PORT, win when set)."
    )
    host: str = Field(
        "127.0.0.1",
        description="Interface to listen on (loopback; a container behind a gateway sets 0.0.0.0).",
    )
    auth_token_env: str = Field(
        "",
        description="Environment variable holding the bearer token clients must send (empty: none).",
    )
    limit_concurrency: int = Field(
        64, ge=1, description="Most open connections and requests at once; beyond it uvicorn answers 503."
    )
    backlog: int = Field(128, ge=1, description="Connections waiting to be accepted (listen backlog).")
    timeout_keep_alive_s: int = Field(
        5, ge=1, description="Seconds an idle keep-alive connection stays open."
    )
    body_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a client has to send its whole request body (else 408)."
    )
    max_header_bytes: int = Field(
        16_384, ge=1024, description="Largest request line + headers accepted (bytes)."
    )
    timeout_graceful_shutdown_s: int = Field(
        20, ge=1, description="Seconds requests in flight get to finish after SIGTERM."
    )
    poll_interval_s: float = Field(
        30.0, gt=0, description="Seconds between reads of the production alias (hot swap)."
    )
    store_check_interval_s: float = Field(
        10.0, gt=0, description="Seconds between checks whether the online store was re-materialized."
    )
    max_instances: int = Field(1000, ge=1, description="Most instances in one predict request.")
    max_rank_items: int = Field(500, ge=1, description="Most candidate items in one rank request.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body accepted (bytes).")
    item_cache_size: int = Field(
        200_000,
        ge=0,
        description="Item feature rows kept in memory (0: no cache, every request reads items).",
    )
    log_enabled: bool = Field(True, description="Append every prediction to the serving log.")
    log_dir: str = Field(
        "", description="Serving log folder (empty: {artifact_root}/serving_log); files under dt=YYYY-MM-DD/."
    )
    log_max_file_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="A log file is closed and a new one started past this size."
    )
    log_max_files: int = Field(
        200, ge=1, description="Most log files kept (all days); the oldest are deleted beyond it."
    )
    log_queue_size: int = Field(
        10_000, ge=1, description="Responses waiting to be logged; beyond it they are dropped and counted."
    )
    log_flush_interval_s: float = Field(
        1.0, gt=0, description="Longest time a logged prediction waits before it is written."
    )
    model_cache_dir: str = Field(
        "", description="Local folder for downloaded model versions (empty: a temporary folder)."
    )
    torch_threads: int | None = Field(
        None, ge=1, description="torch intra-op threads of the server (None: torch default)."
    )


class Config(Section):
    profile: Literal["local", "redis", "gcp"] = Field(
        "local", description="Which config/{profile}.yaml was layered on."
    )
    paths: PathsConfig = Field(
        default_factory=PathsConfig,
        description="Where data and artifacts live. Every command also takes --data-root and --artifact-root.",
    )
    simulator: SimulatorConfig = Field(
        default_factory=SimulatorConfig, description="The synthetic ad platform (`taml simulate`)."
    )
    ingest: IngestConfig = Field(
        default_factory=IngestConfig,
        description="Step 1: raw logs -> labeled samples, dead letters, stats (Beam).",
    )
    evaluate: EvaluateConfig = Field(
        default_factory=EvaluateConfig,
        description="Step 5: candidate vs production on the same unseen day, and the blessing rules.",
    )
    validation: ValidateConfig = Field(
        default_factory=ValidateConfig,
        description="Step 2: the validation gate (Great Expectations). `critical` bounds stop the run; "
        "`warning` bounds (softer) are only reported. Results: {artifact_root}/validation/dt=D/.",
    )
    features: FeaturesConfig = Field(
        default_factory=FeaturesConfig,
        description="Step 3: the Feast feature store (feature_repo/, docs/FEATURES.md).",
    )
    pipeline: PipelineConfig = Field(
        default_factory=PipelineConfig,
        description="The daily run's policy (steps 4-6): training window, model name, train task resources.",
    )
    feature_spec: FeatureSpec = Field(
        default_factory=default_feature_spec,
        description="Model inputs: categorical fields and bucketized stats (vocabularies: min_count, "
        "0 = missing, 1 = OOV).",
    )
    model: ModelConfig = Field(
        default_factory=ModelConfig,
        description="The architecture and its options (model/spec.py; only the chosen architecture's "
        "section is used).",
    )
    train: TrainConfig = Field(
        default_factory=TrainConfig,
        description="The trainer (model/trainer.py): paper defaults Adam lr 1e-3, batch 2000, L2 1e-6.",
    )
    monitor: MonitorConfig = Field(
        default_factory=MonitorConfig,
        description="Step 7: the daily drift and calibration report (monitoring/, docs/MONITORING.md). "
        "Two-level bounds: outside warn_* the day warns, outside alert_* it alerts (null: not checked).",
    )
    serving: ServingConfig = Field(
        default_factory=ServingConfig,
        description="`taml serve`: the online prediction server (serving/, docs/SERVING.md).",
    )

    @model_validator(mode="after")
    def _windows_agree(self) -> Config:
        if self.simulator.attribution_window_hours > self.ingest.attribution_window_hours:
            raise ValueError(
                "simulator.attribution_window_hours must not exceed ingest.attribution_window_hours"
            )
        return self


# --------------------------------------------------------------------------------------------
# Loading


def load_config(
    profile: str | None = None,
    files: Iterable[str | Path] = (),
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration from its layers; raises :class:`ConfigError` naming the key."""
    env = os.environ if env is None else env
    profile = profile or env.get(PROFILE_ENV) or "local"
    data: dict[str, Any] = _read_yaml(CONFIG_DIR / "default.yaml")
    profile_file = CONFIG_DIR / f"{profile}.yaml"
    if not profile_file.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "default")
        raise ConfigError(f"unknown profile {profile!r}: expected one of {', '.join(known)}")
    _merge(data, _read_yaml(profile_file))
    data["profile"] = profile
    for f in files:
        _merge(data, _read_yaml(Path(f)))
    for key, raw in sorted(env.items()):
        if key.startswith(ENV_PREFIX):
            dotted = key[len(ENV_PREFIX) :].lower().replace("__", ".")
            _set_dotted(data, dotted, _scalar(raw), source=f"environment variable {key}")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad override {redact(item)!r}: expected key.path=value")
        _set_dotted(data, key.strip(), _scalar(raw), source=f"--set {redact(item)}")
    return validate(data)


def validate(data: Mapping[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_errors(e)) from None


def format_errors(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent_key = ".".join(str(p) for p in err["loc"][:-1])
            known = _known_keys(parent_key)
            hint = (
                f" (known keys{' of ' + parent_key if parent_key else ''}: {', '.join(known)})"
                if known
                else ""
            )
            lines.append(f"unknown config key {key!r}{hint}")
        else:
            lines.append(f"config key {key!r}: {err['msg']} (got {redact(repr(err.get('input')))})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _known_keys(dotted: str) -> list[str]:
    model: Any = Config
    for part in filter(None, dotted.split(".")):
        field = model.model_fields.get(part)
        if (
            field is None
            or not isinstance(field.annotation, type)
            or not issubclass(field.annotation, BaseModel)
        ):
            return []
        model = field.annotation
    return sorted(model.model_fields)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {path}: expected a mapping at the top level, got {type(loaded).__name__}"
        )
    return loaded


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: {'.'.join(parts[: i + 1])!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def dump(config: Config) -> str:
    """The effective configuration as YAML (for run records and ``taml config``)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)

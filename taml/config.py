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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
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


class SimulatorConfig(Section):
    epoch: dt.date = Field(dt.date(2020, 1, 1), description="First day the simulated world can be asked for.")
    users: int = Field(50_000, gt=0, description="Size of the user population.")
    base_items: int = Field(10_000, gt=0, description="Items that live for the whole history.")
    new_items_per_day: int = Field(
        300, ge=0, description="Items born each day (each lives item_lifetime_days)."
    )
    item_lifetime_days: int = Field(30, gt=0, description="How long a new item stays in the catalogue.")
    categories: int = Field(200, gt=1, description="Item categories; latent factors cluster by category.")
    shops: int = Field(3_000, gt=0, description="Shops owning items.")
    brands: int = Field(1_500, gt=0, description="Brands of items.")
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
    target_ctr: float = Field(0.04, gt=0, lt=1, description="Mean click rate the world is calibrated to.")
    target_cvr: float = Field(
        0.02, gt=0, lt=1, description="Mean post-click conversion rate the world is calibrated to."
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
    scenarios: SimulatorScenarios = SimulatorScenarios()


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
    stats_window_days: int = Field(7, gt=0, description="Trailing window of the user and item stats.")
    stats_prior_impressions: float = Field(
        100.0, ge=0, description="Smoothed CTR: pseudo-impressions at the window's global CTR added to each entity."
    )
    stats_prior_clicks: float = Field(
        50.0, ge=0, description="Smoothed CVR: pseudo-clicks at the window's global CVR added to each entity."
    )
    shards: int = Field(16, gt=0, description="Hash shards of impression_id for the join (its unit of parallelism).")
    stats_shards: int = Field(8, gt=0, description="Hash shards of user/item ids for the stats aggregation.")
    max_line_bytes: int = Field(1_048_576, gt=0, description="Longer raw lines are dead-lettered as line_too_long.")
    block_bytes: int = Field(
        8_388_608, gt=0, description="Decompressed bytes parsed per bulk JSON call (memory per worker ~ a few x this)."
    )


class GateRules(Section):
    """The blessing rules. Unset (null) rules are skipped; with no rule set at all, nothing is blessed."""

    floors: dict[str, float] = Field(
        default_factory=lambda: {"ctr_auc": 0.6, "cvr_auc": 0.55, "ctcvr_auc": 0.6},
        description="Absolute minimum per metric (AUCs of the candidate on the evaluation day).",
    )
    max_regression: dict[str, float] = Field(
        default_factory=lambda: {"ctr_auc": 0.005, "cvr_auc": 0.01, "ctcvr_auc": 0.01},
        description="Largest drop allowed against production on the same day, per metric.",
    )
    calibration_min: float | None = Field(0.8, description="Lowest mean prediction / observed rate, per task.")
    calibration_max: float | None = Field(1.25, description="Highest mean prediction / observed rate, per task.")
    max_nan_predictions: int | None = Field(0, ge=0, description="NaN or infinite predictions allowed.")
    max_ctcvr_above_ctr_share: float | None = Field(
        0.0, ge=0, description="Share of rows allowed with pCTCVR > pCTR (it is a product: should be 0)."
    )
    min_clicks: int | None = Field(100, ge=0, description="Fewest clicks on the evaluation day for a verdict.")
    min_conversions: int | None = Field(20, ge=0, description="Fewest conversions on the evaluation day for a verdict.")


class EvaluateConfig(Section):
    rules: GateRules = GateRules()


class Config(Section):
    profile: Literal["local", "gcp"] = Field(
        "local", description="Which config/{profile}.yaml was layered on."
    )
    paths: PathsConfig = PathsConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    ingest: IngestConfig = IngestConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

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
            raise ConfigError(f"bad override {item!r}: expected key.path=value")
        _set_dotted(data, key.strip(), _scalar(raw), source=f"--set {item}")
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
            lines.append(f"config key {key!r}: {err['msg']} (got {err.get('input')!r})")
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

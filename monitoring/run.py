"""``run_monitor``: the monitoring step of the daily run for day D (DESIGN.md step 7).

It runs every day, also when validation stopped the run: a day that failed validation is the
day that most needs a report, so whatever predictions exist are scored and the report says that
validation failed. Outputs, under ``{artifact_root}/monitoring/dt=D/``: ``report.html`` (Evidently,
self-contained), ``report.json`` (Evidently's metrics and tests) and ``status.json`` (the status,
headline figures, failed tests and notes; written last, so its presence means the day is done);
then the history view across days is rebuilt.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from monitoring import calibration as C
from monitoring import history as H
from monitoring.inputs import (
    FeatureColumns,
    MonitorInputError,
    ReferenceWindow,
    check_predictions,
    feature_columns,
    load_day,
    load_reference,
    load_serving_log,
    sample,
    serving_log_dir,
)
from monitoring.report import ExternalFigure, run_report
from monitoring.status import Status, day_status, outcomes
from taml.core import layout as L
from taml.core import storage
from taml.core.config import Config, MonitorBounds
from taml.core.errors import TamlError
from taml.core.feature_repo import stats_features

log = logging.getLogger(__name__)

#: Scores day D with the model that served it, on D's curated samples with point-in-time features.
Scorer = Callable[[Config, dt.date, str, str], pd.DataFrame]

#: Scores rows that carry the model's input columns with one registered model version:
#: ``(config, artifact_root, version, rows) -> DataFrame[p_ctr, p_cvr, p_ctcvr]``, one row per row.
#: The monitor re-scores the reference window with the model that served day D through it.
VersionScorer = Callable[[Config, str, str, pd.DataFrame], pd.DataFrame]

REPORT_HTML = "report.html"
REPORT_JSON = "report.json"
STATUS_JSON = "status.json"


@dataclass
class MonitorResult:
    date: str
    status: Status
    headline_metrics: dict[str, float]
    html_uri: str
    json_uri: str
    status_uri: str
    history_uri: str | None = None
    problems: list[str] = field(default_factory=list)  # tests that warned or alerted
    notes: list[str] = field(default_factory=list)
    rows: int = 0
    rows_used: int = 0
    sampled: bool = False
    reference_days: list[str] = field(default_factory=list)
    validation_failed: bool = False
    predictions_source: str = ""
    model_versions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["headline_metrics"] = {k: _finite_or_none(v) for k, v in self.headline_metrics.items()}
        return d


def _finite_or_none(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def monitoring_dir(artifact_root: str, day: dt.date) -> str:
    return L.run_dir(artifact_root, "monitoring", day)


def _obtain_predictions(
    config: Config,
    day: dt.date,
    data_root: str,
    artifact_root: str,
    predictions: pd.DataFrame | None,
    scorer: Scorer | None,
) -> tuple[pd.DataFrame, str]:
    if predictions is not None:
        return predictions, "passed in by the pipeline"
    where = L.predictions_dir(artifact_root, day)
    df = load_day(artifact_root, day)
    if df is not None:
        return df, where
    if scorer is None:
        raise MonitorInputError(
            f"no predictions for {day} (nothing under {where}) and no scorer available "
            "(pass scorer=, or run the pipeline's evaluate step for that day first)"
        )
    log.info("no predictions under %s: scoring %s with the model that served it", where, day)
    df = scorer(config, day, data_root, artifact_root)
    if df is None or not len(df):
        raise MonitorInputError(f"the scorer returned no predictions for {day}")
    if config.monitor.persist_scored_predictions:
        uri = storage.join(where, "part-monitor.parquet")
        with storage.open_write(uri) as f:
            df.to_parquet(f, index=False)
    return df, "scored by the monitor"


def _versions(df: pd.DataFrame) -> list[str]:
    return sorted(str(v) for v in df["model_version"].dropna().unique()) if "model_version" in df else []


def _scored_like_day_d(
    config: Config,
    artifact_root: str,
    window: ReferenceWindow,
    versions: list[str],
    scorer: VersionScorer | None,
) -> tuple[pd.DataFrame | None, str]:
    """The reference window as the model that served day D scores it, and a note saying how.

    Each reference day was scored by the model that served *that* day; compared with day D's
    scores, a model update alone would read as prediction drift and as a calibration shift. The
    rows scored by another version are scored again with D's version (the rows are the sample
    already drawn, at most ``max_rows`` in all), so the comparison holds the model fixed and only
    the world can move it. The served scores stay beside them (``calibration.SERVED``) for the
    AUC trend, which must compare out-of-sample AUCs (``calibration.auc_drop_interval``). Where that is impossible (no scorer, several versions on day D, the
    version not in the registry) the window stays as served and the note says so.
    """
    reference = window.frame
    if reference is None:
        return None, ""
    served = _versions(reference)
    if len(versions) != 1:
        return reference, (
            f"reference window as served ({', '.join(served) or 'unknown'}): day D has "
            f"{len(versions)} model versions, so there is no single model to re-score it with"
        )
    version = versions[0]
    stale = (
        reference["model_version"].astype(str).ne(version).to_numpy()
        if "model_version" in reference
        else np.ones(len(reference), dtype=bool)
    )
    if not stale.any():
        return reference, f"reference window scored by {version}, the model of day D"
    others = sorted({str(v) for v in reference.loc[stale, "model_version"].dropna()}) if served else []
    what = f"{int(stale.sum()):,} rows scored by {', '.join(others) or 'an unknown version'}"
    if scorer is None:
        return reference, f"reference window as served ({what}; no scorer to re-score them with {version})"
    try:
        scores = scorer(config, artifact_root, version, reference.loc[stale].reset_index(drop=True))
    except TamlError as e:  # the version is not in the registry, or its files are damaged
        return reference, f"reference window as served ({what}): not re-scored with {version}: {e}"
    if len(scores) != int(stale.sum()):
        raise MonitorInputError(
            f"re-scoring the reference window with {version} returned {len(scores)} rows for {int(stale.sum())}"
        )
    out = reference.copy()
    for col in C.PREDICTIONS:
        out[C.SERVED[col]] = out[col].to_numpy(np.float64)  # the AUC trend reads these
        out.loc[stale, col] = scores[col].to_numpy(np.float64)
    out["model_version"] = version
    out = check_predictions(out, f"reference window re-scored with {version}")
    return out, f"reference window re-scored with {version}, the model of day D ({what} before)"


def _without_warming_stats(
    config: Config, data_root: str, days: list[dt.date], features: FeatureColumns
) -> tuple[FeatureColumns, list[str]]:
    """``features`` less the trailing-window stats when a compared day saw a partial window.

    A row of day X carries the stats as of the end of X-1 (point-in-time). While the history is
    shorter than the window, those counts grow day by day by construction, and every drift test
    on them would fire through the first week. Ingest records the days each window used
    (``manifest.inputs.stats_days``); an absent manifest proves nothing (predictions passed in
    from elsewhere, or the day before a history) and leaves the stats in.
    """
    watched = stats_features() & set(features.all)
    if not watched:
        return features, []
    need = config.ingest.stats_window_days
    short = []
    for x in sorted(days):
        uri = L.manifest_path(data_root, x - dt.timedelta(days=1))
        if not storage.exists(uri):
            continue
        used = len(storage.read_json(uri).get("inputs", {}).get("stats_days", []))
        if used < need:
            short.append(f"{x}: {used} of {need} days")
    if not short:
        return features, []
    return features.keep(set(features.all) - watched), short


def _present(features: FeatureColumns, *frames: pd.DataFrame | None) -> tuple[FeatureColumns, list[str]]:
    """Features present in every frame; the absent ones are reported.

    An all-null column stays in: for a bucketized stat that is the "missing" bucket taking every
    row, which the drift comparison should see, not a missing input to skip.
    """
    missing = [c for c in features.all if any(f is not None and c not in f.columns for f in frames)]
    return features.keep(set(features.all) - set(missing)), missing


def _serving_figures(
    config: Config, log_df: pd.DataFrame, current: pd.DataFrame
) -> tuple[list[ExternalFigure], str]:
    figures = []
    for task, col in C.TASK_PREDICTION.items():
        served = log_df[col].to_numpy(np.float64)
        evaluated = current[col].to_numpy(np.float64)
        served, evaluated = served[np.isfinite(served)], evaluated[np.isfinite(evaluated)]
        ratio = (
            served.mean() / evaluated.mean()
            if served.size and evaluated.size and evaluated.mean() > 0
            else math.nan
        )
        figures.append(
            ExternalFigure(
                key=f"serving_skew_{task}",
                name=f"Serving skew {task.upper()}: mean served {col} / mean evaluation {col}",
                value=float(ratio),
                bounds=config.monitor.serving_skew,
            )
        )
    versions = (
        sorted(str(v) for v in log_df["model_version"].dropna().unique()) if "model_version" in log_df else []
    )
    note = f"serving log: {len(log_df):,} predictions, model version(s) {', '.join(versions) or 'unknown'}"
    return figures, note


def run_monitor(
    config: Config,
    date: dt.date | str,
    data_root: str | None = None,
    artifact_root: str | None = None,
    predictions: pd.DataFrame | None = None,
    validation_failed: bool = False,
    scorer: Scorer | None = None,
    write_history: bool = True,
    reference_scorer: VersionScorer | None = None,
) -> MonitorResult:
    """Monitor day D: report, status and history. Raises ``MonitorInputError`` on unusable input.

    ``reference_scorer`` re-scores the reference window with day D's model version (see
    :func:`_scored_like_day_d`); without it the window is compared as served.
    """
    t0 = time.perf_counter()
    day = L.parse_date(date)
    cfg = config.monitor
    data_root = data_root or config.paths.data_root
    artifact_root = artifact_root or config.paths.artifact_root

    raw, source = _obtain_predictions(config, day, data_root, artifact_root, predictions, scorer)
    current_all = check_predictions(raw, f"predictions of {day} ({source})")
    n_rows = len(current_all)
    current, sampled = sample(current_all, cfg.max_rows, cfg.sample_seed)

    per_day = max(1, math.ceil(cfg.max_rows / cfg.reference_days))
    window = load_reference(artifact_root, day, cfg.reference_days, per_day, cfg.sample_seed)
    versions = _versions(current_all)
    reference, rescored = _scored_like_day_d(config, artifact_root, window, versions, reference_scorer)
    features, missing_features = _present(feature_columns(config), current, reference)
    warming: list[str] = []
    if reference is not None and cfg.stats_warmup_exclude:
        features, warming = _without_warming_stats(config, data_root, [day, *window.days], features)

    notes: list[str] = []
    floors: list[Status] = []
    notes.append(
        f"day {day}: {n_rows:,} predictions ({source}); model version(s) {', '.join(versions) or 'unknown'}"
    )
    if sampled:
        notes.append(
            f"SAMPLED: {len(current):,} of {n_rows:,} rows of day D (monitor.max_rows = {cfg.max_rows:,}, "
            f"seed {cfg.sample_seed}); every figure of this report is computed on the sample"
        )
    if reference is None:
        notes.append(
            f"NO REFERENCE: no predictions in the {cfg.reference_days} days before {day}; drift not checked"
        )
        floors.append("warn" if cfg.no_reference_status == "warn" else "ok")
    else:
        notes.append(
            f"reference: {len(reference):,} rows from {len(window.days)} day(s) "
            f"{window.days[0]} .. {window.days[-1]} (at most {per_day:,} rows a day)"
        )
        notes.append(rescored)
        if window.missing_days:
            notes.append(f"reference days without predictions: {', '.join(map(str, window.missing_days))}")
    if validation_failed:
        notes.append("VALIDATION FAILED for this day: the data may be wrong; scored anyway")
        floors.append(cfg.validation_failed_status)
    if missing_features:
        notes.append(f"input columns missing (left out of drift): {', '.join(missing_features)}")
    if warming:
        notes.append(
            f"stats window still filling ({'; '.join(warming)}): the trailing-window stats are left out "
            "of drift until every compared day sees a full window"
        )

    external = [
        ExternalFigure(
            key="validation_failed",
            name="Validation failed for day D (1 = yes)",
            value=1.0 if validation_failed else 0.0,
            bounds=MonitorBounds(
                **({"alert_max": 0.0} if cfg.validation_failed_status == "alert" else {"warn_max": 0.0})
            ),
        ),
        ExternalFigure(
            key="missing_input_columns",
            name="Input columns missing",
            value=float(len(missing_features)),
            bounds=MonitorBounds(warn_max=0.0),
            note=", ".join(missing_features),
        ),
    ]
    log_uri = serving_log_dir(config, artifact_root, day)
    serving = load_serving_log(log_uri)
    if serving is None:
        notes.append(f"no serving prediction log under {log_uri}")
    else:
        figures, note = _serving_figures(config, serving, current_all)
        external.extend(figures)
        notes.append(note)

    metadata = {"date": day.isoformat(), "step": "monitor", "model_versions": ",".join(versions)}
    report_cfg = cfg
    if reference is not None and len(window.days) < cfg.reference_days and cfg.unseen_share:
        # An id seen a few times a day is absent from a short window by chance: on `make run`
        # (60k impressions, ~21k items) a clean day's unseen item share is 0.21 against one
        # reference day and 0.12 against five. Until the window is full the share is shown, not
        # tested; the cold-start flood it is for still shows as input drift.
        report_cfg = cfg.model_copy(update={"unseen_share": {c: MonitorBounds() for c in cfg.unseen_share}})
        notes.append(
            f"reference window holds {len(window.days)} of {cfg.reference_days} days: the unseen "
            f"{', '.join(cfg.unseen_share)} share is shown, not tested, until it is full"
        )
    run = run_report(current, reference, report_cfg, features, external, notes, metadata)
    tests = outcomes(run.snapshot.tests_results)
    status = day_status(tests, floors)
    headline = {**run.headline, "rows": float(n_rows), "rows_used": float(len(current))}

    out_dir = monitoring_dir(artifact_root, day)
    html_uri, json_uri, status_uri = (
        storage.join(out_dir, n) for n in (REPORT_HTML, REPORT_JSON, STATUS_JSON)
    )
    storage.write_text(html_uri, run.snapshot.get_html_str(as_iframe=False))
    storage.write_text(json_uri, run.snapshot.json())
    result = MonitorResult(
        date=day.isoformat(),
        status=status,
        headline_metrics=headline,
        html_uri=html_uri,
        json_uri=json_uri,
        status_uri=status_uri,
        problems=[f"{t.status}: {t.description}" for t in tests if t.status != "ok"],
        notes=notes,
        rows=n_rows,
        rows_used=len(current),
        sampled=sampled,
        reference_days=[d.isoformat() for d in window.days],
        validation_failed=validation_failed,
        predictions_source=source,
        model_versions=versions,
    )
    result.seconds = time.perf_counter() - t0
    storage.write_text(status_uri, json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
    if write_history:
        _, result.history_uri = H.write_history(artifact_root, until=day, days=cfg.history_days)
    log.info("monitor %s: %s (%d problems, %.1f s)", day, status, len(result.problems), result.seconds)
    return result

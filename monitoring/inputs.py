"""What the monitor reads: day D's predictions, the reference window, the serving log.

Every problem with the input is a :class:`MonitorInputError` that names the day, the place and
what was wrong, so the CLI and the pipeline print one line instead of a traceback.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitoring.calibration import CLICK, CONVERSION, LABELS, PREDICTIONS
from taml.core import layout as L
from taml.core import storage
from taml.core.config import Config
from taml.core.errors import TamlError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = (*LABELS, *PREDICTIONS)
SERVING_REQUIRED = ("p_ctr", "p_cvr", "p_ctcvr")


class MonitorInputError(TamlError):
    """The monitor's input is missing or unusable; the message says which and where."""


@dataclass(frozen=True)
class FeatureColumns:
    """The inputs watched for drift, by how their distribution is compared.

    Bucketized stats are compared as the model sees them, bucket by bucket (null = bucket 0),
    so a flood of entities without history shows up as a jump of the "missing" bucket.
    """

    categorical: list[str]
    numerical: list[str]
    bucketized: dict[str, list[float]] = field(default_factory=dict)

    @property
    def all(self) -> list[str]:
        return [*self.categorical, *self.bucketized, *self.numerical]

    def keep(self, names: set[str]) -> FeatureColumns:
        return FeatureColumns(
            [c for c in self.categorical if c in names],
            [c for c in self.numerical if c in names],
            {c: b for c, b in self.bucketized.items() if c in names},
        )


def feature_columns(config: Config) -> FeatureColumns:
    """The input columns watched for drift: ``monitor.features`` or the model's feature spec."""
    spec = {f.source: f for f in config.feature_spec.fields}
    cfg = config.monitor
    names = cfg.features if cfg.features is not None else list(spec)
    numerical = set(cfg.numerical_features or [])
    excluded = set(cfg.drift_exclude)
    out = FeatureColumns([], [], {})
    for name in names:
        if name in excluded:
            continue
        f = spec.get(name)
        if name in numerical:
            out.numerical.append(name)
        elif f is not None and f.kind == "bucketized" and f.boundaries:
            out.bucketized[name] = list(f.boundaries)
        else:
            out.categorical.append(name)
    return out


def read_parquet_dir(uri: str) -> pd.DataFrame | None:
    """All parquet files under a folder as one frame; None when there are none."""
    files = storage.list_files(uri, suffix=".parquet")
    if not files:
        return None
    frames = []
    for f in files:
        try:
            frames.append(pd.read_parquet(f, storage_options=storage.fsspec_options(f) or None))
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise MonitorInputError(f"{f}: not a readable parquet file ({e})") from e
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def check_predictions(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Column, label and prediction checks; returns the frame with numeric label/score dtypes."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise MonitorInputError(
            f"{where}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED_COLUMNS)})"
        )
    if not len(df):
        raise MonitorInputError(f"{where}: no rows (an empty day cannot be monitored)")
    df = df.copy()
    for col in LABELS:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = ~values.isin([0, 1])
        if bad.any():
            raise MonitorInputError(
                f"{where}: column {col!r} must be 0/1; {int(bad.sum())} row(s) are not "
                f"(e.g. {df.loc[bad, col].iloc[0]!r})"
            )
        df[col] = values.astype("int64")
    if ((df[CONVERSION] == 1) & (df[CLICK] == 0)).any():
        n = int(((df[CONVERSION] == 1) & (df[CLICK] == 0)).sum())
        raise MonitorInputError(f"{where}: {n} row(s) have conversion = 1 without click = 1")
    for col in PREDICTIONS:
        try:
            df[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
        except (ValueError, TypeError) as e:
            raise MonitorInputError(f"{where}: column {col!r} is not numeric ({e})") from e
        if not np.isfinite(df[col].to_numpy()).any():
            raise MonitorInputError(f"{where}: column {col!r} has no finite value (all NaN or infinite)")
    return df


@dataclass
class ReferenceWindow:
    frame: pd.DataFrame | None
    days: list[dt.date] = field(default_factory=list)
    missing_days: list[dt.date] = field(default_factory=list)


def load_day(artifact_root: str, day: dt.date) -> pd.DataFrame | None:
    """``predictions/dt=D`` as a frame, None when the folder has no parquet file."""
    return read_parquet_dir(L.predictions_dir(artifact_root, day))


def load_reference(
    artifact_root: str, day: dt.date, days: int, max_rows_per_day: int, seed: int
) -> ReferenceWindow:
    """The ``days`` days before ``day``; a missing or unusable day is skipped and reported.

    Each day is sampled to ``max_rows_per_day`` as it is read, so a week of 1M-row days never
    sits in memory whole.
    """
    frames, found, missing = [], [], []
    for k in range(days, 0, -1):
        d = day - dt.timedelta(days=k)
        where = L.predictions_dir(artifact_root, d)
        try:
            df = load_day(artifact_root, d)
            if df is None:
                missing.append(d)
                continue
            df = check_predictions(df, where)
        except MonitorInputError as e:
            log.warning("reference day %s skipped: %s", d, e)
            missing.append(d)
            continue
        if len(df) > max_rows_per_day:
            df = df.sample(n=max_rows_per_day, random_state=np.random.RandomState([seed, d.toordinal()]))
        frames.append(df)
        found.append(d)
    frame = pd.concat(frames, ignore_index=True) if frames else None
    return ReferenceWindow(frame, found, missing)


def serving_log_dir(config: Config, artifact_root: str, day: dt.date) -> str:
    template = config.monitor.serving_log_dir
    if not template:
        return storage.join(artifact_root, "serving_log", L.partition(day))
    return template.format(date=day.isoformat(), artifact_root=artifact_root)


def load_serving_log(uri: str) -> pd.DataFrame | None:
    """The serving prediction log (JSON lines, optionally gzipped) under ``uri``; None when absent.

    Lines that are not JSON objects are skipped (the log is best effort; its row count is shown).
    """
    files = storage.list_files(uri, suffix=(".jsonl", ".jsonl.gz", ".json", ".json.gz"))
    if not files:
        return None
    rows = []
    for f in files:
        data = storage.read_bytes(f)
        if f.endswith(".gz"):
            data = gzip.decompress(data)
        for line in io.BytesIO(data):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                rows.append(obj)
    if not rows:
        return None
    df = pd.DataFrame(rows)
    missing = [c for c in SERVING_REQUIRED if c not in df.columns]
    if missing:
        raise MonitorInputError(f"{uri}: serving log lacks field(s) {', '.join(missing)}")
    for c in SERVING_REQUIRED:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def sample(df: pd.DataFrame, max_rows: int, seed: int) -> tuple[pd.DataFrame, bool]:
    """A uniform sample of at most ``max_rows`` rows (and whether it was sampled)."""
    if len(df) <= max_rows:
        return df, False
    return df.sample(n=max_rows, random_state=seed).reset_index(drop=True), True

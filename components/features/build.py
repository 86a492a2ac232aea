"""Step 3: apply the repo, materialize the window ending with D, build the point-in-time table.

Windows (all UTC; Feast's materialize bounds are inclusive):

- end = D+1 00:00, i.e. the end of day D: profile changes of D and the stats of D (stamped
  D+1 00:00) are the last rows written.
- stats: (end - stats_ttl, end], so only the stats "as of the end of D" (24 h by default).
- profiles: [end - profile_lookback_days, end], by default from the first partition: an online
  store rebuilt from scratch (new machine, backfill) then holds every entity's current profile.

The same window always writes the same rows, so re-runs and backfills are exact; a backfill that
ends on an older day leaves the online store "as of" that day (run the latest day last).

With the SQLite online store and the DuckDB offline store (the local profile) and
``features.direct_io`` (default), materialization and the point-in-time join run as bulk SQL in
Feast's own formats (``components.features.online_write`` with the format of ``featurestore``,
and ``components.features.direct``: same online rows, same joined values as Feast, tested) and
the repo is applied only when its definitions changed: the common daily run does not import Feast. ``features.incremental_materialize`` then writes only rows stamped after
the previous run's window when that is provably the same result (see ``MaterializationState``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.features import direct as D
from components.features import online_write as W
from components.features import sources as S
from components.features.store import apply, definitions, ensure_applied
from featurestore import FeatureStoreError, online_db_path, sqlite_table
from taml.core import layout as L
from taml.core import storage
from taml.core.config import Config

log = logging.getLogger(__name__)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: An impression at t sees feature rows stamped strictly before t; Feast joins rows stamped at or
#: before the entity timestamp, so the entity timestamp is moved back by this much.
STRICTLY_BEFORE = pd.Timedelta(microseconds=1)
TABLE_FILE = "part-00000.parquet"


class TrainingTableError(FeatureStoreError):
    """The point-in-time table broke one of its guarantees (one row per sample, ...)."""


@dataclass
class Window:
    start: dt.datetime
    end: dt.datetime


@dataclass
class FeaturesResult:
    date: str
    table_path: str
    rows: int
    columns: list[str]
    feature_columns: list[str]
    windows: dict[str, tuple[str, str]] = field(default_factory=dict)
    online_rows: dict[str, int] = field(default_factory=dict)
    null_share: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def day_end(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def windows(config: Config, day: dt.date) -> dict[str, Window]:
    f = config.features
    end = day_end(day)
    stats_start = end - dt.timedelta(hours=f.stats_ttl_hours) + dt.timedelta(microseconds=1)
    profile_start = end - dt.timedelta(days=f.profile_lookback_days) if f.profile_lookback_days else EPOCH
    return {
        view: Window(stats_start if kind == "stats" else profile_start, end)
        for view, (_, kind) in definitions().VIEWS.items()
    }


# --------------------------------------------------------------------------------------------
# Materialization


def direct_online(config: Config) -> bool:
    """Materialize with the bulk SQLite or Redis writer (else through Feast's materialize)."""
    return config.features.direct_io and config.features.online_store in ("sqlite", "redis")


def direct_offline(config: Config) -> bool:
    """Join point-in-time with DuckDB ASOF joins over the sources (else Feast's get_historical_features)."""
    return config.features.direct_io and config.features.offline_store == "duckdb"


def materialize(config: Config, day: dt.date | str, data_root: str, store=None) -> dict[str, int]:
    """Write the window ending with D to the online store; returns online rows per view (checked)."""
    day = L.parse_date(day)
    if direct_online(config):
        with duckdb.connect() as duck:
            infos = {s.view: s for s in S.check_sources(data_root, con=duck)}
            if store is None:
                ensure_applied(config, data_root)
            return _materialize_direct(config, day, data_root, infos, duck)
    infos = {s.view: s for s in S.check_sources(data_root)}
    store = store or apply(config, data_root)
    written: dict[str, int] = {}
    for view, w in windows(config, day).items():
        expected = _expected_keys(infos[view], w)
        store.materialize(w.start, w.end, feature_views=[view])
        written[view] = _check_online(config, store, data_root, infos[view], w, expected)
        log.info("materialized %s: %d entities in [%s, %s]", view, written[view], w.start, w.end)
    return written


def _materialize_direct(
    config: Config,
    day: dt.date,
    data_root: str,
    infos: dict[str, S.SourceInfo],
    duck: duckdb.DuckDBPyConnection,
) -> dict[str, int]:
    """Each view's window through the configured store's writer, then what the store holds counted."""
    d = definitions()
    target = W.open_target(config, data_root)
    written: dict[str, int] = {}
    done: dict[str, tuple[str, str]] = {}
    try:
        for view, w in windows(config, day).items():
            info = infos[view]
            entity, kind = d.VIEWS[view]
            s = W.ViewSlice(info, d.feature_dtypes(entity, kind), w.start, w.end)
            expected = _expected_keys(info, w, duck)
            out = target.write(s, duck)
            got = target.held(s, out)
            if got != expected:
                target.failed(view)
                raise FeatureStoreError(
                    f"online store {target.where}: {view} has {expected} entities in [{w.start}, {w.end}] "
                    f"but {got} hold their row or a newer one after materializing ({out.rows} selected)"
                )
            written[view] = got
            done[view] = (w.start.isoformat(), w.end.isoformat())
            log.info(
                "materialized %s: %d entities in [%s, %s] into %s (%s; %d written of %d read from %s)",
                view,
                got,
                w.start,
                w.end,
                target.where,
                "incremental" if out.incremental else "full",
                out.written,
                out.rows,
                out.start,
            )
        target.finish(done)
    finally:
        target.close()
    return written


def _expected_keys(info: S.SourceInfo, w: Window, con: duckdb.DuckDBPyConnection | None = None) -> int:
    if con is None:
        with duckdb.connect() as own:
            return _expected_keys(info, w, own)
    return con.execute(
        f"SELECT count(DISTINCT {info.key}) FROM read_parquet({S.sql_list(info.files)}) "
        "WHERE event_timestamp >= ? AND event_timestamp <= ?",
        [w.start, w.end],
    ).fetchall()[0][0]


def _check_online(config: Config, store, data_root: str, info: S.SourceInfo, w: Window, expected: int) -> int:
    """Count what the online store really holds: some stores report success and write nothing."""
    if config.features.online_store == "sqlite":
        db = online_db_path(data_root)
        feature = next(iter(info.columns.values()))
        got = W.sqlite_held(db, sqlite_table(config.features.project, info.view), feature, w.start, w.end)
        if got != expected:
            raise FeatureStoreError(
                f"online store {db}: {info.view} holds {got} entities stamped in "
                f"[{w.start}, {w.end}] after materializing, the source has {expected}"
            )
        return got
    return _check_online_sample(config, store, info, w, expected)


def _check_online_sample(config: Config, store, info: S.SourceInfo, w: Window, expected: int) -> int:
    with duckdb.connect() as con:
        keys = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT {info.key} FROM read_parquet({S.sql_list(info.files)}) "
                f"WHERE event_timestamp >= ? AND event_timestamp <= ? ORDER BY 1 LIMIT ?",
                [w.start, w.end, config.features.online_check_sample],
            ).fetchall()
        ]
    if not keys:
        return 0
    features = [f"{info.view}:{c}" for c in info.columns.values()]
    got = store.get_online_features(features=features, entity_rows=[{info.key: k} for k in keys]).to_dict()
    first = next(iter(info.columns.values()))
    missing = [k for k, v in zip(keys, got[first], strict=True) if v is None]
    if missing:
        raise FeatureStoreError(
            f"online store: {info.view} lacks {len(missing)} of {len(keys)} sampled keys after materializing "
            f"(e.g. {missing[:5]})"
        )
    return expected


# --------------------------------------------------------------------------------------------
# Point-in-time table


def read_samples(data_root: str, day: dt.date) -> pa.Table:
    folder = L.curated_dir(data_root, "samples", day)
    table = storage.read_parquet_files(folder)
    if table is None:
        raise FeatureStoreError(f"no curated samples under {folder}: run `taml ingest --date {day}` first")
    return table


def point_in_time(config: Config, store, samples: pd.DataFrame, data_root: str | None = None) -> pd.DataFrame:
    """Samples joined with the feature service: one row per sample, nulls where a feature is missing.

    ``store`` (a FeatureStore) is needed only for Feast's join; the direct join reads the sources of
    ``data_root`` (default: the store's data root, else ``config.paths.data_root``).
    """
    ids = samples["impression_id"]
    if ids.isna().any() or ids.duplicated().any():
        raise TrainingTableError(
            f"samples have {int(ids.isna().sum())} null and {int(ids.duplicated().sum())} duplicate impression_id(s)"
        )
    user_id = samples["user_id"].astype("int64").to_numpy()
    item_id = samples["item_id"].astype("int64").to_numpy()
    ts = pd.to_datetime(samples["event_timestamp"], utc=True) - STRICTLY_BEFORE
    if direct_offline(config):
        if data_root is None:
            data_root = str(store.config.repo_path.parent) if store is not None else config.paths.data_root
        return _point_in_time_direct(config, data_root, samples, user_id, item_id, ts)
    entity_df = pd.DataFrame(
        {"impression_id": ids.to_numpy(), "user_id": user_id, "item_id": item_id, "event_timestamp": ts}
    )
    service = store.get_feature_service(config.features.feature_service)
    joined = store.get_historical_features(
        entity_df=entity_df, features=service, full_feature_names=False
    ).to_df()
    feature_cols = [c for c in joined.columns if c not in entity_df.columns]
    if len(joined) != len(samples) or joined["impression_id"].duplicated().any():
        raise TrainingTableError(
            f"point-in-time join returned {len(joined)} rows ({int(joined['impression_id'].duplicated().sum())} "
            f"duplicate impression ids) for {len(samples)} samples"
        )
    out = samples.merge(
        joined[["impression_id", *feature_cols]], on="impression_id", how="left", validate="1:1"
    )
    out = out.set_index(samples.index) if len(out) == len(samples) else out
    if len(out) != len(samples):
        raise TrainingTableError(f"table has {len(out)} rows for {len(samples)} samples")
    return _typed(out, feature_cols)


def join_views(config: Config, data_root: str) -> list[D.JoinView]:
    """The feature service's views as the direct join reads them (sources, field mappings, TTLs)."""
    d = definitions()
    infos = {s.view: s for s in S.source_infos(data_root)}
    missing = [v for v, s in infos.items() if not s.files]
    if missing:
        S.check_sources(data_root)  # raises, naming the view and glob
    ttl = dt.timedelta(hours=config.features.stats_ttl_hours)
    return [
        D.JoinView(
            v, infos[v].key, infos[v].files, infos[v].columns, ttl if kind == "stats" else dt.timedelta(0)
        )
        for v, (_, kind) in d.VIEWS.items()
    ]


def _point_in_time_direct(config, data_root, samples, user_id, item_id, ts) -> pd.DataFrame:
    features = D.point_in_time(D.entity_table(user_id, item_id, ts), join_views(config, data_root))
    if features.num_rows != len(samples):
        raise TrainingTableError(
            f"point-in-time join returned {features.num_rows} rows for {len(samples)} samples"
        )
    mapper = {pa.int64(): pd.Int64Dtype()}.get
    cols = {
        c: features.column(c).to_pandas(types_mapper=mapper).set_axis(samples.index)
        for c in features.column_names
    }
    out = pd.concat([samples, pd.DataFrame(cols, index=samples.index)], axis=1)
    return _typed(out, list(features.column_names))


def _typed(df: pd.DataFrame, feature_cols: list[str]) -> pd.DataFrame:
    """Integer features as nullable Int64 (a missing feature stays null, never NaN-as-float)."""
    for c in feature_cols:
        if c.endswith(("_ctr_7d", "_cvr_7d")):
            df[c] = df[c].astype("float64")
        else:
            df[c] = df[c].astype("Int64")
    return df


def write_table(df: pd.DataFrame, data_root: str, day: dt.date) -> str:
    final = L.training_table_dir(data_root, day)
    staging = storage.staging_dir(final)
    table = pa.Table.from_pandas(df, preserve_index=False)
    try:
        with storage.open_write(storage.join(staging, TABLE_FILE)) as f:
            pq.write_table(table, f)
        storage.publish_dir(staging, final)
    except BaseException:
        storage.discard_dir(staging)
        raise
    return storage.join(final, TABLE_FILE)


def build_table(config: Config, day: dt.date | str, data_root: str, store=None) -> tuple[pd.DataFrame, str]:
    """Build and write the table of one day (the store must already be applied)."""
    day = L.parse_date(day)
    if config.features.require_validation:
        from components.validate import require_passed

        require_passed(config.paths.artifact_root, day)
    if direct_offline(config):
        if store is None:
            S.check_sources(data_root)
            ensure_applied(config, data_root)
    else:
        store = store or apply(config, data_root)
    samples = read_samples(data_root, day).to_pandas()
    df = point_in_time(config, store, samples, data_root)
    return df, write_table(df, data_root, day)


def build_features(config: Config, date: dt.date | str, data_root: str | None = None) -> FeaturesResult:
    """The whole step for day D: check sources, apply, materialize (checked), build the table."""
    day = L.parse_date(date)
    data_root = data_root or config.paths.data_root
    if config.features.require_validation:
        from components.validate import require_passed

        require_passed(config.paths.artifact_root, day)
    t = {"start": time.perf_counter()}
    if direct_online(config) and direct_offline(config):
        store = None
        with duckdb.connect() as duck:
            infos = {s.view: s for s in S.check_sources(data_root, con=duck)}  # before applying: fails fast
            ensure_applied(config, data_root)
            t["apply"] = time.perf_counter()
            online = _materialize_direct(config, day, data_root, infos, duck)
    else:
        store = apply(config, data_root)
        t["apply"] = time.perf_counter()
        online = materialize(config, day, data_root, store)
    t["materialize"] = time.perf_counter()
    samples = read_samples(data_root, day).to_pandas()
    df = point_in_time(config, store, samples, data_root)
    path = write_table(df, data_root, day)
    t["table"] = time.perf_counter()
    feature_cols = [c for c in df.columns if c not in samples.columns]
    return FeaturesResult(
        date=day.isoformat(),
        table_path=path,
        rows=len(df),
        columns=list(df.columns),
        feature_columns=feature_cols,
        windows={v: (w.start.isoformat(), w.end.isoformat()) for v, w in windows(config, day).items()},
        online_rows=online,
        null_share={c: round(float(df[c].isna().mean()), 6) for c in feature_cols},
        seconds={
            k: round(t[k] - t[p], 3)
            for p, k in zip(["start", "apply", "materialize"], ["apply", "materialize", "table"], strict=True)
        },
    )


def build_tables(config: Config, days: list[dt.date | str], data_root: str | None = None) -> list[str]:
    """Tables of several days (the trainer's window); applies once (when changed), materializes nothing."""
    data_root = data_root or config.paths.data_root
    S.check_sources(data_root)
    if direct_offline(config):
        ensure_applied(config, data_root)
        store = None
    else:
        store = apply(config, data_root)
    return [build_table(config, d, data_root, store)[1] for d in days]

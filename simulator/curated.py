"""Curated days in the ingest-output format, written directly: no raw logs, no ingest (tests and benchmarks).

Writes curated/samples, curated/users, curated/items, curated/manifest and features/*_stats for
a range of days, with numbers that pass the default validation bounds. Profiles follow the
slowly-changing-dimension contract: the first day is a full snapshot, later days hold only
changed rows, each valid from its event_timestamp.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from taml.core import layout as L
from taml.core import storage

UTC_US = pa.timestamp("us", tz="UTC")
USER_ATTRS = ("gender", "age_level", "city_level", "occupation")
ITEM_ATTRS = ("category_id", "shop_id", "brand_id", "price_level")
STATS_WINDOW_DAYS = 7
STATS_PRIOR = (100.0, 50.0)  # pseudo-impressions (CTR), pseudo-clicks (CVR)


@dataclass(frozen=True)
class SyntheticSpec:
    samples_per_day: int = 2_000
    users: int = 300
    items: int = 100
    ctr: float = 0.05
    cvr: float = 0.1
    profile_change_share: float = 0.02
    seed: int = 0


def day_start(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day.isoformat(), tz="UTC")


def write_parquet(table: pa.Table, folder: str, name: str = "part-00000.parquet") -> str:
    uri = storage.join(folder, name)
    if storage.is_gcs(uri):
        buf = io.BytesIO()
        pq.write_table(table, buf)
        storage.write_bytes(uri, buf.getvalue())
    else:
        storage.makedirs(folder)
        pq.write_table(table, uri)
    return uri


def samples_table(df: pd.DataFrame) -> pa.Table:
    schema = pa.schema(
        [
            ("impression_id", pa.string()),
            ("event_timestamp", UTC_US),
            ("user_id", pa.int64()),
            ("item_id", pa.int64()),
            ("position", pa.int32()),
            ("device", pa.string()),
            ("hour", pa.int32()),
            ("click", pa.int32()),
            ("conversion", pa.int32()),
        ]
    )
    return pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)


def profile_table(df: pd.DataFrame, entity: str) -> pa.Table:
    attrs = USER_ATTRS if entity == "user" else ITEM_ATTRS
    fields = [(f"{entity}_id", pa.int64()), ("event_timestamp", UTC_US)] + [(a, pa.int64()) for a in attrs]
    return pa.Table.from_pandas(df[[f[0] for f in fields]], schema=pa.schema(fields), preserve_index=False)


def stats_table(df: pd.DataFrame, entity: str) -> pa.Table:
    fields = [(f"{entity}_id", pa.int64()), ("event_timestamp", UTC_US)]
    fields += [(c, pa.int64()) for c in ("impressions", "clicks", "conversions")]
    fields += [(c, pa.float64()) for c in ("ctr", "cvr")]
    return pa.Table.from_pandas(df[[f[0] for f in fields]], schema=pa.schema(fields), preserve_index=False)


def make_samples(day: dt.date, spec: SyntheticSpec, rng: np.random.Generator) -> pd.DataFrame:
    n = spec.samples_per_day
    offsets = np.sort(rng.integers(0, 86_400_000_000, n))
    ts = day_start(day) + pd.to_timedelta(offsets, unit="us")
    click = (rng.random(n) < spec.ctr).astype(np.int32)
    conversion = (click & (rng.random(n) < spec.cvr)).astype(np.int32)
    return pd.DataFrame(
        {
            "impression_id": [f"{day:%Y%m%d}-{i:08d}" for i in range(n)],
            "event_timestamp": ts.astype("datetime64[us, UTC]"),
            "user_id": rng.integers(0, spec.users, n).astype(np.int64),
            "item_id": rng.integers(0, spec.items, n).astype(np.int64),
            "position": np.minimum(rng.geometric(0.1, n), L.POSITION_MAX).astype(np.int32),
            "device": rng.choice(np.array(L.DEVICES), n),
            "hour": ts.hour.astype(np.int32),
            "click": click,
            "conversion": conversion,
        }
    )


def make_profiles(
    entity: str, ids: np.ndarray, stamp: pd.Timestamp | np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    attrs = USER_ATTRS if entity == "user" else ITEM_ATTRS
    cards = (3, 7, 5, 20) if entity == "user" else (50, 300, 200, 10)
    df = pd.DataFrame({f"{entity}_id": ids.astype(np.int64)})
    df["event_timestamp"] = pd.Series(stamp if isinstance(stamp, np.ndarray) else [stamp] * len(ids)).values
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
    for a, card in zip(attrs, cards, strict=True):
        df[a] = rng.integers(0, card, len(ids)).astype(np.int64)
    return df


def compute_stats(window: pd.DataFrame, entity: str, stamp: pd.Timestamp) -> pd.DataFrame:
    """Trailing-window sums and Beta-smoothed rates (the ingest step's formula)."""
    key = f"{entity}_id"
    g = window.groupby(key).agg(
        impressions=("click", "size"), clicks=("click", "sum"), conversions=("conversion", "sum")
    )
    g = g.reset_index()
    imp, clk, cnv = (int(g[c].sum()) for c in ("impressions", "clicks", "conversions"))
    ctr0, cvr0 = (clk / imp if imp else 0.0), (cnv / clk if clk else 0.0)
    k_ctr, k_cvr = STATS_PRIOR
    g["ctr"] = (g["clicks"] + k_ctr * ctr0) / (g["impressions"] + k_ctr)
    g["cvr"] = (g["conversions"] + k_cvr * cvr0) / (g["clicks"] + k_cvr)
    g["event_timestamp"] = stamp
    g["event_timestamp"] = g["event_timestamp"].astype("datetime64[us, UTC]")
    for c in ("impressions", "clicks", "conversions"):
        g[c] = g[c].astype(np.int64)
    return g


def manifest(day: dt.date, samples: int, users: int, items: int, dead_letters: int = 0) -> dict:
    this, nxt = L.partition(day), L.partition(day + dt.timedelta(days=1))

    def part(n: int, dead: int = 0) -> dict:
        return {
            "read": n + dead,
            "accepted": n,
            "other_day": 0,
            "dead_letter": {"malformed_json": dead} if dead else {},
        }

    return {
        "date": day.isoformat(),
        "sources": {
            L.IMPRESSIONS: {this: part(samples, dead_letters)},
            L.CLICKS: {this: part(samples // 20), nxt: part(samples // 400)},
            L.CONVERSIONS: {this: part(samples // 200), nxt: part(samples // 800)},
            L.USERS: {this: part(users)},
            L.ITEMS: {this: part(items)},
        },
    }


def write_history(
    data_root: str, start: dt.date, days: int, spec: SyntheticSpec = SyntheticSpec()
) -> dict[dt.date, pd.DataFrame]:
    """Write ``days`` curated days from ``start``; returns each day's samples frame."""
    rng = np.random.default_rng(spec.seed)
    out: dict[dt.date, pd.DataFrame] = {}
    for i, day in enumerate(L.day_range(start, days)):
        samples = make_samples(day, spec, rng)
        out[day] = samples
        write_parquet(samples_table(samples), L.curated_dir(data_root, "samples", day))
        counts = {}
        for entity, n in (("user", spec.users), ("item", spec.items)):
            if i == 0:
                ids = np.arange(n)
                stamp: pd.Timestamp | np.ndarray = day_start(day)
            else:
                ids = np.sort(rng.choice(n, max(1, int(n * spec.profile_change_share)), replace=False))
                stamp = (day_start(day) + pd.to_timedelta(rng.integers(0, 86_400, len(ids)), unit="s")).values
            profiles = make_profiles(entity, ids, stamp, rng)
            counts[entity] = len(profiles)
            write_parquet(profile_table(profiles, entity), L.curated_dir(data_root, f"{entity}s", day))
            window = pd.concat([out[d] for d in out if (day - d).days < STATS_WINDOW_DAYS])
            stats = compute_stats(window, entity, day_start(day + dt.timedelta(days=1)))
            write_parquet(stats_table(stats, entity), L.stats_dir(data_root, entity, day))
        storage.write_json(
            L.manifest_path(data_root, day), manifest(day, len(samples), counts["user"], counts["item"])
        )
    return out

"""Trailing-window user and item stats with Beta-smoothed CTR and CVR.

Smoothing (empirical Bayes): the prior mean is the window's own global rate, so a shift in the
platform's base rate moves every entity's prior with it; its strength is configured in
pseudo-observations:

    ctr = (clicks + k_ctr * CTR_global) / (impressions + k_ctr)
    cvr = (conversions + k_cvr * CVR_global) / (clicks + k_cvr)

with CTR_global = sum(clicks) / sum(impressions) and CVR_global = sum(conversions) / sum(clicks)
over every sample in the window (0 when the denominator is 0). An entity with no traffic gets
the global rate; one with a lot converges to its own rate.

Aggregation is partial-then-final (a combiner in spirit): each input table is reduced to
per-entity sums, those are sharded by entity id, and each shard is summed again.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.ingest.schema import stats_schema

ENTITIES = ("user", "item")


def entity_shard(ids: np.ndarray, shards: int) -> np.ndarray:
    """A stable shard of non-negative int64 ids (Fibonacci hashing, so id patterns spread)."""
    h = ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return ((h >> np.uint64(33)) % np.uint64(shards)).astype(np.int64)


def partial_sums(samples: pa.Table, entity: str) -> pa.Table:
    """Per-entity impressions, clicks, conversions of one table of samples."""
    key = f"{entity}_id"
    t = samples.select([key, "click", "conversion"])
    if t.num_rows == 0:
        return pa.table(
            {
                key: pa.array([], pa.int64()),
                "impressions": pa.array([], pa.int64()),
                "clicks": pa.array([], pa.int64()),
                "conversions": pa.array([], pa.int64()),
            }
        )
    t = t.set_column(1, "click", pc.cast(t["click"], pa.int64())).set_column(
        2, "conversion", pc.cast(t["conversion"], pa.int64())
    )
    g = t.group_by(key, use_threads=False).aggregate(
        [(key, "count"), ("click", "sum"), ("conversion", "sum")]
    )
    return pa.table(
        {
            key: g[key].cast(pa.int64()),
            "impressions": g[f"{key}_count"].cast(pa.int64()),
            "clicks": g["click_sum"].cast(pa.int64()),
            "conversions": g["conversion_sum"].cast(pa.int64()),
        }
    )


def merge_sums(tables: list[pa.Table], entity: str) -> pa.Table:
    key = f"{entity}_id"
    t = pa.concat_tables(tables)
    g = t.group_by(key, use_threads=False).aggregate(
        [("impressions", "sum"), ("clicks", "sum"), ("conversions", "sum")]
    )
    return pa.table(
        {
            key: g[key],
            "impressions": g["impressions_sum"],
            "clicks": g["clicks_sum"],
            "conversions": g["conversions_sum"],
        }
    ).sort_by(key)


def global_rates(impressions: int, clicks: int, conversions: int) -> tuple[float, float]:
    return (clicks / impressions if impressions else 0.0, conversions / clicks if clicks else 0.0)


def smooth(
    sums: pa.Table,
    entity: str,
    event_timestamp_us: int,
    totals: tuple[int, int, int],
    k_ctr: float,
    k_cvr: float,
) -> pa.Table:
    """The stats rows of one shard, stamped ``event_timestamp_us``."""
    ctr0, cvr0 = global_rates(*totals)
    n = sums.num_rows
    imp = sums["impressions"].to_numpy().astype(np.float64)
    clk = sums["clicks"].to_numpy().astype(np.float64)
    cnv = sums["conversions"].to_numpy().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ctr = np.where(imp + k_ctr > 0, (clk + k_ctr * ctr0) / (imp + k_ctr), ctr0)
        cvr = np.where(clk + k_cvr > 0, (cnv + k_cvr * cvr0) / (clk + k_cvr), cvr0)
    return pa.table(
        {
            f"{entity}_id": sums[f"{entity}_id"],
            "event_timestamp": pa.array(np.full(n, event_timestamp_us, np.int64)).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "impressions": sums["impressions"],
            "clicks": sums["clicks"],
            "conversions": sums["conversions"],
            "ctr": pa.array(ctr),
            "cvr": pa.array(cvr),
        },
        schema=stats_schema(entity),
    )

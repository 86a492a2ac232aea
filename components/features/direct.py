"""The DuckDB point-in-time join, in Feast's semantics, without importing Feast.

:func:`point_in_time` is Feast's ``get_historical_features`` (DuckDB offline store) as DuckDB
ASOF joins: for each view the latest feature row stamped at or before the entity timestamp,
dropped when older than the view's TTL (``feature_ts + ttl >= entity_ts``, as Feast's ibis join).
Feast stays the definition of the features (``feature_repo/definitions.py``: views, sources,
field mappings, TTLs); ``import feast`` takes ~18 s here because it imports torch. The online
side (materialization in Feast's online format) is ``components.features.online_write`` with
``featurestore``.

tests/components/features/test_features.py proves the join equal to Feast's own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from components.features.sources import sql_list
from featurestore.sqlite_store import quote as _q

# --- point-in-time join --------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinView:
    view: str
    key: str
    files: list[str]
    columns: dict[str, str]  # source column -> feature name
    ttl: dt.timedelta  # 0: none


def point_in_time(entities: pa.Table, views: Sequence[JoinView]) -> pa.Table:
    """Feature columns for ``entities`` (join keys + ``event_timestamp``), one row per entity row, in order.

    Per view: the latest feature row with ``feature_ts <= entity_ts`` for the entity's key, null
    when there is none or when ``feature_ts + ttl < entity_ts`` (ttl > 0), as Feast's join.
    """
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        ent = entities.append_column("_row", pa.array(np.arange(entities.num_rows, dtype=np.int64)))
        con.register("_entities", ent)
        joins, select = [], []
        for i, v in enumerate(views):
            cols = ", ".join(f"{_q(src)} AS _f{i}_{j}" for j, src in enumerate(v.columns))
            joins.append(
                f"ASOF LEFT JOIN (SELECT {_q(v.key)} AS _k{i}, event_timestamp AS _t{i}, {cols} "
                f"FROM read_parquet({sql_list(v.files)})) v{i} "
                f"ON e.{_q(v.key)} = v{i}._k{i} AND e.event_timestamp >= v{i}._t{i}"
            )
            us = v.ttl // dt.timedelta(microseconds=1)
            for j, feat in enumerate(v.columns.values()):
                if us:
                    select.append(
                        f"CASE WHEN v{i}._t{i} + to_microseconds({us}) >= e.event_timestamp THEN v{i}._f{i}_{j} END "
                        f"AS {_q(feat)}"
                    )
                else:
                    select.append(f"v{i}._f{i}_{j} AS {_q(feat)}")
        sql = f"SELECT {', '.join(select)} FROM _entities e {' '.join(joins)} ORDER BY e._row"
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def entity_table(user_id: np.ndarray, item_id: np.ndarray, ts: pd.Series) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(user_id, pa.int64()),
            "item_id": pa.array(item_id, pa.int64()),
            "event_timestamp": pa.Array.from_pandas(ts),
        }
    )

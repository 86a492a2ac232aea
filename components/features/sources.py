"""Checks of the feature sources before Feast reads them.

Feast (and DuckDB under it) would otherwise turn bad sources into silent wrong answers: a null
key joins nothing, two rows of one key at one timestamp make the joined value arbitrary, and a
renamed column fails deep inside ibis. Each problem here names the view, the file and the fix.
"""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass

import duckdb
import pyarrow.parquet as pq

from components.features.store import FeatureStoreError, definitions


class FeatureSourceError(FeatureStoreError):
    """A feature source is missing, malformed or ambiguous."""


@dataclass(frozen=True)
class SourceInfo:
    view: str
    entity: str
    key: str
    glob: str
    files: list[str]
    columns: dict[str, str]  # source column -> feature name


def source_infos(data_root: str) -> list[SourceInfo]:
    d = definitions()
    out = []
    for view, (entity, kind) in d.VIEWS.items():
        pattern = d.source_glob(data_root, entity, kind)
        out.append(
            SourceInfo(
                view,
                entity,
                f"{entity}_id",
                pattern,
                sorted(globlib.glob(pattern)),
                d.feature_columns(entity, kind),
            )
        )
    return out


def check_sources(
    data_root: str, max_examples: int = 5, con: duckdb.DuckDBPyConnection | None = None
) -> list[SourceInfo]:
    """Raise :class:`FeatureSourceError` for the first bad source; return the sources otherwise.

    ``con``: a DuckDB connection to use (and leave open); default: a new one.
    """
    infos = source_infos(data_root)
    own = con is None
    con = con or duckdb.connect()
    try:
        for s in infos:
            _check(s, con, max_examples)
    finally:
        if own:
            con.close()
    return infos


def _check(s: SourceInfo, con: duckdb.DuckDBPyConnection, max_examples: int) -> None:
    if not s.files:
        raise FeatureSourceError(f"feature view {s.view}: no parquet file matches {s.glob}")
    required = [s.key, "event_timestamp", *s.columns]
    for f in s.files:
        names = pq.read_schema(f).names
        missing = [c for c in required if c not in names]
        if missing:
            raise FeatureSourceError(
                f"feature view {s.view}: {f} lacks column(s) {missing} (has {names}); "
                f"the source contract is {required}"
            )
    rel = f"read_parquet({sql_list(s.files)})"
    nulls = con.execute(
        f"SELECT count(*) FILTER (WHERE {s.key} IS NULL), count(*) FILTER (WHERE event_timestamp IS NULL) "
        f"FROM {rel}"
    ).fetchall()[0]
    if nulls[0] or nulls[1]:
        files = con.execute(
            f"SELECT DISTINCT filename FROM read_parquet({sql_list(s.files)}, filename=true) "
            f"WHERE {s.key} IS NULL OR event_timestamp IS NULL LIMIT {max_examples}"
        ).fetchall()
        raise FeatureSourceError(
            f"feature view {s.view}: {nulls[0]} row(s) with a null {s.key} and {nulls[1]} with a null "
            f"event_timestamp, in {[r[0] for r in files]}"
        )
    dupes = con.execute(
        f"SELECT {s.key}, event_timestamp, count(*) AS n, count(*) OVER () AS groups FROM {rel} "
        f"GROUP BY ALL HAVING count(*) > 1 ORDER BY 1, 2 LIMIT {max_examples}"
    ).fetchall()
    if dupes:
        examples = ", ".join(f"{s.key}={k} at {t.isoformat()} ({n} rows)" for k, t, n, _ in dupes)
        raise FeatureSourceError(
            f"feature view {s.view}: {dupes[0][3]} key(s) have several rows at one event_timestamp, so "
            f"the joined value would be arbitrary (under {s.glob}): {examples}"
        )


def sql_list(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"

"""Input tables: pandas DataFrames or pyarrow Tables, read column by column."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from model.errors import FeatureSpecError

Table = pd.DataFrame | pa.Table


def column(table: Table, source: str, field: str | None = None) -> pd.Series:
    """Column ``source`` as a pandas Series; a missing column raises :class:`FeatureSpecError`."""
    if isinstance(table, pa.Table):
        if source not in table.column_names:
            raise _missing(source, field, table.column_names)
        return table.column(source).to_pandas()
    if isinstance(table, pd.DataFrame):
        if source not in table.columns:
            raise _missing(source, field, list(table.columns))
        return table[source]
    raise FeatureSpecError(f"expected a pandas DataFrame or a pyarrow Table, got {type(table).__name__}")


def num_rows(table: Table) -> int:
    if isinstance(table, pa.Table):
        return table.num_rows
    if isinstance(table, pd.DataFrame):
        return len(table)
    raise FeatureSpecError(f"expected a pandas DataFrame or a pyarrow Table, got {type(table).__name__}")


def _missing(source: str, field: str | None, have: list) -> FeatureSpecError:
    who = f"field {field!r} reads column {source!r}" if field and field != source else f"column {source!r}"
    return FeatureSpecError(f"{who}, which the input table lacks (columns: {', '.join(map(str, have))})")

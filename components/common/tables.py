"""Reading the point-in-time feature tables of several days as one frame."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow.dataset as ds

from taml.core import layout, storage
from taml.core.errors import TamlError


class MissingTableError(TamlError):
    """A day's feature table is not there (its features step did not run)."""


def has_table(data_root: str, day: dt.date) -> bool:
    return bool(storage.list_files(layout.training_table_dir(data_root, day), suffix=".parquet", limit=1))


def read_table(data_root: str, days: list[dt.date]) -> pd.DataFrame:
    """The feature tables of ``days``, concatenated in day order."""
    frames = []
    for day in days:
        uri = layout.training_table_dir(data_root, day)
        if not has_table(data_root, day):
            raise MissingTableError(
                f"no feature table for {day} at {uri} (run `taml features build --date {day}`)"
            )
        fs, path = storage.pyarrow_filesystem(uri)
        frames.append(ds.dataset(path, filesystem=fs, format="parquet").to_table().to_pandas())
    if not frames:
        raise MissingTableError("no days to read")
    return pd.concat(frames, ignore_index=True)

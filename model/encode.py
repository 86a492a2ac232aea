"""Table -> int64 matrix [N, F] of vocabulary indices, and the two label vectors. Vectorised per column."""

from __future__ import annotations

import numpy as np
import pandas as pd

from model.errors import FeatureSpecError
from model.spec import MISSING_INDEX, OOV_INDEX, RESERVED_INDICES, FeatureSpec
from model.table import Table, column, num_rows
from model.vocab import FieldVocab, Vocabulary, normalize


def encode(table: Table, spec: FeatureSpec, vocab: Vocabulary) -> np.ndarray:
    """Encode every field of ``spec``: 0 missing, 1 OOV, >= 2 a known value or bucket."""
    vocab.check_spec(spec)
    n = num_rows(table)
    out = np.empty((n, len(spec.fields)), dtype=np.int64)
    for j, f in enumerate(spec.fields):
        series = column(table, f.source, f.name)
        v = vocab.fields[f.name]
        out[:, j] = _bucketize(series, v) if v.kind == "bucketized" else _lookup(series, v)
    return out


def _lookup(series: pd.Series, v: FieldVocab) -> np.ndarray:
    valid, keys, bad = normalize(series, v.value_type)
    idx = v.index().get_indexer(keys) if len(keys) else np.empty(0, dtype=np.int64)
    idx = np.where((idx < 0) | bad, OOV_INDEX, idx + RESERVED_INDICES)
    out = np.full(len(valid), MISSING_INDEX, dtype=np.int64)
    out[valid] = idx
    return out


def _bucketize(series: pd.Series, v: FieldVocab) -> np.ndarray:
    num = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = series.isna().to_numpy()
    unreadable = np.isnan(num) & ~missing  # text in a numeric field: present but unknown
    # Bucket k (0-based) holds boundaries[k-1] <= x < boundaries[k].
    out = (
        np.searchsorted(np.asarray(v.boundaries), np.nan_to_num(num, nan=0.0), side="right")
        + RESERVED_INDICES
    )
    out[missing] = MISSING_INDEX
    out[unreadable] = OOV_INDEX
    return out.astype(np.int64)


def encode_labels(table: Table, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """(click, conversion) as float32 0/1 vectors; rejects nulls, other values and conversion without click."""
    labels = []
    for name in (spec.click_column, spec.conversion_column):
        s = column(table, name)
        if s.isna().any():
            raise FeatureSpecError(f"label column {name!r} has {int(s.isna().sum())} null values")
        a = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isin(a, (0.0, 1.0))
        if bad.any():
            raise FeatureSpecError(f"label column {name!r} must be 0/1; first bad value {s[bad].iloc[0]!r}")
        labels.append(a.astype(np.float32))
    click, conv = labels
    orphan = (conv > click).sum()
    if orphan:
        raise FeatureSpecError(
            f"{int(orphan)} rows have {spec.conversion_column}=1 but {spec.click_column}=0 (conversion implies click)"
        )
    return click, conv


__all__ = ["encode", "encode_labels"]

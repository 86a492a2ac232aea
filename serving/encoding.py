"""Per-request encoding of plain rows, with exactly ``model.encode``'s semantics.

``model.encode`` is vectorised over pandas columns: right for a million rows, ~5 ms of pandas
overhead for the 100 rows of a ranking request. This encoder compiles each field of the model's
own vocabulary into a dict lookup or a bisect once per model version, then encodes Python values
directly (~0.01 ms per row). Rules, as in ``model.vocab.normalize`` / ``model.encode``:
null or NaN -> 0 (missing); a value not in the vocabulary, or unreadable for the field's type
(text in an integer field, a fraction) -> 1 (OOV); bucket k of a bucketized field -> k + 2.
tests/serving/test_serving_units.py checks the equality against ``model.encode``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

MISSING, OOV, RESERVED = 0, 1, 2

Encoder = Callable[[Any], int]


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _number(v: Any) -> float | None:
    """``pd.to_numeric(errors="coerce")`` for one value: a float, or None when unreadable."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _int_field(index: dict[int, int]) -> Encoder:
    def enc(v: Any) -> int:
        if _is_null(v):
            return MISSING
        if isinstance(v, int):  # bools included, as pandas reads them
            return index.get(int(v), OOV)
        x = _number(v)
        if x is None or not math.isfinite(x) or x != math.floor(x):
            return OOV
        return index.get(int(x), OOV)

    return enc


def _str_field(index: dict[str, int]) -> Encoder:
    def enc(v: Any) -> int:
        if _is_null(v):
            return MISSING
        return index.get(v if isinstance(v, str) else str(v), OOV)

    return enc


def _bucket_field(boundaries: list[float]) -> Encoder:
    def enc(v: Any) -> int:
        if _is_null(v):
            return MISSING
        x = _number(v)
        if x is None or math.isnan(x):
            return OOV
        return bisect_right(boundaries, x) + RESERVED

    return enc


class RowEncoder:
    """Rows (mappings of column -> value) -> the int64 matrix ``model.encode`` would give."""

    def __init__(self, spec, vocab):
        vocab.check_spec(spec)
        self.columns: list[str] = []
        self.encoders: list[Encoder] = []
        for f in spec.fields:
            v = vocab.fields[f.name]
            if v.kind == "bucketized":
                enc = _bucket_field([float(b) for b in v.boundaries or []])
            else:
                index = {val: i + RESERVED for i, val in enumerate(v.values)}
                enc = _int_field(index) if v.value_type == "int" else _str_field(index)
            self.columns.append(f.source)
            self.encoders.append(enc)

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        fields = list(zip(self.columns, self.encoders, strict=True))
        out = np.empty((len(rows), len(fields)), dtype=np.int64)
        for r, row in enumerate(rows):
            get = row.get
            out[r] = [enc(get(col)) for col, enc in fields]
        return out

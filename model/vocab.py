"""Per-field vocabularies that only grow, with the counts they were admitted on.

Index 0 is missing/null, index 1 is out-of-vocabulary (seen fewer than ``min_count`` times or never),
values seen at least ``min_count`` times get indices 2, 3, ... in the order they were admitted.
:meth:`Vocabulary.grow` appends newly frequent values and never moves an old one, so embedding row i
means the same value across warm starts. Bucketized fields have a fixed vocabulary: 2 + buckets.

Counts accumulate over every table a model line has seen (they travel with the version), so an id
seen a few times a day gets a row once its total reaches ``min_count``. With a sliding training
window a day is trained on by several versions; passing ``row_days`` (the day label of each row)
counts each day once per line: ``counted_days`` records the days already in the counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from model.errors import FeatureSpecError
from model.spec import OOV_INDEX, RESERVED_INDICES, FeatureSpec
from model.table import Table, column, num_rows

ValueType = Literal["int", "str"]


@dataclass
class FieldVocab:
    """The vocabulary of one field. ``values[i]`` has index ``i + RESERVED_INDICES``."""

    name: str
    kind: Literal["categorical", "bucketized"]
    value_type: ValueType | None = None
    values: list[Any] = field(default_factory=list)
    boundaries: list[float] | None = None
    #: occurrences of every value seen so far (admitted or not); empty for bucketized fields
    counts: dict[Any, int] = field(default_factory=dict)
    _index: pd.Index | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        """Rows of this field's embedding table (reserved indices included)."""
        if self.kind == "bucketized":
            assert self.boundaries is not None
            return RESERVED_INDICES + len(self.boundaries) + 1
        return RESERVED_INDICES + len(self.values)

    def index(self) -> pd.Index:
        if self._index is None:
            dtype = np.int64 if self.value_type == "int" else object
            self._index = pd.Index(np.asarray(self.values, dtype=dtype))
        return self._index

    def to_json(self) -> dict[str, Any]:
        if self.kind == "bucketized":
            return {"kind": self.kind, "boundaries": list(self.boundaries or [])}
        keys = sorted(self.counts, key=lambda k: (-self.counts[k], k))
        return {
            "kind": self.kind,
            "value_type": self.value_type,
            "values": list(self.values),
            "count_keys": keys,
            "count_values": [int(self.counts[k]) for k in keys],
        }

    @classmethod
    def from_json(cls, name: str, data: Any) -> FieldVocab:
        if not isinstance(data, dict) or data.get("kind") not in ("categorical", "bucketized"):
            raise FeatureSpecError(
                f"vocabulary of field {name!r}: expected an object with kind categorical|bucketized"
            )
        if data["kind"] == "bucketized":
            b = data.get("boundaries")
            if not isinstance(b, list) or not all(isinstance(x, int | float) for x in b):
                raise FeatureSpecError(f"vocabulary of field {name!r}: boundaries must be a list of numbers")
            return cls(name=name, kind="bucketized", boundaries=[float(x) for x in b])
        vt, values = data.get("value_type"), data.get("values")
        if vt not in ("int", "str") or not isinstance(values, list):
            raise FeatureSpecError(
                f"vocabulary of field {name!r}: needs value_type int|str and a values list"
            )
        if not all(_is_type(v, vt) for v in values):
            raise FeatureSpecError(f"vocabulary of field {name!r}: values are not all of type {vt}")
        if len(set(values)) != len(values):
            raise FeatureSpecError(f"vocabulary of field {name!r}: duplicate values")
        keys, counts = data.get("count_keys", []), data.get("count_values", [])
        if (
            not isinstance(keys, list)
            or not isinstance(counts, list)
            or len(keys) != len(counts)
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
            or not all(_is_type(k, vt) for k in keys)
            or len(set(keys)) != len(keys)
        ):
            raise FeatureSpecError(
                f"vocabulary of field {name!r}: count_keys and count_values must be equally long lists "
                f"of distinct {vt} values and non-negative integers"
            )
        return cls(
            name=name,
            kind="categorical",
            value_type=vt,
            values=list(values),
            counts=dict(zip(keys, counts, strict=True)),
        )


@dataclass
class Vocabulary:
    """Vocabularies of every field of a feature spec, in spec order."""

    fields: dict[str, FieldVocab]
    #: day labels whose rows are already in the counts (each day is counted once per model line)
    counted_days: list[str] = field(default_factory=list)

    @property
    def sizes(self) -> list[int]:
        return [v.size for v in self.fields.values()]

    def check_spec(self, spec: FeatureSpec) -> None:
        """Raise unless this vocabulary has exactly the spec's fields, in order, of the same kinds."""
        if list(self.fields) != spec.names:
            raise FeatureSpecError(
                f"vocabulary fields {list(self.fields)} do not match the feature spec {spec.names}"
            )
        for f in spec.fields:
            v = self.fields[f.name]
            if v.kind != f.kind:
                raise FeatureSpecError(f"field {f.name!r}: vocabulary is {v.kind}, spec says {f.kind}")
            if f.kind == "bucketized" and [float(b) for b in f.boundaries or []] != v.boundaries:
                raise FeatureSpecError(
                    f"field {f.name!r}: bucket boundaries differ between spec and vocabulary"
                )

    @classmethod
    def build(cls, table: Table, spec: FeatureSpec, row_days: Sequence[str] | None = None) -> Vocabulary:
        """Vocabularies from one training table: values seen at least ``min_count`` times."""
        empty = {}
        for f in spec.fields:
            if f.kind == "bucketized":
                empty[f.name] = FieldVocab(
                    name=f.name, kind="bucketized", boundaries=[float(b) for b in f.boundaries or []]
                )
            else:
                vt = infer_value_type(column(table, f.source, f.name))
                empty[f.name] = FieldVocab(name=f.name, kind="categorical", value_type=vt)
        return cls(fields=empty).grow(table, spec, row_days)

    def grow(self, table: Table, spec: FeatureSpec, row_days: Sequence[str] | None = None) -> Vocabulary:
        """A new vocabulary: ``table``'s counts added, indices unchanged, newly frequent values appended.

        With ``row_days`` (one day label per row) only the rows of days not yet in ``counted_days``
        are counted, so a window that slides over a day already counted does not count it twice.
        Without it the whole table is counted.
        """
        self.check_spec(spec)
        counted = list(self.counted_days)
        rows = None
        if row_days is not None:
            labels = np.asarray(row_days, dtype=object).astype(str)
            if len(labels) != num_rows(table):
                raise FeatureSpecError(
                    f"row_days has {len(labels)} labels for a table of {num_rows(table)} rows"
                )
            fresh = sorted(set(labels.tolist()) - set(counted))
            rows = pd.Series(labels).isin(fresh).to_numpy()
            counted = sorted(set(counted) | set(fresh))
        out: dict[str, FieldVocab] = {}
        for f in spec.fields:
            old = self.fields[f.name]
            if f.kind == "bucketized":
                out[f.name] = FieldVocab(
                    name=f.name, kind="bucketized", boundaries=list(old.boundaries or [])
                )
                continue
            series = column(table, f.source, f.name)
            if rows is not None:
                series = series[rows]
            counts = _add_counts(old.counts, series, old.value_type)
            known = set(old.values)
            added = _admitted(
                {k: c for k, c in counts.items() if k not in known}, f.min_count or spec.min_count
            )
            out[f.name] = FieldVocab(
                name=f.name,
                kind="categorical",
                value_type=old.value_type,
                values=old.values + added,
                counts=counts,
            )
        return Vocabulary(fields=out, counted_days=counted)

    def to_json(self) -> dict[str, Any]:
        return {
            "fields": {name: v.to_json() for name, v in self.fields.items()},
            "counted_days": list(self.counted_days),
        }

    @classmethod
    def from_json(cls, data: Any) -> Vocabulary:
        if not isinstance(data, dict) or not isinstance(data.get("fields"), dict):
            raise FeatureSpecError("vocabulary: expected an object with a 'fields' mapping")
        days = data.get("counted_days", [])
        if not isinstance(days, list) or not all(isinstance(d, str) for d in days):
            raise FeatureSpecError("vocabulary: counted_days must be a list of day labels")
        return cls(
            fields={name: FieldVocab.from_json(name, v) for name, v in data["fields"].items()},
            counted_days=list(days),
        )


def _is_type(v: Any, value_type: str) -> bool:
    if value_type == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, str)


def infer_value_type(series: pd.Series) -> ValueType:
    """Integer-like columns (ints, bools, integral floats) keep integer keys; anything else is text."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        v = series.dropna().to_numpy(dtype=np.float64)
        return "int" if np.all(np.isfinite(v)) and np.all(v == np.floor(v)) else "str"
    return "str"


def normalize(series: pd.Series, value_type: ValueType | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid mask, keys of the valid rows, mask of valid rows whose key cannot be of ``value_type``).

    Keys are int64 for integer vocabularies and Python strings otherwise; a non-numeric string in an
    integer field is not missing, it is an unknown value (OOV).
    """
    valid = series.notna().to_numpy()
    present = series[valid]
    bad = np.zeros(len(present), dtype=bool)
    if value_type == "int":
        if pd.api.types.is_bool_dtype(present) or pd.api.types.is_integer_dtype(present):
            return valid, present.to_numpy(dtype=np.int64), bad
        num = pd.to_numeric(present, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(num) | (num != np.floor(np.where(np.isfinite(num), num, 0.0)))
        keys = np.where(bad, 0, num).astype(np.int64)
        return valid, keys, bad
    return valid, present.astype(str).to_numpy(dtype=object), bad


def _add_counts(old: dict[Any, int], series: pd.Series, value_type: ValueType | None) -> dict[Any, int]:
    """``old`` plus the occurrences of each valid value of ``series`` (a new dict)."""
    out = dict(old)
    _, keys, bad = normalize(series, value_type)
    keys = keys[~bad]
    if len(keys) == 0:
        return out
    counts = pd.Series(keys).value_counts(sort=False)
    values = counts.index.tolist()
    values = [int(v) for v in values] if value_type == "int" else [str(v) for v in values]
    for v, c in zip(values, counts.to_numpy().tolist(), strict=True):
        out[v] = out.get(v, 0) + int(c)
    return out


def _admitted(counts: dict[Any, int], min_count: int) -> list[Any]:
    """Values counted at least ``min_count`` times, most frequent first, ties by value (deterministic)."""
    return sorted((v for v, c in counts.items() if c >= min_count), key=lambda v: (-counts[v], v))


__all__ = ["FieldVocab", "Vocabulary", "OOV_INDEX", "infer_value_type", "normalize"]

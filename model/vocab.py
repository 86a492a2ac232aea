"""Per-field vocabularies that only grow.

Index 0 is missing/null, index 1 is out-of-vocabulary (seen fewer than ``min_count`` times or never),
values seen at least ``min_count`` times get indices 2, 3, ... in the order they were admitted.
:meth:`Vocabulary.grow` appends newly frequent values and never moves an old one, so embedding row i
means the same value across warm starts. Bucketized fields have a fixed vocabulary: 2 + buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from model.errors import FeatureSpecError
from model.spec import OOV_INDEX, RESERVED_INDICES, FeatureSpec, FieldSpec
from model.table import Table, column

ValueType = Literal["int", "str"]


@dataclass
class FieldVocab:
    """The vocabulary of one field. ``values[i]`` has index ``i + RESERVED_INDICES``."""

    name: str
    kind: Literal["categorical", "bucketized"]
    value_type: ValueType | None = None
    values: list[Any] = field(default_factory=list)
    boundaries: list[float] | None = None
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
        return {"kind": self.kind, "value_type": self.value_type, "values": list(self.values)}

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
        ok = (
            all(isinstance(v, int) and not isinstance(v, bool) for v in values)
            if vt == "int"
            else all(isinstance(v, str) for v in values)
        )
        if not ok:
            raise FeatureSpecError(f"vocabulary of field {name!r}: values are not all of type {vt}")
        if len(set(values)) != len(values):
            raise FeatureSpecError(f"vocabulary of field {name!r}: duplicate values")
        return cls(name=name, kind="categorical", value_type=vt, values=list(values))


@dataclass
class Vocabulary:
    """Vocabularies of every field of a feature spec, in spec order."""

    fields: dict[str, FieldVocab]

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
    def build(cls, table: Table, spec: FeatureSpec) -> Vocabulary:
        """Vocabularies from one training table: values seen at least ``min_count`` times."""
        return cls(fields={f.name: _build_field(table, f, spec.min_count) for f in spec.fields})

    def grow(self, table: Table, spec: FeatureSpec) -> Vocabulary:
        """A new vocabulary with this one's indices unchanged and new frequent values appended."""
        self.check_spec(spec)
        out: dict[str, FieldVocab] = {}
        for f in spec.fields:
            old = self.fields[f.name]
            if f.kind == "bucketized":
                out[f.name] = FieldVocab(
                    name=f.name, kind="bucketized", boundaries=list(old.boundaries or [])
                )
                continue
            fresh = _frequent_values(
                column(table, f.source, f.name), old.value_type, f.min_count or spec.min_count
            )
            known = set(old.values)
            added = [v for v in fresh if v not in known]
            out[f.name] = FieldVocab(
                name=f.name, kind="categorical", value_type=old.value_type, values=old.values + added
            )
        return Vocabulary(fields=out)

    def to_json(self) -> dict[str, Any]:
        return {"fields": {name: v.to_json() for name, v in self.fields.items()}}

    @classmethod
    def from_json(cls, data: Any) -> Vocabulary:
        if not isinstance(data, dict) or not isinstance(data.get("fields"), dict):
            raise FeatureSpecError("vocabulary: expected an object with a 'fields' mapping")
        return cls(fields={name: FieldVocab.from_json(name, v) for name, v in data["fields"].items()})


def _build_field(table: Table, f: FieldSpec, default_min_count: int) -> FieldVocab:
    if f.kind == "bucketized":
        return FieldVocab(name=f.name, kind="bucketized", boundaries=[float(b) for b in f.boundaries or []])
    series = column(table, f.source, f.name)
    value_type = infer_value_type(series)
    values = _frequent_values(series, value_type, f.min_count or default_min_count)
    return FieldVocab(name=f.name, kind="categorical", value_type=value_type, values=values)


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


def _frequent_values(series: pd.Series, value_type: ValueType | None, min_count: int) -> list[Any]:
    _, keys, bad = normalize(series, value_type)
    keys = keys[~bad]
    if len(keys) == 0:
        return []
    counts = pd.Series(keys).value_counts(sort=False)
    counts = counts[counts >= min_count]
    # Most frequent first, ties by value: the order only has to be deterministic.
    frame = pd.DataFrame({"v": counts.index.to_numpy(), "c": counts.to_numpy()}).sort_values(
        ["c", "v"], ascending=[False, True], kind="mergesort"
    )
    vals = frame["v"].tolist()
    return [int(v) for v in vals] if value_type == "int" else [str(v) for v in vals]


__all__ = ["FieldVocab", "Vocabulary", "OOV_INDEX", "infer_value_type", "normalize"]

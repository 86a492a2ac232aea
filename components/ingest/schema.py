"""Field specs of the raw sources and the Arrow schemas of every ingest output (DESIGN.md).

Downstream steps read these files; the schemas here are the contract, written once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from taml.core import layout as L

# Field kinds. "id" and "int" are JSON integers (ids must be >= 0); "ts" an RFC 3339 string.
ID_STR, TS, ID, INT, STR, FLOAT = "id_str", "ts", "id", "int", "str", "float"

_ARROW_RAW = {
    ID_STR: pa.string(),
    TS: pa.string(),
    ID: pa.int64(),
    INT: pa.int64(),
    STR: pa.string(),
    FLOAT: pa.float64(),
}


@dataclass(frozen=True)
class SourceSpec:
    name: str
    fields: tuple[tuple[str, str], ...]  # (name, kind), required ones first
    required: tuple[str, ...]
    # Event sources must carry a ts inside their partition's day; profile rows carry a "valid
    # from" time that may precede the partition (a late snapshot), so only its syntax is checked.
    ts_in_day: bool

    @property
    def raw_schema(self) -> pa.Schema:
        """What the bulk JSON reader is asked for (unknown keys are ignored)."""
        return pa.schema([(n, _ARROW_RAW[k]) for n, k in self.fields])


SPECS: dict[str, SourceSpec] = {
    L.IMPRESSIONS: SourceSpec(
        L.IMPRESSIONS,
        (
            ("impression_id", ID_STR),
            ("ts", TS),
            ("user_id", ID),
            ("item_id", ID),
            ("position", INT),
            ("device", STR),
        ),
        L.REQUIRED_FIELDS[L.IMPRESSIONS],
        True,
    ),
    L.CLICKS: SourceSpec(
        L.CLICKS, (("impression_id", ID_STR), ("ts", TS)), L.REQUIRED_FIELDS[L.CLICKS], True
    ),
    L.CONVERSIONS: SourceSpec(
        L.CONVERSIONS,
        (("impression_id", ID_STR), ("ts", TS), ("value", FLOAT)),
        L.REQUIRED_FIELDS[L.CONVERSIONS],
        True,
    ),
    L.USERS: SourceSpec(
        L.USERS,
        (
            ("user_id", ID),
            ("ts", TS),
            ("gender", ID),
            ("age_level", ID),
            ("city_level", ID),
            ("occupation", ID),
        ),
        L.REQUIRED_FIELDS[L.USERS],
        False,
    ),
    L.ITEMS: SourceSpec(
        L.ITEMS,
        (
            ("item_id", ID),
            ("ts", TS),
            ("category_id", ID),
            ("shop_id", ID),
            ("brand_id", ID),
            ("price_level", ID),
        ),
        L.REQUIRED_FIELDS[L.ITEMS],
        False,
    ),
}

UTC_US = pa.timestamp("us", tz="UTC")

#: curated/samples/dt=D/*.parquet
SAMPLES_SCHEMA = pa.schema(
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

#: curated/users/dt=D and curated/items/dt=D: the typed rows of that partition (new or changed).
PROFILE_SCHEMAS = {
    L.USERS: pa.schema(
        [("user_id", pa.int64()), ("event_timestamp", UTC_US)]
        + [(n, pa.int64()) for n in ("gender", "age_level", "city_level", "occupation")]
    ),
    L.ITEMS: pa.schema(
        [("item_id", pa.int64()), ("event_timestamp", UTC_US)]
        + [(n, pa.int64()) for n in ("category_id", "shop_id", "brand_id", "price_level")]
    ),
}

#: curated/dead_letter/dt=D/*.parquet. ``raw`` is the line's exact bytes (no trailing newline);
#: ``raw_text`` the same decoded as UTF-8 with undecodable bytes escaped as \xNN (for people).
DEAD_LETTER_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("dt", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.binary()),
        ("raw_text", pa.string()),
        ("file", pa.string()),
        ("line_number", pa.int64()),
    ]
)


def stats_schema(entity: str) -> pa.Schema:
    """features/{user,item}_stats/dt=D: trailing-window counts and smoothed rates per entity."""
    return pa.schema(
        [
            (f"{entity}_id", pa.int64()),
            ("event_timestamp", UTC_US),
            ("impressions", pa.int64()),
            ("clicks", pa.int64()),
            ("conversions", pa.int64()),
            ("ctr", pa.float64()),
            ("cvr", pa.float64()),
        ]
    )


def empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()

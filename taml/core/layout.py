"""The data layout of DESIGN.md: where each dataset of a day lives, and the raw-event contract.

Every producer and consumer takes paths and names from here, so the layout is written once.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from taml.core import storage
from taml.core.errors import UsageError

# --- raw sources -----------------------------------------------------------------------------

IMPRESSIONS: Final = "impressions"
CLICKS: Final = "clicks"
CONVERSIONS: Final = "conversions"
USERS: Final = "users"
ITEMS: Final = "items"
SOURCES: Final = (IMPRESSIONS, CLICKS, CONVERSIONS, USERS, ITEMS)

#: Required keys per source (extra keys are ignored). ``value`` of a conversion is optional.
REQUIRED_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    IMPRESSIONS: ("impression_id", "ts", "user_id", "item_id", "position", "device"),
    CLICKS: ("impression_id", "ts"),
    CONVERSIONS: ("impression_id", "ts"),
    USERS: ("user_id", "ts", "gender", "age_level", "city_level", "occupation"),
    ITEMS: ("item_id", "ts", "category_id", "shop_id", "brand_id", "price_level"),
}
OPTIONAL_FIELDS: Final[dict[str, tuple[str, ...]]] = {CONVERSIONS: ("value",)}

DEVICES: Final = ("ios", "android", "web")
POSITION_MIN: Final = 1
POSITION_MAX: Final = 100

# --- dead-letter reason codes ----------------------------------------------------------------

MALFORMED_JSON: Final = "malformed_json"  # not a JSON object (includes bad UTF-8)
MISSING_FIELD: Final = "missing_field"  # a required key absent or null
BAD_TYPE: Final = "bad_type"  # a value of the wrong JSON type (e.g. "abc" for position)
OUT_OF_RANGE: Final = "out_of_range"  # right type, impossible value (position 0, device "tv", id < 0)
BAD_TIMESTAMP: Final = "bad_timestamp"  # ts not RFC 3339, or outside the partition's day
DUPLICATE_IMPRESSION: Final = "duplicate_impression"  # a repeated impression_id (the first is kept)
ORPHAN_CLICK: Final = "orphan_click"  # no impression of D or D-1 with that id
ORPHAN_CONVERSION: Final = "orphan_conversion"
CONVERSION_WITHOUT_CLICK: Final = "conversion_without_click"  # impression found, no counted click
LATE_EVENT: Final = "late_event"  # after the click window / attribution window
TIME_TRAVEL: Final = "time_travel"  # an event stamped before its impression (or its click)
DUPLICATE_EVENT: Final = "duplicate_event"  # a second click/conversion for one impression
LINE_TOO_LONG: Final = "line_too_long"  # longer than ingest.max_line_bytes (not parsed)
MALFORMED_LINE: Final = "malformed_line"  # an Ali-CCP CSV line that does not have its format
REASONS: Final = (
    MALFORMED_JSON,
    MISSING_FIELD,
    BAD_TYPE,
    OUT_OF_RANGE,
    BAD_TIMESTAMP,
    DUPLICATE_IMPRESSION,
    ORPHAN_CLICK,
    ORPHAN_CONVERSION,
    CONVERSION_WITHOUT_CLICK,
    LATE_EVENT,
    TIME_TRAVEL,
    DUPLICATE_EVENT,
    LINE_TOO_LONG,
    MALFORMED_LINE,
)

# --- dates -----------------------------------------------------------------------------------


def parse_date(value: str | dt.date) -> dt.date:
    """``YYYY-MM-DD`` -> date, with an error that says what was expected."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as e:
        raise UsageError(f"bad date {value!r}: expected YYYY-MM-DD") from e


def partition(day: dt.date | str) -> str:
    return f"dt={parse_date(day).isoformat()}"


def day_range(start: dt.date, days: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(days)]


# --- paths under data_root -------------------------------------------------------------------


def raw_dir(data_root: str, source: str, day: dt.date | str) -> str:
    return storage.join(data_root, "raw", source, partition(day))


def truth_dir(data_root: str, day: dt.date | str) -> str:
    return storage.join(data_root, "truth", partition(day))


def corruption_dir(data_root: str, day: dt.date | str) -> str:
    return storage.join(data_root, "corruption", partition(day))


def corruption_manifest(data_root: str) -> str:
    return storage.join(data_root, "corruption_manifest.json")


def curated_dir(data_root: str, dataset: str, day: dt.date | str) -> str:
    """``curated/{samples,users,items,dead_letter}/dt=D``."""
    return storage.join(data_root, "curated", dataset, partition(day))


def manifest_path(data_root: str, day: dt.date | str) -> str:
    return storage.join(data_root, "curated", "manifest", f"{partition(day)}.json")


def stats_dir(data_root: str, entity: str, day: dt.date | str) -> str:
    """``features/{user_stats,item_stats}/dt=D``."""
    return storage.join(data_root, "features", f"{entity}_stats", partition(day))


def feature_store_dir(data_root: str) -> str:
    return storage.join(data_root, "feature_store")


def training_table_dir(data_root: str, day: dt.date | str) -> str:
    """``features/training/dt=D``: day D's samples joined point-in-time with the feature service."""
    return storage.join(data_root, "features", "training", partition(day))


def predictions_dir(artifact_root: str, day: dt.date | str) -> str:
    """``predictions/dt=D``: the scores of the model that served day D, with inputs and labels."""
    return storage.join(artifact_root, "predictions", partition(day))


def run_dir(artifact_root: str, step: str, day: dt.date | str) -> str:
    """``{step}/dt=D``: a step's reports for day D (validation, evaluation, monitoring, ...)."""
    return storage.join(artifact_root, step, partition(day))


def registry_dir(artifact_root: str, model: str) -> str:
    return storage.join(artifact_root, "registry", model)

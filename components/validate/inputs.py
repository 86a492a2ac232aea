"""What the validation gate looks at: the curated day, its manifest, and earlier manifests.

Everything here is plain pandas/pyarrow; the expectations themselves live in :mod:`suites`.
"""

from __future__ import annotations

import datetime as dt
import io
import statistics
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from taml import layout as L
from taml import storage

#: Columns of curated/samples (DESIGN.md "Ingest output") and the Arrow types each may have.
#: Integer widths are free (ingest may narrow them); the timestamp must be UTC.
_INTS = ["int8", "int16", "int32", "int64"]
SAMPLE_TYPES: dict[str, list[str]] = {
    "impression_id": ["string", "large_string"],
    "event_timestamp": ["timestamp[us, tz=UTC]", "timestamp[ns, tz=UTC]", "timestamp[ms, tz=UTC]"],
    "user_id": _INTS,
    "item_id": _INTS,
    "position": _INTS,
    "device": ["string", "large_string"],
    "hour": _INTS,
    "click": _INTS,
    "conversion": _INTS,
}
KEY_COLUMNS = ("impression_id", "event_timestamp", "user_id", "item_id")
LABEL_SOURCES = (L.CLICKS, L.CONVERSIONS)


def read_parquet_dir(uri: str) -> pa.Table | None:
    """Every parquet file under a folder as one table; None when there is none."""
    files = storage.list_files(uri, suffix=".parquet")
    if not files:
        return None
    tables = []
    for f in files:
        if storage.is_gcs(f):
            tables.append(pq.read_table(io.BytesIO(storage.read_bytes(f))))
        else:
            tables.append(pq.read_table(f))
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


@dataclass
class DayInputs:
    """The curated day D and the figures derived from it and from the manifests."""

    date: dt.date
    samples_uri: str
    manifest_uri: str
    samples: pd.DataFrame | None  # None: no parquet under curated/samples/dt=D
    arrow_types: dict[str, str]
    manifest: dict | None  # None: missing or unreadable
    manifest_error: str | None
    history: dict[str, int] = field(default_factory=dict)  # earlier day -> samples accepted

    @property
    def rows(self) -> int:
        return 0 if self.samples is None else len(self.samples)

    def trailing_median(self) -> float | None:
        return statistics.median(self.history.values()) if self.history else None


def accepted_impressions(manifest: dict, day: dt.date) -> int | None:
    part = manifest.get("sources", {}).get(L.IMPRESSIONS, {}).get(L.partition(day))
    return None if not isinstance(part, dict) else int(part.get("accepted", 0))


def load_day(data_root: str, day: dt.date, lookback_days: int) -> DayInputs:
    samples_uri = L.curated_dir(data_root, "samples", day)
    table = read_parquet_dir(samples_uri)
    types = {f.name: str(f.type) for f in table.schema} if table is not None else {}
    samples = table.to_pandas() if table is not None else None
    manifest_uri = L.manifest_path(data_root, day)
    manifest, error = _read_manifest(manifest_uri)
    history: dict[str, int] = {}
    for back in range(1, lookback_days + 1):
        earlier = day - dt.timedelta(days=back)
        m, _ = _read_manifest(L.manifest_path(data_root, earlier))
        n = accepted_impressions(m, earlier) if m else None
        if n is not None:
            history[earlier.isoformat()] = n
    return DayInputs(day, samples_uri, manifest_uri, samples, types, manifest, error, history)


def _read_manifest(uri: str) -> tuple[dict | None, str | None]:
    if not storage.exists(uri):
        return None, f"{uri}: missing"
    try:
        data = storage.read_json(uri)
    except storage.StorageError as e:
        return None, str(e)
    if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
        return None, f"{uri}: no 'sources' mapping"
    return data, None


# --------------------------------------------------------------------------------------------
# Small frames GX validates besides the samples (one row each, or one row per source)


def schema_frame(inputs: DayInputs) -> pd.DataFrame:
    """One row whose cells are the Arrow type names of the samples' columns.

    GX sees pandas dtypes, which lose the timestamp's unit and zone; validating the Arrow type
    names as values keeps the contract exact and reports the observed type on failure.
    """
    return pd.DataFrame([inputs.arrow_types]) if inputs.arrow_types else pd.DataFrame([{}])


def day_frame(inputs: DayInputs) -> pd.DataFrame:
    """One row of day-level figures: rows, CTR, CVR, volume ratio, hours covered."""
    s = inputs.samples
    rows = inputs.rows
    clicks = int(s["click"].sum()) if s is not None and "click" in s else 0
    conversions = int(s["conversion"].sum()) if s is not None and "conversion" in s else 0
    median = inputs.trailing_median()
    return pd.DataFrame(
        [
            {
                "rows": rows,
                "ctr": clicks / rows if rows else float("nan"),
                "cvr": conversions / clicks if clicks else float("nan"),
                "volume_ratio": rows / median if median else float("nan"),
                "hours": int(s["hour"].nunique()) if s is not None and "hour" in s else 0,
            }
        ]
    )


def manifest_frame(inputs: DayInputs) -> pd.DataFrame:
    """One row per source: dead-letter share of its dt=D partition, and whether dt=D+1 was read."""
    m = inputs.manifest or {}
    sources = m.get("sources", {})
    this, nxt = L.partition(inputs.date), L.partition(inputs.date + dt.timedelta(days=1))
    rows = []
    for source in L.SOURCES:
        parts = sources.get(source, {}) if isinstance(sources.get(source), dict) else {}
        part = parts.get(this) if isinstance(parts.get(this), dict) else {}
        read = int(part.get("read", 0) or 0)
        dead = sum(int(v or 0) for v in (part.get("dead_letter") or {}).values())
        rows.append(
            {
                "source": source,
                "read": read,
                "dead_letter": dead,
                "dead_letter_share": dead / read if read else 0.0,
                "next_day_read": int(nxt in parts),
                # The source's name when dt=D+1 was not read, so a failure lists the sources.
                "missing_next_day": None if nxt in parts else source,
                "present": int(source in sources),
            }
        )
    return pd.DataFrame(rows)

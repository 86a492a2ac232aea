"""What the validation gate looks at: the curated day, its manifest, and earlier manifests.

Everything here is plain pandas/pyarrow; the expectations themselves live in :mod:`suites`.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

import pandas as pd

from taml.core import layout as L
from taml.core import storage
from taml.core.config import ValidateConfig

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
    table = storage.read_parquet_files(samples_uri)
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


def labels_frame(inputs: DayInputs, cfg: ValidateConfig, marker_name: str) -> pd.DataFrame:
    """One row per label source: has its dt=D+1 partition landed? ``not_landed`` says why not.

    ``marker_name``: the landing marker's name when the manifest does not record it."""
    m = inputs.manifest or {}
    sources = m.get("sources", {}) if isinstance(m.get("sources"), dict) else {}
    files = (m.get("inputs") or {}).get("files") or {}
    marker_name = (m.get("config") or {}).get("landing_marker", marker_name)
    this, nxt = L.partition(inputs.date), L.partition(inputs.date + dt.timedelta(days=1))
    rows = []
    for source in LABEL_SOURCES:
        parts = sources.get(source) if isinstance(sources.get(source), dict) else {}
        this_read = int((parts.get(this) or {}).get("read", 0) or 0)
        next_read = int((parts.get(nxt) or {}).get("read", 0) or 0) if nxt in parts else None
        marker = bool(((files.get(source) or {}).get(nxt) or {}).get("marker", False))
        rows.append(
            {
                "source": source,
                "this_day_read": this_read,
                "next_day_read": next_read,
                "marker": marker,
                "not_landed": not_landed(source, nxt, this_read, next_read, marker, marker_name, cfg),
            }
        )
    return pd.DataFrame(rows)


def not_landed(
    source: str,
    nxt: str,
    this_read: int,
    next_read: int | None,
    marker: bool,
    marker_name: str,
    cfg: ValidateConfig,
) -> str | None:
    """Why ``source``'s dt=D+1 does not count as landed, or None when it does.

    An existing folder is not enough (an empty or half-copied D+1 would pass): it takes the
    landing marker, or at least ``labels_min_volume_share`` of dt=D's lines, as configured.
    """
    where = f"{source} {nxt}"
    if next_read is None:
        return f"{where}: not read by the ingest"
    if marker and cfg.labels_landing != "volume":
        return None
    no_marker = f"no {marker_name} marker"
    if cfg.labels_landing == "marker":
        return f"{where}: {no_marker} (validation.labels_landing = marker)"
    if this_read < cfg.labels_min_lines:
        return None  # too few lines on D to judge D+1's volume by
    share = next_read / this_read
    if share >= cfg.labels_min_volume_share:
        return None
    return (
        f"{where}: {next_read} lines = {share:.3g} of {this_read} on dt=D "
        f"(< validation.labels_min_volume_share = {cfg.labels_min_volume_share})"
        + (f" and {no_marker}" if cfg.labels_landing == "marker_or_volume" else "")
        + ": an empty or partial partition, not landed yet?"
    )


def files_frame(inputs: DayInputs) -> pd.DataFrame:
    """One row: ``skipped`` lists every raw file the ingest skipped ("file: reason; ..."), null if none.

    One cell rather than a row per file, so a failure names every file (GX reports a few
    unexpected values only)."""
    files = ((inputs.manifest or {}).get("inputs") or {}).get("files") or {}
    rows = [
        f"{s.get('file')}: {s.get('reason')}"
        for parts in files.values()
        if isinstance(parts, dict)
        for entry in parts.values()
        if isinstance(entry, dict)
        for s in entry.get("skipped") or []
    ]
    text = f"{len(rows)} file(s) skipped: " + "; ".join(rows) if rows else None
    return pd.DataFrame([{"skipped": text}], dtype=object)


def manifest_frame(inputs: DayInputs) -> pd.DataFrame:
    """One row per source: dead-letter share of its dt=D partition (labels: :func:`labels_frame`)."""
    m = inputs.manifest or {}
    sources = m.get("sources", {})
    this = L.partition(inputs.date)
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
                "present": int(source in sources),
            }
        )
    return pd.DataFrame(rows)

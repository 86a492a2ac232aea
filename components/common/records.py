"""Run records: one small JSON per (day, step) under ``{artifact_root}/runs/dt=D/``.

Each step writes what a person wants to see about it (counts, verdicts, versions, where its
artifacts are); ``taml run`` and ``taml backfill`` print their summary from these, the same way
on a laptop and on a cluster, whatever ran the steps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from taml.core import layout, storage


def record_uri(artifact_root: str, day: dt.date | str, step: str) -> str:
    return storage.join(layout.run_dir(artifact_root, "runs", day), f"{step}.json")


def write_record(artifact_root: str, day: dt.date | str, step: str, record: dict[str, Any]) -> str:
    uri = record_uri(artifact_root, day, step)
    body = {
        "step": step,
        "date": layout.parse_date(day).isoformat(),
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **record,
    }
    storage.write_json(uri, body)
    return uri


def read_records(artifact_root: str, day: dt.date | str) -> dict[str, dict[str, Any]]:
    folder = layout.run_dir(artifact_root, "runs", day)
    out = {}
    for uri in storage.list_files(folder, suffix=".json"):
        rec = storage.read_json(uri)
        out[rec.get("step", storage.basename(uri)[:-5])] = rec
    return out


def clear_records(artifact_root: str, day: dt.date | str) -> None:
    """A re-run of a day starts from a clean slate, so a stale record never shows."""
    storage.delete(layout.run_dir(artifact_root, "runs", day), recursive=True)

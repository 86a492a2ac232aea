"""Helpers of the ingest tests: constants and raw-file writers (imported by the test modules)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pyarrow.dataset as ds

from taml.core import layout as L
from taml.core import storage
from taml.core.config import SimulatorConfig

START = dt.date(2026, 11, 1)
DAYS = (START, START + dt.timedelta(days=1))
SIM_CONFIG = SimulatorConfig(
    users=3000,
    base_items=800,
    new_items_per_day=30,
    chunk_size=2500,
    target_ctr=0.04,
    target_cvr=0.02,
    shops=3000,
    brands=1500,
)


def read_dir(uri: str):
    if storage.is_gcs(uri):
        fs, path = storage.pyarrow_filesystem(uri)
        return ds.dataset(path, filesystem=fs, format="parquet").to_table()
    return ds.dataset(uri, format="parquet").to_table()


def write_raw(
    root: str | Path, source: str, day: dt.date, lines: list[bytes], name: str = "part-0.jsonl.gz"
) -> str:
    """Write raw lines (bytes, joined by newlines) into raw/{source}/dt=day/name."""
    data = b"".join(line + b"\n" for line in lines)
    uri = storage.join(L.raw_dir(str(root), source, day), name)
    storage.write_bytes(uri, gzip.compress(data) if name.endswith(".gz") else data)
    return uri


def imp(
    i: str, ts: str, user: int = 1, item: int = 2, position: int = 1, device: str = "ios", **extra
) -> bytes:
    return json.dumps(
        {
            "impression_id": i,
            "ts": ts,
            "user_id": user,
            "item_id": item,
            "position": position,
            "device": device,
            **extra,
        }
    ).encode()


def ev(i: str, ts: str, **extra) -> bytes:
    return json.dumps({"impression_id": i, "ts": ts, **extra}).encode()


def user(uid, ts: str = "2026-11-01T00:00:00Z") -> bytes:
    return json.dumps(
        {"user_id": uid, "ts": ts, "gender": 1, "age_level": 2, "city_level": 3, "occupation": 4}
    ).encode()


def item(iid, ts: str = "2026-11-01T00:00:00Z") -> bytes:
    return json.dumps(
        {"item_id": iid, "ts": ts, "category_id": 1, "shop_id": 2, "brand_id": 3, "price_level": 4}
    ).encode()


def minimal_day(root: str | Path, day: dt.date, with_next: bool = True) -> None:
    """One impression with a click and a conversion; empty partitions elsewhere."""
    d = day.isoformat()
    nd = (day + dt.timedelta(days=1)).isoformat()
    write_raw(root, L.IMPRESSIONS, day, [imp("a", f"{d}T10:00:00Z")])
    write_raw(root, L.CLICKS, day, [ev("a", f"{d}T10:05:00Z")])
    write_raw(root, L.CONVERSIONS, day, [ev("a", f"{d}T11:00:00Z", value=3.5)])
    write_raw(root, L.USERS, day, [user(1)])
    write_raw(root, L.ITEMS, day, [item(2)])
    if with_next:
        write_raw(root, L.CLICKS, day + dt.timedelta(days=1), [])
        write_raw(root, L.CONVERSIONS, day + dt.timedelta(days=1), [], name=f"{nd}.jsonl")

"""Helpers to read what the simulator wrote, independently of the ingest step."""

import datetime as dt
import gzip
import json
from pathlib import Path

import pandas as pd

from taml.core import layout as L
from taml.core.config import SimulatorConfig

START = dt.date(2026, 11, 1)


def small_config(**overrides) -> SimulatorConfig:
    base = dict(
        users=4_000,
        base_items=1_500,
        new_items_per_day=60,
        chunk_size=8_000,
        target_ctr=0.04,
        target_cvr=0.02,
    )
    return SimulatorConfig(**{**base, **overrides})


def read_lines(root: str | Path, source: str, day: dt.date) -> list[bytes]:
    out = []
    for f in sorted(Path(L.raw_dir(str(root), source, day)).glob("*.jsonl*")):
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        out.extend(line for line in data.split(b"\n") if line)
    return out


def read_records(root, source, day) -> pd.DataFrame:
    rows = []
    for line in read_lines(root, source, day):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return pd.DataFrame(rows)


def truth(root, day) -> pd.DataFrame:
    return pd.read_parquet(L.truth_dir(str(root), day))

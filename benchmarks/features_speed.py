"""Speed of the validation gate and the feature store, side by side in one run (docs/FEATURES.md).

    .venv/bin/python benchmarks/features_speed.py --users 100000 --items 20000 --samples 1000000 \
        --out bench-out/features.json

Writes two synthetic curated days (ingest contract format) under a temporary data root, then
times: GX validation of the 1M-row day; materializing the window ending with day 2 (source
checks + 4 views into SQLite, the whole window: what a fresh online store costs); the daily case
(day 1 materialized, then day 2 incrementally); the point-in-time join of day 2's samples; online
lookups of one user and 100 items through the direct SQLite reader and through Feast. With
--compare-feast the same materialization and join also run through Feast (features.direct_io=false,
first repeat only) and are checked equal. With --repeats R every figure is the median of R runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.features import apply, feast_lookup, materialize, online_reader, point_in_time  # noqa: E402
from components.features.build import read_samples  # noqa: E402
from components.validate import run_validation  # noqa: E402
from simulator.curated import SyntheticSpec, write_history  # noqa: E402
from taml.core.config import load_config  # noqa: E402

START = dt.date(2026, 11, 1)
DAY = START + dt.timedelta(days=1)


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--samples", type=int, default=1_000_000, help="samples per day")
    p.add_argument("--lookup-items", type=int, default=100)
    p.add_argument("--lookups", type=int, default=300, help="timed direct lookups (Feast path: a third)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument(
        "--compare-feast", action="store_true", help="also time Feast's materialize and join (once)"
    )
    p.add_argument("--root", default=None, help="data root (default: a temporary folder)")
    p.add_argument("--out", default=None, help="JSON result file")
    a = p.parse_args()

    root = a.root or tempfile.mkdtemp(prefix="taml-bench-features-")
    data = str(Path(root) / "data")
    base = [f"paths.artifact_root={Path(root) / 'art'}", "features.require_validation=false"]
    cfg = load_config(env={}, overrides=base)
    cfg_full = load_config(env={}, overrides=[*base, "features.incremental_materialize=false"])
    cfg_feast = load_config(env={}, overrides=[*base, "features.direct_io=false"])
    t = time.perf_counter()
    write_history(
        data, START, 2, SyntheticSpec(samples_per_day=a.samples, users=a.users, items=a.items, seed=1)
    )
    print(
        f"generated 2 days x {a.samples:,} samples, {a.users:,} users, {a.items:,} items in "
        f"{time.perf_counter() - t:.1f} s under {data}",
        flush=True,
    )

    runs: dict[str, list[float]] = {
        "validate_s": [],
        "materialize_s": [],
        "materialize_daily_s": [],
        "pit_join_s": [],
    }
    lat_runs: list[dict[str, list[float]]] = []
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    store = apply(cfg, data)  # imports Feast once, outside the timed steps
    print(f"apply (incl. importing Feast) {time.perf_counter() - t:.1f} s", flush=True)
    for rep in range(a.repeats):
        t = time.perf_counter()
        result = run_validation(cfg, DAY, data)
        runs["validate_s"].append(time.perf_counter() - t)
        assert result.rows == a.samples

        t = time.perf_counter()
        online_rows = materialize(cfg_full, DAY, data)
        runs["materialize_s"].append(time.perf_counter() - t)
        materialize(cfg, START, data)  # a backfill: the whole window of day 1
        t = time.perf_counter()
        assert materialize(cfg, DAY, data) == online_rows  # the daily case: only what changed since day 1
        runs["materialize_daily_s"].append(time.perf_counter() - t)

        samples = read_samples(data, DAY).to_pandas()
        t = time.perf_counter()
        table = point_in_time(cfg, store, samples, data)
        runs["pit_join_s"].append(time.perf_counter() - t)
        assert len(table) == a.samples
        if a.compare_feast and rep == 0:
            t = time.perf_counter()
            assert materialize(cfg_feast, DAY, data, store) == online_rows
            runs["materialize_feast_s"] = [time.perf_counter() - t]
            t = time.perf_counter()
            slow_table = point_in_time(cfg_feast, store, samples)
            runs["pit_join_feast_s"] = [time.perf_counter() - t]
            pd.testing.assert_frame_equal(table, slow_table)
            del slow_table

        reader = online_reader(cfg, data)
        lat = {"direct": [], "feast": []}
        lat_runs.append(lat)
        for i in range(a.lookups + 20):
            user, items = int(rng.integers(a.users)), rng.integers(a.items, size=a.lookup_items).tolist()
            t = time.perf_counter()
            rows = reader.lookup(user, items)
            if i >= 20:  # warm-up: first queries pay SQLite page-cache misses
                lat["direct"].append(time.perf_counter() - t)
            if i % 3 == 0:
                t = time.perf_counter()
                slow = feast_lookup(store, cfg, user, items)
                if i >= 20:
                    lat["feast"].append(time.perf_counter() - t)
                assert [r["item_ctr_7d"] for r in rows] == [r["item_ctr_7d"] for r in slow]

    figures = {k: round(statistics.median(v), 2) for k, v in runs.items()}
    for path in ("direct", "feast"):  # per repeat, then the median over repeats
        for q in (50, 90, 99):
            per_run = [_pct(r[path], q) for r in lat_runs]
            figures[f"lookup_{path}_p{q}_ms"] = round(statistics.median(per_run), 2)
            if q == 99 and len(per_run) > 1:
                figures[f"lookup_{path}_p99_ms_runs"] = [round(x, 2) for x in per_run]
        figures[f"lookup_{path}_max_ms"] = round(max(max(r[path]) for r in lat_runs) * 1000, 2)
    out = {
        "users": a.users,
        "items": a.items,
        "samples": a.samples,
        "lookup_items": a.lookup_items,
        "repeats": a.repeats,
        "online_rows": online_rows,
        "figures": figures,
    }
    print("\n| measure | value |\n|---|---|")
    for k, v in figures.items():
        print(f"| {k} | {v} |", flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

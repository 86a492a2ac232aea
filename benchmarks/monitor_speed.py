"""Time `run_monitor` on a large synthetic day (contract columns, 23 inputs) against a 7-day window.

    .venv/bin/python benchmarks/monitor_speed.py --rows 1000000 [--reference-rows 1000000] [--out DIR]

Prints one JSON line: rows, seconds of the monitor call (reading, sampling, Evidently, writing,
history), the status and the rows actually used (monitor.max_rows).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from taml.core import layout as L
from taml.core.config import Config

DAY = dt.date(2026, 11, 10)


def synthetic_day(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    logit_ctr = rng.normal(-3.0, 0.8, n)
    p_ctr = 1 / (1 + np.exp(-logit_ctr))
    p_cvr = 1 / (1 + np.exp(-rng.normal(-3.5, 0.8, n)))
    click = (rng.random(n) < p_ctr).astype("int64")
    df = {
        "impression_id": np.arange(n),
        "user_id": rng.zipf(1.3, n) % 1_000_000,
        "item_id": rng.zipf(1.3, n) % 200_000,
        "position": rng.geometric(0.08, n).clip(1, 100),
        "device": rng.choice(np.array(["ios", "android", "web"]), n),
        "hour": rng.integers(0, 24, n),
        "gender": rng.integers(0, 3, n),
        "age_level": rng.integers(0, 7, n),
        "city_level": rng.integers(0, 5, n),
        "occupation": rng.integers(0, 20, n),
        "category_id": rng.integers(0, 200, n),
        "shop_id": rng.integers(0, 3000, n),
        "brand_id": rng.integers(0, 1500, n),
        "price_level": rng.integers(0, 10, n),
        "click": click,
        "conversion": (click & (rng.random(n) < p_cvr)).astype("int64"),
        "p_ctr": p_ctr,
        "p_cvr": p_cvr,
        "p_ctcvr": p_ctr * p_cvr,
        "model_version": "v-bench",
    }
    for entity in ("user", "item"):
        imp = rng.lognormal(2.5, 1.2, n)
        df[f"{entity}_impressions_7d"] = np.where(rng.random(n) < 0.05, np.nan, imp)
        df[f"{entity}_clicks_7d"] = imp * 0.05
        df[f"{entity}_conversions_7d"] = imp * 0.001
        df[f"{entity}_ctr_7d"] = rng.beta(2, 40, n)
        df[f"{entity}_cvr_7d"] = rng.beta(1, 50, n)
    return pd.DataFrame(df)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument(
        "--reference-rows", type=int, default=None, help="rows per reference day (default: --rows)"
    )
    ap.add_argument("--reference-days", type=int, default=7)
    ap.add_argument("--out", default=None, help="artifact root to write into (default: a temporary folder)")
    args = ap.parse_args()
    root = args.out or tempfile.mkdtemp(prefix="monitor-bench-")
    ref_rows = args.reference_rows or args.rows
    for k in range(args.reference_days + 1):
        day = DAY - dt.timedelta(days=k)
        folder = Path(L.predictions_dir(root, day))
        folder.mkdir(parents=True, exist_ok=True)
        synthetic_day(args.rows if k == 0 else ref_rows, seed=k).to_parquet(
            folder / "part-0.parquet", index=False
        )

    from monitoring import run_monitor

    config = Config()
    config.monitor.reference_days = args.reference_days
    t0 = time.perf_counter()
    r = run_monitor(config, DAY, "unused", root)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "rows": args.rows,
                "reference_rows_per_day": ref_rows,
                "seconds": round(seconds, 2),
                "rows_used": r.rows_used,
                "status": r.status,
                "html": r.html_uri,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Benchmark: simulator throughput and peak memory for one day at several sizes.

Each size runs in a fresh process so its peak RSS is its own (``wait4``'s rusage).
    python benchmarks/simulate_speed.py --sizes 1000000,10000000 --out bench-out/simulate.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import datetime as dt, sys
from simulator import simulate
simulate(sys.argv[1], dt.date(2026, 11, 2), 1, int(sys.argv[2]), seed=1)
"""


def run_one(n: int, workdir: Path) -> dict:
    out = workdir / f"n{n}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(n)], stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"simulate of {n} impressions failed (status {status})")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {
        "impressions": n,
        "seconds": round(seconds, 2),
        "impressions_per_s": round(n / seconds),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "bytes_written_mib": round(size / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="1000000,10000000", help="impressions per day, comma separated")
    p.add_argument("--out", default="bench-out/simulate.json")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="taml-bench-sim-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            rows.append(run_one(n, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"simulate": rows}, indent=2) + "\n")
    print("| impressions/day | seconds | impressions/s | peak RSS (MiB) | written (MiB) |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['impressions']:,} | {r['seconds']} | {r['impressions_per_s']:,} | {r['peak_rss_mib']} | {r['bytes_written_mib']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

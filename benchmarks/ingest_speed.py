"""Ingest speed: the Beam ingest step vs a plain single-process pyarrow script, on the same files.

    .venv/bin/python benchmarks/ingest_speed.py --impressions 2000000 --data /tmp/bench/data2m

Simulates one day (and its D+1 spillover) unless ``--data`` already holds it, then runs, each in
its own subprocess (so peak memory is per run): (1) ``run_ingest`` on the FnApiRunner, (2) a
baseline that parses the same gzip JSON lines with ``pyarrow.json.read_json`` (all threads),
applies the same value checks, keeps the first of duplicated impressions, attributes clicks and
conversions with the same windows and writes the labeled samples as parquet. The baseline
skips what the step adds on top (per-line reasons, dead letters with raw lines, counts and their
check, users/items, 7-day stats, staging and publishing), so the ratio is conservative.
Prints one JSON object: impressions per second of each, their ratio and peak RSS.

``--portable``: the same step on the same day through Beam's portability framework instead of the
baseline: FnApiRunner, then ``PortableRunner`` against a Python job service
(``local_job_service_main``) with ``--environment_type=LOOPBACK``, then with an external worker
pool (``worker_pool_main``, the parse step on its own SDK environment: two worker processes).
The services are started on free loopback ports before the timed runs and stopped after::

    .venv/bin/taml simulate --out /tmp/bench/p200k --start 2026-11-01 --days 2 --impressions-per-day 200000
    .venv/bin/python benchmarks/ingest_speed.py --portable --data /tmp/bench/p200k
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DAY = dt.date(2026, 11, 1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_step(data: str, shards: int, beam_args: list[str] = (), overrides: list[str] = ()) -> dict:
    import logging

    from components.ingest import run_ingest
    from taml.core.config import load_config

    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(overrides=[f"ingest.shards={shards}", *overrides])
    t = time.perf_counter()
    res = run_ingest(cfg, DAY, data, list(beam_args))
    secs = time.perf_counter() - t
    return {
        "seconds": secs,
        "samples": res.samples,
        "clicks": _label_sum(res.outputs["samples"], "click"),
        "conversions": _label_sum(res.outputs["samples"], "conversion"),
        "peak_rss_mb": peak_rss_mb(),
    }


def _label_sum(folder: str, col: str) -> int:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    return int(pc.sum(ds.dataset(folder).to_table(columns=[col])[col]).as_py())


def run_baseline(data: str, out: str) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    from components.ingest.schema import SPECS
    from taml.core import layout as L

    t = time.perf_counter()
    day0 = int(dt.datetime(DAY.year, DAY.month, DAY.day, tzinfo=dt.UTC).timestamp() * 1_000_000)
    ts_type = pa.timestamp("us", tz="UTC")

    def read(source: str, day: dt.date, schema: pa.Schema) -> pa.Table:
        tables = []
        for f in sorted(Path(data, "raw", source, f"dt={day}").glob("*.jsonl*")):
            raw = f.read_bytes()
            raw = gzip.decompress(raw) if f.suffix == ".gz" else raw
            if raw:
                tables.append(
                    pj.read_json(
                        pa.py_buffer(raw),
                        # as the step: keys the schema does not name (a conversion's value) are ignored
                        parse_options=pj.ParseOptions(
                            explicit_schema=schema, unexpected_field_behavior="ignore"
                        ),
                    )
                )
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def ts_us(t: pa.Table) -> np.ndarray:
        return pc.cast(t["ts"], ts_type).cast(pa.int64()).to_numpy()

    # The same raw-input schema the step asks Arrow for (ids and position int64, ts a string).
    imps = read("impressions", DAY, SPECS[L.IMPRESSIONS].raw_schema)
    ev_schema = pa.schema([("impression_id", pa.string()), ("ts", pa.string())])
    t_imp = ts_us(imps)
    pos = imps["position"].to_numpy()
    ok = (
        (t_imp >= day0)
        & (t_imp < day0 + 86_400_000_000)
        & (pos >= 1)
        & (pos <= 100)
        & pc.is_in(imps["device"], value_set=pa.array(["ios", "android", "web"])).to_numpy(
            zero_copy_only=False
        )
        & (imps["user_id"].to_numpy() >= 0)
        & (imps["item_id"].to_numpy() >= 0)
    )
    imps = imps.filter(pa.array(ok)).append_column("t", pa.array(t_imp[ok]))
    imps = imps.append_column("row", pa.array(np.arange(imps.num_rows)))
    first = imps.group_by("impression_id", use_threads=True).aggregate([("row", "min")])["row_min"]
    imps = imps.take(pc.sort_indices(first))

    def events(source: str) -> pa.Table:
        e = pa.concat_tables(
            [read(source, DAY, ev_schema), read(source, DAY + dt.timedelta(days=1), ev_schema)]
        )
        return pa.table({"impression_id": e["impression_id"], "et": pa.array(ts_us(e))})

    base = imps.select(["impression_id", "t"])
    clicks = events("clicks").join(base, "impression_id", join_type="inner")
    d = pc.subtract(clicks["et"], clicks["t"])
    clicks = clicks.filter(pc.and_(pc.greater_equal(d, 0), pc.less_equal(d, 3_600_000_000)))
    clicks = (
        clicks.group_by("impression_id").aggregate([("et", "min")]).rename_columns(["impression_id", "ct"])
    )
    convs = (
        events("conversions")
        .join(base, "impression_id", join_type="inner")
        .join(clicks, "impression_id", join_type="inner")
    )
    convs = convs.filter(
        pc.and_(
            pc.greater_equal(convs["et"], convs["ct"]),
            pc.less_equal(pc.subtract(convs["et"], convs["t"]), 86_400_000_000),
        )
    )
    conv_ids = pc.unique(convs["impression_id"])
    click_flag = pc.is_in(imps["impression_id"], value_set=clicks["impression_id"]).cast(pa.int32())
    conv_flag = pc.is_in(imps["impression_id"], value_set=conv_ids).cast(pa.int32())
    t_arr = imps["t"].to_numpy()
    samples = pa.table(
        {
            "impression_id": imps["impression_id"],
            "event_timestamp": pa.array(t_arr).cast(ts_type),
            "user_id": imps["user_id"],
            "item_id": imps["item_id"],
            "position": imps["position"].cast(pa.int32()),
            "device": imps["device"],
            "hour": pa.array(((t_arr // 3_600_000_000) % 24).astype(np.int32)),
            "click": click_flag,
            "conversion": conv_flag,
        }
    )
    Path(out).mkdir(parents=True, exist_ok=True)
    pq.write_table(samples, f"{out}/samples.parquet", compression="zstd")
    secs = time.perf_counter() - t
    return {
        "seconds": secs,
        "samples": samples.num_rows,
        "clicks": int(pc.sum(click_flag).as_py()),
        "conversions": int(pc.sum(conv_flag).as_py()),
        "peak_rss_mb": peak_rss_mb(),
    }


def child(mode: str, data: str, shards: int, extra: list[str] = ()) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--data", data, "--shards", str(shards), *extra]
    out = subprocess.run(
        cmd, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(module_args: list[str], port: int, log: Path) -> subprocess.Popen:
    import os
    import socket

    # The pool starts each SDK worker as `python -c ...` from PATH: this interpreter's.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", *module_args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{module_args[0]} did not start on port {port}: see {log}")


def portable(data: str, shards: int) -> dict:
    """Seconds of run_ingest on FnApiRunner vs PortableRunner (LOOPBACK, EXTERNAL pool), same day."""
    logs = Path(data) / "beam-services"
    logs.mkdir(exist_ok=True)
    job, pool = _free_port(), _free_port()
    procs = [
        _start(
            ["apache_beam.runners.portability.local_job_service_main", "--port", str(job)],
            job,
            logs / "job.log",
        ),
        _start(
            ["apache_beam.runners.worker.worker_pool_main", f"--service_port={pool}"], pool, logs / "pool.log"
        ),
    ]
    endpoint = ["--beam-arg=--runner=PortableRunner", f"--beam-arg=--job_endpoint=localhost:{job}"]
    runs = {
        "fnapi": [],
        "portable_loopback": [*endpoint, "--beam-arg=--environment_type=LOOPBACK"],
        "portable_external_pool": [
            *endpoint,
            "--beam-arg=--environment_type=EXTERNAL",
            f"--beam-arg=--environment_config=localhost:{pool}",
            "--set=ingest.parse_resource_hints={min_ram: 1GB}",
        ],
    }
    try:
        out = {name: child("step", data, shards, extra) for name, extra in runs.items()}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    out["pool_workers_started"] = (logs / "pool.log").read_text().count("Starting worker with command")
    base = out["fnapi"]["seconds"]
    for name in ("portable_loopback", "portable_external_pool"):
        out[name]["ratio_to_fnapi"] = out[name]["seconds"] / base
        out[name]["labels_agree"] = all(
            out[name][k] == out["fnapi"][k] for k in ("samples", "clicks", "conversions")
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impressions", type=int, default=2_000_000)
    ap.add_argument("--data", default="./bench-out/ingest-data")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corrupt-rate", type=float, default=0.0)
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument(
        "--portable", action="store_true", help="FnApiRunner vs PortableRunner instead of the baseline"
    )
    ap.add_argument("--child", choices=["step", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--beam-arg", action="append", default=[], help=argparse.SUPPRESS)
    ap.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "step":
        print(json.dumps(run_step(args.data, args.shards, args.beam_arg, args.set)))
        return
    if args.child == "baseline":
        print(json.dumps(run_baseline(args.data, str(Path(args.data) / "baseline-out"))))
        return

    if not Path(args.data, "raw", "impressions", f"dt={DAY}").is_dir():
        from simulator import simulate

        t = time.perf_counter()
        simulate(args.data, DAY, 1, args.impressions, seed=args.seed, corrupt_rate=args.corrupt_rate)
        print(f"simulated {args.impressions} impressions in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    if args.portable:
        print(json.dumps(portable(args.data, args.shards), indent=2))
        return
    step = child("step", args.data, args.shards)
    n = step["samples"]
    if args.corrupt_rate > 0:
        # The baseline has no per-line fallback: one bad line fails its read_json. Step only.
        print(
            json.dumps(
                {
                    "impressions": n,
                    "corrupt_rate": args.corrupt_rate,
                    "step": {**step, "impressions_per_s": n / step["seconds"]},
                },
                indent=2,
            )
        )
        return
    base = child("baseline", args.data, args.shards)
    report = {
        "impressions": n,
        "step": {**step, "impressions_per_s": n / step["seconds"]},
        "baseline": {**base, "impressions_per_s": base["samples"] / base["seconds"]},
        "ratio_step_over_baseline": (n / step["seconds"]) / (base["samples"] / base["seconds"]),
        "labels_agree": (step["samples"], step["clicks"], step["conversions"])
        == (base["samples"], base["clicks"], base["conversions"]),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Latency of `taml serve` for 1 user x 100 candidate items, at concurrency 1 and 8, on loopback.

Builds a throw-away world (a real Feast store over synthetic curated days, a default-size TAML
version published and promoted), starts `taml serve` as its own process on 127.0.0.1, and sends
a bounded number of `:rank` requests from keep-alive HTTP connections (one thread each). Latency
is measured per request on the client (send to last byte).

    .venv/bin/python benchmarks/serving_latency.py --requests 1000 --json bench-out/serving.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "serving")]


def build_world(tmp: Path, users: int, items: int) -> tuple[str, str]:
    import serving_fixtures as F

    from model import VersionMetadata, fit, save_model_version

    cfg = F.serving_config(tmp)
    data, art = str(tmp / "data"), str(tmp / "art")
    F.build_store(cfg, data, users=users, items=items)
    # Default architecture and embedding size (the production shape), trained a few steps.
    spec = cfg.feature_spec.model_copy(update={"min_count": 1})
    tc = cfg.train.model_copy(update={"progress": False, "max_steps": 5})
    fr = fit(F.training_table(n=20_000, users=users, items=items), spec, cfg.model, tc)
    version = save_model_version(
        tmp / "models" / "bench-v1", fr.model, fr.spec, fr.vocab, VersionMetadata(version="bench-v1")
    )
    F.publish(art, "taml", version)
    return data, art


def run_level(port: int, concurrency: int, n_requests: int, users: int, items: int, n_items: int, seed: int):
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_thread = n_requests // concurrency

    def worker(k: int) -> None:
        rng = random.Random(seed * 100 + k)
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(per_thread):
            body = json.dumps({"user_id": rng.randrange(users), "items": rng.sample(range(items), n_items)})
            t0 = time.perf_counter()
            con.request("POST", "/v1/models/taml:rank", body, {"Content-Type": "application/json"})
            resp = con.getresponse()
            data = resp.read()
            mine.append(time.perf_counter() - t0)
            if resp.status != 200:
                with lock:
                    errors.append(f"{resp.status} {data[:200]!r}")
        con.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    a = np.array(lat) * 1e3
    return {
        "concurrency": concurrency,
        "requests": len(lat),
        "errors": len(errors),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p90_ms": round(float(np.percentile(a, 90)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 2),
        "requests_per_s": round(len(lat) / wall, 1),
        "items_per_s": round(len(lat) * n_items / wall, 0),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000, help="requests per concurrency level")
    ap.add_argument("--warmup", type=int, default=100, help="requests sent first and not measured")
    ap.add_argument("--concurrency", default="1,8", help="comma-separated levels")
    ap.add_argument("--items-per-request", type=int, default=100)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--torch-threads", type=int, default=1, help="serving.torch_threads of the server")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="taml-serving-bench-"))
    t = time.perf_counter()
    data, art = build_world(tmp, args.users, args.items)
    print(f"world built in {time.perf_counter() - t:.1f} s under {tmp}", flush=True)
    import serving_fixtures as F

    port = F.free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.torch_threads)}
    env.pop("AIP_HTTP_PORT", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taml.cli",
            "serve",
            "--data-root",
            data,
            "--artifact-root",
            art,
            "--port",
            str(port),
            "--set",
            "serving.host=127.0.0.1",
            "--set",
            f"serving.torch_threads={args.torch_threads}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = []
    try:

        def ready() -> bool:
            try:
                con = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                con.request("GET", "/v1/models/taml")
                return con.getresponse().status == 200
            except OSError:
                return False

        if not F.wait_until(ready, 120, every=0.2):
            raise SystemExit("server did not become ready")
        # Warm-up fills the item cache with every item (as a long-running server's would be).
        run_level(port, 1, args.warmup, args.users, args.items, args.items_per_request, seed=0)
        for c in (int(x) for x in args.concurrency.split(",")):
            r = run_level(port, c, args.requests, args.users, args.items, args.items_per_request, seed=c)
            results.append(r)
            print(json.dumps(r), flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "command": " ".join(sys.argv),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "items_per_request": args.items_per_request,
        "torch_threads": args.torch_threads,
        "results": results,
    }
    print(f"load average {out['load_average']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

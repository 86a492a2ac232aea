"""Latency of `taml serve` for 1 user x 100 candidate items, SQLite and Redis online stores side by side.

Builds a throw-away world (synthetic curated days materialized by the features step into Feast's
SQLite store and into Feast's Redis store on a redis-server started here on a free loopback port
with a password; a default-size TAML version published and promoted), then in ONE run:

1. in process, the online lookup of 1 user x 100 items through each reader, interleaved request
   by request so both see the same machine load: the project's SQLite reader, its Redis reader,
   and Feast's own ``FeatureStore.get_online_features`` on each store;
2. end to end, `taml serve` as its own process per store (127.0.0.1), `:rank` requests from
   keep-alive HTTP connections (one thread each), latency per request on the client; each level
   with the item cache (as a long-running server) and, at concurrency 1, without it
   (``serving.item_cache_size=0``: every request reads its 100 items from the store). The
   prediction log is on, as in production (``--no-log``: off, as the figures before 2026-12-02).

    .venv/bin/python benchmarks/serving_latency.py --requests 1000 --json bench-out/serving.json

With ``--baseline DIR`` (another checkout), 3. per store, that checkout's server and this one's
answer the same requests in turns: the before/after ratio of a change on the same machine load.
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "serving")]
PASSWORD_ENV = "TAML_REDIS_PASSWORD"


def build_world(tmp: Path, users: int, items: int, redis_connection: str) -> dict:
    """Curated days, both online stores materialized by the features step, a promoted model version."""
    import serving_fixtures as F

    from components.features import materialize
    from model import VersionMetadata, fit, save_model_version
    from simulator.curated import SyntheticSpec, write_history

    data, art = str(tmp / "data"), str(tmp / "art")
    cfgs = {
        "sqlite": F.serving_config(tmp),
        "redis": F.serving_config(
            tmp, "features.online_store=redis", f"features.redis_connection_string={redis_connection}"
        ),
    }
    spec = SyntheticSpec(samples_per_day=max(1500, 3 * (users + items)), users=users, items=items, seed=5)
    write_history(data, F.START, 3, spec)
    for cfg in cfgs.values():
        materialize(cfg, F.DAY, data)
    # Default architecture and embedding size (the production shape), trained a few steps.
    cfg = cfgs["sqlite"]
    mspec = cfg.feature_spec.model_copy(update={"min_count": 1})
    tc = cfg.train.model_copy(update={"progress": False, "max_steps": 5})
    fr = fit(F.training_table(n=20_000, users=users, items=items), mspec, cfg.model, tc)
    version = save_model_version(
        tmp / "models" / "bench-v1", fr.model, fr.spec, fr.vocab, VersionMetadata(version="bench-v1")
    )
    F.publish(art, "taml", version)
    return {"data": data, "art": art, "cfgs": cfgs}


def percentiles(ms: list[float]) -> dict:
    a = np.array(ms)
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p90_ms": round(float(np.percentile(a, 90)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 2),
    }


def lookups_in_process(world: dict, n: int, n_feast: int, users: int, items: int, n_items: int) -> dict:
    """Each reader on the same random requests, interleaved (reader order rotates per request)."""
    from components.features import feast_lookup, feature_store, online_reader

    cfgs, data = world["cfgs"], world["data"]
    readers = {k: online_reader(c, data) for k, c in cfgs.items()}
    stores = {k: feature_store(c, data) for k, c in cfgs.items()}
    calls = {
        "sqlite_direct": lambda u, it: readers["sqlite"].lookup(u, it),
        "redis_direct": lambda u, it: readers["redis"].lookup(u, it),
        "sqlite_feast": lambda u, it: feast_lookup(stores["sqlite"], cfgs["sqlite"], u, it),
        "redis_feast": lambda u, it: feast_lookup(stores["redis"], cfgs["redis"], u, it),
    }
    rng = random.Random(1)
    reqs = [(rng.randrange(users), rng.sample(range(items), n_items)) for _ in range(n)]
    # Same answers from all four, then warm-up.
    u, it = reqs[0]
    answers = [calls[k](u, it) for k in calls]
    for other in answers[1:]:
        assert [{k: r[k] for k in answers[0][0]} for r in other] == answers[0], "readers disagree"
    lat: dict[str, list[float]] = {k: [] for k in calls}
    names = list(calls)
    for j, (u, it) in enumerate(reqs):
        order = names[j % len(names) :] + names[: j % len(names)]
        for k in order:
            if k.endswith("_feast") and j >= n_feast:
                continue
            t0 = time.perf_counter()
            calls[k](u, it)
            lat[k].append((time.perf_counter() - t0) * 1e3)
    return {k: percentiles(v) for k, v in lat.items()}


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


def start_server(world: dict, store: str, port: int, args, extra: list[str], env: dict, tree: Path = ROOT):
    """`taml serve` of the code in ``tree`` (this checkout, or ``--baseline``'s) on ``port``."""
    cfg = world["cfgs"][store]
    sets = [
        "serving.host=127.0.0.1",
        f"serving.torch_threads={args.torch_threads}",
        # The prediction log on, as in production (it writes under the throw-away world).
        f"serving.log_enabled={'false' if args.no_log else 'true'}",
        f"features.online_store={cfg.features.online_store}",
        f"features.redis_connection_string={cfg.features.redis_connection_string}",
        *extra,
    ]
    cmd = [
        sys.executable,
        "-m",
        "taml.cli",
        "serve",
        "--data-root",
        world["data"],
        "--artifact-root",
        world["art"],
    ]
    cmd += ["--port", str(port)] + [x for s in sets for x in ("--set", s)]
    env = {**env, "PYTHONPATH": str(tree)}
    return subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def server(world, store, extra, args, env, tree: Path = ROOT) -> Iterator[int]:
    """A ready server (its item cache warmed by ``--warmup`` requests); yields its port."""
    import serving_fixtures as F

    port = F.free_port()
    proc = start_server(world, store, port, args, extra, env, tree)
    try:

        def ready() -> bool:
            try:
                con = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                con.request("GET", "/v1/models/taml")
                return con.getresponse().status == 200
            except OSError:
                return False

        if not F.wait_until(ready, 180, every=0.2):
            raise SystemExit(f"{store} server of {tree} did not become ready")
        # Warm-up fills the item cache with every item (as a long-running server's would be).
        run_level(port, 1, args.warmup, args.users, args.items, args.items_per_request, seed=0)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def serve_levels(world, store, extra, levels, args, env) -> list[dict]:
    out = []
    with server(world, store, extra, args, env) as port:
        for c in levels:
            load = os.getloadavg()[0]
            r = run_level(port, c, args.requests, args.users, args.items, args.items_per_request, seed=c)
            r.update(store=store, item_cache=not extra, log=not args.no_log, load_before=round(load, 2))
            out.append(r)
            print(json.dumps(r), flush=True)
    return out


def side_by_side(world, store, args, env) -> dict:
    """This checkout and ``--baseline``'s, both serving at once; each request goes to both, in
    turns (who goes first alternates), so both see the same machine load: concurrency 1, cache on."""
    rng = random.Random(7)
    bodies = [
        json.dumps(
            {
                "user_id": rng.randrange(args.users),
                "items": rng.sample(range(args.items), args.items_per_request),
            }
        )
        for _ in range(args.requests)
    ]
    lat: dict[str, list[float]] = {"current": [], "baseline": []}
    load = os.getloadavg()[0]
    with (
        server(world, store, [], args, env) as cur,
        server(world, store, [], args, env, args.baseline) as base,
    ):
        cons = {
            k: http.client.HTTPConnection("127.0.0.1", p, timeout=30)
            for k, p in (("current", cur), ("baseline", base))
        }
        for j, body in enumerate(bodies):
            for k in ("current", "baseline") if j % 2 == 0 else ("baseline", "current"):
                t0 = time.perf_counter()
                cons[k].request("POST", "/v1/models/taml:rank", body, {"Content-Type": "application/json"})
                resp = cons[k].getresponse()
                data = resp.read()
                lat[k].append((time.perf_counter() - t0) * 1e3)
                if resp.status != 200:
                    raise SystemExit(f"{k} {store} server answered {resp.status}: {data[:200]!r}")
    out = {"store": store, "baseline_tree": str(args.baseline), "load_before": round(load, 2)}
    out.update({k: percentiles(v) for k, v in lat.items()})
    for q in ("p50_ms", "p99_ms"):
        out[f"{q}_current_over_baseline"] = round(out["current"][q] / out["baseline"][q], 2)
    print(json.dumps(out), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000, help="requests per concurrency level")
    ap.add_argument("--warmup", type=int, default=100, help="requests sent first and not measured")
    ap.add_argument("--concurrency", default="1,8", help="comma-separated levels")
    ap.add_argument("--items-per-request", type=int, default=100)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--lookups", type=int, default=1000, help="in-process lookups per direct reader")
    ap.add_argument("--feast-lookups", type=int, default=200, help="in-process lookups through Feast")
    ap.add_argument("--torch-threads", type=int, default=1, help="serving.torch_threads of the server")
    ap.add_argument(
        "--no-log",
        action="store_true",
        help="serve with serving.log_enabled=false (figures before 2026-12-02)",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout (e.g. `git worktree add /tmp/base REV`): its `taml serve` and this one's "
        "answer the same requests in turns, per store (concurrency 1, item cache on)",
    )
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    from redis_fixtures import start_redis, stop_redis

    tmp = Path(tempfile.mkdtemp(prefix="taml-serving-bench-"))
    password = "bench-" + os.urandom(8).hex()
    os.environ[PASSWORD_ENV] = password
    redis = start_redis(tmp, password)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.torch_threads)}
    env.pop("AIP_HTTP_PORT", None)
    out: dict = {"command": " ".join(sys.argv), "cpus": os.cpu_count(), "load_average_start": os.getloadavg()}
    try:
        t = time.perf_counter()
        world = build_world(tmp, args.users, args.items, redis.connection_string(1))
        print(f"world built in {time.perf_counter() - t:.1f} s under {tmp}", flush=True)
        out["in_process"] = lookups_in_process(
            world, args.lookups, args.feast_lookups, args.users, args.items, args.items_per_request
        )
        print(json.dumps(out["in_process"], indent=1), flush=True)
        levels = [int(x) for x in args.concurrency.split(",")]
        results = []
        for store in ("sqlite", "redis"):
            results += serve_levels(world, store, [], levels, args, env)
            results += serve_levels(world, store, ["serving.item_cache_size=0"], [1], args, env)
        out["results"] = results
        if args.baseline is not None:
            out["side_by_side"] = [side_by_side(world, store, args, env) for store in ("sqlite", "redis")]
    finally:
        stop_redis(redis)
        shutil.rmtree(tmp, ignore_errors=True)
    ip = out["in_process"]
    e2e = {(r["store"], r["item_cache"], r["concurrency"]): r for r in out["results"]}
    out["ratios"] = {
        "in_process_p50_redis_over_sqlite": round(
            ip["redis_direct"]["p50_ms"] / ip["sqlite_direct"]["p50_ms"], 2
        ),
        "in_process_p50_feast_redis_over_redis_direct": round(
            ip["redis_feast"]["p50_ms"] / ip["redis_direct"]["p50_ms"], 1
        ),
        **{
            f"serve_c1_{'cache' if cache else 'nocache'}_{q}_redis_over_sqlite": round(
                e2e[("redis", cache, 1)][q] / e2e[("sqlite", cache, 1)][q], 2
            )
            for cache in (True, False)
            for q in ("p50_ms", "p99_ms")
            if ("redis", cache, 1) in e2e
        },
    }
    out["load_average_end"] = os.getloadavg()
    print(json.dumps(out["ratios"], indent=1))
    print(f"load average {out['load_average_start']} -> {out['load_average_end']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0 if all(r["errors"] == 0 for r in out["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())

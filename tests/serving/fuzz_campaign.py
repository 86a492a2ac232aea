"""Fuzz campaign against ``taml serve`` on a throw-away world: hypothesis bodies, then schemathesis.

    .venv/bin/python tests/serving/fuzz_campaign.py --bodies 10000 --body-time 1200 \
        --examples 30 --max-time 300 --out bench-out/fuzz

Builds a real Feast store and a tiny model version (``serving_fixtures``) and starts ``taml serve``
as its own process on 127.0.0.1. Phase 1 posts ``--bodies`` bodies drawn from the hostile
strategies of ``hostile_bodies.py`` (V1 predict/rank and V2 infer, half each; stops early at
``--body-time`` seconds). Phase 2 runs ``schemathesis run`` (positive and negative data, coverage
and fuzzing phases, every route) from ``/openapi.json`` within ``--max-time`` seconds and counts
its HAR record. Exits 1 if any answer of either phase was a 5xx.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving_fixtures as F  # noqa: E402
from hostile_bodies import v1_bodies, v2_bodies  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bodies", type=int, default=10_000, help="hypothesis bodies to post (phase 1)")
    ap.add_argument("--body-time", type=float, default=1200, help="time budget of phase 1 (s)")
    ap.add_argument("--examples", type=int, default=30, help="schemathesis --max-examples per operation")
    ap.add_argument("--max-time", type=int, default=300, help="schemathesis time budget (s)")
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--out", default="bench-out/fuzz", help="folder for the HAR record and summary")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="taml-fuzz-") as tmp_s:
        tmp = Path(tmp_s)
        cfg = F.serving_config(tmp, "serving.max_instances=50", "serving.max_rank_items=100")
        data, art = str(tmp / "data"), str(tmp / "art")
        F.build_store(cfg, data)
        F.publish(art, "taml", F.make_version(cfg, tmp / "models", "fz1"))
        port = F.free_port()
        server = subprocess.Popen(
            [
                sys.executable, "-m", "taml.cli", "serve", "--data-root", data, "--artifact-root", art,
                "--port", str(port), "--set", "serving.max_instances=50", "--set", "serving.max_rank_items=100",
                "--set", f"serving.log_dir={tmp / 'log'}",
            ],
            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL, stderr=open(out / "server.log", "w"),  # noqa: SIM115
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:

            def ready() -> bool:
                try:
                    return httpx.get(url + "/readyz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            if not F.wait_until(ready, 120):
                print("server not ready", file=sys.stderr)
                return 2
            phase1 = post_bodies(url, args.bodies, args.body_time, args.seed, out / "five_xx.jsonl")
            har = out / "fuzz.har"
            cmd = [
                str(Path(sys.executable).with_name("schemathesis")), "run", f"{url}/openapi.json",
                "--checks", CHECKS, "--mode", "all", "--max-examples", str(args.examples),
                "--max-time", str(args.max_time), "--seed", str(args.seed), "--workers", "1",
                "--continue-on-failure", "--report", "har", "--report-har-path", str(har),
                "--suppress-health-check", "all",
            ]  # fmt: skip
            start = time.monotonic()
            run = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
            elapsed = time.monotonic() - start
            (out / "schemathesis.txt").write_text(run.stdout + run.stderr)
            readiness = httpx.get(url + "/readyz", timeout=5).json()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    entries = json.loads(har.read_text())["log"]["entries"]
    status = collections.Counter(f"{e['response']['status'] // 100}xx" for e in entries)
    bodies = sum(1 for e in entries if e["request"].get("postData", {}).get("text") is not None)
    by_route = collections.Counter(
        f"{e['request']['method']} {httpx.URL(e['request']['url']).path}" for e in entries
    )
    summary = {
        "command": " ".join(["tests/serving/fuzz_campaign.py", *(argv or sys.argv[1:])]),
        "hypothesis_bodies": phase1,
        "schemathesis": {
            "exit": run.returncode,
            "seconds": round(elapsed, 1),
            "requests": len(entries),
            "request_bodies": bodies,
            "status_classes": dict(sorted(status.items())),
            "five_xx": status.get("5xx", 0),
            "requests_by_route": dict(by_route.most_common()),
        },
        "five_xx": phase1["five_xx"] + status.get("5xx", 0),
        "bodies": phase1["bodies"] + bodies,
        "server_prediction_log": readiness.get("prediction_log"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(run.stdout[-3000:])
    return 1 if summary["five_xx"] else 0


def post_bodies(url: str, n: int, budget_s: float, base_seed: int, five_xx_log: Path) -> dict:
    """Phase 1: post hypothesis-drawn bodies in chunks until ``n`` were sent or time is up."""
    counts: collections.Counter[str] = collections.Counter()
    sent = 0
    start = time.monotonic()
    chunk = 500
    with httpx.Client(timeout=30) as client, five_xx_log.open("w") as bad:

        def post(payload: bytes) -> None:
            nonlocal sent
            if sent >= n or time.monotonic() - start > budget_s:
                return
            route, _, body = payload.partition(b"\n")
            r = client.post(url + route.decode(), content=body, headers={"content-type": "application/json"})
            sent += 1
            counts[f"{r.status_code // 100}xx"] += 1
            counts[str(r.status_code)] += 1
            if r.status_code >= 500:
                bad.write(
                    json.dumps(
                        {
                            "route": route.decode(),
                            "status": r.status_code,
                            "body": body[:2000].decode("utf-8", "replace"),
                        }
                    )
                    + "\n"
                )

        k = 0
        while sent < n and time.monotonic() - start < budget_s:
            strategy = v1_bodies() if k % 2 == 0 else v2_bodies()
            run = settings(
                max_examples=chunk, deadline=None, database=None, phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(seed(base_seed + k)(given(payload=strategy)(post)))  # fmt: skip
            run()
            k += 1
    elapsed = time.monotonic() - start
    return {
        "bodies": sent,
        "seconds": round(elapsed, 1),
        "bodies_per_s": round(sent / elapsed, 1) if elapsed else None,
        "status": dict(sorted(counts.items())),
        "five_xx": counts.get("5xx", 0),
    }


if __name__ == "__main__":
    raise SystemExit(main())

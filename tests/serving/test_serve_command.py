"""`taml serve` as its own process, started the way Vertex AI starts a custom container."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import serving_fixtures as F

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "serve-token-" + "k" * 20
AUTH = {"authorization": f"Bearer {TOKEN}"}


def test_taml_serve_process_follows_vertex_contract_and_shuts_down_cleanly(tmp_path):
    cfg = F.serving_config(tmp_path)
    data, art = str(tmp_path / "data"), str(tmp_path / "art")
    F.build_store(cfg, data)
    F.publish(art, "taml", F.make_version(cfg, tmp_path / "models", "c1"))
    port = F.free_port()
    env = {
        **os.environ,
        "AIP_HTTP_PORT": str(port),
        "AIP_PREDICT_ROUTE": "/vertex/predict",
        "AIP_HEALTH_ROUTE": "/vertex/health",
        "OMP_NUM_THREADS": "1",
        "TAML_TEST_SERVE_TOKEN": TOKEN,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taml.cli",
            "serve",
            "--data-root",
            data,
            "--artifact-root",
            art,
            "--set",
            "serving.auth_token_env=TAML_TEST_SERVE_TOKEN",
            "--set",
            "serving.log_flush_interval_s=0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(url + "/vertex/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None

    try:
        assert F.wait_until(healthy, 180) and proc.poll() is None, (
            proc.stdout.read() if proc.poll() is not None else ""
        )
        body = {"instances": [{"user_id": 2, "item_id": 3}]}
        assert httpx.post(url + "/vertex/predict", json=body, timeout=10).status_code == 401
        r = httpx.post(url + "/vertex/predict", json=body, headers=AUTH, timeout=10)
        assert r.status_code == 200 and r.json()["predictions"][0]["model_version"] == "c1"
        assert httpx.get(url + "/v1/models/taml", timeout=5).json()["ready"] is True
        # Loopback by default: the only listening socket of the process is on 127.0.0.1.
        listening = [c.laddr for c in psutil.Process(proc.pid).connections() if c.status == "LISTEN"]
        assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    # uvicorn drains, runs the lifespan shutdown (log flushed), then re-raises the signal it caught.
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert f"127.0.0.1:{port}" in out and "bearer token required" in out and TOKEN not in out
    logged = [
        json.loads(x)
        for f in Path(art, "serving_log").glob("dt=*/*.jsonl")
        for x in f.read_text().splitlines()
    ]
    assert [(x["user_id"], x["item_id"], x["model_version"]) for x in logged] == [(2, 3, "c1")]

"""The ingest pipeline through Beam's portability framework gives FnApiRunner's outputs, byte for byte.

Real services on free loopback ports: the Python job service
(``apache_beam.runners.portability.local_job_service_main``) and an external worker pool
(``apache_beam.runners.worker.worker_pool_main``), stopped after the test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ingest_helpers import SIM_CONFIG, START

from components.ingest import run_ingest
from taml.core.config import load_config

START_TIMEOUT_S = 60
OUTPUTS = ("samples", "users", "items", "dead_letter", "user_stats", "item_stats")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service on port {port} exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"service on port {port} did not start within {START_TIMEOUT_S} s")


@contextlib.contextmanager
def _service(args: list[str], port: int, log: Path):
    # The worker pool starts each SDK worker as `python -c ...` from PATH: this venv's python.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for(port, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    logs = tmp_path_factory.mktemp("beam-services")
    job, pool = _free_port(), _free_port()
    with (
        _service(
            ["apache_beam.runners.portability.local_job_service_main", "--port", str(job)],
            job,
            logs / "job.log",
        ),
        _service(
            ["apache_beam.runners.worker.worker_pool_main", f"--service_port={pool}"],
            pool,
            logs / "pool.log",
        ),
    ):
        yield job, pool, logs / "pool.log"


@pytest.fixture(scope="module")
def raw_day(tmp_path_factory):
    from simulator import simulate

    root = tmp_path_factory.mktemp("portable") / "raw"
    simulate(str(root), START, 2, 800, seed=3, corrupt_rate=0.03, config=SIM_CONFIG)
    return root


def _ingest(raw_day: Path, dest: Path, overrides: list[str], beam_args: list[str]):
    """One run on a fresh copy at the same path (dead letters record their file's full path)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(raw_day, dest)
    config = load_config(env={}, overrides=["ingest.shards=2", "ingest.stats_shards=2", *overrides])
    result = run_ingest(config, START, str(dest), beam_args)
    return _manifest(result), _files(result)


def _files(result) -> dict[str, bytes]:
    out = {}
    for name in OUTPUTS:
        folder = Path(result.outputs[name])
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                out[f"{name}/{f.relative_to(folder)}"] = f.read_bytes()
    return out


def _manifest(result) -> dict:
    return {k: v for k, v in result.manifest.items() if k != "created_at"}


def test_portable_runner_loopback_and_external_pool_equal_fnapi(services, raw_day, tmp_path):
    job, pool, pool_log = services
    day = tmp_path / "day"
    ref_manifest, want = _ingest(raw_day, day, [], ["--runner=FnApiRunner"])
    portable = ["--runner=PortableRunner", f"--job_endpoint=localhost:{job}"]
    loopback = _ingest(raw_day, day, [], [*portable, "--environment_type=LOOPBACK"])
    # The Python job service starts one SDK worker per environment (it reads neither
    # sdk_worker_parallelism nor direct_num_workers): a resource hint gives the parse step an
    # environment of its own, so the pool runs two worker processes.
    external = _ingest(
        raw_day,
        day,
        ["ingest.parse_resource_hints={min_ram: 1GB}"],
        [*portable, "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool}"],
    )
    assert pool_log.read_text().count("Starting worker with command") >= 2

    assert (
        ref_manifest["outputs"]["samples"]["rows"] > 700
        and ref_manifest["outputs"]["dead_letter"]["rows"] > 0
    )
    assert any(k.startswith("dead_letter/") for k in want) and any(k.startswith("user_stats/") for k in want)
    for manifest, got in (loopback, external):
        assert manifest == ref_manifest
        assert sorted(got) == sorted(want)
        assert [k for k in want if got[k] != want[k]] == []  # byte for byte

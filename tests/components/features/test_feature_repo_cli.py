"""The Feast repository from its own folder, as a person uses it after `make run`.

A clone's layout in a temporary folder: ``feature_repo/`` (copied as is) beside ``demo/data``, a
store built the way `make run` builds it (the features step: apply + materialize). Then the plain
``feast`` CLI, as processes, with no TAML or Feast variable in the environment: ``feast plan``,
``feast apply``, ``feast materialize``, and ``feast serve`` answering over HTTP on a free
loopback port (readiness polled, bounded; the server stopped after).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from components.features import build_features, online_reader
from components.features.store import FEATURE_REPO
from simulator.curated import SyntheticSpec, write_history
from taml.core.config import load_config

START = dt.date(2026, 11, 1)
DAY = dt.date(2026, 11, 2)
SPEC = SyntheticSpec(samples_per_day=400, users=40, items=20, seed=3)
FEAST = str(Path(sys.executable).with_name("feast"))
SERVE_TIMEOUT_S = 180.0  # `import feast` alone takes 8-18 s on the shared 2-core machine
CLI_TIMEOUT_S = 300


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAML", "FEAST"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    top = tmp_path_factory.mktemp("clone")
    shutil.copytree(FEATURE_REPO, top / "feature_repo", ignore=shutil.ignore_patterns("__pycache__"))
    root = top / "demo" / "data"
    write_history(str(root), START, 2, SPEC)
    cfg = load_config(
        env={},
        overrides=[f"paths.artifact_root={top / 'demo' / 'artifacts'}", "features.require_validation=false"],
    )
    build_features(cfg, DAY, str(root))
    return top, root, cfg


#: The ``feast`` command's own entry point, called for several commands in ONE process (``import
#: feast`` costs 20-40 s on the shared machine); each call is exactly ``feast ARGS`` in that folder.
DRIVER = """
import sys
from feast.cli.cli import cli
for args in " ".join(sys.argv[1:]).split(" -- "):
    print("$ feast " + args, flush=True)
    cli.main(args=args.split(), prog_name="feast", standalone_mode=False)
"""


def test_plan_apply_materialize_from_the_folder_with_nothing_exported(clone):
    top, root, cfg = clone
    want = online_reader(cfg, str(root)).lookup(3, [1, 2])
    got = subprocess.run(
        [
            sys.executable,
            "-c",
            DRIVER,
            "plan -- apply -- materialize 2026-11-01T00:00:00 2026-11-04T00:00:00",
        ],
        cwd=top / "feature_repo",
        env=_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert got.returncode == 0, got.stdout + got.stderr
    plan, apply, mat = re.sub(r"\x1b\[[0-9;]*m", "", got.stdout).split("$ feast ")[1:]
    # The folder's objects are exactly what the features step applied: nothing to change.
    # (Feast's infra diff always lists the SQLite tables, which exist already: CREATE IF NOT EXISTS.)
    changes = [
        line
        for line in plan.splitlines()
        if line.startswith(("Created", "Deleted", "Updated")) and "sqlite table" not in line
    ]
    assert "No changes to registry" in plan and changes == [], plan
    assert "No changes to registry" in apply or "Deploying" in apply, apply
    assert "Materializing 4 feature views" in mat and "item_stats_7d" in mat
    assert online_reader(cfg, str(root)).lookup(3, [1, 2]) == want


def test_missing_store_is_one_line_saying_what_to_set(tmp_path, monkeypatch, capsys):
    """What Feast's repo parser hits first (reading the objects) before `make run`: one line, exit 2."""
    import importlib.util

    shutil.copytree(FEATURE_REPO, tmp_path / "feature_repo", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.delenv("TAML_DATA_ROOT", raising=False)
    spec = importlib.util.spec_from_file_location(
        "copied_definitions", tmp_path / "feature_repo" / "definitions.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "user_profile" in dir(module)
    with pytest.raises(SystemExit) as e:
        module.user_profile  # noqa: B018
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"feature_repo: no TAML data under {tmp_path / 'demo' / 'data'}"
    )
    assert (
        "make run" in err[0]
        and "TAML_DATA_ROOT=DIR" in err[0]
        and "-f DIR/feature_store/feature_store.yaml" in err[0]
    )
    monkeypatch.setenv("TAML_DATA_ROOT", str(tmp_path / "elsewhere"))
    with pytest.raises(SystemExit):
        module.user_profile  # noqa: B018
    assert str(tmp_path / "elsewhere") in capsys.readouterr().err


def test_feast_serve_answers_for_the_same_store(clone):
    top, root, cfg = clone
    port = _free_port()
    proc = subprocess.Popen(
        [FEAST, "serve", "-h", "127.0.0.1", "-p", str(port), "-w", "1", "--no-access-log"],
        cwd=top / "feature_repo",
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the gunicorn master and worker stop together
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"feast serve not ready within {SERVE_TIMEOUT_S} s"
            time.sleep(0.2)
        items = [1, 2, 19, 500]
        r = httpx.post(
            f"{url}/get-online-features",
            json={"feature_service": "taml_v1", "entities": {"user_id": [3] * len(items), "item_id": items}},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        names = body["metadata"]["feature_names"]
        served = [
            {n: res["values"][j] for n, res in zip(names, body["results"], strict=True)}
            for j in range(len(items))
        ]
        want = online_reader(cfg, str(root)).lookup(3, items)
        assert served == [{n: w[n] for n in names} for w in want]
        assert want[3]["category_id"] is None and want[0]["gender"] is not None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

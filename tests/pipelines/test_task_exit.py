"""A KFP task process that succeeded skips module teardown; any other keeps its exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import atexit, json, sys, time
from pipelines import runtime
mode = sys.argv.pop()
out = sys.argv[1]
sys.argv = ["executor_main", "--executor_input", json.dumps({"outputs": {"outputFile": out}})]
atexit.register(lambda: print("teardown ran", flush=True))  # runs only on a normal exit
atexit.register(runtime._leave_without_teardown, time.time())
if mode in ("ok", "raise_after_output"):
    open(out, "w").write("{}")
if mode == "raise_after_output":
    raise RuntimeError("failed after the output")
if mode == "exit_3":
    sys.exit(3)
"""


def _run(tmp_path: Path, mode: str) -> subprocess.CompletedProcess:
    out = tmp_path / "executor_output.json"
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(out), mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_task_whose_executor_wrote_its_output_ends_without_teardown(tmp_path: Path) -> None:
    r = _run(tmp_path, "ok")
    assert r.returncode == 0, r.stderr
    assert "teardown ran" not in r.stdout


@pytest.mark.parametrize(
    ("mode", "status"),
    [("exit_3", 3), ("raise_after_output", 1), ("no_output", 0)],
)
def test_any_other_ending_exits_the_normal_way_with_its_status(
    tmp_path: Path, mode: str, status: int
) -> None:
    r = _run(tmp_path, mode)
    assert r.returncode == status, r.stderr
    assert "teardown ran" in r.stdout


def test_a_stale_output_file_from_an_earlier_attempt_does_not_count(tmp_path: Path) -> None:
    import os

    from pipelines import runtime

    out = tmp_path / "executor_output.json"
    out.write_text(json.dumps({}))
    old = out.stat().st_mtime - 60
    os.utime(out, (old, old))
    argv = ["executor_main", "--executor_input", json.dumps({"outputs": {"outputFile": str(out)}})]
    saved = sys.argv
    try:
        sys.argv = argv
        assert not runtime._executor_output_written(old + 30)
        assert runtime._executor_output_written(old)
    finally:
        sys.argv = saved

"""The prediction log outlives a full disk: real failing writes (/dev/full), counters that add up."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest

from serving import PredictionLog

pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")


def _rows(root: Path) -> list[dict]:
    return [json.loads(x) for f in sorted(root.glob("dt=*/*.jsonl")) for x in f.read_text().splitlines()]


def _disk(full: threading.Event, buffered: bool = False):
    """Files open on /dev/full (every write fails with ENOSPC) while ``full`` is set."""

    def open_file(path: Path):
        target = "/dev/full" if full.is_set() else path
        return open(target, "ab", buffering=-1 if buffered else 0)  # noqa: SIM115

    return open_file


@pytest.mark.parametrize("buffered", [False, True], ids=["write-fails", "close-fails"])
def test_a_disk_full_episode_costs_its_lines_not_the_writer(tmp_path, buffered):
    full = threading.Event()
    full.set()
    root = tmp_path / "log"
    log = PredictionLog(
        str(root),
        max_file_bytes=1,  # every batch closes its file: a buffered file fails at close()
        max_files=100,
        queue_size=100,
        flush_interval_s=0.05,
        open_file=_disk(full, buffered),
    )
    log.start()
    try:
        assert log.submit([{"n": 1}, {"n": 2}])
        log.flush()
        st = log.stats()
        assert st["errors"] >= 1 and "No space left" in st["last_error"] and st["writer_alive"]
        full.clear()  # the episode ends
        for n in range(3, 6):
            assert log.submit([{"n": n}])
        log.flush()
    finally:
        log.close()  # never raises, whatever the disk did
    assert [r["n"] for r in _rows(root)] == [3, 4, 5]
    st = log.stats()
    assert st["written"] + st["dropped"] + st["queued"] == st["submitted"]
    if not buffered:  # unbuffered (the default): the failed lines are known and counted as dropped
        assert st == {
            **st,
            "submitted": 5,
            "written": 3,
            "dropped": 2,
            "dropped_write_failed": 2,
            "queued": 0,
        }


def test_a_failed_write_leaves_no_torn_line(tmp_path):
    """A partial write is cut back to the last whole line, so the monitor reads every line."""
    root = tmp_path / "log"
    fail = threading.Event()

    class HalfWrites:  # a real file that takes half of one write, then the disk is full
        def __init__(self, path):
            self.f = open(path, "ab", buffering=0)  # noqa: SIM115

        def write(self, data):
            if fail.is_set():
                fail.clear()
                self.f.write(bytes(data[: len(data) // 2]))
                raise OSError(28, "No space left on device")
            return self.f.write(data)

        def close(self):
            self.f.close()

    log = PredictionLog(
        str(root),
        max_file_bytes=10**6,
        max_files=10,
        queue_size=100,
        flush_interval_s=0.05,
        open_file=HalfWrites,
    )
    log.start()
    log.submit([{"n": 1}])
    log.flush()
    fail.set()
    log.submit([{"n": 2, "pad": "x" * 50}])
    log.flush()
    log.submit([{"n": 3}])
    log.close()
    assert [r["n"] for r in _rows(root)] == [1, 3] and log.dropped_write_failed == 1


def test_readiness_shows_the_prediction_log_counters(ready_world):
    url, rt = ready_world["url"], ready_world["rt"]
    r = httpx.post(url + "/v1/models/taml:predict", json={"instances": [{"user_id": 1, "item_id": 2}]})
    assert r.status_code == 200
    rt.log.flush()
    st = httpx.get(url + "/readyz").json()["prediction_log"]
    assert st["writer_alive"] is True and st["written"] >= 1 and st["errors"] == 0
    assert st["written"] + st["dropped"] + st["queued"] == st["submitted"]

"""The prediction log: JSON lines written off the request path, rotated and bounded.

    {root}/dt=YYYY-MM-DD/part-{YYYYmmddTHHMMSS}-{host}-{pid}-{seq}.jsonl

``root`` is ``serving.log_dir`` or ``{artifact_root}/serving_log``; the day is the UTC day the
prediction was served, which is the folder the monitor reads for day D
(``monitor.serving_log_dir``). A request only puts its records on a bounded queue
(:meth:`PredictionLog.submit` never blocks; a full queue drops and counts). One thread writes
them in batches, flushes at least every ``flush_interval_s`` (so a reader sees whole lines), starts
a new file past ``max_file_bytes`` or at midnight, and deletes the oldest files beyond
``max_files``. With a ``gs://`` root, files are written to a local spool and uploaded when closed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import socket
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from taml import storage

log = logging.getLogger(__name__)

_STOP = object()


class PredictionLog:
    def __init__(
        self,
        root: str,
        *,
        max_file_bytes: int,
        max_files: int,
        queue_size: int,
        flush_interval_s: float,
    ):
        self.root = root
        self.remote = storage.is_gcs(root)
        self._local_root = Path(tempfile.mkdtemp(prefix="taml-serving-log-")) if self.remote else Path(root)
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.flush_interval_s = flush_interval_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._day: str | None = None
        self._size = 0
        self._seq = 0
        self._tag = f"{socket.gethostname().split('.')[0]}-{os.getpid()}"
        self.dropped = 0
        self.written = 0
        self.errors = 0

    # --- request side ---------------------------------------------------------------------

    def submit(self, records: list[dict[str, Any]]) -> bool:
        """Queue one response's records; False (and counted) when the writer is behind."""
        try:
            self._queue.put_nowait(records)
            return True
        except queue.Full:
            self.dropped += len(records)
            return False

    # --- writer thread ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="taml-prediction-log", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, close the file (upload it for gs://) and stop the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        else:
            self._drain_now()
        self._close_file()

    def flush(self, timeout: float = 5.0) -> None:
        """Block until everything submitted so far is on disk (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        if self._thread is None:
            self._drain_now()
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                self._maybe_roll_day()
                continue
            batch = [first]
            while len(batch) < 1000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self._handle(batch):
                return

    def _drain_now(self) -> None:
        batch = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._handle(batch)

    def _handle(self, batch: list[Any]) -> bool:
        stop = False
        lines: list[str] = []
        events: list[threading.Event] = []
        for item in batch:
            if item is _STOP:
                stop = True
            elif isinstance(item, threading.Event):
                events.append(item)
            else:
                lines.extend(json.dumps(r, separators=(",", ":")) for r in item)
        if lines:
            try:
                self._write(lines)
            except OSError as e:  # a full disk must not take the server down: count and go on
                self.errors += 1
                self.dropped += len(lines)
                log.error("prediction log write failed (%d lines dropped): %s", len(lines), e)
        for ev in events:
            ev.set()
        return stop

    def _write(self, lines: list[str]) -> None:
        day = dt.datetime.now(dt.UTC).date().isoformat()
        if self._file is None or day != self._day or self._size >= self.max_file_bytes:
            self._open(day)
        assert self._file is not None
        text = "\n".join(lines) + "\n"
        self._file.write(text)
        self._file.flush()
        self._size += len(text.encode())
        self.written += len(lines)
        if self._size >= self.max_file_bytes:
            self._close_file()

    def _maybe_roll_day(self) -> None:
        if self._file is not None and dt.datetime.now(dt.UTC).date().isoformat() != self._day:
            self._close_file()

    def _open(self, day: str) -> None:
        self._close_file()
        folder = self._local_root / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        self._path = folder / f"part-{stamp}-{self._tag}-{self._seq:04d}.jsonl"
        self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across batches
        self._day, self._size = day, 0
        self._enforce_bound()

    def _close_file(self) -> None:
        if self._file is None:
            return
        self._file.close()
        path, self._file = self._path, None
        if self.remote and path is not None:
            rel = path.relative_to(self._local_root).as_posix()
            try:
                storage.write_bytes(storage.join(self.root, rel), path.read_bytes())
                path.unlink()
            except Exception as e:  # keep the spool file; the next close retries nothing, but logs
                self.errors += 1
                log.error("prediction log upload of %s failed: %s", rel, e)

    def _enforce_bound(self) -> None:
        files = sorted(self._local_root.glob("dt=*/*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name))
        for old in files[: max(0, len(files) - self.max_files)]:
            if old != self._path:
                old.unlink(missing_ok=True)
                if not any(old.parent.iterdir()):
                    old.parent.rmdir()


def log_root(config, artifact_root: str) -> str:
    return config.serving.log_dir or storage.join(artifact_root, "serving_log")


def prediction_log(config, artifact_root: str) -> PredictionLog:
    s = config.serving
    return PredictionLog(
        log_root(config, artifact_root),
        max_file_bytes=s.log_max_file_bytes,
        max_files=s.log_max_files,
        queue_size=s.log_queue_size,
        flush_interval_s=s.log_flush_interval_s,
    )

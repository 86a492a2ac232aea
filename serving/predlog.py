"""The prediction log: JSON lines written off the request path, rotated and bounded.

    {root}/dt=YYYY-MM-DD/part-{YYYYmmddTHHMMSS}-{host}-{pid}-{seq}.jsonl

``root`` is ``serving.log_dir`` or ``{artifact_root}/serving_log``; the day is the UTC day the
prediction was served, which is the folder the monitor reads for day D
(``monitor.serving_log_dir``). A request only puts its records on a bounded queue
(:meth:`PredictionLog.submit` never blocks; a full queue drops and counts). One thread writes
them in batches, flushes at least every ``flush_interval_s`` (so a reader sees whole lines), starts
a new file past ``max_file_bytes`` or at midnight, and deletes the oldest files beyond
``max_files``. With a ``gs://`` root, files are written to a local spool and uploaded when closed.

A failing disk (``ENOSPC``, ``EIO``) costs the lines of that batch, never the writer: the file is
cut back to its last whole line and let go, the lines are counted as dropped, and the next batch
opens a new file. Every submitted line ends up written, dropped or still queued
(:meth:`PredictionLog.stats`, shown by ``/readyz``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import queue
import socket
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from taml.core import storage

log = logging.getLogger(__name__)

_STOP = object()
Records = Collection[Mapping[str, Any]]  # one answer's log lines, as dicts


def _lines(records: Iterable[Mapping[str, Any]]) -> list[bytes]:
    """One JSON line per record. orjson: this thread shares the GIL with the requests, and it is
    ~10x cheaper than ``json`` per record; ``json`` for what orjson refuses (a lone surrogate)."""
    out = []
    for r in records:
        try:
            out.append(orjson.dumps(r))
        except TypeError:
            out.append(json.dumps(r, separators=(",", ":")).encode())
    return out


def _open_append(path: Path) -> IO[bytes]:
    # Unbuffered: a failed write leaves no buffered bytes behind to fail again at close().
    return open(path, "ab", buffering=0)  # noqa: SIM115 - kept open across batches


class PredictionLog:
    def __init__(
        self,
        root: str,
        *,
        max_file_bytes: int,
        max_files: int,
        queue_size: int,
        flush_interval_s: float,
        open_file: Callable[[Path], IO[bytes]] = _open_append,
    ):
        self.root = root
        self.remote = storage.is_gcs(root)
        self._local_root = Path(tempfile.mkdtemp(prefix="taml-serving-log-")) if self.remote else Path(root)
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.flush_interval_s = flush_interval_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._open_file = open_file
        self._thread: threading.Thread | None = None
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._day: str | None = None
        self._size = 0
        self._good = 0  # bytes of whole lines in the current file
        self._seq = 0
        self._tag = f"{socket.gethostname().split('.')[0]}-{os.getpid()}"
        self._count_lock = threading.Lock()
        self.submitted = 0
        self.dropped_queue_full = 0  # the writer was behind
        self.dropped_write_failed = 0  # the disk refused them
        self.written = 0
        self.errors = 0
        self.last_error: str | None = None

    @property
    def dropped(self) -> int:
        return self.dropped_queue_full + self.dropped_write_failed

    def stats(self) -> dict[str, Any]:
        """Counters for readiness: submitted = written + dropped + queued (lines)."""
        with self._count_lock:
            submitted, full, failed = self.submitted, self.dropped_queue_full, self.dropped_write_failed
        written = self.written
        return {
            "writer_alive": self._thread is not None and self._thread.is_alive(),
            "submitted": submitted,
            "written": written,
            "dropped": full + failed,
            "dropped_queue_full": full,
            "dropped_write_failed": failed,
            "queued": max(0, submitted - written - full - failed),
            "errors": self.errors,
            "last_error": self.last_error,
        }

    # --- request side ---------------------------------------------------------------------

    def submit(self, records: Records) -> bool:
        """Queue one response's records; False (and counted) when the writer is behind.

        ``records`` may be any sized collection of dicts (``serving.service.RankRecords`` makes
        its dicts only when this writer iterates it)."""
        with self._count_lock:
            self.submitted += len(records)
            try:
                self._queue.put_nowait(records)
                return True
            except queue.Full:
                self.dropped_queue_full += len(records)
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
                self._maybe_roll_day()  # never raises: _close_file counts its own failures
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
        answers: list[Records] = []
        events: list[threading.Event] = []
        for item in batch:
            if item is _STOP:
                stop = True
            elif isinstance(item, threading.Event):
                events.append(item)
            else:
                answers.append(item)
        n_lines = sum(len(a) for a in answers)
        if n_lines:
            try:
                self._write(_lines(itertools.chain.from_iterable(answers)))
            except Exception as e:  # a full disk must not take the writer down: count and go on
                self._failed(n_lines, e)
        for ev in events:
            ev.set()
        return stop

    def _failed(self, n_lines: int, e: Exception) -> None:
        with self._count_lock:
            self.dropped_write_failed += n_lines
        self.errors += 1
        self.last_error = f"{type(e).__name__}: {e}"
        log.error("prediction log write failed (%d lines dropped, writer goes on): %s", n_lines, e)
        self._abandon_file()

    def _write(self, lines: list[bytes]) -> None:
        day = dt.datetime.now(dt.UTC).date().isoformat()
        if self._file is None or day != self._day or self._size >= self.max_file_bytes:
            self._open(day)
        assert self._file is not None
        data = memoryview(b"\n".join(lines) + b"\n")
        while data:  # a raw write may take only part of the bytes
            n = self._file.write(data)
            if not n:
                raise OSError("write accepted no bytes")
            data = data[n:]
            self._size += n
        self._good = self._size
        self.written += len(lines)
        if self._size >= self.max_file_bytes:
            self._close_file()

    def _abandon_file(self) -> None:
        """After a failed write: cut the file back to its last whole line and let it go."""
        f, path, self._file = self._file, self._path, None
        if f is None:
            return
        try:
            if path is not None:
                os.truncate(path, self._good)
        except OSError:
            pass  # the reader skips a torn last line; the counters already tell
        try:
            f.close()
        except OSError:
            pass
        self._finish(path)

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
        self._file = self._open_file(self._path)
        self._day, self._size, self._good = day, 0, 0
        self._enforce_bound()

    def _close_file(self) -> None:
        """Close the current file; never raises (a failure is counted), always lets the file go."""
        f, path, self._file = self._file, self._path, None
        if f is None:
            return
        try:
            f.close()
        except OSError as e:
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
            log.error("prediction log close of %s failed: %s", path, e)
        self._finish(path)

    def _finish(self, path: Path | None) -> None:
        if self.remote and path is not None:
            rel = path.relative_to(self._local_root).as_posix()
            try:
                storage.write_bytes(storage.join(self.root, rel), path.read_bytes())
                path.unlink()
            except Exception as e:  # keep the spool file; the next close retries nothing, but logs
                self.errors += 1
                self.last_error = f"upload of {rel} failed: {e}"
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

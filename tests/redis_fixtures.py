"""A real Redis server for the tests: Debian's ``redis-server`` on a free 127.0.0.1 port.

Started once per session with a password (so the AUTH path is what the tests exercise), no
persistence, daemonized; stopped at the end (SHUTDOWN NOSAVE, then its pid is waited for).
Each test that writes takes its own logical database (``db=N``), so tests never see each
other's keys. ``tools/system-deps.sh`` (run by ``make test``) installs the package.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD_ENV = "TAML_REDIS_PASSWORD"
START_TIMEOUT_S = 20.0
DATABASES = 64  # logical databases the server offers (one per writing test)


@dataclass
class RedisServer:
    host: str
    port: int
    password: str
    pid: int
    _next_db: itertools.count

    def connection_string(self, db: int = 0) -> str:
        """Feast's format, without the password (that comes from the environment)."""
        return f"{self.host}:{self.port},db={db}"

    def fresh_db(self) -> int:
        db = next(self._next_db)
        if db >= DATABASES:
            raise RuntimeError(f"more than {DATABASES} Redis databases asked for: raise DATABASES")
        return db

    def client(self, db: int = 0):
        import redis

        return redis.Redis(host=self.host, port=self.port, password=self.password, db=db)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_redis(workdir: Path, password: str) -> RedisServer:
    """Start a daemonized redis-server on a free loopback port; returns once it answers PING."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: run tools/system-deps.sh (make test does)")
    port = _free_port()
    pidfile = workdir / "redis.pid"
    subprocess.run(
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "yes",
            "--databases", str(DATABASES),
            "--requirepass", password,
            "--dir", str(workdir),
            "--pidfile", str(pidfile),
            "--logfile", str(workdir / "redis.log"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if client.ping() and pidfile.exists():
                break
        except redis.exceptions.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server on port {port} did not answer within {START_TIMEOUT_S} s")
        time.sleep(0.02)
    client.close()
    return RedisServer("127.0.0.1", port, password, int(pidfile.read_text()), itertools.count(1))


def stop_redis(server: RedisServer) -> None:
    import redis

    try:
        server.client().shutdown(nosave=True)
    except redis.exceptions.ConnectionError:
        pass  # the server closes the connection as it exits
    deadline = time.monotonic() + START_TIMEOUT_S
    while _alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(server.pid):
        os.kill(server.pid, 9)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """One password-protected redis-server for the session (db 0 stays empty: tests take fresh_db())."""
    server = start_redis(tmp_path_factory.mktemp("redis"), password="s3cr3t-" + os.urandom(6).hex())
    try:
        yield server
    finally:
        stop_redis(server)


@pytest.fixture
def redis_password(redis_server, monkeypatch) -> str:
    """The server's password in the environment variable the configuration names (the only place it lives)."""
    monkeypatch.setenv(PASSWORD_ENV, redis_server.password)
    return redis_server.password

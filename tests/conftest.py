"""Shared fixtures: a real GCS emulator on 127.0.0.1 and a tiny simulated history."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

from taml.core import storage

# Tests run on 2 shared cores: keep every library single-threaded unless a test says otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

EMULATOR_BUCKET = "taml-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _honour_generation_preconditions() -> None:
    """Teach the emulator GCS's ``ifGenerationMatch`` on uploads (it ignores the parameter).

    Real GCS rejects a write whose precondition fails with 412; the registry's atomic alias
    relies on exactly that, so the emulator must behave the same for the tests to mean anything.
    """
    import threading
    from http import HTTPStatus

    from gcp_storage_emulator import server as emu
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    if getattr(objects, "_taml_preconditions", False):
        return
    original = objects.insert
    lock = threading.Lock()

    def insert(request, response, store, *args, **kwargs):
        wanted = request.query.get("ifGenerationMatch")
        if not wanted:
            return original(request, response, store, *args, **kwargs)
        name = request.query.get("name", [None])[0]
        if name is None and isinstance(request.data, dict):
            name = (request.data.get("meta") or {}).get("name")
        with lock:
            try:
                current = store.get_file_obj(request.params["bucket_name"], name)["generation"]
            except NotFound:
                current = "0"
            if str(current) != str(wanted[0]):
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json(
                    {
                        "error": {
                            "code": 412,
                            "message": "conditionNotMet",
                            "errors": [{"reason": "conditionNotMet", "message": "Precondition Failed"}],
                        }
                    }
                )
                return None
            return original(request, response, store, *args, **kwargs)

    for _regex, handlers in emu.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is original:
                handlers[method] = insert
    objects._taml_preconditions = True


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """Start gcp-storage-emulator in this process; yields its endpoint (bucket ``taml-test``)."""
    from gcp_storage_emulator.server import create_server

    _honour_generation_preconditions()
    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=EMULATOR_BUCKET)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    storage.reset_gcs_client()
    try:
        yield endpoint
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
        storage.reset_gcs_client()


@pytest.fixture
def gcs_root(gcs_emulator: str) -> str:
    """A fresh ``gs://`` prefix per test on the emulator."""
    return f"gs://{EMULATOR_BUCKET}/{uuid.uuid4().hex[:10]}"


# A real redis-server on loopback (tests/redis_fixtures.py).
from redis_fixtures import redis_password, redis_server  # noqa: E402, F401

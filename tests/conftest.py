"""Shared fixtures: a real GCS emulator on 127.0.0.1 and a tiny simulated history."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taml.core import shims

# Tests run on 2 shared cores: keep every library single-threaded unless a test says otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")
shims.gcsfs_emulator_environment()  # before anything imports gcsfs

EMULATOR_BUCKET = "taml-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _emulator_pin() -> str:
    for line in (Path(__file__).resolve().parents[1] / "requirements.lock").read_text().splitlines():
        if line.startswith("gcp-storage-emulator=="):
            return line.split("==", 1)[1].split()[0]
    raise RuntimeError("requirements.lock pins no gcp-storage-emulator")


def _honour_generation_preconditions() -> None:
    """Teach the emulator GCS's ``ifGenerationMatch`` on uploads (it ignores the parameter).

    Real GCS rejects a write whose precondition fails with 412; the registry's atomic alias
    relies on exactly that, so the emulator must behave the same for the tests to mean anything.
    This replaces the emulator's own upload handler, so it runs only on the pinned release (a
    different one may route uploads elsewhere, and the precondition tests would pass vacuously).
    """
    import importlib.metadata
    import threading
    from http import HTTPStatus

    from gcp_storage_emulator import server as emu
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    if getattr(objects, "_taml_preconditions", False):
        return
    installed, pinned = importlib.metadata.version("gcp-storage-emulator"), _emulator_pin()
    if installed != pinned:
        raise RuntimeError(
            f"tests/conftest.py patches gcp-storage-emulator's upload handler, checked on {pinned} "
            f"(requirements.lock); {installed} is installed: re-check the patch or install the pin"
        )
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

    replaced = 0
    for _regex, handlers in emu.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is original:
                handlers[method] = insert
                replaced += 1
    if not replaced:
        raise RuntimeError("gcp-storage-emulator routes no request to objects.insert: re-check the patch")
    objects._taml_preconditions = True


def _reset_gcs_client() -> None:
    """Forget gcsfs's cached instances: the next one must talk to the emulator now configured."""
    import sys

    gcsfs = sys.modules.get("gcsfs")
    if gcsfs is not None:
        gcsfs.GCSFileSystem.clear_instance_cache()


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
    _reset_gcs_client()
    try:
        yield endpoint
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
        _reset_gcs_client()


@pytest.fixture
def gcs_root(gcs_emulator: str) -> str:
    """A fresh ``gs://`` prefix per test on the emulator."""
    return f"gs://{EMULATOR_BUCKET}/{uuid.uuid4().hex[:10]}"


# A real redis-server on loopback (tests/redis_fixtures.py).
from redis_fixtures import redis_password, redis_server  # noqa: E402, F401

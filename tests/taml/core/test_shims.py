"""The guarded shims of third-party internals: each checked on the installed release, each
release held equal to requirements.lock, and a clear error on any other release.

The generation-checked gcsfs upload is exercised against the GCS emulator by
tests/taml/core/test_storage.py (test_compare_and_swap on gs://).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pj
import pytest

from taml.core import shims

ROOT = Path(__file__).resolve().parents[3]


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_each_shim_was_checked_on_the_pinned_release():
    pins = lock_pins()
    assert {d: pins.get(d) for d in shims.CHECKED} == shims.CHECKED
    assert {d: shims.installed(d) for d in shims.CHECKED} == shims.CHECKED


def test_another_release_is_a_clear_error():
    with pytest.raises(
        shims.ShimVersionError, match=r"checked on pyarrow==0\.1\.0, but 25\.0\.1 is installed"
    ):
        shims.require("pyarrow", "reading a row", {"pyarrow": "0.1.0"})


def test_another_release_stops_each_shim(monkeypatch):
    monkeypatch.setitem(shims.CHECKED, "pyarrow", "0.1.0")
    monkeypatch.setitem(shims.CHECKED, "gcsfs", "0.1.0")
    with pytest.raises(shims.ShimVersionError, match="pyarrow"):
        shims.arrow_json_error_row(ValueError("in row 1"))
    with pytest.raises(shims.ShimVersionError, match="gcsfs"):
        shims.gcsfs_upload_if_generation(object(), "b", "k", b"", "0")


# A conversion error names no row (ingest then bisects the block): None, not a guess.
@pytest.mark.parametrize(
    ("bad", "value", "named"), [(3, b'{"a":', 3), (2, b'{"a":"text"}', 2), (1, b'{"a":1.5}', None)]
)
def test_the_row_arrow_names_is_the_bad_line(bad, value, named):
    lines = [b'{"a":%d}' % i for i in range(5)]
    lines[bad] = value
    schema = pa.schema([("a", pa.int64())])
    with pytest.raises(pa.ArrowInvalid) as e:
        pj.read_json(
            pa.py_buffer(b"\n".join(lines) + b"\n"), parse_options=pj.ParseOptions(explicit_schema=schema)
        )
    assert shims.arrow_json_error_row(e.value) == named


def test_a_message_without_a_row_is_none():
    assert shims.arrow_json_error_row(pa.ArrowInvalid("JSON parse error: Invalid value.")) is None


def test_beam_credential_search_is_skipped_only_for_the_emulator(monkeypatch):
    from apache_beam.internal.gcp import auth

    monkeypatch.setattr(auth._Credentials, "_credentials_init", False)
    monkeypatch.setattr(auth._Credentials, "_credentials", "untouched")
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    shims.beam_skip_credential_search()
    assert auth._Credentials._credentials == "untouched" and not auth._Credentials._credentials_init
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    shims.beam_skip_credential_search()
    assert auth._Credentials._credentials is None and auth._Credentials._credentials_init
    assert auth.get_service_credentials(None) is None  # Beam's own lookup now finds "none", at once


def test_gcsfs_resolves_the_emulator_endpoint_the_upload_uses(monkeypatch):
    import gcsfs

    monkeypatch.delenv(shims.GCSFS_HNS_SWITCH, raising=False)
    shims.gcsfs_emulator_environment()
    assert __import__("os").environ[shims.GCSFS_HNS_SWITCH] == "false"
    fs = gcsfs.GCSFileSystem(token="anon", endpoint_url="http://127.0.0.1:9", skip_instance_cache=True)
    assert fs._location == "http://127.0.0.1:9"

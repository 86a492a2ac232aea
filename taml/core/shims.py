"""Every place the project leans on a third-party library's internals, one guarded function each.

A library's private attributes, the wording of its error messages and its experimental switches
may change in any release without notice. So nothing else in the project touches them: each use
lives here, names the release it was checked against (:data:`CHECKED`, held equal to the pins of
``requirements.lock`` by ``tests/taml/core/test_shims.py``, which also checks each behaviour on
the installed release), and raises :class:`ShimVersionError` on any other release instead of
misbehaving quietly. Bumping a pin therefore fails that test until someone re-checks the shim.
PyTorch's internals are guarded the same way in ``model/torch_shims.py`` (model/ imports nothing
of the project).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
from typing import Any

from taml.core.errors import TamlError

#: distribution → the release each shim below was checked against (requirements.lock's pin).
CHECKED: dict[str, str] = {
    "apache-beam": "2.77.0",
    "evidently": "0.7.23",
    "gcsfs": "2026.10.1",
    "pyarrow": "25.0.1",
}


class ShimVersionError(TamlError):
    """A shim runs against a release of its library it was not checked against."""


@functools.cache
def installed(dist: str) -> str:
    """The installed release of ``dist`` without a local suffix (``2.13.0+cpu`` → ``2.13.0``)."""
    return importlib.metadata.version(dist).split("+")[0]


def require(dist: str, what: str, checked: dict[str, str] = CHECKED) -> None:
    """Raise :class:`ShimVersionError` unless ``dist`` is installed at the checked release."""
    want, have = checked[dist], installed(dist)
    if have != want:
        raise ShimVersionError(
            f"{what} relies on {dist} internals checked on {dist}=={want}, but {have} is installed: "
            f"re-check it (tests/taml/core/test_shims.py) and update CHECKED, or install the pin"
        )


# --------------------------------------------------------------------------------------------
# pyarrow: the row a JSON parse error names

_ARROW_ROW = re.compile(r"in row (\d+)")


def arrow_json_error_row(error: Exception) -> int | None:
    """The 0-based row of the block that ``pyarrow.json.read_json`` names in ``error``, if any.

    Arrow's JSON reader says where it failed only in its message ("... in row 3"); ingest uses
    that to dead-letter the one bad line instead of bisecting the block.
    """
    require("pyarrow", "reading the failing row out of a pyarrow JSON error message")
    m = _ARROW_ROW.search(str(error))
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------------------------
# Apache Beam: no credential search against the GCS emulator


def beam_skip_credential_search() -> None:
    """Tell Beam's GCP auth up front that there are no credentials (only for the GCS emulator).

    Beam's gcsio reaches ``STORAGE_EMULATOR_HOST`` through google-cloud-storage's anonymous
    client, which works; but first it searches for Application Default Credentials with retries
    and backoff (~30 s a process). Pre-seeding its private credential cache with "none" skips only
    that search. Without the emulator variable (real buckets) this does nothing.
    """
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        return
    try:
        from apache_beam.internal.gcp import auth
    except ImportError:  # Beam without its GCP extra: no search to skip
        return
    require("apache-beam", "skipping Beam's credential search against the GCS emulator")
    creds = auth._Credentials
    if not creds._credentials_init:
        creds._credentials = None
        creds._credentials_init = True


# --------------------------------------------------------------------------------------------
# gcsfs: the emulator switch and the generation-checked upload

#: gcsfs reads this when it is imported; "false" stops it probing the emulator for hierarchical
#: namespaces, which hangs 60 s per bucket there.
GCSFS_HNS_SWITCH = "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"


def gcsfs_emulator_environment() -> None:
    """Turn off gcsfs's experimental hierarchical-namespace probe (call before gcsfs is imported)."""
    os.environ.setdefault(GCSFS_HNS_SWITCH, "false")


def gcsfs_upload_if_generation(fs: Any, bucket: str, key: str, data: bytes, generation: str) -> None:
    """Upload ``data`` to ``gs://bucket/key`` only if the object is at ``generation`` ("0": absent).

    gcsfs exposes only "must not exist" (``mode="create"``); this is its own media-upload call
    (``fs.call`` against ``fs._location``, the endpoint it resolved, emulator included) with GCS's
    ``ifGenerationMatch``, so the service decides and two writers can never both win. A failed
    precondition surfaces as gcsfs's FileExistsError (HTTP 412).
    """
    from urllib.parse import quote

    require("gcsfs", "the generation-checked upload")
    fs.call(
        "POST",
        f"{fs._location}/upload/storage/v1/b/{quote(bucket, safe='')}/o",
        uploadType="media",
        name=key,
        ifGenerationMatch=str(int(generation)),
        headers={"Content-Type": "application/octet-stream"},
        data=data,
    )

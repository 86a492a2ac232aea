"""What every component shell does first: configuration, logging, the date; and local copies."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import tempfile
from collections.abc import Iterator

from taml import layout, storage
from taml.config import Config, load_config


def step_context(
    profile: str, overrides: list, data_root: str, artifact_root: str, date: str
) -> tuple[Config, dt.date]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    config = load_config(
        profile=profile or None,
        overrides=[*overrides, f"paths.data_root={data_root}", f"paths.artifact_root={artifact_root}"],
    )
    return config, layout.parse_date(date)


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path for ``uri``: itself on disk, a temporary download for gs://."""
    if not storage.is_gcs(uri):
        yield uri
        return
    with tempfile.TemporaryDirectory(prefix="taml-copy-") as tmp:
        path = os.path.join(tmp, storage.basename(uri))
        storage.copy(uri, path)
        yield path

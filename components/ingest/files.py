"""Which files under a raw partition are read, which are skipped (and why), and the landing marker.

The policy (docs/INGEST.md "Which files are read"): content decides, not the name. Every file is
read as JSON Lines, gzip or not (gzip is recognised by its magic bytes, whatever the name says:
``part-00000``, ``x.JSONL``, ``x.jsonl.gzip`` are all read). A file is skipped, and listed in the
manifest with its reason, only when reading it would be wrong:

* a hidden name (``.`` or ``_`` first: checksums, commit logs, writers' temporary folders), except
  the landing marker (``ingest.landing_marker``), which is recorded, not read;
* an empty file whose name says it is compressed (a gzip stream is never empty: an upload that
  never wrote its bytes);
* content in a format this step does not read (another compression, Parquet, ...).

A skipped file fails validation naming it: nothing under a partition disappears uncounted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from taml.core import storage

COMPRESSED_NAMES = (".gz", ".gzip", ".bz2", ".zst", ".zstd", ".xz", ".lz4", ".snappy", ".zip", ".z")

#: Leading bytes of formats that are not (gzipped) JSON Lines.
FOREIGN_MAGIC = (
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x04\x22\x4d\x18", "lz4-compressed"),
    (b"\xff\x06\x00\x00sNaPpY", "snappy-compressed"),
    (b"PAR1", "a Parquet file"),
)


class SkippedFile(Exception):
    """Raised by the reader for a file whose content this step does not read (with the reason)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class Partition:
    """The files of one raw partition: to read, skipped by name, and whether its marker is there."""

    folder: str
    data: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    marker: bool = False


def list_all(folder: str) -> list[str] | None:
    """Every object under a folder, hidden ones included, sorted; None when the folder is absent.

    (``storage.list_files`` hides dot-files and ``_tmp`` folders, which would make them vanish
    here uncounted.)
    """
    if storage.is_gcs(folder):
        objs = [u for u in storage.list_files_raw_gcs(folder) if not u.endswith("/")]
        return sorted(objs) if objs else None
    root = Path(folder)
    if not root.is_dir():
        return None
    out = []
    for dirpath, _dirs, names in os.walk(root):
        out += [os.path.join(dirpath, n) for n in names]
    return sorted(out)


def relative(folder: str, path: str) -> str:
    return path[len(folder.rstrip("/")) + 1 :] if path.startswith(folder.rstrip("/") + "/") else path


def classify(folder: str, files: list[str], marker_name: str) -> Partition:
    """Split a partition's listing into data files, hidden (skipped) files and the marker."""
    part = Partition(folder)
    for f in files:
        rel = relative(folder, f)
        if rel == marker_name:
            part.marker = True
            continue
        hidden = next((p for p in rel.split("/") if p.startswith((".", "_"))), None)
        if hidden is not None:
            part.skipped.append((f, f"hidden name ({hidden!r} starts with '.' or '_'): not read"))
        else:
            part.data.append(f)
    return part


def sniff(path: str, head: bytes) -> None:
    """Raise :class:`SkippedFile` unless a file with these first bytes is JSON Lines (gzip or not)."""
    if not head:
        if path.lower().endswith(COMPRESSED_NAMES):
            raise SkippedFile(
                path,
                "empty file with a compressed name (a gzip stream is never empty: an interrupted upload?)",
            )
        return
    for magic, what in FOREIGN_MAGIC:
        if head.startswith(magic):
            raise SkippedFile(path, f"{what}: only JSON Lines, plain or gzip, are read")

"""Every file under a raw partition is read or listed as skipped (with why); skipped ones fail validation."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

from ingest_helpers import START, ev, imp, write_raw

from components.ingest import run_ingest
from components.validate import run_validation
from taml.core import layout as L

ONE = dt.timedelta(days=1)
D = START.isoformat()


def _lines(*ids: str) -> bytes:
    return b"".join(imp(i, f"{D}T10:00:00Z") + b"\n" for i in ids)


# name -> (bytes, read?): the class of names and contents a partition may hold.
FILES = {
    "part-00000": (_lines("a"), True),  # no suffix at all (Spark/Hadoop style)
    "UPPER.JSONL": (_lines("b"), True),
    "c.jsonl.gzip": (gzip.compress(_lines("c")), True),
    "d.JSON.GZ": (gzip.compress(_lines("d")), True),
    "e.txt": (gzip.compress(_lines("e", "e2")), True),  # gzip recognised by content, not name
    "sub/f.jsonl": (_lines("f"), True),  # nested folders are read
    "empty.jsonl": (b"", True),  # an empty plain file: read, 0 lines
    "zero.gz": (b"", False),  # an empty "gzip": an upload that never wrote
    "zero.jsonl.GZIP": (b"", False),
    "g.jsonl.zst": (b"\x28\xb5\x2f\xfd" + b"\x00" * 20, False),  # another compression
    "h.bz2": (b"BZh91AY&SY" + b"\x00" * 20, False),
    "i.parquet": (b"PAR1" + b"\x00" * 20, False),
    ".hidden.jsonl": (_lines("x1"), False),  # hidden names are never data
    "_tmp/part-1.jsonl": (_lines("x2"), False),  # a writer's temporary folder
    "_SUCCESS": (b"", None),  # the landing marker: recorded, not read
}


def _day(root: Path) -> None:
    folder = Path(L.raw_dir(str(root), L.IMPRESSIONS, START))
    for name, (data, _) in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    write_raw(root, L.CLICKS, START, [ev("a", f"{D}T10:05:00Z")])
    write_raw(root, L.CONVERSIONS, START, [])
    for source in (L.CLICKS, L.CONVERSIONS):
        write_raw(root, source, START + ONE, [])


def test_every_file_is_read_or_listed_as_skipped(tmp_path, ingest_config):
    _day(tmp_path)
    res = run_ingest(ingest_config, START, str(tmp_path))
    entry = res.manifest["inputs"]["files"][L.IMPRESSIONS][L.partition(START)]
    folder = L.raw_dir(str(Path(tmp_path).absolute()), L.IMPRESSIONS, START)
    assert sorted(entry["read"]) == sorted(n for n, (_, read) in FILES.items() if read)
    skipped = {s["file"]: s["reason"] for s in entry["skipped"]}
    assert sorted(skipped) == sorted(f"{folder}/{n}" for n, (_, read) in FILES.items() if read is False)
    assert entry["marker"] is True
    reasons = {Path(f).name: why for f, why in skipped.items()}
    assert "compressed name" in reasons["zero.gz"] and "compressed name" in reasons["zero.jsonl.GZIP"]
    assert reasons["g.jsonl.zst"].startswith("zstd-compressed")
    assert reasons["h.bz2"].startswith("bzip2-compressed")
    assert reasons["i.parquet"].startswith("a Parquet file")
    assert "hidden name" in reasons[".hidden.jsonl"] and "'_tmp'" in reasons["part-1.jsonl"]
    # The lines of the files read are counted and labelled; nothing of the skipped ones is.
    part = res.manifest["sources"][L.IMPRESSIONS][L.partition(START)]
    assert part["read"] == part["accepted"] == 7
    assert res.manifest["outputs"]["samples"] == {"rows": 7, "clicks": 1, "conversions": 0}

    cfg = ingest_config.model_copy(deep=True)
    cfg.paths.artifact_root = str(tmp_path / "art")
    v = run_validation(cfg, START, str(tmp_path))
    [o] = [o for o in v.failed_critical if o.name == "files.none_skipped"]
    [text] = o.observed["examples"]
    assert text.startswith(f"{len(skipped)} file(s) skipped: ")
    assert all(f"{f}: {why}" in text for f, why in skipped.items())


def test_a_clean_partition_passes_the_files_check(tmp_path, ingest_config):
    for source in (L.IMPRESSIONS, L.CLICKS, L.CONVERSIONS):
        write_raw(tmp_path, source, START, [])
    for source in (L.CLICKS, L.CONVERSIONS):
        write_raw(tmp_path, source, START + ONE, [])
    res = run_ingest(ingest_config, START, str(tmp_path))
    files = res.manifest["inputs"]["files"]
    assert files[L.CLICKS][L.partition(START + ONE)] == {
        "read": ["part-0.jsonl.gz"],
        "skipped": [],
        "marker": False,
    }
    cfg = ingest_config.model_copy(deep=True)
    cfg.paths.artifact_root = str(tmp_path / "art")
    v = run_validation(cfg, START, str(tmp_path))
    [o] = [o for o in v.critical if o.name == "files.none_skipped"]
    assert o.success

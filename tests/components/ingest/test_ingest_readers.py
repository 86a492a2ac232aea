"""Reading raw files: compression sniffing, damaged gzip, concatenated members, block boundaries."""

from __future__ import annotations

import datetime as dt
import gzip

import pytest

from components.ingest.errors import CorruptFileError
from components.ingest.readers import local_open, parse_file, pick_lines
from components.ingest.schema import SPECS
from taml.core import layout as L

DAY = dt.date(2026, 11, 1)


def lines(n: int) -> bytes:
    return b"".join(
        b'{"impression_id":"i%d","ts":"2026-11-01T01:00:00Z","user_id":1,"item_id":2,"position":3,"device":"web"}\n'
        % k
        for k in range(n)
    )


def parse(path, block_bytes=1 << 20):
    return parse_file(str(path), SPECS[L.IMPRESSIONS], DAY, 10_000, block_bytes, 4096, opener=local_open)


def test_truncated_gzip_fails_naming_the_file(tmp_path):
    data = gzip.compress(lines(2000))
    path = tmp_path / "part-0.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=r"part-0\.jsonl\.gz: gzip stream truncated"):
        parse(path)


def test_garbage_named_gz_fails_naming_the_file(tmp_path):
    path = tmp_path / "part-1.jsonl.gz"
    path.write_bytes(b"this is not gzip\n")
    with pytest.raises(CorruptFileError, match=r"part-1\.jsonl\.gz: named \.gz but is not a gzip file"):
        parse(path)


def test_damaged_gzip_body_fails(tmp_path):
    data = bytearray(gzip.compress(lines(500)))
    data[40:60] = b"\x00" * 20
    path = tmp_path / "part-2.jsonl.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="part-2.jsonl.gz"):
        parse(path)


def test_concatenated_gzip_members_and_sniffed_compression(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(lines(10)) + gzip.compress(lines(5)))
    assert parse(path).good.num_rows == 15
    plain_named = tmp_path / "b.jsonl"  # gzip bytes under a plain name are still read
    plain_named.write_bytes(gzip.compress(lines(3)))
    assert parse(plain_named).good.num_rows == 3


def test_empty_files(tmp_path):
    (tmp_path / "e.jsonl").write_bytes(b"")
    (tmp_path / "e.jsonl.gz").write_bytes(gzip.compress(b""))
    for name in ("e.jsonl", "e.jsonl.gz"):
        p = parse(tmp_path / name)
        assert p.n_lines == 0 and p.good.num_rows == 0


def test_block_boundaries_do_not_change_results(tmp_path):
    data = lines(3000) + b'{"impression_id":"bad"\n' + lines(10)[:-1]  # and no final newline
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(data))
    big = parse(path)
    small = parse(path, block_bytes=997)
    assert big.n_lines == small.n_lines == 3011
    assert big.dead.lines == small.dead.lines == [3001]
    assert big.good["line"].to_pylist() == small.good["line"].to_pylist()
    assert pick_lines(str(path), {3001, 3011}, 997, 10_000, 4096, opener=local_open) == {
        3001: b'{"impression_id":"bad"',
        3011: lines(10).splitlines()[-1],
    }

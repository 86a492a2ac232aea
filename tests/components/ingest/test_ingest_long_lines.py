"""Very long lines: dead-lettered as soon as they pass the limit, never buffered, linear work."""

from __future__ import annotations

import datetime as dt
import gzip
import tracemalloc

import pytest

from components.ingest import splitter
from components.ingest.readers import local_open, parse_file, pick_lines
from components.ingest.schema import SPECS
from components.ingest.splitter import LongLine, split_stream
from taml.core import layout as L

DAY = dt.date(2026, 11, 1)
MAX = 300
KEEP = 64


def good(k: int) -> bytes:
    return (
        b'{"impression_id":"i%d","ts":"2026-11-01T01:00:00Z","user_id":1,"item_id":2,"position":3,"device":"web"}'
        % k
    )


def long_line(n: int) -> bytes:
    """A valid impression of exactly ``n`` bytes (so only its length can make it a dead letter)."""
    head = b'{"impression_id":"long","ts":"2026-11-01T01:00:00Z","user_id":1,"item_id":2,"position":3,"device":"web","pad":"'
    return head + b"x" * (n - len(head) - 2) + b'"}'


def parse(path, block_bytes=256):
    return parse_file(str(path), SPECS[L.IMPRESSIONS], DAY, MAX, block_bytes, KEEP, opener=local_open)


# Where a too-long line sits and how long it is: the class of inputs the limit must handle.
CASES = {
    "first_line": [long_line(5_000), good(1), good(2)],
    "middle": [good(1), long_line(5_000), good(2)],
    "last_without_newline": [good(1), good(2), long_line(5_000)],
    "many_blocks_long": [good(1), long_line(40_000), good(2)],
    "just_over_the_limit": [good(1), long_line(MAX + 1), good(2)],
    "exactly_the_limit_is_kept": [good(1), long_line(MAX), good(2)],
    "crlf": [good(1) + b"\r", long_line(2_000) + b"\r", good(2) + b"\r"],
    "two_in_a_row": [long_line(1_000), long_line(70_000), good(1)],
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("block_bytes", [64, 256, 1 << 20])
def test_too_long_lines_anywhere(tmp_path, name, gz, block_bytes):
    rows = CASES[name]
    data = b"\n".join(rows) + (b"" if name == "last_without_newline" else b"\n")
    path = tmp_path / ("f.jsonl.gz" if gz else "f.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    p = parse(path, block_bytes)
    assert p.n_lines == len(rows)
    want_dead = {i + 1: len(r) for i, r in enumerate(rows) if len(r) > MAX}
    assert dict(zip(p.dead.lines, p.dead.reasons, strict=True)) == dict.fromkeys(want_dead, L.LINE_TOO_LONG)
    for line, raw, detail in zip(p.dead.lines, p.dead.raws, p.dead.details, strict=True):
        assert raw == rows[line - 1][:KEEP]  # a bounded prefix, byte for byte
        assert detail.startswith(f"{want_dead[line]} bytes > {MAX}")
    kept = sorted(set(range(1, len(rows) + 1)) - set(want_dead))
    assert p.good["line"].to_pylist() == kept
    # Line numbers after a skipped line still point at the right bytes.
    assert pick_lines(str(path), set(kept), block_bytes, MAX, KEEP, opener=local_open) == {
        k: rows[k - 1] for k in kept
    }


def test_a_long_line_is_skipped_without_buffering_it(tmp_path):
    """An 8 MiB line with a 300-byte limit: memory stays near one read chunk (not the line)."""
    rows = [good(1), long_line(8 << 20), good(2)]
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    tracemalloc.start()
    try:
        p = parse(path, block_bytes=16 << 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert p.dead.lines == [2] and p.good["line"].to_pylist() == [1, 3]
    assert peak < 4 << 20, f"peak {peak} bytes while reading an 8 MiB line"


def test_work_per_byte_is_bounded(monkeypatch):
    """Bytes handed to the line cutter, over a line 50x the block size fed in small chunks: linear."""
    handled = []
    real = splitter.split_lines

    def counting(data, first_line, final):
        handled.append(len(data))
        return real(data, first_line, final)

    monkeypatch.setattr(splitter, "split_lines", counting)
    block = 1024
    for limit in (10 * block, 100 * block):  # below and above the line's length
        handled.clear()
        line = long_line(50 * block)
        data = good(1) + b"\n" + line + b"\n" + good(2) + b"\n"
        chunks = [data[i : i + 97] for i in range(0, len(data), 97)]
        items = list(split_stream(chunks, block, limit, KEEP))
        assert sum(handled) <= len(data)  # every byte reaches the cutter at most once
        longs = [x for x in items if isinstance(x, LongLine)]
        if limit < len(line):
            assert [(x.line, x.length, x.prefix) for x in longs] == [(2, len(line), line[:KEEP])]
        else:
            assert not longs and sum(x.n for x in items) == 3

"""Line parsing: the bulk path agrees with the one-line reference; every bad input gets its reason."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from components.ingest.parse import parse_block, parse_one, parse_timestamps, split_lines
from components.ingest.schema import SPECS
from taml.core import layout as L

DAY = dt.date(2026, 11, 1)
OK_TS = "2026-11-01T08:15:30.123Z"


def line(**kw) -> bytes:
    rec = {"impression_id": "i1", "ts": OK_TS, "user_id": 1, "item_id": 2, "position": 3, "device": "ios"}
    rec.update(kw)
    return json.dumps({k: v for k, v in rec.items() if v is not ...}).encode()


BAD = [
    (line()[:-5], L.MALFORMED_JSON),
    (b"", L.MALFORMED_JSON),
    (b"   ", L.MALFORMED_JSON),
    (b"[1, 2]", L.MALFORMED_JSON),
    (b'{"impression_id": "x"}{"impression_id": "y"}', L.MALFORMED_JSON),
    (line(impression_id="caf\xe9").replace(b"caf\\u00e9", b"caf\xe9"), L.MALFORMED_JSON),  # latin-1 byte
    (line(device=...), L.MISSING_FIELD),
    (line(ts=None), L.MISSING_FIELD),
    (line(user_id="u12"), L.BAD_TYPE),
    (line(position="abc"), L.BAD_TYPE),
    (line(item_id=1.5), L.BAD_TYPE),
    (line(user_id=True), L.BAD_TYPE),
    (line(impression_id=7), L.BAD_TYPE),
    (line(ts=1793520930), L.BAD_TIMESTAMP),
    (line(ts="not-a-timestamp"), L.BAD_TIMESTAMP),
    (line(ts="2026-11-01 25:61:00"), L.BAD_TIMESTAMP),
    (line(ts="2026-11-01T25:61:00Z"), L.BAD_TIMESTAMP),
    (line(ts="2026-10-29T10:00:00.000Z"), L.BAD_TIMESTAMP),
    (line(ts="2026-11-02T00:00:00Z"), L.BAD_TIMESTAMP),
    (line(position=0), L.OUT_OF_RANGE),
    (line(position=101), L.OUT_OF_RANGE),
    (line(device="tv"), L.OUT_OF_RANGE),
    (line(item_id=-3), L.OUT_OF_RANGE),
    (line(user_id=2**70), L.OUT_OF_RANGE),
    (line(impression_id=""), L.OUT_OF_RANGE),
]
GOOD = [
    line(),
    line(impression_id="i2", extra={"nested": [1, 2]}, another="x"),  # unknown keys ignored
    line(impression_id="i3", ts="2026-11-01T23:59:59.999999Z", position=100, device="web"),
    line(impression_id="i4", ts="2026-11-01T02:00:00+02:00"),  # = 00:00 UTC, inside the day
    line(impression_id="i5", ts="2026-11-01T08:00:00.123456789Z"),
    line(impression_id="i6") + b"\r",
    b'  {"impression_id": "i7", "ts": "2026-11-01T01:00:00Z", "user_id": 0, "item_id": 0, "position": 1, "device": "android"}  ',
]


def run_block(lines: list[bytes], spec=SPECS[L.IMPRESSIONS], max_line_bytes=10_000, keep_bytes=4096):
    block, tail = split_lines(b"\n".join(lines) + b"\n", first_line=1, final=True)
    assert tail == b""
    return parse_block(block, spec, DAY, max_line_bytes, keep_bytes)


@pytest.mark.parametrize("raw,reason", BAD, ids=[f"{r}-{i}" for i, (_, r) in enumerate(BAD)])
def test_each_bad_line_gets_its_reason_verbatim(raw, reason):
    # Alone, and surrounded by good lines (the bulk path must isolate it the same way).
    for lines, at in (([raw], 1), ([GOOD[0], raw, GOOD[1]], 2)):
        p = run_block(lines)
        assert p.n_lines == len(lines)
        assert p.dead.reasons == [reason]
        assert p.dead.lines == [at]
        assert p.dead.raws == [raw]
        assert p.good.num_rows == len(lines) - 1


def test_good_lines_parse_to_typed_rows():
    p = run_block(GOOD)
    assert len(p.dead) == 0
    rows = {r["impression_id"]: r for r in p.good.to_pylist()}
    assert sorted(r["line"] for r in rows.values()) == list(range(1, len(GOOD) + 1))
    expected = dt.datetime(2026, 11, 1, 8, 15, 30, 123000, tzinfo=dt.UTC).timestamp()
    assert rows["i1"]["ts"] == round(expected * 1_000_000)
    assert rows["i4"]["ts"] == rows["i1"]["ts"] - (8 * 3600 + 15 * 60 + 30) * 1_000_000 - 123_000
    assert rows["i5"]["ts"] % 1_000_000 == 123456  # nanoseconds truncated to microseconds
    assert rows["i7"]["user_id"] == 0


def test_bulk_path_agrees_with_one_line_reference_on_a_mixed_block():
    lines = [GOOD[i % len(GOOD)] for i in range(300)]
    for k, (raw, _) in enumerate(BAD):
        lines.insert(7 * k + 3, raw)
    p = run_block(lines)
    assert p.n_lines == len(lines)
    assert p.good.num_rows + len(p.dead) == len(lines)
    by_line = dict(zip(p.dead.lines, p.dead.reasons, strict=True))
    for n, raw in enumerate(lines, start=1):
        rec, reason, _ = parse_one(raw, SPECS[L.IMPRESSIONS])
        if rec is None:
            assert by_line[n] == reason
    good = {r["line"]: r for r in p.good.to_pylist()}
    assert set(good) | set(by_line) == set(range(1, len(lines) + 1))


def test_too_long_line_keeps_a_bounded_prefix():
    long_line = line(impression_id="x" * 500)
    p = run_block([GOOD[0], long_line], max_line_bytes=200, keep_bytes=50)
    assert p.dead.reasons == [L.LINE_TOO_LONG]
    assert p.dead.raws == [long_line[:50]]
    assert p.good.num_rows == 1


_PROFILE = b'"ts": "%s", "gender": 1, "age_level": 2, "city_level": 3, "occupation": 4}'


@pytest.mark.parametrize(
    ("source", "rows", "dead", "column", "good"),
    [
        # A profile row's ts is "valid from": it may precede its partition's day.
        (
            L.USERS,
            [
                b'{"user_id": 5, ' + _PROFILE % b"2026-11-01T00:00:00Z",
                b'{"user_id": "abc", ' + _PROFILE % b"2026-11-01T00:00:00Z",
                b'{"user_id": -7, ' + _PROFILE % b"2026-11-01T00:00:00Z",
                b'{"user_id": 6, ' + _PROFILE % b"2025-01-01T00:00:00Z",
            ],
            [(2, L.BAD_TYPE), (3, L.OUT_OF_RANGE)],
            "user_id",
            [5, 6],
        ),
        # A conversion's value is optional, and never negative.
        (
            L.CONVERSIONS,
            [
                b'{"impression_id": "a", "ts": "2026-11-01T01:00:00Z"}',
                b'{"impression_id": "b", "ts": "2026-11-01T01:00:00Z", "value": 12}',
                b'{"impression_id": "c", "ts": "2026-11-01T01:00:00Z", "value": -5.0}',
                b'{"impression_id": "d", "ts": "2026-11-01T01:00:00Z", "value": "12"}',
            ],
            [(3, L.OUT_OF_RANGE), (4, L.BAD_TYPE)],
            "value",
            [None, 12.0],
        ),
    ],
)
def test_typed_fields_of_profiles_and_conversions(source, rows, dead, column, good):
    p = run_block(rows, spec=SPECS[source])
    assert sorted(zip(p.dead.lines, p.dead.reasons, strict=True)) == dead
    assert sorted(p.good[column].to_pylist(), key=lambda v: (v is not None, v)) == good


def test_split_lines_keeps_the_unterminated_tail():
    block, tail = split_lines(b'{"a":1}\n{"b":2}\n{"c"', first_line=5, final=False)
    assert block.n == 2 and tail == b'{"c"' and block.raw(1) == b'{"b":2}'
    block, tail = split_lines(b'{"a":1}\n{"c":3}', first_line=1, final=True)
    assert block.n == 2 and tail == b"" and block.raw(1) == b'{"c":3}'


def test_parse_timestamps_vectorised_with_bad_values():
    import pyarrow as pa

    us = parse_timestamps(
        pa.array(["2026-11-01T00:00:00Z", "2026-11-01T24:00:00Z", None, "2026-11-01T00:00:01.5+00:00"])
    )
    assert us[0] == 1793491200_000_000 and us[3] == us[0] + 1_500_000
    assert us[1] == us[2] == -(2**63)

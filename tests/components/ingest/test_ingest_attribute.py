"""Attribution rules of one shard, on hand-made tables (no Beam)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from components.ingest.attribute import attribute_shard
from components.ingest.parse import day_start_us
from taml.core import layout as L

D = dt.date(2026, 11, 1)
T0 = day_start_us(D)
MIN = 60_000_000
HOUR = 60 * MIN


def at(day_offset: int, hh: int, mm: int) -> int:
    return T0 + day_offset * 24 * HOUR + hh * HOUR + mm * MIN


def imps(rows):
    ids, ts = zip(*rows, strict=True)
    n = len(ids)
    return pa.table(
        {
            "impression_id": pa.array(ids, pa.string()),
            "ts": pa.array(ts, pa.int64()),
            "user_id": pa.array([1] * n, pa.int64()),
            "item_id": pa.array([2] * n, pa.int64()),
            "position": pa.array([1] * n, pa.int64()),
            "device": pa.array(["ios"] * n, pa.string()),
            "file": pa.array([0] * n, pa.int32()),
            "line": pa.array(range(1, n + 1), pa.int64()),
        }
    )


def prev(rows):
    ids, ts = zip(*rows, strict=True)
    return pa.table(
        {
            "impression_id": pa.array(ids, pa.string()),
            "ts": pa.array(ts, pa.int64()),
            "file": pa.array([-1] * len(ids), pa.int32()),
            "line": pa.array(range(len(ids)), pa.int64()),
        }
    )


def events(rows, file=1):
    ids, ts, part = zip(*rows, strict=True)
    return pa.table(
        {
            "impression_id": pa.array(ids, pa.string()),
            "ts": pa.array(ts, pa.int64()),
            "part": pa.array(part, pa.int8()),
            "file": pa.array([file] * len(ids), pa.int32()),
            "line": pa.array(range(1, len(ids) + 1), pa.int64()),
        }
    )


def test_rules_and_ownership():
    res = attribute_shard(
        imps(
            [
                ("a", at(0, 10, 0)),
                ("b", at(0, 23, 30)),
                ("c", at(0, 9, 0)),
                ("d", at(0, 1, 0)),
                ("d", at(0, 2, 0)),
                ("e", at(0, 5, 0)),
                ("f", at(0, 10, 0)),
            ]
        ),
        prev([("p", at(-1, 23, 40)), ("q", at(-1, 23, 50)), ("e", at(-1, 4, 0))]),
        events(
            [
                ("a", at(0, 10, 5), 0),  # counted
                ("c", at(0, 11, 0), 0),  # 2 h after: late
                ("c", at(0, 8, 59), 0),  # before its impression
                ("zz", at(0, 3, 0), 0),  # no impression
                ("p", at(-1, 23, 45), -1),  # D-1's counted click (lookup only)
                ("p", at(0, 0, 20), 0),  # a second click of a D-1 impression: D judges it
                ("q", at(0, 0, 10), 0),  # D-1's impression, within the window: D-1 accepted it
                ("f", at(0, 10, 30), 0),
                ("b", at(1, 0, 10), 1),  # crosses midnight: labels b
                ("c", at(1, 1, 0), 1),  # not a label of D: D+1 judges it
                ("yy", at(1, 2, 0), 1),
            ]
        ),
        events(
            [
                ("a", at(0, 12, 0), 0),
                ("a", at(0, 13, 0), 0),  # second conversion
                ("c", at(0, 12, 0), 0),  # no click
                ("zz", at(0, 12, 0), 0),
                ("p", at(0, 3, 0), 0),  # D-1's impression: other_day
                ("f", at(0, 10, 20), 0),  # before its click
                ("b", at(1, 10, 0), 1),
                ("a", at(1, 11, 0), 1),  # 25 h after a: D+1 dead-letters it, D says other_day
            ],
            file=2,
        ),
        click_window_us=60 * MIN,
        attribution_window_us=24 * HOUR,
    )
    c = res.counts
    assert c[(L.IMPRESSIONS, 0, "accepted", "")] == 5
    assert c[(L.IMPRESSIONS, 0, "dead", L.DUPLICATE_IMPRESSION)] == 2
    # source → (accepted, other_day) of the partitions D and D+1, and D's dead letters (one each)
    judged_as = {
        L.CLICKS: ([(2, 1), (1, 2)], (L.LATE_EVENT, L.TIME_TRAVEL, L.ORPHAN_CLICK, L.DUPLICATE_EVENT)),
        L.CONVERSIONS: (
            [(1, 1), (1, 1)],
            (L.DUPLICATE_EVENT, L.CONVERSION_WITHOUT_CLICK, L.ORPHAN_CONVERSION, L.TIME_TRAVEL),
        ),
    }
    for source, (parts, dead) in judged_as.items():
        for part, judged in enumerate(parts):
            assert (c[(source, part, "accepted", "")], c[(source, part, "other_day", "")]) == judged, (
                source,
                part,
            )
        assert [c[(source, 0, "dead", reason)] for reason in dead] == [1] * len(dead), source
    assert not any(k[1] == 1 and k[2] == "dead" for k in c)  # D never dead-letters a line of D+1

    s = {r["impression_id"]: (r["click"], r["conversion"]) for r in res.samples.to_pylist()}
    assert s == {"a": (1, 1), "b": (1, 1), "c": (0, 0), "d": (0, 0), "f": (1, 0)}
    assert res.samples.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    stubs = res.stubs.to_pylist()
    assert {
        (x["source"], x["reason"], x["file"], x["line"]) for x in stubs if x["source"] == L.IMPRESSIONS
    } == {
        (L.IMPRESSIONS, L.DUPLICATE_IMPRESSION, 0, 5),
        (L.IMPRESSIONS, L.DUPLICATE_IMPRESSION, 0, 6),
    }
    assert len(stubs) == 2 + 4 + 4


def test_first_event_wins_by_time_then_position():
    res = attribute_shard(
        imps([("a", at(0, 10, 0))]),
        prev([("zz", at(-1, 1, 0))]),
        events([("a", at(0, 10, 30), 0), ("a", at(0, 10, 10), 0), ("a", at(0, 10, 10), 0)]),
        events([("a", at(0, 11, 0), 0)]),
        click_window_us=60 * MIN,
        attribution_window_us=24 * HOUR,
    )
    dead = [(x["reason"], x["line"]) for x in res.stubs.to_pylist()]
    assert sorted(dead) == [(L.DUPLICATE_EVENT, 1), (L.DUPLICATE_EVENT, 3)]  # line 2 (10:10, first) counts


def test_window_bounds_are_inclusive():
    res = attribute_shard(
        imps([("a", at(0, 10, 0))]),
        prev([("zz", at(-1, 1, 0))]),
        events([("a", at(0, 11, 0), 0)]),
        events([("a", at(1, 10, 0), 1)]),
        click_window_us=60 * MIN,
        attribution_window_us=24 * HOUR,
    )
    assert res.samples.to_pylist()[0]["conversion"] == 1

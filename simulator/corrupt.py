"""Bad lines for ingestion to catch, counted exactly per DESIGN.md reason code.

Every corruption is an *added* line: genuine lines are never altered or dropped, so the
genuine labels stay exact and ingestion's dead letters can be checked against these counts
line for line. Lines that refer to impressions pick ones whose genuine events cannot interfere
(an impression without a click for a stray click, with a click but no conversion for a late
conversion), each impression used at most once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from simulator.impressions import Draw, Outcome
from simulator.jsonl import rfc3339
from simulator.world import DEVICES
from taml.core import layout as L

HOUR_MS = 3_600_000

IMPRESSION_REASONS = (
    L.MALFORMED_JSON,
    L.MISSING_FIELD,
    L.BAD_TYPE,
    L.OUT_OF_RANGE,
    L.BAD_TIMESTAMP,
    L.DUPLICATE_IMPRESSION,
)
CLICK_REASONS = (
    L.MALFORMED_JSON,
    L.MISSING_FIELD,
    L.BAD_TYPE,
    L.BAD_TIMESTAMP,
    L.ORPHAN_CLICK,
    L.LATE_EVENT,
    L.TIME_TRAVEL,
)
CONVERSION_REASONS = (
    L.MALFORMED_JSON,
    L.MISSING_FIELD,
    L.OUT_OF_RANGE,
    L.ORPHAN_CONVERSION,
    L.CONVERSION_WITHOUT_CLICK,
    L.LATE_EVENT,
)
PROFILE_REASONS = (L.MALFORMED_JSON, L.MISSING_FIELD, L.BAD_TYPE, L.OUT_OF_RANGE)


@dataclass
class Corruption:
    """Extra lines per source for the day's own partition, and late conversions for D+1."""

    lines: dict[str, list[str]] = field(default_factory=dict)
    next_day_conversions: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # (source, partition offset 0|1, reason) -> n

    def add(self, source: str, reason: str, lines: list[str], next_day: bool = False) -> None:
        if not lines:
            return
        if next_day:
            self.next_day_conversions.extend(lines)
        else:
            self.lines.setdefault(source, []).extend(lines)
        self.counts[(source, 1 if next_day else 0, reason)] += len(lines)


def _split(rng: np.random.Generator, n_genuine: int, rate: float, reasons: tuple[str, ...]) -> dict[str, int]:
    total = int(rng.binomial(n_genuine, rate)) if n_genuine and rate > 0 else 0
    counts = rng.multinomial(total, [1 / len(reasons)] * len(reasons))
    return dict(zip(reasons, counts.tolist(), strict=True))


def _dumps(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"))


def _malformed(rng: np.random.Generator, record: dict) -> str:
    text = _dumps(record)
    return text[: int(rng.integers(2, len(text) - 1))]


def _missing(rng: np.random.Generator, record: dict, required: tuple[str, ...]) -> str:
    drop = required[int(rng.integers(0, len(required)))]
    return _dumps({k: v for k, v in record.items() if k != drop})


def corrupt_chunk(
    rng: np.random.Generator,
    day: dt.date,
    tag: str,
    ids: list[str],
    imp_lines: list[str],
    draw: Draw,
    out: Outcome,
    rate: float,
    click_window_minutes: int,
    attribution_hours: int,
) -> Corruption:
    c = Corruption()
    if rate <= 0:
        return c
    n = len(ids)
    ts_any = rfc3339(day, rng.integers(1_000, 86_399_000, 64))
    fresh = iter(f"{tag}c{k:07d}" for k in range(10**7))

    def fake_impression() -> dict:
        return {
            "impression_id": next(fresh),
            "ts": ts_any[int(rng.integers(0, 64))],
            "user_id": int(rng.integers(0, 1000)),
            "item_id": int(rng.integers(0, 1000)),
            "position": int(rng.integers(1, 101)),
            "device": str(DEVICES[rng.integers(0, 3)]),
        }

    # --- impressions -------------------------------------------------------------------------
    plan = _split(rng, n, rate, IMPRESSION_REASONS)
    req = L.REQUIRED_FIELDS[L.IMPRESSIONS]
    c.add(
        L.IMPRESSIONS,
        L.MALFORMED_JSON,
        [_malformed(rng, fake_impression()) for _ in range(plan[L.MALFORMED_JSON])],
    )
    c.add(
        L.IMPRESSIONS,
        L.MISSING_FIELD,
        [_missing(rng, fake_impression(), req) for _ in range(plan[L.MISSING_FIELD])],
    )
    bad_type = []
    for k in range(plan[L.BAD_TYPE]):
        r = fake_impression()
        if k % 2:
            r["position"] = "abc"
        else:
            r["user_id"] = f"u{r['user_id']}"
        bad_type.append(_dumps(r))
    c.add(L.IMPRESSIONS, L.BAD_TYPE, bad_type)
    out_of_range = []
    for k in range(plan[L.OUT_OF_RANGE]):
        r = fake_impression()
        kind = k % 3
        if kind == 0:
            r["position"] = int(rng.choice([0, 101, 150]))
        elif kind == 1:
            r["device"] = "tv"
        else:
            r["item_id"] = -int(rng.integers(1, 100))
        out_of_range.append(_dumps(r))
    c.add(L.IMPRESSIONS, L.OUT_OF_RANGE, out_of_range)
    bad_ts = []
    other_day = (day - dt.timedelta(days=3)).isoformat() + "T10:00:00.000Z"
    for k in range(plan[L.BAD_TIMESTAMP]):
        r = fake_impression()
        r["ts"] = ["not-a-timestamp", f"{day.isoformat()} 25:61:00", other_day][k % 3]
        bad_ts.append(_dumps(r))
    c.add(L.IMPRESSIONS, L.BAD_TIMESTAMP, bad_ts)
    dupes = rng.choice(n, size=min(plan[L.DUPLICATE_IMPRESSION], n), replace=False) if n else []
    c.add(L.IMPRESSIONS, L.DUPLICATE_IMPRESSION, [imp_lines[i] for i in sorted(dupes)])

    # --- clicks -----------------------------------------------------------------------------
    window = click_window_minutes * 60_000
    unclicked = rng.permutation(np.flatnonzero(~out.click))
    used = np.zeros(n, dtype=bool)

    def take(pool: np.ndarray, k: int, ok: np.ndarray) -> np.ndarray:
        chosen = pool[ok[pool] & ~used[pool]][:k]
        used[chosen] = True
        return chosen

    plan = _split(rng, int(out.click.sum()), rate, CLICK_REASONS)
    c.add(
        L.CLICKS,
        L.MALFORMED_JSON,
        [
            _malformed(rng, {"impression_id": ids[int(rng.integers(0, n))], "ts": ts_any[0]})
            for _ in range(plan[L.MALFORMED_JSON])
        ],
    )
    c.add(
        L.CLICKS,
        L.MISSING_FIELD,
        [
            _dumps({"impression_id": ids[int(rng.integers(0, n))]}) if k % 2 else _dumps({"ts": ts_any[1]})
            for k in range(plan[L.MISSING_FIELD])
        ],
    )
    c.add(
        L.CLICKS,
        L.BAD_TYPE,
        [
            _dumps({"impression_id": int(rng.integers(0, 10**9)), "ts": ts_any[2]})
            for _ in range(plan[L.BAD_TYPE])
        ],
    )
    c.add(
        L.CLICKS,
        L.BAD_TIMESTAMP,
        [
            _dumps({"impression_id": ids[int(rng.integers(0, n))], "ts": "yesterday"})
            for _ in range(plan[L.BAD_TIMESTAMP])
        ],
    )
    c.add(
        L.CLICKS,
        L.ORPHAN_CLICK,
        [
            _dumps({"impression_id": f"{tag}x{k:07d}", "ts": ts_any[k % 64]})
            for k in range(plan[L.ORPHAN_CLICK])
        ],
    )
    # Late: stamped after the click window but still on day D (so D's run owns and judges it).
    late = take(unclicked, plan[L.LATE_EVENT], draw.ts_ms <= 20 * HOUR_MS)
    late_ms = draw.ts_ms[late] + window + rng.integers(60_000, 3 * HOUR_MS, len(late))
    c.add(L.CLICKS, L.LATE_EVENT, _event_lines(ids, late, rfc3339(day, late_ms)))
    travel = take(unclicked, plan[L.TIME_TRAVEL], draw.ts_ms >= 60_000)
    travel_ms = draw.ts_ms[travel] - rng.integers(1_000, 60_000, len(travel))
    c.add(L.CLICKS, L.TIME_TRAVEL, _event_lines(ids, travel, rfc3339(day, travel_ms)))

    # --- conversions ------------------------------------------------------------------------
    plan = _split(rng, max(int(out.reported.sum()), int(out.click.sum()) // 20), rate, CONVERSION_REASONS)
    c.add(
        L.CONVERSIONS,
        L.MALFORMED_JSON,
        [
            _malformed(rng, {"impression_id": ids[int(rng.integers(0, n))], "ts": ts_any[3], "value": 10.0})
            for _ in range(plan[L.MALFORMED_JSON])
        ],
    )
    c.add(
        L.CONVERSIONS,
        L.MISSING_FIELD,
        [
            _dumps({"impression_id": ids[int(rng.integers(0, n))], "value": 1.0})
            for _ in range(plan[L.MISSING_FIELD])
        ],
    )
    clicked_only = rng.permutation(np.flatnonzero(out.click & ~out.conversion))
    # A negative value on an otherwise valid conversion: pick a clicked impression with no genuine one.
    neg = take(clicked_only, plan[L.OUT_OF_RANGE], out.click_ms + 60_000 <= 86_399_000)
    neg_ms = out.click_ms[neg] + 30_000
    c.add(L.CONVERSIONS, L.OUT_OF_RANGE, _event_lines(ids, neg, rfc3339(day, neg_ms), value=-5.0))
    c.add(
        L.CONVERSIONS,
        L.ORPHAN_CONVERSION,
        [
            _dumps({"impression_id": f"{tag}y{k:07d}", "ts": ts_any[k % 64], "value": 12.5})
            for k in range(plan[L.ORPHAN_CONVERSION])
        ],
    )
    no_click = take(unclicked, plan[L.CONVERSION_WITHOUT_CLICK], draw.ts_ms <= 21 * HOUR_MS)
    nc_ms = draw.ts_ms[no_click] + rng.integers(60_000, 2 * HOUR_MS, len(no_click))
    c.add(
        L.CONVERSIONS,
        L.CONVERSION_WITHOUT_CLICK,
        _event_lines(ids, no_click, rfc3339(day, nc_ms), value=20.0),
    )
    # Late conversions land after the attribution window, on D+1: D+1's run owns them.
    late_conv = take(clicked_only, plan[L.LATE_EVENT], draw.ts_ms <= 22 * HOUR_MS)
    lc_ms = (
        draw.ts_ms[late_conv] + attribution_hours * HOUR_MS + rng.integers(60_000, HOUR_MS, len(late_conv))
    )
    c.add(
        L.CONVERSIONS,
        L.LATE_EVENT,
        _event_lines(ids, late_conv, rfc3339(day, lc_ms), value=15.0),
        next_day=True,
    )
    return c


def _event_lines(ids: list[str], rows: np.ndarray, ts: list[str], value: float | None = None) -> list[str]:
    tail = "" if value is None else f',"value":{value}'
    return [
        f'{{"impression_id":"{ids[i]}","ts":"{t}"{tail}}}' for i, t in zip(rows.tolist(), ts, strict=True)
    ]


def corrupt_profiles(
    rng: np.random.Generator, source: str, n_genuine: int, template: dict, rate: float
) -> Corruption:
    """Bad users or items rows; ``template`` is one valid row to damage."""
    c = Corruption()
    plan = _split(rng, n_genuine, rate, PROFILE_REASONS)
    key = "user_id" if source == L.USERS else "item_id"
    req = L.REQUIRED_FIELDS[source]
    c.add(source, L.MALFORMED_JSON, [_malformed(rng, template) for _ in range(plan[L.MALFORMED_JSON])])
    c.add(source, L.MISSING_FIELD, [_missing(rng, template, req) for _ in range(plan[L.MISSING_FIELD])])
    c.add(source, L.BAD_TYPE, [_dumps({**template, key: "abc"}) for _ in range(plan[L.BAD_TYPE])])
    c.add(
        source,
        L.OUT_OF_RANGE,
        [_dumps({**template, key: -int(rng.integers(1, 1000))}) for _ in range(plan[L.OUT_OF_RANGE])],
    )
    return c

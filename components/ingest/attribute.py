"""Join clicks and conversions to impressions and attribute them, for one shard of impression ids.

Pure pyarrow/numpy on whole tables; the Beam pipeline calls :func:`attribute_shard` once per
hash shard of ``impression_id`` (every table of a shard holds only ids of that shard).

Rules (DESIGN.md): a click counts when it is stamped within ``click_window`` after its
impression; a conversion counts when it is stamped after the counted click and within the
attribution window of the impression. Per impression only the first counting event is kept
(order: ts, then file path, then line); later ones are ``duplicate_event``. The run for D judges
the lines of dt=D; lines of dt=D+1 either label an impression of D (accepted) or are other_day;
lines of dt=D that pass the rules for an impression of D-1 are other_day (D-1's run accepted
them). Lines of dt=D-1 (``part == -1``) are read only to decide which event of an impression of
D-1 came first, so that the two runs agree on every line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.ingest.schema import SAMPLES_SCHEMA
from taml.core import layout as L

US_PER_HOUR = 3_600_000_000

#: Columns of the tables the shard receives.
IMP_COLS = ("impression_id", "ts", "user_id", "item_id", "position", "device", "file", "line")
PREV_COLS = ("impression_id", "ts", "file", "line")
EVENT_COLS = ("impression_id", "ts", "part", "file", "line")

STUB_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("part", pa.int8()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("file", pa.int32()),
        ("line", pa.int64()),
    ]
)

_DETAIL = {
    L.DUPLICATE_IMPRESSION: "impression_id seen before (earlier line of D, or an impression of D-1)",
    L.ORPHAN_CLICK: "no impression of D or D-1 with this id",
    L.ORPHAN_CONVERSION: "no impression of D or D-1 with this id",
    L.TIME_TRAVEL: "stamped before its impression or its counted click",
    L.LATE_EVENT: "stamped after the click / attribution window",
    L.CONVERSION_WITHOUT_CLICK: "the impression has no counted click",
    L.DUPLICATE_EVENT: "an earlier event already counts for this impression",
}


@dataclass
class ShardResult:
    samples: pa.Table
    stubs: pa.Table  # dead letters without their raw line (fetched later by file and line)
    counts: dict[tuple[str, int, str, str], int] = field(default_factory=dict)  # (source, part, kind, reason)


def _np(a) -> np.ndarray:
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    return a.to_numpy(zero_copy_only=False)


def first_per_key(ids: pa.Array | pa.ChunkedArray, *tiebreak: np.ndarray) -> np.ndarray:
    """Boolean mask: the first row of each id, ordered by the tie-break arrays (then row order)."""
    n = len(ids)
    if n == 0:
        return np.zeros(0, bool)
    t = pa.table(
        {"id": ids, **{f"k{i}": pa.array(k) for i, k in enumerate(tiebreak)}, "row": pa.array(np.arange(n))}
    )
    order = _np(
        pc.sort_indices(
            t,
            sort_keys=[("id", "ascending")]
            + [(f"k{i}", "ascending") for i in range(len(tiebreak))]
            + [("row", "ascending")],
        )
    )
    sorted_ids = t["id"].take(pa.array(order))
    new = np.ones(n, bool)
    if n > 1:
        new[1:] = _np(pc.not_equal(sorted_ids.slice(1), sorted_ids.slice(0, n - 1)))
    mask = np.zeros(n, bool)
    mask[order[new]] = True
    return mask


def first_by_code(codes: np.ndarray, *tiebreak: np.ndarray) -> np.ndarray:
    """Boolean mask: the first row of each integer code, ordered by the tie-break arrays."""
    n = len(codes)
    if n == 0:
        return np.zeros(0, bool)
    order = np.lexsort((np.arange(n), *reversed(tiebreak), codes))
    sc = codes[order]
    new = np.ones(n, bool)
    new[1:] = sc[1:] != sc[:-1]
    mask = np.zeros(n, bool)
    mask[order[new]] = True
    return mask


def attribute_shard(
    imps: pa.Table,
    prev: pa.Table,
    clicks: pa.Table,
    convs: pa.Table,
    click_window_us: int,
    attribution_window_us: int,
) -> ShardResult:
    counts: dict[tuple[str, int, str, str], int] = {}
    stubs: list[pa.Table] = []

    def count(source: str, part: int, kind: str, reason: str, n: int) -> None:
        if n:
            key = (source, part, kind, reason)
            counts[key] = counts.get(key, 0) + int(n)

    def stub(
        source: str, part: int, mask: np.ndarray, reasons: np.ndarray, files: np.ndarray, lines: np.ndarray
    ) -> None:
        if not mask.any():
            return
        r = reasons[mask]
        for code in np.unique(r):
            count(source, part, "dead", str(code), int((r == code).sum()))
        m = int(mask.sum())
        stubs.append(
            pa.table(
                {
                    "source": pa.array([source] * m, pa.string()),
                    "part": pa.array(np.full(m, part, np.int8)),
                    "reason": pa.array(r.astype(str).tolist(), pa.string()),
                    "detail": pa.array([_DETAIL.get(str(x), "") for x in r], pa.string()),
                    "file": pa.array(files[mask].astype(np.int32)),
                    "line": pa.array(lines[mask].astype(np.int64)),
                },
                schema=STUB_SCHEMA,
            )
        )

    # One hash pass over every id of the shard: from here on an id is an integer code and every
    # lookup (duplicates, event -> impression, impression -> label) is numpy indexing.
    sizes = [imps.num_rows, prev.num_rows, clicks.num_rows, convs.num_rows]
    every = pa.chunked_array(
        [t["impression_id"].combine_chunks().cast(pa.string()) for t in (imps, prev, clicks, convs)],
        type=pa.string(),
    ).combine_chunks()
    enc = pc.dictionary_encode(every)
    codes = _np(enc.indices).astype(np.int64)
    n_codes = len(enc.dictionary)
    ci, cp, cc, cv = np.split(codes, np.cumsum(sizes)[:-1])
    NONE = 9  # "no impression" marker in the day array

    # --- impressions of D: the first line of an id wins; an id already shown on D-1 is a duplicate
    p_first = first_by_code(cp, _np(prev["file"]), _np(prev["line"]))
    in_prev = np.zeros(n_codes, bool)
    in_prev[cp[p_first]] = True
    i_file, i_line = _np(imps["file"]), _np(imps["line"])
    keep = first_by_code(ci, i_file, i_line) & ~in_prev[ci]
    stub(L.IMPRESSIONS, 0, ~keep, np.full(len(keep), L.DUPLICATE_IMPRESSION, dtype=object), i_file, i_line)
    count(L.IMPRESSIONS, 0, "accepted", "", int(keep.sum()))

    # Every impression an event may belong to: D (day 0) and D-1 (day -1), by code.
    imp_ts = np.zeros(n_codes, np.int64)
    imp_day = np.full(n_codes, NONE, np.int8)
    imp_ts[cp[p_first]] = _np(prev["ts"]).astype(np.int64)[p_first]
    imp_day[cp[p_first]] = -1
    i_ts = _np(imps["ts"]).astype(np.int64)
    imp_ts[ci[keep]] = i_ts[keep]
    imp_day[ci[keep]] = 0

    # --- clicks
    c_ts = _np(clicks["ts"]).astype(np.int64)
    c_file, c_line, c_part = _np(clicks["file"]), _np(clicks["line"]), _np(clicks["part"])
    c_day = imp_day[cc]
    c_found = c_day != NONE
    c_delay = c_ts - imp_ts[cc]
    c_reason = np.full(clicks.num_rows, "", dtype=object)
    c_reason[~c_found] = L.ORPHAN_CLICK
    c_reason[c_found & (c_delay < 0)] = L.TIME_TRAVEL
    c_reason[c_found & (c_delay > click_window_us)] = L.LATE_EVENT
    counted = _first_counts(cc, c_ts, c_file, c_line, c_reason)
    _judge(L.CLICKS, c_part, c_day, counted, c_reason, c_file, c_line, count, stub)
    has_click = np.zeros(n_codes, bool)
    click_ts = np.zeros(n_codes, np.int64)
    has_click[cc[counted]] = True
    click_ts[cc[counted]] = c_ts[counted]

    # --- conversions
    v_ts = _np(convs["ts"]).astype(np.int64)
    v_file, v_line, v_part = _np(convs["file"]), _np(convs["line"]), _np(convs["part"])
    v_day = imp_day[cv]
    v_delay = v_ts - imp_ts[cv]
    v_reason = np.full(convs.num_rows, "", dtype=object)

    def mark(mask: np.ndarray, code: str) -> None:
        v_reason[mask & (v_reason == "")] = code

    mark(v_day == NONE, L.ORPHAN_CONVERSION)
    mark(v_delay < 0, L.TIME_TRAVEL)
    mark(v_delay > attribution_window_us, L.LATE_EVENT)
    mark(~has_click[cv], L.CONVERSION_WITHOUT_CLICK)
    mark(v_ts < click_ts[cv], L.TIME_TRAVEL)
    v_counted = _first_counts(cv, v_ts, v_file, v_line, v_reason)
    _judge(L.CONVERSIONS, v_part, v_day, v_counted, v_reason, v_file, v_line, count, stub)
    has_conv = np.zeros(n_codes, bool)
    has_conv[cv[v_counted]] = True

    # --- labeled samples of D
    # Rows in (time, file, line) order: deterministic whatever order the shuffle delivered them
    # in, and sorted on integers only.
    rows = np.flatnonzero(keep)
    rows = rows[np.lexsort((i_line[rows], i_file[rows], i_ts[rows]))]
    kept = imps.take(pa.array(rows))
    k_codes = ci[rows]
    ts = i_ts[rows]
    click = has_click[k_codes]
    samples = pa.table(
        {
            "impression_id": kept["impression_id"].cast(pa.string()),
            "event_timestamp": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "user_id": kept["user_id"].cast(pa.int64()),
            "item_id": kept["item_id"].cast(pa.int64()),
            "position": kept["position"].cast(pa.int32()),
            "device": kept["device"].cast(pa.string()),
            "hour": pa.array(((ts // US_PER_HOUR) % 24).astype(np.int32)),
            "click": pa.array(click.astype(np.int32)),
            "conversion": pa.array((has_conv[k_codes] & click).astype(np.int32)),
        },
        schema=SAMPLES_SCHEMA,
    )
    stub_table = pa.concat_tables(stubs) if stubs else STUB_SCHEMA.empty_table()
    return ShardResult(samples, stub_table, counts)


def _first_counts(
    codes: np.ndarray, ts: np.ndarray, file: np.ndarray, line: np.ndarray, reason: np.ndarray
) -> np.ndarray:
    """Which events count: among those not dead-lettered yet (empty ``reason``), the first per
    impression code in (time, file, line) order; the later ones become duplicates in ``reason``."""
    candidate = reason == ""
    counted = np.zeros(len(reason), bool)
    idx = np.flatnonzero(candidate)
    counted[idx[first_by_code(codes[idx], ts[idx], file[idx], line[idx])]] = True
    reason[candidate & ~counted] = L.DUPLICATE_EVENT
    return counted


def _judge(source, part, day, counted, reason, files, lines, count, stub) -> None:
    """Turn per-line verdicts into accepted / other_day / dead letters, partition by partition."""
    # dt=D: labels an impression of D -> accepted; passes the rules for one of D-1 -> other_day
    own = part == 0
    count(source, 0, "accepted", "", int((own & counted & (day == 0)).sum()))
    count(source, 0, "other_day", "", int((own & counted & (day == -1)).sum()))
    stub(source, 0, own & ~counted, reason, files, lines)
    # dt=D+1: labels an impression of D -> accepted; anything else is D+1's run to judge
    nxt = part == 1
    count(source, 1, "accepted", "", int((nxt & counted & (day == 0)).sum()))
    count(source, 1, "other_day", "", int((nxt & ~(counted & (day == 0))).sum()))

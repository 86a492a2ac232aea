"""Parse and check raw JSON lines in bulk (Arrow), falling back to one line at a time only where needed.

Hot path: a block of whole lines goes to ``pyarrow.json.read_json`` in one call. A block that
fails (a malformed line, a value of the wrong type, invalid UTF-8) is not re-parsed line by line:
Arrow names the failing row, so the rows before it are parsed in bulk again, the failing line is
judged alone (that is where its reason code comes from), and the rest continues in bulk. Only an
error without a row number falls back to bisection. Checks on values (ranges, timestamps, days)
are vectorised over the parsed columns.

Reason precedence when a line has several problems: malformed_json > missing_field > bad_type >
bad_timestamp > out_of_range (line_too_long is decided before parsing).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from components.ingest.schema import FLOAT, ID, ID_STR, INT, STR, TS, SourceSpec
from taml.core import layout as L
from taml.core import shims

LINE_TOO_LONG = L.LINE_TOO_LONG

_RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
_US_PER_DAY = 86_400_000_000
_SMALL = 8  # pieces this small (with an error Arrow cannot place) are judged line by line
_INT64 = (-(2**63), 2**63)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def day_start_us(day: dt.date) -> int:
    return (
        int((dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) - _EPOCH).total_seconds()) * 1_000_000
    )


@dataclass
class Block:
    """Whole lines of one file: ``data[starts[i]:ends[i]]`` is line ``first_line + i`` (no newline)."""

    data: bytes
    starts: np.ndarray
    ends: np.ndarray
    first_line: int  # 1-based

    @property
    def n(self) -> int:
        return len(self.starts)

    def raw(self, i: int) -> bytes:
        return self.data[int(self.starts[i]) : int(self.ends[i])]


def split_lines(data: bytes, first_line: int, final: bool) -> tuple[Block, bytes]:
    """Cut ``data`` into whole lines; returns the block and the unterminated tail (kept for the next
    chunk unless ``final``, where a non-empty tail is the last line)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(arr == 10)
    cut = int(nl[-1]) + 1 if len(nl) else 0
    tail = data[cut:]
    starts = np.empty(len(nl), dtype=np.int64)
    if len(nl):
        starts[0] = 0
        starts[1:] = nl[:-1] + 1
    ends = nl.astype(np.int64)
    if final and tail:
        starts = np.append(starts, cut)
        ends = np.append(ends, len(data))
        tail = b""
    return Block(data, starts, ends, first_line), tail


@dataclass
class Dead:
    """Dead-lettered lines of a block (parallel lists)."""

    lines: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)

    def add(self, line: int, reason: str, detail: str, raw: bytes) -> None:
        self.lines.append(line)
        self.reasons.append(reason)
        self.details.append(detail)
        self.raws.append(raw)

    def extend(self, other: Dead) -> None:
        self.lines += other.lines
        self.reasons += other.reasons
        self.details += other.details
        self.raws += other.raws

    def __len__(self) -> int:
        return len(self.lines)


@dataclass
class Parsed:
    """Valid rows (typed; ``ts`` as int64 microseconds UTC; ``line`` 1-based) and dead letters."""

    good: pa.Table
    dead: Dead
    n_lines: int


def good_schema(spec: SourceSpec) -> pa.Schema:
    fields = [(n, pa.int64()) if k == TS else (n, spec.raw_schema.field(n).type) for n, k in spec.fields]
    return pa.schema([*fields, ("line", pa.int64())])


# --------------------------------------------------------------------------------------------
# One line (the fallback): the reference semantics the bulk path must agree with


def parse_one(raw: bytes, spec: SourceSpec) -> tuple[dict | None, str, str]:
    """A record with JSON-level checks passed, or (None, reason, detail)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, L.MALFORMED_JSON, f"not valid UTF-8 (byte {e.start})"
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:
        return None, L.MALFORMED_JSON, f"not valid JSON: {str(e)[:80]}"
    if not isinstance(obj, dict):
        return None, L.MALFORMED_JSON, f"not a JSON object ({type(obj).__name__})"
    missing = [f for f in spec.required if obj.get(f) is None]
    if missing:
        return None, L.MISSING_FIELD, "missing " + ", ".join(missing)
    rec: dict = {}
    ts_problem = None
    for name, kind in spec.fields:
        v = obj.get(name)
        rec[name] = v
        if v is None:
            continue
        if kind == TS:
            if not isinstance(v, str):
                ts_problem = f"{name} is a {type(v).__name__}, not an RFC 3339 string"
        elif kind in (ID, INT):
            if type(v) is not int:
                return None, L.BAD_TYPE, f"{name} is a {type(v).__name__}, not an integer"
            if not _INT64[0] <= v < _INT64[1]:
                return None, L.OUT_OF_RANGE, f"{name} does not fit 64 bits"
        elif kind in (STR, ID_STR):
            if not isinstance(v, str):
                return None, L.BAD_TYPE, f"{name} is a {type(v).__name__}, not a string"
        elif kind == FLOAT and (isinstance(v, bool) or not isinstance(v, int | float)):
            return None, L.BAD_TYPE, f"{name} is a {type(v).__name__}, not a number"
        elif kind == FLOAT and isinstance(v, int) and not _INT64[0] <= v < _INT64[1]:
            return None, L.OUT_OF_RANGE, f"{name} does not fit 64 bits"
    if ts_problem:
        return None, L.BAD_TIMESTAMP, ts_problem
    return rec, "", ""


# --------------------------------------------------------------------------------------------
# A block


def _halve(a: int, b: int, work: list[tuple[int, int]], one_by_one: list[int]) -> None:
    """Lines [a, b) hold an error Arrow cannot place: a small piece is judged line by line, a
    larger one is cut in two for the next round."""
    if b - a <= _SMALL:
        one_by_one.extend(range(a, b))
    else:
        mid = (a + b) // 2
        work += [(a, mid), (mid, b)]


def _read_json(buf, schema: pa.Schema) -> pa.Table:
    return pj.read_json(
        pa.py_buffer(buf),
        read_options=pj.ReadOptions(use_threads=False, block_size=max(len(buf) + 1, 1 << 16)),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )


def too_long_detail(length: int, max_line_bytes: int, kept: int) -> str:
    return f"{length} bytes > {max_line_bytes}; the first {kept} bytes are kept"


def parse_block(block: Block, spec: SourceSpec, day: dt.date, max_line_bytes: int, keep_bytes: int) -> Parsed:
    """Classify every line of ``block``: typed valid rows, or a dead letter with its reason
    (a too-long line keeps only its first ``keep_bytes`` bytes)."""
    data, starts, ends, n = block.data, block.starts, block.ends, block.n
    dead = Dead()
    schema = spec.raw_schema
    if n == 0:
        return Parsed(good_schema(spec).empty_table(), dead, 0)
    arr = np.frombuffer(data, dtype=np.uint8)
    mv = memoryview(data)
    lens = ends - starts
    too_long = lens > max_line_bytes
    last = np.clip(ends - 1, 0, max(len(arr) - 1, 0))
    cr = (lens > 0) & (arr[last] == 13) if len(arr) else np.zeros(n, bool)
    core_end = ends - cr
    first_b = arr[np.clip(starts, 0, max(len(arr) - 1, 0))] if len(arr) else np.zeros(n, np.uint8)
    last_b = arr[np.clip(core_end - 1, 0, max(len(arr) - 1, 0))] if len(arr) else np.zeros(n, np.uint8)
    # Only lines shaped like one object go to the bulk reader, so one line is exactly one row
    # (a blank line would be skipped and "{}{}" split in two, shifting every later row).
    bulk_ok = (core_end - starts >= 2) & (first_b == ord("{")) & (last_b == ord("}")) & ~too_long

    pieces: list[tuple[np.ndarray, pa.Table]] = []
    one_by_one: list[int] = [int(i) for i in np.flatnonzero(~bulk_ok & ~too_long)]
    for i in np.flatnonzero(too_long):
        lo = int(starts[i])
        dead.add(
            block.first_line + int(i),
            LINE_TOO_LONG,
            too_long_detail(int(lens[i]), max_line_bytes, min(keep_bytes, int(lens[i]))),
            data[lo : lo + min(keep_bytes, int(lens[i]))],
        )

    # Runs of bulk-parsable lines. First pass per run: find its bad lines one failed call each
    # (Arrow names the row), blank them in a private copy of the block ("{}" padded to the same
    # length, so offsets hold), then parse the whole run in one call and drop the blanked rows.
    # What that cannot settle (an error without a row number) goes to the bisecting second pass.
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bulk_ok.astype(np.int8), [0]])))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    work: list[tuple[int, int]] = []
    scratch: bytearray | None = None
    arr_now = arr  # the bytes as currently blanked

    def blank(k: int) -> None:
        nonlocal scratch, arr_now
        if scratch is None:
            scratch = bytearray(data)
            arr_now = np.frombuffer(scratch, dtype=np.uint8)
        lo, hi = int(starts[k]), int(core_end[k])
        scratch[lo:hi] = b"{}" + b" " * (hi - lo - 2)
        one_by_one.append(k)

    for a, b in runs:
        blanks: list[int] = []
        pos, end, table = a, b, None
        while pos < end:
            buf = memoryview(scratch) if scratch is not None else mv
            # A failed call stops at its error (~0.2 ms + the rows before it), so searching the
            # rest of the run each time costs about one parse of the run in all.
            stop = end
            lo, hi = int(starts[pos]), int(ends[stop - 1])
            if arr_now[lo:hi].max(initial=0) >= 128:
                try:
                    str(buf[lo:hi], "utf-8")
                except UnicodeDecodeError as e:
                    k = int(np.searchsorted(starts, lo + e.start, side="right")) - 1
                    blank(k)
                    blanks.append(k)
                    continue
            try:
                t = _read_json(buf[lo:hi], schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                row = shims.arrow_json_error_row(e)
                if row is not None and row < stop - pos:
                    k = pos + row
                    blank(k)
                    blanks.append(k)
                    pos = k + 1
                    continue
                work.append((pos, end))  # no row named: the second pass bisects it
                end = pos
                break
            if pos == a and stop == end and t.num_rows == end - a:
                table = t  # clean from the start: this call's rows are the run's rows
                break
            pos = stop
        if end <= a:
            continue
        if table is None:
            buf = memoryview(scratch) if scratch is not None else mv
            try:
                table = _read_json(buf[int(starts[a]) : int(ends[end - 1])], schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                table = None
            if table is None or table.num_rows != end - a:
                # Arrow named a wrong row somewhere: settle this run the slow way instead.
                one_by_one[:] = [k for k in one_by_one if not a <= k < end]
                work.append((a, end))
                continue
        keep = np.ones(end - a, bool)
        keep[np.asarray([k - a for k in blanks if k < end], dtype=np.int64)] = False
        idx = np.arange(a, end, dtype=np.int64)
        if not keep.all():
            table = table.filter(pa.array(keep))
            idx = idx[keep]
        pieces.append((idx, table))

    # Second pass (rare): bisection on the original bytes.
    while work:
        a, b = work.pop()
        if a >= b:
            continue
        lo, hi = int(starts[a]), int(ends[b - 1])
        seg = mv[lo:hi]
        if arr[lo:hi].max(initial=0) >= 128:
            try:
                str(seg, "utf-8")
            except UnicodeDecodeError as e:
                k = int(np.searchsorted(starts, lo + e.start, side="right")) - 1
                one_by_one.append(k)
                work += [(a, k), (k + 1, b)]
                continue
        try:
            t = _read_json(seg, schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            row = shims.arrow_json_error_row(e)
            if row is not None and row < b - a:
                k = a + row
                one_by_one.append(k)
                work += [(a, k), (k + 1, b)]
            else:
                _halve(a, b, work, one_by_one)
            continue
        if t.num_rows != b - a:  # cannot happen given the shape filter; never trust it silently
            _halve(a, b, work, one_by_one)
            continue
        pieces.append((np.arange(a, b, dtype=np.int64), t))

    tables: list[pa.Table] = []
    idx_parts: list[np.ndarray] = []
    for idx, t in pieces:
        tables.append(t.select(schema.names).cast(schema))
        idx_parts.append(idx)
    if one_by_one:
        recs, rec_idx = [], []
        for i in sorted(set(one_by_one)):
            rec, reason, detail = parse_one(block.raw(i), spec)
            if rec is None:
                dead.add(block.first_line + i, reason, detail, block.raw(i))
            else:
                recs.append(rec)
                rec_idx.append(i)
        if recs:
            tables.append(pa.Table.from_pylist(recs, schema=schema))
            idx_parts.append(np.asarray(rec_idx, dtype=np.int64))
    if not tables:
        return Parsed(good_schema(spec).empty_table(), dead, n)
    table = pa.concat_tables(tables)
    idx = np.concatenate(idx_parts)
    good, vdead = check_values(table, idx, spec, day)
    for i, reason, detail in vdead:
        dead.add(block.first_line + i, reason, detail, block.raw(i))
    lines = pa.array(good["_idx"].to_numpy() + block.first_line, pa.int64())
    good = good.drop_columns(["_idx"]).append_column("line", lines)
    if len(tables) > 1:  # pieces were parsed out of order; keep line order (deterministic output)
        good = good.sort_by("line")
    return Parsed(good, dead, n)


# --------------------------------------------------------------------------------------------
# Vectorised value checks


def parse_timestamps(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """RFC 3339 strings -> int64 microseconds UTC; unparseable -> INT64 min (a sentinel)."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    sentinel = np.iinfo(np.int64).min
    if len(values) == 0:
        return np.empty(0, np.int64)
    shaped = pc.fill_null(pc.match_substring_regex(values, _RFC3339), False)
    cand = pc.if_else(shaped, values, pa.scalar(None, pa.string()))
    try:
        ts = pc.cast(cand, pa.timestamp("ns", tz="UTC"))
        out = pc.cast(ts, pa.timestamp("us", tz="UTC"), safe=False)
        us = out.cast(pa.int64()).to_numpy(zero_copy_only=False)
        mask = pc.is_null(out).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # A well-shaped but impossible value (hour 25, year 0001) fails the whole cast: judge
        # these one by one (rare).
        us = np.zeros(len(values), np.int64)
        mask = np.ones(len(values), bool)
        for i, v in enumerate(cand.to_pylist()):
            if v is None:
                continue
            try:
                s = pa.array([v]).cast(pa.timestamp("ns", tz="UTC"))
                us[i] = pc.cast(s, pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64())[0].as_py()
                mask[i] = False
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    us = np.where(mask, sentinel, us)
    return us


def check_values(
    table: pa.Table, idx: np.ndarray, spec: SourceSpec, day: dt.date
) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """Rows passing every value check (``ts`` as int64 us, ``_idx`` = line index in the block) and
    the (line index, reason, detail) of the others."""
    n = table.num_rows
    # Verdicts as small integer codes (0 = valid) so marking stays vectorised.
    verdict = np.zeros(n, dtype=np.int16)
    verdicts: list[tuple[str, str]] = [("", "")]

    def mark(mask: np.ndarray, code: str, why: str) -> None:
        if not mask.any():
            return
        verdicts.append((code, why))
        verdict[mask & (verdict == 0)] = len(verdicts) - 1

    def col(name: str) -> pa.Array:
        c = table[name]
        return c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c

    for name in spec.required:
        mark(pc.is_null(col(name)).to_numpy(zero_copy_only=False), L.MISSING_FIELD, f"missing {name}")
    ts = parse_timestamps(col("ts"))
    bad_ts = ts == np.iinfo(np.int64).min
    mark(
        bad_ts & ~pc.is_null(col("ts")).to_numpy(zero_copy_only=False), L.BAD_TIMESTAMP, "ts is not RFC 3339"
    )
    if spec.ts_in_day:
        lo = day_start_us(day)
        mark(
            ~bad_ts & ((ts < lo) | (ts >= lo + _US_PER_DAY)), L.BAD_TIMESTAMP, f"ts outside {day.isoformat()}"
        )
    for name, kind in spec.fields:
        c = col(name)
        if kind == ID:
            mark(
                pc.fill_null(pc.less(c, 0), False).to_numpy(zero_copy_only=False),
                L.OUT_OF_RANGE,
                f"{name} < 0",
            )
        elif kind == ID_STR:
            mark(
                pc.fill_null(pc.equal(pc.utf8_length(c), 0), False).to_numpy(zero_copy_only=False),
                L.OUT_OF_RANGE,
                f"{name} is empty",
            )
        elif kind == FLOAT:
            v = pc.fill_null(c, 0.0).to_numpy(zero_copy_only=False)
            mark(~np.isfinite(v) | (v < 0), L.OUT_OF_RANGE, f"{name} < 0 or not finite")
    if spec.name == L.IMPRESSIONS:
        pos = pc.fill_null(col("position"), L.POSITION_MIN).to_numpy(zero_copy_only=False)
        mark(
            (pos < L.POSITION_MIN) | (pos > L.POSITION_MAX),
            L.OUT_OF_RANGE,
            f"position not in {L.POSITION_MIN}..{L.POSITION_MAX}",
        )
        dev_ok = pc.fill_null(pc.is_in(col("device"), value_set=pa.array(L.DEVICES)), True).to_numpy(
            zero_copy_only=False
        )
        mark(~dev_ok, L.OUT_OF_RANGE, f"device not one of {', '.join(L.DEVICES)}")

    ok = verdict == 0
    good = table.set_column(table.schema.get_field_index("ts"), "ts", pa.array(ts, pa.int64()))
    good = good.append_column("_idx", pa.array(idx, pa.int64()))
    if not ok.all():
        good = good.filter(pa.array(ok))
    bad = [(int(idx[i]), *verdicts[verdict[i]]) for i in np.flatnonzero(~ok)]
    return good, bad

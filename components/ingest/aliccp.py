"""Ali-CCP (the paper's public data set) -> the same labeled-sample layout.

Files: ``sample_skeleton_*.csv`` lines ``sample_id,click,conversion,common_feature_index,
feature_num,feature_list`` and ``common_features_*.csv`` lines ``common_feature_index,
feature_num,feature_list``; a feature list is entries joined by \\x01, each
``field\\x02id\\x03value``. The 18 standard fields are kept as inline categorical int64 columns
``f_<field>`` (the feature id; the \\x03 value, a weight of 1.0 for these fields, is dropped).
A field that appears more than once in a line keeps its FIRST occurrence. The user-side fields
come from the common features row of the sample's index, the others from the skeleton line
(a field present in both takes the skeleton's). ``user_id`` = f_101, ``item_id`` = f_205;
rows carry no time: ``event_timestamp`` is 00:00 UTC of the configured date (so hour = 0),
``position`` and ``device`` are null.

Dead letters: a line without the format (column count, non-integer labels or ids, an entry
without \\x02/\\x03, feature_num != entries) is ``malformed_line``; conversion=1 with click=0
is ``conversion_without_click``; a skeleton line whose common_feature_index has no row is
``missing_field``; a repeated common_feature_index row after the first is ``duplicate_event``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.ingest.attribute import STUB_SCHEMA, first_per_key
from components.ingest.errors import BalanceError, CorruptFileError, MissingInputError
from components.ingest.files import SkippedFile
from components.ingest.parse import Dead, day_start_us, too_long_detail
from components.ingest.pipeline import FileTask, Plan, ResolveRaw, WriteTable, _dead_table, count_key
from components.ingest.readers import iter_blocks
from components.ingest.run import (
    IngestResult,
    _abs,
    discard,
    ensure_nonempty,
    final_dirs,
    publish,
    run_pipeline,
)
from components.ingest.schema import DEAD_LETTER_SCHEMA, SAMPLES_SCHEMA
from components.ingest.splitter import LongLine
from components.ingest.tables import from_ipc, split_by_shard, string_shard, to_ipc
from taml.core import layout as L
from taml.core import storage
from taml.core.config import Config

log = logging.getLogger(__name__)

SKELETON = "aliccp_skeleton"
COMMON = "aliccp_common_features"
USER_FIELDS = ("101", "121", "122", "124", "125", "126", "127", "128", "129")
ITEM_FIELDS = ("205", "206", "207", "216", "508", "509", "702", "853", "301")
FIELDS = USER_FIELDS + ITEM_FIELDS
_INT = rb"^[0-9]{1,18}$"

SAMPLES_ALICCP_SCHEMA = pa.schema(list(SAMPLES_SCHEMA) + [(f"f_{f}", pa.int64()) for f in FIELDS])


def _col(parts: pa.Array, i: int) -> pa.Array:
    return pc.list_element(parts, i)


def _is_int(a: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.match_substring_regex(a, _INT), False).to_numpy(zero_copy_only=False)


def _to_int(a: pa.Array, ok: np.ndarray) -> pa.Array:
    safe = pc.if_else(pa.array(ok), a, pa.scalar(b"0", pa.binary()))
    return safe.cast(pa.string()).cast(pa.int64())


def parse_features(
    flist: pa.Array, fields: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, dict[str, pa.Array]]:
    """(entry counts, well-formed mask, {field: first id or null}) for binary feature lists."""
    n = len(flist)
    entries = pc.split_pattern(flist, b"\x01")
    counts = pc.list_value_length(entries).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(entries)
    parent = pc.list_parent_indices(entries).to_numpy(zero_copy_only=False)
    # One regex pass per entry: field before \x02, an integer id before \x03 (null: malformed).
    parts = pc.extract_regex(flat, r"^(?P<field>[^\x02]*)\x02(?P<id>[0-9]{1,18})\x03")
    ok_e = pc.is_valid(parts).to_numpy(zero_copy_only=False)
    field = pc.struct_field(parts, [0])
    ids = pc.struct_field(parts, [1])
    bad_rows = np.unique(parent[~ok_e])
    well = np.ones(n, bool)
    well[bad_rows] = False
    id_vals = pc.fill_null(ids.cast(pa.string()).cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    # Which wanted field each entry is (-1: not kept), by hash lookup in Arrow, not Python strings.
    wanted = pa.array([f.encode() for f in fields], pa.binary())
    which = pc.fill_null(pc.index_in(field, value_set=wanted), -1).to_numpy(zero_copy_only=False)
    out = {}
    for j, f in enumerate(fields):
        m = (which == j) & ok_e
        rows = parent[m]
        vals = id_vals[m]
        first_rows, first_at = np.unique(rows, return_index=True)  # rows ascend: first occurrence
        col = np.zeros(n, np.int64)
        valid = np.zeros(n, bool)
        col[first_rows] = vals[first_at]
        valid[first_rows] = True
        out[f] = pa.array(col, mask=~valid)
    return counts, well, out


def parse_aliccp_block(
    block, kind: str, rank: int, max_line_bytes: int, keep_bytes: int
) -> tuple[pa.Table, Dead]:
    n = block.n
    dead = Dead()
    if n == 0:
        return None, dead
    # Zero-copy view of the lines: consecutive lines are contiguous in the block, newline
    # included, so the block's bytes and line starts are already a binary array's buffers.
    data = block.data
    if int(block.ends[-1]) == len(data):  # the file's last line had no newline
        data = data + b"\n"
    offsets = np.append(block.starts, block.ends[-1] + 1).astype(np.int64)
    lines = pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    lines = pc.binary_slice(lines, 0, -1).cast(pa.binary())
    ncols = 6 if kind == SKELETON else 3
    parts = pc.split_pattern(lines, b",", max_splits=ncols - 1)
    ok = pc.list_value_length(parts).to_numpy(zero_copy_only=False) == ncols
    filled = pc.if_else(pa.array(ok), parts, pa.scalar([b""] * ncols, parts.type))
    cols = [_col(filled, i) for i in range(ncols)]
    if kind == SKELETON:
        sid, click, conv, cfi, fnum, flist = cols
        ok &= pc.greater(pc.binary_length(sid), 0).to_numpy(zero_copy_only=False)
        ok &= pc.is_in(click, value_set=pa.array([b"0", b"1"])).to_numpy(zero_copy_only=False)
        ok &= pc.is_in(conv, value_set=pa.array([b"0", b"1"])).to_numpy(zero_copy_only=False)
        fields = ITEM_FIELDS + USER_FIELDS
    else:
        cfi, fnum, flist = cols
        fields = USER_FIELDS
    ok &= pc.greater(pc.binary_length(cfi), 0).to_numpy(zero_copy_only=False)
    ok &= _is_int(fnum)
    counts, well, feats = parse_features(flist, fields)
    ok &= well & (counts == _to_int(fnum, _is_int(fnum)).to_numpy(zero_copy_only=False))
    reason = np.where(ok, "", L.MALFORMED_LINE).astype(object)
    if kind == SKELETON:
        c = click.to_numpy(zero_copy_only=False) == b"1"
        v = conv.to_numpy(zero_copy_only=False) == b"1"
        reason[ok & v & ~c] = L.CONVERSION_WITHOUT_CLICK
    lens = block.ends - block.starts
    reason[lens > max_line_bytes] = L.LINE_TOO_LONG
    for i in np.flatnonzero(reason != ""):
        raw = block.raw(int(i))
        if reason[i] == L.LINE_TOO_LONG:
            why, raw = too_long_detail(len(raw), max_line_bytes, min(keep_bytes, len(raw))), raw[:keep_bytes]
        elif reason[i] == L.MALFORMED_LINE:
            why = "does not match the Ali-CCP line format"
        else:
            why = "conversion=1 with click=0"
        dead.add(block.first_line + int(i), str(reason[i]), why, raw)
    keep = pa.array(reason == "")
    data = {"cfi": cfi.cast(pa.string()), **{f"f_{f}": feats[f] for f in fields}}
    if kind == SKELETON:
        data["impression_id"] = sid.cast(pa.string())
        data["click"] = pa.array(c.astype(np.int32))
        data["conversion"] = pa.array(v.astype(np.int32))
    data["file"] = pa.array(np.full(n, rank, np.int32))
    data["line"] = pa.array(np.arange(block.first_line, block.first_line + n, dtype=np.int64))
    return pa.table(data).filter(keep), dead


class ParseAliccpFile(beam.DoFn):
    def __init__(self, plan: Plan):
        self.plan = plan

    def process(self, rank: int):
        task = self.plan.files[rank]
        kind = task.source
        plan = self.plan
        try:
            yield from self._parse(task, rank, kind, plan)
        except SkippedFile as e:  # a named input, not a partition listing: stop, naming it
            raise CorruptFileError(f"Ali-CCP {kind} file {e}") from e

    def _parse(self, task, rank, kind, plan):
        n = 0
        dead = Dead()
        goods = []
        for block in iter_blocks(task.path, plan.block_bytes, plan.max_line_bytes, plan.keep_bytes):
            if isinstance(block, LongLine):
                n += 1
                detail = too_long_detail(block.length, plan.max_line_bytes, len(block.prefix))
                dead.add(block.line, L.LINE_TOO_LONG, detail, block.prefix)
                continue
            n += block.n
            good, d = parse_aliccp_block(block, kind, rank, plan.max_line_bytes, plan.keep_bytes)
            dead.extend(d)
            if good is not None and good.num_rows:
                goods.append(good)
        yield beam.pvalue.TaggedOutput("counts", (count_key(kind, 0, "read"), n))
        for reason in set(dead.reasons):
            yield beam.pvalue.TaggedOutput(
                "counts", (count_key(kind, 0, "dead", reason), dead.reasons.count(reason))
            )
        if len(dead):
            yield beam.pvalue.TaggedOutput(
                "dead", (f"parse-{rank:05d}", to_ipc(_dead_table(task, self.plan.day, dead)))
            )
        if goods:
            good = pa.concat_tables(goods)
            for shard, part in split_by_shard(good, string_shard(good["cfi"], self.plan.shards)):
                yield (shard, (kind, to_ipc(part)))


class JoinAliccpShard(beam.DoFn):
    def __init__(self, plan: Plan):
        self.plan = plan

    def process(self, element):
        shard, items = element
        tables = {SKELETON: [], COMMON: []}
        for kind, data in items:
            tables[kind].append(from_ipc(data))
        stubs = []

        def stub(t: pa.Table, source: str, reason: str, detail: str):
            if t.num_rows:
                yield beam.pvalue.TaggedOutput("counts", (count_key(source, 0, "dead", reason), t.num_rows))
                stubs.append(
                    pa.table(
                        {
                            "source": pa.array([source] * t.num_rows, pa.string()),
                            "part": pa.array(np.zeros(t.num_rows, np.int8)),
                            "reason": pa.array([reason] * t.num_rows, pa.string()),
                            "detail": pa.array([detail] * t.num_rows, pa.string()),
                            "file": t["file"],
                            "line": t["line"],
                        },
                        schema=STUB_SCHEMA,
                    )
                )

        common = pa.concat_tables(tables[COMMON]) if tables[COMMON] else None
        if common is not None:
            first = first_per_key(common["cfi"], common["file"].to_numpy(), common["line"].to_numpy())
            yield from stub(
                common.filter(pa.array(~first)), COMMON, L.DUPLICATE_EVENT, "common_feature_index seen before"
            )
            common = common.filter(pa.array(first))
            yield beam.pvalue.TaggedOutput("counts", (count_key(COMMON, 0, "accepted"), common.num_rows))
        if tables[SKELETON]:
            sk = pa.concat_tables(tables[SKELETON])
            if common is not None and common.num_rows:
                idx = pc.index_in(sk["cfi"], value_set=common["cfi"])
                found = pc.is_valid(idx).to_numpy(zero_copy_only=False)
                pos = pc.fill_null(idx, 0).to_numpy(zero_copy_only=False)
            else:
                found = np.zeros(sk.num_rows, bool)
                pos = np.zeros(sk.num_rows, np.int64)
            yield from stub(
                sk.filter(pa.array(~found)),
                SKELETON,
                L.MISSING_FIELD,
                "common_feature_index has no common features row",
            )
            sk = sk.filter(pa.array(found))
            pos = pa.array(pos[found])
            yield beam.pvalue.TaggedOutput("counts", (count_key(SKELETON, 0, "accepted"), sk.num_rows))
            n = sk.num_rows
            cols = {}
            for f in FIELDS:
                own = sk[f"f_{f}"].combine_chunks()
                if f in USER_FIELDS and common is not None and common.num_rows:
                    own = pc.coalesce(own, common[f"f_{f}"].combine_chunks().take(pos))
                cols[f"f_{f}"] = own
            ts = day_start_us(self.plan.day)
            samples = pa.table(
                {
                    "impression_id": sk["impression_id"],
                    "event_timestamp": pa.array(np.full(n, ts, np.int64)).cast(pa.timestamp("us", tz="UTC")),
                    "user_id": cols["f_101"],
                    "item_id": cols["f_205"],
                    "position": pa.nulls(n, pa.int32()),
                    "device": pa.nulls(n, pa.string()),
                    "hour": pa.array(np.zeros(n, np.int32)),
                    "click": sk["click"],
                    "conversion": sk["conversion"],
                    **cols,
                },
                schema=SAMPLES_ALICCP_SCHEMA,
            ).sort_by("impression_id")
            if n:
                yield beam.pvalue.TaggedOutput("samples", (f"part-{shard:05d}", to_ipc(samples)))
        if stubs:
            st = pa.concat_tables(stubs)
            files = st["file"].to_numpy()
            for rank in np.unique(files):
                yield (int(rank), to_ipc(st.filter(pa.array(files == rank))))


def build_aliccp(p: beam.Pipeline, plan: Plan) -> None:
    ranks = p | "Files" >> beam.Create(list(range(len(plan.files)))) | "SpreadFiles" >> beam.Reshuffle()
    parsed = ranks | "ParseFiles" >> beam.ParDo(ParseAliccpFile(plan)).with_outputs(
        "counts", "dead", main="keyed"
    )
    joined = (
        parsed.keyed
        | "GroupByShard" >> beam.GroupByKey()
        | "JoinShards" >> beam.ParDo(JoinAliccpShard(plan)).with_outputs("counts", "samples", main="stubs")
    )
    resolved = (
        joined.stubs | "GroupStubsByFile" >> beam.GroupByKey() | "ResolveRaw" >> beam.ParDo(ResolveRaw(plan))
    )
    rows = [
        joined.samples | "WriteSamples" >> beam.ParDo(WriteTable(plan.staging["samples"], "samples")),
        (parsed.dead, resolved)
        | "AllDead" >> beam.Flatten()
        | "WriteDeadLetters" >> beam.ParDo(WriteTable(plan.staging["dead_letter"], "dead_letter")),
    ]
    from components.ingest.pipeline import WriteJson

    (
        [parsed.counts, joined.counts, *rows]
        | "AllCounts" >> beam.Flatten()
        | "SumCounts" >> beam.CombinePerKey(sum)
        | "CollectCounts" >> beam.combiners.ToList()
        | "WriteCounts" >> beam.ParDo(WriteJson(f"{plan.control.rstrip('/')}/counts.json", as_dict=True))
    )


def aliccp_manifest(day: dt.date, counts: dict[str, int]) -> dict:
    sources = {}
    problems = []
    for source in (SKELETON, COMMON):
        dead = {
            k.split("|")[3]: int(v)
            for k, v in sorted(counts.items())
            if k.startswith(f"{source}|0|dead|") and v
        }
        e = {
            "read": int(counts.get(f"{source}|0|read|", 0)),
            "accepted": int(counts.get(f"{source}|0|accepted|", 0)),
            "other_day": 0,
            "dead_letter": dead,
        }
        if e["read"] != e["accepted"] + sum(dead.values()):
            problems.append(
                f"{source}: read {e['read']} != accepted {e['accepted']} + dead-lettered {sum(dead.values())}"
            )
        sources[source] = {L.partition(day): e}
    rows = {k: int(counts.get(f"{k}|0|rows|", 0)) for k in ("samples", "dead_letter")}
    if rows["samples"] != sources[SKELETON][L.partition(day)]["accepted"]:
        problems.append("samples written != skeleton lines accepted")
    if rows["dead_letter"] != sum(sum(s[L.partition(day)]["dead_letter"].values()) for s in sources.values()):
        problems.append("dead letters written != dead-lettered lines counted")
    if problems:
        raise BalanceError(
            f"Ali-CCP ingest for {day}: counts do not add up (nothing published):\n  " + "\n  ".join(problems)
        )
    return {
        "date": day.isoformat(),
        "format": "aliccp",
        "sources": sources,
        "outputs": {k: {"rows": v} for k, v in rows.items()},
    }


def run_aliccp_ingest(
    config: Config,
    date: dt.date | str,
    data_root: str | None,
    skeleton: str | list[str],
    common_features: str | list[str],
    beam_args: list[str] | tuple[str, ...] = (),
) -> IngestResult:
    """Ingest Ali-CCP files as the samples of ``date`` (no users/items/stats are produced)."""
    t0 = time.time()
    day = L.parse_date(date)
    data_root = _abs(data_root or config.paths.data_root)
    tasks = []
    for kind, paths in ((SKELETON, skeleton), (COMMON, common_features)):
        for path in [paths] if isinstance(paths, str) else paths:
            path = _abs(path)
            if not storage.exists(path):
                raise MissingInputError(f"Ali-CCP {kind} file {path} not found")
            tasks.append(FileTask(kind, 0, path))
    finals = {k: v for k, v in final_dirs(data_root, day).items() if k in ("samples", "dead_letter")}
    staging = {k: storage.staging_dir(v) for k, v in finals.items()}
    ic = config.ingest
    plan = Plan(
        day,
        tuple(sorted(tasks, key=lambda t: t.path)),
        (),
        (),
        staging,
        storage.staging_dir(L.manifest_path(data_root, day)),
        ic.shards,
        ic.stats_shards,
        ic.max_line_bytes,
        ic.block_bytes,
        ic.line_too_long_keep_bytes,
        0,
        0,
        0.0,
        0.0,
    )
    try:
        run_pipeline(plan, config, beam_args, builder=build_aliccp)
        counts = storage.read_json(storage.join(plan.control, "counts.json"))
        manifest = aliccp_manifest(day, counts)
        ensure_nonempty(staging["samples"], SAMPLES_ALICCP_SCHEMA)
        ensure_nonempty(staging["dead_letter"], DEAD_LETTER_SCHEMA)
    except BaseException:
        discard(plan)
        raise
    manifest["inputs"] = {
        "skeleton": [t.path for t in tasks if t.source == SKELETON],
        "common_features": [t.path for t in tasks if t.source == COMMON],
    }
    manifest_uri = L.manifest_path(data_root, day)
    publish(staging, finals, manifest_uri, manifest)
    storage.discard_dir(plan.control)
    return IngestResult(day, manifest_uri, manifest, finals, time.time() - t0)

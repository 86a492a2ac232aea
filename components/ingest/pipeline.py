"""The Beam pipeline of one ingest day: parse files, join shards, write outputs and counts.

Every element that carries data is an Arrow table (as IPC bytes): one per file and shard after
parsing, one per shard after the join. The join scales out by hash shard of ``impression_id``;
the stats by shard of the entity id. Every transform writes to staging folders named by the
plan with deterministic file names, so a retried bundle overwrites rather than duplicates.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.ingest import stats as S
from components.ingest.attribute import EVENT_COLS, IMP_COLS, PREV_COLS, STUB_SCHEMA, attribute_shard
from components.ingest.files import SkippedFile
from components.ingest.parse import Dead, day_start_us
from components.ingest.readers import parse_file, pick_lines
from components.ingest.schema import DEAD_LETTER_SCHEMA, PROFILE_SCHEMAS, SPECS
from components.ingest.tables import (
    from_ipc,
    read_parquet,
    split_by_shard,
    string_shard,
    to_ipc,
    write_parquet,
)
from taml.core import layout as L

OWN, NEXT, LOOKUP = 0, 1, -1


@dataclass(frozen=True)
class FileTask:
    source: str
    part: int  # -1: dt=D-1 (lookup only), 0: dt=D (owned), 1: dt=D+1 (labels only)
    path: str


@dataclass(frozen=True)
class Plan:
    """Everything the workers need, fixed by the driver before the run (picklable, small)."""

    day: dt.date
    files: tuple[FileTask, ...]  # sorted by path: the index is the file's rank (its order key)
    prev_samples: tuple[str, ...]  # curated samples of D-1 (replace raw D-1 impressions when set)
    stats_samples: tuple[str, ...]  # curated samples of the window's earlier days
    staging: dict[str, str]  # output -> staging folder (samples, users, items, dead_letter, ...)
    control: str  # staging folder for counts.json
    shards: int
    stats_shards: int
    max_line_bytes: int
    block_bytes: int
    keep_bytes: int  # bytes of a line_too_long line kept in its dead letter
    click_window_us: int
    attribution_window_us: int
    stats_prior_impressions: float
    stats_prior_clicks: float
    parse_resource_hints: tuple[tuple[str, str], ...] = ()  # Beam resource hints of ParseFiles

    def part_day(self, part: int) -> dt.date:
        return self.day + dt.timedelta(days=part)

    @property
    def stats_timestamp_us(self) -> int:
        return day_start_us(self.day + dt.timedelta(days=1))


def count_key(source: str, part: int, kind: str, reason: str = "") -> str:
    return f"{source}|{part}|{kind}|{reason}"


def _dead_table(task: FileTask, day: dt.date, dead: Dead) -> pa.Table:
    order = np.argsort(np.asarray(dead.lines, dtype=np.int64), kind="stable")
    raws = [dead.raws[i] for i in order]
    return pa.table(
        {
            "source": pa.array([task.source] * len(raws), pa.string()),
            "dt": pa.array([day.isoformat()] * len(raws), pa.string()),
            "reason": pa.array([dead.reasons[i] for i in order], pa.string()),
            "detail": pa.array([dead.details[i] for i in order], pa.string()),
            "raw": pa.array(raws, pa.binary()),
            "raw_text": pa.array([r.decode("utf-8", "backslashreplace") for r in raws], pa.string()),
            "file": pa.array([task.path] * len(raws), pa.string()),
            "line_number": pa.array([dead.lines[i] for i in order], pa.int64()),
        },
        schema=DEAD_LETTER_SCHEMA,
    )


class ParseFile(beam.DoFn):
    """One raw file -> counts, dead letters, profile rows, or event rows keyed by shard."""

    def __init__(self, plan: Plan):
        self.plan = plan

    def process(self, rank: int):
        plan = self.plan
        task = plan.files[rank]
        day = plan.part_day(task.part)
        spec = SPECS[task.source]
        try:
            parsed = parse_file(task.path, spec, day, plan.max_line_bytes, plan.block_bytes, plan.keep_bytes)
        except SkippedFile as e:
            # Not JSON Lines at all: no line of it is counted; the manifest lists it and
            # validation fails naming it.
            yield beam.pvalue.TaggedOutput("skipped", (rank, e.reason))
            return
        n_dead = len(parsed.dead)
        if task.part == OWN:
            yield beam.pvalue.TaggedOutput("counts", (count_key(task.source, OWN, "read"), parsed.n_lines))
            for reason in set(parsed.dead.reasons):
                yield beam.pvalue.TaggedOutput(
                    "counts", (count_key(task.source, OWN, "dead", reason), parsed.dead.reasons.count(reason))
                )
            if n_dead:
                yield beam.pvalue.TaggedOutput(
                    "dead", (f"parse-{rank:05d}", to_ipc(_dead_table(task, day, parsed.dead)))
                )
        elif task.part == NEXT:
            yield beam.pvalue.TaggedOutput("counts", (count_key(task.source, NEXT, "read"), parsed.n_lines))
            yield beam.pvalue.TaggedOutput("counts", (count_key(task.source, NEXT, "other_day"), n_dead))

        good = parsed.good
        if task.source in (L.USERS, L.ITEMS):
            if task.part == OWN:
                yield beam.pvalue.TaggedOutput(
                    "counts", (count_key(task.source, OWN, "accepted"), good.num_rows)
                )
                schema = PROFILE_SCHEMAS[task.source]
                table = good.rename_columns(
                    ["event_timestamp" if c == "ts" else c for c in good.column_names]
                )
                table = (
                    table.set_column(
                        1, "event_timestamp", table["event_timestamp"].cast(pa.timestamp("us", tz="UTC"))
                    )
                    .select(schema.names)
                    .cast(schema)
                )
                if table.num_rows:
                    yield beam.pvalue.TaggedOutput(
                        "profile", (task.source, f"part-{rank:05d}", to_ipc(table))
                    )
            return
        if good.num_rows == 0:
            return
        good = good.append_column("file", pa.array(np.full(good.num_rows, rank, np.int32)))
        if task.source == L.IMPRESSIONS:
            kind = "imp" if task.part == OWN else "prev"
            good = good.select(IMP_COLS if kind == "imp" else PREV_COLS)
        else:
            kind = "clk" if task.source == L.CLICKS else "cnv"
            good = good.append_column("part", pa.array(np.full(good.num_rows, task.part, np.int8))).select(
                EVENT_COLS
            )
        for shard, part in split_by_shard(good, string_shard(good["impression_id"], plan.shards)):
            yield (shard, (kind, to_ipc(part)))


class ReadPrevSamples(beam.DoFn):
    """Curated samples of D-1 as the impression lookup (ids and times only)."""

    def __init__(self, plan: Plan):
        self.plan = plan

    def process(self, path: str):
        t = read_parquet(path, ["impression_id", "event_timestamp"])
        n = t.num_rows
        prev = pa.table(
            {
                "impression_id": t["impression_id"].cast(pa.string()),
                "ts": t["event_timestamp"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()),
                "file": pa.array(np.full(n, -1, np.int32)),
                "line": pa.array(np.arange(n, dtype=np.int64)),
            }
        )
        for shard, part in split_by_shard(prev, string_shard(prev["impression_id"], self.plan.shards)):
            yield (shard, ("prev", to_ipc(part)))


# Where a line came from (file index, line number): the tail of every shuffled event table.
_ORIGIN = [("file", pa.int32()), ("line", pa.int64())]
_EMPTY = {
    "imp": pa.schema(
        [("impression_id", pa.string()), ("ts", pa.int64()), ("user_id", pa.int64()), ("item_id", pa.int64())]
        + [("position", pa.int64()), ("device", pa.string()), *_ORIGIN]
    ),
    "prev": pa.schema([("impression_id", pa.string()), ("ts", pa.int64()), *_ORIGIN]),
    "clk": pa.schema([("impression_id", pa.string()), ("ts", pa.int64()), ("part", pa.int8()), *_ORIGIN]),
}
_EMPTY["cnv"] = _EMPTY["clk"]


class JoinShard(beam.DoFn):
    def __init__(self, plan: Plan):
        self.plan = plan

    def process(self, element):
        shard, items = element
        by_kind: dict[str, list[pa.Table]] = defaultdict(list)
        for kind, data in items:
            by_kind[kind].append(from_ipc(data))

        def table(kind: str) -> pa.Table:
            ts = by_kind.get(kind)
            return pa.concat_tables([t.cast(_EMPTY[kind]) for t in ts]) if ts else _EMPTY[kind].empty_table()

        res = attribute_shard(
            table("imp"),
            table("prev"),
            table("clk"),
            table("cnv"),
            self.plan.click_window_us,
            self.plan.attribution_window_us,
        )
        for (source, part, kind, reason), n in res.counts.items():
            yield beam.pvalue.TaggedOutput("counts", (count_key(source, part, kind, reason), n))
        if res.samples.num_rows:
            for label in ("click", "conversion"):
                n = int(pc.sum(res.samples[label]).as_py() or 0)
                yield beam.pvalue.TaggedOutput("counts", (count_key("samples", 0, label), n))
            yield beam.pvalue.TaggedOutput("samples", (f"part-{shard:05d}", to_ipc(res.samples)))
        if res.stubs.num_rows:
            files = res.stubs["file"].to_numpy()
            for rank in np.unique(files):
                yield (int(rank), to_ipc(res.stubs.filter(pa.array(files == rank))))


class ResolveRaw(beam.DoFn):
    """Dead letters decided by the join get their raw line back by re-reading their file."""

    def __init__(self, plan: Plan):
        self.plan = plan

    def process(self, element):
        rank, items = element
        stubs = pa.concat_tables([from_ipc(x).cast(STUB_SCHEMA) for x in items]).sort_by("line")
        task = self.plan.files[rank]
        lines = stubs["line"].to_numpy()
        raw = pick_lines(
            task.path,
            set(lines.tolist()),
            self.plan.block_bytes,
            self.plan.max_line_bytes,
            self.plan.keep_bytes,
        )
        raws = [raw.get(int(x), b"") for x in lines]
        parts = stubs["part"].to_numpy()
        table = pa.table(
            {
                "source": stubs["source"],
                "dt": pa.array([self.plan.part_day(int(p)).isoformat() for p in parts], pa.string()),
                "reason": stubs["reason"],
                "detail": stubs["detail"],
                "raw": pa.array(raws, pa.binary()),
                "raw_text": pa.array([r.decode("utf-8", "backslashreplace") for r in raws], pa.string()),
                "file": pa.array([task.path] * len(raws), pa.string()),
                "line_number": stubs["line"],
            },
            schema=DEAD_LETTER_SCHEMA,
        )
        yield (f"join-{rank:05d}", to_ipc(table))


class WriteTable(beam.DoFn):
    """(name, table) -> ``{folder}/{name}.parquet``; emits a row count for the manifest check."""

    def __init__(self, folder: str, output: str):
        self.folder = folder
        self.output = output

    def process(self, element):
        name, data = element
        table = from_ipc(data)
        write_parquet(f"{self.folder.rstrip('/')}/{name}.parquet", table)
        yield (count_key(self.output, 0, "rows"), table.num_rows)


class PartialStats(beam.DoFn):
    """Samples (of today, or read from a curated file) -> per-entity sums keyed by entity shard."""

    def __init__(self, plan: Plan, from_file: bool):
        self.plan = plan
        self.from_file = from_file

    def process(self, element):
        if self.from_file:
            samples = read_parquet(element, ["user_id", "item_id", "click", "conversion"])
        else:
            samples = from_ipc(element[1])
        for entity in S.ENTITIES:
            sums = S.partial_sums(samples, entity)
            ids = sums[f"{entity}_id"].to_numpy()
            for shard, part in split_by_shard(sums, S.entity_shard(ids, self.plan.stats_shards)):
                yield ((entity, shard), to_ipc(part))


class MergeStats(beam.DoFn):
    def process(self, element):
        (entity, shard), items = element
        sums = S.merge_sums([from_ipc(x) for x in items], entity)
        if entity == "user":
            yield beam.pvalue.TaggedOutput(
                "totals",
                (
                    int(pc.sum(sums["impressions"]).as_py() or 0),
                    int(pc.sum(sums["clicks"]).as_py() or 0),
                    int(pc.sum(sums["conversions"]).as_py() or 0),
                ),
            )
        yield ((entity, shard), to_ipc(sums))


class SumTuples(beam.CombineFn):
    def create_accumulator(self):
        return (0, 0, 0)

    def add_input(self, acc, x):
        return tuple(a + b for a, b in zip(acc, x, strict=True))

    def merge_accumulators(self, accs):
        out = (0, 0, 0)
        for a in accs:
            out = self.add_input(out, a)
        return out

    def extract_output(self, acc):
        return acc


class SmoothStats(beam.DoFn):
    def __init__(self, plan: Plan):
        self.plan = plan

    def process(self, element, totals):
        (entity, shard), data = element
        table = S.smooth(
            from_ipc(data),
            entity,
            self.plan.stats_timestamp_us,
            tuple(totals),
            self.plan.stats_prior_impressions,
            self.plan.stats_prior_clicks,
        )
        out = f"{entity}_stats"
        write_parquet(f"{self.plan.staging[out].rstrip('/')}/part-{shard:05d}.parquet", table)
        yield (count_key(out, 0, "rows"), table.num_rows)


class WriteJson(beam.DoFn):
    """A list of pairs -> one JSON file (the driver reads it after the run)."""

    def __init__(self, path: str, as_dict: bool = False):
        self.path = path
        self.as_dict = as_dict

    def process(self, pairs):
        from apache_beam.io.filesystems import FileSystems

        data = dict(sorted(pairs)) if self.as_dict else sorted(pairs)
        f = FileSystems.create(self.path)
        try:
            f.write(json.dumps(data, indent=1).encode())
        finally:
            f.close()
        yield len(pairs)


def build(p: beam.Pipeline, plan: Plan) -> None:
    """Compose the day's transforms on pipeline ``p``."""
    ranks = p | "Files" >> beam.Create(list(range(len(plan.files)))) | "SpreadFiles" >> beam.Reshuffle()
    parse = beam.ParDo(ParseFile(plan))
    if plan.parse_resource_hints:
        # Also how a portable runner gives this step its own SDK environment (its own workers).
        parse = parse.with_resource_hints(**dict(plan.parse_resource_hints))
    parsed = ranks | "ParseFiles" >> parse.with_outputs("counts", "dead", "profile", "skipped", main="keyed")
    (
        parsed.skipped
        | "CollectSkipped" >> beam.combiners.ToList()
        | "WriteSkipped" >> beam.ParDo(WriteJson(f"{plan.control.rstrip('/')}/skipped.json"))
    )

    keyed = [parsed.keyed]
    if plan.prev_samples:
        keyed.append(
            p
            | "PrevSampleFiles" >> beam.Create(list(plan.prev_samples))
            | "ReadPrevSamples" >> beam.ParDo(ReadPrevSamples(plan))
        )
    joined = (
        keyed
        | "AllKeyed" >> beam.Flatten()
        | "GroupByShard" >> beam.GroupByKey()
        | "JoinShards" >> beam.ParDo(JoinShard(plan)).with_outputs("counts", "samples", main="stubs")
    )
    resolved = (
        joined.stubs | "GroupStubsByFile" >> beam.GroupByKey() | "ResolveRaw" >> beam.ParDo(ResolveRaw(plan))
    )

    row_counts = []
    row_counts.append(
        joined.samples | "WriteSamples" >> beam.ParDo(WriteTable(plan.staging["samples"], "samples"))
    )
    dead = (parsed.dead, resolved) | "AllDead" >> beam.Flatten()
    row_counts.append(
        dead | "WriteDeadLetters" >> beam.ParDo(WriteTable(plan.staging["dead_letter"], "dead_letter"))
    )
    for source in (L.USERS, L.ITEMS):
        row_counts.append(
            parsed.profile
            | f"Only{source.title()}" >> beam.Filter(lambda x, s=source: x[0] == s)
            | f"Name{source.title()}" >> beam.Map(lambda x: (x[1], x[2]))
            | f"Write{source.title()}" >> beam.ParDo(WriteTable(plan.staging[source], source))
        )

    # Stats: today's samples from memory, the window's earlier days from curated files.
    partial = [joined.samples | "PartialStatsToday" >> beam.ParDo(PartialStats(plan, from_file=False))]
    if plan.stats_samples:
        partial.append(
            p
            | "StatsFiles" >> beam.Create(list(plan.stats_samples))
            | "PartialStatsPast" >> beam.ParDo(PartialStats(plan, from_file=True))
        )
    merged = (
        partial
        | "AllPartialStats" >> beam.Flatten()
        | "GroupStats" >> beam.GroupByKey()
        | "MergeStats" >> beam.ParDo(MergeStats()).with_outputs("totals", main="sums")
    )
    totals = merged.totals | "GlobalTotals" >> beam.CombineGlobally(SumTuples())
    row_counts.append(
        merged.sums
        | "SmoothAndWriteStats" >> beam.ParDo(SmoothStats(plan), totals=beam.pvalue.AsSingleton(totals))
    )

    (
        [parsed.counts, joined.counts, *row_counts]
        | "AllCounts" >> beam.Flatten()
        | "SumCounts" >> beam.CombinePerKey(sum)
        | "CollectCounts" >> beam.combiners.ToList()
        | "WriteCounts" >> beam.ParDo(WriteJson(f"{plan.control.rstrip('/')}/counts.json", as_dict=True))
    )

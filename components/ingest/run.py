"""``run_ingest``: plan the day, run the Beam pipeline, check the counts, publish, write the manifest.

Publication order (idempotency): every output is written into a ``_tmp.*`` staging folder
beside its final folder (invisible to readers), the counts are checked, the previous manifest of
D is removed, each folder is swapped in with ``storage.publish_dir`` and the manifest is written
last. A run that dies before publishing leaves the previous outputs and manifest of D as they
were; a manifest present means its day is complete.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from components.ingest.errors import BalanceError, IncompleteLabelsError, IngestError, MissingInputError
from components.ingest.files import Partition, classify, list_all, relative
from components.ingest.pipeline import LOOKUP, NEXT, OWN, FileTask, Plan, build
from components.ingest.schema import DEAD_LETTER_SCHEMA, PROFILE_SCHEMAS, SAMPLES_SCHEMA, stats_schema
from taml.core import layout as L
from taml.core import shims, storage
from taml.core.config import Config
from taml.core.errors import TamlError

log = logging.getLogger(__name__)

OUTPUTS = ("samples", "users", "items", "dead_letter", "user_stats", "item_stats")


@dataclass
class IngestResult:
    date: dt.date
    manifest_path: str
    manifest: dict[str, Any]
    outputs: dict[str, str]  # output name -> published folder
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return int(self.manifest["outputs"]["samples"]["rows"])

    def summary(self) -> dict[str, Any]:
        """A small JSON-able record of the run (for KFP outputs and run records)."""
        out = self.manifest["outputs"]
        return {
            "date": self.date.isoformat(),
            "manifest": self.manifest_path,
            "samples": int(out["samples"]["rows"]),
            "clicks": int(out["samples"].get("clicks", 0)),
            "conversions": int(out["samples"].get("conversions", 0)),
            "dead_letters": int(out["dead_letter"]["rows"]),
            "outputs": {k: v["rows"] for k, v in out.items()},
            "seconds": round(self.seconds, 2),
            "warnings": list(self.warnings),
        }


def final_dirs(data_root: str, day: dt.date) -> dict[str, str]:
    return {
        "samples": L.curated_dir(data_root, "samples", day),
        "users": L.curated_dir(data_root, "users", day),
        "items": L.curated_dir(data_root, "items", day),
        "dead_letter": L.curated_dir(data_root, "dead_letter", day),
        "user_stats": L.stats_dir(data_root, "user", day),
        "item_stats": L.stats_dir(data_root, "item", day),
    }


def output_schema(name: str):
    return {
        "samples": SAMPLES_SCHEMA,
        "users": PROFILE_SCHEMAS[L.USERS],
        "items": PROFILE_SCHEMAS[L.ITEMS],
        "dead_letter": DEAD_LETTER_SCHEMA,
        "user_stats": stats_schema("user"),
        "item_stats": stats_schema("item"),
    }[name]


def _abs(data_root: str) -> str:
    return data_root if storage.is_gcs(data_root) else str(Path(data_root).absolute())


def list_partition(data_root: str, source: str, day: dt.date, marker: str) -> Partition | None:
    """A raw partition's files (data, skipped by name, marker); None when the partition is absent.

    An existing folder with no files is present (and empty): whether it has *landed* is the
    validation's call (its marker, or its volume against D's).
    """
    folder = L.raw_dir(data_root, source, day)
    files = list_all(folder)
    if files is None:
        return None
    return classify(folder, files, marker)


def curated_day_files(data_root: str, day: dt.date) -> list[str] | None:
    """Parquet files of curated samples of a day whose ingest completed (manifest present)."""
    if not storage.exists(L.manifest_path(data_root, day)):
        return None
    return storage.list_files(L.curated_dir(data_root, "samples", day), suffix=".parquet")


def make_plan(config: Config, day: dt.date, data_root: str) -> tuple[Plan, dict[str, Any], list[str]]:
    ic = config.ingest
    one = dt.timedelta(days=1)
    tasks: list[FileTask] = []
    warnings: list[str] = []
    inputs: dict[str, Any] = {"lookups": {}}

    listed: dict[tuple[str, int], Partition] = {}

    def add(source: str, part: int, found: Partition | None) -> None:
        if found is None:
            return
        listed[(source, part)] = found
        tasks.extend(FileTask(source, part, f) for f in found.data)

    def get(source: str, d: dt.date) -> Partition | None:
        return list_partition(data_root, source, d, ic.landing_marker)

    imps = get(L.IMPRESSIONS, day)
    if imps is None:
        raise MissingInputError(
            f"no impressions for {day}: {L.raw_dir(data_root, L.IMPRESSIONS, day)} is absent"
        )
    add(L.IMPRESSIONS, OWN, imps)
    for source in (L.CLICKS, L.CONVERSIONS):
        found = get(source, day)
        if found is None:
            raise MissingInputError(
                f"no {source} partition for {day}: {L.raw_dir(data_root, source, day)} is absent"
            )
        add(source, OWN, found)
        nxt = get(source, day + one)
        if nxt is None:
            raise IncompleteLabelsError(
                f"labels of {day} are incomplete: {L.raw_dir(data_root, source, day + one)} has not landed "
                f"(clicks and conversions of {day}'s impressions land in dt={day} and dt={day + one})"
            )
        add(source, NEXT, nxt)
    missing = []
    for source in (L.USERS, L.ITEMS):
        found = get(source, day)
        if found is None:
            missing.append(L.partition(day))
            warnings.append(f"no {source} partition for {day}: read as empty (no new or changed rows)")
        add(source, OWN, found)

    # D-1: impression ids and times (curated when D-1 was ingested, else raw), and its clicks and
    # conversions (only to know which event of a D-1 impression counted first).
    prev_samples = curated_day_files(data_root, day - one)
    if prev_samples is not None:
        inputs["lookups"]["impressions"] = {L.partition(day - one): "curated"}
    else:
        raw_prev = get(L.IMPRESSIONS, day - one)
        add(L.IMPRESSIONS, LOOKUP, raw_prev)
        inputs["lookups"]["impressions"] = {
            L.partition(day - one): "raw" if raw_prev and raw_prev.data else "none"
        }
    for source in (L.CLICKS, L.CONVERSIONS):
        found = get(source, day - one)
        add(source, LOOKUP, found)
        inputs["lookups"][source] = {L.partition(day - one): "raw" if found and found.data else "none"}

    stats_files: list[str] = []
    stats_days = [day.isoformat()]
    for k in range(1, ic.stats_window_days):
        files = curated_day_files(data_root, day - k * one)
        if files is not None:
            stats_files += files
            stats_days.append((day - k * one).isoformat())
    inputs["stats_days"] = sorted(stats_days)

    tasks.sort(key=lambda t: t.path)
    finals = final_dirs(data_root, day)
    staging = {name: storage.staging_dir(path) for name, path in finals.items()}
    control = storage.staging_dir(L.manifest_path(data_root, day))
    plan = Plan(
        day=day,
        files=tuple(tasks),
        prev_samples=tuple(prev_samples or ()),
        stats_samples=tuple(stats_files),
        staging=staging,
        control=control,
        shards=ic.shards,
        stats_shards=ic.stats_shards,
        max_line_bytes=ic.max_line_bytes,
        block_bytes=ic.block_bytes,
        keep_bytes=ic.line_too_long_keep_bytes,
        parse_resource_hints=tuple(sorted(ic.parse_resource_hints.items())),
        click_window_us=ic.click_window_minutes * 60_000_000,
        attribution_window_us=ic.attribution_window_hours * 3_600_000_000,
        stats_prior_impressions=ic.stats_prior_impressions,
        stats_prior_clicks=ic.stats_prior_clicks,
    )
    inputs["missing_partitions"] = missing
    inputs["files"] = files_listing(plan, listed)
    return plan, inputs, warnings


def files_listing(plan: Plan, listed: dict[tuple[str, int], Partition]) -> dict[str, Any]:
    """``inputs.files``: per source and partition read, the files read, skipped (why) and the marker."""
    out: dict[str, Any] = {}
    for (source, part), found in sorted(listed.items()):
        out.setdefault(source, {})[L.partition(plan.part_day(part))] = {
            "read": [relative(found.folder, f) for f in found.data],
            "skipped": [{"file": f, "reason": why} for f, why in found.skipped],
            "marker": found.marker,
        }
    return out


def add_skipped(plan: Plan, files: dict[str, Any], skipped: list[list]) -> None:
    """Move the files the workers found unreadable from "read" to "skipped" in ``inputs.files``."""
    for rank, reason in skipped:
        task = plan.files[rank]
        part = L.partition(plan.part_day(task.part))
        entry = files[task.source][part]
        rel = task.path.split(f"/{part}/", 1)[-1]
        entry["read"] = [r for r in entry["read"] if r != rel]
        entry["skipped"].append({"file": task.path, "reason": reason})


def pipeline_options(config: Config, beam_args: list[str] | tuple[str, ...] = ()):
    """Beam options from config then the command line; and the runner to use.

    ``FnApiRunner`` (the default) is constructed directly: naming no runner would pick the
    DirectRunner, which first tries to download Prism.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    flags = [*config.ingest.pipeline_options, *beam_args]
    options = PipelineOptions(flags)
    runner_name = options.view_as(StandardOptions).runner or config.ingest.runner
    if runner_name.lower() in ("fnapirunner", "fnapi"):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return options, FnApiRunner()
    options.view_as(StandardOptions).runner = runner_name
    return options, None


def run_pipeline(plan: Plan, config: Config, beam_args, builder=build) -> None:
    import apache_beam as beam

    shims.beam_skip_credential_search()
    options, runner = pipeline_options(config, beam_args)
    try:
        p = (
            beam.Pipeline(runner=runner, options=options)
            if runner is not None
            else beam.Pipeline(options=options)
        )
        builder(p, plan)
        result = p.run()
        result.wait_until_finish()
    except TamlError:
        raise
    except Exception as e:  # Beam wraps worker errors; keep the first line a person can act on
        inner = _taml_cause(e)
        if inner is not None:
            raise type(inner)(str(inner).split(" [while running")[0]) from e
        raise IngestError(f"the ingest pipeline for {plan.day} failed: {e}") from e


def _taml_cause(e: BaseException) -> TamlError | None:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, TamlError):
            return e
        e = e.__cause__ or e.__context__
    return None


def build_manifest(day: dt.date, plan: Plan, counts: dict[str, int], fmt: str = "events") -> dict[str, Any]:
    """The manifest of DESIGN.md from the pipeline's counts; raises BalanceError when they don't add up."""
    sources: dict[str, dict[str, Any]] = {}
    parts = {L.IMPRESSIONS: (0,), L.CLICKS: (0, 1), L.CONVERSIONS: (0, 1), L.USERS: (0,), L.ITEMS: (0,)}
    problems = []
    for source, ps in parts.items():
        for part in ps:
            pday = plan.part_day(part)

            def get(kind: str, reason: str = "", source=source, part=part) -> int:
                return int(counts.get(f"{source}|{part}|{kind}|{reason}", 0))

            dead = {
                k.split("|")[3]: int(v)
                for k, v in sorted(counts.items())
                if k.startswith(f"{source}|{part}|dead|") and v
            }
            entry = {
                "read": get("read"),
                "accepted": get("accepted"),
                "other_day": get("other_day"),
                "dead_letter": dead,
            }
            total = entry["accepted"] + entry["other_day"] + sum(dead.values())
            if total != entry["read"]:
                problems.append(
                    f"{source} {L.partition(pday)}: read {entry['read']} != accepted {entry['accepted']} + "
                    f"other_day {entry['other_day']} + dead-lettered {sum(dead.values())}"
                )
            sources.setdefault(source, {})[L.partition(pday)] = entry
    rows = {name: int(counts.get(f"{name}|0|rows|", 0)) for name in OUTPUTS}
    dead_total = sum(sum(p["dead_letter"].values()) for s in sources.values() for p in s.values())
    if rows["dead_letter"] != dead_total:
        problems.append(
            f"dead letters written {rows['dead_letter']} != dead-lettered lines counted {dead_total}"
        )
    if rows["samples"] != sources[L.IMPRESSIONS][L.partition(day)]["accepted"]:
        problems.append(f"samples written {rows['samples']} != impressions accepted")
    for source in (L.USERS, L.ITEMS):
        if rows[source] != sources[source][L.partition(day)]["accepted"]:
            problems.append(f"{source} rows written {rows[source]} != {source} accepted")
    if problems:
        raise BalanceError(
            f"ingest of {day}: counts do not add up (nothing published):\n  " + "\n  ".join(problems)
        )
    outputs: dict[str, dict[str, int]] = {k: {"rows": v} for k, v in rows.items()}
    outputs["samples"]["clicks"] = int(counts.get("samples|0|click|", 0))
    outputs["samples"]["conversions"] = int(counts.get("samples|0|conversion|", 0))
    return {"date": day.isoformat(), "format": fmt, "sources": sources, "outputs": outputs}


def ensure_nonempty(folder: str, schema) -> None:
    """Give every published folder at least one (possibly empty) parquet file, so readers get the schema."""
    if storage.list_files(folder, suffix=".parquet"):
        return
    fs, path = storage.pyarrow_filesystem(storage.join(folder, "part-00000.parquet"))
    if not storage.is_gcs(folder):
        storage.makedirs(folder)
    pq.write_table(schema.empty_table(), path, filesystem=fs)


def publish(staging: dict[str, str], finals: dict[str, str], manifest_uri: str, manifest: dict) -> None:
    # The old manifest goes first: between here and the new one, D reads as "not complete" (on GCS
    # a folder swap is a copy, not atomic), never as complete with mixed files.
    storage.delete(manifest_uri)
    for name, folder in staging.items():
        storage.publish_dir(folder, finals[name])
    storage.write_json(manifest_uri, manifest)


def discard(plan: Plan) -> None:
    for folder in [*plan.staging.values(), plan.control]:
        storage.discard_dir(folder)


def run_ingest(
    config: Config,
    date: dt.date | str,
    data_root: str | None = None,
    beam_args: list[str] | tuple[str, ...] = (),
) -> IngestResult:
    """Ingest day ``date`` (DESIGN.md "Ingest output"); returns what was published."""
    t0 = time.time()
    day = L.parse_date(date)
    data_root = _abs(data_root or config.paths.data_root)
    if not storage.is_gcs(data_root) and not Path(data_root).is_dir():
        raise MissingInputError(f"data root {data_root} does not exist")
    plan, inputs, warnings = make_plan(config, day, data_root)
    for w in warnings:
        log.warning(w)
    log.info(
        "ingest %s: %d raw files, %d curated lookup files, stats over %s",
        day,
        len(plan.files),
        len(plan.prev_samples),
        ", ".join(inputs["stats_days"]),
    )
    finals = final_dirs(data_root, day)
    try:
        run_pipeline(plan, config, beam_args)
        counts = storage.read_json(storage.join(plan.control, "counts.json"))
        add_skipped(plan, inputs["files"], storage.read_json(storage.join(plan.control, "skipped.json")))
        manifest = build_manifest(day, plan, counts)
        for name, folder in plan.staging.items():
            ensure_nonempty(folder, output_schema(name))
    except BaseException:
        discard(plan)
        raise
    ic = config.ingest
    manifest["inputs"] = inputs
    manifest["config"] = {
        "click_window_minutes": ic.click_window_minutes,
        "attribution_window_hours": ic.attribution_window_hours,
        "stats_window_days": ic.stats_window_days,
        "stats_prior_impressions": ic.stats_prior_impressions,
        "stats_prior_clicks": ic.stats_prior_clicks,
        "max_line_bytes": ic.max_line_bytes,
        "line_too_long_keep_bytes": ic.line_too_long_keep_bytes,
        "landing_marker": ic.landing_marker,
    }
    manifest["created_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    manifest_uri = L.manifest_path(data_root, day)
    publish(plan.staging, finals, manifest_uri, manifest)
    storage.discard_dir(plan.control)
    secs = time.time() - t0
    log.info(
        "ingest %s: %d samples, %d dead letters in %.1f s",
        day,
        manifest["outputs"]["samples"]["rows"],
        manifest["outputs"]["dead_letter"]["rows"],
        secs,
    )
    return IngestResult(day, manifest_uri, manifest, finals, secs, warnings)


__all__ = ["IngestResult", "run_ingest", "make_plan", "build_manifest", "pipeline_options"]

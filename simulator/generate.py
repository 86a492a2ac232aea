"""``simulate``: write raw event logs, ground truth and the corruption manifest for a range of days.

Day D is generated in fixed-size chunks, each from its own seeded generator, so memory stays
bounded and D's files are identical whatever range or call produced them. Clicks and
conversions of D's impressions that land after midnight go to D+1's partition in a file named
for D (``part-YYYYMMDD-CCCCC``), so D+1's own run adds its file beside it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simulator import corrupt as C
from simulator.density import size_world
from simulator.impressions import MS_PER_DAY, calibrate, draw_impressions, outcomes
from simulator.jsonl import (
    click_lines,
    conversion_lines,
    impression_lines,
    record_lines,
    rfc3339,
    write_lines,
)
from simulator.profiles import item_rows, user_rows
from simulator.scenarios import Scenario
from simulator.world import DEVICES, STREAM_CHUNK, STREAM_CORRUPT, STREAM_PROFILE, World, rng_for
from taml.core import layout as L
from taml.core import storage
from taml.core.config import SimulatorConfig
from taml.core.errors import UsageError

log = logging.getLogger(__name__)


@dataclass
class DaySummary:
    day: dt.date
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0  # reported (what the logs show)
    true_conversions: int = 0
    new_items: int = 0
    corrupted: int = 0
    seconds: float = 0.0

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else float("nan")

    @property
    def cvr(self) -> float:
        return self.conversions / self.clicks if self.clicks else float("nan")


@dataclass
class SimulationSummary:
    data_root: str
    days: list[DaySummary] = field(default_factory=list)
    world: SimulatorConfig | None = None  # the sized configuration the world was built from


def validate_arguments(
    start: dt.date,
    days: int,
    impressions_per_day: int,
    seed: int,
    corrupt_rate: float,
    scenario: Scenario,
    config: SimulatorConfig,
) -> None:
    if days <= 0:
        raise UsageError(f"--days must be a positive number of days (got {days})")
    if impressions_per_day <= 0:
        raise UsageError(f"--impressions-per-day must be positive (got {impressions_per_day})")
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer (got {seed})")
    if not 0.0 <= corrupt_rate <= 0.5:
        raise UsageError(f"--corrupt-rate must be between 0 and 0.5 (got {corrupt_rate})")
    if start < config.epoch:
        raise UsageError(f"--start {start} is before the simulator epoch {config.epoch} (simulator.epoch)")
    if scenario.start_index is not None and scenario.start_index < 0:
        raise UsageError(f"--scenario-day is before the simulator epoch {config.epoch}")


def simulate(
    data_root: str,
    start: dt.date,
    days: int,
    impressions_per_day: int,
    seed: int,
    scenario: str = "clean",
    scenario_day: dt.date | None = None,
    corrupt_rate: float = 0.0,
    config: SimulatorConfig | None = None,
) -> SimulationSummary:
    config = config or SimulatorConfig()
    start = L.parse_date(start)
    scenario_day = L.parse_date(scenario_day) if scenario_day is not None else None
    if scenario_day is not None and scenario == "clean":
        raise UsageError("--scenario-day given without --scenario")
    scen = Scenario(scenario, None if scenario_day is None else (scenario_day - config.epoch).days)
    validate_arguments(start, days, impressions_per_day, seed, corrupt_rate, scen, config)

    config = size_world(config, impressions_per_day)
    log.info(
        "world (%s density over %d days): %d users, %d base items, %d new items a day, CTR %.4f, CVR %.4f",
        config.density,
        config.density_days,
        config.users,
        config.base_items,
        config.new_items_per_day,
        config.target_ctr,
        config.target_cvr,
    )
    world = calibrate(World(config, seed, scen))
    summary = SimulationSummary(data_root, world=config)
    for i, day in enumerate(L.day_range(start, days)):
        t0 = time.perf_counter()
        s = _simulate_day(world, data_root, day, impressions_per_day, corrupt_rate, snapshot=(i == 0))
        s.seconds = time.perf_counter() - t0
        log.info(
            "simulated %s: %d impressions, CTR %.4f, CVR %.4f, %d corrupt lines (%.1f s)",
            day,
            s.impressions,
            s.ctr,
            s.cvr,
            s.corrupted,
            s.seconds,
        )
        summary.days.append(s)
    write_corruption_manifest(data_root)
    return summary


def _simulate_day(
    world: World, data_root: str, day: dt.date, n_impressions: int, corrupt_rate: float, snapshot: bool
) -> DaySummary:
    cfg = world.cfg
    di = world.day_index(day)
    items = world.items_alive(di)
    tag = day.strftime("%Y%m%d")
    ext = ".jsonl.gz" if cfg.gzip else ".jsonl"
    next_day = day + dt.timedelta(days=1)
    summary = DaySummary(day, new_items=int((items.born == di).sum()))
    counts: Counter = Counter()

    n_chunks = -(-n_impressions // cfg.chunk_size)
    for chunk in range(n_chunks):
        lo = chunk * cfg.chunk_size
        n = min(cfg.chunk_size, n_impressions - lo)
        rng = rng_for(world.seed, STREAM_CHUNK, di, chunk)
        draw = draw_impressions(world, items, di, n, rng)
        out = outcomes(world, items, draw, di, rng)

        ids = [f"{tag}{k:09d}" for k in range(lo, lo + n)]
        imp_ts = rfc3339(day, draw.ts_ms)
        imp = impression_lines(
            ids, imp_ts, draw.users, items.item_id[draw.item_rows], draw.position, DEVICES[draw.device]
        )

        bad = C.corrupt_chunk(
            rng_for(world.seed, STREAM_CORRUPT, di, chunk),
            day,
            f"{tag}-{chunk:05d}",
            ids,
            imp,
            draw,
            out,
            corrupt_rate,
            cfg.click_window_minutes,
            cfg.attribution_window_hours,
        )
        counts.update(bad.counts)

        part = f"part-{tag}-{chunk:05d}{ext}"
        write_lines(
            storage.join(L.raw_dir(data_root, L.IMPRESSIONS, day), part),
            imp + bad.lines.get(L.IMPRESSIONS, []),
            cfg.gzip,
            cfg.gzip_level,
        )

        clicked = np.flatnonzero(out.click)
        converted = np.flatnonzero(out.reported)
        for target, on_day in ((day, True), (next_day, False)):
            c_rows = clicked[(out.click_ms[clicked] < MS_PER_DAY) == on_day]
            v_rows = converted[(out.conv_ms[converted] < MS_PER_DAY) == on_day]
            click_out = click_lines([ids[i] for i in c_rows], rfc3339(day, out.click_ms[c_rows]))
            conv_out = conversion_lines(
                [ids[i] for i in v_rows], rfc3339(day, out.conv_ms[v_rows]), out.value[v_rows]
            )
            if on_day:
                click_out += bad.lines.get(L.CLICKS, [])
                conv_out += bad.lines.get(L.CONVERSIONS, [])
            else:
                conv_out += bad.next_day_conversions
            write_lines(
                storage.join(L.raw_dir(data_root, L.CLICKS, target), part),
                click_out,
                cfg.gzip,
                cfg.gzip_level,
            )
            write_lines(
                storage.join(L.raw_dir(data_root, L.CONVERSIONS, target), part),
                conv_out,
                cfg.gzip,
                cfg.gzip_level,
            )

        truth = pa.table(
            {
                "impression_id": pa.array(ids, pa.string()),
                "p_click": pa.array(out.p_click, pa.float64()),
                "p_conv": pa.array(out.p_conv, pa.float64()),
            }
        )
        _write_parquet(storage.join(L.truth_dir(data_root, day), f"part-{tag}-{chunk:05d}.parquet"), truth)

        summary.impressions += n
        summary.clicks += int(out.click.sum())
        summary.conversions += int(out.reported.sum())
        summary.true_conversions += int(out.conversion.sum())

    # Profiles: stamped at midnight, before any impression of the day.
    midnight = f"{day.isoformat()}T00:00:00.000Z"
    prng = rng_for(world.seed, STREAM_PROFILE, di)
    for source, rows in (
        (L.USERS, user_rows(world, di, snapshot, midnight)),
        (L.ITEMS, item_rows(world, items, di, snapshot, midnight)),
    ):
        lines = record_lines(rows)
        template = {k: v[0] for k, v in rows.items()} if lines else _template(source, midnight)
        bad = C.corrupt_profiles(prng, source, len(lines), template, corrupt_rate)
        counts.update(bad.counts)
        write_lines(
            storage.join(L.raw_dir(data_root, source, day), f"part-{tag}-00000{ext}"),
            lines + bad.lines.get(source, []),
            cfg.gzip,
            cfg.gzip_level,
        )

    _write_day_corruption(data_root, day, counts)
    summary.corrupted = sum(counts.values())
    return summary


def _template(source: str, ts: str) -> dict:
    if source == L.USERS:
        return {"user_id": 0, "ts": ts, "gender": 1, "age_level": 1, "city_level": 1, "occupation": 0}
    return {"item_id": 0, "ts": ts, "category_id": 0, "shop_id": 0, "brand_id": 0, "price_level": 1}


def _write_parquet(uri: str, table: pa.Table) -> None:
    fs, path = storage.pyarrow_filesystem(uri)
    if not storage.is_gcs(uri):
        storage.makedirs(storage.parent(uri))
    pq.write_table(table, path, filesystem=fs)


def _write_day_corruption(data_root: str, day: dt.date, counts: Counter) -> None:
    """``corruption/dt=P/from-dt=D.json``: what day D's generation injected into partition P."""
    by_partition: dict[int, dict[str, dict[str, int]]] = {}
    for (source, offset, reason), n in sorted(counts.items()):
        by_partition.setdefault(offset, {}).setdefault(source, {})[reason] = n
    for offset in (0, 1):
        target = day + dt.timedelta(days=offset)
        uri = storage.join(L.corruption_dir(data_root, target), f"from-{L.partition(day)}.json")
        storage.write_json(uri, by_partition.get(offset, {}))


def write_corruption_manifest(data_root: str) -> dict:
    """Rebuild ``corruption_manifest.json`` from every per-day record under ``corruption/``."""
    partitions: dict[str, dict[str, Counter]] = {}
    for uri in storage.list_files(storage.join(data_root, "corruption"), suffix=".json"):
        part = storage.basename(storage.parent(uri))
        for source, reasons in storage.read_json(uri).items():
            partitions.setdefault(source, {}).setdefault(part, Counter()).update(reasons)
    manifest = {
        "partitions": {
            source: {part: dict(sorted(c.items())) for part, c in sorted(parts.items())}
            for source, parts in sorted(partitions.items())
        }
    }
    storage.write_json(L.corruption_manifest(data_root), manifest)
    return manifest

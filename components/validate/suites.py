"""The critical and warning suites as data: which frame, which GX expectation, what it means.

A check is a Great Expectations 1.x expectation plus a stable name and a sentence for people;
the runner groups checks by (suite, frame) into GX suites.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import great_expectations.expectations as gxe

from components.validate.inputs import LABEL_SOURCES, SAMPLE_TYPES, DayInputs
from taml.core import layout as L
from taml.core.config import ValidateBounds, ValidateConfig

CRITICAL = "critical"
WARNING = "warning"
# Frames the checks run on (see inputs.py).
SAMPLES, SCHEMA, DAY, MANIFEST, LABELS, FILES = "samples", "schema", "day", "manifest", "labels", "files"


@dataclass(frozen=True)
class Check:
    name: str
    frame: str
    expectation: gxe.Expectation
    description: str


def critical_checks(cfg: ValidateConfig, inputs: DayInputs) -> tuple[list[Check], list[str]]:
    """The checks that stop the run, and the names of those skipped (with why)."""
    checks: list[Check] = []
    skipped: list[str] = []
    if inputs.samples is not None:
        checks += _schema_checks()
        checks += _sample_checks(inputs.date)
        checks += _bound_checks(cfg.critical, inputs, skipped, cfg.volume_min_history)
    if inputs.manifest is not None:
        checks.append(
            Check(
                "manifest.sources_present",
                MANIFEST,
                gxe.ExpectColumnMinToBeBetween(column="present", min_value=1),
                f"the manifest lists every source ({', '.join(L.SOURCES)})",
            )
        )
        checks.append(_dead_letter_check(cfg.critical))
        checks.append(
            Check(
                "files.none_skipped",
                FILES,
                gxe.ExpectColumnValuesToBeNull(column="skipped"),
                "every file under the raw partitions read was read (a skipped one is named with its reason)",
            )
        )
        if cfg.require_next_day_labels:
            nxt = L.partition(inputs.date + dt.timedelta(days=1))
            rule = {
                "marker": "its landing marker",
                "volume": f"at least {cfg.labels_min_volume_share} of dt=D's lines",
                "marker_or_volume": f"its landing marker or at least {cfg.labels_min_volume_share} of dt=D's lines",
            }[cfg.labels_landing]
            checks.append(
                Check(
                    "labels.complete",
                    LABELS,
                    gxe.ExpectColumnValuesToBeNull(column="not_landed"),
                    f"labels complete: {nxt} of {' and '.join(LABEL_SOURCES)} was read and has landed ({rule})",
                )
            )
    return checks, skipped


def warning_checks(cfg: ValidateConfig, inputs: DayInputs) -> tuple[list[Check], list[str]]:
    checks: list[Check] = []
    skipped: list[str] = []
    if inputs.samples is not None:
        checks += _bound_checks(cfg.warning, inputs, skipped, cfg.volume_min_history)
        checks.append(
            Check(
                "day.hours_covered",
                DAY,
                gxe.ExpectColumnMinToBeBetween(column="hours", min_value=cfg.warn_min_hours),
                f"impressions cover at least {cfg.warn_min_hours} distinct hours",
            )
        )
    if inputs.manifest is not None:
        checks.append(_dead_letter_check(cfg.warning))
    return checks, skipped


def _schema_checks() -> list[Check]:
    return [
        Check(
            f"schema.{col}",
            SCHEMA,
            gxe.ExpectColumnValuesToBeInSet(column=col, value_set=types),
            f"column {col} exists with an Arrow type in {types}",
        )
        for col, types in SAMPLE_TYPES.items()
    ]


def _sample_checks(day: dt.date) -> list[Check]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    checks = [
        Check(
            f"nulls.{col}",
            SAMPLES,
            gxe.ExpectColumnValuesToNotBeNull(column=col),
            f"{col} is never null",
        )
        for col in SAMPLE_TYPES
    ]
    checks += [
        Check(
            "keys.impression_id_unique",
            SAMPLES,
            gxe.ExpectColumnValuesToBeUnique(column="impression_id"),
            "impression_id is unique within the day",
        ),
        Check(
            "domain.position",
            SAMPLES,
            gxe.ExpectColumnValuesToBeBetween(
                column="position", min_value=L.POSITION_MIN, max_value=L.POSITION_MAX
            ),
            f"position in {L.POSITION_MIN}..{L.POSITION_MAX}",
        ),
        Check(
            "domain.device",
            SAMPLES,
            gxe.ExpectColumnValuesToBeInSet(column="device", value_set=list(L.DEVICES)),
            f"device in {list(L.DEVICES)}",
        ),
        Check(
            "domain.hour",
            SAMPLES,
            gxe.ExpectColumnValuesToBeBetween(column="hour", min_value=0, max_value=23),
            "hour in 0..23",
        ),
        Check(
            "domain.click",
            SAMPLES,
            gxe.ExpectColumnValuesToBeInSet(column="click", value_set=[0, 1]),
            "click is 0 or 1",
        ),
        Check(
            "domain.conversion",
            SAMPLES,
            gxe.ExpectColumnValuesToBeInSet(column="conversion", value_set=[0, 1]),
            "conversion is 0 or 1",
        ),
        Check(
            "domain.conversion_implies_click",
            SAMPLES,
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="click", column_B="conversion", or_equal=True
            ),
            "conversion = 1 implies click = 1",
        ),
        Check(
            "domain.ids_non_negative",
            SAMPLES,
            gxe.ExpectColumnValuesToBeBetween(column="user_id", min_value=0),
            "user_id >= 0",
        ),
        Check(
            "domain.item_ids_non_negative",
            SAMPLES,
            gxe.ExpectColumnValuesToBeBetween(column="item_id", min_value=0),
            "item_id >= 0",
        ),
        Check(
            "domain.event_timestamp_in_day",
            SAMPLES,
            gxe.ExpectColumnValuesToBeBetween(
                column="event_timestamp",
                min_value=start,
                max_value=start + dt.timedelta(days=1),
                strict_max=True,
            ),
            f"event_timestamp within {day.isoformat()} (UTC)",
        ),
    ]
    return checks


def _bound_checks(b: ValidateBounds, inputs: DayInputs, skipped: list[str], min_history: int) -> list[Check]:
    checks = [
        Check(
            "day.rows",
            DAY,
            gxe.ExpectColumnMinToBeBetween(column="rows", min_value=b.min_rows),
            f"at least {b.min_rows} samples",
        ),
        Check(
            "day.ctr",
            DAY,
            gxe.ExpectColumnMeanToBeBetween(column="ctr", min_value=b.ctr_min, max_value=b.ctr_max),
            f"base CTR in [{b.ctr_min}, {b.ctr_max}]",
        ),
        Check(
            "day.cvr",
            DAY,
            gxe.ExpectColumnMeanToBeBetween(column="cvr", min_value=b.cvr_min, max_value=b.cvr_max),
            f"base CVR (conversions / clicks) in [{b.cvr_min}, {b.cvr_max}]",
        ),
    ]
    if len(inputs.history) >= min_history:
        checks.append(
            Check(
                "day.volume",
                DAY,
                gxe.ExpectColumnMeanToBeBetween(
                    column="volume_ratio", min_value=b.volume_min_ratio, max_value=b.volume_max_ratio
                ),
                f"samples / trailing median ({inputs.trailing_median():.0f} over {len(inputs.history)} earlier days)"
                f" in [{b.volume_min_ratio}, {b.volume_max_ratio}]",
            )
        )
    else:
        skipped.append(
            f"day.volume: only {len(inputs.history)} earlier day(s) with a manifest, {min_history} needed"
        )
    return checks


def _dead_letter_check(b: ValidateBounds) -> Check:
    return Check(
        "manifest.dead_letter_share",
        MANIFEST,
        gxe.ExpectColumnMaxToBeBetween(column="dead_letter_share", max_value=b.max_dead_letter_share),
        f"dead-lettered / read lines of every source's dt=D partition <= {b.max_dead_letter_share}",
    )

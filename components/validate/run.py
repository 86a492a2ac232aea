"""Run the suites with Great Expectations and turn GX results into a verdict people can read."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from typing import Any

import pandas as pd

from components.validate import inputs as I
from components.validate.report import write_artifacts
from components.validate.result import Outcome, ValidationResult
from components.validate.suites import (
    CRITICAL,
    DAY,
    FILES,
    LABELS,
    MANIFEST,
    SAMPLES,
    SCHEMA,
    WARNING,
    Check,
    critical_checks,
    warning_checks,
)
from components.validate.verdict import validation_dir
from taml.core import layout as L
from taml.core.config import Config, ValidateConfig

log = logging.getLogger(__name__)


def run_validation(
    config: Config, date: dt.date | str, data_root: str | None = None, out_dir: str | None = None
) -> ValidationResult:
    """Validate curated day ``date``; write result.json, report.md and report.html to ``out_dir``.

    Never raises for bad data: a missing partition or manifest is a failed critical outcome, so
    the caller always gets a verdict and an artifact that says why.
    """
    t0 = time.perf_counter()
    day = L.parse_date(date)
    data_root = data_root or config.paths.data_root
    out_dir = out_dir or validation_dir(config.paths.artifact_root, day)
    cfg = config.validation
    inputs = I.load_day(data_root, day, cfg.volume_lookback_days)

    presence: list[Outcome] = []
    if inputs.samples is None:
        presence.append(_missing("samples.present", "curated samples of the day exist", inputs.samples_uri))
    if inputs.manifest is None:
        presence.append(
            _missing("manifest.present", "the ingest manifest of the day exists", inputs.manifest_error or "")
        )

    crit, skipped_c = critical_checks(cfg, inputs)
    warn, skipped_w = warning_checks(cfg, inputs)
    frames = _frames(inputs, cfg, config.ingest.landing_marker)
    outcomes = _run_gx({CRITICAL: crit, WARNING: warn}, frames)
    result = ValidationResult(
        date=day.isoformat(),
        passed=False,
        critical=presence + outcomes[CRITICAL],
        warnings=outcomes[WARNING],
        skipped=skipped_c + [f"(warning) {s}" for s in skipped_w],
        rows=inputs.rows,
        out_dir=out_dir,
    )
    result.passed = not result.failed_critical
    result.seconds = round(time.perf_counter() - t0, 3)
    write_artifacts(result, out_dir)
    for o in result.failed_critical:
        log.error("%s", o.message())
    for o in result.failed_warnings:
        log.warning("%s", o.message())
    return result


# --------------------------------------------------------------------------------------------


def _frames(inputs: I.DayInputs, cfg: ValidateConfig, marker: str) -> dict[str, pd.DataFrame]:
    return {
        SAMPLES: inputs.samples if inputs.samples is not None else pd.DataFrame(),
        SCHEMA: I.schema_frame(inputs),
        DAY: I.day_frame(inputs),
        MANIFEST: I.manifest_frame(inputs),
        LABELS: I.labels_frame(inputs, cfg, marker),
        FILES: I.files_frame(inputs),
    }


def _run_gx(suites: dict[str, list[Check]], frames: dict[str, pd.DataFrame]) -> dict[str, list[Outcome]]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX pins this logger at INFO and announces each ephemeral context there: not news to anyone.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("taml")
    batch_defs = {
        name: source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
        for name in frames
    }
    out: dict[str, list[Outcome]] = {}
    for suite_name, checks in suites.items():
        out[suite_name] = []
        by_frame: dict[str, list[Check]] = {}
        for c in checks:
            by_frame.setdefault(c.frame, []).append(c)
        for frame, group in by_frame.items():
            suite = gx.ExpectationSuite(name=f"{suite_name}.{frame}")
            for c in group:
                c.expectation.meta = {"check": c.name}
                suite.add_expectation(c.expectation)
            suite = context.suites.add(suite)
            vd = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{suite_name}.{frame}", data=batch_defs[frame], suite=suite)
            )
            res = vd.run(batch_parameters={"dataframe": frames[frame]}, result_format="SUMMARY")
            by_name = {c.name: c for c in group}
            for r in res.results:
                d = r.to_json_dict()
                check = by_name[d["expectation_config"]["meta"]["check"]]
                out[suite_name].append(_outcome(suite_name, check, d, frames[frame]))
        order = {c.name: i for i, c in enumerate(checks)}
        out[suite_name].sort(key=lambda o: order[o.name])
    return out


_NOT_EXPECTED = {"batch_id", "column", "column_A", "column_B", "result_format", "catch_exceptions", "meta"}


def _outcome(suite: str, check: Check, d: dict[str, Any], frame: pd.DataFrame) -> Outcome:
    cfg = d["expectation_config"]
    kwargs = cfg["kwargs"]
    expected = {k: v for k, v in kwargs.items() if k not in _NOT_EXPECTED and v is not None}
    result = d.get("result") or {}
    exc = d.get("exception_info") or {}
    error = None
    missing = [
        c
        for c in (kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B"))
        if c and c not in frame
    ]
    if missing:
        error = f"column {missing[0]!r} is missing"
    elif exc.get("raised_exception"):
        error = str(exc.get("exception_message"))[:300]
    if "observed_value" in result:
        observed: Any = result["observed_value"]
    elif "unexpected_count" in result:
        observed = {
            "unexpected_count": result.get("unexpected_count"),
            "element_count": result.get("element_count"),
            "examples": result.get("partial_unexpected_list", [])[:5],
        }
        if check.frame == "schema":
            # The schema frame's one row holds the observed Arrow type of each column.
            col = kwargs.get("column")
            observed = frame[col].iloc[0] if col in frame and len(frame) else None
    else:
        observed = None if error else result
    if missing:
        observed = "missing"
    return Outcome(
        suite=suite,
        name=check.name,
        expectation=cfg["type"],
        description=check.description,
        success=bool(d["success"]),
        observed=_jsonable(observed),
        expected=_jsonable(expected),
        error=error,
    )


def _missing(name: str, description: str, where: str) -> Outcome:
    return Outcome(
        CRITICAL, name, "input_present", description, False, f"missing: {where}", {"present": True}
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, str):  # numpy scalars
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dt.datetime | dt.date | pd.Timestamp):
        return v.isoformat()
    return v

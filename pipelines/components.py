"""The KFP v2 components of ``taml-daily``: one thin shell per step.

Every shell has the same two leading inputs, ``config`` (the resolved configuration, one string
parameter of the pipeline) and ``date`` (the impression day D), which
:func:`pipelines.runtime.step_context` turns into a validated :class:`~taml.core.config.Config` and a
date; then it calls the step's plain function and turns its result into typed KFP outputs. KFP
ships a component's *source* to the task, so every import is inside the function; the project is
installed in the component image (``Dockerfile``) and, for local runs, in this virtualenv.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output


def resolve_date(date: str, schedule_time: str, lag_days: int) -> str:
    """The impression day D: ``date`` when given, else the schedule time minus ``lag_days``."""
    import datetime as dt

    if date:
        return dt.date.fromisoformat(date).isoformat()
    if not schedule_time:
        raise ValueError("neither date nor a schedule time was given")
    # Recurring runs pass their schedule time through KFP's [[ScheduledTime.2006-01-02]] macro.
    when = dt.date.fromisoformat(schedule_time[:10])
    return (when - dt.timedelta(days=lag_days)).isoformat()


def ingest(
    config: str,
    date: str,
    manifest: Output[Artifact],
    metrics: Output[Metrics],
) -> NamedTuple("IngestOutputs", [("samples", int), ("dead_letters", int)]):
    import json
    from collections import namedtuple

    from pipelines.runtime import step_context

    s = step_context(config, date)
    from components.common.records import write_record
    from components.ingest import run_ingest

    result = run_ingest(s.config, s.day, s.data_root, list(s.config.pipeline.beam_options))
    summary = result.summary()
    with open(manifest.path, "w") as f:
        json.dump(summary, f, indent=2, default=str)
    write_record(s.artifact_root, s.day, "ingest", summary)
    metrics.log_metric("samples", summary["samples"])
    metrics.log_metric("dead_letters", summary["dead_letters"])
    return namedtuple("IngestOutputs", ["samples", "dead_letters"])(
        summary["samples"], summary["dead_letters"]
    )


def validate(
    config: str,
    date: str,
    report: Output[HTML],
    metrics: Output[Metrics],
) -> NamedTuple("ValidateOutputs", [("passed", bool), ("summary", str)]):
    import shutil
    from collections import namedtuple

    from pipelines.runtime import local_copy, step_context
    from taml.core import storage

    s = step_context(config, date)
    from components.common.records import write_record
    from components.validate import run_validation

    result = run_validation(s.config, s.day, s.data_root)
    failed = [o.message() for o in result.failed_critical]
    summary = f"{'passed' if result.passed else 'FAILED'}: {len(failed)} critical, {len(result.failed_warnings)} warning(s)"
    write_record(
        s.artifact_root,
        s.day,
        "validate",
        {
            "passed": bool(result.passed),
            "summary": summary,
            "failed": failed,
            "warnings": [o.message() for o in result.failed_warnings],
            "report": storage.join(result.out_dir, "report.html"),
        },
    )
    with local_copy(storage.join(result.out_dir, "report.html")) as path:
        shutil.copyfile(path, report.path)
    metrics.log_metric("critical_failed", len(failed))
    metrics.log_metric("warnings_failed", len(result.failed_warnings))
    metrics.log_metric("rows", result.rows)
    return namedtuple("ValidateOutputs", ["passed", "summary"])(bool(result.passed), summary)


def features(
    config: str,
    date: str,
    table: Output[Dataset],
    metrics: Output[Metrics],
) -> int:
    from pipelines.runtime import step_context

    s = step_context(config, date)
    from components.common.records import write_record
    from components.features import build_features

    result = build_features(s.config, s.day, s.data_root)
    write_record(
        s.artifact_root,
        s.day,
        "features",
        {"rows": result.rows, "table": result.table_path, "online_rows": result.online_rows},
    )
    table.metadata["location"] = result.table_path
    table.metadata["rows"] = result.rows
    metrics.log_metric("rows", result.rows)
    return int(result.rows)


def train(
    config: str,
    date: str,
    candidate: Output[Model],
    metrics: Output[Metrics],
) -> NamedTuple("TrainOutputs", [("trained", bool), ("version", str), ("mode", str)]):
    from collections import namedtuple

    from pipelines.runtime import step_context

    s = step_context(config, date)
    from components.train import run_train

    out = run_train(s.config, s.day, s.data_root, s.artifact_root, candidate.path)
    candidate.metadata.update({"version": out.version or "", "mode": out.mode, "days": out.days})
    metrics.log_metric("trained", int(out.trained))
    if out.trained:
        metrics.log_metric("samples", out.samples)
        metrics.log_metric("samples_per_s", out.samples_per_s)
    return namedtuple("TrainOutputs", ["trained", "version", "mode"])(
        out.trained, out.version or "", out.mode
    )


def evaluate(
    config: str,
    date: str,
    candidate: Input[Model],
    blessing: Output[Artifact],
    metrics: Output[Metrics],
) -> NamedTuple("EvaluateOutputs", [("blessed", bool), ("reason", str)]):
    import shutil
    from collections import namedtuple

    from pipelines.runtime import local_copy, step_context

    s = step_context(config, date)
    from components.evaluate import run_evaluate

    out = run_evaluate(s.config, s.day, s.data_root, s.artifact_root, candidate.path)
    with local_copy(out.blessing_uri) as path:
        shutil.copyfile(path, blessing.path)
    blessing.metadata["blessed"] = out.blessed
    for key in ("ctr_auc", "cvr_auc", "ctcvr_auc", "ctr_calibration", "cvr_calibration", "ctcvr_calibration"):
        for role, model_metrics in (("candidate", out.candidate), ("production", out.production)):
            value = model_metrics.metrics.get(key) if model_metrics is not None else None
            if value is not None and value == value:
                metrics.log_metric(f"{role}_{key}", float(value))
    for key, value in out.gate_metrics().items():
        metrics.log_metric(key, value)
    return namedtuple("EvaluateOutputs", ["blessed", "reason"])(out.blessed, out.reason)


def deploy(
    config: str,
    date: str,
    candidate: Input[Model],
    blessing: Input[Artifact],
) -> str:
    from pipelines.runtime import step_context

    s = step_context(config, date)
    from components.deploy import run_deploy_step

    out = run_deploy_step(s.config, s.day, s.data_root, s.artifact_root, candidate.path, blessing.path)
    return out.version


def monitor(
    config: str,
    date: str,
    validation_failed: bool,
    report: Output[HTML],
    metrics: Output[Metrics],
) -> str:
    import shutil

    from pipelines.runtime import local_copy, step_context

    s = step_context(config, date)
    from components.monitor import run_monitor_step

    out = run_monitor_step(s.config, s.day, s.data_root, s.artifact_root, validation_failed=validation_failed)
    if out.result is None:
        with open(report.path, "w") as f:
            f.write(f"<html><body><h1>Monitoring {s.day}: {out.status}</h1><p>{out.reason}</p></body></html>")
        return out.status
    with local_copy(out.result.html_uri) as path:
        shutil.copyfile(path, report.path)
    for key, value in out.headline_metrics.items():
        if value is not None and value == value:
            metrics.log_metric(key, float(value))
    return out.status


STEPS = (ingest, validate, features, train, evaluate, deploy, monitor)


def make_components(image: str) -> dict:
    """The step functions as KFP components running in ``image`` (installs nothing at run time)."""
    out = {"resolve_date": dsl.component(resolve_date, base_image=image, install_kfp_package=False)}
    for fn in STEPS:
        out[fn.__name__] = dsl.component(fn, base_image=image, install_kfp_package=False)
    return out

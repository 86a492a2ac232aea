"""``taml compile``, ``taml submit`` and ``taml schedule``: the pipeline on a Kubeflow cluster."""

from __future__ import annotations

import argparse
import shlex
import subprocess
from pathlib import Path

from taml.cli.main import date_arg
from taml.core.config import Config

SCHEDULED_TIME_MACRO = "[[ScheduledTime.2006-01-02]]"
PACKAGE = Path(__file__).resolve().parents[3] / "pipelines" / "taml_daily.yaml"


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    c = sub.add_parser("compile", parents=[parent], help="compile taml-daily to pipelines/taml_daily.yaml")
    c.add_argument("--out", default=str(PACKAGE), help="output YAML (default: the committed package)")
    c.set_defaults(handler=compile_cmd)

    s = sub.add_parser("submit", parents=[parent], help="submit one run to a Kubeflow Pipelines endpoint")
    s.add_argument("--date", required=True, type=date_arg, help="impression day D")
    s.add_argument(
        "--host", required=True, help="KFP API endpoint, e.g. https://kubeflow.example.com/pipeline"
    )
    s.add_argument("--experiment", default="taml", help="experiment name (created if missing)")
    s.add_argument("--package", default=str(PACKAGE), help="compiled pipeline YAML")
    s.set_defaults(handler=submit)

    r = sub.add_parser(
        "schedule", parents=[parent], help="create a recurring run (wraps `kfp recurring-run create`)"
    )
    r.add_argument(
        "--cron", default="0 0 6 * * *", help="6-field cron, seconds first (default: 06:00 UTC daily)"
    )
    r.add_argument("--host", required=True, help="KFP API endpoint")
    r.add_argument("--experiment", default="taml", help="experiment name")
    r.add_argument("--name", default="taml-daily", help="recurring run name")
    r.add_argument("--package", default=str(PACKAGE), help="compiled pipeline YAML")
    r.add_argument("--dry-run", action="store_true", help="print the kfp command instead of running it")
    r.set_defaults(handler=schedule)


def compile_pipeline(config: Config, out: str | Path) -> Path:
    from kfp import compiler

    from pipelines.taml_daily import build_pipeline

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(config), str(out))
    return out


def compile_cmd(args: argparse.Namespace, config: Config) -> int:
    print(f"wrote {compile_pipeline(config, args.out)}")
    return 0


def run_arguments(config: Config, date: str = "") -> dict[str, str]:
    """The pipeline's parameters for a run: D and the configuration this command resolved."""
    from pipelines.runtime import config_parameter

    return {"date": date, "config": config_parameter(config)}


def submit_request(args: argparse.Namespace, config: Config) -> dict:
    """The keyword arguments of ``kfp.Client.create_run_from_pipeline_package`` for ``taml submit``."""
    return {
        "pipeline_file": args.package,
        "arguments": run_arguments(config, args.date.isoformat()),
        "experiment_name": args.experiment,
        "run_name": f"taml-daily-{args.date}",
        "enable_caching": None,  # per-task settings of the package
    }


def submit(args: argparse.Namespace, config: Config) -> int:
    import kfp

    client = kfp.Client(host=args.host)
    run = client.create_run_from_pipeline_package(**submit_request(args, config))
    print(f"submitted run {run.run_id} for {args.date} to {args.host}")
    return 0


def schedule_command(args: argparse.Namespace, config: Config) -> list[str]:
    """The ``kfp recurring-run create`` call: at most one run at a time, no catch-up, D = time − lag."""
    # date left empty: each run resolves D from its schedule time, which KFP substitutes here.
    params = {**run_arguments(config), "schedule_time": SCHEDULED_TIME_MACRO}
    cmd = [
        "kfp",
        "--endpoint",
        args.host,
        "recurring-run",
        "create",
        "--experiment-name",
        args.experiment,
        "--job-name",
        args.name,
        "--cron-expression",
        args.cron,
        "--max-concurrency",
        "1",
        "--no-catchup",
        "--pipeline-package-path",
        args.package,
    ]
    return cmd + [f"{k}={v}" for k, v in params.items() if v != ""]


def schedule(args: argparse.Namespace, config: Config) -> int:
    fields = args.cron.split()
    if len(fields) != 6:
        from taml.core.errors import UsageError

        raise UsageError(f"--cron needs 6 fields, seconds first (got {len(fields)}: {args.cron!r})")
    cmd = schedule_command(args, config)
    print(shlex.join(cmd))
    return 0 if args.dry_run else subprocess.call(cmd)

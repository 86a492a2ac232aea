"""``taml run`` and ``taml backfill``: the whole daily pipeline on this machine via kfp.local.

The configuration this command resolved (profile, ``--config`` files, ``TAML__`` environment,
``--set``, ``--data-root``/``--artifact-root``) is what every task of every day runs with.
"""

from __future__ import annotations

import argparse
import datetime as dt

from taml.cli.main import date_arg
from taml.core.config import Config
from taml.core.errors import UsageError


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[parent], help="run taml-daily for one day locally (kfp.local)")
    p.add_argument("--date", required=True, type=date_arg, help="impression day D (its D+1 logs must exist)")
    p.set_defaults(handler=run)
    b = sub.add_parser("backfill", parents=[parent], help="run taml-daily for a range of days, in order")
    b.add_argument("--start", required=True, type=date_arg, help="first day")
    g = b.add_mutually_exclusive_group(required=True)
    g.add_argument("--end", type=date_arg, help="last day (inclusive)")
    g.add_argument("--days", type=int, help="number of days")
    b.set_defaults(handler=backfill)


def _days(args: argparse.Namespace) -> list[dt.date]:
    if args.days is not None:
        if args.days <= 0:
            raise UsageError(f"--days must be positive (got {args.days})")
        return [args.start + dt.timedelta(days=i) for i in range(args.days)]
    if args.end < args.start:
        raise UsageError(f"--end {args.end} is before --start {args.start}")
    return [args.start + dt.timedelta(days=i) for i in range((args.end - args.start).days + 1)]


def _run_days(days: list[dt.date], args: argparse.Namespace, config: Config, report: bool = False) -> int:
    from pipelines.local import format_summary, run_day

    runs = []
    for day in days:
        print(f"running taml-daily for {day} ...", flush=True)
        result = run_day(config, day)
        runs.append(result)
        if not result.ok:
            break  # later days warm-start from this one: stop at the first broken day
    print(format_summary(runs, config.paths.artifact_root))
    if report:  # a backfill (make run) also leaves one page across its days
        from monitoring.run_report import write_run_report

        uri = write_run_report(
            config.paths.artifact_root, [r.date for r in runs], config.pipeline.run_report_confidence
        )
        print(f"run report: {uri}")
    return 0 if all(r.ok for r in runs) and len(runs) == len(days) else 1


def run(args: argparse.Namespace, config: Config) -> int:
    return _run_days([args.date], args, config)


def backfill(args: argparse.Namespace, config: Config) -> int:
    return _run_days(_days(args), args, config, report=True)

"""``taml drift``: the monitoring report of day D (DESIGN.md step 7), outside the pipeline too.

Exit status: 0 for ok (and warn, unless ``--fail-on warn``), 1 for an alert, 2 for bad input.
"""

from __future__ import annotations

import argparse

from taml.cli.main import date_arg
from taml.core.config import Config


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "drift", parents=[parent], help="drift and calibration report of day D (HTML, JSON, status, history)"
    )
    p.add_argument("--date", required=True, type=date_arg, help="impression day D, YYYY-MM-DD")
    p.add_argument(
        "--validation-failed",
        action="store_true",
        help="say in the report that validation failed for D (the pipeline passes this)",
    )
    p.add_argument(
        "--fail-on",
        choices=("alert", "warn"),
        default="alert",
        help="lowest status that gives a non-zero exit (default: alert)",
    )
    p.add_argument("--no-history", action="store_true", help="do not rebuild the history view")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, config: Config) -> int:
    import sys

    from components.monitor import run_monitor_step
    from monitoring.status import STATUS_ORDER

    out = run_monitor_step(
        config,
        args.date,
        config.paths.data_root,
        config.paths.artifact_root,
        validation_failed=args.validation_failed,
        write_history=not args.no_history,
    )
    result = out.result
    if result is None:
        print(f"taml drift: error: nothing to monitor on {args.date}: {out.reason}", file=sys.stderr)
        return 2
    print(f"monitor {result.date}: {result.status.upper()} ({result.rows:,} rows, {result.seconds:.1f} s)")
    for note in result.notes:
        print(f"  note: {note}")
    for problem in result.problems:
        print(f"  {problem}")
    print(f"report {result.html_uri}")
    print(f"status {result.status_uri}")
    if result.history_uri:
        print(f"history {result.history_uri}")
    return 1 if STATUS_ORDER[result.status] >= STATUS_ORDER[args.fail_on] else 0

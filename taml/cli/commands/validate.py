"""``taml validate --date D``: the validation gate over curated day D (exit 1 when it fails)."""

from __future__ import annotations

import argparse

from taml.cli.main import date_arg
from taml.core.config import Config


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("validate", parents=[parent], help="validate a curated day (Great Expectations)")
    p.add_argument("--date", required=True, type=date_arg, help="the impression day D (YYYY-MM-DD)")
    p.add_argument("--out", default=None, help="artifact folder (default: {artifact_root}/validation/dt=D)")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, config: Config) -> int:
    import json
    import logging

    from components.validate import run_validation

    if not args.verbose:
        # GX logs its own setup at INFO; the failed expectations printed below are what matters.
        logging.getLogger("great_expectations").setLevel(logging.WARNING)

    result = run_validation(config, args.date, config.paths.data_root, args.out)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        for o in result.failed_critical + result.failed_warnings:
            print(o.message())
        verdict = "PASSED" if result.passed else "FAILED"
        print(
            f"validation of {result.date}: {verdict} ({len(result.failed_critical)} critical, "
            f"{len(result.failed_warnings)} warning(s)); report: {result.out_dir}/report.html"
        )
    return 0 if result.passed else 1

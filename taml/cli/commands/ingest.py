"""``taml ingest --date D``: raw events (or Ali-CCP files) -> curated samples, dead letters, stats.

Beam options reach the pipeline three ways, later wins: config ``ingest.pipeline_options``,
``--beam-option OPT`` (repeatable), and everything after ``--``:

    taml ingest --date 2026-11-01 -- --runner=DataflowRunner --project=p --region=europe-west1
"""

from __future__ import annotations

import argparse
import json
import logging

from taml.core.config import Config
from taml.core.errors import UsageError


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ingest", parents=[parent], help="ingest one day of raw logs (Beam)")
    p.add_argument("--date", required=True, help="the impression day D (YYYY-MM-DD)")
    p.add_argument(
        "--format", choices=["events", "aliccp"], default="events", help="raw format (default: events)"
    )
    p.add_argument("--skeleton", help="aliccp: the sample_skeleton_*.csv file")
    p.add_argument("--common-features", help="aliccp: the common_features_*.csv file")
    p.add_argument(
        "--beam-option",
        action="append",
        default=[],
        metavar="OPT",
        help="a Beam pipeline option, e.g. --runner=FlinkRunner",
    )
    p.add_argument("beam_args", nargs="*", help="Beam pipeline options after --")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, config: Config) -> int:
    from components.ingest import run_aliccp_ingest, run_ingest

    if not args.verbose:
        # Beam logs every stage and type hint at INFO; the step's own progress is enough here.
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
    beam_args = [*args.beam_option, *args.beam_args]
    if args.format == "aliccp":
        if not args.skeleton or not args.common_features:
            raise UsageError("--format aliccp needs --skeleton FILE and --common-features FILE")
        result = run_aliccp_ingest(
            config, args.date, config.paths.data_root, args.skeleton, args.common_features, beam_args
        )
    else:
        if args.skeleton or args.common_features:
            raise UsageError("--skeleton/--common-features only apply to --format aliccp")
        result = run_ingest(config, args.date, config.paths.data_root, beam_args)
    summary = result.summary()
    print(json.dumps(summary, indent=2))
    return 0

"""The ``taml`` command: one sub-command per step, each a thin shell over a plain function.

Every sub-command takes the common options (``--config``, ``--profile``, ``--set``,
``--data-root``, ``--artifact-root``); each lives in ``taml/cli/commands/<name>.py`` and exposes
``register(subparsers)``, which sets ``handler(args, config) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from taml.core.config import Config, ConfigError, load_config
from taml.core.errors import TamlError

#: Modules under taml/commands, in the order `taml --help` lists them.
COMMANDS = (
    "simulate",
    "ingest",
    "validate",
    "features",
    "run",
    "kfp_cmds",
    "registry_cmds",
    "drift",
    "serve",
    "bench",
    "config_cmd",
)


OWN_LOGGERS = ("taml", "simulator", "components", "pipelines", "model", "serving", "monitoring")


def date_arg(value: str):
    """argparse type for YYYY-MM-DD that reports what was expected."""
    from taml.core.errors import UsageError
    from taml.core.layout import parse_date

    try:
        return parse_date(value)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def common_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("configuration")
    g.add_argument(
        "--config", action="append", default=[], metavar="FILE", help="extra YAML layered on the profile"
    )
    g.add_argument("--profile", default=None, help="config profile: local (default) or gcp")
    g.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides", help="override one key"
    )
    g.add_argument("--data-root", default=None, help="data folder or gs:// URI (default: paths.data_root)")
    g.add_argument(
        "--artifact-root", default=None, help="artifact folder or gs:// URI (default: paths.artifact_root)"
    )
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taml", description="Daily TAML CTR/CVR pipeline.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parent = common_options()
    for name in COMMANDS:
        importlib.import_module(f"taml.cli.commands.{name}").register(sub, parent)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides)
    if args.data_root:
        overrides.append(f"paths.data_root={args.data_root}")
    if args.artifact_root:
        overrides.append(f"paths.artifact_root={args.artifact_root}")
    return load_config(profile=args.profile, files=args.config, overrides=overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our own packages log at INFO; libraries (GX, Feast, Beam, KFP) only warn unless --verbose.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        config = config_from_args(args)
        return int(args.handler(args, config) or 0)
    except (ConfigError, TamlError, FileNotFoundError) as e:
        if args.verbose:
            logging.exception("failed")
        print(f"taml {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"taml {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

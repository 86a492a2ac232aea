"""``taml config show``: the effective configuration after every layer; ``defaults``: default.yaml."""

from __future__ import annotations

import argparse

from taml.config import Config, dump


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("config", parents=[parent], help="show the effective configuration")
    p.add_argument(
        "action",
        choices=["show", "defaults"],
        help="show: print it as YAML; defaults: print config/default.yaml as generated from the schema",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, config: Config) -> int:
    if args.action == "defaults":
        from taml.config_defaults import render_defaults

        print(render_defaults(), end="")
        return 0
    print(dump(config), end="")
    return 0

"""``taml config show``: the effective configuration after every layer."""

from __future__ import annotations

import argparse

from taml.config import Config, dump


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("config", parents=[parent], help="show the effective configuration")
    p.add_argument("action", choices=["show"], help="show: print it as YAML")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, config: Config) -> int:
    print(dump(config), end="")
    return 0

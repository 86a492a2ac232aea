"""``taml promote``, ``taml rollback`` and ``taml versions``: the production alias by hand."""

from __future__ import annotations

import argparse

from taml.core import registry
from taml.core.config import Config


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("promote", parents=[parent], help="point the production alias at a published version")
    p.add_argument("version", help="a complete version in the registry (see `taml versions`)")
    p.add_argument("--reason", default="manual promotion", help="recorded in the alias as its blessing")
    p.set_defaults(handler=promote)
    r = sub.add_parser(
        "rollback", parents=[parent], help="move the alias back to the previous production version"
    )
    r.set_defaults(handler=rollback)
    v = sub.add_parser("versions", parents=[parent], help="list published versions and the production alias")
    v.set_defaults(handler=versions)


def _show(alias: registry.Alias) -> str:
    return f"production: {alias.version} (previous {alias.previous_version}, since {alias.time})"


def promote(args: argparse.Namespace, config: Config) -> int:
    alias = registry.promote(
        config.paths.artifact_root, config.pipeline.model_name, args.version, blessing=args.reason
    )
    print(_show(alias))
    return 0


def rollback(args: argparse.Namespace, config: Config) -> int:
    print(_show(registry.rollback(config.paths.artifact_root, config.pipeline.model_name)))
    return 0


def versions(args: argparse.Namespace, config: Config) -> int:
    root, name = config.paths.artifact_root, config.pipeline.model_name
    alias = registry.read_alias(root, name)
    for v in registry.list_versions(root, name):
        mark = "*" if alias and alias.version == v else " "
        print(f"{mark} {v}")
    print(_show(alias) if alias else "production: none")
    return 0

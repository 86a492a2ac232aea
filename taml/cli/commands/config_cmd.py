"""``taml config show``: the effective configuration after every layer (secrets never shown);
``defaults``: default.yaml."""

from __future__ import annotations

import argparse
import os

from taml.core.config import Config, dump
from taml.core.secrets import redact


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
        from taml.core.config_defaults import render_defaults

        print(render_defaults(), end="")
        return 0
    # Secrets are not part of the configuration (only the names of their environment variables);
    # redact() also masks anything password-shaped that a value might still carry.
    print(redact(dump(config)), end="")
    for key, var in secret_envs(config).items():
        state = "set" if os.environ.get(var) else "not set"
        print(f"# {key}: ${var} is {state} in the environment (its value is never shown)")
    return 0


def secret_envs(config: Config) -> dict[str, str]:
    """Dotted key -> environment variable of each secret the configuration refers to."""
    f = config.features
    return {"features.redis_password_env": f.redis_password_env} if f.online_store == "redis" else {}

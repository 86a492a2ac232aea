"""``taml serve``: the online prediction server (DESIGN.md "Serving", docs/SERVING.md)."""

from __future__ import annotations

import argparse

from taml.core.config import Config


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[parent],
        help="serve predictions of the production model (KServe V1 and V2 / Vertex AI)",
    )
    p.add_argument("--port", type=int, default=None, help="port (default: AIP_HTTP_PORT, else serving.port)")
    p.add_argument("--host", default=None, help="interface (default: serving.host)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, config: Config) -> int:
    from serving.app import serve
    from serving.runtime import resolve_port

    port = resolve_port(config, args.port)
    s = config.serving
    # The token's variable is named, its value never printed.
    auth = f"bearer token required (${s.auth_token_env})" if s.auth_token_env else "no token required"
    print(
        f"taml serve: {config.pipeline.model_name} on {args.host or s.host}:{port}, {auth} "
        f"(data {config.paths.data_root}, artifacts {config.paths.artifact_root})",
        flush=True,
    )
    serve(config, config.paths.data_root, config.paths.artifact_root, port, args.host)
    return 0

"""``taml features build|apply|online|table``: the Feast feature store (docs/FEATURES.md)."""

from __future__ import annotations

import argparse
import json

from taml.cli.main import date_arg
from taml.core.config import Config
from taml.core.errors import UsageError


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("features", help="feature store: build a day, apply, look features up")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser(
        "build", parents=[parent], help="apply, materialize the window ending with D, write D's table"
    )
    b.add_argument("--date", required=True, type=date_arg, help="the impression day D (YYYY-MM-DD)")
    a = actions.add_parser("apply", parents=[parent], help="register the Feast objects for the data root")
    o = actions.add_parser("online", parents=[parent], help="online features of one user and some items")
    o.add_argument("--user", required=True, type=int, help="user_id")
    o.add_argument("--items", required=True, help="comma-separated item_ids")
    o.add_argument("--json", action="store_true", help="JSON instead of a table")
    o.add_argument("--via-feast", action="store_true", help="use Feast's online read path (slower)")
    t = actions.add_parser("table", parents=[parent], help="write the point-in-time table of a day to a file")
    t.add_argument("--date", required=True, type=date_arg, help="the impression day D (YYYY-MM-DD)")
    t.add_argument("--out", required=True, help="output file: .parquet or .csv")
    for q in (b, a, o, t):
        q.set_defaults(handler=run)


def run(args: argparse.Namespace, config: Config) -> int:
    import components.features as F

    root = config.paths.data_root
    if args.action == "build":
        result = F.build_features(config, args.date, root)
        print(json.dumps(result.__dict__, indent=2, default=str))
    elif args.action == "apply":
        F.apply(config, root)
        print(f"applied the Feast repo to {F.repo_config(config, root).registry.path}")
    elif args.action == "online":
        try:
            items = [int(x) for x in args.items.split(",") if x.strip()]
        except ValueError:
            raise UsageError(f"--items {args.items!r}: expected comma-separated integers") from None
        if args.via_feast:
            rows = F.feast_lookup(F.feature_store(config, root), config, args.user, items)
        else:
            rows = F.online_reader(config, root).lookup(args.user, items)
        print(json.dumps(rows, indent=2) if args.json else _table(rows))
    elif args.action == "table":
        df, _ = F.build_table(config, args.date, root)
        if args.out.endswith(".csv"):
            df.to_csv(args.out, index=False)
        else:
            df.to_parquet(args.out, index=False)
        print(f"wrote {len(df):,} rows x {len(df.columns)} columns to {args.out}")
    return 0


def _table(rows: list[dict]) -> str:
    """Features as rows, items as columns (a request has few items and many features)."""
    if not rows:
        return "(no items)"
    keys = list(rows[0])
    cells = [
        [k, *("" if r[k] is None else f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for r in rows)]
        for k in keys
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(c))) for c in cells)

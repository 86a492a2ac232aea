"""``taml simulate``: write a simulated history of raw event logs (DESIGN.md "Simulator")."""

from __future__ import annotations

import argparse

from taml.cli.main import date_arg
from taml.core.config import Config


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    from simulator.scenarios import SCENARIOS

    p = sub.add_parser("simulate", parents=[parent], help="write simulated raw event logs and ground truth")
    p.add_argument("--out", default=None, help="data root to write (default: --data-root / paths.data_root)")
    p.add_argument("--start", required=True, type=date_arg, help="first day, YYYY-MM-DD")
    p.add_argument("--days", type=int, default=1, help="number of days (default 1)")
    p.add_argument(
        "--impressions-per-day", type=int, default=100_000, help="impressions per day (default 100000)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files")
    p.add_argument(
        "--scenario", default="clean", choices=SCENARIOS, help="world change from --scenario-day on"
    )
    p.add_argument("--scenario-day", type=date_arg, default=None, help="first day of the scenario")
    p.add_argument(
        "--corrupt-rate", type=float, default=0.0, help="share of extra malformed or inconsistent lines"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, config: Config) -> int:
    from simulator import simulate

    out = args.out or config.paths.data_root
    summary = simulate(
        out,
        args.start,
        args.days,
        args.impressions_per_day,
        args.seed,
        scenario=args.scenario,
        scenario_day=args.scenario_day,
        corrupt_rate=args.corrupt_rate,
        config=config.simulator,
    )
    w = summary.world
    print(
        f"world ({w.density} density over {w.density_days} days): {w.users:,} users, {w.base_items:,} items "
        f"+ {w.new_items_per_day:,} new a day, CTR {w.target_ctr:.4f}, post-click CVR {w.target_cvr:.4f}"
    )
    print(
        f"{'day':<12}{'impressions':>12}{'clicks':>9}{'CTR':>8}{'conv':>7}{'CVR':>8}{'new items':>10}{'corrupt':>9}{'sec':>7}"
    )
    for d in summary.days:
        print(
            f"{d.day.isoformat():<12}{d.impressions:>12,}{d.clicks:>9,}{d.ctr:>8.4f}{d.conversions:>7,}"
            f"{d.cvr:>8.4f}{d.new_items:>10,}{d.corrupted:>9,}{d.seconds:>7.1f}"
        )
    print(f"wrote {out}")
    return 0

"""``taml bench NAME [ARGS...]``: run one benchmark script from ``benchmarks/`` (or ``all``).

Benchmarks are scripts with their own options (``taml bench simulate --help``); each writes a
JSON result under ``--out`` and prints a Markdown table for ``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from taml.core.config import Config
from taml.core.errors import UsageError

BENCH_DIR = Path(__file__).resolve().parents[3] / "benchmarks"

#: name -> script under benchmarks/; `all` runs them in this order with their defaults.
BENCHMARKS = {
    "simulate": "simulate_speed.py",
    "model-speed": "model_speed.py",
    "ingest": "ingest_speed.py",
    "features": "features_speed.py",
    "monitor": "monitor_speed.py",
    "serving": "serving_latency.py",
}
#: the option each script takes for its JSON result when `all` runs it (None: prints only).
OUT_FLAG = {
    "simulate": "--out",
    "model-speed": "--json",
    "features": "--out",
    "serving": "--json",
    "ingest": None,
    "monitor": None,
}
#: run only by name (they need a data root and minutes of training): `taml bench model --help`.
ON_DEMAND = {
    "model": "model_compare.py",
    "daily": "daily_loop.py",
    "gpu": "gpu_check.py",
}


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", help="run a benchmark (see docs/BENCHMARKS.md)")
    p.add_argument("name", choices=[*BENCHMARKS, *ON_DEMAND, "all"], help="which benchmark")
    p.add_argument("args", nargs=argparse.REMAINDER, help="options passed to the benchmark script")
    p.add_argument("--out-dir", default="bench-out", help="folder for the JSON results of `all`")
    p.set_defaults(
        handler=run, overrides=[], config=[], profile=None, data_root=None, artifact_root=None, verbose=False
    )


def run(args: argparse.Namespace, config: Config) -> int:
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    for name in names:
        script = BENCH_DIR / {**BENCHMARKS, **ON_DEMAND}[name]
        if not script.exists():
            raise UsageError(f"benchmark script missing: {script}")
        out = str(Path(args.out_dir) / f"{name}.json")
        flag = OUT_FLAG.get(name)
        extra = args.args if args.name != "all" else ([flag, out] if flag else [])
        print(f"== bench {name}: {script.name} {' '.join(extra)}", flush=True)
        code = subprocess.call([sys.executable, str(script), *extra])
        if code:
            return code
    return 0

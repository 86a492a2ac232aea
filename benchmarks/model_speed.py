"""Training speed of every architecture, and step time against the id vocabulary size.

Setup: batch 2000, 22 categorical fields at the default embedding size (the 23-field default
spec less one stat: user_id and item_id with 100k values each, 11 small profile/context fields,
9 bucketized stats of 12-13 buckets), the default ModelConfig of each architecture, the real
trainer (pre-built tensors, sliced batches, lazy sparse Adam + dense Adam, L2 1e-6, no progress bar).

Models are measured side by side: each round trains every model for ``--steps`` steps in turn, and
the reported figure is the median over ``--rounds`` rounds (after one warm-up round), so background
load on a shared machine hits all models alike.

    .venv/bin/python benchmarks/model_speed.py                     # markdown table
    .venv/bin/python benchmarks/model_speed.py --json out.json     # and a JSON file
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.registry import build_model  # noqa: E402
from model.spec import ARCHITECTURES, ModelConfig, TrainConfig  # noqa: E402
from model.trainer import train  # noqa: E402

# 22 fields: 2 ids, 11 small categorical, 9 bucketized stats (reserved rows 0/1 included).
SMALL_FIELDS = [102, 5, 26, 5, 9, 5, 22, 202, 3002, 1502, 12]  # position, device, hour, profile, item attrs
BUCKET_FIELDS = [14] * 9


def field_sizes(id_vocab: int) -> list[int]:
    return [id_vocab, 100_002, *SMALL_FIELDS, *BUCKET_FIELDS]


def make_data(sizes: list[int], n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.stack([torch.randint(0, s, (n,), generator=g) for s in sizes], dim=1)
    click = (torch.rand(n, generator=g) < 0.05).float()
    conv = click * (torch.rand(n, generator=g) < 0.1).float()
    return x, click, conv


def time_models(names: list[str], sizes: list[int], batch: int, steps: int, rounds: int, seed: int) -> dict:
    return time_runs({name: (name, sizes) for name in names}, batch, steps, rounds, seed)


def time_runs(runs: dict[str, tuple[str, list[int]]], batch: int, steps: int, rounds: int, seed: int) -> dict:
    """Median (and best) training speed of each run {label: (architecture, field sizes)}.

    Runs are interleaved round by round so that background load hits all of them alike.
    """
    cfg = TrainConfig(batch_size=batch, max_steps=steps, progress=False, log_every=steps, seed=seed)
    models, data = {}, {}
    for label, (arch, sizes) in runs.items():
        torch.manual_seed(seed)
        models[label] = build_model(ModelConfig(architecture=arch), sizes)
        data[label] = make_data(sizes, batch * steps, seed)
    speeds: dict[str, list[float]] = {label: [] for label in runs}
    step_ms: dict[str, list[float]] = {label: [] for label in runs}
    for r in range(rounds + 1):
        for label in runs:
            gc.collect()
            result = train(models[label], *data[label], cfg)
            if r > 0:  # round 0 warms up allocators and kernels
                speeds[label].append(result.samples_per_s)
                step_ms[label].append(1000 * result.seconds / result.steps)
    return {
        label: {
            "samples_per_s": statistics.median(speeds[label]),
            "step_ms": statistics.median(step_ms[label]),
            "best_samples_per_s": max(speeds[label]),  # least disturbed round on a shared machine
            "best_step_ms": min(step_ms[label]),
            "rounds": speeds[label],
        }
        for label in runs
    }


def vocab_scaling(arch: str, vocabs: list[int], batch: int, steps: int, rounds: int, seed: int) -> dict:
    """Step time with the first id field at each vocabulary size (everything else equal), interleaved."""
    timed = time_runs({str(v): (arch, field_sizes(v)) for v in vocabs}, batch, steps, rounds, seed)
    return {v: timed[str(v)] for v in vocabs}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(ARCHITECTURES), help="comma-separated architectures")
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=30, help="steps per model per round")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--vocabs", default="100000,10000000", help="id vocabulary sizes to compare ('' to skip)")
    ap.add_argument("--vocab-model", default="taml")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [m for m in args.models.split(",") if m]

    results = {
        "setup": {
            "batch": args.batch,
            "fields": len(field_sizes(100_000)),
            "embedding_dim": ModelConfig().embedding_dim,
            "steps_per_round": args.steps,
            "rounds": args.rounds,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "command": " ".join(["benchmarks/model_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        },
        "models": time_models(names, field_sizes(100_000), args.batch, args.steps, args.rounds, args.seed),
    }
    if "esmm" in results["models"]:
        # Per-round ratios: a shared machine slows a whole round, so the ratio is steadier than speeds.
        esmm = results["models"]["esmm"]["rounds"]
        for r in results["models"].values():
            r["ratio_to_esmm"] = statistics.median(a / b for a, b in zip(r["rounds"], esmm, strict=True))
    vocabs = [int(v) for v in args.vocabs.split(",") if v]
    if vocabs:
        scaling = vocab_scaling(args.vocab_model, vocabs, args.batch, args.steps, args.rounds, args.seed)
        base = scaling[vocabs[0]]["step_ms"]
        for v in vocabs:
            scaling[v]["ratio_to_smallest"] = scaling[v]["step_ms"] / base
        results["vocab_scaling"] = {"model": args.vocab_model, "by_vocab": scaling}

    print(
        "| model | samples/s (median) | samples/s (best round) | ms/step (median) | speed / ESMM (median) |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, r in results["models"].items():
        ratio = f"{r['ratio_to_esmm']:.2f}" if "ratio_to_esmm" in r else ""
        print(
            f"| {name} | {r['samples_per_s']:,.0f} | {r['best_samples_per_s']:,.0f} | {r['step_ms']:.1f} | {ratio} |"
        )
    if vocabs:
        print(
            f"\n| id vocabulary ({args.vocab_model}) | ms/step (median) | ms/step (best) | ratio of medians |"
        )
        print("|---:|---:|---:|---:|")
        for v, r in results["vocab_scaling"]["by_vocab"].items():
            print(f"| {v:,} | {r['step_ms']:.1f} | {r['best_step_ms']:.1f} | {r['ratio_to_smallest']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()

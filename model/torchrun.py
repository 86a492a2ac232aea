"""The ``torchrun`` entry point of data-parallel training (model.distributed holds the parts).

Run a training job on several processes with::

    torchrun --nproc_per_node=2 -m model.torchrun --data data.npz --out DIR [--train-config train.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file

from model.distributed import barrier, init_from_env
from model.registry import build_model
from model.spec import ModelConfig, TrainConfig
from model.trainer import train


def main(argv: list[str] | None = None) -> None:
    """torchrun entry point: train on an .npz (x, click, conversion, sizes) and save the final weights."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help=".npz with x [N, F] int64, click, conversion, sizes")
    ap.add_argument("--out", required=True, help="folder for weights.safetensors and result.json (rank 0)")
    ap.add_argument("--model-config", help="JSON file of a ModelConfig")
    ap.add_argument("--train-config", help="JSON file of a TrainConfig")
    ap.add_argument("--checkpoint-dir", help="resumable checkpoints")
    args = ap.parse_args(argv)

    info = init_from_env()

    data = np.load(args.data)
    model_cfg = (
        ModelConfig.model_validate_json(Path(args.model_config).read_text())
        if args.model_config
        else ModelConfig()
    )
    train_cfg = (
        TrainConfig.model_validate_json(Path(args.train_config).read_text())
        if args.train_config
        else TrainConfig()
    )
    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg, data["sizes"].tolist())
    result = train(
        model, data["x"], data["click"], data["conversion"], train_cfg, checkpoint_dir=args.checkpoint_dir
    )
    if info.is_main:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            out / "weights.safetensors",
        )
        (out / "result.json").write_text(json.dumps(result.summary(), indent=2))
    barrier(info)
    if info.active:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

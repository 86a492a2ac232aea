"""Two gloo processes under torchrun equal one process (within float tolerance)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from model.registry import build_model
from model.spec import ModelConfig, TrainConfig
from model.trainer import train

ROOT = Path(__file__).resolve().parents[2]
SIZES = [40, 25, 6]


@pytest.mark.timeout(180)
def test_two_processes_equal_one(tmp_path):
    rng = np.random.default_rng(0)
    n = 900  # 5 global batches of 200 (the last one 100): uneven shards are covered too
    x = np.stack([rng.integers(0, s, n) for s in SIZES], 1).astype(np.int64)
    click = (rng.random(n) < 0.3 + 0.3 * (x[:, 1] % 2)).astype(np.float32)
    conv = click * (rng.random(n) < 0.4).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, click=click, conversion=conv, sizes=np.array(SIZES))
    cfg = TrainConfig(batch_size=200, epochs=2, progress=False, seed=3, lr=0.01)
    (tmp_path / "train.json").write_text(cfg.model_dump_json())

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "model.torchrun", "--data", str(tmp_path / "data.npz"), "--out", str(tmp_path / "out"),
        "--train-config", str(tmp_path / "train.json"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = load_file(str(tmp_path / "out" / "weights.safetensors"))

    torch.manual_seed(cfg.seed)
    model = build_model(ModelConfig(), SIZES)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, x, click, conv, cfg)
    one = model.state_dict()
    assert one.keys() == two.keys()
    moved = 0.0
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5, msg=k)
        moved = max(moved, float((one[k] - initial[k]).abs().max()))
    assert moved > 1e-3  # the comparison is about a model that actually trained

"""PyTorch internals behind model/torch_shims.py: checked on the installed release (the lock's pin),
a clear error on another."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from model import torch_shims

ROOT = Path(__file__).resolve().parents[2]


def test_checked_on_the_pinned_release():
    pin = re.search(r"^torch==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    assert pin and pin.group(1) == torch_shims.TORCH_CHECKED


def test_another_release_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch_shims, "TORCH_CHECKED", "1.0.0")
    torch_shims._check.cache_clear()
    try:
        with pytest.raises(torch_shims.TorchVersionError, match=r"checked on torch==1\.0\.0"):
            torch_shims.sparse_entries(torch.zeros(1, 1).to_sparse())
    finally:
        torch_shims._check.cache_clear()


def test_sparse_entries_keep_every_lookup_of_an_embedding_backward():
    emb = nn.Embedding(10, 3, sparse=True)
    ids = torch.tensor([4, 1, 4, 7, 4])
    emb(ids).sum().backward()
    rows, values = torch_shims.sparse_entries(emb.weight.grad)
    assert not emb.weight.grad.is_coalesced()
    assert sorted(rows.tolist()) == [1, 4, 4, 4, 7]
    dense = torch.zeros(10, 3).index_add_(0, rows, values)
    torch.testing.assert_close(dense, emb.weight.grad.to_dense())


def test_ddp_ignores_the_named_parameters(tmp_path):
    import torch.distributed as dist

    model = nn.Sequential(nn.Embedding(5, 2), nn.Linear(2, 1))
    torch_shims.ddp_ignore(model, ["0.weight"])
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        assert ddp.parameters_to_ignore == {"0.weight"}
    finally:
        dist.destroy_process_group()

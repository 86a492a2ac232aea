"""Data-parallel training under ``torchrun``: gloo on CPU, NCCL on GPU.

Every rank walks the same global batch sequence (same seed, same permutation) and takes a disjoint,
contiguous shard of each global batch. Dense parameters are averaged by DistributedDataParallel;
the sparse embedding gradients are gathered from all ranks by :func:`sync_sparse_grads` (NCCL has
no sparse all-reduce, so DDP is told to ignore those weights). Each rank's loss is scaled by
``world · n_local / n_global`` so that averaging equals the gradient of the global batch mean.

The trainer (``model.trainer``) calls these; the ``torchrun`` entry point that runs a training job
on several processes is ``model.torchrun`` (it imports the trainer, which imports this module).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from model.optim import sum_duplicates
from model.torch_shims import ddp_ignore


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> DistInfo:
    """The process group this process belongs to (a single-process default when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(
        dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    )


def init_from_env(backend: str | None = None) -> DistInfo:
    """Join the group torchrun describes in the environment (nccl when CUDA is usable, else gloo)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    return current()


def shard(indices: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's contiguous part of a global batch (sizes differ by at most one)."""
    if not info.active:
        return indices
    return torch.tensor_split(indices, info.world_size)[info.rank]


def wrap(model: nn.Module, info: DistInfo, device: torch.device, sparse_names: list[str]) -> nn.Module:
    """DistributedDataParallel over the dense parameters; the named sparse weights are synced by hand."""
    if not info.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ddp_ignore(model, sparse_names)
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


def sync_sparse_grads(params: list[nn.Parameter], info: DistInfo) -> None:
    """Replace each sparse gradient by the average over ranks (concatenated rows / world size)."""
    if not info.active:
        return
    for p in params:
        g = p.grad
        if g is None:
            g = torch.sparse_coo_tensor(
                torch.zeros(1, 0, dtype=torch.int64, device=p.device),
                p.new_zeros(0, p.shape[1]),
                p.shape,
                check_invariants=False,
            )
        rows, values = sum_duplicates(g)
        n = torch.tensor([rows.numel()], device=p.device)
        counts = [torch.zeros_like(n) for _ in range(info.world_size)]
        dist.all_gather(counts, n)
        longest = int(max(c.item() for c in counts))
        # all_gather needs equal shapes: pad with row 0 and zero values (adding zero changes nothing).
        pad = longest - rows.numel()
        rows_p = torch.cat([rows, rows.new_zeros(pad)])
        vals_p = torch.cat([values, values.new_zeros(pad, values.shape[1])])
        all_rows = [torch.empty_like(rows_p) for _ in range(info.world_size)]
        all_vals = [torch.empty_like(vals_p) for _ in range(info.world_size)]
        dist.all_gather(all_rows, rows_p)
        dist.all_gather(all_vals, vals_p)
        rows_cat = torch.cat([r[: int(c.item())] for r, c in zip(all_rows, counts, strict=True)])
        vals_cat = (
            torch.cat([v[: int(c.item())] for v, c in zip(all_vals, counts, strict=True)]) / info.world_size
        )
        p.grad = torch.sparse_coo_tensor(rows_cat.unsqueeze(0), vals_cat, p.shape, check_invariants=False)


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()

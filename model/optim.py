"""Optimizers whose step cost does not grow with the vocabulary.

Embedding tables get sparse gradients (only the rows of the batch) and :class:`LazyAdam`, which
updates exactly those rows, L2 included; every other parameter uses dense ``torch.optim.Adam``
with the same hyperparameters (L2 added to the gradient, as in the paper's "L2 1e-6").
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from model.spec import TrainConfig
from model.torch_shims import sparse_entries


class LazyAdam(torch.optim.Optimizer):
    """Adam for sparse gradients: moments and weights move only on the rows a batch touched.

    Like TensorFlow's LazyAdam and ``torch.optim.SparseAdam`` (one global step count for the bias
    correction), plus L2 on the touched rows: g_i <- g_i + λ w_i. A step costs O(rows in the
    batch · dim), independent of the table size.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        # Moments are allocated here, once per run, so that no step pays for zeroing a huge table.
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = {
                    "step": torch.zeros((), dtype=torch.float64),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if not grad.is_sparse:
                    raise RuntimeError("LazyAdam expects sparse gradients (embedding with sparse=True)")
                rows, values = sum_duplicates(grad)
                state = self.state[p]
                state["step"] += 1
                step = float(state["step"])
                weights = p.index_select(0, rows)
                if group["weight_decay"]:
                    values = values.add(weights, alpha=group["weight_decay"])
                m = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(values, alpha=1 - beta1)
                v = (
                    state["exp_avg_sq"]
                    .index_select(0, rows)
                    .mul_(beta2)
                    .addcmul_(values, values, value=1 - beta2)
                )
                state["exp_avg"].index_copy_(0, rows, m)
                state["exp_avg_sq"].index_copy_(0, rows, v)
                bias1 = 1 - beta1**step
                bias2 = 1 - beta2**step
                denom = v.div_(bias2).sqrt_().add_(group["eps"])
                p.index_copy_(0, rows, weights.addcdiv_(m, denom, value=-group["lr"] / bias1))
        return None


def sum_duplicates(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique rows of a sparse row gradient and their summed values.

    An embedding backward leaves one entry per looked-up id (duplicates included); sort + segment
    sum (in a fixed order) is an order of magnitude faster than ``Tensor.coalesce`` here, and deterministic.
    """
    if grad.is_coalesced():
        return grad.indices()[0], grad.values()
    rows, values = sparse_entries(grad)
    if rows.numel() == 0:
        return rows, values
    sorted_rows, order = torch.sort(rows, stable=True)
    unique, counts = torch.unique_consecutive(sorted_rows, return_counts=True)
    summed = torch.segment_reduce(values.index_select(0, order), "sum", lengths=counts)
    return unique, summed


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(sparse embedding weights, dense rest) of a model built from ``model.layers``."""
    from model.layers import FieldEmbedding

    sparse_ids = {id(m.weight) for m in model.modules() if isinstance(m, FieldEmbedding)}
    sparse = [p for p in model.parameters() if id(p) in sparse_ids]
    dense = [p for p in model.parameters() if id(p) not in sparse_ids]
    return sparse, dense


def make_optimizers(model: nn.Module, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, LazyAdam]:
    """Dense Adam (L2 as weight_decay, i.e. added to the gradient) and LazyAdam for embeddings."""
    sparse, dense = split_parameters(model)
    on_cpu = all(p.device.type == "cpu" for p in dense)
    dense_opt = torch.optim.Adam(
        dense,
        lr=cfg.lr,
        betas=cfg.adam_betas,
        eps=cfg.adam_eps,
        weight_decay=cfg.l2,
        # foreach batches the small tensors into few kernels; on CUDA the fused kernel is faster still.
        foreach=on_cpu,
        fused=None if on_cpu else True,
    )
    sparse_opt = LazyAdam(sparse, lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, weight_decay=cfg.l2)
    return dense_opt, sparse_opt

"""Building blocks shared by every architecture, written for speed on small batches of wide inputs.

* :class:`FieldEmbedding`: all fields in one table (row offset per field) with sparse gradients,
  so an optimizer step touches only the rows of the batch, whatever the vocabulary size.
* :class:`GroupedLinear` / :class:`GroupedMLP`: G independent layers (experts, towers, learners)
  as one ``torch.baddbmm`` on stacked weights instead of a Python loop of ``nn.Linear``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from model.spec import Activation


def activation(name: Activation) -> nn.Module:
    # In place: the pre-activation is never needed again, and not allocating it saves memory traffic.
    return {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}[name](
        **({} if name == "gelu" else {"inplace": True})
    )


class FieldEmbedding(nn.Module):
    """One embedding table for every field; ``forward`` returns the concatenation e = [e_1 ‖ ... ‖ e_F].

    ``offsets[j]`` is the first row of field j, so row ``offsets[j] + i`` is index i of field j.
    """

    def __init__(self, sizes: Sequence[int], dim: int, init_std: float) -> None:
        super().__init__()
        self.sizes = [int(s) for s in sizes]
        self.dim = dim
        self.init_std = init_std
        offsets = torch.tensor([0, *self.sizes[:-1]], dtype=torch.int64).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.weight = nn.Parameter(torch.empty(sum(self.sizes), dim))
        nn.init.normal_(self.weight, std=init_std)

    @property
    def num_fields(self) -> int:
        return len(self.sizes)

    @property
    def out_dim(self) -> int:
        return self.num_fields * self.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x + self.offsets
        return F.embedding(rows, self.weight, sparse=True).flatten(1)


class GroupedLinear(nn.Module):
    """G independent affine maps applied to G inputs at once: y[g] = x[g] @ W[g] + b[g].

    ``x`` is [G, B, in] (or [B, in], shared by every group) and the result [G, B, out]. Initialised
    like ``nn.Linear`` (uniform ±1/sqrt(in)) so that grouping changes no numbers' distribution.
    """

    def __init__(self, groups: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.groups, self.in_dim, self.out_dim = groups, in_dim, out_dim
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(groups, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            # Same input for every group: one wide matmul beats G narrow ones.
            w = self.weight.permute(1, 0, 2).reshape(self.in_dim, self.groups * self.out_dim)
            y = torch.addmm(self.bias.permute(1, 0, 2).reshape(1, -1), x, w)
            return y.view(x.shape[0], self.groups, self.out_dim).transpose(0, 1)
        return torch.baddbmm(self.bias, x, self.weight)


class GroupedMLP(nn.Module):
    """G towers in_dim -> hidden... -> out_dim evaluated together; the last layer has no activation."""

    def __init__(
        self, groups: int, in_dim: int, hidden: Sequence[int], out_dim: int | None, act: Activation
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden]
        self.hidden = nn.ModuleList(GroupedLinear(groups, a, b) for a, b in zip(dims, dims[1:], strict=False))
        self.act = activation(act)
        self.out = GroupedLinear(groups, dims[-1], out_dim) if out_dim else None
        self.out_dim = out_dim or dims[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = self.act(layer(x))
        return self.out(x) if self.out is not None else x


class ExpertBank(nn.Module):
    """n one-layer experts over one shared input, fused into a single matmul: [B, in] -> [B, n, d]."""

    def __init__(self, n: int, in_dim: int, dim: int, act: Activation) -> None:
        super().__init__()
        self.n, self.dim = n, dim
        self.linear = nn.Linear(in_dim, n * dim)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x)).view(x.shape[0], self.n, self.dim)


class _Mix(torch.autograd.Function):
    """h[g, b] = Σ_j gates[b, g, j] · experts[b, j] with every matmul on contiguous operands.

    Autograd's own backward of ``bmm(...).transpose(0, 1)`` feeds strided gradients to bmm,
    which falls off the fast path on CPU (~8x slower for these shapes).
    """

    @staticmethod
    def forward(ctx, gates: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(gates, experts)
        return torch.bmm(gates, experts).transpose(0, 1).contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        gates, experts = ctx.saved_tensors
        grad_b = grad.transpose(0, 1).contiguous()  # [B, G, d]
        grad_gates = grad_experts = None
        if ctx.needs_input_grad[0]:
            grad_gates = torch.bmm(experts, grad_b.transpose(1, 2).contiguous()).transpose(1, 2)
        if ctx.needs_input_grad[1]:
            grad_experts = torch.bmm(gates.transpose(1, 2).contiguous(), grad_b)
        return grad_gates, grad_experts


def mix(gates: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Gate-weighted sums: gates [B, G, n] over experts [B, n, d] -> [G, B, d] (ready for GroupedMLP)."""
    return _Mix.apply(gates, experts)


def scatter_gates(weights: torch.Tensor, select: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Place per-gate softmax weights [B, G, k] on the experts they select ([G, k] indices) -> [B, G, n].

    The unselected experts get weight 0, so one ``bmm`` mixes every gate's own subset of experts.
    """
    full = weights.new_zeros(weights.shape[0], weights.shape[1], n_experts)
    return full.scatter(2, select.unsqueeze(0).expand(weights.shape[0], -1, -1), weights)

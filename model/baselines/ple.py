"""PLE: Progressive Layered Extraction (Tang et al., RecSys '20).

Each extraction level (a CGC layer, Sec. 4.2-4.3) has task-specific experts E_t and shared experts
E_s. Task t's gate mixes [E_t ‖ E_s] of its own input; in every level but the last a shared gate
mixes all experts of the shared input (Eq. 5-7). Level 1 inputs are all the embedding; level l > 1
reads the previous level's task and shared outputs. Towers 64-32-1 on the last level's task outputs.
Defaults: 2 levels, 1 specific expert per task and 1 shared per level, experts of 64 units (the
paper tunes these; this is its smallest multi-level setting). CVR sample space as in MMoE.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from model.base import LossParts, MultiTaskModel, Outputs, joint_outputs, two_tower_heads
from model.baselines.common import two_task_loss
from model.layers import ExpertBank, GroupedLinear, GroupedMLP, activation, mix, scatter_gates
from model.spec import Activation, ModelConfig

N_TASKS = 2


class CGCLevel(nn.Module):
    """One extraction level. Inputs: [T+1, B, d] (tasks then shared) or [B, d] when all equal."""

    def __init__(
        self, in_dim: int, n_specific: int, n_shared: int, dim: int, act: Activation, first: bool, last: bool
    ) -> None:
        super().__init__()
        self.n_specific, self.n_shared, self.last = n_specific, n_shared, last
        self.n_experts = N_TASKS * n_specific + n_shared
        # Expert e reads input owner[e]: task t's experts read input t, shared experts read input T.
        owner = [t for t in range(N_TASKS) for _ in range(n_specific)] + [N_TASKS] * n_shared
        self.register_buffer("owner", torch.tensor(owner), persistent=False)
        # Level 1: every expert reads the embedding (one fused matmul); later: each reads its owner's input.
        self.bank = ExpertBank(self.n_experts, in_dim, dim, act) if first else None
        self.grouped = None if first else GroupedLinear(self.n_experts, in_dim, dim)
        self.act = activation(act)
        self.k_task = n_specific + n_shared
        self.task_gates = GroupedLinear(N_TASKS, in_dim, self.k_task)
        self.shared_gate = None if last else nn.Linear(in_dim, self.n_experts)
        select = [
            list(range(t * n_specific, (t + 1) * n_specific))
            + list(range(N_TASKS * n_specific, self.n_experts))
            for t in range(N_TASKS)
        ]
        self.register_buffer("select", torch.tensor(select), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bank is not None:
            experts = self.bank(x)
            task_in, shared_in = x, x
        else:
            assert self.grouped is not None
            experts = self.act(self.grouped(x.index_select(0, self.owner))).transpose(0, 1)
            task_in, shared_in = x[:N_TASKS], x[N_TASKS]
        batch = experts.shape[0]
        g = torch.softmax(self.task_gates(task_in).float(), dim=-1).transpose(0, 1)  # [B, T, k]
        gates = scatter_gates(g, self.select, self.n_experts)
        if self.shared_gate is not None:
            gs = torch.softmax(self.shared_gate(shared_in).float(), dim=-1).view(batch, 1, self.n_experts)
            gates = torch.cat([gates, gs], dim=1)
        return mix(gates.to(experts.dtype), experts)


class PLE(MultiTaskModel):
    architecture = "ple"

    def __init__(self, sizes: Sequence[int], config: ModelConfig) -> None:
        super().__init__(sizes, config)
        o = config.ple
        self.options = o
        dims = [self.embedding.out_dim] + [o.expert_dim] * (o.n_levels - 1)
        self.levels = nn.ModuleList(
            CGCLevel(
                d, o.n_specific, o.n_shared, o.expert_dim, config.activation, i == 0, i == o.n_levels - 1
            )
            for i, d in enumerate(dims)
        )
        self.towers = GroupedMLP(N_TASKS, o.expert_dim, o.tower_dims, 1, config.activation)

    def forward(self, x: torch.Tensor) -> Outputs:
        h = self.embedding(x)
        for level in self.levels:
            h = level(h)
        z = self.towers(h[:N_TASKS]).squeeze(-1)
        return joint_outputs(z[0], z[1])

    def loss(
        self, outputs: Outputs, click: torch.Tensor, conversion: torch.Tensor
    ) -> tuple[torch.Tensor, LossParts]:
        return two_task_loss(outputs, click, conversion, self.options.cvr_space)

    def output_heads(self, outputs: Outputs) -> dict[str, tuple[list[torch.Tensor], torch.Tensor]]:
        assert self.towers.out is not None
        return two_tower_heads(self.towers.out.bias, outputs)

"""MMoE: Multi-gate Mixture-of-Experts (Ma et al., KDD '18).

y_t = h_t(f_t(x)),  f_t(x) = Σ_i g_t(x)_i f_i(x),  g_t(x) = softmax(W_{g,t} x)   (Eq. 5-6)
with x the concatenated embedding, 3 shared one-layer experts of 64 units and a gate per task.
Towers 64-32-1. The paper trains each task on its own label; here the CVR task's sample space is
an option: ``clicked`` (default: post-click CVR on clicked impressions, as the paper would with a
conversion label defined after a click) or ``entire_space`` (ESMM-style CTCVR loss).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from model.base import LossParts, MultiTaskModel, Outputs, joint_outputs, two_tower_heads
from model.baselines.common import two_task_loss
from model.layers import ExpertBank, GroupedMLP, mix
from model.spec import ModelConfig


class MMoE(MultiTaskModel):
    architecture = "mmoe"

    def __init__(self, sizes: Sequence[int], config: ModelConfig) -> None:
        super().__init__(sizes, config)
        o = config.mmoe
        self.options = o
        d_in = self.embedding.out_dim
        self.experts = ExpertBank(o.n_experts, d_in, o.expert_dim, config.activation)
        self.gates = nn.Linear(d_in, 2 * o.n_experts)
        self.towers = GroupedMLP(2, o.expert_dim, o.tower_dims, 1, config.activation)

    def forward(self, x: torch.Tensor) -> Outputs:
        e = self.embedding(x)
        experts = self.experts(e)
        g = torch.softmax(self.gates(e).view(e.shape[0], 2, self.options.n_experts).float(), dim=-1)
        z = self.towers(mix(g.to(experts.dtype), experts)).squeeze(-1)
        out = joint_outputs(z[0], z[1])
        out["gates"] = g
        return out

    def loss(
        self, outputs: Outputs, click: torch.Tensor, conversion: torch.Tensor
    ) -> tuple[torch.Tensor, LossParts]:
        return two_task_loss(outputs, click, conversion, self.options.cvr_space)

    def output_heads(self, outputs: Outputs) -> dict[str, tuple[list[torch.Tensor], torch.Tensor]]:
        assert self.towers.out is not None
        return two_tower_heads(self.towers.out.bias, outputs)

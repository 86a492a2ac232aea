"""MLP baseline: the "BASE" of ESMM (Ma et al., SIGIR '18, Sec. 3.1 / 4.2).

Two independent DNNs, embedding -> 192-64-32-1, one for CTR trained on all impressions and one for
CVR trained on clicked impressions only (the conventional post-click sample space, which is what
exposes the sample-selection bias ESMM fixes). Independent means separate embedding tables too
(``shared_embedding=True`` shares them); both towers run as one grouped matmul, which changes no
number. At scoring time pCTCVR = pCTR · pCVR like every model here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from model.base import LossParts, MultiTaskModel, Outputs, joint_outputs, two_tower_heads
from model.baselines.common import two_task_loss
from model.layers import FieldEmbedding, GroupedMLP
from model.spec import ModelConfig


class MLP(MultiTaskModel):
    architecture = "mlp"

    def __init__(self, sizes: Sequence[int], config: ModelConfig) -> None:
        super().__init__(sizes, config)
        o = config.mlp
        self.shared = o.shared_embedding
        if not self.shared:
            self.cvr_embedding = FieldEmbedding(self.sizes, config.embedding_dim, config.embedding_init_std)
        self.towers = GroupedMLP(2, self.embedding.out_dim, o.tower_dims, 1, config.activation)

    def forward(self, x: torch.Tensor) -> Outputs:
        e = self.embedding(x)
        h = e if self.shared else torch.stack([e, self.cvr_embedding(x)])
        z = self.towers(h).squeeze(-1)
        return joint_outputs(z[0], z[1])

    def loss(
        self, outputs: Outputs, click: torch.Tensor, conversion: torch.Tensor
    ) -> tuple[torch.Tensor, LossParts]:
        return two_task_loss(outputs, click, conversion, "clicked")

    def output_heads(self, outputs: Outputs) -> dict[str, tuple[list[torch.Tensor], torch.Tensor]]:
        assert self.towers.out is not None
        return two_tower_heads(self.towers.out.bias, outputs)

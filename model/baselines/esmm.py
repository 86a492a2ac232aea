"""ESMM: Entire Space Multi-task Model (Ma et al., SIGIR '18).

Shared embedding (Sec. 3.2, "feature representation transfer"), a CTR and a CVR tower (same
192-64-32-1 shape as the MLP baseline so that only the modelling differs), pCTCVR = pCTR · pCVR
(Eq. 3), and the loss over all impressions L = BCE(pCTR, click) + BCE(pCTCVR, click&conv) (Eq. 4);
the CVR tower gets no direct supervision. The paper's towers are 360-200-80-2; we keep the
project's 192-64-32 for comparability (an option).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from model.base import LossParts, MultiTaskModel, Outputs, joint_outputs, two_tower_heads
from model.baselines.common import two_task_loss
from model.layers import GroupedMLP
from model.spec import ModelConfig


class ESMM(MultiTaskModel):
    architecture = "esmm"

    def __init__(self, sizes: Sequence[int], config: ModelConfig) -> None:
        super().__init__(sizes, config)
        self.towers = GroupedMLP(2, self.embedding.out_dim, config.esmm.tower_dims, 1, config.activation)

    def forward(self, x: torch.Tensor) -> Outputs:
        z = self.towers(self.embedding(x)).squeeze(-1)
        return joint_outputs(z[0], z[1])

    def loss(
        self, outputs: Outputs, click: torch.Tensor, conversion: torch.Tensor
    ) -> tuple[torch.Tensor, LossParts]:
        return two_task_loss(outputs, click, conversion, "entire_space")

    def output_heads(self, outputs: Outputs) -> dict[str, tuple[list[torch.Tensor], torch.Tensor]]:
        assert self.towers.out is not None
        return two_tower_heads(self.towers.out.bias, outputs)

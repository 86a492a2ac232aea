"""AITM: Adaptive Information Transfer Multi-task (Xi et al., KDD '21), two tasks click -> conversion.

q_t = Encoder_t(e)  (tower 128-64-32 on the shared embedding)
p_1 = ReLU(W_p q_click)                                       (information transfer, "Info" MLP)
z_2 = Σ_{u ∈ {p_1, q_2}} w_u h_1(u),  w_u = softmax_u(<h_2(u), h_3(u)> / √k)   (AIT module, Eq. 2-4)
ŷ_1 = σ(head_1(q_1)), ŷ_2 = σ(head_2(z_2))                   (ŷ_2: conversion on the entire space)
L = BCE(ŷ_1, click) + BCE(ŷ_2, conv) + α Σ max(ŷ_2 - ŷ_1, 0), α = 0.6   (Eq. 5-7)

AITM predicts the end-to-end conversion probability directly, not a post-click CVR. To fit the
common interface pCTCVR = min(ŷ_2, ŷ_1) (the calibrator pushes ŷ_2 <= ŷ_1 in training; the clip
makes it a guarantee) and pCVR = pCTCVR / pCTR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from model.base import LossParts, MultiTaskModel, Outputs
from model.layers import GroupedMLP
from model.losses import bce_logits, behavioural_calibrator
from model.spec import ModelConfig


class AITM(MultiTaskModel):
    architecture = "aitm"
    ctcvr_head = True  # conv_head predicts the end-to-end conversion: its base rate is CTR · CVR

    def __init__(self, sizes: Sequence[int], config: ModelConfig) -> None:
        super().__init__(sizes, config)
        o = config.aitm
        self.options = o
        k = o.tower_dims[-1]
        self.k = k
        self.encoders = GroupedMLP(2, self.embedding.out_dim, o.tower_dims, None, config.activation)
        self.transfer = nn.Sequential(nn.Linear(k, k), nn.ReLU())
        self.attention = nn.Linear(k, 3 * k)  # h_1, h_2, h_3 fused
        self.click_head = nn.Linear(k, 1)
        self.conv_head = nn.Linear(k, 1)

    def forward(self, x: torch.Tensor) -> Outputs:
        q = self.encoders(self.embedding(x))  # [2, B, k]
        p = self.transfer(q[0])
        u = torch.stack([p, q[1]], dim=1)  # [B, 2, k]
        h1, h2, h3 = self.attention(u).split(self.k, dim=-1)
        w = torch.softmax(((h2 * h3).sum(-1) / math.sqrt(self.k)).float(), dim=1)  # [B, 2]
        z = (w.unsqueeze(-1).to(h1.dtype) * h1).sum(1)
        ctr_logit = self.click_head(q[0]).squeeze(-1).float()
        conv_logit = self.conv_head(z).squeeze(-1).float()
        p_ctr, p_conv = torch.sigmoid(ctr_logit), torch.sigmoid(conv_logit)
        p_ctcvr = torch.minimum(p_conv, p_ctr)
        p_cvr = (p_ctcvr / p_ctr.clamp(min=torch.finfo(p_ctr.dtype).tiny)).clamp(max=1.0)
        return {
            "ctr_logit": ctr_logit,
            "conv_logit": conv_logit,
            "p_ctr": p_ctr,
            "p_conv": p_conv,
            "p_cvr": p_cvr,
            "p_ctcvr": p_ctcvr,
            "transfer_weight": w,
        }

    def loss(
        self, outputs: Outputs, click: torch.Tensor, conversion: torch.Tensor
    ) -> tuple[torch.Tensor, LossParts]:
        parts: LossParts = {
            "ctr": bce_logits(outputs["ctr_logit"], click),
            "ctcvr": bce_logits(outputs["conv_logit"], conversion * click),
            "calibrator": behavioural_calibrator(outputs["p_conv"], outputs["p_ctr"]),
        }
        total = parts["ctr"] + parts["ctcvr"] + self.options.calibrator_weight * parts["calibrator"]
        return total, parts

    def hold_ctr(self, outputs: Outputs) -> Outputs:
        # ŷ_2 has its own head; the click encoder still learns through the transfer p_1, which is
        # AITM's point.
        return {**outputs, "ctr_logit": outputs["ctr_logit"].detach(), "p_ctr": outputs["p_ctr"].detach()}

    def output_heads(self, outputs: Outputs) -> dict[str, tuple[list[torch.Tensor], torch.Tensor]]:
        """click_head -> pCTR; conv_head -> ŷ_conv, the end-to-end conversion (``ctcvr_head``)."""
        return {
            "ctr": ([self.click_head.bias], outputs["ctr_logit"].unsqueeze(0)),
            "cvr": ([self.conv_head.bias], outputs["conv_logit"].unsqueeze(0)),
        }

"""The interface every architecture implements.

``forward(x: LongTensor[B, F]) -> Outputs`` with at least ``ctr_logit``, ``p_ctr``, ``p_cvr`` and
``p_ctcvr`` ([B] tensors, float32), and ``loss(outputs, click, conversion) -> (total, parts)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from model.layers import FieldEmbedding
from model.spec import ModelConfig

Outputs = dict[str, torch.Tensor]
LossParts = dict[str, torch.Tensor]


class MultiTaskModel(nn.Module):
    """Base of TAML and the baselines: a shared field embedding plus the joint CTR/CVR heads."""

    architecture: str = ""

    def __init__(self, sizes: Sequence[int], config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.sizes = [int(s) for s in sizes]
        self.embedding = FieldEmbedding(self.sizes, config.embedding_dim, config.embedding_init_std)

    def embedding_modules(self) -> list[FieldEmbedding]:
        """Every FieldEmbedding of the model (their weights get sparse gradients)."""
        return [m for m in self.modules() if isinstance(m, FieldEmbedding)]

    def loss(
        self, outputs: Outputs, click: torch.Tensor, conversion: torch.Tensor
    ) -> tuple[torch.Tensor, LossParts]:
        raise NotImplementedError


def joint_outputs(ctr_logit: torch.Tensor, cvr_logit: torch.Tensor) -> Outputs:
    """pCTR = σ(z_ctr), pCVR = σ(z_cvr), pCTCVR = pCTR · pCVR (and its log, for a stable CTCVR loss).

    pCTCVR <= pCTR holds exactly in floating point: rounding a product by a factor <= 1 never
    exceeds the other factor.
    """
    ctr_logit, cvr_logit = ctr_logit.float(), cvr_logit.float()
    p_ctr, p_cvr = torch.sigmoid(ctr_logit), torch.sigmoid(cvr_logit)
    return {
        "ctr_logit": ctr_logit,
        "cvr_logit": cvr_logit,
        "p_ctr": p_ctr,
        "p_cvr": p_cvr,
        "p_ctcvr": p_ctr * p_cvr,
        "log_p_ctcvr": F.logsigmoid(ctr_logit) + F.logsigmoid(cvr_logit),
    }

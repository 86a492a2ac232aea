"""Loss shared by the baselines whose CVR task lives either on clicks or on the entire space."""

from __future__ import annotations

import torch

from model.base import LossParts, Outputs
from model.losses import bce_log_prob, bce_logits, masked_bce_logits
from model.spec import CvrSpace


def two_task_loss(
    outputs: Outputs, click: torch.Tensor, conversion: torch.Tensor, cvr_space: CvrSpace
) -> tuple[torch.Tensor, LossParts]:
    """clicked: L_ctr + BCE(pCVR, conv | click=1); entire_space: L_ctr + BCE(pCTR·pCVR, conv) on all."""
    parts: LossParts = {"ctr": bce_logits(outputs["ctr_logit"], click)}
    if cvr_space == "clicked":
        parts["cvr"] = masked_bce_logits(outputs["cvr_logit"], conversion, click)
    else:
        parts["ctcvr"] = bce_log_prob(outputs["log_p_ctcvr"], conversion * click)
    total = sum(parts.values(), torch.zeros((), device=click.device))
    return total, parts

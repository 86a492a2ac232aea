"""Loss terms used by the architectures. All return a mean over the batch (a 0-dim tensor)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_LOG_HALF = -math.log(2.0)


def bce_logits(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of sigmoid(logit) against a 0/1 or soft target."""
    return F.binary_cross_entropy_with_logits(logit.float(), target.float())


def log1mexp(log_p: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(log_p)) for log_p <= 0, stable at both ends (Mächler, 2012)."""
    log_p = log_p.clamp(max=-1e-12)
    return torch.where(log_p > _LOG_HALF, torch.log(-torch.expm1(log_p)), torch.log1p(-torch.exp(log_p)))


def bce_log_prob(log_p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of a probability given by its log (e.g. log pCTCVR = log pCTR + log pCVR).

    Working in logs keeps a product of two small probabilities exact where ``p = a*b`` would underflow.
    """
    target = target.float()
    return -(target * log_p + (1.0 - target) * log1mexp(log_p)).mean()


def masked_bce_logits(logit: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE averaged over rows where ``mask`` is 1 (0 when no row is): e.g. CVR on clicked impressions."""
    per_row = F.binary_cross_entropy_with_logits(logit.float(), target.float(), reduction="none")
    mask = mask.float()
    return (per_row * mask).sum() / mask.sum().clamp(min=1.0)


def self_distillation(student_logits: torch.Tensor, teacher_prob: torch.Tensor) -> torch.Tensor:
    """TAML self-distillation (Sec. 3.4): Σ_k BCE(p_k, p̂) with the fused score p̂ as a *detached* teacher.

    ``student_logits`` [K, B] are the learners' logits, ``teacher_prob`` [B] the fused probability.
    BCE(p_k, p̂) = -[p̂ log p_k + (1 - p̂) log(1 - p_k)] (the paper's "1 - log p" is a typo for log(1 - p)).
    The teacher is detached so that no gradient flows into it through this term.
    """
    teacher = teacher_prob.detach().float().unsqueeze(0).expand_as(student_logits)
    per = F.binary_cross_entropy_with_logits(student_logits.float(), teacher, reduction="none")
    return per.mean(dim=1).sum()


def behavioural_calibrator(p_next: torch.Tensor, p_prev: torch.Tensor) -> torch.Tensor:
    """AITM's behavioural expectation calibrator: mean of max(ŷ_conv - ŷ_click, 0) (Eq. 7 of AITM)."""
    return torch.relu(p_next.float() - p_prev.float()).mean()

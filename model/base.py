"""The interface every architecture implements.

``forward(x: LongTensor[B, F]) -> Outputs`` with at least ``ctr_logit``, ``p_ctr``, ``p_cvr`` and
``p_ctcvr`` ([B] tensors, float32), and ``loss(outputs, click, conversion) -> (total, parts)``.

Cold-start calibration: ``init_output_bias(ctr_rate, cvr_rate)`` shifts the final bias of every
task head so that the freshly initialised model predicts the base rates instead of 0.5. Each
architecture names its heads in ``output_heads`` (per task: the bias slots and, from a forward
pass, the logits [G, B] they shift; the task's logit is the mean over the G heads).
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

    def hold_ctr(self, outputs: Outputs) -> Outputs:
        """``outputs`` with pCTR a constant to every loss term (``train.ctr_epochs``): the CTR loss
        trains nothing and pCTCVR = pCTR · pCVR passes its gradient to the CVR side only."""
        return {**outputs, **joint_outputs(outputs["ctr_logit"].detach(), outputs["cvr_logit"])}

    def stale_tensors(self, names: set[str]) -> set[str]:
        """Of the saved tensor ``names``, those this model no longer has and may drop on load."""
        return set()

    def output_heads(self, outputs: Outputs) -> dict[str, tuple[list[torch.Tensor], torch.Tensor]]:
        """Per task (``ctr``, ``cvr``): ([G] final-bias slots, logits [G, B] of those G heads).

        Adding d to every slot of a task adds d to each head's logit and to the task's logit (the
        mean over its heads). Only the architecture knows which output each task's head feeds: for
        AITM the ``cvr`` head predicts the end-to-end conversion (see ``ctcvr_head``).
        """
        raise NotImplementedError

    #: True when the model's ``cvr`` head predicts click-and-convert (pCTCVR) rather than post-click CVR.
    ctcvr_head: bool = False

    @torch.no_grad()
    def init_output_bias(
        self,
        ctr_rate: float | None,
        cvr_rate: float | None,
        x: torch.Tensor | None = None,
        *,
        probe_size: int = 4096,
        seed: int = 0,
        per_head: bool = True,
    ) -> None:
        """Set the final biases so that mean pCTR = ``ctr_rate`` and mean pCVR = ``cvr_rate`` (cold start).

        The towers' pre-bias outputs are not exactly 0 at init (hidden biases propagate: measured
        |logit| up to ~0.2, i.e. ~20% off a 4% rate), so the shift is solved on a probe batch:
        ``x`` (e.g. training rows; at most ``probe_size`` are used) or, when None, uniform random
        indices. Every head is first calibrated on its own (TAML's learners each match the rate,
        so self-distillation starts consistent), then one common shift makes the task's fused
        output exact: mean σ(z + d) = rate, solved by bisection. A head predicting pCTCVR (AITM)
        gets ``ctr_rate · cvr_rate``. A rate of None leaves that task untouched. ``per_head=False``
        applies the common shift only (a trained model: its heads' offsets are learnt, keep them).
        """
        device = next(self.parameters()).device
        if x is None:
            gen = torch.Generator().manual_seed(seed)
            x = torch.stack([torch.randint(0, s, (probe_size,), generator=gen) for s in self.sizes], dim=1)
        else:
            x = torch.as_tensor(x)[:probe_size]
        x = x.to(device=device, dtype=torch.int64)
        was_training = self.training
        self.eval()
        try:
            heads = self.output_heads(self(x))
        finally:
            self.train(was_training)
        targets = {"ctr": ctr_rate, "cvr": cvr_rate}
        if self.ctcvr_head:
            targets["cvr"] = None if ctr_rate is None or cvr_rate is None else ctr_rate * cvr_rate
        for task, rate in targets.items():
            if rate is None:
                continue
            slots, logits = heads[task]
            z = logits.detach().double()  # [G, B]
            if per_head:
                shifts = torch.stack([_solve_shift(z[g], rate) for g in range(len(slots))])
            else:
                shifts = torch.zeros(len(slots), dtype=z.dtype, device=z.device)
            z = z + shifts[:, None]
            shifts = shifts + _solve_shift(z.mean(0), rate)
            for slot, d in zip(slots, shifts.tolist(), strict=True):
                slot.add_(d)


def two_tower_heads(
    bias: torch.Tensor, outputs: Outputs
) -> dict[str, tuple[list[torch.Tensor], torch.Tensor]]:
    """``output_heads`` of a 2-group tower (``GroupedMLP`` / ``GroupedLinear`` bias [2, 1, 1]): ctr, cvr."""
    return {
        "ctr": ([bias[0]], outputs["ctr_logit"].unsqueeze(0)),
        "cvr": ([bias[1]], outputs["cvr_logit"].unsqueeze(0)),
    }


def _solve_shift(z: torch.Tensor, rate: float, iters: int = 80) -> torch.Tensor:
    """d with mean σ(z + d) = rate (float64 bisection; σ(z + d) is increasing in d)."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"base rate must be in (0, 1), got {rate}")
    target = torch.logit(torch.tensor(rate, dtype=torch.float64))
    lo, hi = target - z.max() - 1.0, target - z.min() + 1.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        if torch.sigmoid(z + mid).mean() < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


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

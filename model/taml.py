"""TAML: Task Adaptive Multi-learner network (Liu et al., WWW '23), equation by equation.

Notation (paper Sec. 3): T = 2 tasks (t = ctr, cvr), K learners per task (k = 1..K), x the sparse input.

(1) Shared embedding (Sec. 3.1)
        e = [E_1 x_1 ‖ ... ‖ E_F x_F]                                   -> ``self.embedding``
(2) HTAKR experts (Sec. 3.2): one layer each, three groups
        f_j(e) = ReLU(W_j e + b_j),   j ∈ general ∪ task(t) ∪ learner(t, k)
    all experts of all groups are one fused matmul                          -> ``self.experts``
(3) One gate per learner, computed from the embedding, softmax over that learner's experts
        g_{t,k} = softmax(W_{t,k} e),   over [general ‖ task(t) ‖ learner(t, k)]  -> ``self.gates``
(4) Learner input: gate-weighted sum of its experts
        h_{t,k} = Σ_j g_{t,k,j} f_j(e)                                   -> ``mix`` / ``scatter_gates``
(5) Multi-learner towers (Sec. 3.3): an MLP (64-32-1) per learner
        z_{t,k} = Tower_{t,k}(h_{t,k})                                     -> ``self.towers``
(6) Fusion: mean of learner logits, then sigmoid
        ŷ_t = σ( (1/K) Σ_k z_{t,k} )
(7) Entire space: pCTCVR = pCTR · pCVR
(8) Self-distillation (Sec. 3.4): the detached fused score teaches every learner
        KD_t = Σ_k BCE(σ(z_{t,k}), sg[ŷ_t]),  BCE(p, q) = -[q log p + (1-q) log(1-p)]
(9) Loss (Sec. 3.5), over all impressions
        L = BCE(pCTR, click) + BCE(pCTCVR, click·conv) + α KD_ctr + β KD_cvr,  α = β = 0.1

Ablations: ``n_learners=1`` (single learner: the KD terms vanish, the learner is its own teacher),
``self_distillation=False`` (α = β = 0), ``htakr=False`` (no experts and gates: every learner
tower reads e directly).

Levers beyond the paper (``TamlOptions``; all off by default, see docs/MODEL.md for what won):
``gate_bias=False`` is Eq. (3) literally (no b); ``gate_temperature`` T divides the gate logits;
``cvr_general_gate_prior`` adds a fixed offset to the CVR learners' logits of the general experts;
``cvr_detach_general`` lets the CVR learners read the general experts through a stop-gradient;
``cvr_clicked_weight`` γ adds γ·BCE(pCVR, conv) over clicked impressions to Eq. (9).
The plain, loop-by-loop version of this forward pass is ``model/taml_reference.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from model.base import LossParts, MultiTaskModel, Outputs, joint_outputs
from model.layers import ExpertBank, GroupedMLP, mix, scatter_gates
from model.losses import bce_log_prob, bce_logits, masked_bce_logits, self_distillation
from model.spec import ModelConfig

TASKS = ("ctr", "cvr")
EXPERT_GROUPS = ("general", "task", "learner")


class TAML(MultiTaskModel):
    architecture = "taml"

    def __init__(self, sizes: Sequence[int], config: ModelConfig) -> None:
        super().__init__(sizes, config)
        o = config.taml
        self.options = o
        n_tasks, n_learners = len(TASKS), o.n_learners
        self.n_gates = n_tasks * n_learners
        d_in = self.embedding.out_dim
        if o.htakr:
            # Expert order in the bank: [general | task ctr | task cvr | learner (ctr,1) ... (cvr,K)].
            self.n_experts = o.n_general + n_tasks * o.n_task + self.n_gates * o.n_learner
            self.k_select = o.n_general + o.n_task + o.n_learner
            self.experts = ExpertBank(self.n_experts, d_in, o.expert_dim, config.activation)  # Eq. (2)
            # Eq. (3), all gates in one matmul; a softmax over a single expert is identically 1, so
            # when every learner sees one expert there is no gate to learn (and none to compute).
            self.gates = (
                nn.Linear(d_in, self.n_gates * self.k_select, bias=o.gate_bias) if self.k_select > 1 else None
            )
            self.register_buffer("select", self._selection(), persistent=False)
            self.register_buffer("gate_prior", self._gate_prior(), persistent=False)
            tower_in = o.expert_dim
        else:
            tower_in = d_in
        self.towers = GroupedMLP(self.n_gates, tower_in, o.tower_dims, 1, config.activation)  # Eq. (5)

    def _selection(self) -> torch.Tensor:
        """Indices [T·K, k] of the experts each learner's gate sees: [general ‖ its task's ‖ its own].

        With ``cvr_detach_general`` the CVR learners' general slots point past the bank, at the
        detached copies that ``forward`` appends (indices n_experts .. n_experts + n_general - 1).
        """
        o, n_tasks = self.options, len(TASKS)
        rows = []
        for t in range(n_tasks):
            for k in range(o.n_learners):
                detached = o.cvr_detach_general and TASKS[t] == "cvr"
                general = [j + (self.n_experts if detached else 0) for j in range(o.n_general)]
                task_start = o.n_general + t * o.n_task
                learner_start = o.n_general + n_tasks * o.n_task + (t * o.n_learners + k) * o.n_learner
                rows.append(
                    general
                    + list(range(task_start, task_start + o.n_task))
                    + list(range(learner_start, learner_start + o.n_learner))
                )
        return torch.tensor(rows, dtype=torch.int64)

    def _gate_prior(self) -> torch.Tensor:
        """[T·K, k] fixed gate-logit offsets: ``cvr_general_gate_prior`` on the CVR learners' general slots."""
        o = self.options
        prior = torch.zeros(self.n_gates, self.k_select)
        cvr = TASKS.index("cvr")
        prior[cvr * o.n_learners : (cvr + 1) * o.n_learners, : o.n_general] = o.cvr_general_gate_prior
        return prior

    def forward(self, x: torch.Tensor) -> Outputs:
        e = self.embedding(x)  # Eq. (1)
        batch = e.shape[0]
        out: Outputs = {}
        if self.options.htakr:
            o = self.options
            experts = self.experts(e)  # Eq. (2): [B, n_experts, d]
            if self.gates is None:  # Eq. (3)-(4) with g = 1: each learner reads its one expert
                g = experts.new_ones(batch, self.n_gates, 1, dtype=torch.float32)
                h = experts.index_select(1, self.select[:, 0]).transpose(0, 1).contiguous()
            else:
                logits = self.gates(e).view(batch, self.n_gates, self.k_select).float() + self.gate_prior
                g = torch.softmax(logits / o.gate_temperature, dim=-1)  # Eq. (3)
                if o.cvr_detach_general and o.n_general:
                    experts = torch.cat([experts, experts[:, : o.n_general].detach()], dim=1)
                h = mix(scatter_gates(g.to(experts.dtype), self.select, experts.shape[1]), experts)  # Eq. (4)
            out["gates"] = g
        else:
            h = e  # ablation: every tower reads the embedding
        z = self.towers(h).squeeze(-1).float().view(len(TASKS), self.options.n_learners, batch)  # Eq. (5)
        fused = z.mean(dim=1)  # Eq. (6)
        out.update(joint_outputs(fused[0], fused[1]))  # Eq. (6)-(7)
        out["learner_logits"] = z
        return out

    def hold_ctr(self, outputs: Outputs) -> Outputs:
        z = outputs["learner_logits"]  # the CTR learners' KD term must train nothing either
        return {**super().hold_ctr(outputs), "learner_logits": torch.stack((z[0].detach(), z[1]))}

    def stale_tensors(self, names: set[str]) -> set[str]:
        """A single-expert gate's weights, which artifacts written before such gates were dropped
        still carry; they never changed a prediction (softmax over one logit is 1)."""
        if not self.options.htakr or self.gates is not None:
            return set()
        return {n for n in names if n.startswith("gates.")}

    @property
    def distills(self) -> bool:
        o = self.options
        return o.self_distillation and o.n_learners > 1 and (o.alpha > 0 or o.beta > 0)

    def loss(
        self, outputs: Outputs, click: torch.Tensor, conversion: torch.Tensor
    ) -> tuple[torch.Tensor, LossParts]:
        """Eq. (9): L_ctr + L_ctcvr + α·KD_ctr + β·KD_cvr over the entire impression space
        (+ γ·L_cvr on clicked impressions with ``cvr_clicked_weight`` γ > 0, off in the paper)."""
        parts: LossParts = {
            "ctr": bce_logits(outputs["ctr_logit"], click),
            "ctcvr": bce_log_prob(outputs["log_p_ctcvr"], conversion * click),
        }
        total = parts["ctr"] + parts["ctcvr"]
        if self.options.cvr_clicked_weight > 0:  # not in the paper: ESMM's head plus the MLP's loss
            parts["cvr_clicked"] = masked_bce_logits(outputs["cvr_logit"], conversion, click)
            total = total + self.options.cvr_clicked_weight * parts["cvr_clicked"]
        if self.distills:
            z = outputs["learner_logits"]
            parts["kd_ctr"] = self_distillation(z[0], outputs["p_ctr"])  # Eq. (8)
            parts["kd_cvr"] = self_distillation(z[1], outputs["p_cvr"])
            total = total + self.options.alpha * parts["kd_ctr"] + self.options.beta * parts["kd_cvr"]
        return total, parts

    def output_heads(self, outputs: Outputs) -> dict[str, tuple[list[torch.Tensor], torch.Tensor]]:
        """Every learner's tower output bias (learner (t, k) is group t·K + k); Eq. (6) averages them."""
        assert self.towers.out is not None
        n_learners, bias, z = self.options.n_learners, self.towers.out.bias, outputs["learner_logits"]
        return {
            task: ([bias[t * n_learners + k] for k in range(n_learners)], z[t])
            for t, task in enumerate(TASKS)
        }

    def gate_group_weights(self, gates: torch.Tensor) -> torch.Tensor:
        """Paper Fig. 4: mean gate weight on general / task / learner experts, per task -> [T, 3].

        Weights are summed within each group (so each row sums to 1) and averaged over learners
        and samples.
        """
        o = self.options
        g = gates.float().view(gates.shape[0], len(TASKS), o.n_learners, self.k_select)
        bounds = [0, o.n_general, o.n_general + o.n_task, self.k_select]
        sums = [g[..., a:b].sum(-1) for a, b in zip(bounds, bounds[1:], strict=False)]
        return torch.stack(sums, dim=-1).mean(dim=(0, 2))

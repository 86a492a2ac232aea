"""TAML written plainly: one expert, one gate, one tower at a time (read this before model/taml.py).

Liu et al., "Task Adaptive Multi-learner Network for Joint CTR and CVR Estimation", WWW '23,
https://doi.org/10.1145/3543507.3583467. With T = 2 tasks (ctr, cvr), K learners per task:

    e        = [E_1 x_1 ‖ ... ‖ E_F x_F]                          (1) shared embedding
    f_j      = ReLU(W_j e + b_j)                                  (2) one-layer experts
    g_{t,k}  = softmax(W_{t,k} e)  over [general ‖ task t ‖ learner (t,k)] experts    (3)
    h_{t,k}  = Σ_j g_{t,k,j} f_j                                  (4)
    z_{t,k}  = Tower_{t,k}(h_{t,k})                               (5) MLP per learner
    ŷ_t      = σ((1/K) Σ_k z_{t,k}),   pCTCVR = pCTR · pCVR      (6), (7)

This reads the weights of a fused :class:`model.taml.TAML` and recomputes its forward pass with
Python loops; tests/model/test_taml_reference.py checks both agree. The options beyond the paper
(gate bias, temperature, CVR general-expert prior, stop-gradient) appear where they act.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.taml import TAML, TASKS

_ACT = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}


def reference_forward(model: TAML, x: torch.Tensor) -> dict[str, torch.Tensor]:
    o, act = model.options, _ACT[model.config.activation]
    emb = model.embedding
    # (1) one field at a time: row offsets[f] + x[:, f] of the shared table -> e [B, F·D]
    e = torch.cat([emb.weight[emb.offsets[f] + x[:, f]] for f in range(emb.num_fields)], dim=1)
    d, K = o.expert_dim, o.n_learners
    W, b = model.experts.linear.weight, model.experts.linear.bias  # [n·d, F·D], [n·d]
    # (2) expert j owns rows j·d .. (j+1)·d of the fused expert layer -> f_j [B, d]
    experts = [act(e @ W[j * d : (j + 1) * d].T + b[j * d : (j + 1) * d]) for j in range(model.n_experts)]
    logits = []  # z_{t,k}, one [B] tensor per learner, in the order (ctr,1..K), (cvr,1..K)
    for g in range(model.n_gates):
        rows = slice(g * model.k_select, (g + 1) * model.k_select)
        # (3) gate of learner (t, k): its own rows of the fused gate layer -> [B, k_select]
        if model.gates is None:  # one expert per learner: softmax over one logit is 1
            gate = torch.ones(e.shape[0], 1)
        else:
            gate = e @ model.gates.weight[rows].T
            if model.gates.bias is not None:
                gate = gate + model.gates.bias[rows]
            gate = torch.softmax((gate + model.gate_prior[g]) / o.gate_temperature, dim=-1)
        # (4) h = Σ_j g_j f_j over the experts this learner sees -> [B, d]
        h = torch.zeros_like(experts[0])
        for slot, j in enumerate(model.select[g].tolist()):
            if j >= model.n_experts:  # a CVR learner reading a general expert through a stop-gradient
                f = experts[j - model.n_experts].detach()
            else:
                f = experts[j]
            h = h + gate[:, slot : slot + 1] * f
        # (5) the learner's own tower: hidden layers with the activation, then one output unit
        for layer in model.towers.hidden:
            h = act(h @ layer.weight[g] + layer.bias[g])
        out = model.towers.out
        logits.append((h @ out.weight[g] + out.bias[g]).squeeze(-1))
    # (6) fused logit per task = mean of its K learners' logits; (7) pCTCVR = pCTR · pCVR
    z = torch.stack(logits).view(len(TASKS), K, -1)
    p_ctr, p_cvr = torch.sigmoid(z[0].mean(0)), torch.sigmoid(z[1].mean(0))
    return {"p_ctr": p_ctr, "p_cvr": p_cvr, "p_ctcvr": p_ctr * p_cvr, "learner_logits": z}

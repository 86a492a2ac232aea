"""The plain reference TAML equals the fused one on random inputs, weights shared, for every lever."""

from __future__ import annotations

import pytest
import torch

from model.spec import ModelConfig, TamlOptions
from model.taml import TAML
from model.taml_reference import reference_forward

SIZES = [11, 7, 5, 9, 4]

CASES = [
    {},
    {"n_general": 3, "n_task": 2, "n_learner": 2, "n_learners": 3, "tower_dims": [16, 8]},
    {"gate_bias": False, "gate_temperature": 0.5},
    {"cvr_general_gate_prior": -1.5, "cvr_detach_general": True, "expert_dim": 12},
    {"n_general": 0, "n_task": 2},
    {"n_learner": 0, "n_learners": 1},
]


@pytest.mark.parametrize("opts", CASES)
def test_reference_equals_fused(opts):
    torch.manual_seed(0)
    model = TAML(SIZES, ModelConfig(embedding_dim=6, taml=TamlOptions(**opts)))
    with torch.no_grad():  # non-zero everywhere, so every weight slice matters
        for p in model.parameters():
            p.normal_(0, 0.3)
    g = torch.Generator().manual_seed(1)
    x = torch.stack([torch.randint(0, s, (50,), generator=g) for s in SIZES], 1)
    fused, ref = model(x), reference_forward(model, x)
    for key in ("p_ctr", "p_cvr", "p_ctcvr", "learner_logits"):
        torch.testing.assert_close(ref[key], fused[key], rtol=1e-5, atol=1e-6)


def test_stop_gradient_matches_too():
    """With cvr_detach_general the CVR loss leaves the general experts' weights untouched, in both."""
    torch.manual_seed(0)
    model = TAML(SIZES, ModelConfig(taml=TamlOptions(cvr_detach_general=True, n_general=2)))
    x = torch.stack([torch.randint(0, s, (30,)) for s in SIZES], 1)
    n_general_rows = 2 * model.options.expert_dim
    for forward in (model, lambda x: reference_forward(model, x)):
        model.zero_grad()
        forward(x)["p_cvr"].sum().backward()
        general_grad = model.experts.linear.weight.grad[:n_general_rows]
        assert torch.count_nonzero(general_grad) == 0
        assert torch.count_nonzero(model.experts.linear.weight.grad[n_general_rows:]) > 0

import pytest
import torch

from model.compare import PAPER_TAML
from model.losses import self_distillation
from model.spec import ModelConfig, TamlOptions
from model.taml import TAML

SIZES = [10, 20, 5, 7]


def make(**opts) -> TAML:
    """The paper's sizes (2 general, 1 task, 1 learner expert) unless a test says otherwise."""
    torch.manual_seed(0)
    return TAML(SIZES, ModelConfig(taml=TamlOptions(**{**PAPER_TAML, **opts})))


def batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.stack([torch.randint(0, s, (n,), generator=g) for s in SIZES], 1)
    click = (torch.rand(n, generator=g) < 0.4).float()
    conv = click * (torch.rand(n, generator=g) < 0.5).float()
    return x, click, conv


def test_shapes_and_probabilities():
    m = make()
    x, click, conv = batch()
    out = m(x)
    for k in ("ctr_logit", "p_ctr", "p_cvr", "p_ctcvr"):
        assert out[k].shape == (64,) and out[k].dtype == torch.float32
    assert out["learner_logits"].shape == (2, 2, 64)
    # default experts: 2 general + 1 per task + 1 per learner = 8, each gate sees 2 + 1 + 1
    assert (m.n_experts, m.k_select) == (8, 4)
    assert out["gates"].shape == (64, 4, 4)
    torch.testing.assert_close(out["p_ctcvr"], out["p_ctr"] * out["p_cvr"])
    fused = out["learner_logits"].mean(1)
    torch.testing.assert_close(out["p_ctr"], torch.sigmoid(fused[0]))


def test_gates_sum_to_one_and_select_the_right_experts():
    m = make(n_general=2, n_task=2, n_learner=1)
    out = m(batch()[0])
    torch.testing.assert_close(out["gates"].sum(-1), torch.ones(64, 4))
    # learner (cvr, 2) sees general 0-1, cvr task experts 4-5 and its own expert 6 + 3 = 9
    assert m.select[3].tolist() == [0, 1, 4, 5, 9]
    groups = m.gate_group_weights(out["gates"])
    assert groups.shape == (2, 3)
    torch.testing.assert_close(groups.sum(1), torch.ones(2))


def test_a_learner_with_one_expert_has_no_gate_to_learn():
    """softmax over one logit is 1: no gate layer, g = 1, and h is that expert's output."""
    m = make(n_general=0, n_task=1, n_learner=0)
    assert m.gates is None and not any(name.startswith("gates.") for name, _ in m.named_parameters())
    x = batch()[0]
    out = m(x)
    torch.testing.assert_close(out["gates"], torch.ones(64, 4, 1))
    torch.testing.assert_close(m.gate_group_weights(out["gates"]), torch.tensor([[0.0, 1.0, 0.0]] * 2))
    experts = m.experts(m.embedding(x))  # [B, ctr task | cvr task, d]; learners 0-1 ctr, 2-3 cvr
    h = experts[:, [0, 0, 1, 1]].transpose(0, 1)
    z = m.towers(h).squeeze(-1).view(2, 2, 64)
    torch.testing.assert_close(out["learner_logits"], z)


def test_pctcvr_never_exceeds_pctr_even_at_extremes():
    m = make()
    with torch.no_grad():
        m.towers.out.bias.fill_(40.0)  # saturate every learner
        out = m(batch(256)[0])
    assert (out["p_ctcvr"] <= out["p_ctr"]).all()
    with torch.no_grad():
        m.towers.out.bias.fill_(-60.0)
        out = m(batch(256)[0])
    assert (out["p_ctcvr"] <= out["p_ctr"]).all()
    assert torch.isfinite(m.loss(out, *batch(256)[1:])[0])


def test_no_gradient_reaches_the_teacher():
    teacher = torch.rand(16, requires_grad=True)
    z = torch.randn(2, 16, requires_grad=True)
    self_distillation(z, teacher).backward()
    assert teacher.grad is None
    # Through the model: d KD / d z_k = (σ(z_k) - σ(mean z)) / B exactly, with no term through the mean.
    z = torch.randn(2, 16, dtype=torch.double, requires_grad=True)
    kd = self_distillation(z, torch.sigmoid(z.mean(0)))
    (grad,) = torch.autograd.grad(kd, z)
    expected = (torch.sigmoid(z) - torch.sigmoid(z.mean(0))).detach() / 16
    torch.testing.assert_close(grad.double(), expected, atol=1e-6, rtol=1e-5)


def test_loss_parts_and_weights():
    m = make()
    x, click, conv = batch()
    out = m(x)
    total, parts = m.loss(out, click, conv)
    assert set(parts) == {"ctr", "ctcvr", "kd_ctr", "kd_cvr"}
    expected = parts["ctr"] + parts["ctcvr"] + 0.1 * parts["kd_ctr"] + 0.1 * parts["kd_cvr"]  # paper α = β
    torch.testing.assert_close(total, expected)
    p = out["p_ctcvr"].double()
    bce = -(conv * p.log() + (1 - conv) * (1 - p).log()).mean()
    torch.testing.assert_close(parts["ctcvr"].double(), bce, rtol=1e-5, atol=1e-6)


def test_clicked_space_cvr_loss_is_the_mlp_loss_on_clicked_rows_only():
    m = make(cvr_clicked_weight=0.3)
    x, click, conv = batch()
    out = m(x)
    total, parts = m.loss(out, click, conv)
    base = parts["ctr"] + parts["ctcvr"] + 0.1 * parts["kd_ctr"] + 0.1 * parts["kd_cvr"]
    torch.testing.assert_close(total, base + 0.3 * parts["cvr_clicked"])
    p, clicked = out["p_cvr"].double(), click.bool()
    y = conv[clicked].double()
    bce = -(y * p[clicked].log() + (1 - y) * (1 - p[clicked]).log()).mean()
    torch.testing.assert_close(parts["cvr_clicked"].double(), bce, rtol=1e-5, atol=1e-6)
    # an unclicked row's conversion label (always 0) never reaches the term
    flipped = conv.clone()
    flipped[~clicked] = 1.0
    torch.testing.assert_close(m.loss(out, click, flipped)[1]["cvr_clicked"], parts["cvr_clicked"])
    assert "cvr_clicked" not in make().loss(out, click, conv)[1]  # the paper's loss by default


@pytest.mark.parametrize(
    "opts, parts, has_gates",
    [
        ({"n_learners": 1}, {"ctr", "ctcvr"}, True),
        ({"self_distillation": False}, {"ctr", "ctcvr"}, True),
        ({"htakr": False}, {"ctr", "ctcvr", "kd_ctr", "kd_cvr"}, False),
    ],
)
def test_ablations(opts, parts, has_gates):
    m = make(**opts)
    x, click, conv = batch()
    out = m(x)
    assert set(m.loss(out, click, conv)[1]) == parts
    assert ("gates" in out) == has_gates
    if not has_gates:
        assert not hasattr(m, "experts")

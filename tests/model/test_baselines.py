"""Every architecture: the common interface, and learning a planted signal."""

import numpy as np
import pytest
import torch

from model.encode import encode, encode_labels
from model.metrics import evaluate_predictions
from model.registry import MODELS, build_model
from model.scoring import predict_encoded
from model.spec import ModelConfig, TrainConfig
from model.trainer import train
from model.vocab import Vocabulary

SIZES = [12, 30, 6]


def batch(n=128):
    g = torch.Generator().manual_seed(3)
    x = torch.stack([torch.randint(0, s, (n,), generator=g) for s in SIZES], 1)
    click = (torch.rand(n, generator=g) < 0.4).float()
    conv = click * (torch.rand(n, generator=g) < 0.5).float()
    return x, click, conv


@pytest.mark.parametrize("arch", list(MODELS))
def test_interface(arch):
    torch.manual_seed(0)
    m = build_model(ModelConfig(architecture=arch), SIZES)
    x, click, conv = batch()
    out = m(x)
    for k in ("ctr_logit", "p_ctr", "p_cvr", "p_ctcvr"):
        assert out[k].shape == (128,), k
        assert torch.isfinite(out[k]).all()
    assert (out["p_ctcvr"] <= out["p_ctr"]).all()
    assert ((out["p_cvr"] >= 0) & (out["p_cvr"] <= 1)).all()
    total, parts = m.loss(out, click, conv)
    assert total.dim() == 0 and parts and all(p.dim() == 0 for p in parts.values())
    total.backward()
    assert all(p.grad is not None for p in m.parameters())


def test_mlp_cvr_tower_sees_clicked_impressions_only():
    torch.manual_seed(0)
    m = build_model(ModelConfig(architecture="mlp"), SIZES)
    x, click, conv = batch()
    out = m(x)
    out2 = dict(out)
    out2["cvr_logit"] = torch.where(click > 0, out["cvr_logit"], torch.full_like(click, 30.0))
    assert m.loss(out, click, conv)[1]["cvr"] == m.loss(out2, click, conv)[1]["cvr"]
    assert m.cvr_embedding is not m.embedding  # two independent models


def test_esmm_trains_on_the_entire_space():
    torch.manual_seed(0)
    m = build_model(ModelConfig(architecture="esmm"), SIZES)
    assert set(m.loss(m(batch()[0]), *batch()[1:])[1]) == {"ctr", "ctcvr"}


def test_aitm_calibrator_penalises_conversion_above_click():
    torch.manual_seed(0)
    m = build_model(ModelConfig(architecture="aitm"), SIZES)
    x, click, conv = batch()
    with torch.no_grad():
        m.conv_head.bias.fill_(5.0)
        m.click_head.bias.fill_(-5.0)
    out = m(x)
    parts = m.loss(out, click, conv)[1]
    assert parts["calibrator"] > 0.5
    assert (out["p_ctcvr"] <= out["p_ctr"]).all()
    torch.testing.assert_close(out["transfer_weight"].sum(1), torch.ones(128))


def test_ple_levels_and_mmoe_gates():
    torch.manual_seed(0)
    ple = build_model(ModelConfig(architecture="ple"), SIZES)
    assert (
        len(ple.levels) == 2 and ple.levels[0].shared_gate is not None and ple.levels[1].shared_gate is None
    )
    mmoe = build_model(ModelConfig(architecture="mmoe"), SIZES)
    g = mmoe(batch()[0])["gates"]
    assert g.shape == (128, 2, 3)
    torch.testing.assert_close(g.sum(-1), torch.ones(128, 2))


@pytest.mark.parametrize("arch", list(MODELS))
def test_learns_planted_signal(arch, world):
    train_df, test_df, spec, truth = world
    vocab = Vocabulary.build(train_df, spec)
    x = encode(train_df, spec, vocab)
    click, conv = encode_labels(train_df, spec)
    torch.manual_seed(0)
    m = build_model(ModelConfig(architecture=arch), vocab.sizes)
    cfg = TrainConfig(batch_size=256, epochs=2, lr=3e-3, progress=False, seed=0)
    result = train(m, x, click, conv, cfg)
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert last < first
    xt = encode(test_df, spec, vocab)
    ct, vt = encode_labels(test_df, spec)
    p = predict_encoded(m, xt)
    metrics = evaluate_predictions(ct, vt, p["p_ctr"], p["p_cvr"], p["p_ctcvr"])
    oracle = evaluate_predictions(ct, vt, truth.p_click, truth.p_conv)
    assert metrics["ctr"]["auc"] > 0.7, metrics["ctr"]
    assert metrics["ctcvr"]["auc"] > 0.7, metrics["ctcvr"]
    assert metrics["cvr"]["auc"] > 0.6, metrics["cvr"]
    assert metrics["ctr"]["auc"] <= oracle["ctr"]["auc"] + 0.02
    assert np.all(p["p_ctcvr"] <= p["p_ctr"])

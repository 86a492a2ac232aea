"""CVR-collapse diagnostics and TAML gate weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.artifacts import LoadedModel, VersionMetadata
from model.compare import PAPER_TAML
from model.diagnostics import concordant_share, cvr_collapse, gate_weight_table, spearman
from model.fitting import fit
from model.scoring import gate_weights
from model.spec import ModelConfig, TamlOptions, TrainConfig


def test_spearman_is_the_rank_correlation_with_average_ties():
    x = np.array([1.0, 2, 3, 4, 5])
    assert spearman(x, x**3) == pytest.approx(1.0) and spearman(x, -x) == pytest.approx(-1.0)
    y = np.array([1.0, 1, 2, 3, 3])  # ties: ranks 1.5 1.5 3 4.5 4.5
    ranks = np.array([1.5, 1.5, 3, 4.5, 4.5])
    assert spearman(x, y) == pytest.approx(np.corrcoef(np.arange(1, 6), ranks)[0, 1])
    assert math.isnan(spearman([1.0], [2.0])) and math.isnan(spearman(x, np.ones(5)))


def test_concordant_share_reads_one_for_copied_rankings_and_a_half_for_unrelated():
    rng = np.random.default_rng(0)
    a, b = rng.random(5000), rng.random(5000)
    assert concordant_share(a, 2 * a + 1, 20_000, 0) == 1.0
    assert concordant_share(a, -a, 20_000, 0) == 0.0
    assert concordant_share(a, b, 50_000, 0) == pytest.approx(0.5, abs=0.01)
    # Kendall: for a bivariate normal with correlation r the share is 1/2 + arcsin(r)/pi.
    z = rng.normal(size=(2, 20_000))
    x, y = z[0], 0.8 * z[0] + 0.6 * z[1]
    assert concordant_share(x, y, 100_000, 1) == pytest.approx(0.5 + math.asin(0.8) / math.pi, abs=0.01)


def test_cvr_collapse_uses_the_clicked_rows_only():
    rng = np.random.default_rng(1)
    n = 4000
    click = (rng.random(n) < 0.3).astype(float)
    p_ctr = rng.random(n)
    # Unclicked rows copy pCTR (undefined there anyway); clicked rows carry an unrelated pCVR.
    p_cvr = np.where(click > 0, rng.random(n), p_ctr)
    d = cvr_collapse(click, p_ctr, p_cvr, 20_000, 0)
    assert d["clicked_rows"] == click.sum()
    assert abs(d["cvr_ctr_spearman"]) < 0.06 and d["cvr_ctr_concordant_share"] == pytest.approx(0.5, abs=0.02)
    collapsed = cvr_collapse(click, p_ctr, 0.1 * p_ctr, 20_000, 0)
    assert (
        collapsed["cvr_ctr_spearman"] == pytest.approx(1.0) and collapsed["cvr_ctr_concordant_share"] == 1.0
    )


def test_gate_weights_of_a_trained_taml_and_none_for_a_model_without_gates(world):
    train, test, spec, _ = world
    tc = TrainConfig(epochs=1, batch_size=512, progress=False)
    for arch, expect_gates in (("taml", True), ("mlp", False)):
        # The paper's sizes: the validated default has one expert per gate (weights all 1).
        f = fit(train, spec, ModelConfig(architecture=arch, taml=TamlOptions(**PAPER_TAML)), tc)
        loaded = LoadedModel(f.model, f.config, f.spec, f.vocab, VersionMetadata(version=arch))
        w = gate_weights(loaded, test)
        if not expect_gates:
            assert w is None
            continue
        assert w.shape == (2, 3) and np.allclose(w.sum(axis=1), 1.0, atol=1e-5) and (w > 0).all()
        table = gate_weight_table(w)
        assert set(table) == {f"gate_{t}_{g}" for t in ("ctr", "cvr") for g in ("general", "task", "learner")}
    with pytest.raises(ValueError, match="shape"):
        gate_weight_table(np.ones((3, 3)))

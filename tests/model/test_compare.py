import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.compare import ABLATIONS, METRIC_KEYS, compare_models, spearman, tune_and_compare
from model.errors import ModelConfigError
from model.spec import TrainConfig, TuneConfig


def test_compare_models_report(world, tmp_path):
    train_df, test_df, spec, truth = world
    cfg = TrainConfig(batch_size=500, epochs=1, progress=False, seed=0, lr=3e-3)
    report = compare_models(
        train_df, test_df, spec, ["taml", "esmm"], 2, cfg, truth, out_dir=tmp_path, ablations=False
    )
    assert set(report) == {"models", "gates", "oracle"}
    assert set(report["models"]) == {"taml", "esmm"}
    for entry in report["models"].values():
        assert set(entry) == {*METRIC_KEYS, "samples_per_s"}
        assert all(len(entry[k]) == 2 for k in METRIC_KEYS)
        assert all(0.55 < a < 1 for a in entry["ctr_auc"]) and entry["samples_per_s"] > 0
        assert all(0.55 < a < 1 for a in entry["ctr_eauc"])
        assert all(-1 <= r <= 1 for r in entry["rho_cvr_ctr_clicked"])
        # DeLong's standard error: the AUC on all impressions resolves finer than on the few clicks.
        for ctr_se, cvr_se in zip(entry["ctr_auc_se"], entry["cvr_auc_se"], strict=True):
            assert 0 < ctr_se < cvr_se < 0.2
    taml = report["models"]["taml"]["ctr_auc"]
    assert taml[0] != taml[1]  # two seeds, two models
    oracle = report["oracle"]
    assert all(not math.isnan(v) for v in oracle.values())
    assert oracle["ctr_auc"] >= max(taml) - 0.01
    assert oracle["ctr_eauc"] > max(report["models"]["taml"]["ctr_eauc"])  # the truth ranks best
    rows = report["gates"]["table"]
    assert [r["task"] for r in rows] == ["ctr", "cvr"]
    for r in rows:
        assert r["general"] + r["task_specific"] + r["learner_specific"] == pytest.approx(1.0, abs=1e-5)
    png = Path(report["gates"]["png"])
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"


def test_compare_trains_like_the_pipeline_with_output_bias_init(world):
    """One tiny step: the heads start at the base rates (as ``fit`` does), not at pCTR = 0.5."""
    train_df, test_df, spec, truth = world
    cfg = TrainConfig(batch_size=500, max_steps=1, lr=1e-6, progress=False)
    report = compare_models(train_df, test_df, spec, ["esmm", "taml"], 1, cfg, truth, ablations=False)
    p = truth["p_click"].to_numpy()
    base_rate_loss = -np.mean(p * np.log(p.mean()) + (1 - p) * np.log(1 - p.mean()))
    for entry in report["models"].values():
        assert entry["ctr_elogloss"][0] == pytest.approx(base_rate_loss, abs=0.01)  # 0.69 at pCTR = 0.5


def test_compare_without_truth_or_taml(world):
    train_df, test_df, spec, _ = world
    cfg = TrainConfig(batch_size=1000, epochs=1, progress=False)
    report = compare_models(train_df, test_df, spec, ["mlp"], 1, cfg)
    assert set(report) == {"models"}
    assert "cvr_eauc" not in report["models"]["mlp"] and "rho_cvr_ctr_clicked" in report["models"]["mlp"]
    with pytest.raises(ModelConfigError, match="unknown models"):
        compare_models(train_df, test_df, spec, ["xgboost"], 1, cfg)


def test_tune_and_compare_protocol(world):
    """Every row (entire-space variants and the paper TAML included) gets the same trials on validation."""
    train_df, test_df, spec, truth = world
    valid_train, valid = train_df.iloc[:5000], train_df.iloc[5000:]
    cfg = TrainConfig(batch_size=1000, epochs=1, progress=False)
    tune = TuneConfig(budget=2, common_space={"train.lr": [1e-3, 3e-3]}, model_space={})
    report = tune_and_compare(
        valid_train, valid, train_df, test_df, spec, ["taml", "mmoe"], 1, cfg, tune, test_truth=truth
    )
    rows = report["tuning"]["rows"]
    assert set(rows) == {"taml", "mmoe", "mmoe_entire_space", "taml_paper"}
    for r in rows.values():
        assert len(r["trials"]) == 2 and r["trials"][0]["assignment"] == {}
        assert r["score"] == max(t["score"] for t in r["trials"])
        assert r["chosen"] in [t["assignment"] for t in r["trials"]]
    assert set(report["models"]) == {"taml", "mmoe", "mmoe_entire_space"}
    assert set(report["ablations"]) == {"taml_paper", *ABLATIONS}
    for entry in [*report["models"].values(), *report["ablations"].values()]:
        assert set(entry) == {*METRIC_KEYS, "samples_per_s"} and len(entry["cvr_eauc"]) == 1


def test_spearman_matches_a_direct_rank_correlation():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 300).astype(float)
    b = a + rng.normal(0, 2, 300)
    ranks = pd.DataFrame({"a": a, "b": b}).rank(method="average")  # ties at their average rank
    assert spearman(a, b) == pytest.approx(np.corrcoef(ranks["a"], ranks["b"])[0, 1], abs=1e-12)
    assert math.isnan(spearman(np.ones(5), b[:5]))

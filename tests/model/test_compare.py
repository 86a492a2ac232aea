import math
from pathlib import Path

import pytest

from model.compare import ABLATIONS, compare_models
from model.errors import ModelConfigError
from model.spec import TrainConfig


def test_compare_models_report(world, tmp_path):
    train_df, test_df, spec, truth = world
    cfg = TrainConfig(batch_size=500, epochs=1, progress=False, seed=0, lr=3e-3)
    report = compare_models(train_df, test_df, spec, ["taml", "esmm"], 2, cfg, truth, out_dir=tmp_path)
    assert set(report) == {"models", "ablations", "gates", "oracle"}
    assert set(report["models"]) == {"taml", "esmm"}
    assert set(report["ablations"]) == set(ABLATIONS)
    for entry in [*report["models"].values(), *report["ablations"].values()]:
        assert set(entry) == {"ctr_auc", "cvr_auc", "ctcvr_auc", "samples_per_s"}
        assert all(len(entry[k]) == 2 for k in ("ctr_auc", "cvr_auc", "ctcvr_auc"))
        assert all(0.55 < a < 1 for a in entry["ctr_auc"]) and entry["samples_per_s"] > 0
    taml = report["models"]["taml"]["ctr_auc"]
    assert taml[0] != taml[1]  # two seeds, two models
    oracle = report["oracle"]
    assert all(not math.isnan(v) for v in oracle.values())
    assert oracle["ctr_auc"] >= max(taml) - 0.01
    rows = report["gates"]["table"]
    assert [r["task"] for r in rows] == ["ctr", "cvr"]
    for r in rows:
        assert r["general"] + r["task_specific"] + r["learner_specific"] == pytest.approx(1.0, abs=1e-5)
    png = Path(report["gates"]["png"])
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"


def test_compare_without_truth_or_taml(world):
    train_df, test_df, spec, _ = world
    cfg = TrainConfig(batch_size=1000, epochs=1, progress=False)
    report = compare_models(train_df, test_df, spec, ["mlp"], 1, cfg)
    assert set(report) == {"models"}
    with pytest.raises(ModelConfigError, match="unknown models"):
        compare_models(train_df, test_df, spec, ["xgboost"], 1, cfg)

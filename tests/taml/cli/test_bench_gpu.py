"""`taml bench gpu`: every step of the GPU check, run as a dry run on the CPU on planted days."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from planted_data import make_synthetic

from model.compare import EvalDay
from taml.core.config import load_config

_SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", _SCRIPT)
check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = check  # its dataclass resolves its annotations through the module
_spec.loader.exec_module(check)


def test_dry_run_reports_each_batch_the_cpu_reference_and_the_daily_step():
    days = [make_synthetic(3000, n_fields=5, cardinality=40, seed=s, world_seed=0) for s in range(4)]
    spec = days[0][1]
    cfg = load_config(env={}, overrides=["train.progress=false", "train.epochs=1", "train.batch_size=500"])
    cfg.feature_spec = spec
    train = pd.concat([d[0] for d in days[:2]], ignore_index=True)
    window = pd.concat([d[0] for d in days[1:3]], ignore_index=True)
    data = check.CheckData(
        train=train,
        train_days=["2026-11-01"] * 3000 + ["2026-11-02"] * 3000,
        valid=EvalDay(days[3][0], spec, days[3][2]),
        window=window,
        window_days=["2026-11-02"] * 3000 + ["2026-11-03"] * 3000,
        trained_through=dt.date(2026, 11, 2),
    )
    report = check.run_check(data, cfg, ["taml", "esmm"], [1000, 2000], "cpu", tolerance=0.5)
    runs = report["runs"]
    assert [(r["model"], r["batch"]) for r in runs] == [
        ("taml", 500), ("taml", 500), ("taml", 1000), ("taml", 2000),
        ("esmm", 500), ("esmm", 500), ("esmm", 1000), ("esmm", 2000),
    ]  # fmt: skip
    for r in runs:
        assert r["device"] == "cpu" and not r["bf16"] and r["samples_per_s"] > 0
        assert r["lr"] == pytest.approx(cfg.train.lr * (r["batch"] / 500) ** 0.5)
        assert 0.5 < r["ctr_auc"] < 1 and 0.5 < r["ctr_eauc"] < 1
    for s in report["summary"].values():
        # the same device, seed and batch: the accelerator's base run is the CPU run
        assert all(abs(d) < 1e-6 for d in s["auc_minus_cpu_at_base_batch"].values())
        assert s["largest_batch_keeping_auc"] == 2000  # within the (loose) tolerance
        assert s["daily_step_seconds"]["cpu"] > 0 and s["daily_step_seconds"]["accelerator"] > 0
    text = check.markdown(report)
    assert text.count("\n| taml | cpu |") == 4 and "largest batch within 0.5 mean AUC: 2000" in text


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert check.main(["--data-root", str(tmp_path), "--train-days", "1"]) == 2
    assert "--train-days must be >= 2" in capsys.readouterr().err
    assert check.main(["--data-root", str(tmp_path), "--batches", "0"]) == 2
    assert "--batches must be positive" in capsys.readouterr().err
    assert check.main(["--data-root", str(tmp_path), "--device", "cpu"]) == 2
    assert "no feature table" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has the GPU the check asks for")
def test_a_missing_gpu_is_a_one_line_error_before_any_work(tmp_path, capsys):
    assert check.main(["--data-root", str(tmp_path), "--simulate", "1000"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing simulated

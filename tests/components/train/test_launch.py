"""The train step under torchrun: 2 gloo processes give the version 1 process gives, saved once."""

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from planted_data import make_synthetic
from safetensors.torch import load_file

from components.train import run_train
from components.train.launch import LaunchError, processes
from components.validate import ValidationResult, validation_dir
from components.validate.report import write_artifacts
from taml.core import layout, registry
from taml.core.config import load_config

D1 = dt.date(2026, 11, 1)
D2, D3 = D1 + dt.timedelta(days=1), D1 + dt.timedelta(days=2)


def _config(spec, *extra):
    cfg = load_config(
        env={},
        overrides=[
            "train.progress=false",
            "train.epochs=2",
            "train.batch_size=300",
            "train.lr=0.01",
            "pipeline.cold_start_days=1",
            *extra,
        ],
    )
    cfg.feature_spec = spec
    return cfg


def test_two_processes_train_the_same_single_version(tmp_path: Path, caplog):
    data = tmp_path / "data"
    for i, day in enumerate((D1, D2)):
        frame, spec, _ = make_synthetic(1500, n_fields=5, cardinality=30, seed=3 + i, world_seed=7)
        out = Path(layout.training_table_dir(str(data), day))
        out.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame), out / "part-0.parquet")
        for root in ("a1", "a2"):  # the validate step's verdict, which train reads
            verdict = ValidationResult(day.isoformat(), True, [], [])
            write_artifacts(verdict, validation_dir(str(tmp_path / root), day))
    # A production model to warm-start from (the parent travels to the ranks in the job folder).
    parent = run_train(_config(spec), D2, str(data), str(tmp_path / "a1"), tmp_path / "parent")
    for root in ("a1", "a2"):
        registry.publish_version(str(tmp_path / root), "taml", parent.version, tmp_path / "parent")
        registry.promote(str(tmp_path / root), "taml", parent.version)

    one = run_train(_config(spec), D3, str(data), str(tmp_path / "a1"), tmp_path / "one")
    caplog.set_level("INFO", logger="components.train.launch")
    two = run_train(
        _config(spec, "pipeline.train_processes=2"), D3, str(data), str(tmp_path / "a2"), tmp_path / "two"
    )
    assert "trained on 2 processes" in caplog.text  # really two ranks, not a silent fallback
    assert one.mode == two.mode == "warm" and two.parent_version == one.parent_version == parent.version
    assert two.samples == one.samples == 3000  # the window: D1 and D2
    # The id digests the weights, which agree to float tolerance, not bit for bit.
    assert two.version[:9] == one.version[:9] == f"{D2:%Y%m%d}-"
    # One complete version, written once by the step (not once per rank, no stray copies).
    assert json.loads((tmp_path / "two" / "metadata.json").read_text())["version"] == two.version
    assert [p.name for p in tmp_path.iterdir() if "two" in p.name] == ["two"]
    assert (tmp_path / "two" / "vocab.json").read_text() == (tmp_path / "one" / "vocab.json").read_text()
    w0 = load_file(str(tmp_path / "parent" / "weights.safetensors"))
    w1 = load_file(str(tmp_path / "one" / "weights.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "weights.safetensors"))
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5, msg=k)
    assert max(float((w1[k] - w0[k]).abs().max()) for k in w0 if w0[k].shape == w1[k].shape) > 1e-3
    assert two.final_loss == pytest.approx(one.final_loss, rel=1e-4)


def test_process_count_from_config_or_the_gpus():
    cfg = load_config(env={})
    assert processes(cfg, visible_gpus=0) == 1  # the default: the task's own process
    cfg.pipeline.train_processes = 0
    assert processes(cfg, visible_gpus=0) == 1  # one per GPU, and there is none
    assert processes(cfg, visible_gpus=4) == 4
    cfg.train.device = "cpu"
    assert processes(cfg, visible_gpus=4) == 1  # told to train on CPU: the GPUs do not count
    cfg.pipeline.train_processes = 3
    assert processes(cfg, visible_gpus=4) == 3  # gloo ranks on CPU, as many as asked
    cfg.train.device = "auto"
    assert processes(cfg, visible_gpus=4) == 3
    with pytest.raises(LaunchError, match="train_processes=3 but 2 GPU"):
        processes(cfg, visible_gpus=2)


def test_a_warm_update_trains_warm_epochs_and_a_cold_start_epochs():
    from components.train.run import warm_update_config
    from taml.core.config import load_config

    config = load_config(overrides=["train.epochs=3", "train.warm_epochs=1"])
    assert warm_update_config(config).train.epochs == 1
    assert config.train.epochs == 3  # the step's own config is left alone
    same = load_config(overrides=["train.epochs=3", "train.warm_epochs=null"])
    assert warm_update_config(same).train.epochs == 3


def test_a_warm_update_takes_warm_lr_where_set():
    from components.train.run import warm_update_config
    from taml.core.config import load_config

    config = load_config(overrides=["train.lr=0.002", "train.warm_lr=0.0005", "train.warm_epochs=1"])
    warm = warm_update_config(config).train
    assert (warm.lr, warm.epochs) == (0.0005, 1) and config.train.lr == 0.002
    assert (
        warm_update_config(load_config(overrides=["train.lr=0.002", "train.warm_lr=null"])).train.lr == 0.002
    )

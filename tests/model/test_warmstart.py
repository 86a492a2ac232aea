import datetime as dt

import numpy as np
import pandas as pd
import pytest
import torch

from model.artifacts import VersionMetadata, load_model_version, save_model_version
from model.encode import encode
from model.errors import ModelConfigError
from model.fitting import fit
from model.spec import ModelConfig, TrainConfig

CFG = TrainConfig(batch_size=500, epochs=1, progress=False, seed=2)


def _parent(tmp_path, world, trained_through: dt.date):
    """A TAML version v1 fit on the whole fixture table, saved with its trained-through day."""
    train_df, _, spec, _ = world
    f = fit(train_df, spec, ModelConfig(), CFG)
    meta = VersionMetadata(version="v1", trained_through=trained_through)
    return save_model_version(tmp_path / "v1", f.model, spec, f.vocab, meta)


def test_warm_start_grows_vocabulary_and_keeps_old_rows(tmp_path, world):
    train_df, _, spec, _ = world
    parent = load_model_version(_parent(tmp_path, world, dt.date(2026, 1, 1)))

    # The next day brings new frequent values in field f0 (ids 1000..1002) and f3.
    new_day = train_df.iloc[:600].copy()
    new_day.loc[new_day.index[:300], "f0"] = np.repeat([1000, 1001, 1002], 100)
    new_day.loc[new_day.index[300:400], "f3"] = 777
    grown = parent.vocab.grow(new_day, spec)
    assert grown.fields["f0"].values[-3:] == [1000, 1001, 1002]
    assert grown.fields["f0"].values[:-3] == parent.vocab.fields["f0"].values

    child = fit(
        new_day, spec, ModelConfig(), CFG.model_copy(update={"max_steps": 1, "lr": 1e-12}), parent=parent
    )
    assert child.parent_version == "v1"
    assert child.vocab.to_json() == grown.to_json()
    old_w = parent.model.embedding.weight.detach()
    new_w = child.model.embedding.weight.detach()
    old_sizes, new_sizes = parent.vocab.sizes, child.vocab.sizes
    o = n = 0
    for so, sn in zip(old_sizes, new_sizes, strict=True):
        # lr 1e-12: one step moves nothing visible, so old rows must equal the parent's
        torch.testing.assert_close(new_w[n : n + so], old_w[o : o + so], atol=1e-9, rtol=0)
        if sn > so:
            fresh_rows = new_w[n + so : n + sn]
            assert fresh_rows.abs().max() > 0 and fresh_rows.std() < 0.1  # N(0, 0.01²) initialisation
        o, n = o + so, n + sn
    assert new_sizes[0] == old_sizes[0] + 3 and new_sizes[3] == old_sizes[3] + 1
    # Old values encode to the same indices under the grown vocabulary.
    old_x = encode(train_df, spec, parent.vocab)
    new_x = encode(train_df, spec, child.vocab)
    known = old_x > 1
    np.testing.assert_array_equal(new_x[known], old_x[known])


def test_warm_start_refuses_another_architecture(tmp_path, world):
    train_df, _, spec, _ = world
    f = fit(train_df.iloc[:500], spec, ModelConfig(architecture="esmm"), CFG)
    path = save_model_version(tmp_path / "v1", f.model, spec, f.vocab, VersionMetadata(version="v1"))
    with pytest.raises(ModelConfigError, match="parent v1 is 'esmm'"):
        fit(pd.DataFrame(train_df.iloc[:500]), spec, ModelConfig(architecture="taml"), CFG, parent=path)


def test_warm_start_copies_exactly(tmp_path, world):
    from model.warmstart import warm_start

    train_df, _, spec, _ = world
    f = fit(train_df.iloc[:1000], spec, ModelConfig(architecture="mlp"), CFG)
    parent = load_model_version(
        save_model_version(tmp_path / "v", f.model, spec, f.vocab, VersionMetadata(version="v"))
    )
    day = train_df.iloc[:200].copy()
    # Counts accumulate: other fields take an admitted value, so only f1 gains a row.
    for f in spec.fields:
        if f.kind == "categorical" and f.name != "f1":
            day[f.source] = parent.vocab.fields[f.name].values[0]
    day["f1"] = 4242
    vocab = parent.vocab.grow(day, spec)
    child = warm_start(parent, vocab)
    assert vocab.sizes[1] == parent.vocab.sizes[1] + 1
    for name in ("embedding.weight", "cvr_embedding.weight"):
        old, new = parent.model.state_dict()[name], child.state_dict()[name]
        a = parent.vocab.sizes[0] + parent.vocab.sizes[1]
        assert torch.equal(new[:a], old[:a])  # fields 0 and 1 keep their rows
        assert torch.equal(new[a + 1 :], old[a:])  # later fields moved down by the one new row
    for name, t in child.state_dict().items():
        if "embedding" not in name:
            assert torch.equal(t, parent.model.state_dict()[name])


def test_the_optimizer_state_travels_with_the_version_and_continues_on_warm_start(tmp_path, world):
    from model.artifacts import OPTIMIZER_FILE, load_optimizer_state
    from model.errors import ModelArtifactError
    from model.warmstart import grow_optimizer_state

    train_df, _, spec, _ = world
    cfg = CFG.model_copy(update={"max_steps": 3})
    parent_fit = fit(train_df.iloc[:3000], spec, ModelConfig(), cfg)
    state = parent_fit.optimizer_state
    path = save_model_version(
        tmp_path / "v1",
        parent_fit.model,
        spec,
        parent_fit.vocab,
        VersionMetadata(version="v1"),
        optimizer_state=state,
    )
    parent = load_model_version(path, with_optimizer=True)
    assert load_model_version(path).optimizer_state is None  # scoring does not pay for it
    saved = parent.optimizer_state["sparse"]["state"][0]
    torch.testing.assert_close(saved["exp_avg_sq"], state["sparse"]["state"][0]["exp_avg_sq"])
    assert float(saved["step"]) == 3

    # One new frequent value in f0: the embedding moments are re-laid out, new rows start at zero.
    day = train_df.iloc[:1200].copy()  # two steps of 500 after the re-centring holdout
    day.loc[day.index[:100], "f0"] = 999
    vocab = parent.vocab.grow(day, spec)
    grown = grow_optimizer_state(parent.optimizer_state, parent.vocab.sizes, vocab.sizes)
    old_m, new_m = saved["exp_avg_sq"], grown["sparse"]["state"][0]["exp_avg_sq"]
    n0 = parent.vocab.sizes[0]
    assert new_m.shape[0] == old_m.shape[0] + 1
    assert torch.equal(new_m[:n0], old_m[:n0]) and torch.equal(new_m[n0 + 1 :], old_m[n0:])
    assert torch.all(new_m[n0] == 0)

    # The child continues Adam's count instead of restarting it.
    child = fit(day, spec, ModelConfig(), CFG.model_copy(update={"max_steps": 2}), parent=path)
    assert float(child.optimizer_state["sparse"]["state"][0]["step"]) == 5
    dense_steps = {float(s["step"]) for s in child.optimizer_state["dense"]["state"].values()}
    assert dense_steps == {5.0}

    # A tampered optimizer file is refused, naming it.
    (path / OPTIMIZER_FILE).write_bytes(b"not a torch file")
    with pytest.raises(ModelArtifactError, match="optimizer.pt: checksum mismatch"):
        load_optimizer_state(path)


def test_a_warm_update_replays_a_share_of_the_days_its_parent_has_fit(tmp_path, world):
    """train.warm_replay_share: the day new to the parent whole, a seeded share of the older ones."""
    from model.fitting import replay_rows

    train_df, _, spec, _ = world
    path = _parent(tmp_path, world, dt.date(2026, 1, 2))
    n = len(train_df)
    row_days = ["2026-01-01"] * (n // 3) + ["2026-01-02"] * (n // 3) + ["2026-01-03"] * (n - 2 * (n // 3))
    new_rows = n - 2 * (n // 3)
    keep = replay_rows(row_days, dt.date(2026, 1, 2), 0.25, seed=2)
    days = np.asarray(row_days)
    assert (days[keep] == "2026-01-03").sum() == new_rows  # every new row
    old_kept = (days[keep] != "2026-01-03").sum()
    assert abs(old_kept - 0.25 * 2 * (n // 3)) < 4 * np.sqrt(0.25 * 0.75 * 2 * (n // 3))
    np.testing.assert_array_equal(keep, replay_rows(row_days, dt.date(2026, 1, 2), 0.25, seed=2))
    assert replay_rows(row_days, None, 0.25, seed=2).size == n  # no trained-through date: everything

    in_sample = CFG.model_copy(update={"recenter_holdout_share": 0.0})  # every row trains
    cfg = in_sample.model_copy(update={"warm_replay_share": 0.25})
    child = fit(train_df, spec, ModelConfig(), cfg, parent=path, row_days=row_days)
    assert child.rows == keep.size and child.result.samples == keep.size
    whole = in_sample.model_copy(update={"warm_replay_share": 1.0})  # the whole window, every day
    assert fit(train_df, spec, ModelConfig(), whole, parent=path, row_days=row_days).rows == n
    cold = fit(train_df, spec, ModelConfig(), cfg, row_days=row_days)  # a cold start uses everything
    assert cold.rows == n

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from safetensors.torch import load_file, save_file

from model.artifacts import (
    METADATA_FILE,
    MODEL_FILE,
    VOCAB_FILE,
    WEIGHTS_FILE,
    TrainingWindow,
    VersionMetadata,
    load_model_version,
    save_model_version,
    sha256_file,
)
from model.errors import ModelArtifactError
from model.fitting import fit
from model.scoring import score
from model.spec import ModelConfig, TrainConfig

CFG = TrainConfig(batch_size=500, epochs=1, progress=False, seed=1)


@pytest.fixture(scope="module")
def trained(world):
    train_df, _, spec, _ = world
    return fit(train_df, spec, ModelConfig(), CFG)


@pytest.fixture
def version(tmp_path, trained):
    meta = VersionMetadata(
        version="v1",
        trained_through=dt.date(2026, 11, 1),
        training_window=TrainingWindow(start=dt.date(2026, 10, 25), end=dt.date(2026, 11, 1)),
        seed=1,
        code_revision="abc123",
        metrics={"ctr_auc": 0.7},
    )
    return save_model_version(tmp_path / "v1", trained.model, trained.spec, trained.vocab, meta)


def test_round_trip_is_bit_exact(version, trained, world):
    assert sorted(p.name for p in version.iterdir()) == sorted(
        [WEIGHTS_FILE, MODEL_FILE, VOCAB_FILE, METADATA_FILE]
    )
    loaded = load_model_version(version)
    ref = trained.model.state_dict()
    got = loaded.model.state_dict()
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert loaded.metadata.version == "v1" and loaded.metadata.code_revision == "abc123"
    assert loaded.metadata.training_window.start == dt.date(2026, 10, 25)
    assert loaded.vocab.to_json() == trained.vocab.to_json() and loaded.spec == trained.spec
    meta = json.loads((version / METADATA_FILE).read_text())
    assert meta["files"][WEIGHTS_FILE] == sha256_file(version / WEIGHTS_FILE)
    _, test_df, _, _ = world
    a, b = score(loaded, test_df), score(str(version), test_df)
    pd.testing.assert_frame_equal(a, b)


def test_versions_are_immutable(version, trained):
    with pytest.raises(ModelArtifactError, match="already exists"):
        save_model_version(version, trained.model, trained.spec, trained.vocab, VersionMetadata(version="v1"))


def test_score_contract(version, world):
    _, test_df, _, _ = world
    df = test_df.set_index(test_df.index + 1000)
    out = score(version, df, batch_size=777)
    assert list(out.columns) == ["p_ctr", "p_cvr", "p_ctcvr"] and out.index.equals(df.index)
    assert (out.p_ctcvr <= out.p_ctr).all() and out.notna().all().all()
    np.testing.assert_allclose(out.p_ctcvr, out.p_ctr * out.p_cvr, rtol=1e-6)
    arrow = score(version, pa.Table.from_pandas(test_df, preserve_index=False))
    np.testing.assert_array_equal(arrow.to_numpy(), score(version, test_df).to_numpy())
    assert len(score(version, test_df.iloc[:0])) == 0


def _rehash(version):
    meta = json.loads((version / METADATA_FILE).read_text())
    for name in meta["files"]:
        meta["files"][name] = sha256_file(version / name)
    (version / METADATA_FILE).write_text(json.dumps(meta))


def test_tampered_weights_fail_the_checksum(version):
    raw = bytearray((version / WEIGHTS_FILE).read_bytes())
    raw[-5] ^= 0xFF
    (version / WEIGHTS_FILE).write_bytes(bytes(raw))
    with pytest.raises(ModelArtifactError, match=r"weights\.safetensors: checksum mismatch"):
        load_model_version(version)


def test_truncated_weights(version):
    raw = (version / WEIGHTS_FILE).read_bytes()
    (version / WEIGHTS_FILE).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelArtifactError, match="checksum mismatch"):
        load_model_version(version)
    _rehash(version)  # even with a matching checksum, the file itself is rejected cleanly
    with pytest.raises(ModelArtifactError, match=r"weights\.safetensors: not a readable safetensors file"):
        load_model_version(version)


def test_bad_json_names_the_file(version):
    (version / METADATA_FILE).write_text('{"version": "v1", ')
    with pytest.raises(ModelArtifactError, match=r"metadata\.json: invalid JSON"):
        load_model_version(version)


def test_bad_model_json_after_rehash(version):
    info = json.loads((version / MODEL_FILE).read_text())
    info["model_config"]["taml"]["n_learners"] = "many"
    (version / MODEL_FILE).write_text(json.dumps(info))
    _rehash(version)
    with pytest.raises(ModelArtifactError, match=r"model\.json: taml\.n_learners"):
        load_model_version(version)


@pytest.mark.parametrize("change", ["shape", "missing", "extra", "nan"])
def test_wrong_tensors_are_named(version, change):
    tensors = load_file(str(version / WEIGHTS_FILE))
    if change == "shape":
        tensors["towers.out.weight"] = torch.zeros(1, 2, 3)
        message = "tensor 'towers.out.weight' is"
    elif change == "missing":
        del tensors["experts.linear.weight"]
        message = r"missing tensors \['experts.linear.weight'\]"
    elif change == "extra":
        tensors["surprise"] = torch.zeros(1)
        message = "unexpected tensors"
    else:
        tensors["experts.linear.weight"] = torch.full_like(tensors["experts.linear.weight"], float("nan"))
        message = "NaN"
    save_file(tensors, str(version / WEIGHTS_FILE))
    _rehash(version)
    with pytest.raises(ModelArtifactError, match=message):
        load_model_version(version)


def test_a_saved_single_expert_gate_is_dropped_on_load(version, world):
    """Artifacts written before one-expert gates were dropped carry their (never used) weights."""
    _, test_df, _, _ = world
    before = score(version, test_df)
    tensors = load_file(str(version / WEIGHTS_FILE))
    tensors["gates.weight"] = torch.randn(4, tensors["experts.linear.weight"].shape[1])
    save_file(tensors, str(version / WEIGHTS_FILE))
    _rehash(version)
    loaded = load_model_version(version)
    assert loaded.model.gates is None and "gates.weight" not in loaded.model.state_dict()
    pd.testing.assert_frame_equal(score(loaded, test_df), before)


def test_missing_files(version, tmp_path):
    (version / VOCAB_FILE).unlink()
    with pytest.raises(ModelArtifactError, match=r"vocab\.json: missing file"):
        load_model_version(version)
    with pytest.raises(ModelArtifactError, match="does not exist"):
        load_model_version(tmp_path / "nope")

"""The deploy step's smoke test: a candidate that loads answers with model.score's numbers; one
whose files are broken is a DeployError naming the cause, never a traceback of the loader."""

from __future__ import annotations

import pandas as pd
import pytest
from planted_data import make_synthetic

from components.deploy.run import DeployError, smoke_test
from model import VersionMetadata, fit, save_model_version, score
from model.artifacts import WEIGHTS_FILE
from model.spec import ModelConfig, TrainConfig


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    table, spec, _ = make_synthetic(600, n_fields=3, cardinality=8, seed=1)
    spec = spec.model_copy(update={"min_count": 1})
    fr = fit(
        table,
        spec,
        ModelConfig(embedding_dim=4),
        TrainConfig(progress=False, batch_size=200, max_steps=3, seed=0),
    )
    out = tmp_path_factory.mktemp("deploy") / "c1"
    return save_model_version(out, fr.model, fr.spec, fr.vocab, VersionMetadata(version="c1")), table


def test_a_loadable_candidate_answers_with_model_scores(candidate):
    version_dir, table = candidate
    row = table.head(1)
    answer = smoke_test(version_dir, row)
    want = score(version_dir, row).iloc[0]
    assert answer == pytest.approx({k: float(v) for k, v in want.items()}, rel=1e-9)
    assert 0 < answer["p_ctcvr"] <= answer["p_ctr"] < 1


def test_broken_weights_are_a_deploy_error(candidate, tmp_path):
    import shutil

    version_dir, table = candidate
    broken = tmp_path / "c2"
    shutil.copytree(version_dir, broken)
    (broken / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(DeployError, match="cannot serve"):
        smoke_test(broken, table.head(1))


def test_a_missing_candidate_is_a_deploy_error(tmp_path):
    with pytest.raises(DeployError, match="cannot serve"):
        smoke_test(tmp_path / "nothing", pd.DataFrame({"f0": [1]}))

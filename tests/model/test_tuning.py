import pytest

from model.errors import ModelConfigError
from model.spec import ModelConfig, TrainConfig, TuneConfig
from model.tuning import Row, apply, draw_trials, selection_score, tune_row


def test_apply_routes_each_scope():
    m, t = apply(
        {"train.lr": 0.01, "model.embedding_dim": 16, "taml.n_general": 0, "taml.n_task": 2},
        ModelConfig(),
        TrainConfig(),
    )
    assert (t.lr, m.embedding_dim, m.taml.n_general, m.taml.n_task) == (0.01, 16, 0, 2)
    with pytest.raises(ModelConfigError, match="unknown scope"):
        apply({"nope.x": 1}, ModelConfig(), TrainConfig())
    with pytest.raises(ModelConfigError, match="not a valid configuration"):
        apply({"taml.n_general": 0, "taml.n_task": 0, "taml.n_learner": 0}, ModelConfig(), TrainConfig())


@pytest.mark.parametrize("arch", ["taml", "mlp", "mmoe", "ple", "esmm", "aitm"])
def test_draw_trials_same_budget_distinct_valid_deterministic(arch):
    row = Row(arch, ModelConfig(architecture=arch), TrainConfig())
    tune = TuneConfig(budget=6)
    trials = draw_trials(row, tune)
    assert len(trials) == 6 and trials[0] == {}
    configs = [apply(a, row.model, row.train) for a in trials]
    assert len({repr((m.model_dump(), t.model_dump())) for m, t in configs}) == 6
    assert draw_trials(row, tune) == trials
    assert draw_trials(row, tune.model_copy(update={"seed": 1})) != trials


def test_tune_row_sees_only_the_validation_day_and_keeps_the_best():
    seen = []

    def evaluate(model_cfg, train_cfg, train, valid):
        seen.append((train, valid))
        return {"ctr_auc": train_cfg.lr, "cvr_auc": 0.5, "ctcvr_auc": 0.5}

    tune = TuneConfig(budget=3, seeds=2, common_space={"train.lr": [0.002, 0.004, 0.008]}, model_space={})
    result = tune_row(
        Row("esmm", ModelConfig(architecture="esmm"), TrainConfig()), "TRAIN", "VALID", tune, evaluate
    )
    assert {s for s in seen} == {("TRAIN", "VALID")} and len(seen) == 6  # 3 trials x 2 seeds
    best = max(t["score"] for t in result.trials)
    assert result.score == best and result.chosen["train.lr"] == max(
        t["assignment"].get("train.lr", 0.001) for t in result.trials
    )


def test_selection_score_ranks_nan_last():
    assert selection_score({"ctr_auc": 0.7, "cvr_auc": 0.6, "ctcvr_auc": 0.8}, "mean_auc") == pytest.approx(
        0.7
    )
    assert selection_score({"cvr_eauc": float("nan")}, "cvr_eauc") == float("-inf")


def test_fixed_keys_stay_at_the_base_value():
    row = Row("taml_paper", ModelConfig(), TrainConfig(), fixed=("taml.gate_bias", "taml.gate_temperature"))
    for assignment in draw_trials(row, TuneConfig(budget=6)):
        assert "taml.gate_bias" not in assignment and "taml.gate_temperature" not in assignment

import pytest
from pydantic import ValidationError

from model.compare import PAPER_TAML
from model.spec import FeatureSpec, FieldSpec, ModelConfig, TamlOptions, TrainConfig, default_feature_spec


def test_defaults_are_the_validated_taml_and_the_paper_sizes_stay_a_configuration():
    m, t = ModelConfig(), TrainConfig()
    assert m.architecture == "taml" and m.activation == "relu"
    # What the same-budget validation search chose (docs/MODEL.md, "Defaults").
    o = m.taml
    assert (o.n_general, o.n_task, o.n_learner, o.expert_dim, o.n_learners) == (0, 1, 0, 32, 2)
    assert (o.alpha, o.beta, o.gate_bias, o.tower_dims) == (0.1, 0.3, False, [64, 32])
    assert (m.embedding_dim, t.epochs, t.lr, t.batch_size, t.l2) == (16, 3, 2e-3, 2000, 1e-6)
    paper = TamlOptions(**PAPER_TAML)
    assert (paper.n_general, paper.n_task, paper.n_learner, paper.expert_dim) == (2, 1, 1, 64)
    assert (paper.alpha, paper.beta, paper.gate_bias) == (0.1, 0.1, False)
    assert m.mmoe.n_experts == 3 and m.mlp.tower_dims == [192, 64, 32]


def test_every_field_is_described():
    for cls in (FieldSpec, FeatureSpec, ModelConfig, TrainConfig, TamlOptions):
        for name, f in cls.model_fields.items():
            assert f.description, f"{cls.__name__}.{name} lacks a description"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "x", "kind": "bucketized"}, "needs non-empty boundaries"),
        ({"name": "x", "kind": "bucketized", "boundaries": [1, 1]}, "strictly increasing"),
        ({"name": "x", "boundaries": [1.0]}, "only for bucketized"),
    ],
)
def test_bad_field_specs_are_named(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        FieldSpec(**kwargs)


def test_unknown_keys_and_duplicates_rejected():
    with pytest.raises(ValidationError, match="extra"):
        ModelConfig(architecture="taml", n_experts=3)
    with pytest.raises(ValidationError, match="duplicate field names"):
        FeatureSpec(fields=[FieldSpec(name="a"), FieldSpec(name="a")])
    with pytest.raises(ValidationError, match="at least one expert"):
        TamlOptions(n_general=0, n_task=0, n_learner=0)


def test_default_feature_spec_round_trips_json():
    spec = default_feature_spec()
    assert len(spec.fields) == 23 and spec.names[:2] == ["user_id", "item_id"]
    assert FeatureSpec.model_validate_json(spec.model_dump_json()) == spec

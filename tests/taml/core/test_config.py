import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from taml.core.config import CONFIG_DIR, Config, ConfigError, load_config


def test_defaults_load_with_local_profile():
    cfg = load_config(env={})
    assert cfg.profile == "local"
    assert cfg.paths.data_root == "./data"
    assert cfg.simulator.density == "aliccp" and cfg.simulator.target_ctr is None  # from the preset


def test_gcp_profile_points_at_gcs():
    cfg = load_config(profile="gcp", env={})
    assert cfg.paths.data_root.startswith("gs://")
    assert cfg.ingest.runner == "DataflowRunner"


def test_set_overrides_are_typed():
    cfg = load_config(
        overrides=["simulator.users=123", "simulator.gzip=false", "ingest.pipeline_options=[--a, --b]"],
        env={},
    )
    assert cfg.simulator.users == 123
    assert cfg.simulator.gzip is False
    assert cfg.ingest.pipeline_options == ["--a", "--b"]


def test_environment_overrides_files_and_set_overrides_environment(tmp_path: Path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("simulator:\n  users: 7\n  shops: 9\n")
    env = {"TAML__SIMULATOR__USERS": "8", "TAML__SIMULATOR__SCENARIOS__CTR_SHIFT_LOGIT": "0.25"}
    cfg = load_config(files=[extra], env=env, overrides=["simulator.shops=10"])
    assert (cfg.simulator.users, cfg.simulator.shops) == (8, 10)
    assert cfg.simulator.scenarios.ctr_shift_logit == 0.25


def test_profile_from_environment():
    assert load_config(env={"TAML_PROFILE": "gcp"}).profile == "gcp"


def test_unknown_key_names_the_key_and_the_known_ones():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["simulator.userz=5"], env={})
    msg = str(e.value)
    assert "'simulator.userz'" in msg and "users" in msg


def test_unknown_section():
    with pytest.raises(ConfigError, match=r"unknown config key 'trainer'"):
        load_config(overrides=["trainer.epochs=1"], env={})


def test_bad_value_names_the_key_and_what_was_expected():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["simulator.target_ctr=1.5"], env={})
    assert "'simulator.target_ctr'" in str(e.value) and "less than 1" in str(e.value)
    with pytest.raises(ConfigError, match=r"'simulator.users'.*integer"):
        load_config(env={"TAML__SIMULATOR__USERS": "many"})


def test_cross_field_rule():
    with pytest.raises(ConfigError, match="attribution_window_hours"):
        load_config(
            overrides=["ingest.attribution_window_hours=12", "simulator.attribution_window_hours=24"], env={}
        )


def test_bad_files_and_profiles(tmp_path: Path):
    with pytest.raises(ConfigError, match="unknown profile 'prod'"):
        load_config(profile="prod", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulator: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(files=[bad], env={})
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(files=[tmp_path / "missing.yaml"], env={})
    with pytest.raises(ConfigError, match="bad override"):
        load_config(overrides=["no-equals-sign"], env={})
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config(overrides=["simulator.users.x=1"], env={})


def _leaves(model: BaseModel, prefix: str = ""):
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            yield from _leaves(value, key + ".")
        else:
            yield key, value


def test_default_yaml_documents_every_knob_with_the_schema_default():
    text = (CONFIG_DIR / "default.yaml").read_text()
    data = yaml.safe_load(text)
    assert Config.model_validate({**data, "profile": "local"}) == Config(), (
        "default.yaml differs from the schema defaults"
    )
    lines = text.splitlines()
    for key, _ in _leaves(Config()):
        if key == "profile":
            continue
        node = data
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key} missing from default.yaml"
            node = node[part]
        leaf = key.split(".")[-1]
        idx = next(i for i, line in enumerate(lines) if re.match(rf"\s*{leaf}:", line))
        assert lines[idx - 1].strip().startswith("#"), f"{key} has no comment in default.yaml"


def test_default_yaml_is_the_text_generated_from_the_schema():
    from taml.core.config_defaults import render_defaults

    assert (CONFIG_DIR / "default.yaml").read_text() == render_defaults(), (
        "config/default.yaml is generated from the schema: run `make config`"
    )


def test_generator_writes_every_kind_of_value_and_refuses_an_undocumented_knob():
    import datetime as dt

    from pydantic import Field

    from taml.core.config_defaults import UndocumentedKnob, render_defaults

    class Item(BaseModel):
        name: str = Field(description="Name.")
        weight: float = Field(1.0, description="Weight.")

    class Inner(BaseModel):
        """Inner section, documented by its docstring."""

        day: dt.date = Field(dt.date(2020, 1, 2), description="A date.")
        ratio: float | None = Field(1e-06, description="A small float\nover two lines.")
        items: list[Item] = Field(
            default_factory=lambda: [Item(name="a"), Item(name="b", weight=2.0)], description="Items."
        )
        by_key: dict[str, Item] = Field(default_factory=lambda: {"k": Item(name="c")}, description="Map.")
        pair: tuple[int, int] = Field((1, 2), description="Pair.")
        text: str = Field('say "hi": #not a comment', description="Text.")

    class Schema(BaseModel):
        inner: Inner = Field(default_factory=Inner, description="The only section.")
        flag: bool | None = Field(None, description="Flag.")

    text = render_defaults(Schema)
    assert Schema.model_validate(yaml.safe_load(text)) == Schema()
    assert '# The only section.\ninner:\n  # A date.\n  day: "2020-01-02"\n' in text
    assert "  # A small float over two lines.\n  ratio: 1e-06\n" in text
    assert '  items:\n    - {"name": "a"}\n    - {"name": "b", "weight": 2.0}\n' in text
    assert '  by_key:\n    k: {"name": "c", "weight": 1.0}\n' in text

    class Undocumented(BaseModel):
        inner: Inner = Field(default_factory=Inner, description="Section.")
        knob: int = 3

    with pytest.raises(UndocumentedKnob, match="knob"):
        render_defaults(Undocumented)

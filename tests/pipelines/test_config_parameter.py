"""One resolved configuration reaches every task, from `taml run` and from `taml submit`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from pipelines.local import child_arguments
from pipelines.runtime import config_parameter, read_config_parameter
from taml.cli.commands.kfp_cmds import PACKAGE, run_arguments, schedule_command, submit_request
from taml.cli.main import build_parser, config_from_args
from taml.core.config import ConfigError, dump, load_config

DAY = dt.date(2026, 11, 5)


def _cli_config(argv: list[str]):
    args = build_parser().parse_args(argv)
    return args, config_from_args(args)


def _config_file(tmp_path: Path, body: dict) -> str:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


@pytest.mark.parametrize("profile", ["local", "gcp"])
def test_the_parameter_round_trips_through_the_schema(profile):
    config = load_config(
        profile=profile, env={}, overrides=["train.epochs=7", "pipeline.beam_options=[--a=1]"]
    )
    assert read_config_parameter(config_parameter(config)) == config
    # `taml config show` prints YAML; a run may be given that as well.
    assert read_config_parameter(dump(config)) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json: [", "neither JSON nor YAML"),
        ("[1, 2]", "must be a mapping of sections, got list"),
        ('{"train": {"epochs": 0}}', "train.epochs"),
        ('{"train": {"epoks": 2}}', "unknown config key 'train.epoks'"),
    ],
)
def test_a_bad_parameter_names_what_is_wrong(text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        read_config_parameter(text)


def test_a_value_from_a_config_file_reaches_a_step_through_kfp_local(tmp_path, monkeypatch):
    from kfp import local

    from pipelines.components import make_components

    artifacts = tmp_path / "from-the-file"
    conf = _config_file(
        tmp_path, {"paths": {"artifact_root": str(artifacts)}, "pipeline": {"cold_start_days": 4}}
    )
    monkeypatch.delenv("TAML__PIPELINE__COLD_START_DAYS", raising=False)
    _, config = _cli_config(
        ["run", "--date", str(DAY), "--config", conf, "--data-root", str(tmp_path / "data")]
    )
    # The task's own environment is no configuration layer: the resolved value wins.
    monkeypatch.setenv("TAML__PIPELINE__COLD_START_DAYS", "6")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    task = make_components(config.pipeline.image)["train"](**child_arguments(config, DAY)["arguments"])
    assert task.outputs["trained"] is False and task.outputs["mode"] == "skip"
    record = (artifacts / "runs" / f"dt={DAY}" / "train.json").read_text()
    assert f"cold start needs 4 validated day(s) with feature tables before {DAY}" in record


def test_submit_passes_every_layer_of_the_configuration(tmp_path, monkeypatch):
    conf = _config_file(tmp_path, {"train": {"epochs": 5}, "paths": {"data_root": "gs://b/data"}})
    monkeypatch.setenv("TAML__TRAIN__LR", "0.02")
    argv = ["submit", "--host", "http://kfp", "--date", str(DAY), "--profile", "gcp", "--config", conf]
    args, config = _cli_config([*argv, "--set", "pipeline.window_days=3"])
    request = submit_request(args, config)
    assert request["pipeline_file"] == str(PACKAGE) and request["run_name"] == f"taml-daily-{DAY}"
    arguments = request["arguments"]
    declared = yaml.safe_load(PACKAGE.read_text())["root"]["inputDefinitions"]["parameters"]
    assert set(arguments) <= set(declared) and all(isinstance(v, str) for v in arguments.values())
    assert arguments["date"] == str(DAY)
    sent = read_config_parameter(arguments["config"])
    assert sent == config
    assert (sent.profile, sent.paths.data_root) == ("gcp", "gs://b/data")  # profile, then the file
    assert (sent.train.epochs, sent.train.lr, sent.pipeline.window_days) == (5, 0.02, 3)  # file, env, --set


def test_schedule_passes_the_configuration_and_no_date():
    args, config = _cli_config(["schedule", "--host", "h", "--set", "train.epochs=4", "--dry-run"])
    cmd = schedule_command(args, config)
    params = dict(a.split("=", 1) for a in cmd if a.startswith(("config=", "date=", "schedule_time=")))
    assert set(params) == {"config", "schedule_time"}
    assert read_config_parameter(params["config"]).train.epochs == 4
    assert run_arguments(config)["config"] == params["config"]

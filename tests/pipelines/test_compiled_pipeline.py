"""The committed pipeline package is current, submittable, and asks for what the design says."""

from pathlib import Path

import yaml
from kfp import components

from pipelines.runtime import read_config_parameter
from taml.cli.commands.kfp_cmds import PACKAGE, compile_pipeline
from taml.core.config import load_config


def test_committed_package_is_up_to_date(tmp_path: Path):
    fresh = compile_pipeline(load_config(env={}), tmp_path / "taml_daily.yaml")
    assert fresh.read_text() == PACKAGE.read_text(), "pipelines/taml_daily.yaml is stale: run `make compile`"


def _spec() -> dict:
    docs = list(yaml.safe_load_all(PACKAGE.read_text()))
    return docs[0]


def test_package_loads_as_a_component_with_the_documented_parameters():
    loaded = components.load_component_from_file(str(PACKAGE))
    assert loaded.name == "taml-daily"
    params = _spec()["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"date", "schedule_time", "config"}
    # The configuration is one string parameter whose default is the compile-time resolution.
    assert params["config"]["parameterType"] == "STRING"
    assert read_config_parameter(params["config"]["defaultValue"]) == load_config(env={})


def test_every_step_takes_the_configuration_and_the_date_and_nothing_else_common():
    spec = _spec()
    own = {"monitor": {"validation_failed"}}
    steps = ("ingest", "validate", "features", "train", "evaluate", "deploy", "monitor")
    for step in steps:
        params = set(spec["components"][f"comp-{step}"]["inputDefinitions"]["parameters"])
        assert params == {"config", "date"} | own.get(step, set()), step
    for name, task in _all_tasks(spec).items():
        if name.startswith(steps):
            given = task["inputs"]["parameters"]
            date = given["date"].get("taskOutputParameter", {}).get("producerTask") or given["date"].get(
                "componentInputParameter"
            )
            assert date in ("resolve-date", "pipelinechannel--resolve-date-Output"), name
            config = given["config"]["componentInputParameter"]
            assert config in ("config", "pipelinechannel--config"), name


def _all_tasks(spec: dict) -> dict:
    """Every task of the compiled spec by name: the root DAG's and each sub-DAG's."""
    tasks: dict = {}
    for node in (spec["root"], *spec["components"].values()):
        tasks.update(node.get("dag", {}).get("tasks", {}))
    return tasks


def test_train_asks_for_a_gpu_and_resources():
    spec = _spec()
    executors = spec["deploymentSpec"]["executors"]
    train = executors["exec-train"]["container"]
    assert train["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert str(train["resources"]["accelerator"]["resourceCount"]) == "1"
    assert train["resources"]["resourceCpuLimit"] == "4"
    assert train["image"].endswith("taml-pipeline:0.1.0")


def test_caching_off_for_every_step_that_reads_files():
    # Every step reads files its parameters do not name (late raw logs, the online store, the
    # production alias): a cached result would be stale. Only resolve-date may cache.
    tasks = _all_tasks(_spec())
    cache = {name: task.get("cachingOptions", {}).get("enableCache", False) for name, task in tasks.items()}
    steps = {name for name in tasks if not name.startswith(("condition-", "resolve-date"))}
    assert {"ingest", "validate", "features", "train", "evaluate", "deploy", "monitor", "monitor-2"} <= steps
    assert {name for name in steps if cache[name]} == set()
    conditions = [t["triggerPolicy"]["condition"] for t in tasks.values() if "triggerPolicy" in t]
    assert any("passed" in c for c in conditions)


def test_deploy_follows_evaluate_and_no_condition_reads_a_sibling_output():
    # kfp.local (2.17) cannot evaluate a dsl.If on the output of a task in the same sub-DAG: the
    # one condition left is on validate, a task of the root DAG; deploy judges the blessing itself.
    tasks = _all_tasks(_spec())
    conditions = [t["triggerPolicy"]["condition"] for t in tasks.values() if "triggerPolicy" in t]
    assert conditions and all("pipelinechannel--validate-passed" in c for c in conditions), conditions
    deploy = tasks["deploy"]
    assert "triggerPolicy" not in deploy and "evaluate" in deploy["dependentTasks"]
    assert deploy["inputs"]["artifacts"]["blessing"]["taskOutputArtifact"]["producerTask"] == "evaluate"


def test_schedule_wraps_kfp_recurring_run_create(capsys):
    from taml.cli.main import main

    assert main(["schedule", "--host", "http://kfp.local", "--cron", "0 0 6 * * *", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kfp --endpoint http://kfp.local recurring-run create")
    for flag in (
        "--max-concurrency 1",
        "--no-catchup",
        "--cron-expression '0 0 6 * * *'",
        "--pipeline-package-path",
    ):
        assert flag in out
    assert " date=" not in out  # each scheduled run resolves D from its schedule time...
    assert "'schedule_time=[[ScheduledTime.2006-01-02]]'" in out  # ...which KFP fills in
    assert main(["schedule", "--host", "h", "--cron", "0 6 * * *", "--dry-run"]) == 2


def test_resolve_date_uses_the_schedule_time_minus_the_lag():
    from pipelines.components import resolve_date

    assert resolve_date("2026-11-05", "", 2) == "2026-11-05"
    assert resolve_date("", "2026-11-28", 2) == "2026-11-26"
    assert resolve_date("", "2026-11-28T06:00:00Z", 2) == "2026-11-26"

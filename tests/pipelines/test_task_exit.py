"""A KFP task that succeeded leaves without the interpreter's teardown; a failed one exits as usual."""

# (No postponed annotations: KFP reads the component's parameter types at definition time.)
from pathlib import Path

import pytest
from kfp import dsl, local

from pipelines.runtime import config_parameter
from taml.core.config import Config


def probe(config: str, date: str, fail: bool, marker: str) -> str:
    import atexit

    # Registered before step_context's handler, so it runs after it: only a normal teardown runs it.
    atexit.register(lambda: open(marker, "w").write("teardown ran"))
    from pipelines.runtime import step_context

    s = step_context(config, date)
    if fail:
        raise RuntimeError("the step failed")
    return s.day.isoformat()


@pytest.fixture
def task(tmp_path: Path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    component = dsl.component(probe, base_image="python:3.11", install_kfp_package=False)
    return lambda fail: component(
        config=config_parameter(Config()), date="2026-11-05", fail=fail, marker=str(tmp_path / "marker")
    )


def test_a_task_that_succeeded_skips_the_teardown_and_keeps_its_outputs(task, tmp_path):
    assert task(False).output == "2026-11-05"
    assert not (tmp_path / "marker").exists()


def test_a_task_that_failed_exits_the_normal_way_with_its_error(task, tmp_path):
    with pytest.raises(RuntimeError, match="FAILURE"):
        task(True)
    assert (tmp_path / "marker").read_text() == "teardown ran"

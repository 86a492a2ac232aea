"""The pipeline's deploy task runs after every evaluate: it skips what was not blessed, and says why."""

import datetime as dt

import pytest

from components.common.records import read_records
from components.deploy import run_deploy, run_deploy_step
from components.deploy.run import DeployError
from taml.core import registry, storage
from taml.core.config import load_config

DAY = dt.date(2026, 11, 3)


@pytest.mark.parametrize(
    ("blessing", "said"),
    [
        ({"blessed": False, "reason": "no candidate was trained for this day", "candidate": None}, "(none)"),
        (
            {"blessed": False, "reason": "failed: no_regression:ctcvr_auc", "candidate": {"model_id": "v2"}},
            "candidate v2 not blessed (failed: no_regression:ctcvr_auc)",
        ),
    ],
)
def test_an_unblessed_candidate_is_skipped_and_recorded(tmp_path, blessing, said):
    artifacts = str(tmp_path / "artifacts")
    uri = storage.join(artifacts, "blessing.json")
    storage.write_json(uri, blessing)
    cfg = load_config(env={})
    # The candidate folder is never read: a day that trained nothing has none.
    out = run_deploy_step(cfg, DAY, str(tmp_path / "data"), artifacts, tmp_path / "missing", uri)
    assert not out.promoted and out.version == "" and said in out.reason
    assert out.reason.startswith("skipped:")
    record = read_records(artifacts, DAY)["deploy"]
    assert record["promoted"] is False and record["reason"] == out.reason
    assert registry.read_alias(artifacts, cfg.pipeline.model_name) is None
    # By hand, the same blessing is still refused outright.
    with pytest.raises(DeployError, match="not blessed"):
        run_deploy(cfg, DAY, str(tmp_path / "data"), artifacts, tmp_path / "missing", uri)

"""Step 7: monitor day D with the model that served it, and write the step's run record.

The KFP shell and ``taml drift`` both call :func:`run_monitor_step`. It wires monitoring/ to the
scorer of the served model (components/evaluate), gives it the scorer of a registered version
(the reference window is re-scored with the model that served day D, so a model update is not
read as drift), and decides what a day without a served model means: nothing to monitor, said
in the record, not an error (the first days of a history).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from components.common.production import load_version
from components.common.records import write_record
from taml.core import layout, registry, storage
from taml.core.config import Config
from taml.core.errors import TamlError

if TYPE_CHECKING:
    import pandas as pd

    from monitoring import MonitorResult

NO_MODEL = "no model"


@dataclass
class MonitorOutcome:
    """``status`` is ok / warn / alert, or ``no model`` (then ``result`` is None and ``reason`` says why)."""

    status: str
    reason: str = ""
    result: MonitorResult | None = None

    @property
    def headline_metrics(self) -> dict[str, float]:
        return self.result.headline_metrics if self.result is not None else {}


class VersionNotScorable(TamlError):
    """A model version could not be loaded to score with (not in the registry, damaged files)."""


def score_with_version(config: Config, artifact_root: str, version: str, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` scored by the registered model ``version`` (the monitor's ``reference_scorer``)."""
    from model import score
    from model.errors import ModelError

    try:
        loaded = load_version(config, artifact_root, version)
    except (TamlError, ModelError) as e:
        raise VersionNotScorable(f"model version {version!r} cannot be loaded ({e})") from e
    return score(loaded, rows, batch_size=config.train.eval_batch_size)


def run_monitor_step(
    config: Config,
    date: dt.date,
    data_root: str,
    artifact_root: str,
    *,
    validation_failed: bool = False,
    write_history: bool = True,
) -> MonitorOutcome:
    """Report on ``date``; raises ``MonitorInputError`` on unusable predictions (from monitoring/).

    A day nothing served (no predictions, no production model: the first days of a history) is
    recorded before monitoring/ and the scorers are imported (Evidently alone takes seconds).
    """
    day = layout.parse_date(date)
    if registry.read_alias(artifact_root, config.pipeline.model_name) is None and not storage.list_files(
        layout.predictions_dir(artifact_root, day), suffix=".parquet", limit=1
    ):
        return _no_model(artifact_root, day, f"cannot score {day}: there is no production model yet")
    from components.evaluate import NoProductionModelError, score_served_model
    from monitoring import run_monitor

    try:
        result = run_monitor(
            config,
            date,
            data_root,
            artifact_root,
            validation_failed=validation_failed,
            scorer=score_served_model,
            write_history=write_history,
            reference_scorer=score_with_version,
        )
    except NoProductionModelError as e:
        return _no_model(artifact_root, day, str(e))
    write_record(
        artifact_root,
        date,
        "monitor",
        {
            "status": result.status,
            "report": result.html_uri,
            "headline": result.to_dict()["headline_metrics"],
            "problems": result.problems,
            "validation_failed": validation_failed,
        },
    )
    return MonitorOutcome(result.status, result=result)


def _no_model(artifact_root: str, day: dt.date, reason: str) -> MonitorOutcome:
    write_record(artifact_root, day, "monitor", {"status": NO_MODEL, "reason": reason})
    return MonitorOutcome(NO_MODEL, reason=reason)

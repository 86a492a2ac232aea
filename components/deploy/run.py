"""Step 6: only a blessed candidate, loaded and answering first, becomes production."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.common.records import write_record
from components.common.tables import read_table
from taml import registry, storage
from taml.config import Config
from taml.errors import TamlError

log = logging.getLogger(__name__)


class DeployError(TamlError):
    """The candidate may not, or cannot, become production."""


@dataclass
class DeployOutcome:
    version: str
    promoted: bool
    previous_version: str | None
    registry_uri: str
    reason: str


def smoke_test(candidate_dir: str | Path, request_rows) -> dict[str, float]:
    """Load the candidate with the serving loader (load + warm-up) and answer one request with it."""
    from serving import ModelLoadError, load_serving_model

    try:
        model = load_serving_model(candidate_dir)
        pred = model.score_frame(request_rows)
    except ModelLoadError as e:
        raise DeployError(f"the candidate cannot serve: {e}") from e
    values = pred.to_numpy()
    if not np.isfinite(values).all() or (pred["p_ctcvr"] > pred["p_ctr"]).any():
        raise DeployError(
            f"candidate {model.version} answered a request with invalid scores: {pred.to_dict('records')}"
        )
    return {k: float(v) for k, v in pred.iloc[0].items()}


def run_deploy(
    config: Config,
    date: dt.date,
    data_root: str,
    artifact_root: str,
    candidate_dir: str | Path,
    blessing_uri: str,
) -> DeployOutcome:
    from model import load_model_version

    blessing: dict[str, Any] = storage.read_json(blessing_uri)
    name = config.pipeline.model_name
    if not blessing.get("blessed"):
        raise DeployError(f"refusing to deploy: the candidate was not blessed ({blessing.get('reason')})")
    version = load_model_version(candidate_dir).version
    if blessing.get("candidate", {}).get("model_id") != version:
        raise DeployError(
            f"the blessing is for {blessing.get('candidate', {}).get('model_id')}, not {version}"
        )

    answer = smoke_test(candidate_dir, read_table(data_root, [date]).head(1))
    log.info("candidate %s answered a request: %s", version, answer)

    uri = (
        registry.publish_version(artifact_root, name, version, candidate_dir)
        if not registry.is_complete(artifact_root, name, version)
        else registry.version_uri(artifact_root, name, version)
    )
    judged_against = (blessing.get("production") or {}).get("model_id")
    current = registry.read_alias(artifact_root, name)
    if current is not None and current.version == version:
        outcome = DeployOutcome(version, False, current.previous_version, uri, "already production (re-run)")
    else:
        if (current.version if current else None) != judged_against:
            raise DeployError(
                f"production moved to {current.version if current else None} after the gate compared against "
                f"{judged_against}; not deploying on a stale verdict"
            )
        alias = registry.promote(artifact_root, name, version, blessing=blessing_uri, expected=current)
        outcome = DeployOutcome(version, True, alias.previous_version, uri, "promoted")
    write_record(artifact_root, date, "deploy", asdict(outcome))
    return outcome

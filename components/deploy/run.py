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
from taml.core import registry, storage
from taml.core.config import Config
from taml.core.errors import TamlError

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
    """Load the candidate and answer one request with it, or raise :class:`DeployError`.

    The loader is the one the server uses (``model.load_model_version``: checksums, configs,
    ``weights_only`` tensors) and the answer is ``model.score``'s, which the server's own request
    path is tested equal to (tests/serving/test_serving_units.py); the server also warms every
    version up before it swaps it in and keeps the old one if that fails. So the step checks the
    candidate without importing the server (DESIGN.md: a step imports no serving code).
    """
    from model import ModelError, load_model_version, score

    try:
        loaded = load_model_version(candidate_dir)
        pred = score(loaded, request_rows)
    # OSError: files missing or unreadable; ValueError/RuntimeError: tensors that do not fit the
    # architecture (safetensors, torch), whatever the loader or the forward pass ran into.
    except (ModelError, OSError, ValueError, RuntimeError) as e:
        raise DeployError(f"the candidate cannot serve: {e}") from e
    values = pred.to_numpy()
    if not len(pred) or not np.isfinite(values).all() or (pred["p_ctcvr"] > pred["p_ctr"]).any():
        raise DeployError(
            f"candidate {loaded.version} answered a request with invalid scores: {pred.to_dict('records')}"
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
    """Publish the blessed candidate and move the alias, only onto the very weights evaluated.

    The blessing records the evaluated weights' sha256; the candidate folder, the registry
    version (freshly published, or already there under that id) and the alias move all have to
    agree with it, or nothing is promoted and the error says which files differ.
    """
    from model import load_model_version
    from model.artifacts import CHECKSUMMED, WEIGHTS_FILE

    blessing: dict[str, Any] = storage.read_json(blessing_uri)
    name = config.pipeline.model_name
    if not blessing.get("blessed"):
        raise DeployError(f"refusing to deploy: the candidate was not blessed ({blessing.get('reason')})")
    candidate = load_model_version(candidate_dir)
    version = candidate.version
    judged = blessing.get("candidate") or {}
    if judged.get("model_id") != version:
        raise DeployError(f"the blessing is for {judged.get('model_id')}, not {version}")
    evaluated = judged.get("weights_sha256")
    if not evaluated:
        raise DeployError(f"refusing to deploy {version}: {blessing_uri} records no weights digest")
    if candidate.metadata.files.get(WEIGHTS_FILE) != evaluated:
        raise DeployError(
            f"refusing to deploy {version}: the weights in {candidate_dir} are not the ones evaluated "
            f"(sha256 {candidate.metadata.files.get(WEIGHTS_FILE)}, blessing {evaluated})"
        )

    answer = smoke_test(candidate_dir, read_table(data_root, [date]).head(1))
    log.info("candidate %s answered a request: %s", version, answer)

    uri = registry.version_uri(artifact_root, name, version)
    try:
        if not registry.is_complete(artifact_root, name, version):
            registry.publish_version(artifact_root, name, version, candidate_dir)
        published = registry.verify_version(artifact_root, name, version)
    except registry.RegistryError as e:
        raise DeployError(f"refusing to deploy {version}: {e}") from None
    # A version of that id may already be there (a re-run; its metadata.json differs by its
    # creation time): what it scores with must be byte for byte what was evaluated.
    expected = {**{k: candidate.metadata.files.get(k) for k in CHECKSUMMED}, WEIGHTS_FILE: evaluated}
    differ = sorted(k for k, digest in expected.items() if published.get(k) != digest)
    if differ:
        raise DeployError(
            f"refusing to deploy {version}: registry version {uri} differs from the evaluated candidate "
            f"in {', '.join(differ)} (sha256 {published.get(differ[0])} there, {expected[differ[0]]} evaluated)"
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


def run_deploy_step(
    config: Config,
    date: dt.date,
    data_root: str,
    artifact_root: str,
    candidate_dir: str | Path,
    blessing_uri: str,
) -> DeployOutcome:
    """The pipeline's deploy task: it runs after every evaluate and deploys only a blessed candidate.

    A candidate that was not blessed (or a day that trained nothing) is skipped, and the run
    record says why; :func:`run_deploy` itself still refuses one (a deploy by hand must not
    slip through).
    """
    blessing: dict[str, Any] = storage.read_json(blessing_uri)
    if blessing.get("blessed"):
        return run_deploy(config, date, data_root, artifact_root, candidate_dir, blessing_uri)
    current = registry.read_alias(artifact_root, config.pipeline.model_name)
    candidate = (blessing.get("candidate") or {}).get("model_id")
    outcome = DeployOutcome(
        version="",
        promoted=False,
        previous_version=current.version if current else None,
        registry_uri="",
        reason=f"skipped: candidate {candidate or '(none)'} not blessed ({blessing.get('reason')})",
    )
    write_record(artifact_root, date, "deploy", asdict(outcome))
    return outcome

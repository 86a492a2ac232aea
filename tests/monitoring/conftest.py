"""A small simulated history with the clean model's predictions written under an artifact root."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from monitor_fixtures import SimHistory, write_predictions

from taml.core.config import Config

HISTORY_DAYS = 13
IMPRESSIONS = 25_000
FIRST_PREDICTED = 3  # the fixture's trailing stats are complete from this day on
REFERENCE_DAYS = 5


@pytest.fixture(scope="session")
def sim(tmp_path_factory) -> SimHistory:
    return SimHistory(tmp_path_factory.mktemp("monitor-sim"), HISTORY_DAYS, IMPRESSIONS)


@pytest.fixture(scope="session")
def predictions_root(sim: SimHistory, tmp_path_factory) -> Path:
    """Clean predictions of every day from FIRST_PREDICTED on (read-only: copy before writing)."""
    root = tmp_path_factory.mktemp("monitor-predictions")
    for day in sim.days[FIRST_PREDICTED:]:
        write_predictions(str(root), day, sim.clean_predictions(day))
    return root


@pytest.fixture
def artifact_root(predictions_root: Path, tmp_path: Path) -> str:
    """A private artifact root holding a copy of the clean predictions."""
    dst = tmp_path / "artifacts"
    shutil.copytree(predictions_root, dst)
    return str(dst)


@pytest.fixture
def monitor_config() -> Config:
    cfg = Config()
    cfg.monitor.reference_days = REFERENCE_DAYS
    return cfg

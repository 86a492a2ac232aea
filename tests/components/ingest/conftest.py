"""Fixtures of the ingest tests: a small simulated history ingested once."""

from __future__ import annotations

import pytest
from ingest_helpers import DAYS, SIM_CONFIG, START

from taml.core.config import load_config


@pytest.fixture(scope="session")
def ingest_config():
    # Few shards keep each Beam run small on 2 shared cores; the logic is the same for any count.
    return load_config(overrides=["ingest.shards=4", "ingest.stats_shards=2"])


@pytest.fixture(scope="session")
def simulated(tmp_path_factory, ingest_config):
    """Three simulated days (two ingestible plus the D+1 of the second), corrupt lines included,
    with days 1 and 2 ingested. Tests must not modify it (copy it first)."""
    from components.ingest import run_ingest
    from simulator import simulate

    root = str(tmp_path_factory.mktemp("sim"))
    summary = simulate(root, START, 3, 6000, seed=11, corrupt_rate=0.03, config=SIM_CONFIG)
    results = {d: run_ingest(ingest_config, d, root) for d in DAYS}
    return root, summary, results

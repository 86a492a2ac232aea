from pathlib import Path

import pytest
from simdata import START, small_config

from simulator import simulate


@pytest.fixture(scope="session")
def history(tmp_path_factory) -> Path:
    """Three clean days, 30k impressions each, 2% corruption."""
    root = tmp_path_factory.mktemp("sim")
    simulate(str(root), START, 3, 30_000, seed=11, corrupt_rate=0.02, config=small_config())
    return root

"""Fixtures of the model tests: tiny synthetic worlds with a planted signal, one thread."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from planted_data import make_synthetic

from model.spec import FeatureSpec

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def world() -> tuple[pd.DataFrame, pd.DataFrame, FeatureSpec, pd.DataFrame]:
    """(train, test, spec, test truth): 6 categorical + 1 bucketized field, same planted weights."""
    train, spec, _ = make_synthetic(8000, n_fields=6, cardinality=30, seed=0, n_numeric=1, signal=1.5)
    test, _, truth = make_synthetic(
        4000, n_fields=6, cardinality=30, seed=1, n_numeric=1, signal=1.5, world_seed=0
    )
    return train, test, spec, truth

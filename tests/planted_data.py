"""Small synthetic CTR/CVR data with a planted signal, for the tests (a fixture: it lives in tests/).

Each field value carries a click weight and a conversion weight (partly shared between the two
tasks); p_click = σ(b_c + Σ_f w_click[f, v_f]), p_conv = σ(b_v + Σ_f w_conv[f, v_f]),
click ~ Bernoulli(p_click), conversion ~ click · Bernoulli(p_conv). Values are Zipf-like so
vocabularies have a long tail.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from model.spec import FeatureSpec, FieldSpec


def synthetic_spec(n_fields: int, n_numeric: int = 0) -> FeatureSpec:
    """``n_fields`` categorical fields f0.. plus ``n_numeric`` bucketized fields n0.. (values in [0, 1))."""
    fields = [FieldSpec(name=f"f{j}") for j in range(n_fields)]
    bounds = [0.1 * k for k in range(1, 10)]
    fields += [FieldSpec(name=f"n{j}", kind="bucketized", boundaries=bounds) for j in range(n_numeric)]
    return FeatureSpec(fields=fields)


def make_synthetic(
    n: int,
    n_fields: int = 6,
    cardinality: int = 50,
    seed: int = 0,
    n_numeric: int = 0,
    signal: float = 1.0,
    base_ctr_logit: float = -1.5,
    base_cvr_logit: float = -1.0,
    world_seed: int | None = None,
) -> tuple[pd.DataFrame, FeatureSpec, pd.DataFrame]:
    """(samples, spec, truth): samples have fields, click, conversion, impression_id; truth the true p's.

    ``world_seed`` fixes the planted weights (default: ``seed``), so that two draws with different
    ``seed`` and the same ``world_seed`` are a train and a test day of the same world.
    """
    world = np.random.default_rng(seed if world_seed is None else world_seed)
    w_shared = world.normal(0, signal, size=(n_fields, cardinality))
    w_click = 0.7 * w_shared + 0.7 * world.normal(0, signal, size=(n_fields, cardinality))
    w_conv = 0.7 * w_shared + 0.7 * world.normal(0, signal, size=(n_fields, cardinality))
    w_num_click = world.normal(0, signal, size=n_numeric)
    w_num_conv = world.normal(0, signal, size=n_numeric)
    scale = 1.0 / np.sqrt(max(n_fields + n_numeric, 1))

    rng = np.random.default_rng(seed + 1_000_003)
    ranks = np.arange(1, cardinality + 1)
    probs = (1.0 / ranks) / np.sum(1.0 / ranks)
    values = rng.choice(cardinality, size=(n, n_fields), p=probs)
    numeric = rng.random((n, n_numeric))
    cols = np.arange(n_fields)
    z_click = base_ctr_logit + scale * (w_click[cols, values].sum(1) + numeric @ w_num_click)
    z_conv = base_cvr_logit + scale * (w_conv[cols, values].sum(1) + numeric @ w_num_conv)
    p_click = 1 / (1 + np.exp(-z_click))
    p_conv = 1 / (1 + np.exp(-z_conv))
    click = (rng.random(n) < p_click).astype(np.int64)
    conversion = click * (rng.random(n) < p_conv).astype(np.int64)

    frame = pd.DataFrame({f"f{j}": values[:, j] for j in range(n_fields)})
    for j in range(n_numeric):
        frame[f"n{j}"] = numeric[:, j]
    frame["click"] = click
    frame["conversion"] = conversion
    frame["impression_id"] = [f"s{seed}-{i}" for i in range(n)]
    truth = pd.DataFrame({"impression_id": frame["impression_id"], "p_click": p_click, "p_conv": p_conv})
    return frame, synthetic_spec(n_fields, n_numeric), truth

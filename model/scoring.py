"""Batch scoring of a table with a model version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from model.artifacts import LoadedModel, load_model_version
from model.encode import encode
from model.table import Table, num_rows

DEFAULT_SCORE_BATCH = 65536


@torch.no_grad()
def predict_encoded(
    model: torch.nn.Module,
    x: np.ndarray | torch.Tensor,
    batch_size: int = DEFAULT_SCORE_BATCH,
    keys: tuple[str, ...] = ("p_ctr", "p_cvr", "p_ctcvr"),
) -> dict[str, np.ndarray]:
    """Run ``model`` over an encoded matrix in batches (eval mode, no grad) -> float64 arrays per key."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    xs = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for start in range(0, xs.shape[0], batch_size):
        out = model(xs[start : start + batch_size].to(device))
        for k in keys:
            parts[k].append(out[k].float().cpu().numpy().astype(np.float64))
    model.train(was_training)
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}


def score(
    model: LoadedModel | str | Path, table: Table, batch_size: int = DEFAULT_SCORE_BATCH
) -> pd.DataFrame:
    """DataFrame[p_ctr, p_cvr, p_ctcvr], one row per input row (same index for a DataFrame input).

    p_ctcvr <= p_ctr is guaranteed (clipped in float64 after the model's own guarantee).
    """
    loaded = model if isinstance(model, LoadedModel) else load_model_version(model)
    n = num_rows(table)
    x = (
        encode(table, loaded.spec, loaded.vocab)
        if n
        else np.empty((0, len(loaded.spec.fields)), dtype=np.int64)
    )
    pred = predict_encoded(loaded.model, x, batch_size)
    pred["p_ctcvr"] = np.minimum(pred["p_ctcvr"], pred["p_ctr"])
    index = table.index if isinstance(table, pd.DataFrame) else None
    return pd.DataFrame(pred, index=index)


@torch.no_grad()
def gate_weights(
    model: LoadedModel, table: Table, batch_size: int = DEFAULT_SCORE_BATCH
) -> np.ndarray | None:
    """TAML's mean gate weight per task and expert group ([tasks, 3]); None for models without gates."""
    net = model.model
    if (
        not hasattr(net, "gate_group_weights")
        or not getattr(net.options, "htakr", False)
        or not num_rows(table)
    ):
        return None
    x = encode(table, model.spec, model.vocab)
    gates = predict_encoded(net, x, batch_size, keys=("gates",))["gates"]
    return net.gate_group_weights(torch.from_numpy(gates)).numpy().astype(np.float64)

"""Model comparison on one train/test split: AUCs per seed, speed, TAML ablations, gate analysis.

The vocabulary is built on the training table only and shared by every model; the test table is
scored once per trained model and never used for any choice (no early stopping, no selection).
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from model.encode import encode, encode_labels
from model.errors import FeatureSpecError, ModelConfigError
from model.metrics import auc
from model.registry import MODELS, build_model
from model.scoring import predict_encoded
from model.spec import FeatureSpec, ModelConfig, TrainConfig
from model.taml import EXPERT_GROUPS, TAML, TASKS
from model.trainer import train as train_model
from model.vocab import Vocabulary

log = logging.getLogger(__name__)

ABLATIONS: dict[str, dict[str, Any]] = {
    "taml_single_learner": {"n_learners": 1},
    "taml_no_self_distillation": {"self_distillation": False},
    "taml_no_htakr": {"htakr": False},
}
GATE_PNG = "taml_gate_weights.png"
GROUP_COLUMNS = ("general", "task_specific", "learner_specific")  # row keys of the gate table


def _aucs(
    click: np.ndarray, conv: np.ndarray, p_ctr: np.ndarray, p_cvr: np.ndarray, p_ctcvr: np.ndarray
) -> dict:
    clicked = click > 0.5
    return {
        "ctr_auc": auc(click, p_ctr),
        "cvr_auc": auc(conv[clicked], p_cvr[clicked]),
        "ctcvr_auc": auc(click * conv, p_ctcvr),
    }


def compare_models(
    train: pd.DataFrame,
    test: pd.DataFrame,
    spec: FeatureSpec,
    models: list[str],
    seeds: int,
    train_cfg: TrainConfig,
    truth: pd.DataFrame | None = None,
    *,
    model_config: ModelConfig | None = None,
    ablations: bool = True,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train every model ``seeds`` times on ``train``, score ``test``.

    Returns ``{"models": {name: {"ctr_auc": [per seed], "cvr_auc": [...], "ctcvr_auc": [...],
    "samples_per_s": median}}, "ablations": {...same shape...}, "gates": {"table": [...],
    "png": path | None}, "oracle": {"ctr_auc", "cvr_auc", "ctcvr_auc"}}`` (``oracle`` only with
    ``truth``: a frame with impression_id, p_click, p_conv for the test rows; ``ablations`` and
    ``gates`` only when TAML is among ``models``).
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ModelConfigError(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    if seeds < 1:
        raise ModelConfigError("seeds must be >= 1")
    base_cfg = model_config or ModelConfig()
    vocab = Vocabulary.build(train, spec)
    x_train = encode(train, spec, vocab)
    c_train, v_train = encode_labels(train, spec)
    x_test = encode(test, spec, vocab)
    c_test, v_test = (a.astype(np.float64) for a in encode_labels(test, spec))

    runs: list[tuple[str, str, ModelConfig]] = [
        (m, "models", base_cfg.model_copy(update={"architecture": m})) for m in models
    ]
    if ablations and "taml" in models:
        for name, change in ABLATIONS.items():
            taml_opts = base_cfg.taml.model_copy(update=change)
            runs.append(
                (name, "ablations", base_cfg.model_copy(update={"architecture": "taml", "taml": taml_opts}))
            )

    report: dict[str, Any] = {"models": {}}
    gate_sums: list[np.ndarray] = []
    for name, section, cfg in runs:
        entry: dict[str, Any] = {"ctr_auc": [], "cvr_auc": [], "ctcvr_auc": []}
        speeds = []
        for s in range(seeds):
            tc = train_cfg.model_copy(update={"seed": train_cfg.seed + s})
            torch.manual_seed(tc.seed)
            model = build_model(cfg, vocab.sizes)
            result = train_model(model, x_train, c_train, v_train, tc)
            speeds.append(result.samples_per_s)
            keys = ("p_ctr", "p_cvr", "p_ctcvr", "gates") if name == "taml" else ("p_ctr", "p_cvr", "p_ctcvr")
            pred = predict_encoded(model, x_test, tc.eval_batch_size, keys=keys)
            aucs = _aucs(c_test, v_test, pred["p_ctr"], pred["p_cvr"], pred["p_ctcvr"])
            for k, val in aucs.items():
                entry[k].append(val)
            log.info(
                "%s seed %d: AUC ctr %.4f cvr %.4f ctcvr %.4f, %.0f samples/s",
                name, tc.seed, aucs["ctr_auc"], aucs["cvr_auc"], aucs["ctcvr_auc"], result.samples_per_s,
            )  # fmt: skip
            if name == "taml" and isinstance(model, TAML):
                gate_sums.append(model.gate_group_weights(torch.from_numpy(pred["gates"])).numpy())
        entry["samples_per_s"] = statistics.median(speeds)
        report.setdefault(section, {})[name] = entry

    if gate_sums:
        report["gates"] = gate_table(np.mean(gate_sums, axis=0), out_dir)
    if truth is not None:
        report["oracle"] = _oracle(test, truth, c_test, v_test)
    return report


def gate_table(weights: np.ndarray, out_dir: str | Path | None) -> dict[str, Any]:
    """Paper Fig. 4: mean gate weight per expert group and task, as rows and (with out_dir) a PNG."""
    rows = [
        {"task": task, **{GROUP_COLUMNS[g]: float(weights[t, g]) for g in range(len(EXPERT_GROUPS))}}
        for t, task in enumerate(TASKS)
    ]
    png = None
    if out_dir is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        width = 0.8 / len(EXPERT_GROUPS)
        for g, group in enumerate(EXPERT_GROUPS):
            ax.bar(np.arange(len(TASKS)) + (g - 1) * width, weights[:, g], width, label=f"{group} experts")
        ax.set_xticks(np.arange(len(TASKS)), [t.upper() for t in TASKS])
        ax.set_ylabel("mean gate weight")
        ax.set_title("TAML: gate weight per expert group")
        ax.legend(frameon=False, fontsize=8)
        fig.tight_layout()
        png = str(out / GATE_PNG)
        fig.savefig(png, dpi=120)
        plt.close(fig)
    return {"table": rows, "png": png}


def _oracle(test: pd.DataFrame, truth: pd.DataFrame, click: np.ndarray, conv: np.ndarray) -> dict[str, float]:
    need = {"impression_id", "p_click", "p_conv"}
    if not need <= set(truth.columns) or "impression_id" not in test.columns:
        raise FeatureSpecError(f"oracle needs test.impression_id and truth columns {sorted(need)}")
    t = truth.drop_duplicates("impression_id").set_index("impression_id")
    aligned = t.reindex(test["impression_id"].to_numpy())
    if aligned["p_click"].isna().any():
        raise FeatureSpecError(f"truth lacks {int(aligned['p_click'].isna().sum())} test impression ids")
    p_click = aligned["p_click"].to_numpy(dtype=np.float64)
    p_conv = aligned["p_conv"].to_numpy(dtype=np.float64)
    return _aucs(click, conv, p_click, p_conv, p_click * p_conv)

"""Model comparison: every row trained with ``fit`` (as the pipeline trains), scored on one day.

Two entry points:

* :func:`compare_models` trains each row ``seeds`` times on ``train`` and scores ``test`` once per
  trained model (no early stopping, no selection on ``test``).
* :func:`tune_and_compare` is the paper's protocol: every row's hyperparameters are chosen by the
  same-budget search of :mod:`model.tuning` on a validation day that precedes the test day, then
  the chosen configurations go through :func:`compare_models`.

Per row and seed: observed AUCs (CTR on all impressions, CVR on clicked ones, CTCVR of pCTR·pCVR
on all) with their DeLong standard errors; with the truth files also expected AUCs and expected
log losses against the true probabilities (:mod:`model.expected_auc`); and ρ(pCVR, pCTR |
clicked), the Spearman correlation that shows a CVR head collapsing onto the CTR head.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from model.diagnostics import spearman
from model.encode import encode, encode_labels
from model.errors import FeatureSpecError, ModelConfigError
from model.expected_auc import truth_figures
from model.fitting import fit
from model.intervals import delong
from model.metrics import auc
from model.registry import MODELS
from model.scoring import predict_encoded
from model.spec import FeatureSpec, ModelConfig, TamlOptions, TrainConfig, TuneConfig
from model.taml import EXPERT_GROUPS, TAML, TASKS
from model.tuning import Row, apply, tune_row

log = logging.getLogger(__name__)

#: TAML ablation rows (paper Fig. 3, plus the levers of TamlOptions): changes to the row's TAML.
ABLATIONS: dict[str, dict[str, Any]] = {
    "taml_single_learner": {"n_learners": 1},
    "taml_no_self_distillation": {"self_distillation": False},
    "taml_no_htakr": {"htakr": False},
    "taml_no_general_experts": {"n_general": 0, "n_task": 2},
    "taml_cvr_clicked_loss": {"cvr_clicked_weight": 0.3},
}
#: The paper's TAML, literally: its sizes (experts of 64, 2 learners per task, towers 64-32-1,
#: α = β = 0.1; expert counts 2/1/1 as in DESIGN.md) and a gate without bias, g = softmax(W e).
PAPER_TAML: dict[str, Any] = {
    "n_general": 2, "n_task": 1, "n_learner": 1, "n_learners": 2, "expert_dim": 64, "tower_dims": [64, 32],
    "alpha": 0.1, "beta": 0.1, "self_distillation": True, "htakr": True,
    "gate_bias": False, "gate_temperature": 1.0, "cvr_general_gate_prior": 0.0, "cvr_detach_general": False,
    "cvr_clicked_weight": 0.0,
}  # fmt: skip
#: TamlOptions beyond the paper: the paper-literal row keeps them at their paper values while tuning.
TAML_LEVERS = (
    "taml.gate_bias", "taml.gate_temperature", "taml.cvr_general_gate_prior", "taml.cvr_detach_general",
    "taml.cvr_clicked_weight",
)  # fmt: skip
#: Extra rows of the baselines trained in the entire space (CTCVR loss instead of clicked-only CVR).
ENTIRE_SPACE_ROWS: dict[str, str] = {"mmoe_entire_space": "mmoe", "ple_entire_space": "ple"}
GATE_PNG = "taml_gate_weights.png"
GROUP_COLUMNS = ("general", "task_specific", "learner_specific")  # row keys of the gate table
METRIC_KEYS = (
    "ctr_auc", "cvr_auc", "ctcvr_auc", "ctr_auc_se", "cvr_auc_se", "ctcvr_auc_se", "ctr_eauc", "cvr_eauc", "ctcvr_eauc",
    "ctr_elogloss", "cvr_elogloss", "ctcvr_elogloss", "ctr_ratio", "cvr_ratio", "ctcvr_ratio",
    "rho_cvr_ctr_clicked",
)  # fmt: skip


class EvalDay:
    """A scored day: its frame, labels and (with truth) the aligned true probabilities."""

    def __init__(self, frame: pd.DataFrame, spec: FeatureSpec, truth: pd.DataFrame | None = None) -> None:
        self.frame = frame
        click, conv = encode_labels(frame, spec)
        self.click, self.conv = click.astype(np.float64), conv.astype(np.float64)
        self.p_click = self.p_conv = None
        if truth is not None:
            self.p_click, self.p_conv = align_truth(frame, truth)


def align_truth(frame: pd.DataFrame, truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(p_click, p_conv) of the rows of ``frame``, matched on impression_id."""
    need = {"impression_id", "p_click", "p_conv"}
    if not need <= set(truth.columns) or "impression_id" not in frame.columns:
        raise FeatureSpecError(f"truth needs frame.impression_id and truth columns {sorted(need)}")
    t = truth.drop_duplicates("impression_id").set_index("impression_id")
    aligned = t.reindex(frame["impression_id"].to_numpy())
    if aligned["p_click"].isna().any():
        raise FeatureSpecError(
            f"truth lacks {int(aligned['p_click'].isna().sum())} impression ids of the day"
        )
    return aligned["p_click"].to_numpy(np.float64), aligned["p_conv"].to_numpy(np.float64)


def day_metrics(day: EvalDay, pred: dict[str, np.ndarray]) -> dict[str, float]:
    """Every figure of METRIC_KEYS that the day supports (expected ones only with truth)."""
    click, conv = day.click, day.conv
    p_ctr, p_cvr, p_ctcvr = pred["p_ctr"], pred["p_cvr"], pred["p_ctcvr"]
    clicked = click > 0.5
    out: dict[str, float] = {}
    for task, y, score in (
        ("ctr", click, p_ctr),
        ("cvr", conv[clicked], p_cvr[clicked]),
        ("ctcvr", click * conv, p_ctcvr),
    ):
        out[f"{task}_auc"] = auc(y, score)
        # What one test day can resolve: the label-sampling noise the expected AUC removes.
        out[f"{task}_auc_se"] = float(np.sqrt(max(delong(y, [score])[1][0, 0], 0.0)))
    out["rho_cvr_ctr_clicked"] = spearman(p_cvr[clicked], p_ctr[clicked])
    if day.p_click is not None:
        out.update(truth_figures(day.p_click, day.p_conv, p_ctr, p_cvr, p_ctcvr))
    return out


def fit_and_score(
    train: pd.DataFrame,
    day: EvalDay,
    spec: FeatureSpec,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
) -> tuple[dict[str, float], float, np.ndarray | None]:
    """``fit`` (vocabulary, output-bias init, training: the pipeline's cold start) then score ``day``.

    Returns (metrics, training samples/s, TAML's mean gate weight per group and task or None).
    """
    fitted = fit(train, spec, model_cfg, train_cfg)
    x = encode(day.frame, spec, fitted.vocab)
    is_taml = isinstance(fitted.model, TAML) and fitted.model.options.htakr
    keys = ("p_ctr", "p_cvr", "p_ctcvr", "gates") if is_taml else ("p_ctr", "p_cvr", "p_ctcvr")
    pred = predict_encoded(fitted.model, x, train_cfg.eval_batch_size, keys=keys)
    gates = None
    if is_taml:
        gates = fitted.model.gate_group_weights(torch.from_numpy(pred["gates"])).numpy()
    return day_metrics(day, pred), fitted.result.samples_per_s, gates


def standard_rows(
    models: list[str], base: ModelConfig, train_cfg: TrainConfig, *, ablations: bool, entire_space: bool
) -> tuple[list[Row], list[Row]]:
    """(model rows, ablation rows): each model; MMoE/PLE in entire space; TAML's ablations and paper row."""
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ModelConfigError(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    rows = [Row(m, base.model_copy(update={"architecture": m}), train_cfg) for m in models]
    if entire_space:
        for name, arch in ENTIRE_SPACE_ROWS.items():
            if arch in models:
                opts = getattr(base, arch).model_copy(update={"cvr_space": "entire_space"})
                rows.append(Row(name, base.model_copy(update={"architecture": arch, arch: opts}), train_cfg))
    extra = []
    if ablations and "taml" in models:
        taml = base.model_copy(update={"architecture": "taml"})
        paper = TamlOptions(**PAPER_TAML)
        extra.append(Row("taml_paper", taml.model_copy(update={"taml": paper}), train_cfg, fixed=TAML_LEVERS))
    return rows, extra


def ablation_rows(taml_row: Row) -> list[Row]:
    """TAML's ablations, each one change to the (possibly tuned) TAML row."""
    out = []
    for name, change in ABLATIONS.items():
        opts = taml_row.model.taml.model_validate({**taml_row.model.taml.model_dump(), **change})
        out.append(Row(name, taml_row.model.model_copy(update={"taml": opts}), taml_row.train))
    return out


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
    entire_space: bool = False,
    out_dir: str | Path | None = None,
    rows: list[Row] | None = None,
    ablation_list: list[Row] | None = None,
    ablation_seeds: int | None = None,
) -> dict[str, Any]:
    """Train every row ``seeds`` times on ``train`` with ``fit``, score ``test``.

    Returns ``{"models": {name: {metric: [one value per seed], ..., "samples_per_s": median}},
    "ablations": {...same shape...}, "gates": {"table": [...], "png": path | None},
    "oracle": {metric: value}}``. Metrics are METRIC_KEYS (the expected ones and ``oracle`` only
    with ``truth``: impression_id, p_click, p_conv for the test rows); ``ablations`` and ``gates``
    only when TAML is among the rows. ``rows`` / ``ablation_list`` replace the default rows (e.g.
    tuned configurations); ``ablation_seeds`` (default ``seeds``) trains the ablation rows fewer times.
    """
    if seeds < 1 or (ablation_seeds is not None and ablation_seeds < 1):
        raise ModelConfigError("seeds must be >= 1")
    base_cfg = model_config or ModelConfig()
    if rows is None:
        rows, extra = standard_rows(
            models, base_cfg, train_cfg, ablations=ablations, entire_space=entire_space
        )
        if ablation_list is None and ablations:
            taml = next((r for r in rows if r.name == "taml"), None)
            ablation_list = extra + (ablation_rows(taml) if taml else [])
    day = EvalDay(test, spec, truth)
    report: dict[str, Any] = {"models": {}}
    gate_sums: list[np.ndarray] = []
    runs = [(r, "models") for r in rows] + [(r, "ablations") for r in (ablation_list or [])]
    for row, section in runs:
        entry: dict[str, Any] = {}
        speeds = []
        for s in range(seeds if section == "models" or ablation_seeds is None else ablation_seeds):
            tc = row.train.model_copy(update={"seed": row.train.seed + s, "progress": False})
            metrics, speed, gates = fit_and_score(train, day, spec, row.model, tc)
            speeds.append(speed)
            for k, v in metrics.items():
                entry.setdefault(k, []).append(v)
            if row.name == "taml" and gates is not None:
                gate_sums.append(gates)
            log.info(
                "%s seed %d: AUC ctr %.4f cvr %.4f ctcvr %.4f%s, rho %.2f, %.0f samples/s",
                row.name, tc.seed, metrics["ctr_auc"], metrics["cvr_auc"], metrics["ctcvr_auc"],
                f" (expected {metrics['cvr_eauc']:.4f} / {metrics['ctcvr_eauc']:.4f})" if "cvr_eauc" in metrics else "",
                metrics["rho_cvr_ctr_clicked"], speed,
            )  # fmt: skip
        entry["samples_per_s"] = statistics.median(speeds)
        report.setdefault(section, {})[row.name] = entry
    if gate_sums:
        report["gates"] = gate_table(np.mean(gate_sums, axis=0), out_dir)
    if truth is not None:
        oracle = day_metrics(
            day, {"p_ctr": day.p_click, "p_cvr": day.p_conv, "p_ctcvr": day.p_click * day.p_conv}
        )
        report["oracle"] = oracle
    return report


def tune_and_compare(
    valid_train: pd.DataFrame,
    valid: pd.DataFrame,
    test_train: pd.DataFrame,
    test: pd.DataFrame,
    spec: FeatureSpec,
    models: list[str],
    seeds: int,
    train_cfg: TrainConfig,
    tune: TuneConfig,
    *,
    valid_truth: pd.DataFrame | None = None,
    test_truth: pd.DataFrame | None = None,
    model_config: ModelConfig | None = None,
    ablations: bool = True,
    ablation_seeds: int | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The paper's protocol: tune every row on (valid_train → valid), then test the chosen settings.

    Every row, the entire-space MMoE/PLE and the paper-literal TAML included, gets the same search
    budget. The ablations are changes to the *tuned* TAML. ``test`` is scored once per seed, after
    all choices are made. The report is :func:`compare_models`' plus ``"tuning"``: per row, every
    trial with its validation metrics and score, and the chosen assignment.
    """
    base_cfg = model_config or ModelConfig()
    rows, extra = standard_rows(models, base_cfg, train_cfg, ablations=ablations, entire_space=True)
    vday = EvalDay(valid, spec, valid_truth)

    def evaluate(model_cfg: ModelConfig, tc: TrainConfig, tr: pd.DataFrame, _valid) -> dict[str, float]:
        return fit_and_score(tr, vday, spec, model_cfg, tc.model_copy(update={"progress": False}))[0]

    tuned: list[Row] = []
    tuning: dict[str, Any] = {}
    for row in rows + extra:
        result = tune_row(row, valid_train, valid, tune, evaluate)
        model_cfg, tc = apply(result.chosen, row.model, row.train)
        tuned.append(Row(row.name, model_cfg, tc))
        tuning[row.name] = {"chosen": result.chosen, "score": result.score, "trials": result.trials}
    model_rows = tuned[: len(rows)]
    ablation_list = tuned[len(rows) :]
    taml = next((r for r in model_rows if r.name == "taml"), None)
    if ablations and taml is not None:
        ablation_list += ablation_rows(taml)
    report = compare_models(
        test_train, test, spec, models, seeds, train_cfg, test_truth,
        model_config=base_cfg, out_dir=out_dir, rows=model_rows, ablation_list=ablation_list,
        ablation_seeds=ablation_seeds,
    )  # fmt: skip
    report["tuning"] = {"config": tune.model_dump(), "rows": tuning}
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

"""Typed configuration of the model package: feature spec, model options, training options.

The project's global config embeds :class:`FeatureSpec`, :class:`ModelConfig` and
:class:`TrainConfig` as sections, so every field has a paper default and a one-line description.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ARCHITECTURES = ("taml", "mlp", "mmoe", "ple", "esmm", "aitm")
Architecture = Literal["taml", "mlp", "mmoe", "ple", "esmm", "aitm"]
Activation = Literal["relu", "gelu", "silu"]
CvrSpace = Literal["clicked", "entire_space"]

# Reserved indices of every vocabulary: 0 means "missing / null", 1 means "seen too rarely" (OOV).
MISSING_INDEX = 0
OOV_INDEX = 1
RESERVED_INDICES = 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------
# Features


class FieldSpec(_Strict):
    """One model input field: a categorical value or a numeric value cut into buckets."""

    name: str = Field(description="Field name (also the embedding group name).", min_length=1)
    column: str | None = Field(None, description="Input table column; defaults to the field name.")
    kind: Literal["categorical", "bucketized"] = Field(
        "categorical",
        description="categorical: vocabulary of seen values; bucketized: numeric cut at boundaries.",
    )
    boundaries: list[float] | None = Field(
        None,
        description="Bucket boundaries (strictly increasing) of a bucketized field; bucket i is [b[i-1], b[i]).",
    )
    min_count: int | None = Field(
        None, ge=1, description="Override of FeatureSpec.min_count for this categorical field."
    )

    @property
    def source(self) -> str:
        return self.column or self.name

    @model_validator(mode="after")
    def _check_kind(self) -> FieldSpec:
        if self.kind == "bucketized":
            b = self.boundaries
            if not b:
                raise ValueError(f"field {self.name!r}: a bucketized field needs non-empty boundaries")
            if any(not math.isfinite(x) for x in b) or any(
                b2 <= b1 for b1, b2 in zip(b, b[1:], strict=False)
            ):
                raise ValueError(f"field {self.name!r}: boundaries must be finite and strictly increasing")
        elif self.boundaries is not None:
            raise ValueError(f"field {self.name!r}: boundaries are only for bucketized fields")
        return self


class FeatureSpec(_Strict):
    """The ordered list of model input fields (column j of the encoded matrix is fields[j])."""

    fields: list[FieldSpec] = Field(description="Input fields, in the order of the encoded matrix columns.")
    min_count: int = Field(
        10, ge=1, description="A categorical value gets its own index once seen this often."
    )
    click_column: str = Field("click", description="Column of the click label (0/1).")
    conversion_column: str = Field(
        "conversion", description="Column of the conversion label (0/1, implies click)."
    )

    @field_validator("fields")
    @classmethod
    def _unique(cls, fields: list[FieldSpec]) -> list[FieldSpec]:
        if not fields:
            raise ValueError("a feature spec needs at least one field")
        names = [f.name for f in fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate field names: {dupes}")
        return fields

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


# Smoothed-rate and count boundaries for the default stats fields (log-spaced: rates are skewed).
_RATE_BOUNDARIES = [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5]
_COUNT_BOUNDARIES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]


def default_feature_spec() -> FeatureSpec:
    """The fields of DESIGN.md: sample columns, user/item profiles and the 7-day stats (23 fields).

    Column names of the stats follow ``{entity}_{stat}_7d``; the features step may rename them
    through ``FieldSpec.column``.
    """
    categorical = [
        "user_id", "item_id", "position", "device", "hour",
        "gender", "age_level", "city_level", "occupation",
        "category_id", "shop_id", "brand_id", "price_level",
    ]  # fmt: skip
    fields = [FieldSpec(name=n) for n in categorical]
    for entity in ("user", "item"):
        for stat in ("impressions", "clicks", "conversions"):
            fields.append(
                FieldSpec(name=f"{entity}_{stat}_7d", kind="bucketized", boundaries=_COUNT_BOUNDARIES)
            )
        for stat in ("ctr", "cvr"):
            fields.append(
                FieldSpec(name=f"{entity}_{stat}_7d", kind="bucketized", boundaries=_RATE_BOUNDARIES)
            )
    return FeatureSpec(fields=fields)


# --------------------------------------------------------------------------------------------
# Architectures


class TamlOptions(_Strict):
    """TAML (WWW '23): HTAKR experts, multi-learner towers, self-distillation."""

    # Defaults: the configuration the same-budget validation search chose (docs/MODEL.md,
    # "Defaults"); the paper's sizes are model.compare.PAPER_TAML (2 general + 1 task + 1 learner
    # expert of 64, beta 0.1, gate without bias).
    n_general: int = Field(
        0, ge=0, description="General experts shared by every learner of every task (HTAKR)."
    )
    n_task: int = Field(
        1, ge=0, description="Task-specific experts per task, shared by that task's learners."
    )
    n_learner: int = Field(0, ge=0, description="Learner-specific experts per learner.")
    n_learners: int = Field(
        2, ge=1, description="Learners (towers) per task; 1 is the 'single learner' ablation."
    )
    expert_dim: int = Field(32, ge=1, description="Units of each one-layer expert.")
    tower_dims: list[int] = Field([64, 32], description="Hidden units of each learner tower (then 1 output).")
    alpha: float = Field(0.1, ge=0, description="Weight of the CTR self-distillation loss.")
    beta: float = Field(0.3, ge=0, description="Weight of the CVR self-distillation loss.")
    self_distillation: bool = Field(
        True, description="False: the 'w/o self-distillation' ablation (alpha=beta=0)."
    )
    htakr: bool = Field(
        True, description="False: the 'w/o HTAKR' ablation (towers read the embedding directly)."
    )
    gate_bias: bool = Field(
        False, description="Gate logits W·e + b; False is the paper's literal g = softmax(W·e)."
    )
    gate_temperature: float = Field(
        1.0, gt=0, description="Gate softmax temperature T: g = softmax(logits / T); T < 1 sharpens."
    )
    cvr_general_gate_prior: float = Field(
        0.0,
        description="Fixed offset added to the CVR learners' gate logits of the general experts; "
        "< 0 steers CVR learners toward their task and own experts, away from the click-dominated ones.",
    )
    cvr_detach_general: bool = Field(
        False,
        description="CVR learners read the general experts through a stop-gradient: CVR/CTCVR gradients "
        "do not shape the shared experts (the CTR task owns them).",
    )
    cvr_clicked_weight: float = Field(
        0.0,
        ge=0,
        description="Weight γ of an added clicked-space CVR loss, γ·BCE(pCVR, conv | click) (the "
        "baselines' MLP loss); 0 is the paper's entire-space-only Eq. (9). The entire-space CVR head "
        "is fitted only through pCTR·pCVR and carries click signal until pCTR is sharp; γ > 0 gives it "
        "the direct signal, at the price of the sample-selection bias ESMM removes.",
    )

    @model_validator(mode="after")
    def _some_expert(self) -> TamlOptions:
        if self.htakr and self.n_general + self.n_task + self.n_learner == 0:
            raise ValueError("taml: HTAKR needs at least one expert (n_general + n_task + n_learner > 0)")
        return self


class MlpOptions(_Strict):
    """Two independent DNNs; the CVR one trained on clicked impressions only (ESMM paper's BASE)."""

    tower_dims: list[int] = Field(
        [192, 64, 32], description="Hidden units of each task's tower (then 1 output)."
    )
    shared_embedding: bool = Field(False, description="Share one embedding table between the two towers.")


class MmoeOptions(_Strict):
    """MMoE (KDD '18): shared one-layer experts, one softmax gate per task."""

    n_experts: int = Field(3, ge=1, description="Shared experts.")
    expert_dim: int = Field(64, ge=1, description="Units of each one-layer expert.")
    tower_dims: list[int] = Field([64, 32], description="Hidden units of each task tower (then 1 output).")
    cvr_space: CvrSpace = Field(
        "clicked", description="clicked: CVR loss on clicked impressions; entire_space: CTCVR loss on all."
    )


class PleOptions(_Strict):
    """PLE (RecSys '20): stacked CGC extraction layers of shared and task-specific experts."""

    n_levels: int = Field(2, ge=1, description="Extraction levels (CGC layers).")
    n_shared: int = Field(1, ge=0, description="Shared experts per level.")
    n_specific: int = Field(1, ge=1, description="Task-specific experts per task per level.")
    expert_dim: int = Field(64, ge=1, description="Units of each one-layer expert.")
    tower_dims: list[int] = Field([64, 32], description="Hidden units of each task tower (then 1 output).")
    cvr_space: CvrSpace = Field(
        "clicked", description="clicked: CVR loss on clicked impressions; entire_space: CTCVR loss on all."
    )


class EsmmOptions(_Strict):
    """ESMM (SIGIR '18): shared embedding, CTR and CVR towers, CTR + CTCVR losses on all impressions."""

    tower_dims: list[int] = Field(
        [192, 64, 32], description="Hidden units of each task tower (then 1 output)."
    )


class AitmOptions(_Strict):
    """AITM (KDD '21): adaptive information transfer from the click to the conversion tower."""

    tower_dims: list[int] = Field(
        [128, 64, 32], description="Hidden units of each task's encoder (paper: 128-64-32)."
    )
    calibrator_weight: float = Field(
        0.6, ge=0, description="Weight of the behavioural expectation calibrator."
    )


class ModelConfig(_Strict):
    """Which architecture, and its options (only the chosen architecture's section is used)."""

    architecture: Architecture = Field("taml", description="One of taml, mlp, mmoe, ple, esmm, aitm.")
    embedding_dim: int = Field(
        16, ge=1, description="Embedding size of every field (chosen on validation; the paper's is 8)."
    )
    embedding_init_std: float = Field(
        0.01, gt=0, description="Std of the normal initialisation of embedding rows."
    )
    activation: Activation = Field("relu", description="Hidden activation (paper: ReLU).")
    taml: TamlOptions = Field(default_factory=TamlOptions, description="TAML options.")
    mlp: MlpOptions = Field(default_factory=MlpOptions, description="MLP baseline options.")
    mmoe: MmoeOptions = Field(default_factory=MmoeOptions, description="MMoE baseline options.")
    ple: PleOptions = Field(default_factory=PleOptions, description="PLE baseline options.")
    esmm: EsmmOptions = Field(default_factory=EsmmOptions, description="ESMM baseline options.")
    aitm: AitmOptions = Field(default_factory=AitmOptions, description="AITM baseline options.")


# --------------------------------------------------------------------------------------------
# Training


class TrainConfig(_Strict):
    """Optimisation and runtime options of the trainer (paper: Adam 1e-3, batch 2000, L2 1e-6)."""

    lr: float = Field(2e-3, gt=0, description="Adam learning rate (chosen on validation; paper 1e-3).")
    batch_size: int = Field(2000, ge=1, description="Global batch size (split across data-parallel ranks).")
    l2: float = Field(
        1e-6, ge=0, description="L2 penalty (added to gradients; embedding rows only when touched)."
    )
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="Adam beta1, beta2.")
    adam_eps: float = Field(1e-8, gt=0, description="Adam epsilon.")
    epochs: int = Field(
        3, ge=1, description="Passes over the training window (chosen on validation; paper 1)."
    )
    warm_epochs: int | None = Field(
        1,
        ge=1,
        description="Passes over the window for a warm update (None: epochs). The parent has already "
        "fit the window's older days, so more passes re-fit each day many times over.",
    )
    warm_lr: float | None = Field(
        1e-3,
        gt=0,
        description="Adam learning rate of a warm update (None: lr). A warm update continues a "
        "parent that has fit all but the window's last day; a smaller step lets one day's noise "
        "move it less (bench daily, 4 seeds: at lr 2e-3 two updates were truly worse than their "
        "parents, at 1e-3 none; docs/BENCHMARKS.md).",
    )
    warm_replay_share: float = Field(
        0.3333,
        gt=0,
        le=1,
        description="Warm update: share of the rows of days the parent has already trained on that "
        "are replayed (a seeded sample; newer days are used whole). 1.0 re-fits the whole window, so "
        "each day is passed over once per day it stays in it (7 times in a 7-day window); 1/3 gives "
        "each day 1 + 6/3 = 3 passes, a cold start's epochs (bench daily: docs/BENCHMARKS.md).",
    )
    ctr_epochs: int | None = Field(
        None,
        ge=1,
        description="Passes that train the CTR task (None: every pass). Later passes hold pCTR "
        "constant in every loss term, so only the CVR side learns: CTR over-fits after one pass "
        "while the sparser CVR task still learns from more. Single-process training only.",
    )
    embedding_epochs: int | None = Field(
        None,
        ge=1,
        description="Passes that update the embedding table (None: every pass); later passes train "
        "the dense layers only (id embeddings are what over-fits after one pass).",
    )
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps in total.")
    seed: int = Field(42, description="Seed of initialisation and shuffling.")
    shuffle: bool = Field(True, description="Shuffle the samples every epoch.")
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda or cuda:N.")
    bf16: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU).")
    num_threads: int | None = Field(
        None, ge=1, description="torch intra-op threads on CPU (None: torch default)."
    )
    progress: bool = Field(True, description="Show a tqdm bar with samples/s.")
    log_every: int = Field(50, ge=1, description="Steps between loss read-backs (each one syncs the device).")
    checkpoint_every: int | None = Field(
        None, ge=1, description="Write a resumable checkpoint every N steps."
    )
    eval_batch_size: int = Field(65536, ge=1, description="Batch size of scoring and evaluation.")
    init_output_bias: bool = Field(
        True,
        description="Cold start: set each task head's final bias to the log-odds of the training base "
        "rate (CTR = mean click, CVR = conversions / clicks) instead of 0 (pCTR = pCVR = 0.5).",
    )
    recenter_output_bias: bool = Field(
        True,
        description="After training (cold or warm): one common shift of each task's final biases so "
        "that the mean prediction on the training rows equals their base rate (CTR on all rows, "
        "CVR on clicked rows); the ranking within a task does not change.",
    )
    recenter_probe_rows: int = Field(
        65536, ge=1, description="Training rows (clicked rows for CVR) the re-centring shift is solved on."
    )
    recenter_holdout_share: float = Field(
        0.05,
        ge=0.0,
        lt=0.5,
        description="Share of the rows new to the model line (all on a cold start, the days after "
        "the parent's on a warm one; seeded) left out of training and used to solve the "
        "re-centring shift out of sample; the target rates still come from every row. In sample, a "
        "head that has memorised its few positives reads calibrated on its own rows and under-"
        "predicts new ones. 0: re-centre on the training rows. With recenter_holdout_clicks this "
        "is the least share held out.",
    )
    recenter_holdout_clicks: int = Field(
        500,
        ge=0,
        description="Clicks the held-out rows should hold: the share held out grows (up to "
        "recenter_holdout_max_share) until the new rows' clicks times the share reach it. The "
        "shift's noise is set by the clicks it is solved on, not by the share (the mean pCVR of n "
        "clicked rows moves by ~1.2/sqrt(n)): 5% of one bench-daily day is ~120 clicks, of a "
        "million impressions ~4,000. 0: the share alone.",
    )
    recenter_holdout_max_share: float = Field(
        0.25,
        gt=0.0,
        lt=0.5,
        description="Most of the new rows held out for the re-centring, however few clicks they hold.",
    )
    recenter_parent_control: bool = Field(
        True,
        description="Warm update: correct the held-out rows' mix with the parent, which has fit "
        "none of the new rows. Each task's target rate is scaled by the parent's mean prediction "
        "on the held-out rows over its mean on every new row, so a holdout that happens to hold "
        "high-rate users is asked for a high mean (a day's 5% holds ~120 clicks: alone, their mix "
        "moves the CVR shift by ~11%).",
    )


# --------------------------------------------------------------------------------------------
# Hyperparameter search (the paper's protocol: grid search on a validation day before the test day)

TuneValue = int | float | bool | str | list[int] | None

#: Shared by every model: training length (also per task and for the embeddings), learning rate,
#: embedding size.
_COMMON_SPACE: dict[str, list[TuneValue]] = {
    "train.epochs": [1, 2, 3],
    "train.lr": [1e-3, 2e-3, 4e-3],
    "model.embedding_dim": [8, 16],
    "train.ctr_epochs": [None, 1],
    "train.embedding_epochs": [None, 1],
}
#: Each model's own counts and widths (TAML: also the levers of TamlOptions).
_MODEL_SPACE: dict[str, dict[str, list[TuneValue]]] = {
    "taml": {
        "taml.n_learners": [1, 2, 3],
        "taml.n_general": [0, 1, 2],
        "taml.n_task": [1, 2],
        "taml.n_learner": [0, 1],
        "taml.expert_dim": [32, 64],
        "taml.gate_bias": [True, False],
        "taml.gate_temperature": [0.5, 1.0, 2.0],
        "taml.cvr_general_gate_prior": [0.0, -1.0, -2.0],
        "taml.cvr_detach_general": [False, True],
        "taml.cvr_clicked_weight": [0.0, 0.1, 0.3, 1.0],
        "taml.alpha": [0.1, 0.3],
        "taml.beta": [0.1, 0.3],
    },
    "mlp": {"mlp.tower_dims": [[192, 64, 32], [128, 64], [256, 128, 64]]},
    "mmoe": {"mmoe.n_experts": [2, 3, 4, 6], "mmoe.expert_dim": [32, 64, 128]},
    "ple": {
        "ple.n_levels": [1, 2],
        "ple.n_shared": [1, 2],
        "ple.n_specific": [1, 2],
        "ple.expert_dim": [32, 64],
    },
    "esmm": {"esmm.tower_dims": [[192, 64, 32], [128, 64], [256, 128, 64]]},
    "aitm": {
        "aitm.tower_dims": [[128, 64, 32], [64, 32], [256, 128, 64]],
        "aitm.calibrator_weight": [0.3, 0.6, 1.0],
    },
}

SelectMetric = Literal[
    "mean_auc", "mean_eauc", "ctr_auc", "cvr_auc", "ctcvr_auc", "ctr_eauc", "cvr_eauc", "ctcvr_eauc"
]


class TuneConfig(_Strict):
    """Random search over a grid, the same number of trials for every model, on a validation day."""

    budget: int = Field(
        8, ge=1, description="Trials per model (the first is the model's configured defaults)."
    )
    seeds: int = Field(1, ge=1, description="Training seeds per trial (the score is their mean).")
    seed: int = Field(0, description="Seed of the random draw of trials from the grid.")
    select: SelectMetric = Field(
        "mean_auc",
        description="Validation score to maximise: mean_auc = mean of observed CTR, CVR, CTCVR AUC "
        "(what a real platform has); *_eauc needs the simulator's truth files.",
    )
    common_space: dict[str, list[TuneValue]] = Field(
        default_factory=lambda: {k: list(v) for k, v in _COMMON_SPACE.items()},
        description="Grid shared by every model: keys train.<field> or model.<field>.",
    )
    model_space: dict[str, dict[str, list[TuneValue]]] = Field(
        default_factory=lambda: {a: {k: list(v) for k, v in s.items()} for a, s in _MODEL_SPACE.items()},
        description="Per architecture, its own grid: keys <architecture>.<option>.",
    )

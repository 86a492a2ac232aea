"""From a training table to a trained model: vocabulary (built or grown), encoding, cold or warm start."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.artifacts import LoadedModel, load_model_version
from model.base import MultiTaskModel
from model.encode import encode, encode_labels
from model.errors import ModelConfigError
from model.registry import build_model
from model.spec import FeatureSpec, ModelConfig, TrainConfig
from model.table import Table
from model.trainer import TrainResult, train
from model.vocab import Vocabulary
from model.warmstart import grow_optimizer_state, warm_start

_HOLDOUT_STREAM = 0x5EED_0B1A5  # keeps the held-out draw apart from the replay draw of the same seed


@dataclass
class FitResult:
    model: MultiTaskModel
    config: ModelConfig
    spec: FeatureSpec
    vocab: Vocabulary
    result: TrainResult
    parent_version: str | None = None
    #: rows trained on (fewer than the table's when a warm update replays part of the older days
    #: or rows are held out for the re-centring)
    rows: int = 0

    @property
    def optimizer_state(self) -> dict[str, Any] | None:
        return self.result.optimizer_state


def fit(
    table: Table,
    spec: FeatureSpec,
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    parent: LoadedModel | str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    row_days: Sequence[str] | None = None,
) -> FitResult:
    """Cold start (new vocabulary, fresh weights) or warm start from ``parent`` (grown vocabulary).

    A warm start keeps the parent's architecture and feature spec; asking for another architecture
    is an error rather than a silent cold start. On a cold start with ``init_output_bias`` the heads
    start at the training base rates (see ``base_rates``); a warm start keeps the parent's weights
    and, when the parent was saved with it, continues from its optimizer state. ``row_days`` (the
    day of each row) lets the vocabulary count each day once per model line (``Vocabulary.grow``).
    With ``recenter_holdout_share`` a seeded share of the rows new to the model line (enough for
    ``recenter_holdout_clicks`` clicks, see ``holdout_share``) is not trained on: the post-fit
    re-centring reads them (out of sample); ``FitResult.rows`` counts those trained.
    """
    loaded = load_model_version(parent, with_optimizer=True) if isinstance(parent, str | Path) else parent
    optimizer_state = None
    torch.manual_seed(train_config.seed)
    if loaded is not None:
        if loaded.config.architecture != model_config.architecture:
            raise ModelConfigError(
                f"warm start: parent {loaded.version} is {loaded.config.architecture!r}, "
                f"the config asks for {model_config.architecture!r}"
            )
        spec, model_config = loaded.spec, loaded.config
        vocab = loaded.vocab.grow(table, spec, row_days)
        model = warm_start(loaded, vocab)
        if loaded.optimizer_state is not None:
            optimizer_state = grow_optimizer_state(loaded.optimizer_state, loaded.vocab.sizes, vocab.sizes)
    else:
        vocab = Vocabulary.build(table, spec, row_days)
        model = build_model(model_config, vocab.sizes)
    x = encode(table, spec, vocab)
    click, conversion = encode_labels(table, spec)
    days = None if row_days is None else np.asarray(row_days, dtype=str)
    # the re-centring's target: the whole window's rates, before a warm update's replay sample
    # drops two thirds of the older days' clicks (bench daily's 7-day windows: ~500 conversions
    # -> ~1,200, a relative error of ~4.5% -> ~2.9%)
    window_rates = base_rates(click, conversion)
    if loaded is not None and train_config.warm_replay_share < 1 and days is not None:
        keep = replay_rows(
            days, loaded.metadata.trained_through, train_config.warm_replay_share, train_config.seed
        )
        x, click, conversion, days = x[keep], click[keep], conversion[keep], days[keep]
    held, mix = None, None
    if train_config.recenter_output_bias:
        new = new_rows(days, loaded, len(click))
        held = holdout_rows(new, train_config, click)
        if held is not None and loaded is not None and train_config.recenter_parent_control:
            # before training: the warm-started model is still the parent (in the grown vocabulary)
            mix = parent_mix(model, x, click, new, held, train_config.recenter_probe_rows, train_config.seed)
    fit_rows = slice(None) if held is None else np.setdiff1d(np.arange(len(click)), held)
    x_fit, click_fit, conversion_fit = x[fit_rows], click[fit_rows], conversion[fit_rows]
    if loaded is None and train_config.init_output_bias:
        model.init_output_bias(*base_rates(click_fit, conversion_fit), x=torch.as_tensor(x_fit))
    result = train(
        model,
        x_fit,
        click_fit,
        conversion_fit,
        train_config,
        checkpoint_dir=checkpoint_dir,
        optimizer_state=optimizer_state,
    )
    if train_config.recenter_output_bias:
        recenter_output_bias(
            model,
            x,
            click,
            conversion,
            train_config.recenter_probe_rows,
            train_config.seed,
            probe_rows_of=held,
            mix=mix,
            rates=window_rates,
        )
    trained = len(click_fit)
    return FitResult(model, model_config, spec, vocab, result, loaded.version if loaded else None, trained)


def new_rows(days: np.ndarray | None, parent: LoadedModel | None, n: int) -> np.ndarray:
    """Indices of the rows the model line has not fit: all on a cold start, on a warm start those of
    the days after the parent's trained-through day (the parent's weights have fit the older ones)."""
    through = None if parent is None else parent.metadata.trained_through
    if days is None or through is None:
        return np.arange(n)
    return np.flatnonzero(days > through.isoformat())


def holdout_rows(
    candidates: np.ndarray, train_config: TrainConfig, click: np.ndarray | None = None
) -> np.ndarray | None:
    """A seeded share of ``candidates`` kept out of training for an out-of-sample re-centring
    (None: re-centre in sample). With ``click`` (every row's) the share is ``holdout_share``'s."""
    candidates = np.asarray(candidates)
    if train_config.recenter_holdout_share <= 0 or candidates.size < 2:
        return None
    clicks = None if click is None else float(np.asarray(click, dtype=np.float64)[candidates].sum())
    share = holdout_share(clicks, train_config)
    rng = np.random.default_rng([train_config.seed, _HOLDOUT_STREAM])
    held = candidates[rng.random(candidates.size) < share]
    return held if 0 < held.size < candidates.size else None


def holdout_share(new_clicks: float | None, train_config: TrainConfig) -> float:
    """Share of the new rows held out: ``recenter_holdout_share``, raised until the holdout's
    expected clicks reach ``recenter_holdout_clicks``, at most ``recenter_holdout_max_share``
    (a warm update of one 30k-impression day: ~20%; a cold start on three: ~7%)."""
    share, want = train_config.recenter_holdout_share, train_config.recenter_holdout_clicks
    if new_clicks is None or want <= 0:
        return share
    top = max(share, train_config.recenter_holdout_max_share)
    return share if new_clicks <= 0 else float(min(top, max(share, want / new_clicks)))


def replay_rows(
    row_days: Sequence[str], trained_through: dt.date | None, share: float, seed: int
) -> np.ndarray:
    """Indices of a warm update's rows: every row of a day after ``trained_through`` (new to the
    parent) and a seeded ``share`` of each older day's rows, which the parent has already fit once
    per day they have been in its window (re-fitting all of them each day over-fits them)."""
    days = np.asarray(row_days, dtype=str)
    if trained_through is None:
        return np.arange(days.size)
    old = days <= trained_through.isoformat()
    rng = np.random.default_rng(seed)
    return np.flatnonzero(~old | (rng.random(days.size) < share))


def parent_mix(
    parent: MultiTaskModel,
    x: np.ndarray,
    click: np.ndarray,
    new: np.ndarray,
    held: np.ndarray,
    probe_rows: int,
    seed: int,
) -> dict[str, float]:
    """Per task, the parent's mean prediction on the held-out rows / its mean on every new row.

    The parent has fit none of the new rows, so both means are out of sample and differ only by
    the rows' mix: a ratio estimator that scales the re-centring target to the holdout's own mix
    (its composition noise cancels to the extent the parent and the update agree row by row).
    CTR and CTCVR on all rows, CVR on clicked rows; 1 where the held-out rows hold no click.
    """
    click = np.asarray(click, dtype=np.float64)
    rng = np.random.default_rng([seed, _HOLDOUT_STREAM])
    device = next(parent.parameters()).device

    @torch.no_grad()
    def mean(rows: np.ndarray, column: str) -> float:
        if rows.size > probe_rows:
            rows = np.sort(rng.choice(rows, probe_rows, replace=False))
        was_training = parent.training
        parent.eval()
        try:
            out = parent(torch.as_tensor(np.asarray(x)[rows]).to(device=device, dtype=torch.int64))
        finally:
            parent.train(was_training)
        return float(out[column].double().mean())

    def ratio(of: np.ndarray, over: np.ndarray, column: str) -> float:
        if not (of.size and over.size):
            return 1.0
        part, whole = mean(of, column), mean(over, column)
        return part / whole if part > 0 and whole > 0 else 1.0

    held_clicked, new_clicked = held[click[held] > 0.5], new[click[new] > 0.5]
    return {
        "ctr": ratio(held, new, "p_ctr"),
        "cvr": ratio(held_clicked, new_clicked, "p_cvr"),
        "ctcvr": ratio(held, new, "p_ctcvr"),
    }


def recenter_output_bias(
    model,
    x,
    click,
    conversion,
    probe_rows: int,
    seed: int,
    probe_rows_of: np.ndarray | None = None,
    mix: dict[str, float] | None = None,
    rates: tuple[float | None, float | None] | None = None,
) -> None:
    """Shift each task's fused logit so the trained model is calibrated in the large.

    Training moves a head's mean away from the rate the cold start set (measured: a TAML cold
    start of 3 epochs read CVR calibration 1.17-1.26 on its own training days). The target rates
    come from every row (CTR on all, CVR = conversions / clicks, a pCTCVR head (AITM) at CTR · CVR);
    the mean prediction is taken on ``probe_rows_of`` (rows held out of training, so it is the
    mean the model will predict on rows it has not fit) or, when None, on every row. CVR is probed
    on clicked rows, in sample when the held-out rows hold no click. ``mix`` (``parent_mix``)
    scales each task's target to the held-out rows' mix; ``rates`` (CTR, CVR) replaces the target
    rates of these rows (a warm update passes its whole window's).
    """
    click = np.asarray(click, dtype=np.float64)
    ctr, cvr = base_rates(click, conversion) if rates is None else rates
    mix = mix or {}
    ctr_target = None if ctr is None else _rate(ctr * mix.get("ctr", 1.0))
    cvr_target = None if cvr is None else _rate(cvr * mix.get("cvr", 1.0))
    rng = np.random.default_rng(seed)

    def probe(rows: np.ndarray) -> torch.Tensor:
        if rows.size > probe_rows:
            rows = np.sort(rng.choice(rows, probe_rows, replace=False))
        return torch.as_tensor(np.asarray(x)[rows])

    rows = np.arange(click.size) if probe_rows_of is None else np.asarray(probe_rows_of)
    if model.ctcvr_head:
        if ctr_target is not None and cvr is not None:
            # the head predicts pCTCVR, asked for ctr_rate · cvr_rate: its own mix on all rows
            ctcvr_target = _rate(ctr * cvr * mix.get("ctcvr", 1.0))
            model.init_output_bias(
                ctr_target, ctcvr_target / ctr_target, x=probe(rows), probe_size=probe_rows, per_head=False
            )
        return
    if ctr_target is not None:
        model.init_output_bias(ctr_target, None, x=probe(rows), probe_size=probe_rows, per_head=False)
    clicked = rows[click[rows] > 0.5]
    if not clicked.size:
        clicked = np.flatnonzero(click > 0.5)
        cvr_target = cvr  # in sample: the mix of every clicked row is the target's own
    if cvr_target is not None and clicked.size:
        model.init_output_bias(None, cvr_target, x=probe(clicked), probe_size=probe_rows, per_head=False)


def _rate(p: float, eps: float = 1e-4) -> float:
    return float(np.clip(p, eps, 1 - eps))


def base_rates(click, conversion, eps: float = 1e-4) -> tuple[float | None, float | None]:
    """(CTR = mean click, post-click CVR = conversions / clicks), each clipped into [eps, 1 - eps].

    CVR is None when there is no click (nothing to estimate it from); CTR None on an empty table.
    """
    click = np.asarray(click, dtype=np.float64)
    conversion = np.asarray(conversion, dtype=np.float64)
    clicks = float(click.sum())
    ctr = _rate(clicks / click.size, eps) if click.size else None
    cvr = _rate((conversion * click).sum() / clicks, eps) if clicks > 0 else None
    return ctr, cvr

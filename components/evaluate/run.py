"""Step 5: candidate and production scored on day D (unseen by both), the gate, the blessing."""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.common.production import load_production
from components.common.records import write_record
from components.common.tables import read_table
from components.evaluate.evidence import Day, Scores, base_rate_scores
from components.evaluate.gate import Blessing, ModelMetrics, judge
from taml.core import layout, storage
from taml.core.config import Config
from taml.core.errors import TamlError

log = logging.getLogger(__name__)


class EvaluateError(TamlError):
    """Evaluation cannot run (no model to score with, no table for the day)."""


class NoProductionModelError(EvaluateError):
    """Nothing served the day yet (the first days of a history)."""


TASK_LABELS = {"ctr": "click", "cvr": "conversion", "ctcvr": "conversion"}


@dataclass
class EvaluateOutcome:
    blessed: bool
    reason: str
    blessing_uri: str
    predictions_uri: str
    candidate: ModelMetrics | None
    production: ModelMetrics | None
    blessing: Blessing | None = None  # every rule with its interval (None: nothing was judged)
    diagnostics: dict[str, dict[str, float]] = field(default_factory=dict)  # per role: model.diagnostics

    def gate_metrics(self) -> dict[str, float]:
        """Diagnostics, the deciding rule's figures and min_conversions, flat (KFP Metrics)."""
        out: dict[str, float] = {
            f"{role}_{k}": float(v)
            for role, figures in self.diagnostics.items()
            for k, v in figures.items()
            if k != "clicked_rows" and math.isfinite(v)
        }
        if self.blessing is None:
            return out
        d = self.blessing.deciding
        if d is not None:
            for key in ("value", "low", "high", "threshold"):
                v = getattr(d, key)
                if v is not None and math.isfinite(v):
                    out[f"deciding_{key}"] = float(v)
        m = self.blessing.min_conversions
        if m is not None and math.isfinite(m):
            out["min_conversions"] = float(m)
        return out


def day_metrics(table: pd.DataFrame, pred: pd.DataFrame) -> dict[str, float]:
    """Every figure the gate and the run summary use, computed once over the whole day."""
    from model.metrics import evaluate_predictions

    click = table["click"].to_numpy(dtype=np.float64)
    conversion = table["conversion"].to_numpy(dtype=np.float64)
    p = {k: pred[k].to_numpy(dtype=np.float64) for k in ("p_ctr", "p_cvr", "p_ctcvr")}
    finite = np.isfinite(p["p_ctr"]) & np.isfinite(p["p_cvr"]) & np.isfinite(p["p_ctcvr"])
    out: dict[str, float] = {
        "impressions": float(len(table)),
        "clicks": float(click.sum()),
        "conversions": float((click * conversion).sum()),
        "nan_predictions": float((~finite).sum()),
        "ctcvr_above_ctr_share": float(np.mean(p["p_ctcvr"] > p["p_ctr"])) if len(table) else math.nan,
    }
    if not finite.all():
        return {**out, **{f"{t}_auc": math.nan for t in TASK_LABELS}}
    per_task = evaluate_predictions(click, conversion, p["p_ctr"], p["p_cvr"], p["p_ctcvr"])
    for task, metrics in per_task.items():
        for name, value in metrics.items():
            out[f"{task}_{name}"] = float(value)
    # The joint entire-space loss training minimizes: the gate's lead log loss.
    out["log_loss"] = out["ctr_log_loss"] + out["ctcvr_log_loss"]
    return out


def _predictions_table(table: pd.DataFrame, pred: pd.DataFrame, version: str) -> pa.Table:
    frame = table.reset_index(drop=True).copy()
    for k in ("p_ctr", "p_cvr", "p_ctcvr"):
        frame[k] = pred[k].to_numpy()
    frame["model_version"] = version
    return pa.Table.from_pandas(frame, preserve_index=False)


def write_predictions(
    artifact_root: str, day: dt.date, table: pd.DataFrame, pred: pd.DataFrame, version: str
) -> str:
    """The scores of the model that served D, with its inputs and labels (the monitor reads them)."""
    final = layout.predictions_dir(artifact_root, day)
    staging = storage.staging_dir(final)
    fs, path = storage.pyarrow_filesystem(storage.join(staging, "part-00000.parquet"))
    storage.makedirs(staging)
    pq.write_table(_predictions_table(table, pred, version), path, filesystem=fs)
    storage.publish_dir(staging, final)
    return final


def model_diagnostics(config: Config, loaded, table: pd.DataFrame, pred: pd.DataFrame) -> dict[str, float]:
    """CVR-collapse figures on the clicked rows and, for TAML, the mean gate weights (model.diagnostics)."""
    from model.diagnostics import cvr_collapse, gate_weight_table
    from model.scoring import gate_weights

    out = cvr_collapse(
        table["click"].to_numpy(np.float64),
        pred["p_ctr"].to_numpy(np.float64),
        pred["p_cvr"].to_numpy(np.float64),
        config.evaluate.diagnostic_pairs,
        config.evaluate.diagnostic_seed,
    )
    weights = gate_weights(loaded, table, batch_size=config.train.eval_batch_size)
    if weights is not None:
        out.update(gate_weight_table(weights))
    return out


def training_base_rates(data_root: str, start: dt.date | None, end: dt.date | None) -> tuple[float, float]:
    """CTR and post-click CVR over the candidate's training days (the base-rate reference).

    Reads only the label columns of the days' feature tables that exist.
    """
    import pyarrow.dataset as ds

    if start is None or end is None:
        raise EvaluateError("the candidate records no training window: no base rates to compare with")
    clicks = conversions = impressions = 0.0
    for i in range((end - start).days + 1):
        uri = layout.training_table_dir(data_root, start + dt.timedelta(days=i))
        if not storage.list_files(uri, suffix=".parquet", limit=1):
            continue
        fs, path = storage.pyarrow_filesystem(uri)
        labels = ds.dataset(path, filesystem=fs, format="parquet").to_table(columns=["click", "conversion"])
        click = labels["click"].to_numpy().astype(np.float64)
        impressions += click.size
        clicks += click.sum()
        conversions += (click * labels["conversion"].to_numpy().astype(np.float64)).sum()
    if impressions == 0 or clicks == 0:
        raise EvaluateError(f"no labeled training rows between {start} and {end}: no base rates")
    return clicks / impressions, conversions / clicks


def has_model(directory: str | Path | None) -> bool:
    """A model version directory was written there (train writes nothing when it skips)."""
    return directory is not None and (Path(directory) / "metadata.json").is_file()


def run_evaluate(
    config: Config, date: dt.date, data_root: str, artifact_root: str, candidate_dir: str | Path | None
) -> EvaluateOutcome:
    """Score the candidate (when one was trained) and production on D; judge; write the predictions.

    Runs also when no candidate was trained: the production model's predictions of D are what
    the monitor reads, and the blessing then says why there was nothing to judge.
    """
    from model import load_model_version, score
    from model.artifacts import WEIGHTS_FILE

    table = read_table(data_root, [date])
    cand: ModelMetrics | None = None
    diagnostics: dict[str, dict[str, float]] = {}
    served_pred = served_version = None
    if has_model(candidate_dir):
        candidate = load_model_version(candidate_dir)
        cand_pred = score(candidate, table, batch_size=config.train.eval_batch_size)
        cand = ModelMetrics(candidate.version, day_metrics(table, cand_pred))
        diagnostics["candidate"] = model_diagnostics(config, candidate, table, cand_pred)
        # Nothing served D before the first deployment: the candidate's scores stand in, so the
        # monitor has D as reference for the model that will serve next.
        served_pred, served_version = cand_pred, candidate.version

    prod: ModelMetrics | None = None
    prod_pred = None
    production = load_production(config, artifact_root)
    if production is not None:
        prod_pred = score(production, table, batch_size=config.train.eval_batch_size)
        prod = ModelMetrics(production.version, day_metrics(table, prod_pred))
        diagnostics["production"] = model_diagnostics(config, production, table, prod_pred)
        served_pred, served_version = prod_pred, production.version

    blessing: Blessing | None = None
    if cand is not None:
        day = Day(table["click"].to_numpy(np.float64), table["conversion"].to_numpy(np.float64))
        if prod is not None:
            reference = Scores.of(prod.model_id, prod_pred)
        else:
            window = candidate.metadata.training_window
            ctr, cvr = training_base_rates(data_root, window.start, window.end)
            reference = base_rate_scores(len(table), ctr, cvr)
        blessing = judge(
            day,
            Scores.of(cand.model_id, cand_pred),
            reference,
            config.evaluate.rules,
            first_deployment=prod is None,
            candidate_metrics=cand,
            production_metrics=prod,
        )
        body = blessing.to_dict()
        # Deploy promotes only the exact weights judged here (load_model_version verified them).
        body["candidate"]["weights_sha256"] = candidate.metadata.files.get(WEIGHTS_FILE)
    else:
        body = {
            "blessed": False,
            "reason": "no candidate was trained for this day",
            "candidate": None,
            "production": {"model_id": prod.model_id, "metrics": prod.metrics} if prod else None,
            "rules": [],
            "deciding_rule": None,
        }
    body["diagnostics"] = {
        role: {k: _json_number(v) for k, v in d.items()} for role, d in diagnostics.items()
    }
    report_dir = layout.run_dir(artifact_root, "evaluation", date)
    blessing_uri = storage.join(report_dir, "blessing.json")
    storage.write_json(blessing_uri, {"date": date.isoformat(), **body})
    predictions_uri = (
        write_predictions(artifact_root, date, table, served_pred, served_version)
        if served_pred is not None
        else ""
    )
    log.info("evaluation on %s: %s", date, body["reason"])
    keys = ("ctr_auc", "cvr_auc", "ctcvr_auc")
    write_record(
        artifact_root,
        date,
        "evaluate",
        {
            "blessed": body["blessed"],
            "reason": body["reason"],
            "candidate": cand.model_id if cand else None,
            "production": prod.model_id if prod else None,
            "candidate_metrics": {k: cand.metrics.get(k) for k in keys} if cand else None,
            "production_metrics": {k: prod.metrics.get(k) for k in keys} if prod else None,
            "failed_rules": [f"{r.rule}:{r.metric}" for r in blessing.failed] if blessing else [],
            "deciding_rule": body["deciding_rule"],
            "reference": body.get("reference"),
            "min_conversions": body.get("min_conversions"),
            "diagnostics": body["diagnostics"],
            "blessing": blessing_uri,
            "predictions": predictions_uri,
        },
    )
    return EvaluateOutcome(
        body["blessed"], body["reason"], blessing_uri, predictions_uri, cand, prod, blessing, diagnostics
    )


def _json_number(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def score_served_model(config: Config, date: dt.date, data_root: str, artifact_root: str) -> pd.DataFrame:
    """Day D scored by the production model, for the monitor when the pipeline did not score D.

    Uses D's feature table when it exists; otherwise joins D's curated samples point-in-time in
    memory (no materialization, no training table written: a day that failed validation must
    never become training data).
    """
    from components.common.tables import has_table
    from model import score

    production = load_production(config, artifact_root)
    if production is None:
        raise NoProductionModelError(f"cannot score {date}: there is no production model yet")
    if has_table(data_root, date):
        table = read_table(data_root, [date])
    else:
        from components.features import ensure_applied, point_in_time, read_samples

        ensure_applied(config, data_root)
        table = point_in_time(config, None, read_samples(data_root, date).to_pandas(), data_root)
    pred = score(production, table, batch_size=config.train.eval_batch_size)
    return _predictions_table(table, pred, production.version).to_pandas()

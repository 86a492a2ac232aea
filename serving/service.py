"""Prediction logic between the HTTP layer and the model: features, one forward pass, the log.

:class:`PredictionService` answers validated requests (``serving.schemas``); it knows nothing
of HTTP. Every request takes one model snapshot from the holder and one feature snapshot, scores
all its rows in one forward pass, and queues its records for the prediction log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from serving.features import OnlineFeatures, Row
from serving.models import ModelHolder, ServingModel
from serving.predlog import PredictionLog
from serving.schemas import Instance, RankRequest, event_time

log = logging.getLogger(__name__)

SCORE_KEYS = ("p_ctr", "p_cvr", "p_ctcvr")


class NotReady(RuntimeError):
    """No model loaded yet, or the online store cannot be read: the server answers 503."""


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PredictionService:
    def __init__(self, holder: ModelHolder, features: OnlineFeatures, log: PredictionLog | None = None):
        self.holder = holder
        self.features = features
        self.log = log

    # --- status -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.holder.current is not None and self.features.ready

    def status(self) -> dict[str, Any]:
        m = self.holder.current
        return {
            "ready": self.ready,
            "model_version": m.version if m else None,
            "features_ready": self.features.ready,
            "features_error": self.features.last_error,
        }

    def _model(self) -> ServingModel:
        m = self.holder.current
        if m is None:
            raise NotReady("no model loaded yet")
        return m

    # --- requests -----------------------------------------------------------------------------

    def predict(self, instances: Sequence[Instance], now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """KServe ``instances`` -> one prediction each; one user lookup per distinct user."""
        model = self._model()
        now = now or dt.datetime.now(dt.UTC)
        users = self._users({i.user_id for i in instances})
        items = self.features.items([i.item_id for i in instances])
        rows, records = [], []
        for inst, item in zip(instances, items, strict=True):
            t = event_time(inst.ts, now)
            user = users[inst.user_id]
            rows.append(self._row(inst.user_id, inst.item_id, inst.position, inst.device, t, user, item))
            records.append(
                self._record(
                    now,
                    model,
                    inst.user_id,
                    inst.item_id,
                    inst.position,
                    inst.device,
                    t,
                    user is None,
                    item is None,
                )
            )
        preds = self._score(model, rows, records)
        return [
            {
                **p,
                "model_version": model.version,
                "unknown_user": r["unknown_user"],
                "unknown_item": r["unknown_item"],
            }
            for p, r in zip(preds, records, strict=True)
        ]

    def rank(self, req: RankRequest, now: dt.datetime | None = None) -> dict[str, Any]:
        """One user, N candidates: one user lookup, cached items, one forward pass."""
        model = self._model()
        now = now or dt.datetime.now(dt.UTC)
        t = event_time(req.ts, now)
        user = self._users({req.user_id})[req.user_id]
        items = self.features.items(req.items)
        rows = [
            self._row(req.user_id, i, req.position, req.device, t, user, it)
            for i, it in zip(req.items, items, strict=True)
        ]
        records = [
            self._record(now, model, req.user_id, i, req.position, req.device, t, user is None, it is None)
            for i, it in zip(req.items, items, strict=True)
        ]
        preds = self._score(model, rows, records)
        return {
            "model_version": model.version,
            "user_id": req.user_id,
            "unknown_user": user is None,
            "predictions": [
                {"item_id": i, **p, "unknown_item": it is None}
                for i, p, it in zip(req.items, preds, items, strict=True)
            ],
        }

    # --- pieces -------------------------------------------------------------------------------

    def _users(self, user_ids: set[int]) -> dict[int, Row | None]:
        return {u: self.features.user(u) for u in user_ids}

    @staticmethod
    def _row(user_id, item_id, position, device, t: dt.datetime, user: Row | None, item: Row | None) -> Row:
        row: Row = {
            "user_id": user_id,
            "item_id": item_id,
            "position": position,
            "device": device,
            "hour": t.hour,
        }
        if user:
            row.update(user)
        if item:
            row.update(item)
        return row

    @staticmethod
    def _record(
        now, model, user_id, item_id, position, device, t, unknown_user, unknown_item
    ) -> dict[str, Any]:
        return {
            "ts": _iso(now),
            "model_version": model.version,
            "user_id": user_id,
            "item_id": item_id,
            "position": position,
            "device": device,
            "hour": t.hour,
            "unknown_user": unknown_user,
            "unknown_item": unknown_item,
        }

    def _score(
        self, model: ServingModel, rows: list[Row], records: list[dict[str, Any]]
    ) -> list[dict[str, float]]:
        pred = model.score_rows(rows)
        cols = [pred[k].tolist() for k in SCORE_KEYS]
        out = [dict(zip(SCORE_KEYS, vals, strict=True)) for vals in zip(*cols, strict=True)]
        if self.log is not None:
            for rec, p in zip(records, out, strict=True):
                rec.update(p)
            self.log.submit(records)
        return out

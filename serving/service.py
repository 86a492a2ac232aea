"""Prediction logic between the HTTP layer and the model: features, one forward pass, the log.

:class:`PredictionService` answers validated requests (``serving.schemas``); it knows nothing
of HTTP. Every request takes one model snapshot from the holder and one feature snapshot, scores
all its rows in one forward pass, and queues its records for the prediction log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from serving.features import OnlineFeatures, Row
from serving.models import SCORE_KEYS, ModelHolder, ServingModel
from serving.predlog import PredictionLog
from serving.schemas import Instance, RankRequest, event_time

log = logging.getLogger(__name__)


class NotReady(RuntimeError):
    """No model loaded yet, or the online store cannot be read: the server answers 503."""


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class RankRecords:
    """A ranking answer's log records, held as its columns: the request thread builds nothing per
    item, the log's writer thread makes the dicts (the same ones ``predict`` logs) as it writes."""

    ts: str
    model_version: str
    user_id: int
    position: int | None
    device: str | None
    hour: int
    unknown_user: bool
    item_ids: Sequence[int]
    unknown_item: Sequence[bool]
    p_ctr: Sequence[float]
    p_cvr: Sequence[float]
    p_ctcvr: Sequence[float]

    def __len__(self) -> int:
        return len(self.item_ids)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        ts, version, user_id = self.ts, self.model_version, self.user_id
        position, device, hour, unknown_user = self.position, self.device, self.hour, self.unknown_user
        for i, u, a, b, c in zip(
            self.item_ids, self.unknown_item, self.p_ctr, self.p_cvr, self.p_ctcvr, strict=True
        ):
            yield {
                "ts": ts,
                "model_version": version,
                "user_id": user_id,
                "item_id": i,
                "position": position,
                "device": device,
                "hour": hour,
                "unknown_user": unknown_user,
                "unknown_item": u,
                "p_ctr": a,
                "p_cvr": b,
                "p_ctcvr": c,
            }


LogRecords = list[dict[str, Any]] | RankRecords


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
    # ``predict`` / ``rank`` answer and queue their log records; the HTTP layer calls the
    # ``*_answer`` forms and queues the records only once the response has left
    # (:meth:`submit_log`), so the log's work never sits between a request and its answer.

    def predict(self, instances: Sequence[Instance], now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """KServe ``instances`` -> one prediction each; one user lookup per distinct user."""
        answer, records = self.predict_answer(instances, now)
        self.submit_log(records)
        return answer

    def rank(self, req: RankRequest, now: dt.datetime | None = None) -> dict[str, Any]:
        """One user, N candidates: one user lookup, cached items, one forward pass."""
        answer, records = self.rank_answer(req, now)
        self.submit_log(records)
        return answer

    def submit_log(self, records: LogRecords | None) -> None:
        """Queue one answer's records for the prediction log (never blocks; nothing without a log)."""
        if self.log is not None and records:
            self.log.submit(records)

    def predict_answer(
        self, instances: Sequence[Instance], now: dt.datetime | None = None
    ) -> tuple[list[dict[str, Any]], LogRecords | None]:
        """``predict``'s answer and its log records, not yet queued."""
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
        pred = model.score_rows(rows)
        version = model.version
        answer = []
        for rec, *scores in zip(records, *(pred[k].tolist() for k in SCORE_KEYS), strict=True):
            rec.update(zip(SCORE_KEYS, scores, strict=True))
            answer.append(
                {
                    **dict(zip(SCORE_KEYS, scores, strict=True)),
                    "model_version": version,
                    "unknown_user": rec["unknown_user"],
                    "unknown_item": rec["unknown_item"],
                }
            )
        return answer, records if self.log is not None else None

    def rank_answer(
        self, req: RankRequest, now: dt.datetime | None = None
    ) -> tuple[dict[str, Any], LogRecords | None]:
        """``rank``'s answer and its log records, not yet queued.

        The request's own columns and the user's are one shared row, encoded once
        (``ServingModel.score_items``): no row is built item by item.
        """
        model = self._model()
        now = now or dt.datetime.now(dt.UTC)
        hour = event_time(req.ts, now).hour
        user = self._users({req.user_id})[req.user_id]
        items = self.features.items(req.items)
        # What _row gives every item, less the item's own columns (same precedence).
        shared: Row = {"user_id": req.user_id, "position": req.position, "device": req.device, "hour": hour}
        if user:
            shared.update(user)
        pred = model.score_items(shared, req.items, items)
        p_ctr, p_cvr, p_ctcvr = (pred[k].tolist() for k in SCORE_KEYS)
        unknown = [it is None for it in items]
        answer = {
            "model_version": model.version,
            "user_id": req.user_id,
            "unknown_user": user is None,
            "predictions": [
                {"item_id": i, "p_ctr": a, "p_cvr": b, "p_ctcvr": c, "unknown_item": u}
                for i, a, b, c, u in zip(req.items, p_ctr, p_cvr, p_ctcvr, unknown, strict=True)
            ],
        }
        if self.log is None:
            return answer, None
        records = RankRecords(
            _iso(now), model.version, req.user_id, req.position, req.device, hour, user is None,
            req.items, unknown, p_ctr, p_cvr, p_ctcvr,
        )  # fmt: skip
        return answer, records

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

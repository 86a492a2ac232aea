"""Request shapes and their validation: every client mistake becomes a :class:`RequestError`.

Ids are strict integers (``"7"``, ``7.5`` and ``true`` are refused rather than guessed at), timestamps
are RFC 3339 with an offset, and the list limits come from ``serving.*`` so the app never sees a
request it cannot answer cheaply. Unknown keys are ignored, like unknown keys of the raw events.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, ValidationError

Device = Literal["ios", "android", "web"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Instance(_Request):
    """One (user, item) pair to score."""

    user_id: StrictInt = Field(ge=0)
    item_id: StrictInt = Field(ge=0)
    position: StrictInt | None = Field(None, ge=1, le=100)
    device: Device | None = None
    ts: AwareDatetime | None = None


class RankRequest(_Request):
    """One user and its candidate items, scored in one forward pass."""

    user_id: StrictInt = Field(ge=0)
    items: list[StrictInt] = Field(min_length=1)
    position: StrictInt | None = Field(None, ge=1, le=100)
    device: Device | None = None
    ts: AwareDatetime | None = None


@dataclass
class RequestError(Exception):
    """A client's mistake: HTTP ``status`` with a message naming the ``field``."""

    status: int
    message: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "field": self.field}
        if self.errors:
            out["errors"] = self.errors
        return out


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _from_validation(e: ValidationError, prefix: tuple[Any, ...] = ()) -> RequestError:
    errors = [
        {"field": _loc(prefix + tuple(err["loc"])), "message": err["msg"]}
        for err in e.errors(include_url=False, include_input=False)
    ]
    first = errors[0]
    return RequestError(400, f"{first['field']}: {first['message']}", first["field"], errors[:20])


def parse_json(body: bytes) -> dict[str, Any]:
    if not body:
        raise RequestError(400, "empty body: expected a JSON object", None)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(400, f"body is not valid JSON ({e})", None) from None
    if not isinstance(data, dict):
        raise RequestError(400, f"body must be a JSON object, got {type(data).__name__}", None)
    return data


def parse_predict(data: dict[str, Any], max_instances: int) -> list[Instance]:
    """KServe V1 / Vertex: ``{"instances": [{user_id, item_id, position?, device?, ts?}, ...]}``."""
    instances = data.get("instances")
    if instances is None:
        raise RequestError(400, "instances: field required", "instances")
    if not isinstance(instances, list):
        raise RequestError(400, f"instances: expected a list, got {type(instances).__name__}", "instances")
    if not instances:
        raise RequestError(400, "instances: at least one instance is required", "instances")
    if len(instances) > max_instances:
        raise RequestError(
            400, f"instances: {len(instances)} instances, at most {max_instances} per request", "instances"
        )
    out = []
    for i, raw in enumerate(instances):
        if not isinstance(raw, dict):
            raise RequestError(
                400, f"instances[{i}]: expected an object, got {type(raw).__name__}", f"instances[{i}]"
            )
        try:
            out.append(Instance.model_validate(raw))
        except ValidationError as e:
            raise _from_validation(e, ("instances", i)) from None
    return out


def parse_rank(data: dict[str, Any], max_items: int) -> RankRequest:
    """``{"user_id": u, "items": [i, ...], "position"?, "device"?, "ts"?}``."""
    items = data.get("items")
    if isinstance(items, list) and len(items) > max_items:
        raise RequestError(400, f"items: {len(items)} items, at most {max_items} per request", "items")
    try:
        return RankRequest.model_validate(data)
    except ValidationError as e:
        raise _from_validation(e) from None


def event_time(ts: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """The instance's time in UTC (its ``ts``, else the time of the request)."""
    return now if ts is None else ts.astimezone(dt.UTC)

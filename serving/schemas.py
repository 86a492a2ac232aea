"""Request shapes and their validation: every client mistake becomes a :class:`RequestError`.

Ids are strict integers in 0..2^63-1 (the online store keys them as int64; ``"7"``, ``7.5`` and
``true`` are refused rather than guessed at), timestamps are RFC 3339 strings with an offset whose
UTC time is a real date (years 1..9999), and the list limits come from ``serving.*`` so the app
never sees a request it cannot answer cheaply. Unknown keys are ignored, like unknown keys of the
raw events.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
)

from serving.body import OversizedInt, parse_json
from serving.errors import RequestError

INT64_MAX = 2**63 - 1


def _rfc3339_text(v: Any) -> Any:
    # pydantic would also read numbers as Unix times: the contract says RFC 3339 text.
    if not isinstance(v, str):
        raise ValueError("expected an RFC 3339 timestamp string")
    return v


def _utc(v: dt.datetime) -> dt.datetime:
    try:
        return v.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("timestamp is outside years 1..9999 once converted to UTC") from None


Id = Annotated[StrictInt, Field(ge=0, le=INT64_MAX)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_utc)]
Position = Annotated[StrictInt, Field(ge=1, le=100)]
Device = Literal["ios", "android", "web"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Instance(_Request):
    """One (user, item) pair to score."""

    user_id: Id
    item_id: Id
    position: Position | None = None
    device: Device | None = None
    ts: Timestamp | None = None


class RankRequest(_Request):
    """One user and its candidate items, scored in one forward pass."""

    user_id: Id
    items: list[Id] = Field(min_length=1)
    position: Position | None = None
    device: Device | None = None
    ts: Timestamp | None = None


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def error_message(err: dict[str, Any]) -> str:
    if isinstance(err.get("input"), OversizedInt):
        return f"integer of {err['input'].digits} digits is out of range (at most 2^63-1)"
    return err["msg"]


def _from_validation(e: ValidationError, prefix: tuple[Any, ...] = ()) -> RequestError:
    # The input is read to explain oversized integers only; it is never echoed to the client.
    errors = [
        {"field": _loc(prefix + tuple(err["loc"])), "message": error_message(err)}
        for err in e.errors(include_url=False, include_input=True, include_context=False)
    ]
    first = errors[0]
    return RequestError(400, f"{first['field']}: {first['message']}", first["field"], errors[:20])


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
    """The instance's time in UTC (its ``ts``, already UTC once validated, else the request's)."""
    return now if ts is None else ts


__all__ = [
    "INT64_MAX",
    "Instance",
    "RankRequest",
    "RequestError",
    "parse_json",
    "parse_predict",
    "parse_rank",
]

"""The server's OpenAPI document: every request body, every answer, the 4xx included.

The routes read their bodies themselves (bounded, timed, field-named errors), so FastAPI cannot
infer their shapes: the models below describe them, and :func:`request_body` /
:func:`responses` attach them to the routes. Limits that come from the configuration
(``max_instances``, ``max_rank_items``) are written into the document, so a client or a fuzzer
generating from it knows them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from serving.schemas import INT64_MAX, Instance, RankRequest
from serving.v2 import INPUTS, OUTPUTS

REF = "#/components/schemas/{model}"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class FieldError(BaseModel):
    field: str | None
    message: str


class ErrorBody(BaseModel):
    """Every error: a message that names the field, the field's path (null: the whole body)."""

    error: str
    field: str | None = None
    errors: list[FieldError] | None = Field(None, description="Up to 20 validation errors.")


class Alive(BaseModel):
    status: Literal["alive"]


class V1ModelReady(BaseModel):
    name: str
    ready: bool
    version: str | None


class V1Models(BaseModel):
    models: list[str]


class PredictRequest(BaseModel):
    """KServe V1: ``instances`` to score (at most ``serving.max_instances``)."""

    instances: list[Instance] = Field(min_length=1)


class Prediction(BaseModel):
    p_ctr: float = Field(ge=0, le=1)
    p_cvr: float = Field(ge=0, le=1)
    p_ctcvr: float = Field(ge=0, le=1)
    model_version: str
    unknown_user: bool
    unknown_item: bool


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class RankedItem(BaseModel):
    item_id: int = Field(ge=0, le=INT64_MAX)
    p_ctr: float = Field(ge=0, le=1)
    p_cvr: float = Field(ge=0, le=1)
    p_ctcvr: float = Field(ge=0, le=1)
    unknown_item: bool


class RankResponse(BaseModel):
    model_version: str
    user_id: int = Field(ge=0, le=INT64_MAX)
    unknown_user: bool
    predictions: list[RankedItem]


class Readiness(_Doc):
    """``/readyz``: ready, what is served, the alias follower, the online store, the log."""

    name: str
    ready: bool
    model_version: str | None
    features_ready: bool
    features_error: str | None
    alias: dict[str, Any]
    prediction_log: dict[str, Any] | None


V2InputName = Literal[tuple(INPUTS)]  # type: ignore[valid-type]
V2OutputName = Literal[tuple(OUTPUTS)]  # type: ignore[valid-type]


class V2Tensor(BaseModel):
    """An input tensor: ``user_id``/``item_id`` INT64, ``position`` INT32, ``device``/``ts`` BYTES."""

    name: V2InputName
    datatype: Literal["INT64", "INT32", "BYTES"]
    shape: list[int] = Field(min_length=1, max_length=2)
    data: list[int | str] | None = None
    parameters: dict[str, Any] | None = None


class V2RequestedOutput(BaseModel):
    name: V2OutputName
    parameters: dict[str, Any] | None = None


class V2InferRequest(BaseModel):
    """Open Inference Protocol infer request: named tensors of one shape ``[N]`` (or ``[N, 1]``)."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[V2Tensor] = Field(min_length=2, max_length=len(INPUTS))
    outputs: list[V2RequestedOutput] | None = None


class V2OutputTensor(BaseModel):
    name: V2OutputName
    datatype: Literal["FP32"]
    shape: list[int]
    data: list[float]


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any]
    outputs: list[V2OutputTensor]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


REQUEST_MODELS: list[type[BaseModel]] = [PredictRequest, RankRequest, V2InferRequest]


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route whose JSON body is ``model``."""
    ref = {"$ref": REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def responses(
    ok: type[BaseModel], *errors: int, auth: bool = False, not_ready: type[BaseModel] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses`` of a route: ``ok`` on 200, :class:`ErrorBody` on each error status, except
    a readiness route's 503, which is its own body saying not ready (``not_ready``)."""
    why = {
        400: "A client mistake; `field` names where.",
        401: "Missing or wrong bearer token.",
        404: "Unknown route.",
        405: "Method not allowed.",
        408: "The body did not arrive within serving.body_timeout_s.",
        413: "The body is larger than serving.max_body_bytes.",
        503: "Not ready: no model loaded yet or the online store unavailable.",
    }
    codes = sorted({*errors, *((401,) if auth else ())})
    out: dict[int | str, dict[str, Any]] = {200: {"model": ok, "description": "OK"}}
    for c in codes:
        model = not_ready if c == 503 and not_ready is not None else ErrorBody
        out[c] = {"model": model, "description": why[c]}
    return out


def complete(document: dict[str, Any], max_instances: int, max_rank_items: int, auth: bool) -> dict[str, Any]:
    """Add the request models to ``components`` and write the configured limits into them."""
    _, defs = models_json_schema([(m, "validation") for m in REQUEST_MODELS], ref_template=REF)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(defs.get("$defs", {}))
    schemas["PredictRequest"]["properties"]["instances"]["maxItems"] = max_instances
    schemas["RankRequest"]["properties"]["items"]["maxItems"] = max_rank_items
    shape = schemas["V2Tensor"]["properties"]["shape"]
    shape["items"] = {"type": "integer", "minimum": 1, "maximum": max_instances}
    if auth:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return document

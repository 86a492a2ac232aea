"""The HTTP face of :class:`serving.runtime.Runtime`: KServe V1, Open Inference Protocol (V2),
Vertex AI routes, health, and the OpenAPI document that describes all of them.

Thin on purpose: check the token, read a bounded body, validate (``serving.schemas``,
``serving.v2``), call the service in a worker thread, write JSON. Client mistakes are 4xx with
``{"error", "field"}``; "not ready" is 503; anything else is a logged 500 that never echoes
internals. Health and readiness routes never ask for the token (probes have none).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from serving import openapi as doc
from serving import v2
from serving.auth import authorized
from serving.body import parse_json, read_body
from serving.features import FeatureSourceUnavailable
from serving.runtime import Runtime, uvicorn_options
from serving.schemas import RequestError, parse_predict, parse_rank
from serving.service import NotReady

log = logging.getLogger(__name__)


def _dumps(body: Any) -> bytes:
    # orjson: a 100-item ranking answer in ~0.05 ms instead of ~0.5 ms. ``json`` for what orjson
    # refuses: an error message may quote a client's key holding a lone surrogate.
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, separators=(",", ":")).encode()


def _json(
    body: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> Response:
    return Response(
        _dumps(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
        background=background,
    )


def _error(status: int, message: str, field: str | None = None) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return _json({"error": message, "field": field}, status, headers)


def create_app(runtime: Runtime, *, manage_lifecycle: bool = True) -> FastAPI:
    """The FastAPI app; with ``manage_lifecycle`` its lifespan starts and stops ``runtime``."""
    service, cfg, name = runtime.service, runtime.config.serving, runtime.model_name
    token = runtime.token

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if manage_lifecycle:
            await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            if manage_lifecycle:
                await run_in_threadpool(runtime.stop)

    app = FastAPI(
        title="TAML prediction server",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    async def guard(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
        if token is not None and not authorized(request.headers.get("authorization"), token):
            return _error(401, "a valid bearer token is required (Authorization: Bearer ...)")
        try:
            return await work()
        except RequestError as e:
            return _json(e.body(), e.status)
        except (NotReady, FeatureSourceUnavailable) as e:
            return _error(503, f"not ready: {e}")
        except Exception:
            log.exception("prediction failed")
            return _error(500, "internal error (logged by the server)")

    async def body(request: Request) -> bytes:
        return await read_body(request, cfg.max_body_bytes, cfg.body_timeout_s)

    def logged(records) -> BackgroundTask | None:
        # Starlette runs this once the response is sent: the prediction log's queueing (and the
        # writer thread it wakes) comes after the answer, not between the request and it. A
        # coroutine, so it runs on the event loop (a plain function would take a worker thread).
        async def submit() -> None:
            service.submit_log(records)

        return BackgroundTask(submit) if records else None

    # --- health (open) ------------------------------------------------------------------------

    async def alive() -> Response:
        return _json({"status": "alive"})

    async def ready() -> Response:
        st = runtime.status()
        return _json({"name": name, **st}, 200 if st["ready"] else 503)

    async def model_ready() -> Response:
        st = service.status()
        return _json(
            {"name": name, "ready": st["ready"], "version": st["model_version"]}, 200 if st["ready"] else 503
        )

    async def v2_live() -> Response:
        return _json({"live": True})

    async def v2_ready() -> Response:
        ok = service.ready
        return _json({"ready": ok}, 200 if ok else 503)

    async def v2_model_ready() -> Response:
        ok = service.ready
        return _json({"name": name, "ready": ok}, 200 if ok else 503)

    # --- V1 -----------------------------------------------------------------------------------

    async def models(request: Request) -> Response:
        async def work() -> Response:
            return _json({"models": [name]})

        return await guard(request, work)

    async def predict(request: Request) -> Response:
        async def work() -> Response:
            instances = parse_predict(parse_json(await body(request)), cfg.max_instances)
            preds, records = await run_in_threadpool(service.predict_answer, instances)
            return _json({"predictions": preds}, background=logged(records))

        return await guard(request, work)

    async def rank(request: Request) -> Response:
        async def work() -> Response:
            req = parse_rank(parse_json(await body(request)), cfg.max_rank_items)
            answer, records = await run_in_threadpool(service.rank_answer, req)
            return _json(answer, background=logged(records))

        return await guard(request, work)

    # --- V2 (Open Inference Protocol) ---------------------------------------------------------

    async def v2_server(request: Request) -> Response:
        async def work() -> Response:
            return _json({"name": "taml-serving", "version": "1", "extensions": ["binary_tensor_data"]})

        return await guard(request, work)

    async def v2_metadata(request: Request) -> Response:
        async def work() -> Response:
            return _json(v2.model_metadata(name, service.status()["model_version"]))

        return await guard(request, work)

    async def v2_infer(request: Request) -> Response:
        async def work() -> Response:
            raw = await body(request)
            req = v2.parse_infer(raw, request.headers.get(v2.HEADER_LENGTH), cfg.max_instances)
            preds, records = await run_in_threadpool(service.predict_answer, req.instances)
            return _json(v2.infer_response(name, req, preds), background=logged(records))

        return await guard(request, work)

    auth = token is not None
    security = {"security": [{"bearer": []}]} if auth else {}

    def route(path, fn, method, ok, *errors, body_model=None, protected=True):
        extra = {**(doc.request_body(body_model) if body_model else {}), **(security if protected else {})}
        # A probe's 503 is its own body with ready: false, not an error body.
        not_ready = ok if not protected else None
        app.add_api_route(
            path,
            fn,
            methods=[method],
            responses=doc.responses(ok, *errors, auth=auth and protected, not_ready=not_ready),
            openapi_extra=extra or None,
            response_class=Response,
        )

    body_errors = (400, 408, 413, 503)
    route("/", alive, "GET", doc.Alive, protected=False)  # KServe V1 liveness
    route("/healthz", alive, "GET", doc.Alive, protected=False)
    route("/readyz", ready, "GET", doc.Readiness, 503, protected=False)
    route("/v1/models", models, "GET", doc.V1Models)
    route(f"/v1/models/{name}", model_ready, "GET", doc.V1ModelReady, 503, protected=False)
    route(
        f"/v1/models/{name}:predict", predict, "POST", doc.PredictResponse, *body_errors,
        body_model=doc.PredictRequest,
    )  # fmt: skip
    route(f"/v1/models/{name}:rank", rank, "POST", doc.RankResponse, *body_errors, body_model=doc.RankRequest)
    route("/v2", v2_server, "GET", doc.V2ServerMetadata)
    route("/v2/health/live", v2_live, "GET", doc.V2Live, protected=False)
    route("/v2/health/ready", v2_ready, "GET", doc.V2Ready, 503, protected=False)
    route(f"/v2/models/{name}", v2_metadata, "GET", doc.V2ModelMetadata)
    route(f"/v2/models/{name}/ready", v2_model_ready, "GET", doc.V2ModelReady, 503, protected=False)
    route(
        f"/v2/models/{name}/infer", v2_infer, "POST", doc.V2InferResponse, *body_errors,
        body_model=doc.V2InferRequest,
    )  # fmt: skip
    # Vertex AI custom container: it tells the container which paths to answer.
    vertex_predict, vertex_health = os.environ.get("AIP_PREDICT_ROUTE"), os.environ.get("AIP_HEALTH_ROUTE")
    taken = {r.path for r in app.routes if hasattr(r, "path")}
    if vertex_predict and vertex_predict not in taken:
        route(
            vertex_predict, predict, "POST", doc.PredictResponse, *body_errors, body_model=doc.PredictRequest
        )
    if vertex_health and vertex_health not in taken:
        route(vertex_health, ready, "GET", doc.Readiness, 503, protected=False)

    async def http_error(_request: Request, exc: Exception) -> Response:
        # Unknown routes and methods answer in the same JSON shape as every other error.
        status = getattr(exc, "status_code", 400)
        out = _error(status, str(getattr(exc, "detail", "bad request")))
        out.headers.update(getattr(exc, "headers", None) or {})
        return out

    async def validation_error(_request: Request, _exc: Exception) -> Response:
        return _error(400, "request not understood")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            app.openapi_schema = doc.complete(document, cfg.max_instances, cfg.max_rank_items, auth)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def serve(config, data_root: str, artifact_root: str, port: int, host: str | None = None) -> None:
    """Run the server until SIGINT/SIGTERM (uvicorn handles both and drains requests)."""
    import uvicorn

    runtime = Runtime(config, data_root, artifact_root)
    app = create_app(runtime)
    uvicorn.run(app, **uvicorn_options(config, host, port))

"""The HTTP face of :class:`serving.runtime.Runtime`: KServe V1 routes, Vertex AI routes, health.

Thin on purpose: read a bounded body, validate (``serving.schemas``), call the service in a
worker thread, write JSON. Client mistakes are 4xx with ``{"error", "field"}``; "not ready" is
503; anything else is a logged 500 that never echoes internals.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from serving.features import FeatureSourceUnavailable
from serving.schemas import RequestError, parse_json, parse_predict, parse_rank
from serving.service import NotReady

if TYPE_CHECKING:
    from serving.runtime import Runtime

log = logging.getLogger(__name__)


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status_code=status, media_type="application/json"
    )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes", None)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:  # chunked uploads declare no length: stop reading at the limit
            raise RequestError(413, f"body exceeds the limit of {limit} bytes", None)
    return bytes(body)


async def _guard(work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except RequestError as e:
        return _json(e.body(), e.status)
    except (NotReady, FeatureSourceUnavailable) as e:
        return _json({"error": f"not ready: {e}", "field": None}, 503)
    except Exception:
        log.exception("prediction failed")
        return _json({"error": "internal error (logged by the server)", "field": None}, 500)


def create_app(runtime: Runtime, *, manage_lifecycle: bool = True) -> FastAPI:
    """The FastAPI app; with ``manage_lifecycle`` its lifespan starts and stops ``runtime``."""
    service, cfg, name = runtime.service, runtime.config.serving, runtime.model_name

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if manage_lifecycle:
            await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            if manage_lifecycle:
                await run_in_threadpool(runtime.stop)

    app = FastAPI(title="TAML prediction server", lifespan=lifespan, docs_url=None, redoc_url=None)

    async def alive() -> Response:
        return _json({"status": "alive"})

    async def ready() -> Response:
        st = service.status()
        return _json({"name": name, **st}, 200 if st["ready"] else 503)

    async def model_ready() -> Response:
        st = service.status()
        return _json(
            {"name": name, "ready": st["ready"], "version": st["model_version"]}, 200 if st["ready"] else 503
        )

    async def models() -> Response:
        return _json({"models": [name]})

    async def predict(request: Request) -> Response:
        async def work() -> Response:
            data = parse_json(await _read_body(request, cfg.max_body_bytes))
            instances = parse_predict(data, cfg.max_instances)
            return _json({"predictions": await run_in_threadpool(service.predict, instances)})

        return await _guard(work)

    async def rank(request: Request) -> Response:
        async def work() -> Response:
            data = parse_json(await _read_body(request, cfg.max_body_bytes))
            req = parse_rank(data, cfg.max_rank_items)
            return _json(await run_in_threadpool(service.rank, req))

        return await _guard(work)

    app.add_api_route("/", alive, methods=["GET"])  # KServe liveness
    app.add_api_route("/healthz", alive, methods=["GET"])
    app.add_api_route("/readyz", ready, methods=["GET"])
    app.add_api_route("/v1/models", models, methods=["GET"])
    app.add_api_route(f"/v1/models/{name}", model_ready, methods=["GET"])
    app.add_api_route(f"/v1/models/{name}:predict", predict, methods=["POST"])
    app.add_api_route(f"/v1/models/{name}:rank", rank, methods=["POST"])
    # Vertex AI custom container: it tells the container which paths to answer.
    vertex_predict, vertex_health = os.environ.get("AIP_PREDICT_ROUTE"), os.environ.get("AIP_HEALTH_ROUTE")
    taken = {r.path for r in app.routes if hasattr(r, "path")}
    if vertex_predict and vertex_predict not in taken:
        app.add_api_route(vertex_predict, predict, methods=["POST"])
    if vertex_health and vertex_health not in taken:
        app.add_api_route(vertex_health, ready, methods=["GET"])
    return app

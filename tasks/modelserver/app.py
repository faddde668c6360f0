"""The HTTP app: KServe's own REST app (V1, V2, health, /metrics) plus the routing admin API.

kserve 0.21's ModelServer binds every interface, so the app is built the way ModelServer builds
it (a ModelRepository, a DataPlane, RESTServer.create_application) and served by the caller with
uvicorn on 127.0.0.1 (see infra/model_server_main.py).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from kserve import Model

from tasks.decisions.routing import Routing
from tasks.modelserver.model import RoutedModel, RoutingRefused, RoutingState

ADMIN_PREFIX = "/mlops/v1"


def build_kserve_app(model: Model) -> FastAPI:
    """KServe's REST app serving `model` (which must already be loaded or loadable)."""
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer

    repository = ModelRepository()
    repository.update(model)
    dataplane = DataPlane(model_registry=repository)
    # RESTServer's own uvicorn config (0.0.0.0) is never started: only its app is used.
    rest = RESTServer(
        "kserve.model_server:app",
        dataplane,
        ModelRepositoryExtension(model_registry=repository),
        http_port=0,
    )
    rest.create_application()
    from kserve.model_server import app  # the module-level app create_application filled in

    return app


def admin_router(model: RoutedModel, routing_writable: bool = True) -> APIRouter:
    """GET (and, unless pinned, PUT) the split, GET per-version stats, POST a log flush."""
    router = APIRouter(prefix=ADMIN_PREFIX, tags=["mlops"])

    @router.get("/routing", response_model=RoutingState)
    async def get_routing() -> RoutingState:
        return model.state()

    @router.put("/routing", response_model=RoutingState)
    async def put_routing(routing: Routing):
        if not routing_writable:  # a Kubernetes predictor: KServe splits, nobody re-routes it
            return JSONResponse(
                status_code=403,
                content={"error": "this predictor serves one pinned version; routing is "
                         "read-only (change the InferenceService instead)"},
            )  # fmt: skip
        # Loading and probing run off the event loop, so requests keep being served meanwhile.
        try:
            return await asyncio.to_thread(model.apply_routing, routing)
        except RoutingRefused as refused:
            return JSONResponse(
                status_code=409,
                content={
                    "error": f"routing change refused: {refused}",
                    "reasons": list(refused.reasons),
                    "routing": model.state().routing.model_dump(),
                },
            )

    @router.get("/stats")
    async def get_stats() -> dict[str, object]:
        return model.stats()

    @router.post("/logs/flush")
    async def flush_logs() -> dict[str, object]:
        if model.log_writer is None:
            return {"flushed": False, "reason": "request logging is off"}
        flushed = await asyncio.to_thread(model.log_writer.flush)
        return {"flushed": flushed, "last_error": model.log_writer.last_error}

    return router


MAX_REQUEST_ID = 128


def build_app(model: RoutedModel, routing_writable: bool = True) -> FastAPI:
    """The full app of the model server: KServe's endpoints plus /mlops/v1/*."""
    app = build_kserve_app(model)
    app.include_router(admin_router(model, routing_writable))
    limit_requests(app, model.options.max_body_bytes)
    return app


def limit_requests(app: FastAPI, max_body_bytes: int) -> None:
    """Refuse, before reading it, a body over the limit (413) or without a length (411), and a
    request id that would bloat the serving logs (400)."""

    @app.middleware("http")
    async def _limits(request: Request, call_next):
        if request.method in {"POST", "PUT"}:
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return _refuse(411, "send a Content-Length: bodies of unknown length are refused")
            if int(length) > max_body_bytes:
                return _refuse(
                    413, f"request body of {int(length):,} bytes is over the "
                    f"{max_body_bytes:,}-byte limit; send fewer instances per request",
                )  # fmt: skip
        request_id = request.headers.get("x-request-id")
        if request_id is not None and (
            len(request_id) > MAX_REQUEST_ID or not request_id.isprintable()
        ):
            return _refuse(
                400, f"x-request-id must be at most {MAX_REQUEST_ID} printable characters"
            )
        return await call_next(request)


def _refuse(status: int, error: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error})

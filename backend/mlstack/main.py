"""Builds one replica. Nothing happens at import: `uvicorn --factory mlstack.main:create_app` builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from mlstack import __version__, errors
from mlstack.api import admin, docs, ops, users, v1, v2
from mlstack.api.body import component_schemas
from mlstack.api.middleware import EdgeMiddleware
from mlstack.api.schemas.v1 import V1PredictRequest
from mlstack.api.schemas.v2 import InferenceRequest
from mlstack.server import tuning
from mlstack.serving.admission import InFlight
from mlstack.serving.core import Inference
from mlstack.serving.registry import Registry
from mlstack.serving.watcher import StoreWatcher
from mlstack.settings import Settings
from mlstack.store.model_store import ModelStore
from mlstack.telemetry.board import StatsBoard
from mlstack.telemetry.logs import configure_logging
from mlstack.telemetry.metrics import Metrics
from mlstack.users.store import UserStore

API_KEY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer"},
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.replica_name)
    metrics = Metrics(settings.replica_name)  # its own CollectorRegistry: apps in one process do not collide

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tuning.keep_freed_memory()
        app.state.settings = settings
        app.state.metrics = metrics
        store = ModelStore(settings.store_dir, settings.max_artifact_bytes)
        app.state.registry = Registry(store, settings, metrics)
        await app.state.registry.load_all()  # verifies every artifact before it unpickles it
        async with (
            UserStore.start(settings) as user_store,
            Inference.start(settings, app.state.registry, metrics, user_store) as inference,
            StatsBoard.start(settings, metrics) as board,
            StoreWatcher.start(settings, app.state.registry) as watcher,
        ):
            app.state.inference, app.state.stats, app.state.watcher = inference, board, watcher
            app.state.users = user_store
            yield

    app = FastAPI(
        title="mlstack",
        version=__version__,
        lifespan=lifespan,
        description="Versioned scikit-learn models behind KServe V1 and Open Inference Protocol (V2) routes.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        # FastAPI's OpenTelemetry hooks ask the global providers on every request; the replica's metrics
        # are its own Prometheus series (metrics.py), so they stay off
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    for router in (v1.router, v2.router, admin.router, ops.router, users.router):
        # The routes themselves, not include_router(): FastAPI matches an included router lazily, route
        # by route and twice per request, which cost 18 µs of a 100 µs request.
        app.router.routes.extend(router.routes)
    # Routes are tried in order, a regular expression each: the prediction routes, nearly every request,
    # come first. No two routes match the same method and path, so the order changes nothing else.
    app.router.routes.sort(key=lambda route: not _predicts(route))
    if settings.docs_enabled:
        docs.install(app)
        app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    token = settings.gateway_token.get_secret_value() if settings.gateway_token is not None else None
    in_flight = InFlight(settings.max_in_flight, settings.max_waiting, settings.max_wait_ms / 1000)
    app.add_middleware(EdgeMiddleware, metrics=metrics, token=token, in_flight=in_flight)
    return app


def _predicts(route: BaseRoute) -> bool:
    predicting = isinstance(route, APIRoute) and route.path.endswith((":predict", "/infer"))
    return predicting and "POST" in route.methods


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the nested body schemas and the gateway's two ways to send a key."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {}).update(component_schemas(V1PredictRequest, InferenceRequest))
        components["securitySchemes"] = API_KEY_SCHEMES
        schema["security"] = [{"ApiKey": []}, {"Bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema

"""Builds one replica: wiring only. Nothing happens at import; `mlstack serve` (server/launch.py) runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from mlstack import __version__, errors
from mlstack.api import admin, convertors, docs, drift, openapi, ops, profile, users, v1, v2
from mlstack.api.memory import AnswerMemory
from mlstack.api.middleware import EdgeMiddleware
from mlstack.cache.predictions import PredictionCache
from mlstack.drift.recorder import DriftRecorder
from mlstack.recommend.erasure import CachedRecommendations
from mlstack.serving.admission import InFlight
from mlstack.serving.core import Predictor
from mlstack.serving.registry import Registry
from mlstack.serving.runtimes import RuntimeFactory
from mlstack.serving.watcher import StoreWatcher
from mlstack.settings import Settings
from mlstack.store.model_store import ModelStore
from mlstack.store.signing import verifier_for
from mlstack.telemetry.board import StatsBoard
from mlstack.telemetry.logs import configure_logging
from mlstack.telemetry.metrics import Metrics
from mlstack.users.store import UserStore


def create_app(
    settings: Settings | None = None, on_version_loaded: Callable[[], None] | None = None
) -> FastAPI:
    """`on_version_loaded`: what the serving process does after each model version is loaded."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.replica_name)
    metrics = Metrics(settings.replica_name)  # its own CollectorRegistry: apps in one process do not collide

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        verifier = verifier_for(settings.signing_public_key)
        store = ModelStore(settings.store_dir, settings.max_artifact_bytes, verifier=verifier)
        cache = PredictionCache(
            settings, on_near_hits=metrics.near_cache_rows.inc, on_unwritten=metrics.cache_unwritten_rows.inc
        )
        async with UserStore.start(settings) as user_store, cache.running():
            runtimes = RuntimeFactory(settings, store, user_store)
            registry = Registry(store, runtimes, metrics, on_version_loaded or (lambda: None))
            await registry.load_all()  # verifies every artifact before it unpickles it
            async with (
                Predictor.start(settings, registry, cache, metrics) as predictor,
                StatsBoard.start(settings, metrics) as board,
                StoreWatcher.start(settings, registry) as watcher,
                DriftRecorder.start(settings, registry, metrics) as app.state.drift,
            ):
                app.state.settings, app.state.metrics, app.state.registry = settings, metrics, registry
                app.state.answers = AnswerMemory(predictor, cache, metrics)
                app.state.recommendations = CachedRecommendations(cache)
                app.state.users, app.state.stats, app.state.watcher = user_store, board, watcher
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
        # are its own Prometheus series (telemetry/metrics.py), so they stay off
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    convertors.register()  # the {model:model} and {version:version} path types, before any route is built
    for module in (v1, v2, admin, ops, users, profile, drift):
        # The routes themselves, not include_router(): FastAPI matches an included router lazily, route
        # by route and twice per request, which cost 18 µs of a 100 µs request.
        app.router.routes.extend(module.router().routes)
    # Routes are tried in order, a regular expression each: the prediction routes, nearly every request,
    # come first. No two routes match the same method and path, so the order changes nothing else.
    app.router.routes.sort(key=lambda route: not _predicts(route))
    if settings.docs_enabled:
        docs.install(app)
        document = partial(openapi.document, app, settings)
        app.openapi = document  # type: ignore[method-assign]  # FastAPI's documented hook for its document
    token = settings.gateway_token.get_secret_value() if settings.gateway_token is not None else None
    in_flight = InFlight(settings.max_in_flight, settings.max_waiting, settings.max_wait_ms / 1000)
    app.add_middleware(EdgeMiddleware, metrics=metrics, token=token, in_flight=in_flight)
    return app


def _predicts(route: BaseRoute) -> bool:
    if not isinstance(route, APIRoute):
        return False
    return route.path.endswith((":predict", "/infer")) and "POST" in (route.methods or ())

"""Operations routes: Prometheus metrics and per-replica statistics for the UI's monitor (admin scope)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from mlstack.api.body import json_response
from mlstack.api.lean_route import LeanRoute
from mlstack.api.schemas.stats import Stats


async def metrics(request: Request) -> Response:
    """This replica's Prometheus metrics (scrape each replica directly; the gateway balances)."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def stats(request: Request) -> Response:
    """Every live replica's figures for the last minute: requests, errors, latency percentiles, cache."""
    return json_response({"replicas": await request.app.state.stats.replicas()})


def router() -> APIRouter:
    """The routes of this module, built when an app is (the path types are registered then)."""
    router = APIRouter(tags=["operations"], route_class=LeanRoute)
    router.get("/metrics", include_in_schema=False)(metrics)
    router.get("/v1/stats", response_model=Stats)(stats)
    return router

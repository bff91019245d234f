"""Admin routes of the model lifecycle: promote, roll back, canary, delete a version. No route trains."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from mlstack.api.body import json_response
from mlstack.api.deps import RegistryDep
from mlstack.api.lean_route import LeanRoute
from mlstack.api.schemas.errors import error_responses
from mlstack.serving.lifecycle import Lifecycle
from mlstack.serving.registry import Registry


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: str = Field(pattern=r"^[1-9][0-9]{0,8}$")
    force: bool = False
    """Promote even when the version's held-out metric is worse than the current one's."""


class CanaryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(pattern=r"^[1-9][0-9]{0,8}$")
    percent: float = Field(gt=0, le=100, allow_inf_nan=False)
    """Share of unpinned predictions the canary answers."""


class CanaryShare(BaseModel):
    version: str
    percent: float


class Serving(BaseModel):
    """What a model's unpinned predictions are answered with after the change."""

    model: str
    version: str | None
    canary: CanaryShare | None


class ServingChange(Serving):
    previous_version: str | None
    """The version that was current before."""


async def _changed(request: Request, registry: Registry, model: str) -> None:
    """Apply here at once, then tell the other replicas (they also poll the store)."""
    await registry.sync()
    await request.app.state.watcher.announce(model)


def _serving(registry: Registry, model: str) -> dict[str, object]:
    canary = registry.canaries.get(model)
    return {
        "model": model,
        "version": registry.current.get(model),
        "canary": {"version": canary.version, "percent": canary.percent} if canary else None,
    }


async def promote(model: str, body: PromoteRequest, request: Request, registry: RegistryDep) -> Response:
    """Admin: make a verified version current (409 if it fails verification or its metric is worse)."""
    previous = await asyncio.to_thread(Lifecycle(registry.store).promote, model, body.version, body.force)
    await _changed(request, registry, model)
    return json_response({**_serving(registry, model), "previous_version": previous})


async def rollback(model: str, request: Request, registry: RegistryDep) -> Response:
    """Admin: go back to the version that was current before (409 when there is none)."""
    previous, _ = await asyncio.to_thread(Lifecycle(registry.store).rollback, model)
    await _changed(request, registry, model)
    return json_response({**_serving(registry, model), "previous_version": previous})


async def set_canary(model: str, body: CanaryRequest, request: Request, registry: RegistryDep) -> Response:
    """Admin: send `percent` of unpinned predictions to `version`; X-Model-Version tells which answered."""
    await asyncio.to_thread(Lifecycle(registry.store).set_canary, model, body.version, body.percent)
    await _changed(request, registry, model)
    return json_response(_serving(registry, model))


async def stop_canary(model: str, request: Request, registry: RegistryDep) -> Response:
    """Admin: all traffic back to the current version."""
    await asyncio.to_thread(Lifecycle(registry.store).clear_canary, model)
    await _changed(request, registry, model)
    return Response(status_code=204)


async def delete_version(model: str, version: str, registry: RegistryDep) -> Response:
    """Admin: remove a version that is neither current nor canary (409 otherwise)."""
    await asyncio.to_thread(Lifecycle(registry.store).delete, model, version)
    registry.forget(model, version)
    return Response(status_code=204)


def router() -> APIRouter:
    """The routes of this module, built when an app is (the path types are registered then)."""
    router = APIRouter(tags=["admin"], route_class=LeanRoute)
    model = "/v1/models/{model:model}"
    body_errors = (400, 404, 409, 422)  # 400: not JSON (FastAPI reads these bodies)
    router.put(f"{model}/current", response_model=ServingChange, responses=error_responses(*body_errors))(
        promote
    )
    router.post(f"{model}:rollback", response_model=ServingChange, responses=error_responses(404, 409))(
        rollback
    )
    router.put(f"{model}/canary", response_model=Serving, responses=error_responses(*body_errors))(set_canary)
    router.delete(f"{model}/canary", status_code=204, responses=error_responses(404))(stop_canary)
    version = f"{model}/versions/{{version:version}}"
    router.delete(version, status_code=204, responses=error_responses(404, 409))(delete_version)
    return router

"""The training data's profile of a model version: `GET /v1/models/{m}[/versions/{v}]/profile`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response

from mlstack.api.deps import RegistryDep
from mlstack.api.lean_route import LeanRoute
from mlstack.api.schemas.errors import error_responses
from mlstack.errors import NotFound
from mlstack.profile.schema import Profile
from mlstack.store.model_store import ModelStore


def profile_doc(*errors: int) -> dict[str, Any]:
    responses = error_responses(*errors)
    responses[404]["description"] = "unknown model or version, or a version without a profile"
    return {"response_model": Profile, "responses": responses}


async def current_profile(model: str, registry: RegistryDep) -> Response:
    """The profile of the data that the version this replica serves was trained on."""
    loaded = await registry.get(model)
    return await _profile(registry.store, model, loaded.version)


async def version_profile(model: str, version: str, registry: RegistryDep) -> Response:
    """One version's training-data profile, read from the store (the version need not be loaded)."""
    return await _profile(registry.store, model, version)


async def _profile(store: ModelStore, model: str, version: str) -> Response:
    # file reads and a sha256 over the bytes: off the event loop
    profile = await asyncio.to_thread(store.profile, model, version)
    if profile is None:
        raise NotFound(
            f"model '{model}' version '{version}' has no profile (recommenders have none, "
            "nor versions published before profiles existed)"
        )
    return Response(
        profile.model_dump_json(), media_type="application/json", headers={"X-Model-Version": version}
    )


def router() -> APIRouter:
    """The routes of this module, built when an app is (the path types are registered then)."""
    router = APIRouter(tags=["v1"], route_class=LeanRoute)
    router.get("/v1/models/{model:model}/profile", **profile_doc(404, 409, 503))(current_profile)
    pinned = "/v1/models/{model:model}/versions/{version:version}/profile"
    router.get(pinned, **profile_doc(404, 409))(version_profile)
    return router

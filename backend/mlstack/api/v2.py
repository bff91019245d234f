"""Open Inference Protocol (V2) routes: server and model metadata, readiness, and `infer`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from mlstack import __version__
from mlstack.api.answer import PREDICT_ERRORS, predict_doc
from mlstack.api.body import json_bytes, json_response
from mlstack.api.deps import AnswersDep, RegistryDep
from mlstack.api.lean_route import LeanRoute
from mlstack.api.memory import AnswerMemory
from mlstack.api.schemas.errors import error_responses
from mlstack.api.schemas.v2 import (
    InferenceRequest,
    InferenceResponse,
    Live,
    ModelMetadata,
    ModelReady,
    Ready,
    ServerMetadata,
)
from mlstack.api.v2_codec import V2, model_metadata
from mlstack.errors import ModelNotReady
from mlstack.serving.registry import Registry


async def server_metadata() -> Response:
    """Server name, version and protocol extensions (none)."""
    return json_response({"name": "mlstack", "version": __version__, "extensions": []})


async def live() -> Response:
    """The process answers."""
    return json_response({"live": True})


async def ready(registry: RegistryDep) -> Response:
    """Ready once at least one model version is verified and loaded; 503 before."""
    if not registry.ready:
        raise ModelNotReady("no model is loaded yet")
    return json_response({"ready": True})


# One handler per route, current and pinned: a `version: str | None` shared by both became a stray
# `?version=` query parameter on the unpinned route, and kept it from LeanRoute's direct call.
async def metadata(model: str, registry: RegistryDep) -> Response:
    """Inputs (one tensor per feature, shape [-1]) and outputs (predictions, probabilities [-1, C])."""
    return await _metadata(registry, model, None)


async def version_metadata(model: str, version: str, registry: RegistryDep) -> Response:
    """The metadata of a pinned version."""
    return await _metadata(registry, model, version)


async def _metadata(registry: Registry, model: str, version: str | None) -> Response:
    loaded = await registry.get(model, version)
    return json_response(model_metadata(loaded, registry.store.versions(model)))


async def model_ready(model: str, registry: RegistryDep) -> Response:
    """200 when the model is loaded and verified; 404 unknown; 503 not loaded."""
    return await _ready(registry, model, None)


async def version_ready(model: str, version: str, registry: RegistryDep) -> Response:
    """200 when the version is loaded and verified; 404 unknown; 503 not loaded."""
    return await _ready(registry, model, version)


async def _ready(registry: Registry, model: str, version: str | None) -> Response:
    loaded = await registry.get(model, version)
    return json_response({"name": model, "version": loaded.version, "ready": True})


async def infer(model: str, request: Request, answers: AnswersDep) -> Response:
    """V2 inference on a table: one input tensor per feature; the request `id` is echoed."""
    return await _infer(answers, request, model, None)


async def infer_version(model: str, version: str, request: Request, answers: AnswersDep) -> Response:
    """V2 inference with a pinned version, whatever is current."""
    return await _infer(answers, request, model, version)


async def _infer(answers: AnswerMemory, request: Request, model: str, version: str | None) -> Response:
    payload, headers = await answers.answer(V2, model, version, await json_bytes(request))
    return Response(payload, headers=headers, media_type="application/json")


def router() -> APIRouter:
    """The routes of this module, built when an app is (the path types are registered then)."""
    router = APIRouter(tags=["v2"], route_class=LeanRoute)
    model, pinned = "/v2/models/{model:model}", "/v2/models/{model:model}/versions/{version:version}"
    router.get("/v2", response_model=ServerMetadata)(server_metadata)
    router.get("/v2/health/live", response_model=Live)(live)
    router.get("/v2/health/ready", response_model=Ready, responses=error_responses(503))(ready)
    router.get(model, response_model=ModelMetadata, responses=error_responses(404, 503))(metadata)
    router.get(pinned, response_model=ModelMetadata, responses=error_responses(404, 409, 503))(
        version_metadata
    )
    router.get(f"{model}/ready", response_model=ModelReady, responses=error_responses(404, 503))(model_ready)
    router.get(f"{pinned}/ready", response_model=ModelReady, responses=error_responses(404, 409, 503))(
        version_ready
    )
    v2_doc = (InferenceResponse, InferenceRequest, *PREDICT_ERRORS)
    router.post(f"{model}/infer", **predict_doc(*v2_doc))(infer)
    router.post(f"{pinned}/infer", **predict_doc(*v2_doc, 409))(infer_version)
    return router

"""Open Inference Protocol (V2) routes: server and model metadata, readiness, and `infer`."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from mlstack import __version__
from mlstack.api import convertors  # noqa: F401  (registers the {model:model} and {version:version} path types)
from mlstack.api.body import documented_body, json_bytes, json_response, parse_object
from mlstack.api.deps import InferenceDep, RegistryDep
from mlstack.api.lean_route import LeanRoute
from mlstack.api.schemas.v2 import InferenceRequest, InferenceResponse, ModelMetadata, ServerMetadata
from mlstack.api.v2_codec import decode_columns, encode_response, model_metadata, parse_request
from mlstack.errors import ModelNotReady
from mlstack.serving.core import Inference, Result
from mlstack.serving.registry import Loaded, Registry

router = APIRouter(tags=["v2"], route_class=LeanRoute)
INFER_DOC: dict[str, Any] = {
    "responses": {200: {"model": InferenceResponse}},
    "openapi_extra": documented_body(InferenceRequest),
}


@router.get("/v2", response_model=ServerMetadata)
async def server_metadata() -> Response:
    """Server name, version and protocol extensions (none)."""
    return json_response({"name": "mlstack", "version": __version__, "extensions": []})


@router.get("/v2/health/live")
async def live() -> Response:
    """The process answers."""
    return json_response({"live": True})


@router.get("/v2/health/ready")
async def ready(registry: RegistryDep) -> Response:
    """Ready once at least one model version is verified and loaded; 503 before."""
    if not registry.ready:
        raise ModelNotReady("no model is loaded yet")
    return json_response({"ready": True})


# One handler per route, current and pinned: a `version: str | None` shared by both became a stray
# `?version=` query parameter on the unpinned route, and kept it from LeanRoute's direct call.
@router.get("/v2/models/{model:model}", response_model=ModelMetadata)
async def metadata(model: str, registry: RegistryDep) -> Response:
    """Inputs (one tensor per feature, shape [-1]) and outputs (predictions, probabilities [-1, C])."""
    return await _metadata(registry, model, None)


@router.get("/v2/models/{model:model}/versions/{version:version}", response_model=ModelMetadata)
async def version_metadata(model: str, version: str, registry: RegistryDep) -> Response:
    """The metadata of a pinned version."""
    return await _metadata(registry, model, version)


async def _metadata(registry: Registry, model: str, version: str | None) -> Response:
    loaded = await registry.get(model, version)
    return json_response(model_metadata(loaded, registry.store.versions(model)))


@router.get("/v2/models/{model:model}/ready")
async def model_ready(model: str, registry: RegistryDep) -> Response:
    """200 when the model is loaded and verified; 404 unknown; 503 not loaded."""
    return await _ready(registry, model, None)


@router.get("/v2/models/{model:model}/versions/{version:version}/ready")
async def version_ready(model: str, version: str, registry: RegistryDep) -> Response:
    """200 when the version is loaded and verified; 404 unknown; 503 not loaded."""
    return await _ready(registry, model, version)


async def _ready(registry: Registry, model: str, version: str | None) -> Response:
    loaded = await registry.get(model, version)
    return json_response({"name": model, "version": loaded.version, "ready": True})


@router.post("/v2/models/{model:model}/infer", **INFER_DOC)
async def infer(model: str, request: Request, inference: InferenceDep) -> Response:
    """V2 inference on a table: one input tensor per feature; the request `id` is echoed."""
    return await _infer(inference, request, model, None)


@router.post("/v2/models/{model:model}/versions/{version:version}/infer", **INFER_DOC)
async def infer_version(model: str, version: str, request: Request, inference: InferenceDep) -> Response:
    """V2 inference with a pinned version, whatever is current."""
    return await _infer(inference, request, model, version)


async def _infer(inference: Inference, request: Request, model: str, version: str | None) -> Response:
    payload, headers = await inference.answer_body(model, version, await json_bytes(request), V2)
    return Response(payload, headers=headers, media_type="application/json")


class V2Edge:
    """The Open Inference Protocol for Inference.answer_body: one tensor per feature in, the request's
    `id` echoed out."""

    name = "v2"

    def parse(self, raw: bytes) -> InferenceRequest:
        return parse_request(parse_object(raw))

    async def predict(self, inference: Inference, loaded: Loaded, request: InferenceRequest) -> Result:
        columns, count = decode_columns(request, loaded.manifest.inputs)  # the answering version's schema
        return await inference.predict_columns(loaded, columns, count)

    def render(self, result: Result, request: InferenceRequest) -> bytes:
        return orjson.dumps(encode_response(result, request))


V2 = V2Edge()

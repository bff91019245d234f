"""KServe V1 routes: model listing and manifests, `:predict` (current or pinned version), `:reload`."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from mlstack.api import convertors  # noqa: F401  (registers the {model:model} and {version:version} path types)
from mlstack.api.body import documented_body, json_bytes, json_response, parse_object
from mlstack.api.deps import InferenceDep, RegistryDep
from mlstack.api.lean_route import LeanRoute
from mlstack.api.schemas.v1 import ModelList, ModelSummary, ReloadResult, V1PredictRequest, V1PredictResponse
from mlstack.errors import MalformedRequest, ServingError
from mlstack.serving.core import Inference, Result
from mlstack.serving.registry import Loaded, Registry

router = APIRouter(tags=["v1"], route_class=LeanRoute)
PREDICT_DOC: dict[str, Any] = {
    "responses": {200: {"model": V1PredictResponse}},
    "openapi_extra": documented_body(V1PredictRequest),
}


@router.get("/v1/models", response_model=ModelList)
async def list_models(registry: RegistryDep) -> Response:
    """Every model in the store with its versions, the current one, and what this replica has loaded."""
    return json_response(
        {"models": [_summary(registry, name).model_dump() for name in registry.store.models()]}
    )


@router.get("/v1/models/{model:model}")
async def get_model(model: str, registry: RegistryDep) -> Response:
    """The manifest of the version this replica serves, and `engine`: its runtime (onnx or joblib)."""
    loaded = await registry.get(model)
    return json_response({**loaded.manifest.public(), "engine": loaded.runtime.engine})


@router.get("/v1/models/{model:model}/versions/{version:version}")
async def get_version(model: str, version: str, registry: RegistryDep) -> Response:
    """One version's manifest, read from the store (the version need not be loaded)."""
    return json_response(registry.store.manifest(model, version).public())


@router.post("/v1/models/{model:model}:predict", **PREDICT_DOC)
async def predict(model: str, request: Request, inference: InferenceDep) -> Response:
    """Predict with the current version: `{"instances": [{feature: value, ...}, ...]}`."""
    payload, headers = await inference.answer_body(model, None, await json_bytes(request), V1)
    return Response(payload, headers=headers, media_type="application/json")


@router.post("/v1/models/{model:model}/versions/{version:version}:predict", **PREDICT_DOC)
async def predict_version(model: str, version: str, request: Request, inference: InferenceDep) -> Response:
    """Predict with a pinned version, whatever is current."""
    payload, headers = await inference.answer_body(model, version, await json_bytes(request), V1)
    return Response(payload, headers=headers, media_type="application/json")


@router.post("/v1/models/{model:model}:reload", response_model=ReloadResult)
async def reload(model: str, request: Request, registry: RegistryDep) -> Response:
    """Admin: load the store's CURRENT version beside the old, verify it, switch. A failure keeps the old."""
    previous, version = await registry.reload(model)
    await request.app.state.watcher.announce(model)  # and every other replica
    return json_response({"model": model, "previous_version": previous, "version": version})


class V1Edge:
    """KServe V1 for Inference.answer_body: `{"instances": [...]}` in, v1_payload out."""

    name = "v1"

    def parse(self, raw: bytes) -> Any:
        body = parse_object(raw)
        if "instances" not in body:
            raise MalformedRequest("instances: required")
        extra = sorted(set(body) - {"instances"})
        if extra:
            raise MalformedRequest(f"{extra[0][:64]}: unknown top-level field (only 'instances' is allowed)")
        return body["instances"]

    async def predict(self, inference: Inference, loaded: Loaded, instances: Any) -> Result:
        return await inference.predict_instances(loaded, instances)

    def render(self, result: Result, instances: Any) -> bytes:
        return orjson.dumps(v1_payload(result))


V1 = V1Edge()


def v1_payload(result: Result) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model_name": result.model,
        "model_version": result.version,
        "predictions": result.labels,
    }
    if result.probabilities is not None and result.classes is not None:
        names = [str(c) for c in result.classes]
        payload["probabilities"] = [dict(zip(names, row, strict=True)) for row in result.probabilities]
    payload.update(result.extra or {})
    return payload


def _summary(registry: Registry, name: str) -> ModelSummary:
    versions = registry.store.versions(name)
    current = registry.store.current(name)
    task = None
    if current is not None:
        with suppress(ServingError):  # a broken manifest must not hide the rest of the list
            task = registry.store.manifest(name, current).task
    return ModelSummary(
        name=name,
        task=task,
        versions=versions,
        current=current,
        serving=registry.current.get(name),
        loaded=registry.loaded_versions(name),
        error=registry.failures.get(name),
    )

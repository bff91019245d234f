"""KServe V1 routes: model listing and manifests, `:predict` and `:explain` (current or pinned version),
`:reload`."""

from __future__ import annotations

from contextlib import suppress

from fastapi import APIRouter, Request, Response

from mlstack.api.answer import PREDICT_ERRORS, predict_doc
from mlstack.api.body import json_bytes, json_response
from mlstack.api.deps import AnswersDep, RegistryDep
from mlstack.api.lean_route import LeanRoute
from mlstack.api.schemas.errors import error_responses
from mlstack.api.schemas.explain import V1ExplainRequest, V1ExplainResponse
from mlstack.api.schemas.v1 import (
    ModelList,
    ModelSummary,
    ReloadResult,
    ServedManifest,
    V1PredictRequest,
    V1PredictResponse,
)
from mlstack.api.v1_codec import V1, V1_EXPLAIN
from mlstack.errors import ServingError
from mlstack.serving.registry import Registry
from mlstack.store.manifest import Manifest


async def list_models(registry: RegistryDep) -> Response:
    """Every model in the store with its versions, the current one, and what this replica has loaded."""
    return json_response(
        {"models": [_summary(registry, name).model_dump() for name in registry.store.models()]}
    )


async def get_model(model: str, registry: RegistryDep) -> Response:
    """The manifest of the version this replica serves, and `engine`: its runtime (onnx or joblib)."""
    loaded = await registry.get(model)
    return json_response({**loaded.manifest.public(), "engine": loaded.runtime.engine})


async def get_version(model: str, version: str, registry: RegistryDep) -> Response:
    """One version's manifest, read from the store (the version need not be loaded)."""
    return json_response(registry.store.manifest(model, version).public())


async def predict(model: str, request: Request, answers: AnswersDep) -> Response:
    """Predict with the current version: `{"instances": [{feature: value, ...}, ...]}`."""
    payload, headers = await answers.answer(V1, model, None, await json_bytes(request))
    return Response(payload, headers=headers, media_type="application/json")


async def predict_version(model: str, version: str, request: Request, answers: AnswersDep) -> Response:
    """Predict with a pinned version, whatever is current."""
    payload, headers = await answers.answer(V1, model, version, await json_bytes(request))
    return Response(payload, headers=headers, media_type="application/json")


async def explain(model: str, request: Request, answers: AnswersDep) -> Response:
    """Explain the current version's predictions: the predict body in, the predict answer out with
    `explanations`, one per instance (a table model's contributions per input feature, which add up to
    its output with the base value; a recommender's history items behind each recommended item)."""
    payload, headers = await answers.answer(V1_EXPLAIN, model, None, await json_bytes(request))
    return Response(payload, headers=headers, media_type="application/json")


async def explain_version(model: str, version: str, request: Request, answers: AnswersDep) -> Response:
    """Explain a pinned version's predictions, whatever is current."""
    payload, headers = await answers.answer(V1_EXPLAIN, model, version, await json_bytes(request))
    return Response(payload, headers=headers, media_type="application/json")


async def reload(model: str, request: Request, registry: RegistryDep) -> Response:
    """Admin: load the store's CURRENT version beside the old, verify it, switch. A failure keeps the old."""
    previous, version = await registry.reload(model)
    await request.app.state.watcher.announce(model)  # and every other replica
    return json_response({"model": model, "previous_version": previous, "version": version})


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


def router() -> APIRouter:
    """The routes of this module, built when an app is (the path types are registered then)."""
    router = APIRouter(tags=["v1"], route_class=LeanRoute)
    pinned = "/v1/models/{model:model}/versions/{version:version}"
    router.get("/v1/models", response_model=ModelList)(list_models)
    router.get(
        "/v1/models/{model:model}", response_model=ServedManifest, responses=error_responses(404, 503)
    )(get_model)
    router.get(pinned, response_model=Manifest, responses=error_responses(404, 409))(get_version)
    v1_doc = (V1PredictResponse, V1PredictRequest, *PREDICT_ERRORS)
    router.post("/v1/models/{model:model}:predict", **predict_doc(*v1_doc))(predict)
    router.post(f"{pinned}:predict", **predict_doc(*v1_doc, 409))(predict_version)
    explain_doc = predict_doc(V1ExplainResponse, V1ExplainRequest, *PREDICT_ERRORS, 409)  # 409: no explainer
    router.post("/v1/models/{model:model}:explain", **explain_doc)(explain)
    router.post(f"{pinned}:explain", **explain_doc)(explain_version)
    router.post(
        "/v1/models/{model:model}:reload",
        response_model=ReloadResult,
        responses=error_responses(404, 409, 503),
    )(reload)
    return router

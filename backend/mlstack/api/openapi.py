"""The OpenAPI document: FastAPI's, plus what it cannot learn from handlers that read their own bodies.

- the schemas nested in those bodies (documented_body refers to them), with this replica's limits;
- the pattern of every path parameter, as the path types and the handlers check it;
- the gateway's two ways to send a key, and its own answers on every route behind one;
- the health routes, which need no key;
- no FastAPI validation error shape: every error is {"error": ...} (errors.py), and a route documents
  its 422 only where it gives one.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from mlstack.api.body import REF_TEMPLATE, component_schemas
from mlstack.api.middleware import UNGUARDED_PATHS
from mlstack.api.schemas.errors import ErrorResponse, error_responses
from mlstack.api.schemas.explain import V1ExplainRequest
from mlstack.api.schemas.users import NewEvents, NewUser, ProfileChange
from mlstack.api.schemas.v1 import V1PredictRequest
from mlstack.api.schemas.v2 import InferenceRequest
from mlstack.settings import Settings
from mlstack.store.manifest import MODEL_NAME, VERSION_NAME
from mlstack.users.store import USER_ID

BODIES: tuple[type[BaseModel], ...] = (
    V1PredictRequest,
    V1ExplainRequest,
    InferenceRequest,
    NewUser,
    ProfileChange,
    NewEvents,
)
"""Every model given to documented_body: their nested schemas go to the components."""
PATH_PATTERNS = {"model": MODEL_NAME.pattern, "version": VERSION_NAME.pattern, "user_id": USER_ID.pattern}
API_KEY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer"},
}
GATEWAY_ERRORS = (401, 403, 429)
"""What the gateway answers itself on any route behind a key; 413 as well where a body is sent."""
FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
"""The shape FastAPI documents for a 422 it would render itself; errors.py renders every error."""
LIMIT_KEY = "x-max-items-setting"
"""A list's schema names the setting that bounds it; the document says this replica's figure."""


def document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(component_schemas(*BODIES))
        schemas["ErrorResponse"] = ErrorResponse.model_json_schema(ref_template=REF_TEMPLATE)
        schema["components"]["securitySchemes"] = API_KEY_SCHEMES
        schema["security"] = [{"ApiKey": []}, {"Bearer": []}]
        for name in FASTAPI_ERRORS:
            schemas.pop(name, None)
        for path, item in schema["paths"].items():
            for operation in item.values():
                _drop_fastapi_errors(operation)
                _constrain_path(operation)
                if path in UNGUARDED_PATHS:
                    operation["security"] = []
                else:
                    _add_gateway_errors(operation)
        app.openapi_schema = _with_limits(schema, settings)
    return app.openapi_schema


def _drop_fastapi_errors(operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    for status, response in list(responses.items()):
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        if schema.get("$ref", "").rsplit("/", 1)[-1] in FASTAPI_ERRORS:
            del responses[status]


def _constrain_path(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        pattern = PATH_PATTERNS.get(parameter["name"])
        if parameter["in"] == "path" and pattern is not None:
            parameter["schema"]["pattern"] = pattern


def _add_gateway_errors(operation: dict[str, Any]) -> None:
    statuses = (*GATEWAY_ERRORS, 413) if "requestBody" in operation else GATEWAY_ERRORS
    responses = operation["responses"]
    for status, response in error_responses(*statuses).items():
        if str(status) not in responses:
            del response["model"]
            ref = {"$ref": REF_TEMPLATE.format(model=ErrorResponse.__name__)}
            responses[str(status)] = {**response, "content": {"application/json": {"schema": ref}}}


def _with_limits(node: Any, settings: Settings) -> Any:
    """The document with each LIMIT_KEY replaced by maxItems, the setting's value."""
    if isinstance(node, list):
        return [_with_limits(item, settings) for item in node]
    if not isinstance(node, dict):
        return node
    limited = {key: _with_limits(value, settings) for key, value in node.items() if key != LIMIT_KEY}
    if isinstance(node.get(LIMIT_KEY), str):
        limited["maxItems"] = getattr(settings, node[LIMIT_KEY])
    return limited

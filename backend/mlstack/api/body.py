"""Request bodies as every protocol edge reads them: content type checked, strict JSON, an object on top."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request, Response
from pydantic import BaseModel

from mlstack.errors import MalformedRequest, UnsupportedMediaType
from mlstack.telemetry.logs import header

JSON_TYPES = ("application/json", "")  # no Content-Type at all is taken as JSON: tritonclient sends none
UNSUPPORTED_HEADERS = frozenset({b"content-encoding", b"inference-header-content-length"})


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a dict. orjson refuses NaN, Infinity and numbers that overflow a double, so none get in."""
    return parse_object(await json_bytes(request))


async def json_bytes(request: Request) -> bytes:
    """The body as sent, once its headers say it is plain JSON (parse_object reads it)."""
    scope = request.scope
    media_type = header(scope, b"content-type").decode("latin-1").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise UnsupportedMediaType(f"Content-Type must be application/json, not '{media_type[:60]}'")
    if any(name in UNSUPPORTED_HEADERS for name, _ in scope["headers"]):
        raise UnsupportedMediaType(
            "compressed bodies and binary tensor data are not supported; send plain JSON"
        )
    return await request.body()


def parse_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedRequest("body must be a JSON object")
    return body


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """orjson straight to bytes: the response models document the shape, they do not re-validate it."""
    return Response(
        orjson.dumps(payload), status_code=status_code, headers=headers, media_type="application/json"
    )


REF_TEMPLATE = "#/components/schemas/{model}"


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI `requestBody` for a handler that parses its body itself; nested models go to components."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """The nested models that `documented_body` refers to, for the OpenAPI document's components."""
    found: dict[str, Any] = {}
    for model in models:
        found.update(model.model_json_schema(ref_template=REF_TEMPLATE).get("$defs", {}))
    return found

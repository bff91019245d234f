"""What a protocol edge gives back for a prediction: the payload, its headers, and the core's result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from mlstack.api.body import documented_body
from mlstack.api.schemas.errors import error_responses
from mlstack.serving.core import Predictor
from mlstack.serving.requests import Result


@dataclass(frozen=True, slots=True)
class Answer:
    payload: bytes
    headers: dict[str, str]
    result: Result


class Edge(Protocol):
    """One protocol's prediction: its bytes in, the core's result out as its bytes."""

    name: str

    async def answer(self, predictor: Predictor, model: str, version: str | None, body: bytes) -> Answer:
        """Decode (a 4xx before the model is looked up when the body is bad), predict, encode."""


def headers_of(result: Result) -> dict[str, str]:
    """The contract's headers of a prediction: which version answered and what the cache did."""
    headers = {"X-Model-Version": result.version, "X-Cache": result.cache}
    if result.degraded is not None:
        headers["X-Degraded"] = result.degraded
    return headers


PREDICTION_HEADERS = {
    "X-Model-Version": {
        "description": "The version that answered",
        "required": True,
        "schema": {"type": "string"},
    },
    "X-Cache": {
        "description": "What the cache did for the rows",
        "required": True,
        "schema": {"enum": ["HIT", "MISS", "PARTIAL", "BYPASS"]},
    },
    "X-Degraded": {
        "description": "Why the answer is not the usual one (user data unreachable)",
        "schema": {"type": "string"},
    },
}
PREDICT_ERRORS = (400, 404, 413, 415, 422, 503)


def predict_doc(response: type[BaseModel], request: type[BaseModel], *errors: int) -> dict[str, Any]:
    """A prediction route's OpenAPI: its answers, with the headers above, and the body it reads itself."""
    return {
        "responses": {200: {"model": response, "headers": PREDICTION_HEADERS}, **error_responses(*errors)},
        "openapi_extra": documented_body(request),
    }

"""The one error shape, `{"error": ...}`, and what each error status means, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorResponse(BaseModel):
    """Every error of a replica and of the gateway (docs/CONTRACT.md, Errors)."""

    error: str
    """What went wrong, naming the offending field or the cause."""


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds after which trying again makes sense",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}

MEANINGS = {
    400: "Malformed: not JSON, not an object, a missing or unknown top-level field",
    401: "No API key, or one the gateway does not know (at a replica: not sent through the gateway)",
    403: "The key's scope does not allow this route",
    404: "Unknown model, version or user",
    409: "The store's state forbids it (the version fails verification, is current or canary, ...)",
    413: "Too many rows or events, or a body over the gateway's limit",
    415: "The body is not application/json",
    422: "The body or a path parameter breaks its schema; the message names the field",
    429: "The key is over its rate limit",
    503: "No verified model version loaded, the user-data store unreachable, or past the load it accepts",
}
"""What each status means on any route that documents it."""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses` for these error statuses: the error shape, the meaning, Retry-After on 429
    and 503."""
    return {
        status: {
            "model": ErrorResponse,
            "description": MEANINGS[status],
            **({"headers": RETRY_AFTER} if status in (429, 503) else {}),
        }
        for status in statuses
    }

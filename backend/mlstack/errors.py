"""
Every error a client can cause, the status it maps to, and the one place that renders them.

* ServingError            500  base; never raised itself
  + MalformedRequest      400  not JSON, wrong top-level shape, empty `instances`
  + Unauthorized          401  missing or wrong internal gateway token (replica side)
  + NotFound              404  unknown route
    + ModelNotFound       404  unknown model or version
  + UnsupportedMediaType  415  body is not application/json
  + BadInput              422  breaks the input schema; names the row and the field
  + TooManyRows           413  more instances than the batch limit
  + Conflict              409  the store's state forbids it (delete the current version, promote a worse one)
  + ArtifactRejected      409  a version failed verification; whatever was loaded keeps serving
  + NotExplainable        409  the version cannot be explained (published before explanations, or its model)
  + ModelNotReady         503  known, but no verified version is loaded
  + DriftUnavailable      503  live drift counts cannot be read (no cache Redis set, or it does not answer)
  + UserDataUnavailable   503  the user data store is not configured or does not answer
  + Overloaded            503  the replica is past the load it accepts (serving/admission.py)

Every error answers {"error": "<message>"} with Content-Type application/json, the shape of the Open
Inference Protocol and of the gateway's own errors.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

log = logging.getLogger("mlstack.errors")


class ServingError(Exception):
    status_code: ClassVar[int] = 500
    retry_after_s: ClassVar[int | None] = None
    """Sent as Retry-After: a 503 says when trying again makes sense."""

    @property
    def message(self) -> str:
        return str(self)


class MalformedRequest(ServingError):
    status_code = 400


class Unauthorized(ServingError):
    status_code = 401


class NotFound(ServingError):
    status_code = 404


class ModelNotFound(NotFound):
    def __init__(self, model: str, version: str | None = None) -> None:
        if version is None:
            super().__init__(f"model '{_clip(model)}' not found")
        else:
            super().__init__(f"model '{_clip(model)}' has no version '{_clip(version)}'")


class UnsupportedMediaType(ServingError):
    status_code = 415


class BadInput(ServingError):
    status_code = 422

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        """The row and field, e.g. `instances[3].contract`: live drift counts refusals per feature."""


class TooManyRows(ServingError):
    status_code = 413


class Conflict(ServingError):
    status_code = 409


class ArtifactRejected(ServingError):
    status_code = 409

    def __init__(self, file: str, check: str, detail: str) -> None:
        super().__init__(f"{file}: {check} check failed: {detail}")
        self.file, self.check = file, check


class NotExplainable(ServingError):
    status_code = 409


class ModelNotReady(ServingError):
    status_code = 503
    retry_after_s = 2


class DriftUnavailable(ServingError):
    status_code = 503
    retry_after_s = 2


class UserDataUnavailable(ServingError):
    status_code = 503
    retry_after_s = 2


class Overloaded(ServingError):
    status_code = 503
    retry_after_s = 1


def _allowed_methods(request: Request) -> list[str]:
    """The methods of every route on the request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.PARTIAL and isinstance(route, Route):
            methods |= route.methods or set()
    return sorted(methods)


def _clip(text: str, limit: int = 80) -> str:
    """Echo a client's name back without letting it fill the message."""
    return text if len(text) <= limit else text[:limit] + "…"


def error_response(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


def install(app: FastAPI) -> None:
    """Render every error, ours and the framework's, as {"error": ...}."""

    @app.exception_handler(ServingError)
    async def _serving_error(_: Request, exc: ServingError) -> JSONResponse:
        retry = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
        return error_response(exc.status_code, exc.message, headers=retry)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "no such route", 405: "method not allowed"}
        message = messages.get(exc.status_code, str(exc.detail))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the methods of the first route on the path only
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return error_response(exc.status_code, message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo the input back: a NaN in it would make the error itself fail to encode.
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"] if p != "body")
        return error_response(422, f"{where or 'body'}: {error['msg']}")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; the request id is in the replica's log")

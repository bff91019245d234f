"""Live drift of a model version: `GET /v1/models/{m}/drift?window=15m[&version=3]`."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from mlstack.api.lean_route import LeanRoute
from mlstack.api.schemas.errors import error_responses
from mlstack.drift.recorder import DriftRecorder
from mlstack.drift.schema import DriftReport
from mlstack.errors import MalformedRequest
from mlstack.settings import Settings
from mlstack.store.manifest import VERSION_NAME

DURATION = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
PARAMETERS = ("window", "version")

RESPONSES = error_responses(400, 401, 403, 404, 429, 503)
RESPONSES[400]["description"] = "a bad query parameter, named in the error"
RESPONSES[404]["description"] = "unknown model or version, or a version without a profile"
RESPONSES[503]["description"] = "the live counts cannot be read (the cache Redis is unset or does not answer)"
DRIFT_DOC: dict[str, Any] = {"response_model": DriftReport, "responses": RESPONSES}


async def drift(
    model: str,
    request: Request,
    window: Annotated[
        str | None,
        # the pattern is documented, not enforced by FastAPI: a bad value is a 400 naming it, not a 422
        Query(
            description="how far back: a number and s, m, h or d (default BACKEND_DRIFT_WINDOW_S)",
            json_schema_extra={"pattern": DURATION.pattern},
        ),
    ] = None,
    version: Annotated[
        str | None,
        Query(
            description="a version number (default: the current version)",
            json_schema_extra={"pattern": VERSION_NAME.pattern},
        ),
    ] = None,
) -> Response:
    """The rows every replica served in the window against the version's training profile: per feature
    the distances, the missing, out-of-range, unseen and refused shares, and the features flagged."""
    settings: Settings = request.app.state.settings
    _only_known(request)
    window_s = _window_s(window, settings) if window is not None else settings.drift_window_s
    if version is not None and not VERSION_NAME.match(version):
        raise MalformedRequest(f"version: {version[:20]!r} is not a version number such as 3")
    recorder: DriftRecorder = request.app.state.drift
    report = await recorder.report(model, version, window_s)
    return Response(
        report.model_dump_json(), media_type="application/json", headers={"X-Model-Version": report.version}
    )


def _only_known(request: Request) -> None:
    for name in request.query_params:
        if name not in PARAMETERS:
            raise MalformedRequest(
                f"{name[:40]}: unknown query parameter (this route takes window and version)"
            )
        if len(request.query_params.getlist(name)) > 1:
            raise MalformedRequest(f"{name}: given more than once")


def _window_s(window: str, settings: Settings) -> int:
    found = DURATION.match(window)
    if found is None:
        raise MalformedRequest(f"window: {window[:20]!r} is not a duration such as 90s, 15m, 2h or 1d")
    seconds = int(found[1]) * SECONDS[found[2]]
    if seconds > settings.drift_retention_s:
        raise MalformedRequest(
            f"window: {window} is longer than the {settings.drift_retention_s} s the counts are kept "
            "(BACKEND_DRIFT_RETENTION_S)"
        )
    return seconds


def router() -> APIRouter:
    """The routes of this module, built when an app is (the path types are registered then)."""
    router = APIRouter(tags=["v1"], route_class=LeanRoute)
    router.get("/v1/models/{model:model}/drift", **DRIFT_DOC)(drift)
    return router

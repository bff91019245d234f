"""What every request to a replica passes on its way in and out, in one ASGI middleware.

In: a request id (the gateway's X-Request-ID when sane, else a new one) for the logs; the internal gateway
token, since only the gateway knows it and a request without it went around the gateway; admission, which
refuses a data-plane request past the replica's bound (serving/admission.py). Out: the id on the response,
and the request counted and timed by route template, model and status (never by raw path).
These were three middlewares; a cheap request spent a tenth of its time passing through them.
"""

from __future__ import annotations

import hmac
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlstack.errors import Overloaded, error_response
from mlstack.serving.admission import InFlight
from mlstack.telemetry.logs import SANE_REQUEST_ID, header, request_id
from mlstack.telemetry.metrics import Metrics

UNGUARDED_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
"""What an orchestrator's health checks call on the replica itself, around the gateway."""
DATA_PLANE_SUFFIXES = (":predict", "/infer", ":explain")
DATA_PLANE_PREFIXES = ("/v1/users",)
RETRY_AFTER = str(Overloaded.retry_after_s).encode()
SHED_BODY = b'{"error":"replica at capacity: too many requests in flight; retry after %s s"}' % RETRY_AFTER
SHED_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(SHED_BODY)).encode()),
    (b"retry-after", RETRY_AFTER),
]


def on_data_plane(path: str) -> bool:
    """Requests that cost a model's or a store's work, the ones admission bounds. Health, metadata,
    metrics and admin calls are never counted nor refused: operators must see and steer a busy replica."""
    return path.endswith(DATA_PLANE_SUFFIXES) or path.startswith(DATA_PLANE_PREFIXES)


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, token: str | None, in_flight: InFlight) -> None:
        self.app = app
        self.metrics = metrics
        self._token = token.encode() if token is not None else None
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = header(scope, b"x-request-id").decode("latin-1")
        rid = given if SANE_REQUEST_ID.match(given) else uuid.uuid4().hex
        rid_header = (b"x-request-id", rid.encode("latin-1"))
        context = request_id.set(rid)
        try:
            if not self._passes(scope):
                refused = error_response(401, "requests must come through the gateway")
                await refused(scope, receive, _with_header(send, rid_header))
                return  # not counted: it is no request of the service's
            if not on_data_plane(scope["path"]):
                await self._metered(scope, receive, send, rid_header)
                return
            arrived = time.perf_counter()
            in_flight = self.in_flight
            if not (in_flight.try_enter() or await in_flight.wait()):
                await _shed(send, rid_header)
                self.metrics.observe("shed", "", 503, time.perf_counter() - arrived, "")
                return
            try:
                await self._metered(scope, receive, send, rid_header)
            finally:
                in_flight.leave()
        finally:
            request_id.reset(context)

    def _passes(self, scope: Scope) -> bool:
        if self._token is None or scope["path"] in UNGUARDED_PATHS:
            return True
        return hmac.compare_digest(header(scope, b"x-gateway-token"), self._token)

    async def _metered(self, scope: Scope, receive: Receive, send: Send, rid: tuple[bytes, bytes]) -> None:
        started = time.perf_counter()
        status, version = 500, ""

        async def send_noted(message: Message) -> None:
            nonlocal status, version
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))  # a copy: a response may be sent twice
                for name, value in headers:
                    if name == b"x-model-version":
                        version = value.decode()
                headers.append(rid)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_noted)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            model = scope.get("path_params", {}).get("model", "")
            self.metrics.observe(route, model, status, time.perf_counter() - started, version)


async def _shed(send: Send, rid: tuple[bytes, bytes]) -> None:
    """The 503 of a request refused at the edge, as raw ASGI messages: no routing, no body read."""
    await send({"type": "http.response.start", "status": 503, "headers": [*SHED_HEADERS, rid]})
    await send({"type": "http.response.body", "body": SHED_BODY})


def _with_header(send: Send, extra: tuple[bytes, bytes]) -> Any:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), extra]
        await send(message)

    return sending

"""Request ids, JSON log lines that carry them, and the internal gateway-token check."""

from __future__ import annotations

import contextvars
import hmac
import logging
import re
import uuid

from pythonjsonlogger.json import JsonFormatter
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlstack.errors import error_response

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
UNGUARDED_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(level: str, replica: str) -> None:
    """One JSON object per line on stderr, each with the request id and the replica's name."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"replica": replica},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
            json_ensure_ascii=False,
        )
    )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger("mlstack")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def header(scope: Scope, name: bytes) -> bytes:
    """One request header's raw value (b"" if absent). ASGI names are lower case; a scan of the few raw
    pairs costs a fraction of building starlette's Headers, which these per-request checks did."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return b""


class RequestIdMiddleware:
    """Keeps a sane client X-Request-ID (the gateway's), or makes one, and returns it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = header(scope, b"x-request-id").decode("latin-1")
        rid = given if SANE_REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class GatewayTokenMiddleware:
    """Only the gateway knows the token, so a request that lacks it went around the gateway."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guarded = scope["type"] == "http" and scope["path"] not in UNGUARDED_PATHS
        if guarded and not hmac.compare_digest(header(scope, b"x-gateway-token"), self._token):
            response = error_response(401, "requests must come through the gateway")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

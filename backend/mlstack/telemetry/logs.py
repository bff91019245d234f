"""Request ids and the JSON log lines that carry them; edge.py sets the id per request."""

from __future__ import annotations

import contextvars
import logging
import re

from pythonjsonlogger.json import JsonFormatter
from starlette.types import Scope

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


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
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value
    return b""

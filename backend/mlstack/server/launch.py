"""How a replica process starts, in one place: `mlstack serve`, used by the image, the native stack and the
tests alike."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from mlstack.main import create_app
from mlstack.server import http_protocol, tuning
from mlstack.settings import Settings

log = logging.getLogger("mlstack.server")


def serve(settings: Settings) -> None:
    """Tune the process, build the app, and run it on uvicorn until SIGTERM or SIGINT (then drain)."""
    tuning.apply()
    app = create_app(settings, on_version_loaded=tuning.freeze_heap)
    _log_fast_paths(app, settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=http_protocol.HttpToolsProtocol,
        timeout_keep_alive=int(settings.keep_alive_s),
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        access_log=False,  # the gateway writes the access log; replicas log what goes wrong
        log_config=None,  # the app configures logging itself (telemetry/logs.py)
    )
    uvicorn.Server(config).run()


def _log_fast_paths(app: FastAPI, settings: Settings) -> None:
    """One line naming each hand-written fast path and whether it is in use (docs/perf-log.md says what
    each one buys); a library upgrade that switches one off shows here and fails its test."""
    lean = sum(1 for route in app.routes if getattr(route, "lean", False))
    changed = http_protocol.fast_path()
    near = settings.near_cache_entries if settings.cache_enabled and settings.redis_url else 0
    log.info(
        "fast paths: lean routes %d of %d; one-write HTTP %s (uvicorn %s); pipelined cache client; "
        "near cache %d entries%s",
        lean,
        len(app.routes),
        "on" if changed is None else f"OFF ({changed})",
        uvicorn.__version__,
        near,
        " with whole-answer memory" if near else "",
    )

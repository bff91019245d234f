"""How a replica process starts, in one place: `mlstack serve`, used by the image, the native stack and the
tests alike."""

from __future__ import annotations

import logging

import uvicorn

from mlstack.main import create_app
from mlstack.server import http_protocol, tuning
from mlstack.settings import Settings

log = logging.getLogger("mlstack.server")


def serve(settings: Settings) -> None:
    """Tune the process, build the app, and run it on uvicorn until SIGTERM or SIGINT (then drain)."""
    tuning.apply()
    app = create_app(settings, on_version_loaded=tuning.freeze_heap)
    lean = [r for r in app.routes if getattr(r, "lean", False)]
    log.info("lean routes (no per-request dependency solving): %d of %d", len(lean), len(app.routes))
    changed = http_protocol.fast_path()
    if changed is None:
        log.info(
            "HTTP fast path on: a response's head and body leave in one write (uvicorn %s)",
            uvicorn.__version__,
        )
    else:
        log.error(
            "HTTP fast path OFF, responses take two writes: %s (uvicorn %s)", changed, uvicorn.__version__
        )
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

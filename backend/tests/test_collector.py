"""The garbage collector is tuned for serving by the entry point, and the models frozen once loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from mlstack.server.tuning import YOUNG_GC_THRESHOLD

SERVED = """
import gc
import uvicorn
from fastapi.testclient import TestClient
from mlstack.server import launch
from mlstack.settings import Settings

served = []
uvicorn.Server.run = lambda server, sockets=None: served.append(server.config.app)  # no socket: the app
launch.serve(Settings(store_dir={store!r}, redis_url=None))  # the entry point `mlstack serve` runs
with TestClient(served[0]):
    print(gc.get_freeze_count(), gc.get_threshold()[0])
"""


def test_serving_freezes_the_loaded_models_and_widens_the_young_generation(trained_store: Path) -> None:
    code = textwrap.dedent(SERVED.format(store=str(trained_store)))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    frozen, threshold = (int(word) for word in done.stdout.split()[-2:])

    assert frozen > 10_000  # the loaded pipelines and their modules, out of every collection's sight
    assert threshold == YOUNG_GC_THRESHOLD

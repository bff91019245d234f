"""The garbage collector is tuned for serving once a replica has loaded its models."""

from __future__ import annotations

import gc
from pathlib import Path

from fastapi.testclient import TestClient

from mlstack.main import create_app
from mlstack.serving.registry import YOUNG_GC_THRESHOLD
from mlstack.settings import Settings


def test_loading_freezes_the_models_and_widens_the_young_generation(trained_store: Path) -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, *before[1:])  # Python's default, whatever earlier tests left
    try:
        with TestClient(create_app(Settings(store_dir=trained_store, redis_url=None))):
            frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
    finally:
        gc.set_threshold(*before)

    assert frozen > 10_000  # the loaded pipelines and their modules, out of every collection's sight
    assert threshold == (YOUNG_GC_THRESHOLD, *before[1:])

"""Configuration: one Settings object, no work at import time, several apps side by side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from mlstack.main import create_app
from mlstack.settings import Settings


def test_importing_the_app_does_no_work(tmp_path: Path) -> None:
    code = "import mlstack.main, logging; assert not logging.getLogger('mlstack').handlers"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env={}
    )

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "model_store").exists()


def test_two_apps_in_one_process_serve_their_own_stores(trained_store: Path, tmp_path: Path) -> None:
    empty = create_app(Settings(store_dir=tmp_path / "empty"))
    full = create_app(Settings(store_dir=trained_store))

    with TestClient(empty) as a, TestClient(full) as b:
        assert a.get("/v2/health/ready").status_code == 503
        assert b.get("/v2/health/ready").status_code == 200
        assert a.get("/v1/models").json() == {"models": []}

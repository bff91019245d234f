"""A model store written by an earlier release still loads and answers the same.

`fixtures/store-0c08bbb` was published by the code at commit 0c08bbb (before the replica was reshaped into
packages), with `expected.json` holding what that code answered for one row under each engine. Pickles
name classes by import path and manifests are strict, so a moved module or a new required manifest field
fails here first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlstack.main import create_app
from mlstack.settings import Settings

FIXTURE = Path(__file__).parent / "fixtures" / "store-0c08bbb"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


@pytest.mark.parametrize("engine", ["onnx", "joblib"])
def test_a_store_from_before_the_reshaping_serves_the_same_answers(tmp_path: Path, engine: str) -> None:
    store = tmp_path / "store"
    shutil.copytree(FIXTURE, store, ignore=shutil.ignore_patterns("expected.json"))
    settings = Settings(store_dir=store, redis_url=None, onnx_enabled=engine == "onnx")

    with TestClient(create_app(settings)) as client:
        served = client.get("/v1/models/churn").json()
        answer = client.post("/v1/models/churn:predict", json={"instances": EXPECTED["instances"]})

    expected = EXPECTED["predictions"][engine]
    assert served["engine"] == engine
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == expected["labels"]
    got = [p[c] for p in answer.json()["probabilities"] for c in ("0", "1")]
    assert got == pytest.approx([p for row in expected["probabilities"] for p in row], abs=1e-12)

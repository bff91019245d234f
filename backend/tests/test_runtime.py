"""Both runtimes on the same validated rows, which one a replica picks, and its fallback to joblib."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlstack.cli import main as cli
from mlstack.main import create_app
from mlstack.serving.runtime import OnnxRuntime, SklearnRuntime
from mlstack.serving.validation import Validator
from mlstack.settings import Settings
from mlstack.store.model_store import ModelStore
from mlstack.training.onnx_export import PROBA_TOLERANCE, REGRESSION_TOLERANCE

from .conftest import DEMO_MODELS, assert_same_answers, in_process
from .servers import running_replica
from .test_api_v1 import varied_rows
from .test_store import flip_one_byte


def both_runtimes(store_dir: Path, model: str) -> tuple[SklearnRuntime, OnnxRuntime, Validator]:
    store = ModelStore(store_dir)
    manifest, pipeline = store.load(model, "1")
    assert manifest.onnx_artifact is not None
    onnx = OnnxRuntime(manifest, store.read_artifact(model, "1", manifest.onnx_artifact))
    return SklearnRuntime(manifest, pipeline), onnx, Validator(manifest, 1000, 256)


@pytest.mark.parametrize("model", list(DEMO_MODELS))
def test_onnx_answers_like_joblib_on_rows_with_nulls(trained_store: Path, model: str) -> None:
    joblib_runtime, onnx_runtime, validator = both_runtimes(trained_store, model)
    rows = validator.rows(varied_rows(joblib_runtime.manifest.model_dump(), 60, nulls=True))

    want, got = joblib_runtime.predict(rows), onnx_runtime.predict(rows)

    assert [type(v) for v in got.labels] == [type(v) for v in want.labels]
    if want.probabilities is None:
        scale = max(1.0, float(np.max(np.abs(want.labels))))
        assert np.max(np.abs(np.subtract(want.labels, got.labels))) < REGRESSION_TOLERANCE * scale
    else:
        assert got.labels == want.labels
        assert np.max(np.abs(np.subtract(want.probabilities, got.probabilities))) < PROBA_TOLERANCE


def test_string_classes_come_back_as_strings(tmp_path: Path) -> None:
    csv = tmp_path / "plans.csv"
    rng = np.random.default_rng(0)
    lines = ["usage,region,plan"] + [
        f"{u:.1f},{r},{'premium' if u > 50 else 'basic'}"
        for u, r in zip(rng.uniform(0, 100, 200), rng.choice(["north", "south"], 200), strict=True)
    ]
    csv.write_text("\n".join(lines) + "\n")
    args = ["--csv", str(csv), "--target", "plan", "--rows", "200", "--search", "fast"]
    assert cli(["train", *args, "--store-dir", str(tmp_path / "store")]) == 0
    joblib_runtime, onnx_runtime, validator = both_runtimes(tmp_path / "store", "plans")
    rows = validator.rows([{"usage": 70.0, "region": "north"}, {"usage": 10.0, "region": "south"}])

    assert onnx_runtime.predict(rows).labels == joblib_runtime.predict(rows).labels == ["premium", "basic"]


def test_replica_serves_onnx_unless_switched_off(trained_store: Path) -> None:
    for enabled, engine in ((True, "onnx"), (False, "joblib")):
        settings = Settings(store_dir=trained_store, redis_url=None, onnx_enabled=enabled)
        with TestClient(create_app(settings)) as client:
            assert client.get("/v1/models/churn").json()["engine"] == engine
            assert (
                client.get("/v2/models/churn").json()["platform"]
                == {
                    "onnx": "onnxruntime_onnx",
                    "joblib": "sklearn",
                }[engine]
            )


def test_a_corrupt_onnx_file_falls_back_to_joblib_and_says_so(store_dir: Path, tmp_path: Path) -> None:
    flip_one_byte(store_dir / "churn" / "1" / "model.onnx")
    log = tmp_path / "replica.log"

    with running_replica(store_dir, log) as url:
        manifest = httpx.get(f"{url}/v1/models/churn").json()
        rows = varied_rows(manifest, 20, nulls=True)
        response = httpx.post(f"{url}/v1/models/churn:predict", json={"instances": rows})

    assert manifest["engine"] == "joblib"
    assert response.status_code == 200
    assert_same_answers(response.json(), manifest, rows, in_process(store_dir, "churn"))
    text = log.read_text()
    assert "ONNX export not used, serving the joblib pipeline" in text
    assert "churn/1/model.onnx: sha256 check failed" in text
    assert cli(["verify", "--store-dir", str(store_dir)]) == 1  # the store check still names it


@pytest.mark.parametrize("model", list(DEMO_MODELS))
def test_onnx_and_joblib_replicas_agree_through_uvicorn(
    replica_url: str, trained_store: Path, tmp_path: Path, model: str
) -> None:
    manifest = httpx.get(f"{replica_url}/v1/models/{model}").json()
    rows = varied_rows(manifest, 50, nulls=True)
    onnx = httpx.post(f"{replica_url}/v1/models/{model}:predict", json={"instances": rows}).json()

    with running_replica(trained_store, tmp_path / "joblib.log", onnx_enabled="false") as url:
        joblib_manifest = httpx.get(f"{url}/v1/models/{model}").json()
        joblib = httpx.post(f"{url}/v1/models/{model}:predict", json={"instances": rows}).json()

    assert (manifest["engine"], joblib_manifest["engine"]) == ("onnx", "joblib")
    pipeline = in_process(trained_store, model)
    assert_same_answers(onnx, manifest, rows, pipeline)
    assert_same_answers(joblib, joblib_manifest, rows, pipeline)


def test_concurrent_requests_to_a_joblib_only_model_are_batched(tmp_path: Path) -> None:
    store = tmp_path / "store"
    base = ["train", "--demo", "churn", "--rows", "600", "--search", "fast", "--store-dir", str(store)]
    assert cli([*base, "--no-onnx"]) == 0
    manifest = ModelStore(store).verify("churn", "1")
    rows = varied_rows(manifest.model_dump(), 32, nulls=True)

    with running_replica(store, tmp_path / "r.log", microbatch_max_wait_ms="20") as url:
        served = httpx.get(f"{url}/v1/models/churn").json()
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda r: _predict(url, r), rows))
        metrics = httpx.get(f"{url}/metrics").text

    assert served["engine"] == "joblib"
    assert not (store / "churn" / "1" / "model.onnx").exists()
    assert manifest.onnx is not None
    assert manifest.onnx.reason == "not requested (--no-onnx)"
    merged = {"predictions": [a["predictions"][0] for a in answers]}
    merged["probabilities"] = [a["probabilities"][0] for a in answers]
    assert_same_answers(merged, served, rows, in_process(store, "churn"))
    assert _batches(metrics) < len(rows)


def _predict(url: str, row: dict[str, object]) -> dict[str, object]:
    response = httpx.post(f"{url}/v1/models/churn:predict", json={"instances": [row]}, timeout=30)
    assert response.status_code == 200
    return response.json()


def _batches(metrics: str) -> float:
    lines = [line for line in metrics.splitlines() if line.startswith("mlstack_batch_rows_count")]
    assert lines, "no batch metric"
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

"""A real uvicorn replica: train → serve → predict on each demo set, and refusal of a tampered artifact."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .conftest import assert_same_answers, in_process
from .servers import running_replica
from .test_api_v1 import varied_rows
from .test_store import flip_one_byte


@pytest.mark.parametrize("model", ["churn", "fraud", "maintenance", "rul"])
def test_round_trip_through_uvicorn_equals_the_pipeline(
    replica_url: str, trained_store: Path, model: str
) -> None:
    manifest = httpx.get(f"{replica_url}/v1/models/{model}").json()
    rows = varied_rows(manifest, 40, nulls=True)

    response = httpx.post(f"{replica_url}/v1/models/{model}:predict", json={"instances": rows})

    assert response.status_code == 200
    assert manifest["engine"] == "onnx"
    assert_same_answers(response.json(), manifest, rows, in_process(trained_store, model))


def test_tampered_artifact_is_refused_at_start_and_the_log_names_it(store_dir: Path, tmp_path: Path) -> None:
    for model in ("fraud", "maintenance", "rul"):
        for path in sorted((store_dir / model).glob("*/model.joblib")):
            flip_one_byte(path)
    flip_one_byte(store_dir / "churn" / "1" / "model.joblib")
    log = tmp_path / "replica.log"

    with running_replica(store_dir, log) as url:
        ready = httpx.get(f"{url}/v2/health/ready")
        predict = httpx.post(f"{url}/v1/models/churn:predict", json={"instances": [{}]})

    assert ready.status_code == 503
    assert set(ready.json()) == {"error"}
    assert predict.status_code == 503
    assert predict.headers["Retry-After"] == "2"
    assert "churn/1/model.joblib: sha256 check failed" in log.read_text()


def test_gateway_token_is_required_except_for_health(trained_store: Path, tmp_path: Path) -> None:
    with running_replica(trained_store, tmp_path / "r.log", gateway_token="s3cret") as url:
        without = httpx.get(f"{url}/v1/models")
        wrong = httpx.get(f"{url}/v1/models", headers={"X-Gateway-Token": "nope"})
        right = httpx.get(f"{url}/v1/models", headers={"X-Gateway-Token": "s3cret"})
        health = httpx.get(f"{url}/v2/health/ready")

    assert (without.status_code, wrong.status_code, right.status_code, health.status_code) == (
        401,
        401,
        200,
        200,
    )
    assert without.json() == {"error": "requests must come through the gateway"}
    assert len(without.headers["X-Request-ID"]) == 32  # a refused request has an id for the logs too


def test_request_id_is_kept_or_made(replica_url: str) -> None:
    kept = httpx.get(f"{replica_url}/v2", headers={"X-Request-ID": "client-id-1234"})
    made = httpx.get(f"{replica_url}/v2", headers={"X-Request-ID": "<script>"})

    assert kept.headers["X-Request-ID"] == "client-id-1234"
    assert len(made.headers["X-Request-ID"]) == 32


def test_docs_are_served_without_a_cdn(replica_url: str) -> None:
    page = httpx.get(f"{replica_url}/docs").text
    script = httpx.get(f"{replica_url}/docs/assets/swagger-ui-bundle.js")
    spec = httpx.get(f"{replica_url}/openapi.json").json()

    assert "cdn" not in page.lower()
    assert "/docs/assets/swagger-ui-bundle.js" in page
    assert script.status_code == 200
    assert "/v1/models/{model}:predict" in spec["paths"]
    assert "/v2/models/{model}/versions/{version}/infer" in spec["paths"]

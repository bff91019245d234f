"""V1 routes: listing, manifests, predictions equal to the in-process pipeline, and every error case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from .conftest import assert_same_answers, example_row, in_process

PREDICT = "/v1/models/churn:predict"


@pytest.fixture(scope="module")
def churn(shared_client: TestClient) -> dict[str, Any]:
    return shared_client.get("/v1/models/churn").json()


def numeric_feature(manifest: dict[str, Any]) -> str:
    return next(f["name"] for f in manifest["inputs"] if f["type"] == "number")


def string_feature(manifest: dict[str, Any]) -> str:
    return next(f["name"] for f in manifest["inputs"] if f["type"] == "string")


def test_lists_every_model_with_its_current_version(shared_client: TestClient) -> None:
    models = {m["name"]: m for m in shared_client.get("/v1/models").json()["models"]}

    assert set(models) == {"churn", "fraud", "maintenance", "rul"}
    assert models["churn"]["current"] == models["churn"]["serving"] == "1"
    assert models["rul"]["task"] == "regression"


def test_manifest_describes_schema_classes_and_metrics(churn: dict[str, Any]) -> None:
    assert churn["task"] == "classification"
    assert churn["classes"] == [0, 1]
    assert {"roc_auc", "pr_auc", "f1", "accuracy", "confusion_matrix"} <= set(churn["metrics"])
    assert len(churn["artifact"]["sha256"]) == 64
    assert "/" not in churn["training"]["source"]


@pytest.mark.parametrize("model", ["churn", "fraud", "maintenance", "rul"])
def test_predictions_equal_the_pipeline_in_process(
    shared_client: TestClient, trained_store: Path, model: str
) -> None:
    manifest = shared_client.get(f"/v1/models/{model}").json()
    rows = varied_rows(manifest, 25, nulls=True)

    body = shared_client.post(f"/v1/models/{model}:predict", json={"instances": rows}).json()

    assert manifest["engine"] == "onnx"  # every demo model converts and passes the parity check
    assert_same_answers(body, manifest, rows, in_process(trained_store, model))


def test_predict_reports_version_and_keeps_row_order(
    shared_client: TestClient, churn: dict[str, Any]
) -> None:
    rows = varied_rows(churn, 10)
    batch = shared_client.post(PREDICT, json={"instances": rows})
    singles = [shared_client.post(PREDICT, json={"instances": [row]}).json() for row in rows]

    assert batch.headers["X-Model-Version"] == batch.json()["model_version"] == "1"
    assert batch.json()["predictions"] == [s["predictions"][0] for s in singles]
    # one matrix or one row at a time may differ in the last bit: float64 BLAS, or float32 under ONNX
    together = [list(p.values()) for p in batch.json()["probabilities"]]
    alone = [list(s["probabilities"][0].values()) for s in singles]
    assert np.allclose(together, alone, rtol=0, atol=1e-12 if churn["engine"] == "joblib" else 1e-6)


def test_pinned_version_answers_with_that_version(shared_client: TestClient, churn: dict[str, Any]) -> None:
    response = shared_client.post(
        "/v1/models/churn/versions/1:predict", json={"instances": [example_row(churn)]}
    )

    assert (response.status_code, response.headers["X-Model-Version"]) == (200, "1")


def test_cache_header_says_bypass_without_redis(shared_client: TestClient, churn: dict[str, Any]) -> None:
    response = shared_client.post(PREDICT, json={"instances": [example_row(churn)]})

    assert response.headers["X-Cache"] == "BYPASS"


def bad_bodies(churn: dict[str, Any]) -> list[tuple[str, bytes, int, str]]:
    """(case, raw body, expected status, text the message must contain)."""
    row = example_row(churn)
    num, cat = numeric_feature(churn), string_feature(churn)

    def with_value(value: Any) -> bytes:
        return json.dumps({"instances": [{**row, num: value}]}).encode()

    def raw_value(token: str) -> bytes:
        sentinel = 123456.789012
        return json.dumps({"instances": [{**row, num: sentinel}]}).replace(str(sentinel), token).encode()

    missing = {k: v for k, v in row.items() if k != num}
    return [
        ("malformed JSON", b'{"instances": [', 400, "JSON"),
        ("top level a list", b"[]", 400, "object"),
        ("instances missing", b'{"rows": []}', 400, "instances"),
        ("instances an object", b'{"instances": {}}', 400, "instances"),
        ("instances a string", b'{"instances": "x"}', 400, "instances"),
        ("instances empty", b'{"instances": []}', 400, "instances"),
        ("row null", b'{"instances": [null]}', 422, "instances[0]"),
        ("row a list", b'{"instances": [[1, 2]]}', 422, "instances[0]"),
        ("missing feature", json.dumps({"instances": [missing]}).encode(), 422, num),
        ("unknown feature", json.dumps({"instances": [{**row, "shoe_size": 42}]}).encode(), 422, "shoe_size"),
        ("string for a number", with_value("abc"), 422, num),
        ("numeric string", with_value("1.5"), 422, num),
        ("boolean for a number", with_value(True), 422, num),
        ("list for a number", with_value([1]), 422, num),
        ("null where not nullable", with_value(None), 422, num),
        ("NaN", raw_value("NaN"), 400, "JSON"),
        ("Infinity", raw_value("Infinity"), 400, "JSON"),
        ("-Infinity", raw_value("-Infinity"), 400, "JSON"),
        ("overflowing number", raw_value("1e999"), 400, "JSON"),
        ("5000-digit integer", raw_value("9" * 5000), 400, "JSON"),
        ("unknown category", json.dumps({"instances": [{**row, cat: "Nonexistent"}]}).encode(), 422, cat),
        ("very long string", json.dumps({"instances": [{**row, cat: "x" * 100_000}]}).encode(), 422, cat),
        ("deep nesting", b'{"instances": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400, "JSON"),
        ("invalid UTF-8", b'{"instances": ["\xff\xfe"]}', 400, "JSON"),
    ]


def test_every_bad_input_gets_its_status_and_a_json_error(
    shared_client: TestClient, churn: dict[str, Any]
) -> None:
    failures = []
    for case, body, status, needle in bad_bodies(churn):
        response = shared_client.post(PREDICT, content=body, headers={"Content-Type": "application/json"})
        error = response.json().get("error", "") if is_json(response) else ""
        if response.status_code != status or set(response.json()) != {"error"} or needle not in error:
            failures.append((case, response.status_code, response.text[:200]))
    assert failures == []
    assert shared_client.post(PREDICT, json={"instances": [example_row(churn)]}).status_code == 200


def test_oversized_batch_is_413(shared_client: TestClient, churn: dict[str, Any]) -> None:
    response = shared_client.post(PREDICT, json={"instances": [example_row(churn)] * 1001})

    assert response.status_code == 413
    assert "1000" in response.json()["error"]


def test_exactly_the_batch_limit_is_served_in_order(shared_client: TestClient, churn: dict[str, Any]) -> None:
    response = shared_client.post(PREDICT, json={"instances": varied_rows(churn, 1000)})

    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1000


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v1/models/nosuch:predict", 404),
        ("POST", "/v1/models/churn/versions/99:predict", 404),
        ("GET", "/v1/models/nosuch", 404),
        ("GET", "/v1/models/churn/versions/99", 404),
        ("GET", "/no/such/route", 404),
        ("GET", "/v1/models/..%2F..%2Fetc%2Fpasswd", 404),
        ("GET", "/v1/models/churn:predict", 405),
        ("DELETE", "/v1/models", 405),
        ("PUT", "/v2/models/churn/infer", 405),
    ],
)
def test_unknown_things_and_wrong_methods(
    shared_client: TestClient, method: str, path: str, status: int
) -> None:
    response = shared_client.request(method, path, json={"instances": []})

    assert response.status_code == status
    assert set(response.json()) == {"error"}
    if status == 405:
        assert response.headers["Allow"]


def test_a_wrong_method_is_told_every_method_of_the_path(shared_client: TestClient) -> None:
    """Two routes share the path (PUT and DELETE of a canary); Allow names both, as the document does."""
    response = shared_client.patch("/v1/models/churn/canary", json={})

    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, PUT"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/python-pickle"]
)
def test_body_that_is_not_json_is_415(shared_client: TestClient, content_type: str) -> None:
    response = shared_client.post(
        PREDICT, content=b'{"instances": []}', headers={"Content-Type": content_type}
    )

    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def test_errors_never_echo_the_input_or_paths(shared_client: TestClient, churn: dict[str, Any]) -> None:
    body = {"instances": [{**example_row(churn), "secret_field_xyz": 1}]}
    error = shared_client.post(PREDICT, json=body).json()["error"]

    assert "Traceback" not in error
    assert "site-packages" not in error


def varied_rows(manifest: dict[str, Any], count: int, nulls: bool = False) -> list[dict[str, Any]]:
    """Distinct valid rows spread over each feature's observed range and categories; with `nulls`, every
    third row has each nullable feature null."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(count):
        row = {}
        for f in manifest["inputs"]:
            row[f["name"]] = None if nulls and i % 3 == 2 and f.get("nullable") else random_value(f, rng)
        rows.append(row)
    return rows


def random_value(feature: dict[str, Any], rng: np.random.Generator) -> Any:
    kind = feature["type"]
    if kind == "string":
        return str(rng.choice(feature["categories"]))
    if kind == "boolean":
        return bool(rng.integers(0, 2))
    low, high = feature["minimum"], feature["maximum"]
    if kind == "integer":
        return int(rng.integers(int(low), int(high) + 1))
    return float(rng.uniform(low, high))


def is_json(response: Any) -> bool:
    return response.headers.get("content-type", "").startswith("application/json")

"""Open Inference Protocol routes, checked with a real OIP client (tritonclient) against a real replica."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient

from .test_api_v1 import varied_rows

DATATYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}


def v2_body(
    manifest: dict[str, Any], rows: list[dict[str, Any]], request_id: str = "req-1"
) -> dict[str, Any]:
    inputs = [
        {
            "name": f["name"],
            "shape": [len(rows)],
            "datatype": DATATYPES[f["type"]],
            "data": [row[f["name"]] for row in rows],
        }
        for f in manifest["inputs"]
    ]
    return {"id": request_id, "inputs": inputs}


@pytest.fixture(scope="module")
def churn(shared_client: TestClient) -> dict[str, Any]:
    return shared_client.get("/v1/models/churn").json()


def test_server_metadata_and_health(shared_client: TestClient) -> None:
    assert shared_client.get("/v2").json()["name"] == "mlstack"
    assert shared_client.get("/v2/health/live").status_code == 200
    assert shared_client.get("/v2/health/ready").json() == {"ready": True}


def test_model_metadata_lists_one_input_per_feature(shared_client: TestClient, churn: dict[str, Any]) -> None:
    meta = shared_client.get("/v2/models/churn").json()

    assert [i["name"] for i in meta["inputs"]] == [f["name"] for f in churn["inputs"]]
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {"predictions": [-1], "probabilities": [-1, 2]}
    assert shared_client.get("/v2/models/churn/versions/1/ready").json()["ready"] is True


def test_v2_and_v1_give_identical_predictions(shared_client: TestClient, churn: dict[str, Any]) -> None:
    rows = varied_rows(churn, 20)
    v1 = shared_client.post("/v1/models/churn:predict", json={"instances": rows}).json()
    v2 = shared_client.post("/v2/models/churn/infer", json=v2_body(churn, rows, "abc")).json()

    outputs = {o["name"]: o for o in v2["outputs"]}
    assert v2["id"] == "abc"
    assert outputs["predictions"]["data"] == v1["predictions"]
    assert outputs["probabilities"]["shape"] == [20, 2]
    flat = [p for row in v1["probabilities"] for p in row.values()]
    assert outputs["probabilities"]["data"] == flat


@pytest.mark.parametrize(
    ("change", "status", "needle"),
    [
        (lambda b: b["inputs"].pop(0), 422, "missing feature"),
        (lambda b: b["inputs"].append({**b["inputs"][0], "name": "shoe_size"}), 422, "shoe_size"),
        (lambda b: b["inputs"][0].update(shape=[7]), 400, "shape"),
        (lambda b: b["inputs"][0].update(shape=[2, 2]), 400, "shape"),
        (lambda b: b["inputs"][0].update(datatype="NOPE"), 400, "datatype"),
        (lambda b: b.update(inputs=[]), 400, "inputs"),
        (lambda b: b.pop("inputs"), 400, "inputs"),
    ],
)
def test_v2_bad_requests_are_json_errors(
    shared_client: TestClient, churn: dict[str, Any], change: Any, status: int, needle: str
) -> None:
    body = v2_body(churn, varied_rows(churn, 2))
    change(body)
    response = shared_client.post("/v2/models/churn/infer", json=body)

    assert response.status_code == status
    assert needle in response.json()["error"]


def test_tritonclient_infers_through_a_real_replica(replica_url: str, shared_client: TestClient) -> None:
    churn = shared_client.get("/v1/models/churn").json()
    rows = varied_rows(churn, 8)
    client = triton.InferenceServerClient(url=replica_url.removeprefix("http://"))
    inputs = []
    for feature in churn["inputs"]:
        values = np.array([row[feature["name"]] for row in rows], dtype=_numpy_type(feature["type"]))
        tensor = triton.InferInput(feature["name"], [len(rows)], DATATYPES[feature["type"]])
        tensor.set_data_from_numpy(values, binary_data=False)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(n, binary_data=False) for n in ("predictions", "probabilities")]

    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("churn")
    result = client.infer("churn", inputs, outputs=outputs, request_id="triton-1")

    v1 = shared_client.post("/v1/models/churn:predict", json={"instances": rows}).json()
    assert result.get_response()["id"] == "triton-1"
    assert result.as_numpy("predictions").tolist() == v1["predictions"]
    expected = np.array([list(p.values()) for p in v1["probabilities"]])
    assert np.array_equal(result.as_numpy("probabilities"), expected)
    assert client.get_model_metadata("churn")["platform"] == "onnxruntime_onnx"  # served with ONNX


def _numpy_type(kind: str) -> Any:
    return {"number": np.float64, "integer": np.int64, "boolean": np.bool_, "string": np.object_}[kind]

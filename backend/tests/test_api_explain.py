"""`:explain` through a replica's HTTP routes (the real app, a real redis-server as its cache): the answers
add up to the published pipeline's own output, bad input gets predict's 4xx, its own batch limit, its own
cache key space, and a version that cannot be explained says so."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from redis import Redis as RedisClient

from mlstack.frames import prepare_frame
from mlstack.main import create_app
from mlstack.settings import Settings
from mlstack.training.datasets import demo_dataset
from waiting import wait_until

from .conftest import DEMO_MODELS, example_row, in_process, manifest_of
from .servers import RedisServer
from .test_api_v1 import bad_bodies
from .test_explain import DEMO_OF, FIXTURE, model_output

EXACT = 1e-6
EXPLAIN = "/v1/models/churn:explain"
PREDICT = "/v1/models/churn:predict"


def explain(client: TestClient, rows: list[dict[str, Any]], url: str = EXPLAIN) -> tuple[str, Any]:
    response = client.post(url, json={"instances": rows})
    assert response.status_code == 200, response.text
    return response.headers["X-Cache"], response.json()


def held_out_instances(manifest: dict[str, Any], model: str, count: int) -> list[dict[str, Any]]:
    """Rows the model never saw (another seed), as a client sends them; every third with its nullable
    features null."""
    frame = demo_dataset(DEMO_OF[model], rows=count, seed=77).frame
    names = [f["name"] for f in manifest["inputs"]]
    nullable = {f["name"] for f in manifest["inputs"] if f["nullable"]}
    instances = []
    for i, row in enumerate(frame[names].to_dict(orient="records")):
        plain = {
            k: None if pd.isna(v) else v.item() if isinstance(v, np.generic) else v for k, v in row.items()
        }
        instances.append({k: None if i % 3 == 0 and k in nullable else v for k, v in plain.items()})
    return instances


@pytest.mark.parametrize("model", list(DEMO_MODELS))
def test_every_demo_model_adds_up_through_the_route_on_held_out_rows_with_missing_values(
    cached_client: TestClient, trained_store: Path, model: str
) -> None:
    """base + Σ contributions against the pipeline's output computed here, not taken from the answer."""
    manifest = cached_client.get(f"/v1/models/{model}").json()
    instances = held_out_instances(manifest, model, count=200)
    frame = prepare_frame(pd.DataFrame(instances), manifest_of(manifest).inputs)
    answers = [
        explain(cached_client, instances[i : i + 100], f"/v1/models/{model}:explain")[1]
        for i in range(0, len(instances), 100)
    ]
    explained = [e for body in answers for e in body["explanations"]]

    totals = np.array(
        [e["base_value"] + sum(c["contribution"] for c in e["contributions"]) for e in explained]
    )
    outputs = model_output(in_process(trained_store, model), frame)
    assert np.max(np.abs(totals - outputs)) <= EXACT
    np.testing.assert_allclose([e["output"] for e in explained], outputs, rtol=0, atol=1e-9)
    assert {e["adds_up_to"] for e in explained} == {"joblib"}
    assert {e["predicted_by"] for e in explained} == {manifest["engine"]}
    assert any(c["imputed"] for e in explained for c in e["contributions"])
    predicted = cached_client.post(f"/v1/models/{model}:predict", json={"instances": instances[:100]}).json()
    assert answers[0]["predictions"] == predicted["predictions"]  # the served runtime's own answers
    assert answers[0].get("probabilities") == predicted.get("probabilities")


def test_an_onnx_served_prediction_names_its_parity_tolerance(cached_client: TestClient) -> None:
    manifest = cached_client.get("/v1/models/churn").json()
    _, body = explain(cached_client, [example_row(manifest)])

    (explanation,) = body["explanations"]
    assert manifest["engine"] == "onnx"
    assert explanation["predicted_by"] == "onnx"
    assert explanation["parity_tolerance"] == manifest["onnx"]["tolerance"] > 0
    assert (explanation["method"], explanation["output_space"]) == ("linear", "log_odds")
    assert explanation["probability"] == pytest.approx(body["probabilities"][0]["1"], abs=1e-4)


def test_bad_input_gets_the_same_status_and_message_as_predict(shared_client: TestClient) -> None:
    churn = shared_client.get("/v1/models/churn").json()
    different = []
    for case, body, _, _ in bad_bodies(churn):
        answers = [
            shared_client.post(url, content=body, headers={"Content-Type": "application/json"})
            for url in (PREDICT, EXPLAIN)
        ]
        if [(a.status_code, a.json()) for a in answers][0] != (answers[1].status_code, answers[1].json()):
            different.append((case, answers[0].text[:120], answers[1].text[:120]))
    assert different == []


def test_explanations_have_their_own_batch_limit(store_dir: Path) -> None:
    settings = Settings(store_dir=store_dir, redis_url=None, explain_max_instances=3)
    with TestClient(create_app(settings)) as client:
        row = example_row(client.get("/v1/models/churn").json())
        over = client.post(EXPLAIN, json={"instances": [row] * 4})
        at_limit = client.post(EXPLAIN, json={"instances": [row] * 3})
        predicted = client.post(PREDICT, json={"instances": [row] * 4})

    assert over.status_code == 413
    assert over.json() == {"error": "instances: 4 rows, more than the limit of 3"}
    assert (at_limit.status_code, len(at_limit.json()["explanations"])) == (200, 3)
    assert predicted.status_code == 200


def test_miss_then_hit_in_a_key_space_of_their_own(cached_client: TestClient, redis: RedisServer) -> None:
    row = {**example_row(cached_client.get("/v1/models/churn").json()), "monthly_charges": 77.25}
    first = explain(cached_client, [row])
    wait_until(
        lambda: redis.keys("mlstack:explain:*") >= 1, what="the explanation cached"
    )  # in the background
    again = explain(cached_client, [dict(reversed(row.items()))])
    predicted = cached_client.post(PREDICT, json={"instances": [row]})

    assert [first[0], again[0]] == ["MISS", "HIT"]
    assert first[1] == again[1]
    assert predicted.headers["X-Cache"] == "MISS"  # an explanation is no prediction, and the reverse
    with RedisClient(port=redis.port) as client:
        spaces = {key.split(b":")[1] for key in client.scan_iter(match=b"mlstack:*", count=1000)}
    assert spaces == {b"explain", b"pred"}


def test_a_version_that_cannot_be_explained_is_a_409_with_the_reason(tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(FIXTURE, old, ignore=shutil.ignore_patterns("expected.json"))
    with TestClient(create_app(Settings(store_dir=old, redis_url=None))) as client:
        row = example_row(client.get("/v1/models/churn").json())
        refused = client.post(EXPLAIN, json={"instances": [row]})
        bad = client.post(EXPLAIN, json={"instances": [{**row, "shoe_size": 1}]})
        predicted = client.post(PREDICT, json={"instances": [row]})

    assert refused.status_code == 409
    assert "published before explanations existed" in refused.json()["error"]
    assert bad.status_code == 422  # the rows are checked first, as for a prediction
    assert predicted.status_code == 200


def test_the_openapi_document_describes_the_route_with_its_answer(shared_client: TestClient) -> None:
    document = shared_client.get("/openapi.json").json()

    for path in ("/v1/models/{model}:explain", "/v1/models/{model}/versions/{version}:explain"):
        operation = document["paths"][path]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]["required"] == ["instances"]
        answers = operation["responses"]
        assert answers["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/V1ExplainResponse")
        assert {"400", "404", "409", "413", "415", "422", "503"} <= set(answers)
    explanation = document["components"]["schemas"]["TabularExplanation"]
    assert explanation["additionalProperties"] is False
    assert set(explanation["required"]) == set(explanation["properties"])


def test_a_value_far_outside_training_is_explained_and_one_beyond_float32_is_refused(
    shared_client: TestClient,
) -> None:
    row = example_row(shared_client.get("/v1/models/churn").json())
    far = shared_client.post(EXPLAIN, json={"instances": [{**row, "monthly_charges": 1e17}]})
    beyond = shared_client.post(EXPLAIN, json={"instances": [row, {**row, "monthly_charges": -1e39}]})

    (explanation,) = far.json()["explanations"]
    total = explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"])
    assert abs(total - explanation["output"]) <= 1e-12 * abs(explanation["output"])  # float64's rounding
    assert (beyond.status_code, beyond.json()) == (
        422,
        {"error": "instances[1].monthly_charges: must be within ±3.4e38 (float32's range) to be explained"},
    )

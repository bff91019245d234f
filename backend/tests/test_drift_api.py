"""Live drift in a real replica app with a real redis-server: what is counted (cache hits and remembered
answers too, refusals apart), per version, merged across replicas, kept for the retention, and read back
by the drift route; Redis going away costs counts, never a request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis as redis_py
from fastapi.testclient import TestClient

from mlstack.cli import main as cli
from mlstack.main import create_app
from mlstack.settings import Settings

from .servers import RedisServer, wait_until
from .test_api_v1 import varied_rows
from .test_remembered import Counted, answer, cached

FAST = {"drift_flush_s": 0.2, "drift_gauges_s": 0.3, "cache_retry_after_s": 0.5}


def drift_app(store_dir: Path, redis_url: str | None, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(store_dir=store_dir, redis_url=redis_url, **{**FAST, **settings})))


@pytest.fixture
def client(store_dir: Path, redis: RedisServer) -> Iterator[TestClient]:
    with drift_app(store_dir, redis.url) as client:
        yield client


def drift(client: TestClient, query: str = "") -> dict[str, Any]:
    response = client.get(f"/v1/models/churn/drift{query}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]  # parsed JSON or YAML is Any


def rows_counted(client: TestClient, rows: int, query: str = "") -> None:
    wait_until(lambda: drift(client, query)["rows"] == rows, timeout_s=5)


def manifest(client: TestClient) -> dict[str, Any]:
    return client.get("/v1/models/churn").json()  # type: ignore[no-any-return]  # parsed JSON or YAML is Any


def test_cache_hits_and_remembered_answers_are_counted_like_misses(
    client: TestClient, redis: RedisServer
) -> None:
    body = orjson.dumps({"instances": varied_rows(manifest(client), 1)})
    counted = Counted()
    caches = [answer(client, body, counted)[1]["X-Cache"]]
    cached(redis)  # the miss's row reaches Redis in the background
    caches += [answer(client, body, counted)[1]["X-Cache"] for _ in range(3)]

    assert caches == ["MISS", "HIT", "HIT", "HIT"]
    assert counted.answered == 2  # the last two came from memory, without the core
    rows_counted(client, 4)


def test_a_batch_is_counted_row_by_row_into_the_bins(client: TestClient) -> None:
    rows = varied_rows(manifest(client), 300, nulls=True)
    assert client.post("/v1/models/churn:predict", json={"instances": rows}).status_code == 200

    rows_counted(client, 300)
    found = drift(client)
    tenure = next(f for f in found["features"] if f["name"] == "tenure_months")
    charges = next(f for f in found["features"] if f["name"] == "total_charges")
    assert sum(b["live"] for b in tenure["histogram"]) == 300
    assert charges["missing_share"] == pytest.approx(100 / 300)
    assert found["status"] != "insufficient_data"


def test_refused_rows_are_counted_as_refused_against_their_feature(client: TestClient) -> None:
    rows = varied_rows(manifest(client), 3)
    rows[1]["contract"] = "Three year"

    assert client.post("/v1/models/churn:predict", json={"instances": rows}).status_code == 422
    wait_until(lambda: drift(client)["refused_rows"] == 3, timeout_s=5)
    found = drift(client)
    contract = next(f for f in found["features"] if f["name"] == "contract")
    assert (found["rows"], contract["refused_rows"]) == (0, 3)


def test_versions_are_counted_apart(client: TestClient, store_dir: Path) -> None:
    args = ["train", "--demo", "churn", "--rows", "800", "--seed", "3", "--search", "fast", "--store-dir"]
    assert cli([*args, str(store_dir)]) == 0
    assert client.post("/v1/models/churn:reload").json()["version"] == "2"
    rows = varied_rows(manifest(client), 5)

    client.post("/v1/models/churn/versions/1:predict", json={"instances": rows[:3]})
    client.post("/v1/models/churn:predict", json={"instances": rows})

    rows_counted(client, 5)
    rows_counted(client, 3, "?version=1")
    assert drift(client)["version"] == "2"


def test_two_replicas_add_into_the_same_buckets(store_dir: Path, redis: RedisServer) -> None:
    with drift_app(store_dir, redis.url) as one, drift_app(store_dir, redis.url) as other:
        rows = varied_rows(manifest(one), 40)
        one.post("/v1/models/churn:predict", json={"instances": rows[:15]})
        other.post("/v1/models/churn:predict", json={"instances": rows[15:]})

        rows_counted(one, 40)
        assert drift(other)["rows"] == 40


def test_a_bucket_expires_at_its_end_plus_the_retention_whoever_flushes_it(
    client: TestClient, redis: RedisServer
) -> None:
    rows = varied_rows(manifest(client), 2)
    direct = redis_py.Redis.from_url(redis.url, decode_responses=True)
    try:
        client.post("/v1/models/churn:predict", json={"instances": rows[:1]})
        rows_counted(client, 1)
        first = {key: direct.expiretime(key) for key in direct.keys("mlstack:drift:churn:1:*")}
        client.post("/v1/models/churn:predict", json={"instances": rows[1:]})
        rows_counted(client, 2)
        again = {key: direct.expiretime(key) for key in first}
    finally:
        direct.close()

    assert first == again  # flushed again (by any replica): the same instant
    assert first == {key: int(key.rsplit(":", 1)[1]) + 60 + 86_400 for key in first}


@pytest.mark.faults
def test_without_redis_requests_are_answered_and_counting_resumes_after(
    client: TestClient, redis: RedisServer
) -> None:
    rows = varied_rows(manifest(client), 10)
    client.post("/v1/models/churn:predict", json={"instances": rows[:2]})
    rows_counted(client, 2)
    redis.stop()
    try:
        for row in rows[2:6]:
            response = client.post("/v1/models/churn:predict", json={"instances": [row]})
            assert response.status_code == 200
        wait_until(lambda: client.app.state.drift.failing, timeout_s=5)  # a flush has failed meanwhile
        unavailable = client.get("/v1/models/churn/drift")
    finally:
        redis.start()
    client.post("/v1/models/churn:predict", json={"instances": rows[6:]})

    assert unavailable.status_code == 503
    assert "Redis" in unavailable.json()["error"]
    # the restarted Redis is empty: the new rows arrive, and those counted while it was away are lost
    # unless no flush came round in the meantime
    wait_until(lambda: drift(client)["rows"] >= 4, timeout_s=5)
    assert drift(client)["rows"] in (4, 8)


def test_the_gauges_carry_the_drift_of_the_current_version(client: TestClient) -> None:
    client.post("/v1/models/churn:predict", json={"instances": varied_rows(manifest(client), 7)})

    def exposed() -> bool:
        text = client.get("/metrics").text
        return 'mlstack_drift_rows{model="churn",version="1"} 7.0' in text

    wait_until(exposed, timeout_s=5)
    text = client.get("/metrics").text
    assert 'mlstack_drift_enough_rows{model="churn",version="1"} 0.0' in text
    assert 'mlstack_drift_score{feature="tenure_months",measure="js",model="churn",version="1"}' in text
    assert 'mlstack_drift_flagged{feature="contract",model="churn",version="1"} 0.0' in text


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("?window=15", "window"),
        ("?window=0m", "window"),
        ("?window=2d", "window"),
        ("?window=-5m", "window"),
        ("?version=one", "version"),
        ("?windw=15m", "windw"),
        ("?window=5m&window=10m", "window"),
    ],
)
def test_bad_query_parameters_get_a_400_naming_them(client: TestClient, query: str, named: str) -> None:
    response = client.get(f"/v1/models/churn/drift{query}")

    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{named}: ")


def test_unknown_models_and_versions_are_404_and_no_redis_is_503(store_dir: Path) -> None:
    with drift_app(store_dir, None) as client:
        unset = client.get("/v1/models/churn/drift")
    with drift_app(store_dir, "redis://127.0.0.1:9/0") as client:
        model = client.get("/v1/models/nope/drift")
        version = client.get("/v1/models/churn/drift?version=9")

    assert (unset.status_code, unset.json()["error"]) == (503, unset.json()["error"])
    assert "BACKEND_REDIS_URL" in unset.json()["error"]
    assert (model.status_code, version.status_code) == (404, 404)
    assert version.json()["error"] == "model 'churn' has no version '9'"


def test_the_route_is_documented_with_its_parameters_and_answer(shared_client: TestClient) -> None:
    document = shared_client.get("/openapi.json").json()
    route = document["paths"]["/v1/models/{model}/drift"]["get"]

    assert {p["name"] for p in route["parameters"]} == {"model", "window", "version"}
    assert route["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("DriftReport")
    assert {"400", "404", "503"} <= set(route["responses"])
    assert "FeatureDrift" in document["components"]["schemas"]

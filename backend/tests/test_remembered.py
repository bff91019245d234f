"""Whole answers remembered for byte-identical bodies: only wholly cached ones, never stale, never for
recommendations, and nothing while Redis is unreachable. Real app, real redis-server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from mlstack.api.answer import Answer, Edge
from mlstack.api.memory import AnswerMemory
from mlstack.api.v1_codec import V1
from mlstack.api.v2_codec import V2
from mlstack.cli import main as cli
from mlstack.serving.core import Predictor

from .servers import RedisServer
from .test_api_v1 import varied_rows

PREDICT = "/v1/models/churn:predict"


@pytest.fixture
def body(cached_client: TestClient) -> bytes:
    return orjson.dumps({"instances": varied_rows(cached_client.get("/v1/models/churn").json(), 1)})


class Counted:
    """A protocol's real edge, counting the answers it computes: an answer from memory makes none."""

    def __init__(self, edge: Edge = V1) -> None:
        self.edge, self.name = edge, edge.name
        self.answered = 0

    async def answer(self, predictor: Predictor, model: str, version: str | None, body: bytes) -> Answer:
        self.answered += 1
        return await self.edge.answer(predictor, model, version, body)


def answer(client: TestClient, body: bytes, counted: Counted, version: str | None = None) -> Any:
    memory: AnswerMemory = client.app.state.answers  # type: ignore[attr-defined]
    return client.portal.call(memory.answer, counted, "churn", version, body)  # type: ignore[union-attr]


def post(client: TestClient, body: bytes, url: str = PREDICT) -> tuple[str, bytes]:
    response = client.post(url, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    return response.headers["X-Cache"], response.content


def remembered(client: TestClient, body: bytes) -> None:
    """Sent three times, with time for the miss to reach Redis: a miss, a hit through Redis, then kept."""
    for _ in range(3):
        post(client, body)
        time.sleep(0.1)


def test_a_body_sent_again_is_answered_from_memory_once_its_rows_were_hits(
    cached_client: TestClient, body: bytes
) -> None:
    counted = Counted()
    answers = []
    for _ in range(4):
        answers.append(answer(cached_client, body, counted))
        time.sleep(0.1)  # the miss's row reaches Redis in the background

    assert [headers["X-Cache"] for _, headers in answers] == ["MISS", "HIT", "HIT", "HIT"]
    assert len({payload for payload, _ in answers}) == 1
    assert counted.answered == 2  # a miss, a hit through Redis, then memory


def test_a_v2_body_sent_again_is_answered_from_memory_with_its_id(cached_client: TestClient) -> None:
    manifest = cached_client.get("/v1/models/churn").json()
    row = varied_rows(manifest, 1)[0]
    inputs = []
    for feature in manifest["inputs"]:
        datatype = {"number": "FP64", "integer": "INT64", "boolean": "BOOL"}.get(feature["type"], "BYTES")
        inputs.append(
            {"name": feature["name"], "shape": [1], "datatype": datatype, "data": [row[feature["name"]]]}
        )
    body = orjson.dumps({"id": "same-request-7", "inputs": inputs})
    counted = Counted(V2)
    answers = []
    for _ in range(4):
        answers.append(answer(cached_client, body, counted))
        time.sleep(0.1)

    assert [headers["X-Cache"] for _, headers in answers] == ["MISS", "HIT", "HIT", "HIT"]
    assert {orjson.loads(payload)["id"] for payload, _ in answers} == {"same-request-7"}
    assert len({payload for payload, _ in answers}) == 1
    assert counted.answered == 2


def test_an_equal_body_spelled_differently_is_not_taken_for_the_same_bytes(
    cached_client: TestClient, body: bytes
) -> None:
    respelled = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    remembered(cached_client, body)
    counted = Counted()

    payload, headers = answer(cached_client, respelled, counted)

    assert headers["X-Cache"] == "HIT"  # its row is cached, by its canonical form
    assert counted.answered == 1
    assert payload == post(cached_client, body)[1]


def test_a_new_version_never_gets_the_old_versions_answer(
    cached_client: TestClient, store_dir: Path, body: bytes
) -> None:
    remembered(cached_client, body)
    args = ["train", "--demo", "churn", "--rows", "800", "--seed", "3", "--search", "fast", "--store-dir"]
    assert cli([*args, str(store_dir)]) == 0
    assert cached_client.post("/v1/models/churn:reload").json()["version"] == "2"

    current = post(cached_client, body)
    pinned = post(cached_client, body, "/v1/models/churn/versions/1:predict")

    assert current[0] == "MISS"
    assert orjson.loads(current[1])["model_version"] == "2"
    assert pinned[0] == "HIT"
    assert orjson.loads(pinned[1])["model_version"] == "1"


@pytest.mark.faults
def test_nothing_is_answered_from_memory_while_redis_is_down(
    cached_client: TestClient, redis: RedisServer, body: bytes
) -> None:
    remembered(cached_client, body)
    redis.stop()
    try:
        time.sleep(0.3)  # the watch connection closes with Redis
        status, payload = post(cached_client, body)
    finally:
        redis.start()

    assert status == "BYPASS"
    assert orjson.loads(payload)["predictions"]


def test_a_canary_keeps_its_share_when_answers_come_from_memory(
    cached_client: TestClient, store_dir: Path, body: bytes
) -> None:
    """One draw of the split per request, whether the answer is remembered or computed."""
    args = ["train", "--demo", "churn", "--rows", "800", "--seed", "3", "--search", "fast", "--no-promote"]
    assert cli([*args, "--store-dir", str(store_dir)]) == 0
    assert (
        cached_client.put("/v1/models/churn/canary", json={"version": "2", "percent": 20}).status_code == 200
    )
    registry = cached_client.app.state.registry  # type: ignore[attr-defined]
    draws = []
    real_choose = registry.choose
    registry.choose = lambda model: draws.append(model) or real_choose(model)
    versions = []
    for _ in range(400):
        versions.append(orjson.loads(post(cached_client, body)[1])["model_version"])

    assert len(draws) == 400
    assert 50 <= versions.count("2") <= 110  # 20% of 400 is 80

"""Whole answers remembered for byte-identical bodies: only wholly cached ones, never stale, never for
recommendations, and nothing while Redis is unreachable. Real app, real redis-server."""

from __future__ import annotations

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
from waiting import wait_for, wait_until

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
    memory: AnswerMemory = client.app.state.answers  # type: ignore[attr-defined]  # Starlette's State holds what the app set at start
    return client.portal.call(memory.answer, counted, "churn", version, body)  # type: ignore[union-attr]  # TestClient's portal exists inside its `with`


def post(client: TestClient, body: bytes, url: str = PREDICT) -> tuple[str, bytes]:
    response = client.post(url, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    return response.headers["X-Cache"], response.content


def cached(redis: RedisServer) -> None:
    """Wait until the miss's row is in Redis: the cache is filled just after the answer, in the background."""
    wait_until(lambda: redis.keys() >= 1, what="the row cached")


def remembered(client: TestClient, redis: RedisServer, body: bytes) -> None:
    """Sent three times: a miss (its row then reaches Redis), a hit through Redis, then kept."""
    post(client, body)
    cached(redis)
    post(client, body)
    post(client, body)


def test_a_body_sent_again_is_answered_from_memory_once_its_rows_were_hits(
    cached_client: TestClient, redis: RedisServer, body: bytes
) -> None:
    counted = Counted()
    answers = [answer(cached_client, body, counted)]
    cached(redis)
    answers += [answer(cached_client, body, counted) for _ in range(3)]

    assert [headers["X-Cache"] for _, headers in answers] == ["MISS", "HIT", "HIT", "HIT"]
    assert len({payload for payload, _ in answers}) == 1
    assert counted.answered == 2  # a miss, a hit through Redis, then memory


def test_a_v2_body_sent_again_is_answered_from_memory_with_its_id(
    cached_client: TestClient, redis: RedisServer
) -> None:
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
    answers = [answer(cached_client, body, counted)]
    cached(redis)
    answers += [answer(cached_client, body, counted) for _ in range(3)]

    assert [headers["X-Cache"] for _, headers in answers] == ["MISS", "HIT", "HIT", "HIT"]
    assert {orjson.loads(payload)["id"] for payload, _ in answers} == {"same-request-7"}
    assert len({payload for payload, _ in answers}) == 1
    assert counted.answered == 2


def test_an_equal_body_spelled_differently_is_not_taken_for_the_same_bytes(
    cached_client: TestClient, redis: RedisServer, body: bytes
) -> None:
    respelled = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    remembered(cached_client, redis, body)
    counted = Counted()

    payload, headers = answer(cached_client, respelled, counted)

    assert headers["X-Cache"] == "HIT"  # its row is cached, by its canonical form
    assert counted.answered == 1
    assert payload == post(cached_client, body)[1]


def test_a_new_version_never_gets_the_old_versions_answer(
    cached_client: TestClient, store_dir: Path, redis: RedisServer, body: bytes
) -> None:
    remembered(cached_client, redis, body)
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
    remembered(cached_client, redis, body)
    redis.stop()
    try:  # the remembered answer is dropped once the watch connection closes with Redis
        _, payload = wait_for(lambda: post(cached_client, body), lambda answer: answer[0] == "BYPASS")
    finally:
        redis.start()

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
    registry = cached_client.app.state.registry  # type: ignore[attr-defined]  # Starlette's State holds what the app set at start
    draws = []
    real_choose = registry.choose
    registry.choose = lambda model: draws.append(model) or real_choose(model)
    versions = []
    for _ in range(400):
        versions.append(orjson.loads(post(cached_client, body)[1])["model_version"])

    assert len(draws) == 400
    assert 50 <= versions.count("2") <= 110  # 20% of 400 is 80

"""The OpenAPI document against the code: schemathesis against a real replica, the document's own shape,
and the response check every API test runs (documented.py), tested itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from schemathesis.core.failures import FailureGroup

from documented import Documented
from mlstack.cli import main as cli

from .servers import redis_server, running_replica

SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES_PER_OPERATION = 10
"""With the coverage and stateful phases, about 1,500 requests over the 29 routes in well under a minute."""


@pytest.fixture(scope="module")
def store_with_recommender(trained_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("openapi") / "store"
    shutil.copytree(trained_store, store)
    assert cli(["train", "--demo", "recommend", "--rows", "500", "--store-dir", str(store)]) == 0
    return store


@pytest.fixture(scope="module")
def document(shared_client: TestClient) -> dict[str, Any]:
    return dict(shared_client.get("/openapi.json").json())


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    store_with_recommender: Path, tmp_path: Path
) -> None:
    log = tmp_path / "replica.log"
    with (
        redis_server(tmp_path) as cache,
        redis_server(tmp_path) as user_data,
        running_replica(
            store_with_recommender, log, redis_url=cache.url, users_redis_url=user_data.url
        ) as url,
    ):
        operations = sum(len(item) for item in httpx.get(f"{url}/openapi.json").json()["paths"].values())
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(SCHEMATHESIS_CONFIG), "run"]
            + [
                f"{url}/openapi.json",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                "1",
                "--no-color",
            ],
            cwd=tmp_path,  # its example database goes there
            capture_output=True,
            text=True,
            timeout=900,
        )

    assert run.returncode == 0, (
        f"{run.stdout[-8000:]}\n{run.stderr[-2000:]}\nreplica log:\n{log.read_text()[-3000:]}"
    )
    assert f"Tested: {operations}" in run.stdout  # every route


def test_every_route_documents_its_answer_and_every_reference_resolves(document: dict[str, Any]) -> None:
    undocumented = [
        f"{method.upper()} {path} {status}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        for status, answer in operation["responses"].items()
        if status != "204" and not answer.get("content", {}).get("application/json", {}).get("schema")
    ]
    dangling = [
        ref for ref in _refs(document) if ref.rsplit("/", 1)[-1] not in document["components"]["schemas"]
    ]

    assert len(document["paths"]) >= 20
    assert undocumented == []
    assert dangling == []


def test_the_document_states_the_limits_and_patterns_the_code_checks(document: dict[str, Any]) -> None:
    new_user = document["paths"]["/v1/users"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    predict = document["paths"]["/v1/models/{model}:predict"]["post"]
    instances = predict["requestBody"]["content"]["application/json"]["schema"]["properties"]["instances"]
    user = document["paths"]["/v1/users/{user_id}"]["get"]

    assert new_user["properties"]["events"]["maxItems"] == 100  # BACKEND_USERS_MAX_EVENTS_PER_REQUEST
    assert instances["maxItems"] == 1000  # BACKEND_MAX_INSTANCES
    assert user["parameters"][0]["schema"]["pattern"] == "^[A-Za-z0-9_.-]{1,64}$"
    assert predict["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    assert "HTTPValidationError" not in document["components"]["schemas"]  # every error is {"error": ...}


@pytest.fixture
def pretender(shared_client: TestClient, document: dict[str, Any]) -> Iterator[tuple[TestClient, Documented]]:
    """An app that answers GET /v1/models/{model} as told, checked against the replica's document."""
    served = shared_client.get("/v1/models/churn").json()
    answers = {"churn": (200, served), "broken": (200, {**served, "task": 7}), "buggy": (500, {"error": "x"})}
    app = FastAPI()

    @app.get("/v1/models/{model}")
    async def answer(model: str) -> JSONResponse:
        status, body = answers[model]
        return JSONResponse(body, status_code=status)

    documented = Documented(document)
    with TestClient(app) as client:
        client.event_hooks["response"].append(documented.check)
        yield client, documented


def test_the_response_check_passes_a_true_answer_and_refuses_a_wrong_one(
    pretender: tuple[TestClient, Documented],
) -> None:
    client, documented = pretender

    assert client.get("/v1/models/churn").status_code == 200
    assert documented.checked == 1
    with pytest.raises(FailureGroup) as wrong:
        client.get("/v1/models/broken")
    assert "ServedManifest/properties/task" in str(wrong.value.exceptions[0])
    with pytest.raises(AssertionError, match="answered 500, which it does not document"):
        client.get("/v1/models/buggy")


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)

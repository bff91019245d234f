"""Promote, roll back, canary, delete and verify: from the command line and over HTTP, with their refusals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from documented import check_responses
from mlstack.cli import main as mlstack
from mlstack.main import create_app
from mlstack.settings import Settings

from .conftest import example_row
from .test_store import flip_one_byte


@pytest.fixture
def store(store_dir: Path) -> Path:
    """churn v1 current, v2 (another seed) published but not current."""
    args = ["train", "--demo", "churn", "--rows", "800", "--seed", "3", "--search", "fast", "--no-promote"]
    assert mlstack([*args, "--store-dir", str(store_dir)]) == 0
    return store_dir


@pytest.fixture
def client(store: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(store_dir=store, store_poll_s=0))) as client:
        check_responses(client)
        yield client


def cli(store: Path, *args: str) -> int:
    return mlstack([*args, "--store-dir", str(store)])


def served(client: TestClient, row: dict[str, Any], n: int = 1) -> Counter[str]:
    answers = [client.post("/v1/models/churn:predict", json={"instances": [row]}) for _ in range(n)]
    return Counter(a.headers["X-Model-Version"] for a in answers)


def test_promote_refuses_a_worse_version_unless_forced(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(store, "promote", "churn", "2") == 2
    assert "worse than current version '1'" in capsys.readouterr().err
    assert cli(store, "promote", "churn", "2", "--force") == 0
    assert cli(store, "rollback", "churn") == 0
    assert cli(store, "rollback", "churn") == 2  # nothing earlier to go back to
    assert (store / "churn" / "CURRENT").read_text().strip() == "1"


def test_verify_and_promote_refuse_a_tampered_version(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flip_one_byte(store / "churn" / "2" / "model.joblib")

    assert cli(store, "verify") == 1
    assert "FAILED  churn/2: churn/2/model.joblib: sha256 check failed" in capsys.readouterr().out
    assert cli(store, "promote", "churn", "2", "--force") == 2
    assert "sha256" in capsys.readouterr().err
    assert cli(store, "promote", "churn", "9") == 2


def test_http_promote_and_rollback_switch_what_answers(client: TestClient) -> None:
    row = example_row(client.get("/v1/models/churn").json())

    promoted = client.put("/v1/models/churn/current", json={"version": "2", "force": True})
    after_promote = served(client, row, 3)
    rolled = client.post("/v1/models/churn:rollback")

    assert (promoted.status_code, promoted.json()["previous_version"]) == (200, "1")
    assert after_promote == {"2": 3}
    assert rolled.json()["version"] == "1"
    assert served(client, row, 3) == {"1": 3}
    assert client.post("/v1/models/churn:rollback").status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", "/v1/models/churn/current", {"version": "9"}, 404),
        ("PUT", "/v1/models/nosuch/current", {"version": "1"}, 404),
        ("PUT", "/v1/models/churn/current", {"version": "2"}, 409),  # worse held-out metric
        ("PUT", "/v1/models/churn/current", {"version": 2}, 422),
        ("PUT", "/v1/models/churn/canary", {"version": "1", "percent": 10}, 409),  # already current
        ("PUT", "/v1/models/churn/canary", {"version": "2", "percent": 0}, 422),
        ("DELETE", "/v1/models/churn/versions/1", None, 409),  # current
        ("DELETE", "/v1/models/churn/versions/9", None, 404),
    ],
)
def test_admin_route_refusals(client: TestClient, method: str, path: str, body: Any, status: int) -> None:
    response = client.request(method, path, json=body)

    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}


def test_a_tampered_version_is_refused_by_the_replica_and_the_old_one_keeps_serving(
    client: TestClient, store: Path
) -> None:
    row = example_row(client.get("/v1/models/churn").json())
    flip_one_byte(store / "churn" / "2" / "model.joblib")
    (store / "churn" / "CURRENT").write_text("2\n")  # someone moved CURRENT by hand

    reload = client.post("/v1/models/churn:reload")

    assert reload.status_code == 409
    assert "churn/2/model.joblib: sha256 check failed" in reload.json()["error"]
    assert served(client, row, 3) == {"1": 3}


def test_a_20_percent_canary_gets_a_fifth_of_1000_predictions(client: TestClient) -> None:
    row = example_row(client.get("/v1/models/churn").json())
    assert client.put("/v1/models/churn/canary", json={"version": "2", "percent": 20}).status_code == 200

    split = served(client, row, 1000)
    assert client.delete("/v1/models/churn/canary").status_code == 204

    assert 150 <= split["2"] <= 250
    assert split["1"] + split["2"] == 1000
    assert served(client, row, 50) == {"1": 50}


def test_deleting_a_version_that_is_neither_current_nor_canary(client: TestClient, store: Path) -> None:
    assert client.delete("/v1/models/churn/versions/2").status_code == 204
    assert not (store / "churn" / "2").exists()
    assert client.get("/v1/models/churn/versions/2").status_code == 404

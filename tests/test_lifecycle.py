"""The model lifecycle on the real stack: retrain, promote, roll back and canary under live traffic."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlstack.cli import main as mlstack
from stack.native import NativeStack
from stacks import gateway_entries_of, predict, running_stack, steady_stream
from waiting import wait_until

pytestmark = pytest.mark.stack
CHURN = "/v1/models/churn"


@pytest.fixture(scope="module")
def lifecycle_stack(store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """Its own copy of the store (these tests publish and move versions) and two replicas that do not poll
    the store: every change must reach them through the Redis announcement."""
    store = tmp_path_factory.mktemp("lifecycle") / "store"
    shutil.copytree(store_dir, store)
    run_dir = tmp_path_factory.mktemp("lifecycle-run")
    with running_stack(run_dir, store, replicas=2, replica_env={"BACKEND_STORE_POLL_S": "0"}) as stack:
        yield stack


@pytest.fixture(scope="module")
def row(lifecycle_stack: NativeStack) -> dict[str, Any]:
    manifest = admin(lifecycle_stack, "GET", CHURN).json()
    return {f["name"]: f["typical"] for f in manifest["inputs"]}


def admin(stack: NativeStack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method, stack.gateway_url + path, headers={"X-API-Key": stack.key("admin")}, **kwargs
    )


def publish(stack: NativeStack, seed: int) -> None:
    """Retraining, as an operator runs it: a new version beside the served one, CURRENT untouched."""
    args = [
        "train",
        "--demo",
        "churn",
        "--rows",
        "800",
        "--seed",
        str(seed),
        "--search",
        "fast",
        "--no-promote",
    ]
    assert mlstack([*args, "--store-dir", str(stack.options.store_dir)]) == 0


def every_replica_answers(
    stack: NativeStack, row: dict[str, Any], version: str, timeout_s: float = 10.0
) -> None:
    """Within the timeout, 20 requests in a row all come from `version`, and every replica answered some.

    nginx's round robin is per worker and shared with the test's background traffic, so one batch of 20
    can land on a single replica by turn-taking alone: try again rather than fail on that."""
    deadline = time.monotonic() + timeout_s
    while True:
        stamp = f"{time.monotonic_ns()}"
        answers = [
            predict(stack, [row], headers={"X-Request-ID": f"check-{stamp}-{i:02d}"}) for i in range(20)
        ]
        versions = {a.headers["X-Model-Version"] for a in answers}
        upstreams = {e["upstream_addr"] for e in gateway_entries_of(stack, f"check-{stamp}-", 20)}
        if (versions == {version} and len(upstreams) == len(stack.replicas)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert versions == {version}
    assert len(upstreams) == len(stack.replicas)


def every_replica_sends_some_to(stack: NativeStack, row: dict[str, Any], version: str) -> bool:
    """Each replica, asked directly, answers some of 20 unpinned predictions with `version`."""
    headers = {"X-Gateway-Token": stack.token}
    for replica in stack.replicas:
        url = f"http://127.0.0.1:{replica.port}{CHURN}:predict"
        answers = [httpx.post(url, json={"instances": [row]}, headers=headers) for _ in range(20)]
        if version not in {a.headers["X-Model-Version"] for a in answers}:
            return False
    return True


def test_retrain_promote_and_roll_back_under_load_lose_nothing(
    lifecycle_stack: NativeStack, row: dict[str, Any]
) -> None:
    stack = lifecycle_stack
    send = lambda i: predict(stack, [{**row, "monthly_charges": 20.0 + i % 400}])  # noqa: E731
    with steady_stream(send, clients=3, max_s=60) as outcomes:
        publish(stack, seed=5)
        promoted = admin(stack, "PUT", f"{CHURN}/current", json={"version": "2", "force": True})
        every_replica_answers(stack, row, "2")
        rolled_back = admin(stack, "POST", f"{CHURN}:rollback")
        every_replica_answers(stack, row, "1")

    assert (promoted.status_code, rolled_back.status_code) == (200, 200)
    assert outcomes[200] > 100
    assert set(outcomes) == {200}, outcomes


def test_a_new_version_misses_where_the_old_one_hits(
    lifecycle_stack: NativeStack, row: dict[str, Any]
) -> None:
    stack = lifecycle_stack
    body = {"instances": [{**row, "total_charges": 4321.0}]}
    pinned = lambda v: admin(stack, "POST", f"{CHURN}/versions/{v}:predict", json=body)  # noqa: E731
    pinned("1")
    wait_until(lambda: pinned("1").headers["X-Cache"] == "HIT", what="the row cached just after the answer")

    old, new = pinned("1"), pinned("2")

    assert (old.headers["X-Cache"], old.headers["X-Model-Version"]) == ("HIT", "1")
    assert (new.headers["X-Cache"], new.headers["X-Model-Version"]) == ("MISS", "2")


def test_a_new_version_never_answers_with_an_old_versions_cached_explanation(
    lifecycle_stack: NativeStack, row: dict[str, Any]
) -> None:
    stack = lifecycle_stack
    body = {"instances": [{**row, "total_charges": 5432.0}]}
    explain = lambda path: admin(stack, "POST", f"{CHURN}{path}:explain", json=body)  # noqa: E731
    first = explain("")
    wait_until(lambda: explain("").headers["X-Cache"] == "HIT", 5.0, "version 1's explanation cached")
    pinned = explain("/versions/2")
    promoted = admin(stack, "PUT", f"{CHURN}/current", json={"version": "2", "force": True})
    every_replica_answers(stack, row, "2")
    current = explain("")
    admin(stack, "POST", f"{CHURN}:rollback")
    every_replica_answers(stack, row, "1")
    back = explain("")

    why = lambda answer: answer.json()["explanations"][0]  # noqa: E731
    assert (first.headers["X-Cache"], first.headers["X-Model-Version"]) == ("MISS", "1")
    assert (pinned.headers["X-Cache"], pinned.headers["X-Model-Version"]) == ("MISS", "2")
    assert promoted.status_code == 200
    assert current.headers["X-Model-Version"] == "2"
    assert why(current) == why(pinned) != why(first)  # version 2's own explanation, not version 1's
    assert why(current)["base_value"] != why(first)["base_value"]
    assert (back.headers["X-Cache"], back.headers["X-Model-Version"], why(back)) == ("HIT", "1", why(first))


def test_a_tampered_version_is_refused_and_traffic_stays_on_the_old(
    lifecycle_stack: NativeStack, row: dict[str, Any]
) -> None:
    stack = lifecycle_stack
    publish(stack, seed=7)
    version = admin(stack, "GET", "/v1/models").json()["models"][0]["versions"][-1]
    artifact = stack.options.store_dir / "churn" / version / "model.joblib"
    artifact.chmod(0o644)
    artifact.write_bytes(artifact.read_bytes()[:-1] + b"\x00")

    refused = admin(stack, "PUT", f"{CHURN}/current", json={"version": version, "force": True})

    assert refused.status_code == 409
    assert f"churn/{version}/model.joblib: sha256 check failed" in refused.json()["error"]
    every_replica_answers(stack, row, "1")
    assert admin(stack, "DELETE", f"{CHURN}/versions/{version}").status_code == 204


def test_a_20_percent_canary_and_off(lifecycle_stack: NativeStack, row: dict[str, Any]) -> None:
    stack = lifecycle_stack
    truth = {
        v: admin(stack, "POST", f"{CHURN}/versions/{v}:predict", json={"instances": [row]}).json()
        for v in ("1", "2")
    }
    assert admin(stack, "PUT", f"{CHURN}/canary", json={"version": "2", "percent": 20}).status_code == 200
    wait_until(lambda: every_replica_sends_some_to(stack, row, "2"), what="the canary on every replica")
    split: Counter[str] = Counter()
    with httpx.Client(base_url=stack.gateway_url, headers={"X-API-Key": stack.key("predict")}) as client:
        for _ in range(1000):
            answer = client.post(f"{CHURN}:predict", json={"instances": [row]})
            version = answer.headers["X-Model-Version"]
            split[version] += 1
            # the cache never answers with another version's prediction (ONNX's float32 kernels may
            # differ in the last bit between two computations of the same row: a cache miss on another
            # replica, or the row inside a batch)
            got, want = answer.json()["probabilities"][0], truth[version]["probabilities"][0]
            assert max(abs(got[c] - want[c]) for c in want) < 1e-6
            assert answer.json()["model_version"] == version
    assert admin(stack, "DELETE", f"{CHURN}/canary").status_code == 204
    stats = admin(stack, "GET", "/v1/stats").json()["replicas"]

    assert 150 <= split["2"] <= 250, split
    every_replica_answers(stack, row, "1")
    assert {key for replica in stats for key in replica["predictions"]} >= {"churn:1", "churn:2"}


def test_a_reload_through_the_gateway_reaches_every_replica(
    lifecycle_stack: NativeStack, row: dict[str, Any]
) -> None:
    stack = lifecycle_stack
    store = str(stack.options.store_dir)
    assert (
        mlstack(["promote", "churn", "2", "--force", "--store-dir", store]) == 0
    )  # the store changes under them

    assert admin(stack, "POST", f"{CHURN}:reload").json()["version"] == "2"  # one request, one replica
    every_replica_answers(stack, row, "2", timeout_s=1.0)
    assert mlstack(["rollback", "churn", "--store-dir", store]) == 0
    assert admin(stack, "POST", f"{CHURN}:reload").status_code == 200
    every_replica_answers(stack, row, "1", timeout_s=1.0)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", f"{CHURN}/current", {"version": "1"}),
        ("POST", f"{CHURN}:rollback", None),
        ("PUT", f"{CHURN}/canary", {"version": "2", "percent": 10}),
        ("DELETE", f"{CHURN}/canary", None),
        ("DELETE", f"{CHURN}/versions/2", None),
    ],
)
def test_lifecycle_routes_are_admin_only(
    lifecycle_stack: NativeStack, method: str, path: str, body: Any
) -> None:
    stack = lifecycle_stack
    as_predict = httpx.request(
        method, stack.gateway_url + path, json=body, headers={"X-API-Key": stack.key("predict")}
    )
    unknown_model = admin(stack, method, path.replace("churn", "nosuch"), json=body)

    assert as_predict.status_code == 403
    assert unknown_model.status_code == 404
    assert set(as_predict.json()) == set(unknown_model.json()) == {"error"}

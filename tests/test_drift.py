"""Live drift through the gateway against two replicas: rows drawn like the training data flag nothing; a
shifted number and a category never seen in training flag exactly those two, within seconds, from both
replicas' counts merged; a few dozen rows flag nothing; bad query parameters are a 400 naming them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pandas as pd
import pytest

from mlstack.cli import main as mlstack
from mlstack.training.datasets import demo_dataset
from stack.native import NativeStack
from stacks import gateway_entries_of, running_stack
from waiting import poll

pytestmark = pytest.mark.stack
MODELS = {"churn-open": ["--allow-unknown-categories"], "churn": [], "churn-few": []}
SIZES = (1, 7, 30, 64)
"""Rows per request, in turn: single rows and batches, counted row by row and a column at a time."""
FLAGGED_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def drift_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    store = tmp_path_factory.mktemp("drift-store")
    for name, extra in MODELS.items():
        args = ["train", "--demo", "churn", "--model", name, "--rows", "800", "--search", "fast", *extra]
        assert mlstack([*args, "--store-dir", str(store)]) == 0
    run = tmp_path_factory.mktemp("drift-run")
    # the gauges every second; everything else as configured by default (counts flushed every 2 s)
    with running_stack(
        run, store, replicas=2, with_ui=False, replica_env={"BACKEND_DRIFT_GAUGES_S": "1"}
    ) as stack:
        yield stack


def drawn_rows(count: int, seed: int) -> pd.DataFrame:
    """Rows from the generator the models were trained on (another seed): drawn like the training data."""
    return demo_dataset("churn", rows=count, seed=seed).frame.drop(columns=["churned"])


def as_instances(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))  # type: ignore[no-any-return]  # parsed JSON or YAML is Any


def send(stack: NativeStack, model: str, rows: list[dict[str, Any]], prefix: str) -> list[int]:
    """Every row, in requests of SIZES rows in turn, four at a time; the status of each request."""
    requests, start = [], 0
    while start < len(rows):
        size = SIZES[len(requests) % len(SIZES)]
        requests.append(rows[start : start + size])
        start += size

    def post(numbered: tuple[int, list[dict[str, Any]]]) -> int:
        i, instances = numbered
        headers = {"X-API-Key": stack.key("predict"), "X-Request-ID": f"{prefix}{i:06d}"}
        url = f"{stack.gateway_url}/v1/models/{model}:predict"
        return httpx.post(url, json={"instances": instances}, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(post, enumerate(requests)))


def drift(stack: NativeStack, model: str, query: str = "") -> httpx.Response:
    url = f"{stack.gateway_url}/v1/models/{model}/drift{query}"
    return httpx.get(url, headers={"X-API-Key": stack.key("predict")}, timeout=10)


def report_when(
    stack: NativeStack, model: str, done: Callable[[dict[str, Any]], bool], timeout_s: float
) -> dict[str, Any]:
    """The first report that is `done`, or the last one at the deadline."""

    def report() -> dict[str, Any]:
        response = drift(stack, model)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return poll(report, done, timeout_s, every_s=0.2)


def metrics_when(stack: NativeStack, line: str, timeout_s: float = 5.0) -> str:
    """A replica's /metrics once it shows `line` (or at the deadline)."""
    url, headers = f"{stack.gateway_url}/metrics", {"X-API-Key": stack.key("admin")}
    return poll(lambda: httpx.get(url, headers=headers).text, lambda text: line in text, timeout_s, 0.2)


def answered_by(stack: NativeStack, prefix: str, count: int) -> set[str]:
    return {e["upstream_addr"] for e in gateway_entries_of(stack, prefix, count)}


def test_like_training_flags_nothing_then_a_shift_and_a_new_category_flag_exactly_those(
    drift_stack: NativeStack,
) -> None:
    like = as_instances(drawn_rows(2_000, seed=11))
    statuses = send(drift_stack, "churn-open", like, "like-")
    assert set(statuses) == {200}
    calm = report_when(drift_stack, "churn-open", lambda r: r["rows"] >= 2_000, FLAGGED_WITHIN_S)

    shifted = drawn_rows(2_000, seed=12)
    shifted["tenure_months"] += 30
    shifted.loc[shifted.index[::4], "contract"] = "Three year"  # never seen in training; let through
    statuses = send(drift_stack, "churn-open", as_instances(shifted), "shifted-")
    sent = time.monotonic()
    drifted = report_when(
        drift_stack, "churn-open", lambda r: r["rows"] >= 4_000 and r["features_flagged"], FLAGGED_WITHIN_S
    )
    flagged_after_s = time.monotonic() - sent

    assert (calm["rows"], calm["status"], calm["features_flagged"]) == (2_000, "no_drift", [])
    assert set(statuses) == {200}
    assert drifted["rows"] == 4_000  # both replicas' counts, merged: every row sent, once
    assert sorted(drifted["features_flagged"]) == ["contract", "tenure_months"]
    assert flagged_after_s <= FLAGGED_WITHIN_S
    features = {f["name"]: f for f in drifted["features"]}
    assert "unseen" in features["contract"]["reasons"]
    assert features["contract"]["unseen_share"] == pytest.approx(500 / 4_000)
    assert {"js", "out_of_range"} <= set(features["tenure_months"]["reasons"])
    replicas = {f"127.0.0.1:{replica.port}" for replica in drift_stack.replicas}
    assert answered_by(drift_stack, "like-", 100) == answered_by(drift_stack, "shifted-", 100) == replicas


def test_on_a_model_that_refuses_new_categories_the_refused_share_flags_them(
    drift_stack: NativeStack,
) -> None:
    shifted = drawn_rows(2_000, seed=13)
    shifted["tenure_months"] += 30
    unseen = shifted.index[::10]
    shifted.loc[unseen, "contract"] = "Three year"
    refused = as_instances(shifted.loc[unseen])
    accepted = as_instances(shifted.drop(index=unseen))

    statuses = send(drift_stack, "churn", accepted, "strict-")
    refusals = send(drift_stack, "churn", refused, "refused-")  # every request holds an unseen category
    sent = time.monotonic()
    report = report_when(
        drift_stack, "churn", lambda r: r["rows"] + r["refused_rows"] >= 2_000, FLAGGED_WITHIN_S
    )

    assert (set(statuses), set(refusals)) == ({200}, {422})
    assert (report["rows"], report["refused_rows"]) == (1_800, 200)
    assert time.monotonic() - sent <= FLAGGED_WITHIN_S
    assert sorted(report["features_flagged"]) == ["contract", "tenure_months"]
    contract = next(f for f in report["features"] if f["name"] == "contract")
    assert (contract["reasons"], contract["refused_rows"]) == (["refused"], 200)
    # and the replicas' gauges say the same (recomputed every second here)
    gauges = metrics_when(drift_stack, 'mlstack_drift_rows{model="churn",version="1"} 1800.0')
    assert 'mlstack_drift_flagged{feature="contract",model="churn",version="1"} 1.0' in gauges
    assert 'mlstack_drift_flagged{feature="tenure_months",model="churn",version="1"} 1.0' in gauges
    assert 'mlstack_drift_flagged{feature="monthly_charges",model="churn",version="1"} 0.0' in gauges


def test_a_few_dozen_rows_drawn_like_training_flag_nothing(drift_stack: NativeStack) -> None:
    assert set(send(drift_stack, "churn-few", as_instances(drawn_rows(40, seed=14)), "few-")) == {200}

    report = report_when(drift_stack, "churn-few", lambda r: r["rows"] >= 40, FLAGGED_WITHIN_S)

    assert (report["rows"], report["status"], report["features_flagged"]) == (40, "insufficient_data", [])
    assert report["drifted_share"] == 0.0


@pytest.mark.parametrize(
    ("query", "named"),
    [("?window=15", "window"), ("?window=3d", "window"), ("?version=x", "version"), ("?since=1h", "since")],
)
def test_bad_query_parameters_get_a_400_naming_them(drift_stack: NativeStack, query: str, named: str) -> None:
    response = drift(drift_stack, "churn-open", query)

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"].startswith(f"{named}: ")


def test_every_scope_reads_drift_and_no_key_is_a_401(drift_stack: NativeStack) -> None:
    url = f"{drift_stack.gateway_url}/v1/models/churn-open/drift?window=5m"
    for scope in ("predict", "users", "admin"):
        assert httpx.get(url, headers={"X-API-Key": drift_stack.key(scope)}).status_code == 200
    assert httpx.get(url).status_code == 401

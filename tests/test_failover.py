"""Faults under load: a replica killed or Redis stopped while clients keep predicting."""

from __future__ import annotations

from typing import Any

import pytest

from stack.native import NativeStack
from stacks import across_a_replica_kill, predict
from waiting import wait_for, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.faults]


def test_a_killed_replica_costs_no_request(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    def send(i: int) -> Any:
        return predict(stack, [{**churn_row, "monthly_charges": 1000.0 + i}])  # distinct rows: no cache hits

    outcomes = across_a_replica_kill(stack, send, before=20, after=40)

    assert outcomes[200] > 50
    assert set(outcomes) == {200}, outcomes


def test_redis_down_still_answers_then_hits_return(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    row = {**churn_row, "support_calls": 7}
    predict(stack, [row])
    stack.stop_redis()
    try:
        down = [predict(stack, [row]) for _ in range(10)]
    finally:
        stack.start_redis()
    # each replica's breaker waits BACKEND_CACHE_RETRY_AFTER_S before it tries Redis again; the emptied
    # cache is refilled by these very requests, through both replicas
    wait_for(
        lambda: [predict(stack, [row]).headers["X-Cache"] for _ in range(4)],
        lambda again: again == ["HIT"] * 4,
        what="hits through every replica",
    )

    assert {(r.status_code, r.headers["X-Cache"]) for r in down} == {(200, "BYPASS")}


def test_same_instance_twice_misses_then_hits_across_replicas(
    stack: NativeStack, churn_row: dict[str, Any]
) -> None:
    row = {**churn_row, "tenure_months": 61}
    first = predict(stack, [row])
    wait_until(lambda: predict(stack, [row]).headers["X-Cache"] == "HIT", what="the row cached")
    later = [predict(stack, [dict(reversed(row.items()))]) for _ in range(4)]

    assert first.headers["X-Cache"] == "MISS"
    assert {r.headers["X-Cache"] for r in later} == {"HIT"}
    assert {r.json()["probabilities"][0]["1"] for r in later} == {first.json()["probabilities"][0]["1"]}

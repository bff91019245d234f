"""Faults under load: a replica killed, Redis stopped, keys rotated, while a client keeps predicting."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from stacks import predict

from stack.keys import ApiKey
from stack.native import NativeStack

pytestmark = [pytest.mark.stack, pytest.mark.faults]


@contextmanager
def steady_stream(send: Callable[[int], httpx.Response], max_s: float = 20.0) -> Iterator[Counter[Any]]:
    """Sends requests one after another on fresh connections until the block ends; counts the outcomes."""
    outcomes: Counter[Any] = Counter()
    stop = threading.Event()

    def run() -> None:
        deadline = time.monotonic() + max_s
        i = 0
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                outcomes[send(i).status_code] += 1
            except httpx.HTTPError as exc:
                outcomes[type(exc).__name__] += 1
            i += 1

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        yield outcomes
    finally:
        stop.set()
        worker.join(timeout=30)


def test_a_killed_replica_costs_no_request(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    victim = stack.replicas[0]
    send = lambda i: predict(stack, [{**churn_row, "monthly_charges": 1000.0 + i}])  # noqa: E731 - distinct rows
    with steady_stream(send) as outcomes:
        time.sleep(1.5)
        victim.signal(signal.SIGKILL)
        time.sleep(4.0)
    stack.restart(victim)

    assert outcomes[200] > 50
    assert set(outcomes) == {200}, outcomes


def test_redis_down_still_answers_then_hits_return(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    redis = stack.process("redis")
    row = {**churn_row, "support_calls": 7}
    predict(stack, [row])
    redis.stop()
    try:
        down = [predict(stack, [row]) for _ in range(10)]
    finally:
        stack.restart(redis)
    time.sleep(2.5)  # each replica's breaker waits BACKEND_CACHE_RETRY_AFTER_S before it tries Redis again
    for _ in range(4):  # refill the emptied cache through both replicas
        predict(stack, [row])
    again = [predict(stack, [row]).headers["X-Cache"] for _ in range(4)]

    assert {(r.status_code, r.headers["X-Cache"]) for r in down} == {(200, "BYPASS")}
    assert again == ["HIT"] * 4


def test_same_instance_twice_misses_then_hits_across_replicas(
    stack: NativeStack, churn_row: dict[str, Any]
) -> None:
    row = {**churn_row, "tenure_months": 61}
    first = predict(stack, [row])
    time.sleep(0.1)
    later = [predict(stack, [dict(reversed(row.items()))]) for _ in range(4)]

    assert first.headers["X-Cache"] == "MISS"
    assert {r.headers["X-Cache"] for r in later} == {"HIT"}
    assert {r.json()["probabilities"][0]["1"] for r in later} == {first.json()["probabilities"][0]["1"]}


def test_keys_rotate_without_failing_a_request(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    keys = list(stack.options.keys)
    revoked = ApiKey("to-revoke", "predict", "r" * 40)
    added = ApiKey("added-later", "predict", "a" * 40)
    stack.rotate_keys([*keys, revoked])
    time.sleep(0.5)
    assert predict(stack, [churn_row], key=revoked.secret).status_code == 200

    with steady_stream(lambda i: predict(stack, [churn_row])) as outcomes:
        time.sleep(1.0)
        stack.rotate_keys([*keys, added])
        time.sleep(1.5)
        new_key = predict(stack, [churn_row], key=added.secret)
        old_key = predict(stack, [churn_row], key=revoked.secret)
        time.sleep(0.5)
    stack.rotate_keys(keys)

    assert new_key.status_code == 200
    assert old_key.status_code == 401
    assert outcomes[200] > 20
    assert set(outcomes) == {200}, outcomes

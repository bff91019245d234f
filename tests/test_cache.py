"""The prediction cache through the gateway: PARTIAL batches compute only their misses"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stack.native import NativeStack
from stacks import predict
from waiting import wait_until

pytestmark = pytest.mark.stack


def computed_rows(stack: NativeStack) -> float:
    """Rows the models computed, summed over every replica's own /metrics (read on loopback)."""
    total = 0.0
    for replica in stack.replicas:
        metrics = httpx.get(
            f"http://127.0.0.1:{replica.port}/metrics",
            headers={"X-Gateway-Token": stack.options.gateway_token},
        ).text
        total += sum(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("mlstack_predicted_rows_total")
        )
    return total


def test_a_partly_cached_batch_is_partial_and_computes_only_the_rest(
    stack: NativeStack, churn_row: dict[str, Any]
) -> None:
    rows = [{**churn_row, "total_charges": 5000.0 + i} for i in range(10)]
    first = predict(stack, rows[:4])
    # the cache is filled just after the answer
    wait_until(lambda: predict(stack, rows[:4]).headers["X-Cache"] == "HIT", what="the four rows cached")
    before = computed_rows(stack)

    whole = predict(stack, [dict(reversed(row.items())) for row in rows])

    assert (first.headers["X-Cache"], whole.headers["X-Cache"]) == ("MISS", "PARTIAL")
    assert computed_rows(stack) - before == 6
    assert whole.json()["probabilities"][:4] == first.json()["probabilities"]

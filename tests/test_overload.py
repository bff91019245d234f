"""Overload: many more concurrent clients than the replicas take. Every client still gets an answer in time:
a prediction, or a 503 with Retry-After; no connection is refused, reset or left hanging.

The replicas' bounds are set low here (8 requests in flight, 64 waiting, per replica), so that 256
connections are past capacity on any machine, however fast: the test does not depend on this one's speed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import bodies, wrk
from stack.native import NativeStack
from stacks import gateway_entries, running_stack
from waiting import poll

pytestmark = [pytest.mark.stack, pytest.mark.slow]

UNLIMITED = 10_000_000  # the per-key rate limit would answer 429 before the replicas are past capacity
BOUNDS = {"BACKEND_MAX_IN_FLIGHT": "8", "BACKEND_MAX_WAITING": "64"}


@pytest.fixture(scope="module")
def crowded(store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NativeStack, Path]]:
    """A two-replica stack with low bounds, and a 1-row body whose rows never hit the cache."""
    options: dict[str, Any] = {"rate_per_s": UNLIMITED, "burst": UNLIMITED, "replica_env": BOUNDS}
    run_dir = tmp_path_factory.mktemp("overload")
    with running_stack(run_dir, store_dir, replicas=2, with_ui=False, **options) as stack:
        manifest = httpx.get(
            f"{stack.gateway_url}/v1/models/churn", headers={"X-API-Key": stack.key("predict")}
        ).json()
        yield stack, bodies.write(run_dir / "bodies", manifest["inputs"])["miss1"]


def load(stack: NativeStack, body: Path, connections: int, timeout_s: float, base: int) -> wrk.Figures:
    url = f"{stack.gateway_url}/v1/models/churn:predict"
    return wrk.run(
        url, stack.key("predict"), connections, 5.0, body, base, statuses=True, timeout_s=timeout_s
    )


def logged_answers(stack: NativeStack, status: int, at_least: int) -> list[dict[str, Any]]:
    """The gateway's log lines of answers with `status`, once it has written `at_least` (it flushes its
    buffered log every second)."""
    return poll(
        lambda: [e for e in gateway_entries(stack) if e["status"] == status],
        lambda found: len(found) >= at_least,
        5.0,
    )


def test_past_capacity_every_request_gets_an_answer_within_2_s(crowded: tuple[NativeStack, Path]) -> None:
    stack, body = crowded
    figures = load(stack, body, 256, timeout_s=2.0, base=100_000_000)

    assert (figures.connection_errors, figures.timeouts) == (0, 0), figures
    assert figures.max_ms < 2000, figures
    assert set(figures.statuses or {}) == {200, 503}, figures  # served while shedding the rest
    assert figures.unannounced_503 == 0, figures  # every 503 says Retry-After
    shed = logged_answers(stack, 503, figures.shed)
    assert len(shed) >= figures.shed
    # Each 503 is the replica's own, passed on once: not replayed on the other replica (a retry storm),
    # and not the gateway's "no replica available" (a busy replica counted as failed and ejected).
    assert {e["upstream_status"] for e in shed} == {"503"}, {e["upstream_status"] for e in shed}


def test_at_1024_connections_none_is_reset(crowded: tuple[NativeStack, Path]) -> None:
    stack, body = crowded
    figures = load(stack, body, 1024, timeout_s=10.0, base=200_000_000)

    assert figures.connection_errors == 0, figures
    assert set(figures.statuses or {}) <= {200, 503}, figures
    assert figures.answered > 0, figures
    assert "worker_connections are not enough" not in (stack.logs / "gateway-error.log").read_text()

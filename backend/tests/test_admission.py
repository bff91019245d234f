"""Shedding: the in-flight bound with its waiting room, the row budget, and a real replica past its bound."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlstack.errors import Overloaded
from mlstack.serving.admission import InFlight, RowBudget
from mlstack.serving.batching import Batcher
from mlstack.serving.runtime import SklearnRuntime
from mlstack.serving.validation import Validator
from mlstack.store.model_store import ModelStore

from .conftest import example_row
from .servers import running_replica, wait_until
from .test_api_v1 import varied_rows


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_within_the_limit_requests_enter_at_once_and_past_it_the_newest_waiter_goes_first() -> None:
    async def scenario() -> list[str]:
        gate = InFlight(limit=2, waiting_limit=10, max_wait_s=60, refuse_after_s=60)
        assert [await gate.enter(), await gate.enter()] == [True, True]
        admitted: list[str] = []

        async def wait(name: str) -> None:
            if await gate.enter():
                admitted.append(name)

        older = asyncio.create_task(wait("older"))
        await asyncio.sleep(0)  # it reaches the waiting room first
        newer = asyncio.create_task(wait("newer"))
        await asyncio.sleep(0)
        assert (gate.count, gate.waiting, admitted) == (2, 2, [])
        gate.leave()
        await newer
        gate.leave()
        await older
        return admitted

    assert run(scenario()) == ["newer", "older"]


def test_a_waiting_room_occupied_past_the_overload_interval_serves_only_the_freshest_waiters() -> None:
    """A waiter 30 ms old gets a place after a burst (bound 60 s), not under sustained overload (10 ms)."""

    async def scenario(sustained: bool) -> tuple[bool, int]:
        gate = InFlight(
            limit=1,
            waiting_limit=10,
            max_wait_s=60,
            refuse_after_s=60,
            overloaded_wait_s=0.01,
            overload_after_s=0.05,
        )
        await gate.enter()
        waiters = []
        if sustained:
            waiters.append(asyncio.create_task(gate.enter()))  # the room is occupied from here on
            await asyncio.sleep(0.1)
        waiter = asyncio.create_task(gate.enter())
        waiters.append(waiter)
        await asyncio.sleep(0.03)
        gate.leave()
        await asyncio.sleep(0)
        admitted = waiter.done() and waiter.result()
        for task in waiters:
            task.cancel()
        return admitted, gate.count

    assert run(scenario(sustained=False)) == (True, 1)  # the place went to the waiter
    assert run(scenario(sustained=True)) == (False, 0)  # the place freed up for the next to arrive


def test_a_waiter_past_its_wait_gets_no_place_and_its_503_after_the_refusal_time() -> None:
    async def scenario() -> tuple[bool, float, int]:
        gate = InFlight(limit=1, waiting_limit=10, max_wait_s=-1, refuse_after_s=0.2)  # every waiter stale
        await gate.enter()
        started = time.monotonic()
        waiter = asyncio.create_task(gate.enter())
        await asyncio.sleep(0)
        gate.leave()  # the place is free again, but not for a stale waiter
        count_after_leave = gate.count
        return await waiter, time.monotonic() - started, count_after_leave

    admitted, waited, count = run(scenario())

    assert (admitted, count) == (False, 0)
    assert waited >= 0.2


def test_a_full_waiting_room_refuses_at_once() -> None:
    async def scenario() -> tuple[bool, float]:
        gate = InFlight(limit=1, waiting_limit=1, max_wait_s=60, refuse_after_s=60)
        await gate.enter()
        waiter = asyncio.create_task(gate.enter())
        await asyncio.sleep(0)
        started = time.monotonic()
        refused = await gate.enter()
        waiter.cancel()
        return refused, time.monotonic() - started

    refused, took = run(scenario())

    assert refused is False
    assert took < 0.05


def test_the_row_budget_takes_a_request_alone_whatever_its_size_and_refuses_past_it() -> None:
    budget = RowBudget(limit=100)
    budget.take(1000)  # alone, 1000 is taken
    with pytest.raises(Overloaded) as refused:
        budget.take(1)
    budget.give(1000)
    budget.take(60)
    budget.take(40)
    assert budget.rows == 100
    budget.give(60)
    budget.give(40)

    assert refused.value.retry_after_s == 1
    assert budget.rows == 0


def test_the_batcher_refuses_rows_past_its_budget_before_queueing_them(trained_store: Path) -> None:
    manifest, pipeline = ModelStore(trained_store).load("churn", "1")
    runtime = SklearnRuntime(manifest, pipeline)
    rows = Validator(manifest, max_rows=1000, max_string_length=256).rows(
        varied_rows(manifest.model_dump(), 3)
    )
    release = threading.Event()

    async def scenario(executor: ThreadPoolExecutor) -> tuple[int, str]:
        batcher = Batcher(executor, max_rows=256, max_wait_s=0, row_budget=RowBudget(limit=4))
        executor.submit(release.wait)  # the one predict thread is busy: rows wait for it
        with batcher.on_the_way():
            first = asyncio.create_task(batcher.predict(runtime, rows))
            await asyncio.sleep(0)
        with batcher.on_the_way(), pytest.raises(Overloaded) as refused:
            await batcher.predict(runtime, rows)  # 3 waiting + 3 > 4
        release.set()
        return len((await first).labels), str(refused.value)

    with ThreadPoolExecutor(1) as executor:
        predicted, message = run(scenario(executor))

    assert predicted == 3
    assert message == "replica at capacity: 3 rows wait for a prediction"


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A port that takes connections and never answers: a hung user-data Redis."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def test_a_replica_past_its_bound_sheds_at_once_and_still_answers_health_and_metadata(
    trained_store: Path, tmp_path: Path, silent_redis: str
) -> None:
    bounds = {"max_in_flight": "1", "max_waiting": "0", "users_redis_timeout_ms": "5000"}
    with running_replica(trained_store, tmp_path / "r.log", users_redis_url=silent_redis, **bounds) as url:
        row = example_row(httpx.get(f"{url}/v1/models/churn").json())
        held: list[httpx.Response] = []

        def hold() -> None:
            """A user-data read, in flight for 5 s (the Redis never answers). Refused at the edge when a
            prediction held the one place as it arrived: then it asks again."""
            deadline = time.monotonic() + 30
            while not held and time.monotonic() < deadline:
                answer = httpx.get(f"{url}/v1/users/alice", timeout=10)
                if "replica at capacity" not in answer.text:
                    held.append(answer)

        holder = threading.Thread(target=hold)
        holder.start()
        shed: list[httpx.Response] = []
        with httpx.Client(base_url=url) as client:

            def refused() -> bool:
                started = time.monotonic()
                response = client.post("/v1/models/churn:predict", json={"instances": [row]})
                shed.append(response)
                return response.status_code == 503 and time.monotonic() - started < 0.5

            wait_until(refused, timeout_s=20.0)
            during = [client.get(path).status_code for path in ("/v2/health/ready", "/v1/models")]
            metrics = client.get("/metrics").text
            holder.join()
            after = client.post("/v1/models/churn:predict", json={"instances": [row]})

    assert shed[-1].headers["Retry-After"] == "1"
    assert shed[-1].json() == {"error": "replica at capacity: too many requests in flight; retry after 1 s"}
    assert len(shed[-1].headers["X-Request-ID"]) == 32
    assert during == [200, 200]  # never counted, never shed
    assert 'mlstack_requests_total{model="",route="shed",status="503"}' in metrics
    assert [(h.status_code, h.headers["Retry-After"]) for h in held] == [(503, "2")]  # the store's own 503
    assert after.status_code == 200  # the place is free again

"""The prediction cache against a real redis-server: hits, partial batches, version isolation, Redis down."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis as RedisClient

from mlstack.cache.predictions import MAX_WRITING_ROWS, PredictionCache
from mlstack.cli import main as cli
from mlstack.settings import Settings

from .servers import RedisServer
from .test_api_v1 import varied_rows

PREDICT = "/v1/models/churn:predict"


@pytest.fixture
def rows(cached_client: TestClient) -> list[dict[str, Any]]:
    return varied_rows(cached_client.get("/v1/models/churn").json(), 6)


def predict(client: TestClient, rows: list[dict[str, Any]], url: str = PREDICT) -> tuple[str, Any]:
    response = client.post(url, json={"instances": rows})
    assert response.status_code == 200
    return response.headers["X-Cache"], response.json()


def test_same_row_twice_is_a_miss_then_a_hit(cached_client: TestClient, rows: list[dict[str, Any]]) -> None:
    first = predict(cached_client, rows[:1])
    time.sleep(0.1)  # the cache is filled in the background
    again = predict(cached_client, [dict(reversed(rows[0].items()))])

    assert (first[0], again[0]) == ("MISS", "HIT")
    assert first[1] == again[1]


def test_number_spelling_does_not_change_the_key(
    cached_client: TestClient, rows: list[dict[str, Any]]
) -> None:
    row = rows[0]
    integral = next(k for k, v in row.items() if isinstance(v, int) and not isinstance(v, bool))
    predict(cached_client, [row])
    time.sleep(0.1)

    assert predict(cached_client, [{**row, integral: float(row[integral])}])[0] == "HIT"


def test_batch_with_some_rows_cached_is_partial_and_equal(
    cached_client: TestClient, rows: list[dict[str, Any]]
) -> None:
    _, cached_part = predict(cached_client, rows[:3])
    time.sleep(0.1)
    before = predicted_rows(cached_client)
    status, whole = predict(cached_client, rows)

    assert status == "PARTIAL"
    assert predicted_rows(cached_client) - before == len(rows) - 3  # only the misses were computed
    assert whole["predictions"][:3] == cached_part["predictions"]
    assert whole["probabilities"][:3] == cached_part["probabilities"]
    time.sleep(0.1)
    assert predict(cached_client, rows)[0] == "HIT"


def test_a_new_version_never_meets_the_old_versions_entries(
    cached_client: TestClient, store_dir: Path, rows: list[dict[str, Any]]
) -> None:
    predict(cached_client, rows[:2])
    time.sleep(0.1)
    args = ["train", "--demo", "churn", "--rows", "800", "--seed", "3", "--search", "fast", "--store-dir"]
    assert cli([*args, str(store_dir)]) == 0
    assert cached_client.post("/v1/models/churn:reload").json()["version"] == "2"

    status, body = predict(cached_client, rows[:2])
    pinned_status, pinned = predict(cached_client, rows[:2], "/v1/models/churn/versions/1:predict")

    assert (status, body["model_version"]) == ("MISS", "2")
    assert (pinned_status, pinned["model_version"]) == ("HIT", "1")


@pytest.mark.faults
def test_redis_down_still_answers_and_hits_return_when_it_is_back(
    cached_client: TestClient, redis: RedisServer, rows: list[dict[str, Any]]
) -> None:
    predict(cached_client, rows[:1])
    redis.stop()

    statuses = []
    for row in rows:
        started = time.monotonic()
        statuses.append(predict(cached_client, [row])[0])
        assert time.monotonic() - started < 0.5
    redis.start()
    time.sleep(0.6)  # the breaker's retry_after
    predict(cached_client, rows[-1:])
    time.sleep(0.1)

    assert statuses == ["BYPASS"] * len(rows)
    assert 'mlstack_cache_rows_total{result="bypass"}' in cached_client.get("/metrics").text
    assert predict(cached_client, rows[-1:])[0] == "HIT"


def predicted_rows(client: TestClient) -> float:
    metrics = client.get("/metrics").text
    return sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("mlstack_predicted_rows_total")
    )


def command_calls(redis: RedisServer, command: str) -> int:
    """Calls of a command that succeeded, as Redis counts them."""
    stats = RedisClient.from_url(redis.url).info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))


def reads_processed(client: RedisClient) -> int:
    """Read events Redis handled (this INFO's own included): commands sent in one write arrive in one."""
    return int(client.info("stats")["total_reads_processed"])


def test_concurrent_lookups_share_one_mget_and_writes_leave_together(
    store_dir: Path, redis: RedisServer
) -> None:
    settings = Settings(store_dir=store_dir, redis_url=redis.url, cache_ttl_s=120)
    keys = [[f"mlstack:pred:test:{request}:{row}" for row in range(3)] for request in range(8)]

    async def scenario() -> tuple[int, list[Any], list[Any]]:
        cache, stats = PredictionCache(settings), RedisClient.from_url(redis.url)
        await cache.get_many(["mlstack:pred:test:warm"])  # the connection is open
        reads_before = reads_processed(stats)
        cache.put_many([(key, {"l": i}) for i, key in enumerate(keys[0])])  # two requests answered in
        cache.put_many([(key, {"l": i + 3}) for i, key in enumerate(keys[1])])  # the same turn
        await asyncio.sleep(0.2)
        writes = reads_processed(stats) - reads_before - 1  # the second INFO's own read
        found = await asyncio.gather(*(cache.get_many(wanted) for wanted in keys))
        again = await asyncio.gather(*(cache.get_many(wanted) for wanted in keys[:2]))
        await cache.close()
        return writes, found, again

    mget_before = command_calls(redis, "mget")
    writes, found, again = asyncio.run(scenario())

    assert command_calls(redis, "mget") - mget_before == 3  # the first, then eight lookups, then two
    assert command_calls(redis, "set") == 6
    assert writes == 1  # both requests' SETs in one write
    assert [entry and entry["l"] for entry in found[0] + found[1]] == list(range(6))
    assert found[2:] == [[None] * 3] * 6
    assert again == found[:2]
    assert 0 < RedisClient.from_url(redis.url).ttl(keys[0][0]) <= 120


@pytest.mark.faults
def test_a_lookup_does_not_wait_behind_a_long_run_of_writes(store_dir: Path, redis: RedisServer) -> None:
    """Writes have a connection of their own, and Redis takes turns between connections: a lookup that
    reaches Redis with 2 MB of SETs is answered before the last of them has run (on one connection it
    came after them all)."""
    assert redis.process is not None
    pid = redis.process.pid
    settings = Settings(store_dir=store_dir, redis_url=redis.url, redis_timeout_ms=2000)
    pad = "x" * 1000
    items = [(f"mlstack:pred:test:big:{row}", {"l": row, "pad": pad}) for row in range(MAX_WRITING_ROWS)]
    last = [items[-1][0]]

    async def scenario() -> tuple[list[Any] | None, list[Any] | None]:
        cache = PredictionCache(settings)
        await cache.get_many(["mlstack:pred:test:warm"], near=False)
        cache.put_many([("mlstack:pred:test:warm", {"l": -1})])  # both connections are open
        await asyncio.sleep(0.1)
        os.kill(pid, signal.SIGSTOP)  # both arrive while Redis is stopped: no head start for the SETs
        try:
            cache.put_many(items)
            during = asyncio.ensure_future(cache.get_many(last, near=False))
            await asyncio.sleep(0.3)
        finally:
            os.kill(pid, signal.SIGCONT)
        found_during = await during
        await asyncio.sleep(0.5)
        after = await cache.get_many(last, near=False)
        await cache.close()
        return found_during, after

    during, after = asyncio.run(scenario())

    assert during == [None]
    assert after == [{"l": MAX_WRITING_ROWS - 1, "pad": "x" * 1000}]
    assert command_calls(redis, "set") == len(items) + 1


@pytest.mark.faults
def test_rows_beyond_what_a_lagging_redis_has_yet_to_run_go_uncached(
    store_dir: Path, redis: RedisServer
) -> None:
    assert redis.process is not None
    pid = redis.process.pid
    settings = Settings(store_dir=store_dir, redis_url=redis.url, cache_retry_after_s=30)
    rows = MAX_WRITING_ROWS * 3 // 5

    left_out: list[int] = []

    async def scenario() -> bool:
        cache = PredictionCache(settings, on_unwritten=left_out.append)
        cache.put_many([("mlstack:pred:test:warm", {"l": 0})])
        await asyncio.sleep(0.1)  # the writes' connection is open
        os.kill(pid, signal.SIGSTOP)
        try:
            for turn in range(3):  # three turns of the loop, three runs of SETs
                cache.put_many([(f"mlstack:pred:test:{turn}:{row}", {"l": row}) for row in range(rows)])
                await asyncio.sleep(0.05)
        finally:
            os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(0.5)
        available = cache.available
        await cache.close()
        return available

    available = asyncio.run(scenario())

    assert available  # a lagging write is no failure of Redis
    assert command_calls(redis, "set") == 1 + rows  # the first run waited in Redis; the next two did not fit
    assert left_out == [rows, rows]  # and were counted (mlstack_cache_unwritten_rows)


def test_a_write_that_times_out_does_not_stop_the_lookups(store_dir: Path, redis: RedisServer) -> None:
    """Under load a write can be late; that is no failure of Redis, which stays in use for lookups."""
    assert redis.process is not None
    pid = redis.process.pid
    settings = Settings(store_dir=store_dir, redis_url=redis.url, redis_timeout_ms=50, cache_retry_after_s=30)

    async def scenario() -> tuple[bool, list[Any] | None, list[Any] | None]:
        cache = PredictionCache(settings)
        await cache.get_many(["mlstack:pred:test:warm"], near=False)  # the connection is open
        os.kill(pid, signal.SIGSTOP)
        try:
            cache.put_many([("mlstack:pred:test:slow", {"l": 1})])
            await asyncio.sleep(0.3)  # the write times out meanwhile
        finally:
            os.kill(pid, signal.SIGCONT)
        available = cache.available
        lost = await cache.get_many(["mlstack:pred:test:slow"], near=False)
        cache.put_many([("mlstack:pred:test:later", {"l": 2})])
        await asyncio.sleep(0.2)
        later = await cache.get_many(["mlstack:pred:test:later"], near=False)
        await cache.close()
        return available, lost, later

    available, lost, later = asyncio.run(scenario())

    assert available  # not bypassed for the 30 s a failure would cost
    assert lost in ([None], [{"l": 1}])  # looked up, not bypassed; the late SET may have landed meanwhile
    assert later == [{"l": 2}]


def test_a_late_lookup_bypasses_its_requests_only_while_redis_answers_its_pings(
    store_dir: Path, redis: RedisServer
) -> None:
    """A lookup can be late because the replica's own loop is busy; Redis still answering the near
    cache's PINGs tells that apart from a Redis that hangs, which trips the breaker (the test below)."""
    assert redis.process is not None
    pid = redis.process.pid
    settings = Settings(store_dir=store_dir, redis_url=redis.url, redis_timeout_ms=50, cache_retry_after_s=30)

    async def scenario() -> tuple[list[Any] | None, bool, list[Any] | None]:
        async with PredictionCache(settings).running() as cache:
            near = cache.near
            assert near is not None
            await until(lambda: near.watching)  # the watch connection is open
            cache.put_many([("mlstack:pred:test:kept", {"l": 1})])
            await until(lambda: RedisClient.from_url(redis.url).exists("mlstack:pred:test:kept") == 1)
            os.kill(pid, signal.SIGSTOP)
            try:
                late = await cache.get_many(["mlstack:pred:test:kept"], near=False)  # times out after 50 ms
            finally:
                os.kill(pid, signal.SIGCONT)
            available = cache.available
            again = await cache.get_many(["mlstack:pred:test:kept"], near=False)
        return late, available, again

    late, available, again = asyncio.run(scenario())

    assert late is None  # that request went without the cache
    assert available
    assert again == [{"l": 1}]


def test_the_first_lookup_after_a_redis_restart_is_retried_on_a_new_connection(
    store_dir: Path, redis: RedisServer
) -> None:
    """A pooled connection is dead once Redis restarted: one immediate retry, and no request pays for it."""
    settings = Settings(store_dir=store_dir, redis_url=redis.url, near_cache_entries=0)

    async def scenario() -> tuple[list[Any] | None, bool]:
        cache = PredictionCache(settings)
        await cache.get_many(["mlstack:pred:test:before"])  # a connection in the pool
        redis.stop()
        redis.start()
        after = await cache.get_many(["mlstack:pred:test:after"])
        available = cache.available
        await cache.close()
        return after, available

    after, available = asyncio.run(scenario())

    assert after == [None]  # looked up (a miss), not bypassed
    assert available


def near_hits(client: TestClient) -> float:
    line = next(
        x for x in client.get("/metrics").text.splitlines() if x.startswith("mlstack_near_cache_rows_total")
    )
    return float(line.split()[-1])


def test_a_repeated_row_is_answered_from_memory_until_redis_goes_away(
    cached_client: TestClient, redis: RedisServer, rows: list[dict[str, Any]]
) -> None:
    predict(cached_client, rows[:1])  # computed: into Redis only, as most rows are never seen again
    time.sleep(0.1)
    mget_first = command_calls(redis, "mget")
    seen_twice = predict(cached_client, rows[:1])  # found in Redis: now copied into memory as well
    mget_before = command_calls(redis, "mget")
    again = [predict(cached_client, rows[:1]) for _ in range(5)]
    mget_after = command_calls(redis, "mget")
    partly = predict(cached_client, rows[:2])  # one row from memory, one computed
    redis.stop()
    time.sleep(0.1)  # the replica sees its watch connection close
    down = predict(cached_client, rows[:1])

    assert seen_twice[0] == "HIT"
    assert mget_before == mget_first + 1
    assert {status for status, _ in again} == {"HIT"}
    assert mget_after == mget_before  # Redis was not asked
    assert near_hits(cached_client) == 5 + 1
    assert partly[0] == "PARTIAL"
    assert down[0] == "BYPASS"  # the copy is not used while Redis is down
    assert down[1]["probabilities"] == again[0][1]["probabilities"]


@pytest.mark.faults
def test_a_hung_redis_stops_the_copies_within_two_pings(
    cached_client: TestClient, redis: RedisServer, rows: list[dict[str, Any]]
) -> None:
    assert redis.process is not None
    predict(cached_client, rows[:1])
    time.sleep(0.1)
    predict(cached_client, rows[:1])  # seen twice: copied into memory
    from_memory = predict(cached_client, rows[:1])
    os.kill(redis.process.pid, signal.SIGSTOP)  # alive but silent: no closed connection to notice
    try:
        time.sleep(2.5)  # a PING every second, answered within one
        started = time.monotonic()
        hung = predict(cached_client, rows[:1])
        took_s = time.monotonic() - started
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)

    assert from_memory[0] == "HIT"
    assert hung[0] == "BYPASS"
    assert took_s < 0.5
    assert hung[1]["predictions"] == from_memory[1]["predictions"]


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait, without blocking the loop, until `check` holds; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)

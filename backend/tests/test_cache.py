"""The prediction cache against a real redis-server: hits, partial batches, version isolation, Redis down."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis as RedisClient

from mlstack.cache.near import PING_EVERY_S, PING_TIMEOUT_S
from mlstack.cache.predictions import MAX_WRITING_ROWS, PredictionCache
from mlstack.cli import main as cli
from mlstack.settings import Settings
from waiting import until, wait_for, wait_until

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


def cached(redis: RedisServer, count: int) -> None:
    """Wait until `count` rows are in Redis: the cache is filled just after the answer, in the background."""
    wait_until(lambda: redis.keys() >= count, what=f"{count} rows cached")


def test_same_row_twice_is_a_miss_then_a_hit(
    cached_client: TestClient, redis: RedisServer, rows: list[dict[str, Any]]
) -> None:
    first = predict(cached_client, rows[:1])
    cached(redis, 1)
    again = predict(cached_client, [dict(reversed(rows[0].items()))])

    assert (first[0], again[0]) == ("MISS", "HIT")
    assert first[1] == again[1]


def test_number_spelling_does_not_change_the_key(
    cached_client: TestClient, redis: RedisServer, rows: list[dict[str, Any]]
) -> None:
    row = rows[0]
    integral = next(k for k, v in row.items() if isinstance(v, int) and not isinstance(v, bool))
    predict(cached_client, [row])
    cached(redis, 1)

    assert predict(cached_client, [{**row, integral: float(row[integral])}])[0] == "HIT"


def test_batch_with_some_rows_cached_is_partial_and_equal(
    cached_client: TestClient, redis: RedisServer, rows: list[dict[str, Any]]
) -> None:
    _, cached_part = predict(cached_client, rows[:3])
    cached(redis, 3)
    before = predicted_rows(cached_client)
    status, whole = predict(cached_client, rows)

    assert status == "PARTIAL"
    assert predicted_rows(cached_client) - before == len(rows) - 3  # only the misses were computed
    assert whole["predictions"][:3] == cached_part["predictions"]
    assert whole["probabilities"][:3] == cached_part["probabilities"]
    cached(redis, len(rows))
    assert predict(cached_client, rows)[0] == "HIT"


def test_a_new_version_never_meets_the_old_versions_entries(
    cached_client: TestClient, store_dir: Path, redis: RedisServer, rows: list[dict[str, Any]]
) -> None:
    predict(cached_client, rows[:2])
    cached(redis, 2)
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
    # the breaker tries Redis again after its retry_after (0.5 s), the row is cached, then found
    back = wait_for(lambda: predict(cached_client, rows[-1:]), lambda answer: answer[0] == "HIT")

    assert statuses == ["BYPASS"] * len(rows)
    assert 'mlstack_cache_rows_total{result="bypass"}' in cached_client.get("/metrics").text
    assert back[1] == predict(cached_client, rows[-1:])[1]


def predicted_rows(client: TestClient) -> float:
    metrics = client.get("/metrics").text
    return sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("mlstack_predicted_rows_total")
    )


def command_calls(redis: RedisServer, command: str, client: RedisClient | None = None) -> int:
    """Calls of a command that succeeded, as Redis counts them."""
    stats = (client or RedisClient.from_url(redis.url)).info("commandstats").get(f"cmdstat_{command}", {})
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
        polls = 0

        def all_set() -> bool:
            nonlocal polls
            polls += 1  # each poll is one read of Redis's as well
            return command_calls(redis, "set", stats) == 6

        await until(all_set, what="six SETs")
        writes = reads_processed(stats) - reads_before - polls - 1  # the polls' and this INFO's own reads
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

    checker = RedisClient.from_url(redis.url)

    async def scenario() -> tuple[list[Any] | None, list[Any] | None]:
        cache = PredictionCache(settings)
        await cache.get_many(["mlstack:pred:test:warm"], near=False)
        cache.put_many([("mlstack:pred:test:warm", {"l": -1})])
        await until(lambda: checker.exists("mlstack:pred:test:warm"))  # both connections are open
        os.kill(pid, signal.SIGSTOP)  # both arrive while Redis is stopped: no head start for the SETs
        try:
            cache.put_many(items)
            during = asyncio.ensure_future(cache.get_many(last, near=False))
            await asyncio.sleep(0.3)  # the scenario: Redis stopped while they are sent (it cannot be asked)
        finally:
            os.kill(pid, signal.SIGCONT)
        found_during = await during
        await until(lambda: checker.exists(last[0]), what="the last SET run")
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
    checker = RedisClient.from_url(redis.url)

    async def scenario() -> bool:
        cache = PredictionCache(settings, on_unwritten=left_out.append)
        cache.put_many([("mlstack:pred:test:warm", {"l": 0})])
        await until(lambda: checker.exists("mlstack:pred:test:warm"))  # the writes' connection is open
        os.kill(pid, signal.SIGSTOP)
        try:
            for turn in range(3):  # three turns of the loop, three runs of SETs
                cache.put_many([(f"mlstack:pred:test:{turn}:{row}", {"l": row}) for row in range(rows)])
                await asyncio.sleep(0.05)  # the scenario: a turn of the loop apart, while Redis is stopped
        finally:
            os.kill(pid, signal.SIGCONT)
        # the first run's acknowledgement is back: closing the cache would count a run still owed one
        await until(lambda: cache._writing == 0, what="the runs sent acknowledged")
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
    checker = RedisClient.from_url(redis.url)

    async def scenario() -> tuple[bool, list[Any] | None, list[Any] | None]:
        cache = PredictionCache(settings)
        await cache.get_many(["mlstack:pred:test:warm"], near=False)  # the connection is open
        os.kill(pid, signal.SIGSTOP)
        try:
            cache.put_many([("mlstack:pred:test:slow", {"l": 1})])
            await asyncio.sleep(0.3)  # the scenario: Redis silent for 6 times the write's timeout
        finally:
            os.kill(pid, signal.SIGCONT)
        available = cache.available
        lost = await cache.get_many(["mlstack:pred:test:slow"], near=False)
        cache.put_many([("mlstack:pred:test:later", {"l": 2})])
        await until(lambda: checker.exists("mlstack:pred:test:later"), what="the later write")
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
    cached(redis, 1)
    mget_first = command_calls(redis, "mget")
    seen_twice = predict(cached_client, rows[:1])  # found in Redis: now copied into memory as well
    mget_before = command_calls(redis, "mget")
    again = [predict(cached_client, rows[:1]) for _ in range(5)]
    mget_after = command_calls(redis, "mget")
    partly = predict(cached_client, rows[:2])  # one row from memory, one computed
    hits = near_hits(cached_client)
    redis.stop()
    # once the replica sees its watch connection close, the copy is not used while Redis is down
    down = wait_for(lambda: predict(cached_client, rows[:1]), lambda answer: answer[0] == "BYPASS")

    assert seen_twice[0] == "HIT"
    assert mget_before == mget_first + 1
    assert {status for status, _ in again} == {"HIT"}
    assert mget_after == mget_before  # Redis was not asked
    assert hits == 5 + 1
    assert partly[0] == "PARTIAL"
    assert down[1]["probabilities"] == again[0][1]["probabilities"]


@pytest.mark.faults
def test_a_hung_redis_stops_the_copies_within_two_pings(
    cached_client: TestClient, redis: RedisServer, rows: list[dict[str, Any]]
) -> None:
    assert redis.process is not None
    predict(cached_client, rows[:1])
    cached(redis, 1)
    predict(cached_client, rows[:1])  # seen twice: copied into memory
    from_memory = predict(cached_client, rows[:1])

    def timed() -> tuple[str, Any, float]:
        started = time.monotonic()
        status, body = predict(cached_client, rows[:1])
        return status, body, time.monotonic() - started

    os.kill(redis.process.pid, signal.SIGSTOP)  # alive but silent: no closed connection to notice
    stopped = time.monotonic()
    try:
        hung = wait_for(timed, lambda answer: answer[0] == "BYPASS")
        noticed_s = time.monotonic() - stopped
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)

    assert from_memory[0] == "HIT"
    assert noticed_s < 2 * PING_EVERY_S + PING_TIMEOUT_S + 0.5  # a PING every second, answered within one
    assert hung[2] < 0.5  # the request that found Redis hung did not wait for it
    assert hung[1]["predictions"] == from_memory[1]["predictions"]

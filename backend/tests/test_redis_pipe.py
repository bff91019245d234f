"""The cache's pipelined Redis client against a real redis-server: order, errors, lateness, loss, login."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
import uvloop
from redis import Redis as RedisClient

from mlstack import connections
from mlstack.cache.pipe import RedisPipe, ReplyError, pack_set_ex
from mlstack.settings import Settings
from waiting import until

from .servers import RedisServer, redis_server


def reads_processed(client: RedisClient) -> int:
    return int(client.info("stats")["total_reads_processed"])


def test_commands_of_one_turn_leave_in_one_write_and_get_their_own_replies(redis: RedisServer) -> None:
    stats = RedisClient.from_url(redis.url)

    async def scenario() -> tuple[list[Any], int]:
        pipe = connections.cache_lookups(Settings(redis_url=redis.url))
        assert pipe is not None
        await pipe.call("PING")  # connected
        before = reads_processed(stats)
        replies = await asyncio.gather(
            pipe.call("SET", "a", "1"),
            pipe.call("GET", "a"),
            pipe.call("INCR", "n"),
            pipe.call("MGET", "a", "n", "missing"),
        )
        reads = reads_processed(stats) - before - 1  # the second INFO's own read
        await pipe.close()
        return replies, reads

    replies, reads = asyncio.run(scenario())

    assert replies == [b"OK", b"1", 1, [b"1", b"1", None]]
    assert reads == 1


def test_it_runs_on_uvloop_the_replicas_event_loop(redis: RedisServer) -> None:
    async def scenario() -> list[Any]:
        pipe = RedisPipe(redis.url, timeout_s=5)
        replies = [await pipe.call("SET", "loop", "uv"), await pipe.call("GET", "loop")]
        await pipe.close()
        return replies

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        replies = runner.run(scenario())

    assert replies == [b"OK", b"uv"]


def test_an_error_reply_fails_its_own_command_only(redis: RedisServer) -> None:
    async def scenario() -> list[Any]:
        pipe = RedisPipe(redis.url, timeout_s=1)
        await pipe.call("SET", "word", "hello")
        replies = await asyncio.gather(
            pipe.call("INCR", "word"), pipe.call("GET", "word"), return_exceptions=True
        )
        await pipe.close()
        return replies

    incr, get = asyncio.run(scenario())

    assert isinstance(incr, ReplyError)
    assert "not an integer" in str(incr)
    assert get == b"hello"


@pytest.mark.faults
def test_a_late_reply_is_dropped_and_the_next_command_gets_its_own(redis: RedisServer) -> None:
    assert redis.process is not None
    pid = redis.process.pid

    async def scenario() -> tuple[BaseException | None, Any]:
        pipe = RedisPipe(redis.url, timeout_s=1)
        await asyncio.gather(pipe.call("SET", "x", "late"), pipe.call("SET", "y", "on time"))
        os.kill(pid, signal.SIGSTOP)
        try:
            late: BaseException | None = None
            try:
                await pipe.call("GET", "x", timeout_s=0.05)
            except TimeoutError as exc:
                late = exc
        finally:
            os.kill(pid, signal.SIGCONT)
        after = await pipe.call("GET", "y")  # its reply comes after the late one, which is dropped
        await pipe.close()
        return late, after

    late, after = asyncio.run(scenario())

    assert isinstance(late, TimeoutError)
    assert after == b"on time"


@pytest.mark.faults
def test_a_lost_redis_fails_fast_and_the_pipe_reconnects_when_it_is_back(redis: RedisServer) -> None:
    async def scenario() -> tuple[BaseException | None, Any]:
        pipe = RedisPipe(redis.url, timeout_s=1)
        await pipe.call("SET", "k", "v")
        redis.stop()
        lost: BaseException | None = None
        try:
            await pipe.call("GET", "k")
        except ConnectionError as exc:
            lost = exc
        redis.start()  # an empty Redis on the same port
        back = await pipe.call("SET", "k", "again")
        await pipe.close()
        return lost, back

    lost, back = asyncio.run(scenario())

    assert isinstance(lost, ConnectionError)
    assert back == b"OK"


def test_password_and_database_come_from_the_url(tmp_path: Path) -> None:
    with redis_server(tmp_path, password="s3cret") as server:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
        wrong = f"redis://:wrong@127.0.0.1:{server.port}/3"

        async def scenario() -> tuple[Any, BaseException | None]:
            pipe = RedisPipe(url, timeout_s=1)
            stored = await pipe.call("SET", "in-db-3", "yes")
            await pipe.close()
            refused: BaseException | None = None
            try:
                await RedisPipe(wrong, timeout_s=1).call("PING")
            except ConnectionError as exc:
                refused = exc
            return stored, refused

        stored, refused = asyncio.run(scenario())
        value = RedisClient.from_url(url).get("in-db-3")

    assert stored == b"OK"
    assert value == b"yes"
    assert "AUTH" in str(refused)


def test_quiet_sets_land_with_their_ttl_and_the_replies_stay_in_step(redis: RedisServer) -> None:
    pairs = [(f"quiet:{i}", b'{"l": %d}' % i) for i in range(300)] + [("quiet:\u00e9", b"accented key")]

    async def scenario() -> tuple[Any, Any, Any, Any]:
        pipe = RedisPipe(redis.url, timeout_s=1)
        refused = pipe.run_quietly(pack_set_ex(pairs, 60))  # no connection yet: nothing sent
        await pipe.connect()
        before = asyncio.ensure_future(pipe.call("GET", "quiet:0"))
        await asyncio.sleep(0)  # that GET is queued
        ran = pipe.run_quietly(pack_set_ex(pairs, 60))
        after = await pipe.call("GET", "quiet:299")  # sent after the SETs, in the same write
        assert ran is not None
        await pipe.close()
        return refused, await ran, await before, after

    refused, ran, before, after = asyncio.run(scenario())
    client = RedisClient.from_url(redis.url)

    assert refused is None
    assert ran == b"OK"  # CLIENT REPLY ON's: the only reply of the run
    assert before is None
    assert after == b'{"l": 299}'
    assert client.get("quiet:\u00e9") == b"accented key"
    assert 0 < client.ttl("quiet:150") <= 60
    assert int(client.info("commandstats")["cmdstat_set"]["calls"]) == len(pairs)


def test_tcp_connections_ask_the_kernel_to_find_a_vanished_peer(redis: RedisServer) -> None:
    """A network cut closes nothing and no reply ever comes; keepalive probes end such a connection
    within about 11 s, and the next command opens a new one. (A cut cannot be made here: the socket's
    options are what is checked.)"""

    async def scenario() -> tuple[int, int, int]:
        pipe = connections.cache_lookups(Settings(redis_url=redis.url))
        assert pipe is not None
        await pipe.call("PING")
        sock = pipe._connection._transport.get_extra_info("socket")  # type: ignore[union-attr]  # connected by the PING above
        options = (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        )
        await pipe.close()
        return options

    keepalive, idle_s, probes = asyncio.run(scenario())

    assert keepalive == 1
    assert idle_s + probes * 2 <= 15


def test_a_slow_connection_is_not_abandoned_at_a_commands_budget(
    redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In Compose, resolving `redis` and connecting took longer than a lookup's 25 ms: each lookup gave
    up the connection it was making, and the cache was bypassed for good."""
    from mlstack.cache import pipe as redis_pipe

    dial = redis_pipe._dial

    async def slow_dial(params: dict[str, Any], keepalive: dict[int, int]) -> Any:
        await asyncio.sleep(0.1)  # stands in for a slow name lookup, which cannot be made to happen here
        return await dial(params, keepalive)

    monkeypatch.setattr(redis_pipe, "_dial", slow_dial)

    async def scenario() -> tuple[BaseException | None, Any]:
        pipe = RedisPipe(redis.url, timeout_s=0.025, connect_timeout_s=2)
        try:
            await pipe.call("PING")
            first: BaseException | None = None
        except TimeoutError as exc:
            first = exc
        await until(lambda: pipe.connected, what="the connection the first command started")
        later = await pipe.call("PING")
        await pipe.close()
        return first, later

    first, later = asyncio.run(scenario())

    assert isinstance(first, TimeoutError)  # the first command keeps to its budget
    assert "no connection to Redis yet" in str(first)
    assert later == b"PONG"  # and the connection it started serves the next one

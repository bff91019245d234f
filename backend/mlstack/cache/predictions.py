"""The shared prediction cache in Redis: key scheme, one round trip per batch, and bypass when Redis fails.

Key: model + version + artifact sha256 + a hash of the row's canonical form (values in schema order,
numbers as floats), so key order and number spelling do not matter and a new version never meets an old entry.
Values are JSON, never pickle: a poisoned cache must not become code execution.

A round trip to Redis costs the replica tens of µs of CPU, more than an ONNX prediction. So each replica
keeps recent entries in memory as well (near_cache.py), the lookups of requests that arrive together share
one MGET, and their writes go together as SETs that Redis does not answer and nobody waits for
(redis_pipe.py: one write for all the commands of a turn of the event loop, lookups and writes alike).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from redis.exceptions import RedisError

from mlstack import connections
from mlstack.cache.near import NearCache
from mlstack.cache.pipe import pack_set_ex
from mlstack.settings import Settings

log = logging.getLogger("mlstack.cache.predictions")

Entry = dict[str, Any]
Lookup = tuple[Sequence[str], asyncio.Future[Any]]
"""One request's keys and the future that gets their entries."""
MAX_KEYS_PER_CALL = 2_000
"""Lookups go in calls of at most this many keys (about 1 µs of Redis's time each)."""
MAX_WRITING_ROWS = 2_000
"""Rows sent to Redis and not yet run, at most: when Redis is slower than traffic, rows go uncached
rather than queue up."""
DELETE_TIMEOUT_S = 2.0
"""SCAN and UNLINK are no lookups: an erasure may take longer than a request's cache budget."""


def row_keys(
    space: str, model: str, version: str, sha256: str, rows: Sequence[Any], parts: Sequence[str] | None = None
) -> list[str]:
    """One key per row: its `parts` when the runtime names rows itself, else a hash of the row's canonical
    form, in one comprehension (a function call and a format per row were a third of it)."""
    prefix = f"mlstack:{space}:{model}:{version}:{sha256[:16]}:"
    if parts is not None:
        return [prefix + part for part in parts]
    blake2b, dumps = hashlib.blake2b, orjson.dumps
    return [prefix + blake2b(dumps(row), digest_size=16).hexdigest() for row in rows]


def _decode(value: bytes) -> Entry | None:
    """An entry of the expected shape, or None: anything else in Redis counts as a miss. (Callers skip
    the None of a missing key themselves: a call per row was a tenth of a batch's lookup.)"""
    try:
        entry = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) and "l" in entry else None


class PredictionCache:
    """Redis behind a small breaker: after a failure it is skipped for a while, then one call probes it."""

    def __init__(
        self,
        settings: Settings,
        on_near_hits: Callable[[int], None] = lambda rows: None,
        on_unwritten: Callable[[int], None] = lambda rows: None,
    ) -> None:
        self._ttl_s = settings.cache_ttl_s
        self._retry_after_s = settings.cache_retry_after_s
        self._skip_until = 0.0
        self._unwritten: list[tuple[str, Entry]] = []
        self._writing = 0
        """Rows sent to Redis that it has not run yet."""
        self._lookups: list[Lookup] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.near: NearCache | None = None
        self._on_near_hits = on_near_hits
        self._on_unwritten = on_unwritten
        self._redis = connections.cache_lookups(settings)
        self._writes = connections.cache_writes(settings)
        watch = connections.cache_watch(settings)
        if watch is not None:
            ttl_s = min(settings.near_cache_ttl_s, settings.cache_ttl_s)
            self.near = NearCache(
                watch, settings.near_cache_entries, ttl_s, settings.cache_retry_after_s, self._trip
            )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[PredictionCache]:
        """In the running event loop: the near cache's watch connection open, everything closed after."""
        if self.near is not None:
            self.near.start()
        try:
            yield self
        finally:
            await self.close()

    @property
    def available(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._skip_until

    async def get_many(self, keys: Sequence[str], near: bool = True) -> list[Entry | None] | None:
        """Cached entries in key order (None per miss), or None when the cache cannot be used. `near`:
        this replica's copies may answer (not for anything that must be erasable at once)."""
        if not self.available or self._redis is None:
            return None
        if not near or self.near is None:
            return await self._shared(keys)
        found: list[Entry | None] = self.near.get_many(keys)
        missing = [i for i, entry in enumerate(found) if entry is None]
        if len(missing) < len(keys):
            self._on_near_hits(len(keys) - len(missing))
        if not missing:
            return found
        shared = await self._shared([keys[i] for i in missing] if len(missing) < len(keys) else keys)
        if shared is None:
            return None
        for i, entry in zip(missing, shared, strict=True):
            if entry is not None:
                found[i] = entry
                self.near.put(keys[i], entry)
        return found

    async def _shared(self, keys: Sequence[str]) -> list[Entry | None] | None:
        """Lookups made in the same turn of the event loop go to Redis together, in one MGET."""
        future: asyncio.Future[list[Entry | None] | None] = asyncio.get_running_loop().create_future()
        self._lookups.append((keys, future))
        if len(self._lookups) == 1:  # the first of this turn sends them all, once the turn is over
            asyncio.get_running_loop().call_soon(self._send_lookups)
        return await future

    def _send_lookups(self) -> None:
        lookups, self._lookups = self._lookups, []
        self._spawn(self._look_up(lookups, [key for wanted, _ in lookups for key in wanted]))

    async def _look_up(self, lookups: list[Lookup], keys: list[str]) -> None:
        assert self._redis is not None
        raw: list[bytes | None] = []
        try:
            for start in range(0, len(keys), MAX_KEYS_PER_CALL):
                raw += await self._redis.call("MGET", *keys[start : start + MAX_KEYS_PER_CALL])
        except (TimeoutError, RedisError, OSError) as exc:
            self._hand_out(lookups, None, exc)
        except BaseException:  # cancelled: every waiting request still gets an answer
            self._hand_out(lookups, None, None)
            raise
        else:
            self._hand_out(lookups, raw, None)

    def _hand_out(
        self, lookups: list[Lookup], raw: list[bytes | None] | None, failure: BaseException | None
    ) -> None:
        if isinstance(failure, TimeoutError):
            # Late, yet Redis answers its watch PINGs: the replica's own loop was too busy to read the
            # reply in time (batches under overload). These requests go without the cache; the others
            # keep it. A Redis that hangs fails its PING within two seconds and trips the breaker then.
            if self.near is None or not self.near.watching:
                self._trip(failure)
        elif failure is not None:
            self._trip(failure)
        start = 0
        for wanted, future in lookups:
            found = (
                None
                if raw is None
                else [None if v is None else _decode(v) for v in raw[start : start + len(wanted)]]
            )
            start += len(wanted)
            if not future.done():  # its request may have been cancelled meanwhile
                future.set_result(found)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)  # a reference, so the task is not collected before it ends
        task.add_done_callback(self._tasks.discard)

    def put_many(self, items: Sequence[tuple[str, Entry]]) -> None:
        """Store entries in the background: the response does not wait for Redis, nor does anything
        else. The entries of every request that answers in this turn of the loop leave together."""
        if not items or not self.available:
            return
        if not self._unwritten:
            asyncio.get_running_loop().call_soon(self._send_writes)
        self._unwritten.extend(items)

    def _send_writes(self) -> None:
        """SETs with their TTL, whose replies Redis does not write; nobody waits for them. While Redis
        has many rows still to run, these go uncached instead; with no open connection, they wait."""
        items, self._unwritten = self._unwritten, []
        assert self._writes is not None
        if not items:
            return
        if self._writing + len(items) > MAX_WRITING_ROWS:
            log.debug("cache write skipped, %d rows not cached: Redis lags behind", len(items))
            self._on_unwritten(len(items))
            return
        if not self._writes.connected:
            self._spawn(self._connect_and_write(items))
            return
        dumps = orjson.dumps
        ran = self._writes.run_quietly(pack_set_ex([(k, dumps(entry)) for k, entry in items], self._ttl_s))
        assert ran is not None
        self._writing += len(items)
        ran.add_done_callback(lambda done: self._written(len(items), done))

    def _written(self, rows: int, done: asyncio.Future[Any]) -> None:
        self._writing -= rows
        if done.cancelled() or done.exception() is not None:  # lost with the connection: uncached
            log.debug("cache write lost, %d rows not cached", rows)
            self._on_unwritten(rows)

    async def _connect_and_write(self, items: list[tuple[str, Entry]]) -> None:
        assert self._writes is not None
        try:
            await self._writes.connect()
        except OSError as exc:
            log.debug("cache write skipped, %d rows not cached: %s", len(items), exc)
            self._on_unwritten(len(items))
            return
        self._unwritten = items + self._unwritten
        self._send_writes()

    async def delete_matching(self, pattern: str) -> bool:
        """Delete every key matching a glob pattern (SCAN, then UNLINK); False if Redis failed."""
        if self._redis is None:
            return True  # nothing was ever cached
        call, cursor = self._redis.call, b"0"
        try:
            while True:
                cursor, keys = await call(
                    "SCAN", cursor, "MATCH", pattern, "COUNT", 1000, timeout_s=DELETE_TIMEOUT_S
                )
                if keys:
                    await call("UNLINK", *keys, timeout_s=DELETE_TIMEOUT_S)
                if cursor == b"0":
                    break
        except (TimeoutError, RedisError, OSError) as exc:
            self._trip(exc)
            return False
        return True

    async def close(self) -> None:
        if self._unwritten:
            self._send_writes()
        if self.near is not None:
            await self.near.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1)
        for pipe in (self._redis, self._writes):
            if pipe is not None:
                await pipe.close()

    def _trip(self, exc: BaseException) -> None:
        if time.monotonic() >= self._skip_until:
            log.warning("cache unavailable, bypassing it for %.1fs: %s", self._retry_after_s, exc)
        self._skip_until = time.monotonic() + self._retry_after_s

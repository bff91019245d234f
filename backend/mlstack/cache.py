"""The shared prediction cache in Redis: key scheme, one round trip per batch, and bypass when Redis fails.

Key: model + version + artifact sha256 + a hash of the row's canonical form (values in schema order,
numbers as floats), so key order and number spelling do not matter and a new version never meets an old entry.
Values are JSON, never pickle: a poisoned cache must not become code execution.

A round trip to Redis costs the replica about 100 µs of CPU (two system calls and redis-py's own work),
more than an ONNX prediction. So each replica keeps recent entries in memory as well (near_cache.py), the
lookups of requests that arrive together share one MGET, and their writes share one script call that sets
every key with its TTL: one command however many rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry  # the asyncio one: the sync Retry never retries a coroutine
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mlstack.near_cache import PING_TIMEOUT_S, NearCache
from mlstack.settings import Settings

log = logging.getLogger("mlstack.cache")

Entry = dict[str, Any]
MAX_UNWRITTEN_ROWS = 10_000
MAX_KEYS_PER_CALL = 2_000
"""Lookups go in calls of at most this many keys (about 1 µs of Redis's time each)."""
MAX_KEYS_PER_WRITE = 250
"""Writes go in script calls of at most this many keys: a SET costs Redis 3-4 µs, and every lookup, from
every replica, waits behind a running script (2,000 keys held Redis for 8 ms, a third of the timeout)."""
SET_ALL_WITH_TTL = """
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', ttl)
end
return #KEYS
"""


class HiredisPackingConnection(aioredis.Connection):
    """redis-py's asyncio client packs commands in Python, about 1 µs per argument, and a 100-row batch
    sends 300 of them; hiredis packs in C. Straight to hiredis: redis-py's own hiredis serializer still
    looks at every argument in Python first (for bytearrays and memoryviews, which this cache never sends)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if isinstance(name, str):  # "SCRIPT LOAD" is two arguments in the protocol
            args = (*name.split(), *args[1:])
        return [hiredis.pack_command(args)]


def row_keys(model: str, version: str, sha256: str, rows: Sequence[tuple[Any, ...]]) -> list[str]:
    """One key per row, in one comprehension: a function call and a format per row were a third of it."""
    prefix, blake2b, dumps = f"mlstack:pred:{model}:{version}:{sha256[:16]}:", hashlib.blake2b, orjson.dumps
    return [prefix + blake2b(dumps(row), digest_size=16).hexdigest() for row in rows]


def _decode(value: bytes | None) -> Entry | None:
    """An entry of the expected shape, or None: anything else in Redis counts as a miss."""
    if value is None:
        return None
    try:
        entry = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) and "l" in entry else None


class PredictionCache:
    """Redis behind a small breaker: after a failure it is skipped for a while, then one call probes it."""

    def __init__(self, settings: Settings, on_near_hits: Callable[[int], None] = lambda rows: None) -> None:
        self._ttl_s = settings.cache_ttl_s
        self._retry_after_s = settings.cache_retry_after_s
        self._skip_until = 0.0
        self._unwritten: list[tuple[str, Entry]] = []
        self._writer: asyncio.Task[None] | None = None
        self._lookups: list[tuple[Sequence[str], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._redis: aioredis.Redis | None = None
        self.near: NearCache | None = None
        self._on_near_hits = on_near_hits
        if settings.cache_enabled and settings.redis_url:
            timeout = settings.redis_timeout_ms / 1000
            # redis-py's defaults retry with backoff for seconds on a dead Redis; fail fast instead. One
            # immediate retry on a broken connection: after Redis restarts, pooled ones fail once each.
            self._redis = aioredis.Redis.from_url(
                settings.redis_url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
                max_connections=64,
                health_check_interval=0,
                connection_class=HiredisPackingConnection,
            )
            self._set_all = self._redis.register_script(SET_ALL_WITH_TTL)
            if settings.near_cache_entries:
                ttl_s = min(settings.near_cache_ttl_s, settings.cache_ttl_s)
                # its own connection pool: sharing one with lookups, a restart of Redis broke a lookup
                watch = aioredis.Redis.from_url(
                    settings.redis_url,
                    socket_connect_timeout=PING_TIMEOUT_S,
                    retry=Retry(NoBackoff(), 0),
                    health_check_interval=0,
                    max_connections=1,
                )
                retry_after_s = settings.cache_retry_after_s
                self.near = NearCache(watch, settings.near_cache_entries, ttl_s, retry_after_s, self._trip)

    def start(self) -> None:
        """In the running event loop: opens the near cache's watch connection."""
        if self.near is not None:
            self.near.start()

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
        found: list[Entry | None] = [self.near.get(key) for key in keys]
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
        task = asyncio.create_task(self._look_up(lookups))
        self._tasks.add(task)  # a reference, so the task is not collected before it ends
        task.add_done_callback(self._tasks.discard)

    async def _look_up(self, lookups: list[tuple[Sequence[str], asyncio.Future[Any]]]) -> None:
        assert self._redis is not None
        keys = [key for wanted, _ in lookups for key in wanted]
        raw: list[bytes | None] | None = None
        try:
            raw = []
            for start in range(0, len(keys), MAX_KEYS_PER_CALL):
                raw += await self._redis.mget(keys[start : start + MAX_KEYS_PER_CALL])
        except (TimeoutError, RedisTimeoutError) as exc:
            raw = None
            # Late, yet Redis answers its watch PINGs: the replica's own loop was too busy to read the
            # reply in time (batches under overload). These requests go without the cache; the others
            # keep it. A Redis that hangs fails its PING within two seconds and trips the breaker then.
            if self.near is None or not self.near.watching:
                self._trip(exc)
        except (RedisError, OSError) as exc:
            self._trip(exc)
            raw = None
        finally:  # every waiting request gets an answer, whatever happened here
            start = 0
            for wanted, future in lookups:
                found = None if raw is None else [_decode(v) for v in raw[start : start + len(wanted)]]
                start += len(wanted)
                if not future.done():  # its request may have been cancelled meanwhile
                    future.set_result(found)

    def put_many(self, items: Sequence[tuple[str, Entry]]) -> None:
        """Store entries in the background: the response does not wait for Redis. Entries from concurrent
        requests are written together, in one script call at a time."""
        if not items or not self.available:
            return
        if len(self._unwritten) < MAX_UNWRITTEN_ROWS:  # Redis slower than traffic: drop, never queue up
            self._unwritten.extend(items)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_unwritten())

    async def _write_unwritten(self) -> None:
        while self._unwritten:
            await asyncio.sleep(0)  # one turn of the loop: answers finishing in it add their rows too
            items, self._unwritten = self._unwritten, []
            await self._write(items)

    async def delete_matching(self, pattern: str) -> bool:
        """Delete every key matching a glob pattern (SCAN, then UNLINK); False if Redis failed."""
        if self._redis is None:
            return True  # nothing was ever cached
        try:
            batch: list[bytes] = []
            async for key in self._redis.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    await self._redis.unlink(*batch)
                    batch.clear()
            if batch:
                await self._redis.unlink(*batch)
        except (TimeoutError, RedisError, OSError) as exc:
            self._trip(exc)
            return False
        return True

    async def close(self) -> None:
        if self.near is not None:
            await self.near.close()
        if self._writer is not None:
            await asyncio.wait([self._writer], timeout=1)
        if self._redis is not None:
            await self._redis.aclose()

    async def _write(self, items: Sequence[tuple[str, Entry]]) -> None:
        assert self._redis is not None
        try:
            for start in range(0, len(items), MAX_KEYS_PER_WRITE):
                chunk = items[start : start + MAX_KEYS_PER_WRITE]
                values = [orjson.dumps(entry) for _, entry in chunk]
                await self._set_all(keys=[key for key, _ in chunk], args=[self._ttl_s, *values])
        except (TimeoutError, RedisTimeoutError) as exc:
            # Rows not cached, nothing lost: a slow write under load is no reason to stop the lookups
            # (a Redis that stopped answering makes them time out, and they bypass it then).
            log.debug("cache write timed out, %d rows not cached: %s", len(items), exc)
        except (RedisError, OSError) as exc:
            self._trip(exc)

    def _trip(self, exc: BaseException) -> None:
        if time.monotonic() >= self._skip_until:
            log.warning("cache unavailable, bypassing it for %.1fs: %s", self._retry_after_s, exc)
        self._skip_until = time.monotonic() + self._retry_after_s


def cache_status(cache_used: bool, misses: int, total: int) -> str:
    """The X-Cache header: BYPASS, HIT, MISS or PARTIAL."""
    if not cache_used:
        return "BYPASS"
    if misses == 0:
        return "HIT"
    return "MISS" if misses == total else "PARTIAL"
